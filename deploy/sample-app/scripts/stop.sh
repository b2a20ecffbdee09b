#!/bin/sh
# ApplicationStop: stop the running service, if any.
home="${KDEPLOY_INSTALL_PREFIX}/opt/shop"
pidfile="$home/run/server.pid"
[ -f "$pidfile" ] || { echo "not running"; exit 0; }
pid=$(cat "$pidfile")
if kill "$pid" 2>/dev/null; then
  for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -9 "$pid" 2>/dev/null || true
fi
rm -f "$pidfile"
echo "stopped pid $pid"
