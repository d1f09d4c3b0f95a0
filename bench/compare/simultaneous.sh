#!/usr/bin/env bash
# CPU per request of two proxies measured at the same time, on the same CPU:
# an A/B that a shared, noisy VM cannot spoil.
#
#   bench/compare/simultaneous.sh [--tls] [--h2-origin] [--rounds N] [--duration S] A B \
#       [-- turnout-bench args]
#   A, B: a turnout binary (a path), or haproxy, or nghttpx
#   bench/compare/simultaneous.sh /tmp/base/build/proxy/turnout build/proxy/turnout -- --h2 -c4 -m100
#   bench/compare/simultaneous.sh --tls build/proxy/turnout haproxy -- --h2 -c32 -m1
#
# Why: on this project's 2-core VM one proxy's CPU per request moved by 30-50 %
# from one minute to the next (bench/results, run.py's rounds), so two
# proxies measured in turn could not show a 10 % difference, and a change
# of 5 % not at all. Here both proxies run in the same seconds: pinned to
# the same CPU (the upper one), in one CPU cgroup limited to --quota of it
# (default 0.4, so that both stay saturated while the load CPU keeps up),
# each with its own turnout-bench on the other CPU and the same nginx
# origin. Whatever slows the machine slows both. Each round prints both
# proxies' rates and CPU per request (their threads' CPU time from
# /proc/PID/task/*/schedstat, over the same window) and B/A; the last line
# is the median B/A over the rounds. Two builds of turnout measured this
# way agreed within 2-3 % round to round (2026-12-07), where run.py's
# passes spread by up to 40 %.
#
# It measures CPU efficiency under a shared cache: the two proxies evict
# each other's lines, which weighs on the one with the larger working set.
# Report it beside run.py's figures, not instead of them.
#
# The configs (turnout's, haproxy's, nginx's) come from instructions.sh
# (KEEP_WORK, a short run), so the proxies are set up exactly as there.
# Needs root (the CPU cgroup), nginx, and the peers it is asked for.
set -euo pipefail
cd "$(dirname "$0")/../.."
B_DIR=${BUILD_DIR:-build}
BENCH=$B_DIR/bench/turnout_bench/turnout-bench
ROUNDS=3
DURATION=8
QUOTA=0.4
MODE=()
while [ $# -gt 0 ]; do
  case "$1" in
    --tls | --h2-origin) MODE+=("$1"); shift ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --quota) QUOTA=$2; shift 2 ;;
    --) break ;;
    -*) echo "simultaneous.sh: unknown flag $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
[ $# -ge 2 ] || { sed -n '2,12p' "$0" >&2; exit 2; }
A=$1
B=$2
shift 2
[ "${1:-}" = "--" ] && shift
BENCH_ARGS=("$@")
for tool in nginx taskset; do
  command -v "$tool" > /dev/null || { echo "simultaneous.sh: needs $tool" >&2; exit 2; }
done
CPUS=$(nproc)
LOAD_CPUS="0-$((CPUS / 2 - 1))"
PROXY_CPU=$((CPUS - 1))
[ "$CPUS" -ge 2 ] || { echo "simultaneous.sh: needs 2 CPUs" >&2; exit 2; }

# The cgroup (v2 with the cpu controller, or v1's cpu hierarchy).
CG_NAME=turnout-simultaneous-$$
PERIOD=10000
QUOTA_US=$(awk -v q="$QUOTA" -v p=$PERIOD 'BEGIN { printf "%d", q * p }')
if grep -qw cpu /sys/fs/cgroup/cgroup.subtree_control 2> /dev/null; then
  CG=/sys/fs/cgroup/$CG_NAME
  mkdir "$CG"
  echo "$QUOTA_US $PERIOD" > "$CG/cpu.max"
elif [ -d /sys/fs/cgroup/cpu ]; then
  CG=/sys/fs/cgroup/cpu/$CG_NAME
  mkdir "$CG"
  echo $PERIOD > "$CG/cpu.cfs_period_us"
  echo "$QUOTA_US" > "$CG/cpu.cfs_quota_us"
else
  echo "simultaneous.sh: no CPU cgroup controller (needs root)" >&2
  exit 2
fi

WORK=$(KEEP_WORK=1 bench/compare/instructions.sh -n 500 --top 0 "${MODE[@]}" 2>&1 |
  sed -n 's/^kept //p')
[ -d "$WORK" ] || { echo "simultaneous.sh: instructions.sh kept no work directory" >&2; exit 1; }
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2> /dev/null || true; done
  [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2> /dev/null || true
  sleep 0.2
  rmdir "$CG" 2> /dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

ORIGIN=$(grep -o 'listen 127.0.0.1:[0-9]*' "$WORK/nginx.conf" | cut -d: -f2)
SCHEME=http
NGHTTPX_TLS=(";no-tls")
if [ -f "$WORK/cert.pem" ]; then
  SCHEME=https
  NGHTTPX_TLS=("" "$WORK/key.pem" "$WORK/cert.pem")
fi
H2_ORIGIN=
for m in "${MODE[@]}"; do [ "$m" = --h2-origin ] && H2_ORIGIN=1; done
taskset -c "$LOAD_CPUS" nginx -c "$WORK/nginx.conf"

# start PROXY PORT ADMIN_PORT TAG: prints the pid
start() {
  local enter=(sh -c 'echo $$ > "$0" && exec "$@"' "$CG/cgroup.procs" taskset -c "$PROXY_CPU")
  case "$1" in
    haproxy)
      sed "s/bind 127.0.0.1:[0-9]*/bind 127.0.0.1:$2/" "$WORK/haproxy.cfg" > "$WORK/$4.cfg"
      "${enter[@]}" haproxy -db -f "$WORK/$4.cfg" > "$WORK/$4.log" 2>&1 &
      ;;
    nghttpx)
      "${enter[@]}" nghttpx "--frontend=127.0.0.1,$2${NGHTTPX_TLS[0]}" \
        "--backend=127.0.0.1,$ORIGIN${H2_ORIGIN:+;;proto=h2}" -n 1 --single-process \
        --single-thread --no-via --no-server-rewrite --no-ocsp \
        --backend-connections-per-host=1024 --frontend-http2-max-concurrent-streams=1000 \
        "--errorlog-file=$WORK/$4.log" --conf=/dev/null "${NGHTTPX_TLS[@]:1}" > /dev/null 2>&1 &
      ;;
    *)
      # turnout.yaml's first port is the admin's, its second the listener's.
      awk -v p="$2" -v a="$3" '/port_value:/ && ++n <= 2 { sub(/port_value: [0-9]+/, "port_value: " (n == 1 ? a : p)) } { print }' \
        "$WORK/turnout.yaml" > "$WORK/$4.yaml"
      "${enter[@]}" "$1" -c "$WORK/$4.yaml" --concurrency 1 -l warning > "$WORK/$4.log" 2>&1 &
      ;;
  esac
  echo $!
}

# The CPU time of every thread of process $1 so far, in ns (schedstat's
# first field: exact, where /proc/PID/stat counts 10 ms ticks).
# A process that is gone counts 0 (its round then fails below, reported,
# instead of set -e ending the script there).
cpu_ns() { { cat /proc/"$1"/task/*/schedstat 2> /dev/null || true; } | awk '{ t += $1 } END { printf "%d\n", t }'; }
ratios=()
for r in $(seq 1 "$ROUNDS"); do
  # Below the ephemeral range (32768-60999 by default), where the
  # proxies' hundreds of upstream connections could hold the port.
  PORT=$((12000 + RANDOM % 18000))
  pa=$(start "$A" "$PORT" $((PORT + 2)) a)
  pb=$(start "$B" $((PORT + 1)) $((PORT + 3)) b)
  PIDS=("$pa" "$pb")
  sleep 1
  for side in a b; do
    port=$PORT
    [ $side = b ] && port=$((PORT + 1))
    taskset -c "$LOAD_CPUS" "$BENCH" "${BENCH_ARGS[@]}" --warmup 2 -d "$((DURATION + 1))" \
      "$SCHEME://127.0.0.1:$port/" > "$WORK/$side.bench" 2>&1 &
    PIDS+=($!)
  done
  sleep 2.5
  cpu_ns "$pa" > "$WORK/a.cpu0"
  cpu_ns "$pb" > "$WORK/b.cpu0"
  sleep "$DURATION"
  cpu_ns "$pa" > "$WORK/a.cpu1"
  cpu_ns "$pb" > "$WORK/b.cpu1"
  wait "${PIDS[@]:2}" 2> /dev/null || true
  line="$(python3 - "$WORK" "$DURATION" 2> /dev/null <<'EOF'
import sys
work, secs = sys.argv[1], float(sys.argv[2])
def get(side):
    rps = next(float(l.split()[1]) for l in open(f"{work}/{side}.bench") if l.startswith("Requests/sec:"))
    ns = int(open(f"{work}/{side}.cpu1").read()) - int(open(f"{work}/{side}.cpu0").read())
    if ns <= 0:
        raise SystemExit(1)  # the proxy died during the round
    return rps, ns / 1000 / (rps * secs), ns / 1e9 / secs
(ra, ca, ua), (rb, cb, ub) = get("a"), get("b")
print(f"{cb / ca:.3f} A {ra:7.0f} rps {ca:6.2f} us/req (CPU {ua:.2f})   "
      f"B {rb:7.0f} rps {cb:6.2f} us/req (CPU {ub:.2f})   B/A {cb / ca:.3f}")
EOF
  )" || line=""
  if [ -z "$line" ]; then
    # A proxy that did not start (a port taken) or a load that failed:
    # the round is reported and left out of the median.
    echo "round $r: failed: A: $(tail -2 "$WORK/a.bench" "$WORK/a.log" 2> /dev/null | tr '\n' ' ')" \
      "B: $(tail -2 "$WORK/b.bench" "$WORK/b.log" 2> /dev/null | tr '\n' ' ')"
  else
    echo "round $r: ${line#* }"
    ratios+=("${line%% *}")
  fi
  kill "$pa" "$pb" 2> /dev/null || true
  wait "$pa" "$pb" 2> /dev/null || true
  PIDS=()
done
[ ${#ratios[@]} -gt 0 ] || { echo "simultaneous.sh: every round failed" >&2; exit 1; }
printf '%s\n' "${ratios[@]}" | sort -n | awk '{ v[NR] = $1 } END { printf "median B/A over %d rounds: %s (%s ... %s)\n", NR, v[int((NR + 1) / 2)], v[1], v[NR] }'
