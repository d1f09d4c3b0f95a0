#!/usr/bin/env bash
# Sidecar mode end to end in network namespaces the test makes: three captured pods, two
# sandbox forks, turnout-cp driving every sidecar. Exits 77 (skip) where namespaces are forbidden.
# Usage: sidecar_e2e_test.sh <turnout-binary> <source-dir>; turnout-cp from $TURNOUT_CP.
cp_bin=${TURNOUT_CP:-$(dirname "$1")/../config/control_plane/turnout-cp}
exec /usr/bin/python3 "$2/tests/integration/sidecar_e2e_test.py" "$1" "$cp_bin"
