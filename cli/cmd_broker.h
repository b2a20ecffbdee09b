#ifndef KD_CMD_BROKER_H
#define KD_CMD_BROKER_H

/* `kdeploy broker`: the embedded Kafka-protocol broker for one machine. */
int kd_cmd_broker(int argc, char **argv);

#endif
