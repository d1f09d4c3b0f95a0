#!/usr/bin/env bash
# Runs the sandbox-routing example: four backends (baseline and one fork each
# for `reviews` and `ratings`), turnout in front of them, and requests with and
# without a routing key. Prints where each request went, then stops everything.
# Usage: run.sh [path/to/turnout]   (default: build/proxy/turnout)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
turnout=${1:-$root/build/proxy/turnout}
[ -x "$turnout" ] || { echo "run.sh: no turnout binary at $turnout (run scripts/build.sh)"; exit 1; }

for port in 9901 10000 18081 18082 18083 18084; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "run.sh: port $port is already in use; stop whatever holds it and retry"; exit 1
  fi
done

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

python3 "$here/backend.py" 18081 reviews & pids+=($!)
python3 "$here/backend.py" 18082 reviews-feat-x & pids+=($!)
python3 "$here/backend.py" 18083 ratings & pids+=($!)
python3 "$here/backend.py" 18084 ratings-feat-y & pids+=($!)
"$turnout" -c "$here/bootstrap.yaml" --concurrency 2 -l warning & pids+=($!)

# Wait (bounded) until turnout and the backends answer.
# Every backend is probed directly: a request through turnout would "succeed"
# with a 503 while a backend is still starting.
ready() {
  curl -sf -o /dev/null http://127.0.0.1:9901/ready || return 1
  for port in 18081 18082 18083 18084; do
    curl -sf -o /dev/null "http://127.0.0.1:$port/" || return 1
  done
}
for _ in $(seq 1 100); do
  ready && break
  sleep 0.1
done
ready || { echo "run.sh: turnout or a backend did not come up within 10 s"; exit 1; }

req() {  # req HOST PATH [HEADER]
  local label="$1 $2${3:+  [$3]}"
  local out
  if [ -n "${3:-}" ]; then out=$(curl -s -m 5 -H "host: $1" -H "$3" "http://127.0.0.1:10000$2")
  else out=$(curl -s -m 5 -H "host: $1" "http://127.0.0.1:10000$2"); fi
  printf '%-62s -> %s\n' "$label" "${out:-(empty)}"
}

echo "requests through turnout on 127.0.0.1:10000:"
req reviews /reviews/1
req reviews /reviews/1 "baggage: userId=7,turnout-routing-key=feat-x"
req ratings /ratings/1 "baggage: turnout-routing-key=feat-x"
req ratings /ratings/1 "tracestate: congo=t61rcWkgMzE,turnout=feat-y"
req reviews /reviews/1 "x-turnout-routing-key: feat-x"
req reviews /reviews/1 "baggage: turnout-routing-key=feat-x;;broken"
code=$(curl -s -o /dev/null -w '%{http_code}' -m 5 -H 'host: payments' http://127.0.0.1:10000/)
printf '%-62s -> HTTP %s (no route)\n' "payments /" "$code"
echo
echo "turnout's stats (curl http://127.0.0.1:9901/stats?filter=routing_key|upstream_rq_total):"
curl -s "http://127.0.0.1:9901/stats?filter=routing_key%7Cupstream_rq_total" | grep -v ': 0$' | sed 's/^/  /'
