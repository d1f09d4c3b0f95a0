#!/usr/bin/env bash
# turnout-bench end to end on loopback: against nginx beside wrk (throughput
# within a tolerance), its JSON report, the routing-key mix as the backend
# sees it, coordinated omission (a backend that stalls once), timeouts,
# command-line errors and compare mode.
# Usage: bench_test.sh <turnout-binary> <source-dir> [<turnout-bench-binary>]
# (the third defaults to the build tree's bench/turnout_bench/turnout-bench).
set -u
. "$2/tests/integration/support/bench_lib.sh"
BACKEND="$SRC/tests/integration/support/bench_backend.py"
# Throughput of turnout-bench against wrk's, same connections and threads:
# the ratio must be within 1 +- TOLERANCE (a 2-core machine shared with builds
# is noisy; a harness that is really slower or faster than wrk shows up
# well outside it).
TOLERANCE=${BENCH_TOLERANCE:-0.25}
need_tools bench_test nginx wrk python3
[ -x "$BENCH" ] || { echo "bench_test: no turnout-bench at $BENCH"; exit 1; }

# backend NAME ARGS...: starts bench_backend.py; sets PORT.
backend() {
  local name=$1; shift
  rm -f "$TMP/$name.port"
  python3 "$BACKEND" "$TMP/$name.port" "$@" & pids+=($!)
  for _ in $(seq 1 100); do [ -s "$TMP/$name.port" ] && break; sleep 0.05; done
  PORT=$(cat "$TMP/$name.port" 2>/dev/null)
  [ -n "$PORT" ] || { fail "backend $name did not start"; PORT=1; }
}
# --- 1. command line ---------------------------------------------------------
"$BENCH" --help >"$TMP/help" 2>&1 || fail "--help exited non-zero"
grep -q -- "--key-mix" "$TMP/help" || fail "--help does not document --key-mix"
"$BENCH" -t 0 http://127.0.0.1:1/ 2>"$TMP/err"; rc=$?
[ $rc = 2 ] || fail "-t 0 exited $rc, want 2"
grep -qF "turnout-bench: -t/--threads: expected a whole number from 1 to 1024, got '0'" "$TMP/err" ||
  fail "bad -t message: $(cat "$TMP/err")"
"$BENCH" --frobnicate http://127.0.0.1:1/ 2>"$TMP/err"; rc=$?
[ $rc = 2 ] && grep -qF "unknown flag '--frobnicate'" "$TMP/err" || fail "unknown flag: rc $rc $(cat "$TMP/err")"
CLOSED=$(freeport)
"$BENCH" -d 1 "http://127.0.0.1:$CLOSED/" >"$TMP/out" 2>"$TMP/err"; rc=$?
[ $rc = 2 ] || fail "unreachable target exited $rc, want 2"
grep -qF "turnout-bench: cannot connect to http://127.0.0.1:$CLOSED/ (127.0.0.1:$CLOSED: Connection refused)" "$TMP/err" ||
  fail "unreachable target message: $(cat "$TMP/err")"

# --- 2. throughput beside wrk, against nginx ---------------------------------
head -c 0 /dev/zero >"$TMP/0"; chmod 755 "$TMP"; chmod 644 "$TMP/0"
NGINX_UP=0
for attempt in 1 2 3 4 5; do
  NGX=$(freeport)
  cat >"$TMP/nginx.conf" <<NGX
worker_processes 1; daemon off; pid $TMP/nginx.pid; error_log $TMP/nginx.err;
events { worker_connections 1024; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$NGX; root $TMP; location / { } } }
NGX
  nginx -c "$TMP/nginx.conf" & npid=$!
  for _ in $(seq 1 50); do curl -s -o /dev/null "http://127.0.0.1:$NGX/0" && NGINX_UP=1 && break; sleep 0.05; done
  if [ $NGINX_UP = 1 ]; then pids+=($npid); break; fi
  kill $npid 2>/dev/null; wait $npid 2>/dev/null  # the port was taken meanwhile: another
done
if [ $NGINX_UP = 1 ]; then
  URL="http://127.0.0.1:$NGX/0"
  wrk -t1 -c32 -d1s "$URL" >/dev/null  # warm nginx up
  paired_ratio tp 5 "wrk -t1 -c32 -d2s $URL" -t1 -c32 -d2s "$URL"
  # The JSON report of the last round, field by field.
  checks "$TMP/tp5.json" <<'CHECKS'
tool :: r["tool"] == "turnout-bench" and r["format"] == 1 and r["label"] == r["target"]
config echoed :: r["config"]["mode"] == "closed-loop" and r["config"]["threads"] == 1 and r["config"]["connections"] == 32 and r["config"]["rate"] is None and r["config"]["duration_s"] == 2
window :: abs(r["duration_s"] - 2) < 0.01 and r["window"] == "completion-time" and r["drain_s"] == 0
rps is requests over the window :: abs(r["rps"] - r["requests"] / r["duration_s"]) < 1
all 200 :: r["status"] == {"200": r["requests"]} and r["errors"]["total"] == 0
percentiles ordered :: all(r["latency"]["us"][a] <= r["latency"]["us"][b] for a, b in zip(["min","p50","p75","p90","p99","p99.9","p99.99"], ["p50","p75","p90","p99","p99.9","p99.99","max"]))
mean within range :: r["latency"]["us"]["min"] <= r["latency"]["us"]["mean"] <= r["latency"]["us"]["max"] and r["latency"]["us"]["stdev"] > 0
histogram holds every response :: sum(b[2] for b in r["latency"]["histogram"]["buckets"]) == r["requests"] == r["latency"]["histogram"]["count"]
bytes read :: r["bytes_read"] > r["requests"] * 100 and r["bytes_per_s"] > 0
keys :: r["keys"] == [{"key": "baseline", "weight": 1, "requests": r["requests"]}]
connections :: r["connections_opened"] == 32 and r["late"] == 0
CHECKS
  grep -q "Requests/sec:" "$TMP/tp5.out" || fail "no text summary on stdout"
  [ -s "$TMP/tp5.err" ] && fail "stderr is not empty without a terminal: $(head -c 300 "$TMP/tp5.err")"

  # -n: exactly that many responses; a run always ends near its deadline.
  SECONDS=0
  bench n500 -t2 -c4 -n 500 "$URL"
  bench d1 -t2 -c4 -d 1 --warmup 500ms "$URL"
  [ $SECONDS -le 4 ] || fail "-n 500 and -d 1 after 500ms took ${SECONDS}s"
  checks "$TMP/n500.json" <<'CHECKS'
-n 500 :: r["requests"] == 500 and r["config"]["requests_limit"] == 500 and r["config"]["duration_s"] is None
CHECKS
  checks "$TMP/d1.json" <<'CHECKS'
-d 1 after a warm-up :: abs(r["duration_s"] - 1) < 0.01 and r["config"]["warmup_s"] == 0.5 and r["config"]["threads"] == 2
CHECKS
else
  fail "nginx did not start: $(cat "$TMP/nginx.err" 2>/dev/null)"
fi

# --- 3. routing-key mix, counted by the backend ------------------------------
backend keys
bench keys -t2 -c4 -n 1000 --key-mix baseline=90,feat-a=5,feat-b=5 "http://127.0.0.1:$PORT/k"
curl -s "http://127.0.0.1:$PORT/__counts" >"$TMP/keys.counts"
echo "backend saw: $(cat "$TMP/keys.counts")"
checks "$TMP/keys.counts" <<'CHECKS'
backend counts 900/50/50 in baggage :: r["requests"] == 1000 and r["keys"] == {"-": 900, "feat-a": 50, "feat-b": 50}
CHECKS
checks "$TMP/keys.json" <<'CHECKS'
report counts per key :: [(k["key"], k["weight"], k["requests"]) for k in r["keys"]] == [("baseline", 90, 900), ("feat-a", 5, 50), ("feat-b", 5, 50)]
CHECKS
grep -qF "Routing keys (baggage): baseline=900 (90.0%) feat-a=50 (5.0%) feat-b=50 (5.0%)" "$TMP/keys.out" ||
  fail "text summary lacks the key counts: $(cat "$TMP/keys.out")"
backend plainkey
bench plainkey -n 200 --key-mix baseline=1,feat-c=1 --key-header x-turnout-routing-key --path /a,/b "http://127.0.0.1:$PORT/"
curl -s "http://127.0.0.1:$PORT/__counts" >"$TMP/plainkey.counts"
# --json - : the report alone on stdout, the summary on stderr.
"$BENCH" -n 50 --json - "http://127.0.0.1:$PORT/" >"$TMP/stdout.json" 2>"$TMP/stdout.err" || fail "--json - exited $?"
checks "$TMP/stdout.json" <<'CHECKS'
--json - writes the report to stdout :: r["requests"] == 50
CHECKS
grep -q "Requests/sec:" "$TMP/stdout.err" || fail "--json - did not move the summary to stderr"
checks "$TMP/plainkey.counts" <<'CHECKS'
plain header key :: r["keys"] == {"-": 100, "feat-c": 100}
CHECKS
checks "$TMP/plainkey.json" <<'CHECKS'
per-route counts :: [(x["path"], x["requests"]) for x in r["routes"]] == [("/a", 100), ("/b", 100)] and r["routes"][1]["latency_us"]["p50"] > 0
key header echoed :: r["config"]["key_header"] == "x-turnout-routing-key"
CHECKS

# --- 4. coordinated omission: a backend that freezes for 1 s once --------------
STALL=1.0
backend stall1 --stall-at 2 --stall-for $STALL
bench closed -c4 -d 5 "http://127.0.0.1:$PORT/"
backend stall2 --stall-at 2 --stall-for $STALL
bench open -c4 -R 200 -d 5 "http://127.0.0.1:$PORT/"
python3 - "$TMP/closed.json" "$TMP/open.json" <<'PY'
import json, sys
c, o = (json.load(open(p)) for p in sys.argv[1:])
print("stall of 1 s: closed loop p99 %.0fus max %.0fus; open loop at 200/s p99 %.0fus p99.9 %.0fus "
      "(uncorrected p99 %.0fus), %d late" % (c["latency"]["us"]["p99"], c["latency"]["us"]["max"],
      o["latency"]["us"]["p99"], o["latency"]["us"]["p99.9"], o["uncorrected_latency"]["us"]["p99"], o["late"]))
PY
# Closed loop: the four stuck requests are well under 1% of the run.
checks "$TMP/closed.json" <<CHECKS
closed loop saw the stall in its max :: r["latency"]["us"]["max"] >= 0.8e6 * $STALL
closed loop p99 stays low :: r["latency"]["us"]["p99"] < 0.1e6 * $STALL and r["errors"]["total"] == 0
CHECKS
# Open loop: every request due during the freeze waits for it.
checks "$TMP/open.json" <<CHECKS
open loop p99 shows the stall :: r["latency"]["us"]["p99"] >= 0.6e6 * $STALL
open loop p99.9 shows the stall :: r["latency"]["us"]["p99.9"] >= 0.8e6 * $STALL
open loop counts late requests :: r["late"] >= 50 and r["config"]["mode"] == "open-loop" and r["latency"]["basis"] == "intended-send-time"
open loop kept the rate :: r["requests"] == 1000 and r["errors"]["total"] == 0 and r["rps"] == 200
uncorrected latency hides it :: r["uncorrected_latency"]["us"]["p99"] < 0.5e6 * $STALL
CHECKS
grep -q "Late requests" "$TMP/open.out" || fail "open-loop summary lacks late requests"

# --- 4b. a freeze across the end of an open-loop window --------------------------
# The window is [1 s, 3 s) of the timetable: requests 200..599 at 200/s,
# exactly 400. The backend freezes from 2.5 s to 3.5 s after the first
# request, so the ~100 requests due in the window's last 0.5 s are answered
# only after it has closed, 0.5 to 1 s late. They belong to the window all
# the same: none may be lost, and the freeze must be in the tail.
backend stall3 --stall-at 2.5 --stall-for $STALL
bench openend -c4 -R 200 --warmup 1 -d 2 "http://127.0.0.1:$PORT/"
python3 - "$TMP/openend.json" <<'PY'
import json, sys
o = json.load(open(sys.argv[1]))
print("stall of 1 s from 0.5 s before the end of an open-loop window: %d requests (%d errors), "
      "p90 %.0fus p99 %.0fus max %.0fus, %d late, drained %.2fs" % (o["requests"],
      o["errors"]["total"], o["latency"]["us"]["p90"], o["latency"]["us"]["p99"],
      o["latency"]["us"]["max"], o["late"], o.get("drain_s", -1)))
PY
checks "$TMP/openend.json" <<CHECKS
every request due in the window is counted :: r["requests"] == 400 and r["errors"]["total"] == 0 and r["status"] == {"200": 400}
rps is the offered rate :: abs(r["rps"] - 200) < 2 and abs(r["duration_s"] - 2) < 0.01
the freeze at the end is in the tail :: r["latency"]["us"]["p99"] >= 0.8e6 * $STALL and r["latency"]["us"]["p90"] >= 0.5e6 * $STALL
requests due in the frozen half second went out late :: r["late"] >= 80
the report says what the window counts :: r["window"] == "intended-send-time" and 0.3 * $STALL <= r["drain_s"] <= 2 * $STALL
CHECKS

# --- 5. timeouts -----------------------------------------------------------------
backend silent --silent
bench silent -c2 -d 1 --timeout 200ms "http://127.0.0.1:$PORT/"
[ $RC = 1 ] || fail "a target that never answers: exit $RC, want 1"
checks "$TMP/silent.json" <<'CHECKS'
timeouts counted :: r["errors"]["timeout"] >= 4 and r["requests"] == 0
CHECKS
grep -qF "no responses in the measurement window" "$TMP/silent.err" || fail "no-response message missing"

# --- 6. progress line only on a terminal ------------------------------------------
if command -v script >/dev/null && [ $NGINX_UP = 1 ]; then
  timeout 30 script -qec "$BENCH -c2 -d 2 $URL" /dev/null </dev/null >"$TMP/tty.out" 2>&1 ||
    fail "turnout-bench on a terminal did not end by itself"
  grep -q "req/s, 0 errors" "$TMP/tty.out" || fail "no progress line on a terminal: $(head -c 400 "$TMP/tty.out")"
fi

# --- 7. compare -----------------------------------------------------------------
"$BENCH" compare "$TMP/closed.json" "$TMP/open.json" --svg "$TMP/c.svg" --md "$TMP/c.md" \
  --title "stall test" 2>"$TMP/err" || fail "compare failed: $(cat "$TMP/err")"
[ "$(grep -c '<polyline class="latency"' "$TMP/c.svg")" = 2 ] || fail "compare SVG lacks two curves"
[ "$(grep -c '<rect class="rps"' "$TMP/c.svg")" = 2 ] || fail "compare SVG lacks two bars"
python3 -c "import sys, xml.dom.minidom; xml.dom.minidom.parse(sys.argv[1])" "$TMP/c.svg" || fail "compare SVG is not well-formed XML"
grep -q "| open-loop 200/s |" "$TMP/c.md" || fail "compare table lacks the open-loop row: $(cat "$TMP/c.md")"
"$BENCH" compare "$TMP/nope.json" 2>"$TMP/err"; rc=$?
[ $rc = 2 ] && grep -qF "$TMP/nope.json: cannot read the file" "$TMP/err" || fail "compare of a missing file: rc $rc $(cat "$TMP/err")"

finish bench_test
