#ifndef KD_CMD_DASHBOARD_H
#define KD_CMD_DASHBOARD_H

/* `kdeploy dashboard --listen ADDR:PORT`: a live web page of the
 * deployments, fed from the topics by server-sent events. */
int kd_cmd_dashboard(int argc, char **argv);

#endif
