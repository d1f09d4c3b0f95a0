#!/usr/bin/env bash
# Dual-stack captured sidecars end to end in network namespaces the test makes: IPv6 and IPv4
# calls through `turnout iptables --ipv6` and `--ip-families dual` sidecars, the key reaching
# an IPv6 sandbox fork. Exits 77 (skip) where namespaces are forbidden.
# Usage: sidecar_dual_stack_test.sh <turnout-binary> <source-dir>; turnout-cp from $TURNOUT_CP.
cp_bin=${TURNOUT_CP:-$(dirname "$1")/../config/control_plane/turnout-cp}
exec /usr/bin/python3 "$2/tests/integration/sidecar_dual_stack_test.py" "$1" "$cp_bin"
