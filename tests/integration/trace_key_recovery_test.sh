#!/usr/bin/env bash
# Routing-key recovery from the trace id: an app that propagates only
# traceparent still reaches the sandbox through turnout's two listeners.
# Usage: trace_key_recovery_test.sh <turnout-binary> <source-dir>.
exec python3 "$2/tests/integration/trace_key_recovery_test.py" "$1"
