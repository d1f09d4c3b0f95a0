#!/usr/bin/env bash
# turnout-cp drives a turnout sidecar: turnout-cp (embedded SQLite store),
# a baseline and a sandbox backend for `reviews`, and a turnout whose
# bootstrap comes from `turnout-cp bootstrap` (routes over ADS). Creates a
# sandbox with the CLI, shows requests with the key reaching it and without
# it the baseline, deletes the sandbox and shows the traffic return.
# Usage: run.sh [build-dir]   (default: build)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-$root/build}
turnout=$build/proxy/turnout
cp=$build/config/control_plane/turnout-cp
for b in "$turnout" "$cp"; do
  [ -x "$b" ] || { echo "run.sh: no binary at $b (run scripts/build.sh)"; exit 1; }
done
for port in 15001 15000 18000 18080 18091 18092; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "run.sh: port $port is already in use; stop whatever holds it and retry"; exit 1
  fi
done

work=$(mktemp -d)
pids=()
cleanup() {  # the sidecar first, so it does not log the control plane going away
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[i]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

python3 "$root/examples/sandbox-routing/backend.py" 18091 reviews & pids+=($!)
python3 "$root/examples/sandbox-routing/backend.py" 18092 reviews-feat-x & pids+=($!)
"$cp" serve --data-dir "$work/data" --log-level warning & pids+=($!)
wait_for() {  # wait_for URL: bounded
  for _ in $(seq 1 100); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "run.sh: $1 did not answer within 10 s"; exit 1
}
wait_for http://127.0.0.1:18080/healthz
wait_for http://127.0.0.1:18091/
wait_for http://127.0.0.1:18092/

echo "\$ turnout-cp service put reviews --port 9080 --endpoint 127.0.0.1:18091"
"$cp" service put reviews --port 9080 --endpoint 127.0.0.1:18091
"$cp" bootstrap --node demo-sidecar > "$work/sidecar.yaml"
echo "\$ turnout -c <(turnout-cp bootstrap --node demo-sidecar)   # outbound 127.0.0.1:15001, routes over ADS"
"$turnout" -c "$work/sidecar.yaml" --concurrency 1 -l warning & pids+=($!)
wait_for http://127.0.0.1:15000/ready

req() {  # req [HEADER]: through the sidecar, until the answer settles (bounded)
  local out=""
  for _ in $(seq 1 50); do
    if [ -n "${1:-}" ]; then out=$(curl -s -m 5 -H "host: reviews" -H "$1" http://127.0.0.1:15001/reviews/1)
    else out=$(curl -s -m 5 -H "host: reviews" http://127.0.0.1:15001/reviews/1); fi
    [ "$out" = "${last_out:-}" ] && break
    last_out=$out
    sleep 0.1
  done
  printf '  %-48s -> %s\n' "reviews${1:+  [$1]}" "${out:-(empty)}"
}
settle() { sleep 0.3; }
echo "requests through the sidecar:"
settle; req; req "baggage: turnout-routing-key=feat-x"
echo
echo "\$ turnout-cp sandbox create feat-x --fork reviews=127.0.0.1:18092 --ttl 1h"
"$cp" sandbox create feat-x --fork reviews=127.0.0.1:18092 --ttl 1h
settle
req; req "baggage: userId=7,turnout-routing-key=feat-x"; req "uberctx-sd-routing-key: feat-x"
echo
echo "\$ turnout-cp proxies"
"$cp" proxies
echo
echo "\$ turnout-cp sandbox delete feat-x"
"$cp" sandbox delete feat-x
settle
req "baggage: turnout-routing-key=feat-x"
