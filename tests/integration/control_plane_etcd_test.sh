#!/usr/bin/env bash
# Two turnout-cp replicas share one state in a real etcd (started by the test).
# Usage: control_plane_etcd_test.sh <turnout-binary> <source-dir>; turnout-cp from $TURNOUT_CP.
cp_bin=${TURNOUT_CP:-$(dirname "$1")/../config/control_plane/turnout-cp}
exec /usr/bin/python3 "$2/tests/integration/control_plane_etcd_test.py" "$1" "$cp_bin"
