#!/usr/bin/env bash
# bench/compare/instructions.sh end to end with tiny counts: each proxy
# configuration it writes (plain HTTP/1.1 and h2c, --tls, --h2-origin, and
# haproxy and nghttpx beside turnout) starts, answers every counted request
# 200 (the script checks that) and yields a count. The counts themselves
# are not checked (valgrind on a busy 2-core machine); that the script runs
# is: a bash expansion once left every turnout config it wrote unparsable.
# Usage: instructions_test.sh <turnout-binary> <source-dir> [<turnout-bench-binary>]
set -u
. "$2/tests/integration/support/bench_lib.sh"
need_tools instructions_test valgrind callgrind_control nginx haproxy nghttpx openssl curl
export BUILD_DIR="$(cd "$(dirname "$BENCH")/../.." && pwd)"
export TURNOUT

# count NAME ARGS...: runs instructions.sh with ARGS; its output in $TMP/NAME.out.
count() {
  local name=$1; shift
  timeout 280 "$SRC/bench/compare/instructions.sh" -n 200 --top 0 "$@" >"$TMP/$name.out" 2>&1
  local rc=$?
  [ $rc = 0 ] || { fail "$name: instructions.sh exited $rc: $(tail -5 "$TMP/$name.out")"; return; }
  grep -qE '^turnout-bench .*: [0-9]+ instructions per request$' "$TMP/$name.out" ||
    fail "$name: no count for turnout: $(cat "$TMP/$name.out")"
}

count h1 --haproxy
grep -qE '^turnout / haproxy: [0-9.]+x ' "$TMP/h1.out" || fail "h1: no ratio to haproxy: $(cat "$TMP/h1.out")"
count tls --tls --nghttpx -- --h2 -c2 -m1
grep -qE '^  \(handshakes left out: [0-9]+ per request\)$' "$TMP/tls.out" ||
  fail "tls: the handshakes are not accounted for: $(cat "$TMP/tls.out")"
grep -qE '^turnout / nghttpx: [0-9.]+x ' "$TMP/tls.out" || fail "tls: no ratio to nghttpx: $(cat "$TMP/tls.out")"
count h2up --h2-origin -- --h2 -c2 -m4
finish instructions_test
