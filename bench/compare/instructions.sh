#!/usr/bin/env bash
# Instructions per proxied request, counted by callgrind: a figure that does
# not move with the machine's load, for comparing two builds or settings on
# a shared VM where CPU time is too noisy to see a 5 % change.
#
#   bench/compare/instructions.sh [-n REQUESTS] [--top N] [-- turnout-bench args]
#       default: 20000 requests, HTTP/1.1 keep-alive, 32 connections
#   bench/compare/instructions.sh -- --h2 -c4 -m100      # h2c, 4 x 100 streams
#   ENV="GLIBC_TUNABLES=glibc.malloc.tcache_count=1000" bench/compare/instructions.sh
#   PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 bench/compare/instructions.sh
#   TURNOUT=/path/to/other/turnout bench/compare/instructions.sh   (another build)
#   KEEP=/tmp/cg.out bench/compare/instructions.sh   (keeps the callgrind file, e.g. for
#                                                     callgrind_annotate --tree=caller)
#   KEEP_DIR=/tmp/cg bench/compare/instructions.sh --haproxy   (keeps every proxy's file there,
#                                                     as <proxy>.out)
#   KEEP_WORK=1 bench/compare/instructions.sh   (keeps the work directory: configs and logs)
#   CACHESIM=1 bench/compare/instructions.sh --haproxy [-- --h2 -c32 -m1]
#       also simulates the caches and branch predictors (callgrind's
#       --cache-sim=yes --branch-sim=yes; slower) and prints misses and
#       mispredictions per request: what instructions alone do not show
#       where two programs of the same count differ in CPU time
#   CACHESIM=1 CACHE_GEOMETRY="--D1=1048576,16,64 --LL=8388608,16,64" \
#     bench/compare/instructions.sh --nghttpx -- --h2 -c4 -m100
#       the same with a 1 MiB first-level data cache: the misses an L2 of
#       that size would take. callgrind models two levels only, and its
#       default L1 (32 KiB) misses on any request's state once a few
#       requests are in flight; this shows what does not fit in L2, where a
#       miss costs 10-40x more (2026-12-07, h2c 4 x 100: turnout 165 misses
#       per request, nghttpx 34, at 1.05x its instructions and 1.3x its CPU)
#   bench/compare/instructions.sh --haproxy [-- --h2 -c32 -m1]
#       also counts haproxy (nbthread 1, the same origin, the same load) in the
#       same run and prints turnout's instructions as a ratio of haproxy's
#   bench/compare/instructions.sh --tls --haproxy --nghttpx [-- --h2 -c32 -m1]
#       the proxies serve TLS (a self-signed RSA 2048 certificate, ALPN h2 and
#       http/1.1, as bench/compare/run.py's tls-h2 rows) and the load uses
#       https://; the origin stays plaintext HTTP/1.1
#   bench/compare/instructions.sh --nghttpx [-- --h2 -c4 -m100]
#   bench/compare/instructions.sh --h2-origin --haproxy --nghttpx [-- --h2 -c4 -m100]
#       the origin speaks h2c (nginx `listen ... http2`) and every proxy goes to
#       it over HTTP/2 (turnout: an HTTP/2 cluster; haproxy: proto h2;
#       nghttpx: proto=h2): the shape of a sidecar carrying gRPC
#       the same with nghttpx (-n 1, plaintext frontend: HTTP/1.1 and h2c),
#       the best peer of the 100-stream h2c row (bench/results)
#
# turnout (--concurrency 1) proxies to an nginx origin on loopback; both run
# on ephemeral ports in a work directory this script removes. callgrind
# counts only the measured requests (instrumentation is switched on after a
# warm-up of 2,000 and off before the process exits). Prints instructions
# per request and the functions with the most instructions of their own.
# Instruction counts are not CPU time (cache misses, branch mispredictions
# and syscalls are not in them): confirm a change with bench/compare/run.py
# on a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
B=${BUILD_DIR:-build}
TURNOUT=${TURNOUT:-$B/proxy/turnout}  # another build of it, to compare
N=20000
TOP=25
HAPROXY=
NGHTTPX=
TLS=
H2_ORIGIN=
while [ $# -gt 0 ]; do
  case "$1" in
    -n) N=$2; shift 2 ;;
    --top) TOP=$2; shift 2 ;;
    --haproxy) HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy); shift ;;
    --tls) TLS=1; shift ;;
    --h2-origin) H2_ORIGIN=1; shift ;;
    --nghttpx) NGHTTPX=$(command -v nghttpx || echo /usr/sbin/nghttpx); shift ;;
    --) shift; break ;;
    *) echo "instructions.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ $# -gt 0 ] || set -- -c32
for tool in valgrind callgrind_control callgrind_annotate nginx; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] ||
    { echo "instructions.sh: needs $tool (apt-get install valgrind nginx)" >&2; exit 2; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
# A static PIE (TURNOUT_STATIC_LIBC, the default) has glibc's malloc linked
# in: LD_PRELOAD cannot replace it, and the count would silently be glibc's.
if [ -n "${PRELOAD:-}" ] && ! readelf -lW "$TURNOUT" | grep -q INTERP; then
  echo "instructions.sh: PRELOAD needs a dynamically linked turnout (configure with -DTURNOUT_STATIC_LIBC=OFF)" >&2
  exit 2
fi

WORK=$(mktemp -d)
cleanup() {
  [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
  pkill -f "$WORK/turnout.yaml" 2>/dev/null || true
  pkill -f "$WORK/haproxy.cfg" 2>/dev/null || true
  pkill -f "$WORK/nghttpx.err" 2>/dev/null || true
  [ -n "${KEEP_WORK:-}" ] && echo "kept $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ORIGIN=$(free_port)
SCHEME=http
CURL_K=
TURNOUT_TLS=
HAPROXY_TLS=
NGHTTPX_TLS=(";no-tls")
if [ -n "$TLS" ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" > /dev/null 2>&1
  cat "$WORK/cert.pem" "$WORK/key.pem" > "$WORK/combined.pem"
  SCHEME=https
  CURL_K=-k
  TURNOUT_TLS="
      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            alpn_protocols: [h2, http/1.1]
            tls_certificates:
            - certificate_chain: {filename: $WORK/cert.pem}
              private_key: {filename: $WORK/key.pem}"
  HAPROXY_TLS=" ssl crt $WORK/combined.pem alpn h2,http/1.1"
  NGHTTPX_TLS=("" "$WORK/key.pem" "$WORK/cert.pem")
fi
PROXY=$(free_port)
ADMIN=$(free_port)

cat > "$WORK/nginx.conf" <<EOF
worker_processes 1;
daemon on;
pid $WORK/nginx.pid;
error_log $WORK/nginx.err;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $WORK;
  server { listen 127.0.0.1:$ORIGIN${H2_ORIGIN:+ http2}; location / { return 200 "ok"; } }
}
EOF
"$NGINX" -c "$WORK/nginx.conf"

# (A variable: braces inside a \${H2_ORIGIN:+...} expansion would end it.)
TURNOUT_H2=
if [ -n "$H2_ORIGIN" ]; then
  TURNOUT_H2="
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}"
fi
cat > "$WORK/turnout.yaml" <<EOF
admin: {address: {socket_address: {address: 127.0.0.1, port_value: $ADMIN}}}
static_resources:
  listeners:
  - name: ingress
    address: {socket_address: {address: 127.0.0.1, port_value: $PROXY}}
    filter_chains:
    - $TURNOUT_TLS
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes: [{match: {prefix: "/"}, route: {cluster: origin}}]
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  clusters:
  - name: origin
    connect_timeout: 1s$TURNOUT_H2
    load_assignment:
      cluster_name: origin
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: $ORIGIN}}}}]}]
EOF

H2=
case " $* " in *" --h2 "*) [ -n "$TLS" ] || H2=" proto h2" ;; esac
cat > "$WORK/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
frontend fe
  bind 127.0.0.1:$PROXY$H2$HAPROXY_TLS
  default_backend origin
backend origin
  http-reuse always
  server o 127.0.0.1:$ORIGIN${H2_ORIGIN:+ proto h2}
EOF

# measure NAME READY_URL COMMAND...: runs COMMAND under callgrind, warms up,
# counts N requests of turnout-bench "${BENCH_ARGS[@]}" and leaves the
# instructions per request in $WORK/NAME.per_req, the callgrind file in
# $WORK/NAME.out.
BENCH=$B/bench/turnout_bench/turnout-bench
BENCH_ARGS=("$@")
measure() {
  local name=$1 ready=$2
  shift 2
  # shellcheck disable=SC2086
  env ${PRELOAD:+LD_PRELOAD=$PRELOAD} ${ENV:-} valgrind --tool=callgrind --instr-atstart=no \
    ${CACHESIM:+--cache-sim=yes --branch-sim=yes ${CACHE_GEOMETRY:-}} \
    --callgrind-out-file="$WORK/$name.out" "$@" > "$WORK/$name.log" 2>&1 &
  local vg=$!
  for _ in $(seq 1 300); do
    curl -s $CURL_K -o /dev/null "$ready" && break
    sleep 0.1
  done
  "$BENCH" "${BENCH_ARGS[@]}" -n 2000 "$SCHEME://127.0.0.1:$PROXY/" > /dev/null
  callgrind_control -i on "$vg" > /dev/null 2>&1
  "$BENCH" "${BENCH_ARGS[@]}" -n "$N" "$SCHEME://127.0.0.1:$PROXY/" > "$WORK/$name.bench"
  callgrind_control -i off "$vg" > /dev/null 2>&1
  kill -TERM "$vg"
  wait "$vg" 2>/dev/null || true
  grep -q "Status codes: 200=$N\$" "$WORK/$name.bench" || {
    echo "instructions.sh: $name: not every request was answered 200:" >&2
    cat "$WORK/$name.bench" >&2
    exit 1
  }
  # TLS: the connections of the measured run shake hands in it (turnout-bench
  # opens new ones); that cost, SSL_do_handshake's inclusive count, is left
  # out: the figure is per request on established connections, as in
  # bench/compare/run.py, whose load keeps its warm-up's connections.
  local handshakes=0
  if [ -n "$TLS" ]; then
    handshakes=$(callgrind_annotate --inclusive=yes --auto=no --threshold=100 "$WORK/$name.out" |
      awk '!done && /[:]SSL_do_handshake[ \[]/ {gsub(",", "", $1); print $1; done = 1}')
    handshakes=${handshakes:-0}
  fi
  callgrind_annotate --auto=no "$WORK/$name.out" |
    awk -v n="$N" -v hs="$handshakes" '/PROGRAM TOTALS/ {gsub(",", "", $1); print int(($1 - hs) / n)}' \
    > "$WORK/$name.per_req"
  echo "$handshakes" > "$WORK/$name.handshakes"
  if [ -n "${KEEP_DIR:-}" ]; then mkdir -p "$KEEP_DIR" && cp "$WORK/$name.out" "$KEEP_DIR/"; fi
  if [ -n "${CACHESIM:-}" ]; then
    # Every simulated event per request: Ir, then the cache misses (I1mr,
    # D1mr, D1mw, ILmr, DLmr, DLmw) and branches (Bc/Bcm conditional,
    # Bi/Bim indirect; *m = mispredicted).
    callgrind_annotate --auto=no "$WORK/$name.out" | awk -v n="$N" -v who="$name" '
      /^Events shown:/ { for (i = 3; i <= NF; i++) ev[i - 2] = $i; ne = NF - 2 }
      /PROGRAM TOTALS/ { line = who ":"; k = 0
                         for (i = 1; i <= NF && k < ne; i++) { if ($i ~ /^[0-9,]+$/) { v = $i; gsub(",", "", v)
                           line = line sprintf(" %s %.1f", ev[++k], v / n) } } print line }' \
      > "$WORK/$name.events"
  fi
}

measure turnout "http://127.0.0.1:$ADMIN/ready" \
  "$TURNOUT" -c "$WORK/turnout.yaml" --concurrency 1 -l warning
[ -n "${KEEP:-}" ] && cp "$WORK/turnout.out" "$KEEP"
per_req=$(cat "$WORK/turnout.per_req")
echo "turnout-bench $* -n $N ($SCHEME): $per_req instructions per request"
[ -n "$TLS" ] && echo "  (handshakes left out: $(( $(cat "$WORK/turnout.handshakes") / N )) per request)"
[ -n "${CACHESIM:-}" ] && echo "per request: $(cat "$WORK/turnout.events")"
[ "$TOP" -gt 0 ] && callgrind_annotate --auto=no "$WORK/turnout.out" | sed -n '/file:function/,$p' | sed -n "3,$((TOP + 2))p" |
  awk -v n="$N" '{c=$1; gsub(",", "", c); p=$3; sub(/\)$/, "", p); $1=""; $2=""; $3=""; printf "%8d/req %6s %s\n", c / n, p, substr($0, 4, 150)}'

# peer NAME VERSION: prints a peer's count (measured as NAME) and turnout's ratio to it.
peer() {
  local count
  count=$(cat "$WORK/$1.per_req")
  echo "$1 $2: $count instructions per request"
  [ -n "$TLS" ] && echo "  (handshakes left out: $(( $(cat "$WORK/$1.handshakes") / N )) per request)"
  [ -n "${CACHESIM:-}" ] && echo "per request: $(cat "$WORK/$1.events")"
  awk -v t="$per_req" -v h="$count" -v who="$1" 'BEGIN { printf "turnout / %s: %.2fx (user-space instructions; the kernel and syscalls are not in them)\n", who, t / h }'
}

if [ -n "$HAPROXY" ]; then
  # haproxy answers its own 503 until the origin is checked; any answer
  # means it listens.
  measure haproxy "$SCHEME://127.0.0.1:$PROXY/" "$HAPROXY" -db -f "$WORK/haproxy.cfg"
  peer haproxy "$("$HAPROXY" -v | head -1 | awk '{print $3}') (nbthread 1)"
fi
if [ -n "$NGHTTPX" ]; then
  # As bench/compare/run.py starts it, with one worker, in one process and
  # thread (its worker is a child process otherwise, which callgrind_control
  # would not reach).
  measure nghttpx "$SCHEME://127.0.0.1:$PROXY/" "$NGHTTPX" "--frontend=127.0.0.1,$PROXY${NGHTTPX_TLS[0]}" \
    "--backend=127.0.0.1,$ORIGIN${H2_ORIGIN:+;;proto=h2}" -n 1 --single-process --single-thread --no-via \
    --no-server-rewrite --no-ocsp \
    --backend-connections-per-host=1024 --frontend-http2-max-concurrent-streams=1000 \
    "--errorlog-file=$WORK/nghttpx.err" --conf=/dev/null "${NGHTTPX_TLS[@]:1}"
  peer nghttpx "$("$NGHTTPX" --version | head -1 | awk '{print $2}') (-n 1)"
fi
