#ifndef KD_CMD_VALIDATE_H
#define KD_CMD_VALIDATE_H

/* `kdeploy validate PATH`: checks an appspec file, or the appspec of a
 * bundle directory. argv[0] is "validate". Prints
 * "PATH: valid (FORMAT, N hooks, N files)" and returns 0 when it is valid;
 * prints every error to stderr and returns 1 when it is not; returns 2 on a
 * usage error. */
int kd_cmd_validate(int argc, char **argv);

#endif
