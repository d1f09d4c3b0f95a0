#!/usr/bin/env bash
# bench/compare/simultaneous.sh end to end, one short round: turnout
# against itself (the same binary both sides) and against haproxy. Each
# round must report both proxies' rates and CPU per request from the same
# window, and turnout against itself must come out near 1: a script that
# measured the wrong process, or one proxy while the other idled, would not.
# Exits 77 (skipped) where the machine has no CPU cgroup to set up (not root).
# Usage: bench_simultaneous_test.sh <turnout-binary> <source-dir> [<turnout-bench-binary>]
set -u
. "$2/tests/integration/support/bench_lib.sh"
need_tools bench_simultaneous_test valgrind callgrind_control nginx haproxy
export BUILD_DIR="$(cd "$(dirname "$BENCH")/../.." && pwd)"
export TURNOUT

# run NAME ARGS...: simultaneous.sh's output in $TMP/NAME.out, its status in RC.
run() {
  local name=$1; shift
  timeout 200 "$SRC/bench/compare/simultaneous.sh" --rounds 1 --duration 2 "$@" >"$TMP/$name.out" 2>&1
  RC=$?
}

run self "$TURNOUT" "$TURNOUT" -- -c8
if [ $RC = 2 ] && grep -q "no CPU cgroup" "$TMP/self.out"; then
  echo "bench_simultaneous_test: no CPU cgroup here (needs root): skipped"
  exit 77
fi
[ $RC = 0 ] || fail "self: exited $RC: $(tail -5 "$TMP/self.out")"
line=$(grep '^round 1: ' "$TMP/self.out")
[[ "$line" =~ A\ +([0-9]+)\ rps\ +([0-9.]+)\ us/req.*B\ +([0-9]+)\ rps\ +([0-9.]+)\ us/req.*B/A\ ([0-9.]+) ]] ||
  fail "self: no round line: $(cat "$TMP/self.out")"
if [ -n "${BASH_REMATCH[5]:-}" ]; then
  [ "${BASH_REMATCH[1]}" -gt 100 ] && [ "${BASH_REMATCH[3]}" -gt 100 ] ||
    fail "self: a side served (almost) nothing: $line"
  awk -v r="${BASH_REMATCH[5]}" 'BEGIN { exit !(r > 0.6 && r < 1.6) }' ||
    fail "self: the same binary on both sides came out at B/A ${BASH_REMATCH[5]}: $line"
fi
grep -qE '^median B/A over 1 rounds: [0-9.]+' "$TMP/self.out" || fail "self: no median: $(cat "$TMP/self.out")"

run haproxy "$TURNOUT" haproxy -- -c8
[ $RC = 0 ] || fail "haproxy: exited $RC: $(tail -5 "$TMP/haproxy.out")"
grep -qE '^round 1: A +[0-9]+ rps .* B +[0-9]+ rps .* B/A [0-9.]+$' "$TMP/haproxy.out" ||
  fail "haproxy: no round line: $(cat "$TMP/haproxy.out")"
finish bench_simultaneous_test
