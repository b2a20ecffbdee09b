#!/usr/bin/env bash
# The local demo fleet. Starts an embedded broker, a planner, lbctl with a
# real HAProxy (when installed) and seven local hosts (workers, each with its
# own root, install prefix and app port), then deploys the sample app:
#   1. shop 1.0 to web-01..03 behind HAProxy, then 2.0 rolling through the
#      load balancer while a client keeps asking (no request fails);
#   2. a broken 3.0 whose health check fails: rolled back automatically;
#   3. blue-green: 1.0 to blue, 2.0 to green and a swap, then a rollback.
# Everything it starts is stopped when it ends. From a checkout:
#   deploy/demo.sh          (builds into ./build first if needed)
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
build=${KD_BUILD_DIR:-build}
case $build in /*) bin=$build/bin ;; *) bin=$top/$build/bin ;; esac
if [ ! -x "$bin/kdeploy-planner" ] || [ ! -x "$bin/kdeploy-worker" ] || [ ! -x "$bin/kdeploy-lbctl" ]; then
  echo "== building kdeploy into $build"
  cmake -S . -B "$build" >/dev/null
  cmake --build "$build" -j "$(nproc)" >/dev/null
fi
work=$(mktemp -d /tmp/kdeploy-demo.XXXXXX)
haproxy=$(command -v haproxy || true)
[ -z "$haproxy" ] && [ -x /usr/sbin/haproxy ] && haproxy=/usr/sbin/haproxy
lb_line=""
[ -n "$haproxy" ] && lb_line="load_balancer: {server_group: web}"
rolling=(web-01 web-02 web-03)
blue=(b1 b2)
green=(g1 g2)
pids=()
declare -A port

stop_all() {
  stop_load 2>/dev/null || true
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  # The sample app runs detached from the workers: stop each host's copy.
  for h in "${rolling[@]}" "${blue[@]}" "${green[@]}"; do
    KDEPLOY_INSTALL_PREFIX=$work/$h/prefix sh "$top/deploy/sample-app/scripts/stop.sh" \
      >/dev/null 2>&1 || true
  done
  echo "== stopped everything; logs and caches are in $work"
}
trap stop_all EXIT

say() { printf '\n== %s\n' "$*"; }
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# A bundle of the sample app at a version; broken=1 makes its check fail.
bundle() {
  local version=$1 broken=${2:-0} dir=$work/src-$1
  mkdir -p "$dir"
  cp -r "$top/deploy/sample-app/." "$dir/"
  echo "$version" > "$dir/app/VERSION"
  if [ "$broken" = 1 ]; then
    printf '#!/bin/sh\necho "%s does not answer its health check" >&2\nexit 1\n' "$version" \
      > "$dir/scripts/check.sh"
  fi
  tar -C "$dir" -czf "$work/shop-$version.tar.gz" .
  sha256sum "$work/shop-$version.tar.gz" | cut -d' ' -f1
}

# A rolling spec (with the load balancer when there is one).
spec() {
  local version=$1 sha=$2 conc=$3
  cat > "$work/shop-$version.yaml" <<SPEC
application: shop
group: web
hosts: {labels: {role: web}}   # the hosts whose workers announced role=web
revision: {url: "file://$work/shop-$version.tar.gz", sha256: $sha, label: "$version"}
strategy: rolling
concurrency: $conc
auto_rollback: true
timeouts: {host: 120, deployment: 600}
$lb_line
SPEC
  echo "$work/shop-$version.yaml"
}

bg_spec() {
  local version=$1 sha=$2
  cat > "$work/bg-$version.yaml" <<SPEC
application: shop
group: bg
strategy: blue_green
revision: {url: "file://$work/shop-$version.tar.gz", sha256: $sha, label: "$version"}
concurrency: "100%"
load_balancer: {service: shop-svc}
blue_green:
  blue:  {server_group: blue,  hosts: [b1, b2]}
  green: {server_group: green, hosts: [g1, g2]}
timeouts: {host: 120, deployment: 600}
SPEC
  echo "$work/bg-$version.yaml"
}

# A client asking through HAProxy in the background; stop_load reports.
start_load() {
  local url=$1
  : > "$work/load.log"
  ( while :; do curl -s -o /dev/null -w '%{http_code}\n' --max-time 5 "$url" >> "$work/load.log" || echo 000 >> "$work/load.log"; done ) &
  load_pid=$!
}
stop_load() {
  [ -n "${load_pid:-}" ] || return 0
  kill "$load_pid" 2>/dev/null; wait "$load_pid" 2>/dev/null || true
  load_pid=
  local total failed
  total=$(wc -l < "$work/load.log")
  failed=$(grep -vc '^200$' "$work/load.log" || true)
  echo "   client: $total requests through HAProxy, $failed failed"
}

ask() { # url: the answer
  printf '   %s -> %s\n' "$1" "$(curl -s --max-time 2 "$1" || echo '(no answer)')"
}

say "starting the embedded broker"
"$bin/kdeploy" broker --brokers-file "$work/brokers" --partitions 4 > "$work/broker.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$work/brokers" ] && break; sleep 0.1; done
export KDEPLOY_BROKERS=$(cat "$work/brokers")
echo "   bootstrap servers: $KDEPLOY_BROKERS"

for h in "${rolling[@]}" "${blue[@]}" "${green[@]}"; do port[$h]=$(free_port); done
# Signed steps and traffic commands, as in production: the planner signs,
# workers and lbctl refuse anything its key did not sign.
"$bin/kdeploy" keygen "$work/planner.key" "$work/planner.pub" >/dev/null
if [ -n "$haproxy" ]; then
  say "starting HAProxy and lbctl"
  web_port=$(free_port)
  bg_port=$(free_port)
  echo "shop-svc blue" > "$work/services.map"
  {
    echo "global"
    echo "  stats socket $work/admin.sock level admin"
    echo "defaults"
    echo "  mode http"
    echo "  timeout connect 1s"
    echo "  timeout client 10s"
    echo "  timeout server 10s"
    echo "  retries 0"
    echo "frontend fe_web"
    echo "  bind 127.0.0.1:$web_port"
    echo "  default_backend web"
    echo "frontend fe_shop"
    echo "  bind 127.0.0.1:$bg_port"
    echo "  use_backend %[str(shop-svc),map($work/services.map,blue)]"
    for group in web blue green; do
      echo "backend $group"
      echo "  option httpchk GET /health"
      case $group in web) hs=("${rolling[@]}") ;; blue) hs=("${blue[@]}") ;; green) hs=("${green[@]}") ;; esac
      for h in "${hs[@]}"; do
        echo "  server $h 127.0.0.1:${port[$h]} check inter 500ms fall 1 rise 1"
      done
    done
  } > "$work/haproxy.cfg"
  "$haproxy" -f "$work/haproxy.cfg" -db > "$work/haproxy.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 50); do [ -S "$work/admin.sock" ] && break; sleep 0.1; done
  "$bin/kdeploy-lbctl" --driver haproxy --haproxy-socket "$work/admin.sock" \
      --state-dir "$work/lbctl" --verify-key "$work/planner.pub" > "$work/lbctl.log" 2>&1 &
  pids+=($!)
  echo "   rolling service on 127.0.0.1:$web_port, blue-green service on 127.0.0.1:$bg_port"
else
  say "HAProxy is not installed: the demo runs without a load balancer"
fi

say "starting a planner and seven hosts"
"$bin/kdeploy-planner" --signing-key "$work/planner.key" > "$work/planner.log" 2>&1 &
pids+=($!)
for h in "${rolling[@]}" "${blue[@]}" "${green[@]}"; do
  mkdir -p "$work/$h/prefix"
  case $h in web-*) role=web ;; *) role=bluegreen ;; esac
  "$bin/kdeploy-worker" --host-id "$h" --root "$work/$h/root" \
      --install-prefix "$work/$h/prefix" --label "role=$role" \
      --env "APP_PORT=${port[$h]}" --verify-key "$work/planner.pub" \
      > "$work/$h.log" 2>&1 &
  pids+=($!)
done
echo "   each host: app port, root and files under $work/<host>/"

say "deploying shop 1.0 to web-01..03 (first deployment: no stop script to run)"
"$bin/kdeploy" create -f "$(spec 1.0 "$(bundle 1.0)" 3)" --wait
[ -n "$haproxy" ] && sleep 1 && ask "http://127.0.0.1:$web_port/"

say "rolling out shop 2.0, one host at a time${haproxy:+, each drained from HAProxy first}"
[ -n "$haproxy" ] && start_load "http://127.0.0.1:$web_port/"
"$bin/kdeploy" create -f "$(spec 2.0 "$(bundle 2.0)" 1)" --wait
stop_load
[ -n "$haproxy" ] && ask "http://127.0.0.1:$web_port/"

say "rolling out a broken shop 3.0: its health check fails, so it is rolled back"
if "$bin/kdeploy" create -f "$(spec 3.0 "$(bundle 3.0 1)" 1)" --wait; then
  echo "   unexpected: 3.0 succeeded"; exit 1
fi
for h in "${rolling[@]}"; do ask "http://127.0.0.1:${port[$h]}/"; done

if [ -n "$haproxy" ]; then
  say "blue-green: shop 1.0 to blue (the first blue-green deployment goes to blue)"
  "$bin/kdeploy" create -f "$(bg_spec 1.0 "$(sha256sum "$work/shop-1.0.tar.gz" | cut -d' ' -f1)")" --wait
  sleep 1
  ask "http://127.0.0.1:$bg_port/"

  say "blue-green: shop 2.0 to the idle green group, then the service swaps to green"
  start_load "http://127.0.0.1:$bg_port/"
  id=$("$bin/kdeploy" create -f "$(bg_spec 2.0 "$(sha256sum "$work/shop-2.0.tar.gz" | cut -d' ' -f1)")" --wait | head -1)
  ask "http://127.0.0.1:$bg_port/"

  say "blue-green: kdeploy rollback $id (checks blue, swaps back)"
  "$bin/kdeploy" rollback "$id" --wait >/dev/null
  stop_load
  ask "http://127.0.0.1:$bg_port/"
fi

say "recent deployments"
"$bin/kdeploy" list
say "the agents"
"$bin/kdeploy" hosts
