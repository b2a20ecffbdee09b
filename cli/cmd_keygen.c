#include "cmd_keygen.h"

#include <stdio.h>
#include <string.h>

#include "sign.h"

int kd_cmd_keygen(int argc, char **argv)
{
    char err[512];

    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: kdeploy keygen PRIVATE.pem PUBLIC.pem\n"
               "Creates an Ed25519 key pair. The planner signs step and traffic events\n"
               "with the private key (signing_key); workers and lbctl verify them with\n"
               "the public key (verify_key). Existing files are never overwritten.\n");
        return 0;
    }
    if (argc != 3) {
        fprintf(stderr, "usage: kdeploy keygen PRIVATE.pem PUBLIC.pem\n");
        return 2;
    }
    if (kd_keygen(argv[1], argv[2], err, sizeof err) != KD_OK) {
        fprintf(stderr, "kdeploy keygen: %s\n", err);
        return 1;
    }
    printf("private key: %s\npublic key: %s\n", argv[1], argv[2]);
    return 0;
}
