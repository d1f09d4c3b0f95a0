#!/usr/bin/env bash
# HTTP/1.1 clients -> turnout -> h2c upstreams (python3-h2 backends), loopback only.
# Usage: http2_upstream_test.sh <turnout-binary> <source-dir>.
exec /usr/bin/python3 "$2/tests/integration/http2_upstream_test.py" "$1"
