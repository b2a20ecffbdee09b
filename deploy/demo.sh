#!/usr/bin/env bash
# The local demo: an embedded broker, a planner and three hosts (workers with
# their own root and install prefix), deploying the sample application:
# V1, then V2 rolling, then a broken V3 that is rolled back automatically.
# Everything it starts is stopped when it ends. Run from a checkout:
#   deploy/demo.sh            (builds into ./build first if needed)
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
build=${KD_BUILD_DIR:-build}
if [ ! -x "$build/bin/kdeploy-planner" ] || [ ! -x "$build/bin/kdeploy-worker" ]; then
  echo "== building kdeploy into $build"
  cmake -S . -B "$build" >/dev/null
  cmake --build "$build" -j "$(nproc)" >/dev/null
fi
case $build in /*) bin=$build/bin ;; *) bin=$top/$build/bin ;; esac
work=$(mktemp -d /tmp/kdeploy-demo.XXXXXX)
pids=()

stop_all() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  # The sample app runs detached from the workers: stop each host's copy.
  for h in web-01 web-02 web-03; do
    KD_PREFIX=$work/$h/prefix sh "$top/deploy/sample-app/scripts/stop.sh" >/dev/null 2>&1 || true
  done
  echo "== stopped everything; logs and caches are in $work"
}
trap stop_all EXIT

say() { printf '\n== %s\n' "$*"; }

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

spec() {
  local version=$1 sha=$2 conc=$3
  cat > "$work/shop-$version.yaml" <<SPEC
application: shop
group: web
hosts: [web-01, web-02, web-03]
revision:
  url: file://$work/shop-$version.tar.gz
  sha256: $sha
  label: "$version"
strategy: rolling
concurrency: $conc
failure_threshold: 1
auto_rollback: true
timeouts: {host: 120, deployment: 600}
SPEC
  echo "$work/shop-$version.yaml"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

curl_all() {
  for port in "${ports[@]}"; do
    printf '   :%s  %s\n' "$port" "$(curl -s --max-time 2 http://127.0.0.1:$port/ || echo '(down)')"
  done
}

say "starting the embedded broker"
"$bin/kdeploy" broker --brokers-file "$work/brokers" --partitions 4 > "$work/broker.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$work/brokers" ] && break; sleep 0.1; done
export KDEPLOY_BROKERS=$(cat "$work/brokers")
echo "   bootstrap servers: $KDEPLOY_BROKERS"

say "starting a planner and three hosts"
"$bin/kdeploy-planner" > "$work/planner.log" 2>&1 &
pids+=($!)
ports=()
for h in web-01 web-02 web-03; do
  port=$(free_port)
  ports+=("$port")
  mkdir -p "$work/$h/prefix"
  "$bin/kdeploy-worker" --host-id "$h" --root "$work/$h/root" \
      --install-prefix "$work/$h/prefix" --env "KD_PREFIX=$work/$h/prefix" \
      --env "KD_HOST=$h" --env "APP_PORT=$port" > "$work/$h.log" 2>&1 &
  pids+=($!)
  echo "   $h: app port $port, files under $work/$h/prefix"
done

say "deploying shop 1.0 (first deployment: no stop script to run)"
sha=$(bundle 1.0)
"$bin/kdeploy" create -f "$(spec 1.0 "$sha" 3)" --wait
curl_all

say "rolling out shop 2.0, one host at a time (1.0's stop script runs first)"
sha=$(bundle 2.0)
"$bin/kdeploy" create -f "$(spec 2.0 "$sha" 1)" --wait
curl_all

say "rolling out a broken shop 3.0: its health check fails, so it is rolled back"
sha=$(bundle 3.0 1)
if "$bin/kdeploy" create -f "$(spec 3.0 "$sha" 1)" --wait; then
  echo "   unexpected: 3.0 succeeded"; exit 1
fi
curl_all

say "recent deployments"
"$bin/kdeploy" list
