#!/usr/bin/env bash
# Installs what kdeploy needs to build, test and run its demo on Debian 12
# (bookworm) or newer. Run as root. Safe to run again.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  librdkafka-dev                           # Kafka client and the embedded broker
  libprotobuf-c-dev protobuf-c-compiler    # the wire contract (protoc-c at build time)
  libyaml-dev                              # appspecs, specs and config files
  libcurl4-openssl-dev                     # bundle downloads
  libarchive-dev                           # bundle unpacking
  libssl-dev                               # checksums and Ed25519 signatures
  libjansson-dev                           # JSON output and JSON log lines
  libacl1-dev                              # an appspec's acls
  libselinux1-dev                          # an appspec's SELinux contexts
  uuid-dev                                 # event and deployment ids
  libmicrohttpd-dev                        # /metrics and the dashboard's HTTP server
  scdoc                                    # the man pages
  bash-completion zsh                      # the shell completions' test
  haproxy                                  # the load balancer of tests and demo
  python3 python3-kafka                    # an independent Kafka client for interop tests
  python3-prometheus-client python3-yaml   # tests parse /metrics with Prometheus' own parser
  chromium chromium-driver python3-selenium  # the dashboard's browser test
  curl tar gzip zip procps
)

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps.sh: run as root (sudo $0)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${packages[@]}"
