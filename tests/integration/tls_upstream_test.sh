#!/usr/bin/env bash
# Upstream TLS (a cluster's UpstreamTlsContext) against the real turnout and
# real nginx TLS servers: HTTP/1.1 and h2 by ALPN, verification failures,
# mTLS, connection reuse, validate-time errors.
# Usage: tls_upstream_test.sh <turnout-binary> <source-dir>.
exec /usr/bin/python3 "$2/tests/integration/tls_upstream_test.py" "$1"
