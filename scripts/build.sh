#!/usr/bin/env bash
# Configures and builds turnout into ${BUILD_DIR:-build} (Ninja, ccache, -j2).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
export CCACHE_BASEDIR="$PWD"
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/turnout-ccache}"
export CCACHE_MAXSIZE="${CCACHE_MAXSIZE:-5G}"
JOBS=${JOBS:-2}
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@"
fi
cmake --build "$BUILD_DIR" -j"$JOBS"
