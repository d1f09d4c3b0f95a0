#!/usr/bin/env bash
# Installs what turnout needs to build and test on Debian 12, and nothing that
# is already there. Idempotent; run as root (or with sudo available).
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ninja-build ccache pkg-config clang libclang-rt-14-dev
  # lld: static archives in any order and the ordered text (cmake/Linking.cmake)
  lld
  # libraries (DESIGN.md §4)
  libboost1.74-dev libboost-system1.74-dev libnghttp2-dev libssl-dev libabsl-dev
  libprotobuf-dev protobuf-compiler libre2-dev libyaml-cpp-dev libsqlite3-dev
  catch2 libbenchmark-dev libspdlog-dev libfmt-dev
  # test peers, clients and benchmark peers
  curl python3 nginx-light haproxy wrk nghttp2-client nghttp2-proxy nghttp2-server openssl strace
  # instructions per request (bench/compare/instructions.sh, tests/integration/instructions_test.sh)
  valgrind
  python3-h2 python3-grpcio
  # turnout-cp's shared store (tests/integration/control_plane_etcd_test.py)
  etcd-server
  # sidecar capture (turnout iptables) and the multi-pod test in network
  # namespaces; YAML and JSON Patch for the Kubernetes manifests and webhook tests
  iproute2 iptables python3-yaml python3-jsonpatch
  # turnout-cp's dashboard rendered headless (tests/integration/control_plane_dashboard_test.py)
  chromium
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
    missing+=("$p")
  fi
done
# npm fetches the pinned Envoy API proto tarball at configure time. A
# NodeSource nodejs ships its own npm (and conflicts with Debian's npm).
if ! command -v npm >/dev/null 2>&1; then
  missing+=(npm)
fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: all packages present"
fi
