#!/usr/bin/env bash
# WebSocket tunnels over TLS on the listener, to the cluster, or both:
# bytes both ways after the 101, megabytes whole, half-close to a TLS origin.
# Usage: tunnel_tls_test.sh <turnout-binary> <source-dir>.
exec /usr/bin/python3 "$2/tests/integration/tunnel_tls_test.py" "$1"
