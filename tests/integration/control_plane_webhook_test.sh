#!/usr/bin/env bash
# turnout-cp's admission webhook over HTTPS (real binaries, loopback, port 0,
# certificates made with openssl at test time).
# Usage: control_plane_webhook_test.sh <turnout-binary> <source-dir>; turnout-cp
# comes from $TURNOUT_CP (set by CTest), else next to the build's turnout.
cp_bin=${TURNOUT_CP:-$(dirname "$1")/../config/control_plane/turnout-cp}
exec /usr/bin/python3 "$2/tests/integration/control_plane_webhook_test.py" "$1" "$cp_bin"
