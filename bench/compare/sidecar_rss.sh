#!/usr/bin/env bash
# Idle memory of a captured sidecar driven by turnout-cp, for a model of N
# services (issue #11: "sidecar RSS idle with a 100-service config").
#
#   bench/compare/sidecar_rss.sh [N ...]        (default: 1 100 300; as root)
#   ADS=sotw bench/compare/sidecar_rss.sh ...   (State of the World; default delta,
#                                                as turnout-cp's bootstraps)
#   SMAPS=/tmp/smaps bench/compare/sidecar_rss.sh 100   (also keeps the full smaps)
#
# For each N it starts, in a network namespace of its own (so the fixed
# sidecar ports never clash with the host), turnout-cp with N services of one
# port each, a sidecar bootstrapped by `turnout-cp bootstrap --mode capture`
# (virtualOutbound 15001, virtualInbound 15006, one outbound listener, cluster
# and route per service), waits until the sidecar has the whole model, then
# reads /proc/<pid>/status and smaps_rollup after it has been idle.
#
# Columns: RSS (what `ps` shows), Anon (private heap and stacks: the memory
# each pod really adds), File (text and read-only data of the binary and its
# shared libraries: shared with every other turnout on the node), PSS (RSS
# with shared pages divided among the processes mapping them).
set -euo pipefail
cd "$(dirname "$0")/../.."
B=${BUILD_DIR:-build}
TURNOUT=${TURNOUT:-$B/proxy/turnout}
CP=$B/config/control_plane/turnout-cp
ADS=${ADS:-delta}
CONCURRENCY=${CONCURRENCY:-1}
IDLE=${IDLE:-5}
[ "$(id -u)" = 0 ] || { echo "sidecar_rss.sh: needs root (network namespaces)" >&2; exit 2; }
[ -x "$TURNOUT" ] && [ -x "$CP" ] || { echo "sidecar_rss.sh: build first ($B)" >&2; exit 2; }
[ $# -gt 0 ] || set -- 1 100 300

. bench/compare/sidecar_netns.sh
sidecar_netns_setup turnout-rss

field() { awk -v k="$1:" '$1 == k { print $2 }' "$2"; }

# Waits (bounded) until the sidecar's /clusters lists every service.
wait_model() {
  local n=$1
  for _ in $(seq 1 100); do
    local got
    got=$(in_ns curl -s --max-time 1 http://127.0.0.1:15000/clusters 2>/dev/null |
          grep -c '^svc[0-9]*::observability_name::' || true)
    [ "$got" -ge "$n" ] && return 0
    sleep 0.2
  done
  echo "sidecar_rss.sh: the sidecar did not get $n clusters" >&2
  return 1
}

printf '| services | RSS KiB | Anon KiB | File KiB | PSS KiB |\n|---|---|---|---|---|\n'
prev_n=""; prev_anon=""; slopes=""
for n in "$@"; do
  d=$WORK/n$n
  sidecar_cp_start "$d"
  sidecar_cp_services "$n"
  in_ns "$CP" bootstrap --mode capture --node rss --ads "$ADS" \
    --service svc1 > "$d/boot.yaml"
  in_ns "$TURNOUT" -c "$d/boot.yaml" --concurrency "$CONCURRENCY" -l warning > "$d/sc.log" 2>&1 &
  wait_model "$n"
  sc_pid=$(pgrep -n -f "$d/boot.yaml")
  sleep "$IDLE"
  rss=$(field VmRSS /proc/$sc_pid/status); anon=$(field RssAnon /proc/$sc_pid/status)
  file=$(field RssFile /proc/$sc_pid/status); pss=$(field Pss /proc/$sc_pid/smaps_rollup)
  printf '| %s | %s | %s | %s | %s |\n' "$n" "$rss" "$anon" "$file" "$pss"
  # SMAPS=DIR keeps each idle sidecar's /proc/<pid>/smaps (which mappings
  # the RSS is in) as DIR/smaps-N.
  [ -n "${SMAPS:-}" ] && mkdir -p "$SMAPS" && cp "/proc/$sc_pid/smaps" "$SMAPS/smaps-$n"
  if [ -n "$prev_n" ]; then
    slopes+="anon per service from $prev_n to $n services: $(( (anon - prev_anon) * 1024 / (n - prev_n) )) bytes"$'\n'
  fi
  prev_n=$n; prev_anon=$anon
  pkill -f "$d/" 2>/dev/null || true
  wait 2>/dev/null || true
done
printf '\n%s' "$slopes"
