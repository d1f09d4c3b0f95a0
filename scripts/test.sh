#!/usr/bin/env bash
# The whole test suite: set-up, build, fuzz smoke runs, then every CTest case
# (unit, layer guard, CLI integration). .ci/run calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export CCACHE_BASEDIR="$PWD"
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/turnout-ccache}"
JOBS=${JOBS:-2}

# 1. libFuzzer smoke runs of the parsers and the route matcher (clang build of routing/).
FUZZ_DIR=${FUZZ_DIR:-build-fuzz}
if [ ! -f "$FUZZ_DIR/build.ninja" ]; then
  CXX=clang++ cmake -S . -B "$FUZZ_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DTURNOUT_ROUTING_ONLY=ON -DTURNOUT_BUILD_FUZZ=ON -DTURNOUT_BUILD_TESTS=OFF \
    -DTURNOUT_BUILD_BENCH=OFF
fi
cmake --build "$FUZZ_DIR" -j"$JOBS"
FUZZ_SECONDS=${FUZZ_SECONDS:-20}
for f in "$FUZZ_DIR"/tests/fuzz/*_fuzz; do
  name=$(basename "$f" _fuzz)
  corpus="tests/fuzz/corpus/$name"
  work=$(mktemp -d)
  [ -d "$corpus" ] && cp -r "$corpus/." "$work/"
  echo "fuzz: $name for ${FUZZ_SECONDS}s"
  "$f" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=0 \
       "$work" >"$FUZZ_DIR/$name.log" 2>&1 || { tail -40 "$FUZZ_DIR/$name.log"; exit 1; }
  rm -rf "$work"
done

# 2. Build everything and run the suite; CTest's summary is the closing line.
BUILD_DIR=${BUILD_DIR:-build} scripts/build.sh
cd "${BUILD_DIR:-build}"
ctest --output-on-failure -j"$JOBS" --timeout 300
