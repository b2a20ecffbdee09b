/* The dashboard's page, script and style sheet, embedded in the binary at
 * build time from cli/dashboard/ (cli/dashboard/embed.cmake writes them
 * as C arrays): no files to install, no CDN, no JavaScript toolchain. */
#ifndef KD_DASHBOARD_ASSETS_H
#define KD_DASHBOARD_ASSETS_H

#include <stddef.h>

typedef struct kd_asset {
    const char *path;          /* "/app.js" */
    const char *content_type;
    const unsigned char *data;
    size_t len;
} kd_asset_t;

extern const kd_asset_t kd_dashboard_assets[];
extern const size_t kd_dashboard_asset_count;

#endif
