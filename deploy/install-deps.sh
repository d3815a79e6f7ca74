#!/usr/bin/env bash
# Installs the Debian packages Shoal builds, tests and runs with. Idempotent:
# does nothing when they are all present. Needs root (or sudo).
set -euo pipefail

PACKAGES=(
  # build
  bazel-bootstrap bazel-platforms bazel-rules-java g++ pkg-config
  protobuf-compiler protobuf-compiler-grpc libprotobuf-dev libgrpc++-dev
  libabsl-dev libssl-dev android-libboringssl-dev libgoogle-glog-dev
  libgtest-dev libgmock-dev libcurl4-openssl-dev libhiredis-dev
  prometheus-cpp-dev libcivetweb-dev nlohmann-json3-dev
  # tests and benchmarks: independent oracles and real peers
  python3 python3-libtorrent curl openssl hyperfine redis-server bc nginx
  # monitoring: prometheus (with promtool) checks deploy/prometheus and the
  # dashboard's queries against the daemons' metrics
  prometheus
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "installing: ${missing[*]}" >&2
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
