#!/usr/bin/env bash
# turnout-cp replicas sharing a real etcd (`--store etcd://`), on loopback.
# Usage: control_plane_etcd_test.sh <turnout-binary> <source-dir>; turnout-cp
# comes from $TURNOUT_CP (set by CTest), etcd from $ETCD or the PATH (Debian's
# etcd-server, installed by scripts/setup.sh). Without etcd it exits 77, which
# CTest reports as skipped.
cp_bin=${TURNOUT_CP:-$(dirname "$1")/../config/control_plane/turnout-cp}
etcd_bin=${ETCD:-$(command -v etcd || true)}
if [ -z "$etcd_bin" ] || [ ! -x "$etcd_bin" ]; then
  echo "SKIP: no etcd binary (apt-get install etcd-server, or set ETCD)"
  exit 77
fi
ETCD=$etcd_bin exec /usr/bin/python3 "$2/tests/integration/control_plane_etcd_test.py" "$1" "$cp_bin"
