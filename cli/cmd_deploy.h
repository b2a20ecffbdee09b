#ifndef KD_CMD_DEPLOY_H
#define KD_CMD_DEPLOY_H

/* The operator's deployment verbs; each returns the process's exit code. */
int kd_cmd_create(int argc, char **argv);
int kd_cmd_rollback(int argc, char **argv);
int kd_cmd_stop(int argc, char **argv);
int kd_cmd_pause(int argc, char **argv);
int kd_cmd_resume(int argc, char **argv);
int kd_cmd_status(int argc, char **argv);
int kd_cmd_watch(int argc, char **argv);
int kd_cmd_list(int argc, char **argv);

#endif
