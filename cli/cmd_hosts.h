#ifndef KD_CMD_HOSTS_H
#define KD_CMD_HOSTS_H

/* `kdeploy hosts [--json]`: the agents from the hosts topic. */
int kd_cmd_hosts(int argc, char **argv);

#endif
