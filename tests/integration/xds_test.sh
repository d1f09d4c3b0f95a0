#!/usr/bin/env bash
# turnout as an xDS client (ADS over gRPC) driven by a python3-grpcio management server.
# Usage: xds_test.sh <turnout-binary> <source-dir>.
exec /usr/bin/python3 "$2/tests/integration/xds_test.py" "$1"
