#!/usr/bin/env bash
# Runs every example's run.sh with the built turnout and checks the lines
# its README promises (STYLE.md R15: examples run as they are).
set -u
BIN=${1:?usage: examples_test.sh TURNOUT SOURCE_DIR}
SRC=${2:?usage: examples_test.sh TURNOUT SOURCE_DIR}
failures=0
expect() {  # expect OUTPUT_FILE PATTERN
  if ! grep -qF -- "$2" "$1"; then
    echo "FAIL: expected a line containing: $2"; failures=$((failures + 1))
  fi
}
out=$(mktemp); out2=$(mktemp)
trap 'rm -f "$out" "$out2"' EXIT

timeout 60 "$SRC/examples/sandbox-routing/run.sh" "$BIN" >"$out" 2>&1 || { echo "FAIL: sandbox-routing/run.sh exited $?"; cat "$out"; failures=$((failures + 1)); }
expect "$out" '-> {"service": "reviews", "path": "/reviews/1", "routing_key": null}'
expect "$out" '[baggage: userId=7,turnout-routing-key=feat-x] -> {"service": "reviews-feat-x"'
expect "$out" '[baggage: turnout-routing-key=feat-x]      -> {"service": "ratings", "path": "/ratings/1", "routing_key": "feat-x"}'
expect "$out" '[tracestate: congo=t61rcWkgMzE,turnout=feat-y] -> {"service": "ratings-feat-y"'
expect "$out" '[baggage: turnout-routing-key=feat-x;;broken] -> {"service": "reviews", "path": "/reviews/1", "routing_key": null}'
expect "$out" 'HTTP 404 (no route)'
expect "$out" 'http.ingress.routing_key.malformed_baggage: 1'

timeout 60 "$SRC/examples/standalone/run.sh" "$BIN" >"$out2" 2>&1 || { echo "FAIL: standalone/run.sh exited $?"; cat "$out2"; failures=$((failures + 1)); }
expect "$out2" 'GET /              -> 200 served by backend 1'
expect "$out2" 'GET /              -> 200 served by backend 2'
expect "$out2" 'GET /hello         -> 200 hello from turnout'
expect "$out2" 'GET /healthz       -> 200'
expect "$out2" '"GET / HTTP/1.1" 200 - 0 20'
expect "$out2" 'http.standalone.downstream_rq_2xx: 4'

if [ "$failures" -ne 0 ]; then
  echo "examples_test: $failures failure(s)"
  echo "--- sandbox-routing/run.sh:"; cat "$out"
  echo "--- standalone/run.sh:"; cat "$out2"; exit 1
fi
echo "examples_test: all passed"
