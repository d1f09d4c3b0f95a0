#!/usr/bin/env bash
# The TCP proxy network filter (envoy.filters.network.tcp_proxy) and
# ORIGINAL_DST clusters against the real turnout on loopback: Python TCP
# upstreams (echo, hashing sink, counting source, half-closer, resetter),
# raw-socket and TLS clients, HTTP through an ORIGINAL_DST cluster.
# Usage: tcp_proxy_test.sh <turnout-binary> <source-dir>.
exec /usr/bin/python3 "$2/tests/integration/tcp_proxy_test.py" "$1"
