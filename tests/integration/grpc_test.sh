#!/usr/bin/env bash
# grpcio clients -> turnout (h2c) -> grpcio servers over an h2c cluster, loopback only.
# Usage: grpc_test.sh <turnout-binary> <source-dir>.
exec /usr/bin/python3 "$2/tests/integration/grpc_test.py" "$1"
