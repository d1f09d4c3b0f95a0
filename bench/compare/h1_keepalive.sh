#!/usr/bin/env bash
# HTTP/1.1 keep-alive GET, 0 B and 1 KiB bodies: wrk against nginx directly,
# through turnout, through haproxy and through nginx-as-proxy, in one run.
# Each proxy gets one worker pinned to PROXY_CPU; wrk and the nginx origin
# share the other CPUs. Figures are only meaningful as ratios within a run.
# Usage: bench/compare/h1_keepalive.sh [path/to/turnout]  (DURATION=10 CONNS=32)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
turnout=${1:-$root/build/proxy/turnout}
DURATION=${DURATION:-10}
CONNS=${CONNS:-32}
NCPU=$(nproc)
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPUS=${LOAD_CPUS:-$([ "$NCPU" -gt 1 ] && echo "1-$((NCPU - 1))" || echo 0)}
for t in nginx haproxy wrk taskset python3; do
  command -v $t >/dev/null || { echo "bench: $t is missing (apt-get install nginx-light haproxy wrk)"; exit 1; }
done
[ -x "$turnout" ] || { echo "bench: no turnout at $turnout"; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ORIGIN=$(freeport); TURNOUT=$(freeport); HAPROXY=$(freeport); NGXPROXY=$(freeport); ADMIN=$(freeport)

chmod 755 "$work"
head -c 1024 /dev/zero | tr '\0' 'x' > "$work/1k"; : > "$work/0"; chmod 644 "$work/0" "$work/1k"
cat > "$work/origin.conf" <<NGX
worker_processes 1; daemon off; pid $work/origin.pid; error_log $work/origin.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$ORIGIN; root $work; location / { } } }
NGX
cat > "$work/ngxproxy.conf" <<NGX
worker_processes 1; daemon off; pid $work/ngxproxy.pid; error_log $work/ngxproxy.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  upstream origin { server 127.0.0.1:$ORIGIN; keepalive 64; }
  server { listen 127.0.0.1:$NGXPROXY;
    location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
NGX
cat > "$work/haproxy.cfg" <<HAP
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
  bind 127.0.0.1:$HAPROXY
  default_backend be
backend be
  http-reuse always
  server o 127.0.0.1:$ORIGIN
HAP
cat > "$work/turnout.yaml" <<YAML
admin: { address: { socket_address: { address: 127.0.0.1, port_value: $ADMIN } } }
static_resources:
  listeners:
  - name: bench
    address: { socket_address: { address: 127.0.0.1, port_value: $TURNOUT } }
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: bench
          generate_request_id: false
          route_config:
            virtual_hosts: [{ name: all, domains: ["*"], routes: [{ match: { prefix: "/" }, route: { cluster: origin } }] }]
          http_filters:
          - name: rk
            typed_config: { "@type": type.googleapis.com/turnout.extensions.filters.http.routing_key.v3.RoutingKey }
          - name: router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
  clusters:
  - name: origin
    load_assignment:
      cluster_name: origin
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: $ORIGIN } } } }] }]
YAML

taskset -c "$LOAD_CPUS" nginx -c "$work/origin.conf" & pids+=($!)
taskset -c "$PROXY_CPU" nginx -c "$work/ngxproxy.conf" & pids+=($!); NGX_PID=$!
taskset -c "$PROXY_CPU" haproxy -f "$work/haproxy.cfg" -q & pids+=($!); HAP_PID=$!
taskset -c "$PROXY_CPU" "$turnout" -c "$work/turnout.yaml" --concurrency 1 -l error 2>"$work/turnout.err" & pids+=($!); TURNOUT_PID=$!
for _ in $(seq 1 100); do
  ok=1
  for p in $ORIGIN $TURNOUT $HAPROXY $NGXPROXY; do curl -s -o /dev/null "http://127.0.0.1:$p/0" || ok=0; done
  [ $ok = 1 ] && break; sleep 0.1
done
if [ $ok != 1 ]; then
  echo "bench: a target did not come up"; cat "$work"/*.err 2>/dev/null; exit 1
fi

# CPU ticks (utime+stime) of a process and its children (nginx's worker).
ticks() {
  local total=0 p
  for p in "$1" $(pgrep -P "$1" 2>/dev/null); do
    [ -r "/proc/$p/stat" ] || continue
    total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$total"
}
pid_of() { case "$1" in turnout) echo "$TURNOUT_PID";; haproxy) echo "$HAP_PID";; nginx-proxy) echo "$NGX_PID";; *) echo "";; esac; }

run() {  # run NAME PORT PATH -> "name path rps p50 p99 cpu_us_per_request"
  local out pid t0=0 t1=0
  pid=$(pid_of "$1")
  [ -n "$pid" ] && t0=$(ticks "$pid")
  out=$(taskset -c "$LOAD_CPUS" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "http://127.0.0.1:$2$3")
  [ -n "$pid" ] && t1=$(ticks "$pid")
  local rps p50 p99 reqs cpu
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  if [ -n "$pid" ] && [ "${reqs:-0}" -gt 0 ]; then
    cpu=$(awk "BEGIN{printf \"%.2f\", ($t1-$t0)*1000000/$(getconf CLK_TCK)/$reqs}")
  else
    cpu="-"
  fi
  echo "$1 $3 $rps $p50 $p99 $cpu"
}
tous() { case "$1" in *us) echo "${1%us}";; *ms) awk "BEGIN{print ${1%ms}*1000}";; *s) awk "BEGIN{print ${1%s}*1000000}";; *) echo "$1";; esac; }

results=()
for path in /0 /1k; do
  for target in "direct $ORIGIN" "turnout $TURNOUT" "haproxy $HAPROXY" "nginx-proxy $NGXPROXY"; do
    set -- $target
    taskset -c "$LOAD_CPUS" wrk -t1 -c"$CONNS" -d1s "http://127.0.0.1:$2$path" >/dev/null  # warm-up
    results+=("$(run "$1" "$2" "$path")")
  done
done

date=$(date -u +%Y-%m-%d)
machine="$(nproc)cpu-$(uname -m)"
md="$root/bench/results/$date-$machine-h1-keepalive.md"
{
  echo "# H1 keep-alive, $date, $machine"
  echo
  echo "wrk -t1 -c$CONNS -d${DURATION}s on CPUs $LOAD_CPUS (with the nginx origin); each proxy one worker on CPU $PROXY_CPU."
  echo "Ratios are against haproxy in the same run."
  echo
  echo "| body | target | req/s | req/s vs haproxy | p50 | p99 | p99 vs haproxy | proxy CPU µs/req | CPU vs haproxy |"
  echo "|---|---|---|---|---|---|---|---|---|"
  for path in /0 /1k; do
    hap=$(printf '%s\n' "${results[@]}" | awk -v p=$path '$1=="haproxy" && $2==p')
    hap_rps=$(echo "$hap" | awk '{print $3}'); hap_p99=$(tous "$(echo "$hap" | awk '{print $5}')")
    hap_cpu=$(echo "$hap" | awk '{print $6}')
    printf '%s\n' "${results[@]}" | awk -v p=$path '$2==p' | while read -r name p rps p50 p99 cpu; do
      r=$(awk "BEGIN{printf \"%.2f\", $rps/$hap_rps}")
      q=$(awk "BEGIN{printf \"%.2f\", $(tous "$p99")/$hap_p99}")
      c="-"; [ "$cpu" != "-" ] && c=$(awk "BEGIN{printf \"%.2f\", $cpu/$hap_cpu}")
      body=$([ "$p" = /0 ] && echo "0 B" || echo "1 KiB")
      echo "| $body | $name | $rps | $r | $p50 | $p99 | $q | $cpu | $c |"
    done
  done
} > "$md"
cat "$md"
