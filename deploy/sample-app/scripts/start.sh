#!/bin/sh
# ApplicationStart: run the service in the background, output to its log
# (never to the hook's stdout, which the worker stops reading).
set -e
home="${KDEPLOY_INSTALL_PREFIX:-${KD_PREFIX:-}}/opt/shop"
mkdir -p "$home/run"
nohup python3 "$home/server.py" --port "$APP_PORT" --host-name "${KD_HOST:-$(hostname)}" \
    > "$home/run/server.log" 2>&1 &
echo $! > "$home/run/server.pid"
echo "started $(cat "$home/VERSION") on port $APP_PORT (pid $!)"
