#!/usr/bin/env bash
# `turnout iptables` against the real kernel, with both iptables backends, in
# network namespaces the test creates (and always deletes): the rules in
# iptables-save, re-runs, --dry-run, --cleanup, and connections that are (or are
# not) captured, read back with SO_ORIGINAL_DST. Needs root, iproute2, iptables
# and setpriv; where network namespaces are forbidden it exits 77, which CTest
# reports as skipped. Usage: iptables_test.sh <turnout-binary> <source-dir>.
if ! unshare -n true 2>/dev/null; then
  echo "SKIP: network namespaces are not allowed here ('unshare -n true' fails; run as root)"
  exit 77
fi
for tool in ip iptables-nft-restore iptables-legacy-restore ip6tables-nft-restore \
            ip6tables-legacy-restore setpriv; do
  if ! PATH="$PATH:/usr/sbin:/sbin" command -v "$tool" >/dev/null; then
    echo "SKIP: $tool is not installed (scripts/setup.sh installs iproute2 and iptables)"
    exit 77
  fi
done
export PATH="$PATH:/usr/sbin:/sbin"
exec /usr/bin/python3 "$2/tests/integration/iptables_test.py" "$1"
