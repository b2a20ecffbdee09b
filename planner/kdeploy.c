/* `kdeploy`: the operator's command-line tool. One subcommand per verb;
 * each parses its own options and returns the process's exit code. */
#include <stdio.h>
#include <string.h>

#include "cmd_broker.h"
#include "cmd_keygen.h"

typedef struct kd_subcommand {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} kd_subcommand_t;

static const kd_subcommand_t subcommands[] = {
    {"broker", kd_cmd_broker, "run the embedded Kafka-protocol broker (one machine)"},
    {"keygen", kd_cmd_keygen, "create the Ed25519 key pair that signs step events"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: kdeploy COMMAND [options]   (kdeploy COMMAND --help for more)\n\n"
               "commands:\n");
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        fprintf(f, "  %-10s %s\n", subcommands[i].name, subcommands[i].summary);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("kdeploy %s\n", KD_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        if (strcmp(argv[1], subcommands[i].name) == 0)
            return subcommands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "kdeploy: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
