/* Leveled logging to stderr, as human lines or JSON lines (for log
 * shippers). Library code returns errors; services log them once. */
#ifndef KD_LOG_H
#define KD_LOG_H

typedef enum {
    KD_LOG_ERROR = 0,
    KD_LOG_WARN = 1,
    KD_LOG_INFO = 2,
    KD_LOG_DEBUG = 3
} kd_log_level_t;

extern kd_log_level_t kd_log_threshold;

/* Sets the process-wide level and format; `component` prefixes every line. */
void kd_log_setup(const char *component, kd_log_level_t level, int json);
/* Parses "error", "warn", "info", "debug"; returns -1 for anything else. */
int kd_log_level_parse(const char *name);

void kd_log_write(kd_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Formatting is skipped entirely below the threshold. */
#define kd_log(level, ...)                                                    \
    do {                                                                      \
        if ((level) <= kd_log_threshold)                                      \
            kd_log_write((level), __VA_ARGS__);                               \
    } while (0)

#define kd_error(...) kd_log(KD_LOG_ERROR, __VA_ARGS__)
#define kd_warn(...) kd_log(KD_LOG_WARN, __VA_ARGS__)
#define kd_info(...) kd_log(KD_LOG_INFO, __VA_ARGS__)
#define kd_debug(...) kd_log(KD_LOG_DEBUG, __VA_ARGS__)

#endif
