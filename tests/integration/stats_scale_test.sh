#!/usr/bin/env bash
# 10,000 STATIC clusters with --concurrency 2: every cluster has stats.
# Usage: stats_scale_test.sh <turnout-binary> <source-dir>.
exec python3 "$2/tests/integration/stats_scale_test.py" "$1"
