#!/usr/bin/env bash
# Full-duplex streams, timeouts and retries of the data-plane core, end to end.
# Usage: stream_core_test.sh <turnout-binary> <source-dir>.
exec python3 "$2/tests/integration/stream_core_test.py" "$1"
