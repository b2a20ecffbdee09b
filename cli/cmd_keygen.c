#include "cmd_keygen.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sign.h"

static const char usage[] =
    "usage: kdeploy keygen [--json] PRIVATE.pem PUBLIC.pem\n"
    "Creates an Ed25519 key pair. The planner signs step and traffic events\n"
    "with the private key (signing_key); workers and lbctl verify them with\n"
    "the public key (verify_key). Existing files are never overwritten.\n"
    "--json: {\"private_key\": PATH, \"public_key\": PATH}.\n";

int kd_cmd_keygen(int argc, char **argv)
{
    bool json = argc > 1 && strcmp(argv[1], "--json") == 0;
    char err[512], *text;
    json_t *o;

    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(usage, stdout);
        return 0;
    }
    argv += json;
    argc -= json;
    if (argc != 3 || argv[1][0] == '-' || argv[2][0] == '-') {
        fputs(usage, stderr);
        return 2;
    }
    if (kd_keygen(argv[1], argv[2], err, sizeof err) != KD_OK) {
        fprintf(stderr, "kdeploy keygen: %s\n", err);
        return 1;
    }
    if (!json) {
        printf("private key: %s\npublic key: %s\n", argv[1], argv[2]);
        return 0;
    }
    o = json_pack("{s:s, s:s}", "private_key", argv[1], "public_key", argv[2]);
    if (o && (text = json_dumps(o, JSON_COMPACT))) {
        printf("%s\n", text);
        free(text);
    }
    json_decref(o);
    return 0;
}
