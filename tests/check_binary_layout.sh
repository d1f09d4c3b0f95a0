#!/usr/bin/env bash
# How the turnout binary is linked (cmake/Linking.cmake, docs/memory.md):
#
#   check_binary_layout.sh TURNOUT STATIC_DEPS ORDER_FILE_ON ORDER_FILE [STATIC_PIE]
#
# - it is a position-independent executable (ASLR for its own code, as
#   Envoy checks of its binary in test/exe/pie_test.sh), whatever else;
# - with TURNOUT_STATIC_DEPS it needs no shared library but libc, libm and
#   the dynamic loader (protobuf, abseil, OpenSSL, nghttp2, re2, yaml-cpp,
#   spdlog, fmt and libstdc++ are in it);
# - with TURNOUT_STATIC_LIBC in effect (STATIC_PIE) it is a static PIE: no
#   program interpreter, no shared library at all, and still DYN (ASLR);
# - with TURNOUT_ORDER_FILE the functions proxy/turnout.order names sit
#   together at the start of .text: at least 90 % of those present lie in
#   the first 1.5x their total size.
set -euo pipefail
bin=$1 static=$2 ordered=$3 order_file=$4 static_pie=${5:-OFF}
fail() { echo "check_binary_layout: $*" >&2; exit 1; }

readelf -hW "$bin" | grep -Eq 'Type:[[:space:]]+DYN' || fail "$bin is not a position-independent executable"

if [[ "$static_pie" =~ ^(ON|1|TRUE|YES)$ ]]; then
  ! readelf -lW "$bin" | grep -q 'INTERP' || fail "$bin has a program interpreter: not a static PIE"
  needed=$(readelf -dW "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
  [ -z "$needed" ] || fail "TURNOUT_STATIC_LIBC is on but $bin needs $needed"
elif [[ "$static" =~ ^(ON|1|TRUE|YES)$ ]]; then
  needed=$(readelf -dW "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort | tr '\n' ' ')
  for lib in $needed; do
    case "$lib" in
      libc.so.6|libm.so.6|ld-linux-x86-64.so.2) ;;
      *) fail "TURNOUT_STATIC_DEPS is on but $bin needs $lib (needs: $needed)" ;;
    esac
  done
fi

if [[ "$ordered" =~ ^(ON|1|TRUE|YES)$ ]]; then
  /usr/bin/python3 - "$bin" "$order_file" <<'EOF'
import subprocess, sys
binary, order_file = sys.argv[1:]
wanted = {l.strip() for l in open(order_file) if l.strip() and not l.startswith("#")}
text_start = None
for line in subprocess.run(["readelf", "-SW", binary], check=True, capture_output=True,
                           text=True).stdout.splitlines():
    f = line.replace("[ ", "[").split()
    if len(f) > 4 and f[1] == ".text":
        text_start = int(f[3], 16)
syms = {}
for line in subprocess.run(["nm", "-S", "--defined-only", binary], check=True,
                           capture_output=True, text=True).stdout.splitlines():
    f = line.split(None, 3)
    if len(f) == 4 and f[2] in "tTwW" and f[3] in wanted:
        syms.setdefault(f[3], (int(f[0], 16), int(f[1], 16)))
if text_start is None or len(syms) < 100:
    sys.exit(f"check_binary_layout: {len(syms)} of the order file's functions are in {binary}")
total = sum(size for _, size in syms.values())
front = sum(1 for addr, _ in syms.values() if addr < text_start + total * 3 // 2)
share = front / len(syms)
print(f"{len(syms)} ordered functions ({total // 1024} KiB); {share:.1%} in the first "
      f"{total * 3 // 2 // 1024} KiB of .text")
if share < 0.9:
    sys.exit("check_binary_layout: the order file's functions are not at the start of .text")
EOF
fi
echo "check_binary_layout: ok"
