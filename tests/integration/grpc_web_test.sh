#!/usr/bin/env bash
# gRPC-Web clients (HTTP/1.1 and HTTP/2) -> turnout -> grpcio servers, loopback only.
# Usage: grpc_web_test.sh <turnout-binary> <source-dir>.
exec /usr/bin/python3 "$2/tests/integration/grpc_web_test.py" "$1"
