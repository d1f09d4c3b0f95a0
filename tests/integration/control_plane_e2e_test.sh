#!/usr/bin/env bash
# turnout-cp drives turnout over ADS: sandboxes created with the CLI take keyed traffic.
# Usage: control_plane_e2e_test.sh <turnout-binary> <source-dir>; turnout-cp from $TURNOUT_CP.
cp_bin=${TURNOUT_CP:-$(dirname "$1")/../config/control_plane/turnout-cp}
exec /usr/bin/python3 "$2/tests/integration/control_plane_e2e_test.py" "$1" "$cp_bin"
