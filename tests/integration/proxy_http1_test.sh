#!/usr/bin/env bash
# The HTTP/1.1 data plane end to end: real turnout, fake backends, loopback only.
# Usage: proxy_http1_test.sh <turnout-binary> <source-dir>.
exec python3 "$2/tests/integration/proxy_http1_test.py" "$1"
