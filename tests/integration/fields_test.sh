#!/usr/bin/env bash
# Bootstrap fields turnout accepts, each shown to change what the proxy does
# (docs/envoy-compatibility.md names these test cases).
# Usage: fields_test.sh <turnout-binary> <source-dir>.
exec python3 "$2/tests/integration/fields_test.py" "$1"
