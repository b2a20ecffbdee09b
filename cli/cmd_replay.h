#ifndef KD_CMD_REPLAY_H
#define KD_CMD_REPLAY_H

/* `kdeploy replay ID [--json]`: a deployment's timeline from the topics. */
int kd_cmd_replay(int argc, char **argv);

#endif
