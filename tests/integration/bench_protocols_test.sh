#!/usr/bin/env bash
# turnout-bench's h2c client and its connection handling, on loopback against
# nginx: throughput beside h2load, routing keys as nginx logs them, streams
# refused after GOAWAY and keep-alive connections the server closed while
# idle (both sent again, never errors), open loop and timeouts over h2c.
# Usage: bench_protocols_test.sh <turnout-binary> <source-dir> [<turnout-bench-binary>]
set -u
SRC="$2"
BENCH="${3:-$(cd "$(dirname "$1")/.." && pwd)/bench/turnout_bench/turnout-bench}"
TOLERANCE=${BENCH_TOLERANCE:-0.25}
TMP="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
for tool in nginx h2load python3 curl; do
  command -v $tool >/dev/null || { echo "bench_protocols_test: $tool is missing (scripts/setup.sh)"; exit 1; }
done
[ -x "$BENCH" ] || { echo "bench_protocols_test: no turnout-bench at $BENCH"; exit 1; }

# checks FILE < LINES: "description :: python condition over the report r".
checks() {
  local out
  out=$(python3 - "$1" 3<&0 <<'PY'
import json, os, sys
r = json.load(open(sys.argv[1]))
for line in os.fdopen(3):
    if "::" not in line:
        continue
    desc, cond = line.split("::", 1)
    try:
        ok = bool(eval(cond, {"r": r}))
    except Exception as e:
        ok = False
        desc += " (%r)" % e
    if not ok:
        print("FAIL: %s: %s" % (desc.strip(), cond.strip()))
PY
)
  if [ -n "$out" ]; then
    echo "$out"
    failures=$((failures + $(echo "$out" | grep -c '^FAIL')))
  fi
}
bench() {  # bench NAME ARGS...: --json $TMP/NAME.json, output in $TMP/NAME.out/.err
  local name=$1; shift
  timeout 60 "$BENCH" --json "$TMP/$name.json" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err"
  RC=$?
  [ $RC = 0 ] || fail "$name exited $RC: $(head -c 300 "$TMP/$name.err")"
}
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# One nginx: H2 (h2c, keep-alive for ever, /k logs the routing key), GOAWAY
# (h2c, GOAWAY after 50 requests), IDLE (HTTP/1.1, closes idle connections
# after 100 ms without telling).
: >"$TMP/0"; chmod 755 "$TMP"; chmod 644 "$TMP/0"
up=0
for attempt in 1 2 3 4 5; do
  H2=$(freeport); GOAWAY=$(freeport); IDLE=$(freeport)
  cat >"$TMP/nginx.conf" <<NGX
worker_processes 1; daemon off; pid $TMP/nginx.pid; error_log $TMP/nginx.err;
events { worker_connections 1024; }
http {
  access_log off;
  log_format keys '\$http_baggage|\$http_x_turnout_routing_key';
  server { listen 127.0.0.1:$H2 http2; keepalive_requests 1000000; root $TMP;
    location / { }
    location = /k { access_log $TMP/keys.log keys; return 200 "ok\n"; } }
  server { listen 127.0.0.1:$GOAWAY http2; keepalive_requests 50; root $TMP; location / { } }
  server { listen 127.0.0.1:$IDLE; keepalive_timeout 100ms; root $TMP; location / { } }
}
NGX
  nginx -c "$TMP/nginx.conf" & npid=$!
  for _ in $(seq 1 50); do
    curl -s -o /dev/null "http://127.0.0.1:$IDLE/0" && curl -s --http2-prior-knowledge -o /dev/null "http://127.0.0.1:$H2/0" && up=1 && break
    sleep 0.05
  done
  if [ $up = 1 ]; then pids+=($npid); break; fi
  kill $npid 2>/dev/null; wait $npid 2>/dev/null  # a port was taken meanwhile: others
done
[ $up = 1 ] || { echo "FAIL: nginx did not start: $(cat "$TMP/nginx.err" 2>/dev/null)"; exit 1; }

# --- h2c throughput beside h2load (same -c and -m), median of paired rounds ----
URL="http://127.0.0.1:$H2/0"
h2load -c4 -m8 -D 1 "$URL" >/dev/null 2>&1  # warm nginx up
rates=""
for round in 1 2 3; do
  h=$(h2load -c4 -m8 -D 2 "$URL" 2>/dev/null | sed -n 's/^finished in [^,]*, \([0-9.]*\) req\/s.*/\1/p')
  bench h2tp$round --h2 -c4 -m8 -d2s "$URL"
  b=$(sed -n 's/^Requests\/sec: *//p' "$TMP/h2tp$round.out")
  echo "h2c throughput round $round: h2load ${h:-?} req/s, turnout-bench ${b:-?} req/s"
  rates="$rates ${h:-0}/${b:-0}"
done
ratio=$(python3 -c "
import statistics, sys
pairs = [tuple(map(float, x.split('/'))) for x in sys.argv[1:]]
print(round(statistics.median(b / max(h, 1) for h, b in pairs), 3))" $rates)
echo "turnout-bench / h2load h2c throughput ratio (median of 3 rounds, -c4 -m8, 2 s, against nginx): $ratio"
python3 -c "import sys; sys.exit(0 if abs($ratio - 1) <= $TOLERANCE else 1)" ||
  fail "turnout-bench/h2load throughput ratio $ratio is outside 1 +- $TOLERANCE"
checks "$TMP/h2tp3.json" <<'CHECKS'
h2c echoed :: r["config"]["protocol"] == "h2c" and r["config"]["streams"] == 8 and r["config"]["connections"] == 4
all 200, no errors :: r["status"] == {"200": r["requests"]} and r["errors"]["total"] == 0 and r["requests"] > 1000
one connection each :: r["connections_opened"] == 4
bytes per stream :: r["bytes_read"] >= r["requests"] * 9
CHECKS
grep -qF "4 connections (h2c, 8 streams each)" "$TMP/h2tp3.out" || fail "summary does not say h2c"

# --- routing keys over h2c, as nginx logged them ------------------------------------
: >"$TMP/keys.log"
bench h2keys --h2 -t2 -c2 -m4 -n 1000 --key-mix baseline=90,feat-a=5,feat-b=5 "http://127.0.0.1:$H2/k"
bench h2plain --h2 -c1 -m2 -n 100 --key-mix baseline=1,feat-c=1 --key-header x-turnout-routing-key "http://127.0.0.1:$H2/k"
counts=$(sort "$TMP/keys.log" | uniq -c | awk '{print $2"="$1}' | sort | tr '\n' ' ')
echo "nginx logged (baggage|x-turnout-routing-key): $counts"
[ "$counts" = "-|-=950 -|feat-c=50 turnout-routing-key=feat-a|-=50 turnout-routing-key=feat-b|-=50 " ] ||
  fail "routing keys over h2c: got '$counts'"
checks "$TMP/h2keys.json" <<'CHECKS'
key counts :: [(k["key"], k["requests"]) for k in r["keys"]] == [("baseline", 900), ("feat-a", 50), ("feat-b", 50)]
CHECKS

# --- GOAWAY after 50 requests: refused streams go again on a new connection -------
bench goaway --h2 -c2 -m8 -n 2000 "http://127.0.0.1:$GOAWAY/0"
checks "$TMP/goaway.json" <<'CHECKS'
every request answered :: r["requests"] == 2000 and r["errors"]["total"] == 0 and r["status"] == {"200": 2000}
a connection per 50 requests :: r["connections_opened"] >= 40
CHECKS

# --- HTTP/1.1 keep-alive closed by the server while idle: sent again -------------
bench idle -c2 -R 10 -d 2 "http://127.0.0.1:$IDLE/0"
checks "$TMP/idle.json" <<'CHECKS'
no errors from stale connections :: r["errors"]["total"] == 0 and abs(r["requests"] - 20) <= 2
the server's closes were seen :: r["connections_opened"] >= 10
CHECKS

# --- h2c open loop ------------------------------------------------------------------
bench h2open --h2 -c2 -m4 -R 1000 -d 2 "$URL"
checks "$TMP/h2open.json" <<'CHECKS'
rate kept :: abs(r["requests"] - 2000) <= 40 and r["errors"]["total"] == 0
corrected and uncorrected :: r["latency"]["basis"] == "intended-send-time" and r["uncorrected_latency"]["us"]["p50"] <= r["latency"]["us"]["p50"]
CHECKS

# --- h2c timeouts: a server that accepts and never answers --------------------------
rm -f "$TMP/silent.port"
python3 "$SRC/tests/integration/support/bench_backend.py" "$TMP/silent.port" --silent & pids+=($!)
for _ in $(seq 1 100); do [ -s "$TMP/silent.port" ] && break; sleep 0.05; done
timeout 30 "$BENCH" --h2 -c1 -m4 -d 1 --timeout 200ms --json "$TMP/h2silent.json" \
  "http://127.0.0.1:$(cat "$TMP/silent.port")/" >/dev/null 2>&1
[ $? = 1 ] || fail "h2c against a silent server should exit 1"
checks "$TMP/h2silent.json" <<'CHECKS'
h2c timeouts counted :: r["errors"]["timeout"] >= 4 and r["requests"] == 0
CHECKS

if [ $failures -ne 0 ]; then
  echo "$failures failure(s)"
  exit 1
fi
echo "bench_protocols_test: all passed"
