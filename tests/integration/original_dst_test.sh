#!/usr/bin/env bash
# Sidecar capture (original_dst, use_original_dst hand-off to bind_to_port:
# false listeners, destination_port/prefix_ranges chains, http_inspector)
# in a network namespace the test makes, with iptables REDIRECT rules and
# turnout as UID 1337. Exits 77 (skipped) where namespaces are forbidden.
# Usage: original_dst_test.sh <turnout-binary> <source-dir>.
exec /usr/bin/python3 "$2/tests/integration/original_dst_test.py" "$1"
