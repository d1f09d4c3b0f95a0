#!/usr/bin/env bash
# Live config from watched files (CDS, LDS, RDS path_config_source), end to end.
# Usage: live_config_test.sh <turnout-binary> <source-dir>.
exec python3 "$2/tests/integration/live_config_test.py" "$1"
