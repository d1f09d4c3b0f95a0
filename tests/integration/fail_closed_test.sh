#!/usr/bin/env bash
# Fail closed: a listener whose DownstreamTlsContext cannot be built (here a
# certificate that is not PEM) is refused by --mode validate AND by --mode serve
# (which must exit non-zero with the field path, never serve plaintext).
# Usage: fail_closed_test.sh <turnout-binary> <source-dir>.
set -u
BIN="$1"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
failures=0
want='static_resources.listeners[0].filter_chains[0].transport_socket.typed_config.common_tls_context.tls_certificates[0].certificate_chain: contains no PEM certificate'

cat >"$TMP/tls.yaml" <<'YAML'
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}
static_resources:
  listeners:
  - name: tls_in
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            tls_certificates: [{certificate_chain: {inline_string: cert}, private_key: {inline_string: key}}]
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: in
          route_config:
            virtual_hosts: [{name: v, domains: ["*"], routes: [{match: {prefix: "/"}, direct_response: {status: 200}}]}]
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
YAML

for mode in validate serve; do
  # serve must fail at start-up: the timeout only bounds a broken build that serves.
  timeout 30 "$BIN" --mode "$mode" -c "$TMP/tls.yaml" --concurrency 1 \
    --admin-address-path "$TMP/admin.$mode" >"$TMP/out" 2>"$TMP/err"
  rc=$?
  if [ "$rc" -eq 0 ] || [ "$rc" -eq 124 ]; then
    echo "FAIL: --mode $mode exited $rc, want a config error"; failures=$((failures + 1))
  fi
  if ! grep -qF -- "$want" "$TMP/err"; then
    echo "FAIL: --mode $mode stderr lacks the field path:"; sed 's/^/  stderr: /' "$TMP/err"
    failures=$((failures + 1))
  fi
  if [ -s "$TMP/admin.$mode" ]; then
    echo "FAIL: --mode $mode started an admin server"; failures=$((failures + 1))
  fi
done

# The same bootstrap without the transport socket is accepted: the refusal is the
# TLS context's, nothing else's.
sed '/transport_socket:/,/private_key/d; s/^      filters:/    - filters:/' "$TMP/tls.yaml" >"$TMP/plain.yaml"
if ! timeout 30 "$BIN" --mode validate -c "$TMP/plain.yaml" >"$TMP/out" 2>"$TMP/err"; then
  echo "FAIL: the plaintext twin does not validate:"; sed 's/^/  stderr: /' "$TMP/err"
  failures=$((failures + 1))
fi

if [ "$failures" -ne 0 ]; then echo "$failures failure(s)"; exit 1; fi
echo "fail_closed_test: OK"
