#!/usr/bin/env bash
# WebSockets and CONNECT through an HTTP/2 upstream (extended CONNECT, RFC
# 8441; CONNECT streams), both client protocols, to a second turnout.
# Usage: tunnel_http2_upstream_test.sh <turnout-binary> <source-dir>.
exec /usr/bin/python3 "$2/tests/integration/tunnel_http2_upstream_test.py" "$1"
