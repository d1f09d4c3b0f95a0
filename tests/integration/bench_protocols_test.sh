#!/usr/bin/env bash
# turnout-bench's HTTP/2 and TLS clients and its connection handling, on
# loopback against nginx: h2c throughput beside h2load, HTTPS throughput
# beside wrk, h2 over TLS (ALPN), routing keys as nginx logs them, streams
# refused after GOAWAY and keep-alive connections the server closed while
# idle (both sent again, never errors), open loop and timeouts over h2c.
# Usage: bench_protocols_test.sh <turnout-binary> <source-dir> [<turnout-bench-binary>]
set -u
. "$2/tests/integration/support/bench_lib.sh"
TOLERANCE=${BENCH_TOLERANCE:-0.25}
need_tools bench_protocols_test nginx h2load wrk openssl python3 curl
[ -x "$BENCH" ] || { echo "bench_protocols_test: no turnout-bench at $BENCH"; exit 1; }
# run NAME ARGS...: turnout-bench that must succeed.
run() {
  bench "$@"
  [ $RC = 0 ] || fail "$1 exited $RC: $(head -c 300 "$TMP/$1.err")"
}

# One nginx: H2 (h2c, keep-alive for ever, /k logs the routing key), GOAWAY
# (h2c, GOAWAY after 50 requests), IDLE (HTTP/1.1, closes idle connections
# after 100 ms without telling), TLS (HTTP/1.1 over TLS only), TLSH2 (h2 and
# http/1.1 over TLS, by ALPN).
: >"$TMP/0"; chmod 755 "$TMP"; chmod 644 "$TMP/0"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$TMP/key.pem" -out "$TMP/cert.pem" -days 1 \
  -subj /CN=localhost >/dev/null 2>&1 || { echo "FAIL: openssl could not make a certificate"; exit 1; }
up=0
for attempt in 1 2 3 4 5; do
  H2=$(freeport); GOAWAY=$(freeport); IDLE=$(freeport); TLS=$(freeport); TLSH2=$(freeport)
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
  ssl_certificate $TMP/cert.pem; ssl_certificate_key $TMP/key.pem;
  server { listen 127.0.0.1:$TLS ssl; keepalive_requests 1000000; root $TMP; location / { } }
  server { listen 127.0.0.1:$TLSH2 ssl http2; keepalive_requests 1000000; root $TMP; location / { } }
}
NGX
  nginx -c "$TMP/nginx.conf" & npid=$!
  for _ in $(seq 1 50); do
    curl -s -o /dev/null "http://127.0.0.1:$IDLE/0" && curl -s --http2-prior-knowledge -o /dev/null "http://127.0.0.1:$H2/0" &&
      curl -sk -o /dev/null "https://127.0.0.1:$TLSH2/0" && up=1 && break
    sleep 0.05
  done
  if [ $up = 1 ]; then pids+=($npid); break; fi
  kill $npid 2>/dev/null; wait $npid 2>/dev/null  # a port was taken meanwhile: others
done
[ $up = 1 ] || { echo "FAIL: nginx did not start: $(cat "$TMP/nginx.err" 2>/dev/null)"; exit 1; }

# --- h2c throughput beside h2load (same -c and -m), median of paired rounds ----
URL="http://127.0.0.1:$H2/0"
h2load -c4 -m8 -D 1 "$URL" >/dev/null 2>&1  # warm nginx up
paired_ratio h2tp 3 "h2load -c4 -m8 -D 2 $URL" --h2 -c4 -m8 -d2s "$URL"
checks "$TMP/h2tp3.json" <<'CHECKS'
h2c echoed :: r["config"]["protocol"] == "h2c" and r["config"]["streams"] == 8 and r["config"]["connections"] == 4
all 200, no errors :: r["status"] == {"200": r["requests"]} and r["errors"]["total"] == 0 and r["requests"] > 1000
one connection each :: r["connections_opened"] == 4
bytes per stream :: r["bytes_read"] >= r["requests"] * 9
CHECKS
grep -qF "4 connections (h2c, 8 streams each)" "$TMP/h2tp3.out" || fail "summary does not say h2c"

# --- HTTPS: HTTP/1.1 over TLS beside wrk, and h2 by ALPN ---------------------------
paired_ratio tls 3 "wrk -t1 -c8 -d2s https://127.0.0.1:$TLS/0" -t1 -c8 -d2s "https://127.0.0.1:$TLS/0"
checks "$TMP/tls3.json" <<'CHECKS'
https echoed :: r["config"]["protocol"] == "http/1.1" and r["config"]["tls"] is True
all 200 over TLS :: r["status"] == {"200": r["requests"]} and r["errors"]["total"] == 0 and r["connections_opened"] == 8
CHECKS
run tlsh2 --h2 -c2 -m4 -d1 "https://127.0.0.1:$TLSH2/0"
checks "$TMP/tlsh2.json" <<'CHECKS'
h2 over TLS :: r["config"]["protocol"] == "h2" and r["status"] == {"200": r["requests"]} and r["requests"] > 100 and r["errors"]["total"] == 0
CHECKS
"$BENCH" --h2 -c1 -d1 "https://127.0.0.1:$TLS/0" >/dev/null 2>"$TMP/err"; rc=$?
[ $rc = 2 ] && grep -qF "cannot connect to https://127.0.0.1:$TLS/0 (127.0.0.1:$TLS: TLS handshake: " "$TMP/err" ||
  fail "--h2 against a TLS server without h2: rc $rc $(cat "$TMP/err")"
"$BENCH" -c1 -d1 "https://127.0.0.1:$IDLE/0" >"$TMP/plain.out" 2>"$TMP/err"; rc=$?
[ $rc = 2 ] && grep -qF "TLS handshake: " "$TMP/err" ||
  fail "https against plain HTTP: rc $rc $(cat "$TMP/err") $(head -c 600 "$TMP/plain.out")"

# --- routing keys over h2c, as nginx logged them ------------------------------------
: >"$TMP/keys.log"
run h2keys --h2 -t2 -c2 -m4 -n 1000 --key-mix baseline=90,feat-a=5,feat-b=5 "http://127.0.0.1:$H2/k"
run h2plain --h2 -c1 -m2 -n 100 --key-mix baseline=1,feat-c=1 --key-header x-turnout-routing-key "http://127.0.0.1:$H2/k"
counts=$(sort "$TMP/keys.log" | uniq -c | awk '{print $2"="$1}' | sort | tr '\n' ' ')
echo "nginx logged (baggage|x-turnout-routing-key): $counts"
[ "$counts" = "-|-=950 -|feat-c=50 turnout-routing-key=feat-a|-=50 turnout-routing-key=feat-b|-=50 " ] ||
  fail "routing keys over h2c: got '$counts'"
checks "$TMP/h2keys.json" <<'CHECKS'
key counts :: [(k["key"], k["requests"]) for k in r["keys"]] == [("baseline", 900), ("feat-a", 50), ("feat-b", 50)]
CHECKS

# --- GOAWAY after 50 requests: refused streams go again on a new connection -------
run goaway --h2 -c2 -m8 -n 2000 "http://127.0.0.1:$GOAWAY/0"
checks "$TMP/goaway.json" <<'CHECKS'
every request answered :: r["requests"] == 2000 and r["errors"]["total"] == 0 and r["status"] == {"200": 2000}
a connection per 50 requests :: r["connections_opened"] >= 40
CHECKS
# Open loop: the refused streams keep their intended time, so the window
# still holds exactly rate x duration requests.
run goawayopen --h2 -c2 -m8 -R 1000 -d 1 "http://127.0.0.1:$GOAWAY/0"
checks "$TMP/goawayopen.json" <<'CHECKS'
every request due in the window answered :: r["requests"] == 1000 and r["errors"]["total"] == 0 and r["connections_opened"] >= 18
CHECKS

# --- HTTP/1.1 keep-alive closed by the server while idle: sent again -------------
run idle -c2 -R 10 -d 2 "http://127.0.0.1:$IDLE/0"
checks "$TMP/idle.json" <<'CHECKS'
no errors from stale connections :: r["errors"]["total"] == 0 and r["requests"] == 20
the server's closes were seen :: r["connections_opened"] >= 10
CHECKS

# --- h2c open loop ------------------------------------------------------------------
run h2open --h2 -c2 -m4 -R 1000 -d 2 "$URL"
checks "$TMP/h2open.json" <<'CHECKS'
every request due in the window :: r["requests"] == 2000 and r["errors"]["total"] == 0 and r["rps"] == 1000
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

finish bench_protocols_test
