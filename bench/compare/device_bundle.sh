#!/bin/bash
# Packs what bench/compare/run.py needs onto a bare 16-core machine that has
# no Debian packages: stripped turnout and turnout-bench, and Debian's peers
# (nginx, haproxy, nghttpx, strace, curl, openssl, taskset) with every library
# they load, Debian's own loader included, so the other machine's distribution
# and libc do not matter. Writes .dev/bundle.tar.xz (ignored by git: add
# `/.dev/` to .git/info/exclude); bench/compare/device_run.sh unpacks and runs it.
#
# Usage: bench/compare/device_bundle.sh [TURNOUT_BINARY]
#   BEFORE=/path/to/older/turnout also packs that build as bin/turnout-before,
#   for a before/after pair measured on the same machine
#   (device_run.sh ... --turnout .dev/x/bin/turnout-before).
set -euo pipefail
cd "$(dirname "$0")/../.."
turnout=${1:-build/proxy/turnout}
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{bin,real,lib,etc}
strip -o "$stage/bin/turnout" "$turnout"
strip -o "$stage/bin/turnout-bench" build/bench/turnout_bench/turnout-bench
if [ -n "${BEFORE:-}" ]; then strip -o "$stage/bin/turnout-before" "$BEFORE"; fi
for b in nginx haproxy nghttpx strace curl openssl taskset; do
  p=$(command -v "$b") || { echo "device_bundle: $b is missing (scripts/setup.sh)" >&2; exit 1; }
  cp "$p" "$stage/real/$b"
  for l in $(ldd "$p" | awk '/=>/ {print $3} /ld-linux/ {print $1}'); do
    cp -nL "$l" "$stage/lib/"
  done
  # exec keeps the pid, so run.py's /proc accounting and strace -p see the program.
  cat > "$stage/bin/$b" <<W
#!/bin/sh
D=\$(dirname "\$(dirname "\$(readlink -f "\$0")")")
export OPENSSL_CONF=\$D/etc/openssl.cnf
exec "\$D/lib/ld-linux-x86-64.so.2" --library-path "\$D/lib" "\$D/real/$b" "\$@"
W
  chmod +x "$stage/bin/$b"
done
cp /usr/lib/ssl/openssl.cnf "$stage/etc/openssl.cnf"
mkdir -p .dev
tar -C "$stage" -cJf .dev/bundle.tar.xz .
ls -la .dev/bundle.tar.xz
