#!/usr/bin/env bash
# Creates kdeploy's topics on a real Kafka cluster with the stock Kafka CLI.
#   deploy/create-topics.sh BOOTSTRAP [PARTITIONS] [REPLICATION] [PREFIX]
# Keys decide partitions: requests, deployments and results must have the
# same partition count (planners own a deployment through all three).
# Pass the client properties of a secured cluster with KAFKA_CLIENT_CONFIG.
set -euo pipefail
bootstrap=${1:?usage: create-topics.sh BOOTSTRAP [PARTITIONS] [REPLICATION] [PREFIX]}
partitions=${2:-12}
replication=${3:-3}
prefix=${4:-kdeploy.}
kt=${KAFKA_TOPICS:-kafka-topics.sh}
extra=()
[ -n "${KAFKA_CLIENT_CONFIG:-}" ] && extra=(--command-config "$KAFKA_CLIENT_CONFIG")

create() { # name, then --config pairs
  local name=$1; shift
  "$kt" --bootstrap-server "$bootstrap" "${extra[@]}" --create --if-not-exists \
    --topic "$prefix$name" --partitions "$partitions" --replication-factor "$replication" \
    --config min.insync.replicas=$(( replication > 1 ? 2 : 1 )) "$@"
}

create requests    --config retention.ms=2592000000        # 30 days
create deployments --config retention.ms=-1                 # the audit log: kept
create steps       --config retention.ms=7776000000         # 90 days: replay reads them
create traffic     --config retention.ms=7776000000
create results     --config retention.ms=7776000000         # 90 days, for replay
create hosts       --config cleanup.policy=compact          # last status per host
create groups      --config cleanup.policy=compact          # deployment groups by name
