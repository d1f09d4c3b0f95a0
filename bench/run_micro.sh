#!/usr/bin/env bash
# Builds and runs the routing micro-benchmarks (Google Benchmark), release build.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build-bench}
export CCACHE_BASEDIR="$PWD"
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTURNOUT_ROUTING_ONLY=ON \
    -DTURNOUT_BUILD_TESTS=OFF
fi
cmake --build "$BUILD_DIR" -j2 --target routing_micro_bench
"$BUILD_DIR/bench/routing_micro_bench" --benchmark_repetitions="${REPS:-3}" \
  --benchmark_report_aggregates_only=true "$@"
