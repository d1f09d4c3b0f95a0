#!/usr/bin/env bash
# turnout between real clients (curl, wrk) and real nginx backends, loopback only.
# Usage: proxy_nginx_test.sh <turnout-binary> <source-dir>.
exec python3 "$2/tests/integration/proxy_nginx_test.py" "$1"
