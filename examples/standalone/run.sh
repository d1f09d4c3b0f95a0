#!/usr/bin/env bash
# Runs turnout as a standalone reverse proxy in front of two nginx backends
# (started here on 18091 and 18092), sends a few requests, prints the
# answers, the access log and some stats, then stops everything.
# Usage: run.sh [path/to/turnout]   (default: build/proxy/turnout; needs nginx)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
turnout=${1:-$root/build/proxy/turnout}
[ -x "$turnout" ] || { echo "run.sh: no turnout binary at $turnout (run scripts/build.sh)"; exit 1; }
command -v nginx >/dev/null || { echo "run.sh: nginx is needed (apt-get install nginx-light)"; exit 1; }
for port in 9902 10080 18091 18092; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "run.sh: port $port is already in use; stop whatever holds it and retry"; exit 1
  fi
done

work=$(mktemp -d); chmod 755 "$work"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
for n in 1 2; do
  mkdir -p "$work/www$n"; chmod 755 "$work/www$n"
  echo "served by backend $n" > "$work/www$n/index.html"; chmod 644 "$work/www$n/index.html"
  cat > "$work/nginx$n.conf" <<NGX
worker_processes 1; daemon off; pid $work/nginx$n.pid; error_log $work/nginx$n.err;
events { worker_connections 256; }
http { access_log off; server { listen 127.0.0.1:1809$n; root $work/www$n; } }
NGX
  nginx -c "$work/nginx$n.conf" & pids+=($!)
done
"$turnout" -c "$here/bootstrap.yaml" --concurrency 1 -l warning > "$work/access.log" & pids+=($!)
for _ in $(seq 1 100); do
  curl -sf -o /dev/null http://127.0.0.1:9902/ready && curl -sf -o /dev/null http://127.0.0.1:18091/ &&
    curl -sf -o /dev/null http://127.0.0.1:18092/ && break
  sleep 0.1
done

for path in / / /hello /healthz /missing.html; do
  printf 'GET %-14s -> %s %s\n' "$path" \
    "$(curl -s -o "$work/body" -w '%{http_code}' http://127.0.0.1:10080$path)" "$(head -c 60 "$work/body" | tr -d '\n')"
done
sleep 1.2  # the access log is flushed once a second
echo
echo "access log (Envoy's default format):"
sed 's/^/  /' "$work/access.log"
echo
echo "stats:"
curl -sg "http://127.0.0.1:9902/stats?filter=cluster.web.upstream_rq_2xx|standalone.downstream_rq_[0-9]xx" | sed 's/^/  /'
