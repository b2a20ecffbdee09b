#ifndef KD_CMD_KEYGEN_H
#define KD_CMD_KEYGEN_H

/* `kdeploy keygen PRIVATE PUBLIC`: a new Ed25519 signing key pair. */
int kd_cmd_keygen(int argc, char **argv);

#endif
