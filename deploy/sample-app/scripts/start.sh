#!/bin/sh
# ApplicationStart: run the service in the background, output to its log
# (never to the hook's stdout, which the worker stops reading).
set -e
# The worker tells every hook where `files` installed the revision, and the host's id.
home="${KDEPLOY_INSTALL_PREFIX}/opt/shop"
mkdir -p "$home/run"
nohup python3 "$home/server.py" --port "$APP_PORT" --host-name "${KDEPLOY_HOST_ID:-$(hostname)}" \
    > "$home/run/server.log" 2>&1 &
echo $! > "$home/run/server.pid"
echo "started $(cat "$home/VERSION") on port $APP_PORT (pid $!)"
