#!/usr/bin/env bash
# CONNECT (HTTP/1.1 and HTTP/2): terminated at a TCP echo and for curl's
# --proxytunnel, proxied to a second turnout, refused where not enabled.
# Usage: connect_test.sh <turnout-binary> <source-dir>.
exec /usr/bin/python3 "$2/tests/integration/connect_test.py" "$1"
