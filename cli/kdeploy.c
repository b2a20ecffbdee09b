/* `kdeploy`: the operator's command-line tool. One subcommand per verb;
 * each parses its own options and returns the process's exit code. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd_broker.h"
#include "cmd_dashboard.h"
#include "cmd_deploy.h"
#include "cmd_group.h"
#include "cmd_hosts.h"
#include "cmd_keygen.h"
#include "cmd_replay.h"
#include "cmd_validate.h"
#include "config.h"
#include "outcome.h"

typedef struct kd_subcommand {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} kd_subcommand_t;

static const kd_subcommand_t subcommands[] = {
    {"create", kd_cmd_create, "submit a deployment from a spec file"},
    {"rollback", kd_cmd_rollback, "roll a deployment back (as a new deployment)"},
    {"stop", kd_cmd_stop, "stop a running deployment"},
    {"pause", kd_cmd_pause, "pause a running deployment"},
    {"resume", kd_cmd_resume, "resume a paused deployment"},
    {"status", kd_cmd_status, "show a deployment and its hosts"},
    {"watch", kd_cmd_watch, "follow a deployment live"},
    {"list", kd_cmd_list, "list recent deployments"},
    {"hosts", kd_cmd_hosts, "the agents: alive, version, revisions installed"},
    {"group", kd_cmd_group, "deployment groups: set, list, show, delete"},
    {"replay", kd_cmd_replay, "a deployment's full timeline, rebuilt from the topics"},
    {"dashboard", kd_cmd_dashboard, "serve a live web page of the deployments"},
    {"broker", kd_cmd_broker, "run the embedded Kafka-protocol broker (one machine)"},
    {"validate", kd_cmd_validate, "check an appspec file or a bundle directory"},
    {"keygen", kd_cmd_keygen, "create the Ed25519 key pair that signs step events"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: kdeploy COMMAND [options]   (kdeploy COMMAND --help for more)\n\n"
               "commands:\n");
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        fprintf(f, "  %-10s %s\n", subcommands[i].name, subcommands[i].summary);
    fprintf(f, "\nIds: any unambiguous start of a deploy id will do (list shows 8 characters).\n"
               "--json: output for scripts; kdeploy COMMAND --help: its options.\n"
               KD_EXIT_HELP);
}

/* Options every subcommand shares may also stand before its name
 * (`kdeploy --brokers B create ...`): they are moved behind it. */
static int hoist_global_options(int argc, char **argv, char **out)
{
    static const char *const with_value[] = {"--brokers", "--brokers-file", "--config",
                                             "--topic-prefix", "--log-level", "-X"};
    int n = 1, i = 1, first;

    out[0] = argv[0];
    while (i < argc && argv[i][0] == '-') {
        bool takes = strcmp(argv[i], "--log-json") == 0 || strcmp(argv[i], "--verbose") == 0;
        bool value = false;

        for (size_t k = 0; k < sizeof with_value / sizeof with_value[0]; k++)
            if (strcmp(argv[i], with_value[k]) == 0)
                takes = value = true;
        if (!takes || (value && i + 1 >= argc))
            break;
        i += value ? 2 : 1;
    }
    if (i == 1 || i >= argc)
        return -1;
    first = i;
    out[n++] = argv[first];
    for (int k = 1; k < first; k++)
        out[n++] = argv[k];
    for (int k = first + 1; k < argc; k++)
        out[n++] = argv[k];
    out[n] = NULL;
    return n;
}

/* An unknown command or global option, with a did-you-mean. */
static void unknown_command(const char *word)
{
    static const char *const globals[] = {"--brokers", "--brokers-file", "--config",
                                          "--topic-prefix", "--log-level", "--log-json",
                                          "--verbose", "--help", "--version", NULL};
    const char *names[sizeof subcommands / sizeof subcommands[0] + 1];
    const char *hint;
    size_t n = 0;

    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        names[n++] = subcommands[i].name;
    names[n] = NULL;
    hint = kd_did_you_mean(word, word[0] == '-' ? globals : names);
    if (hint && strcmp(hint, word) == 0)
        fprintf(stderr, "kdeploy: '%s' (and its value) must come before a command\n", word);
    else if (hint)
        fprintf(stderr, "kdeploy: unknown %s '%s' (did you mean '%s'?)\n",
                word[0] == '-' ? "option" : "command", word, hint);
    else
        fprintf(stderr, "kdeploy: unknown %s '%s'\n", word[0] == '-' ? "option" : "command",
                word);
}

static int run(int argc, char **argv)
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
    unknown_command(argv[1]);
    usage(stderr);
    return 2;
}

int main(int argc, char **argv)
{
    /* On the heap: the argument count is the caller's to choose. */
    char **hoisted = calloc((size_t)argc + 1, sizeof *hoisted);
    int n, rc;

    if (!hoisted) {
        fprintf(stderr, "kdeploy: out of memory\n");
        return 1;
    }
    n = hoist_global_options(argc, argv, hoisted);
    rc = n > 0 ? run(n, hoisted) : run(argc, argv);
    free(hoisted);
    return rc;
}
