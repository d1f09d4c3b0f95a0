#!/usr/bin/env bash
# Regenerates proxy/turnout.order: the functions turnout runs as a sidecar,
# for lld's --symbol-ordering-file (cmake/Linking.cmake, docs/memory.md).
#
#   scripts/order-file.sh            (as root: it makes a network namespace)
#
# Runs build/proxy/turnout under callgrind in a network namespace of its own
# through what a sidecar does: start, take 100 services from turnout-cp over
# Delta ADS (listeners, clusters, endpoints, virtual hosts), answer admin
# requests, and proxy HTTP/1.1, HTTP/1.0 and h2c requests (keep-alive and
# not) through a listener to an upstream. Every function of turnout's binary
# with an executed instruction is written out, in the binary's current order,
# by its (mangled) symbol name. Rerun it after large changes; a stale file
# only costs memory (functions it does not name go after the ones it does).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BUILD_DIR:-build}
TURNOUT=$B/proxy/turnout
CP=$B/config/control_plane/turnout-cp
OUT=${OUT:-proxy/turnout.order}
SERVICES=${SERVICES:-100}
[ "$(id -u)" = 0 ] || { echo "order-file.sh: needs root (network namespace)" >&2; exit 2; }
[ -x "$TURNOUT" ] && [ -x "$CP" ] || { echo "order-file.sh: build first ($B)" >&2; exit 2; }
command -v valgrind > /dev/null || { echo "order-file.sh: needs valgrind" >&2; exit 2; }

. bench/compare/sidecar_netns.sh
sidecar_netns_setup turnout-order
sidecar_cp_start "$WORK"
sidecar_cp_services "$SERVICES"
in_ns "$CP" sandbox create feat-x --fork svc1=10.9.0.1:9001 > /dev/null

# The sidecar bootstrap plus one static listener that proxies to the admin
# server (an upstream that is always there), for the request path.
in_ns "$CP" bootstrap --mode capture --node order --service svc1 > "$WORK/boot.yaml"
/usr/bin/python3 - "$WORK/boot.yaml" <<'EOF'
import sys, yaml
path = sys.argv[1]
doc = yaml.safe_load(open(path))
static = doc.setdefault("static_resources", {})
static.setdefault("listeners", []).append({
    "name": "order_http",
    "address": {"socket_address": {"address": "127.0.0.1", "port_value": 18081}},
    "filter_chains": [{"filters": [{
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network."
                     "http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": "order_http", "codec_type": "AUTO",
            "route_config": {"virtual_hosts": [{"name": "admin", "domains": ["*"], "routes": [
                {"match": {"prefix": "/"}, "route": {"cluster": "order_admin"}}]}]},
            "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}]}]})
static.setdefault("clusters", []).append({
    "name": "order_admin", "type": "STATIC", "connect_timeout": "1s",
    "load_assignment": {"cluster_name": "order_admin", "endpoints": [{"lb_endpoints": [
        {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 15000}}}}]}]}})
yaml.safe_dump(doc, open(path, "w"))
EOF

in_ns valgrind --tool=callgrind --dump-instr=yes --callgrind-out-file="$WORK/cg.out" \
  "$TURNOUT" -c "$WORK/boot.yaml" --concurrency 1 -l warning > "$WORK/sc.log" 2>&1 &
got=0
for _ in $(seq 1 600); do
  got=$(in_ns curl -s --max-time 5 http://127.0.0.1:15000/clusters 2>/dev/null |
        grep -c '^svc[0-9]*::observability_name::' || true)
  [ "$got" -ge "$SERVICES" ] && break
  sleep 0.5
done
[ "$got" -ge "$SERVICES" ] || { echo "order-file.sh: the sidecar did not get its config" >&2; cat "$WORK/sc.log" >&2; exit 1; }
for path in /stats /config_dump /listeners /ready /server_info; do
  in_ns curl -sS -o /dev/null --max-time 20 "http://127.0.0.1:15000$path"
done
get() { in_ns curl -sS -o /dev/null --max-time 20 "$@" || { echo "order-file.sh: curl $* failed" >&2; exit 1; }; }
for _ in 1 2 3; do
  get http://127.0.0.1:18081/ready
  get --http1.0 http://127.0.0.1:18081/ready
  get --http2-prior-knowledge http://127.0.0.1:18081/ready
  get -X POST --data-binary @"$WORK/boot.yaml" -H 'baggage: turnout-routing-key=feat-x' \
    http://127.0.0.1:18081/ready
done
in_ns "$CP" sandbox delete feat-x > /dev/null
sleep 2
pkill -INT -f "$WORK/boot.yaml"
for _ in $(seq 1 100); do pgrep -f "$WORK/boot.yaml" > /dev/null || break; sleep 0.2; done
[ -s "$WORK/cg.out" ] || { echo "order-file.sh: callgrind wrote nothing" >&2; exit 1; }

/usr/bin/python3 - "$TURNOUT" "$WORK/cg.out" "$OUT" <<'EOF'
import bisect, os, re, subprocess, sys
binary, profile, out = sys.argv[1:]
binary = os.path.realpath(binary)
# Function symbols of the binary: address, size, mangled name.
syms = []
for line in subprocess.run(["nm", "-S", "--defined-only", binary], check=True,
                           capture_output=True, text=True).stdout.splitlines():
    f = line.split(None, 3)
    if len(f) == 4 and f[2] in "tTwWi" and int(f[1], 16) > 0:
        syms.append((int(f[0], 16), int(f[1], 16), f[3]))
syms.sort()
starts = [s[0] for s in syms]
# callgrind's instruction positions (--dump-instr=yes): absolute (0x...) or
# relative (+n, -n, *) to the previous one; `ob=` names the object.
names, ob, addr, hit = {}, None, 0, set()
for line in open(profile):
    if line.startswith(("ob=", "cob=")):
        m = re.match(r"c?ob=\((\d+)\)(?: (.*))?", line.strip())
        if m.group(2):
            names[m.group(1)] = m.group(2)
        if line.startswith("ob="):
            ob = os.path.realpath(names[m.group(1)])
        continue
    if not line or line[0] not in "0123456789+-*":
        continue
    tok = line.split()[0]
    if tok.startswith("0x"):
        addr = int(tok, 16)
    elif tok[0] in "+-":
        addr += int(tok)
    elif tok != "*":
        continue
    if ob == binary:
        i = bisect.bisect_right(starts, addr) - 1
        if i >= 0 and addr < syms[i][0] + syms[i][1]:
            hit.add(i)
size = sum(syms[i][1] for i in hit)
with open(out, "w") as f:
    f.write("# lld --symbol-ordering-file for turnout (cmake/Linking.cmake): the\n"
            "# functions a sidecar runs, generated by scripts/order-file.sh.\n")
    for i in sorted(hit):
        f.write(syms[i][2] + "\n")
print(f"order-file.sh: {len(hit)} functions, {size // 1024} KiB of "
      f"{sum(s[1] for s in syms) // 1024} KiB -> {out}")
EOF
