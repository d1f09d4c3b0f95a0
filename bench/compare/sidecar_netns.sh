# Sourced by bench/compare/sidecar_rss.sh and scripts/order-file.sh: a
# network namespace of the script's own (so the sidecar's fixed ports never
# clash with the host), a work directory, both removed on exit, and
# turnout-cp in it with a model of N services. Needs root; the caller sets
# CP (the turnout-cp binary) and errexit.
#
#   sidecar_netns_setup PREFIX   NS, WORK, in_ns CMD..., cleanup on EXIT
#   sidecar_cp_start DIR         turnout-cp serving from DIR (API :18080, xDS :18000)
#   sidecar_cp_services N        services svc1..svcN, one port each (9001..);
#                                PORTS=shared: all on 8080; PORTS=mixed: ten ports

sidecar_netns_setup() {
  NS=$1-$$
  WORK=$(mktemp -d)
  trap sidecar_netns_cleanup EXIT
  ip netns add "$NS"
  ip -n "$NS" link set lo up
}

sidecar_netns_cleanup() {
  pkill -f "$WORK/" 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$WORK"
}

in_ns() { ip netns exec "$NS" "$@"; }

sidecar_cp_start() {
  local dir=$1
  mkdir -p "$dir"
  in_ns "$CP" serve --data-dir "$dir/data" --http-address 127.0.0.1:18080 \
    --xds-address 127.0.0.1:18000 > "$dir/cp.log" 2>&1 &
  for _ in $(seq 1 50); do in_ns curl -s -o /dev/null http://127.0.0.1:18080/ && return 0; sleep 0.1; done
  echo "turnout-cp did not start ($dir/cp.log)" >&2
  return 1
}

sidecar_cp_services() {
  local i port
  for i in $(seq 1 "$1"); do
    # PORTS=shared: every service on 8080, as many Kubernetes services are
    # (one outbound listener for all); PORTS=mixed: ten ports (8080-8089);
    # else one port each (the worst case: an outbound listener per service).
    port=$((9000 + i))
    [ "${PORTS:-}" = shared ] && port=8080
    [ "${PORTS:-}" = mixed ] && port=$((8080 + i % 10))
    in_ns "$CP" service put "svc$i" --port "$port" \
      --endpoint "10.1.$((i / 250)).$((i % 250 + 1)):$port" > /dev/null
  done
}
