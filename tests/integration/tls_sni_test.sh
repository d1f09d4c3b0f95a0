#!/usr/bin/env bash
# Filter chain selection by SNI (filter_chain_match.server_names,
# default_filter_chain) against the real turnout on loopback: curl --resolve
# and openssl s_client -servername pick chains with their own certificates,
# ALPN and routes. Usage: tls_sni_test.sh <turnout-binary> <source-dir>.
exec /usr/bin/python3 "$2/tests/integration/tls_sni_test.py" "$1"
