#!/usr/bin/env bash
# Bad HTTP/1.1 input against the real turnout on loopback: raw sockets, every
# probe answered with a 4xx/501 and a close, or closed, within seconds.
# Usage: codec_hardening_test.sh <turnout-binary> <source-dir>.
exec python3 "$2/tests/integration/codec_hardening_test.py" "$1"
