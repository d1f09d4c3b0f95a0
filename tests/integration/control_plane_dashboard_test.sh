#!/usr/bin/env bash
# turnout-cp's web dashboard: routes over HTTP and the page in headless
# chromium (real binaries, loopback, port 0). Fails when chromium is missing.
# Usage: control_plane_dashboard_test.sh <turnout-binary> <source-dir>; turnout-cp
# comes from $TURNOUT_CP (set by CTest), else next to the build's turnout.
cp_bin=${TURNOUT_CP:-$(dirname "$1")/../config/control_plane/turnout-cp}
exec /usr/bin/python3 "$2/tests/integration/control_plane_dashboard_test.py" "$cp_bin"
