#!/bin/bash
# Runs bench/compare/run.py on a many-core machine from the bundle that
# bench/compare/device_bundle.sh made. The proxy gets the CPUs in PROXY_CPUS
# (default: the last one); the load side (turnout-bench and the nginx origin)
# gets every other CPU except the proxy CPUs' SMT siblings, so nothing shares
# a core with the proxy. Extra arguments go to run.py.
#
# Usage: bench/compare/device_run.sh OUT_DIR [run.py arguments...]
set -uo pipefail
cd "$(dirname "$0")/../.."
out=$1; shift
mkdir -p "$out" .dev/x /var/lib/nginx /var/log/nginx
tar -C .dev/x -xJf .dev/bundle.tar.xz || exit 1
export PATH=$PWD/.dev/x/bin:$PATH
n=$(nproc)
proxy=${PROXY_CPUS:-$((n - 1))}
taken=" "
for c in $(/usr/bin/python3 -c "import sys; sys.path.insert(0, 'bench/compare'); import run; print(*run.cpu_list('$proxy'))" 2>/dev/null || echo "$proxy"); do
  sib=/sys/devices/system/cpu/cpu$c/topology/thread_siblings_list
  taken+="$c "
  [ -r "$sib" ] && for s in $(/usr/bin/python3 -c "import sys; sys.path.insert(0, 'bench/compare'); import run; print(*run.cpu_list(open('$sib').read().strip()))"); do taken+="$s "; done
done
load=""
for ((c = 0; c < n; c++)); do
  case "$taken" in *" $c "*) ;; *) load+="${load:+,}$c" ;; esac
done
{
  echo "cpus: $n; proxy: $proxy; not for load (proxy and siblings):$taken; load: $load"
  grep -m1 "model name" /proc/cpuinfo
  uname -r
  for c in $proxy; do cat /sys/devices/system/cpu/cpu$c/topology/thread_siblings_list 2>/dev/null; done
} | tee "$out/machine.txt"
ulimit -n 1048576 2>/dev/null || ulimit -n 65536
PYTHONUNBUFFERED=1 python3 bench/compare/run.py --turnout .dev/x/bin/turnout \
  --bench .dev/x/bin/turnout-bench --cpus-proxy "$proxy" --cpus-load "$load" \
  --out "$out" "$@" 2>&1 | tee "$out/run.log"
