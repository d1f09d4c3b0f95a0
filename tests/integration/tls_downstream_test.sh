#!/usr/bin/env bash
# Downstream TLS against the real turnout on loopback: curl (HTTP/1.1 and h2 by
# ALPN), openssl s_client, mTLS, static secrets, plaintext on the TLS port.
# Usage: tls_downstream_test.sh <turnout-binary> <source-dir>.
exec /usr/bin/python3 "$2/tests/integration/tls_downstream_test.py" "$1"
