#!/usr/bin/env bash
# turnout-cp drives @grpc/grpc-js-xds (a foreign xDS client from npm); it and
# turnout route the same gRPC calls alike. The npm packages pinned in
# tests/interop/grpc-js-xds/package-lock.json are installed once into the build
# directory ($TURNOUT_BUILD_DIR/interop/grpc-js-xds) with `npm ci`.
# Usage: grpc_xds_interop_test.sh <turnout-binary> <source-dir>; turnout-cp from $TURNOUT_CP.
set -euo pipefail
cp_bin=${TURNOUT_CP:-$(dirname "$1")/../config/control_plane/turnout-cp}
src=$2/tests/interop/grpc-js-xds
dir=${TURNOUT_BUILD_DIR:-$(dirname "$1")/..}/interop/grpc-js-xds
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "grpc_xds_interop_test: node and npm are needed (scripts/setup.sh installs them)" >&2
  exit 1
fi
mkdir -p "$dir"
# Reinstall when the pinned lockfile changed; client.js is always the source's.
if ! cmp -s "$src/package-lock.json" "$dir/package-lock.json" || [ ! -d "$dir/node_modules" ]; then
  cp "$src/package.json" "$src/package-lock.json" "$dir/"
  (cd "$dir" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error) || {
    echo "grpc_xds_interop_test: npm ci failed (the npm registry must be reachable once)" >&2
    exit 1
  }
fi
cp "$src/client.js" "$dir/"
exec /usr/bin/python3 "$2/tests/integration/grpc_xds_interop_test.py" "$1" "$cp_bin" "$dir"
