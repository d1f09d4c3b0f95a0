#!/usr/bin/env bash
# CORS (envoy.filters.http.cors with virtual host and route cors policies):
# preflights answered, simple responses' headers, shadow mode, no filter.
# Usage: cors_test.sh <turnout-binary> <source-dir>.
exec /usr/bin/python3 "$2/tests/integration/cors_test.py" "$1"
