#!/usr/bin/env bash
# Downstream HTTP/2 (h2c) against the real turnout on loopback: curl, nghttp
# and python3-h2 clients, an HTTP/1.1 origin behind.
# Usage: http2_downstream_test.sh <turnout-binary> <source-dir>.
exec /usr/bin/python3 "$2/tests/integration/http2_downstream_test.py" "$1"
