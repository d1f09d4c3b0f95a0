#!/usr/bin/env bash
# A bad access-log format is refused by --mode validate exactly as by --mode
# serve (both check it right after SnapshotBuilder::load), with the field path;
# the same bootstrap with a good format validates.
# Usage: access_log_validate_test.sh <turnout-binary> <source-dir>.
set -u
BIN="$1"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
failures=0
want="static_resources.listeners[0].filter_chains[0].filters[0].typed_config.access_log[0]: access_log 'log'"
want_reason="Not supported field in StreamInfo: NOT_A_COMMAND"

write() {
  cat >"$TMP/$1.yaml" <<YAML
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}
static_resources:
  listeners:
  - name: in
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: in
          access_log:
          - name: log
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog
              log_format: {text_format_source: {inline_string: "$2\n"}}
          route_config:
            virtual_hosts: [{name: v, domains: ["*"], routes: [{match: {prefix: "/"}, direct_response: {status: 200}}]}]
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
YAML
}
write bad '%RESPONSE_CODE% %NOT_A_COMMAND%'
write good '%RESPONSE_CODE% %RESPONSE_FLAGS%'

for mode in validate serve; do
  timeout 30 "$BIN" --mode "$mode" -c "$TMP/bad.yaml" --concurrency 1 \
    --admin-address-path "$TMP/admin.$mode" >"$TMP/out" 2>"$TMP/err.$mode"
  rc=$?
  if [ "$rc" -eq 0 ] || [ "$rc" -eq 124 ]; then
    echo "FAIL: --mode $mode exited $rc, want a config error"; failures=$((failures + 1))
  fi
  for w in "$want" "$want_reason"; do
    if ! grep -qF -- "$w" "$TMP/err.$mode"; then
      echo "FAIL: --mode $mode stderr lacks '$w':"; sed 's/^/  stderr: /' "$TMP/err.$mode"
      failures=$((failures + 1))
    fi
  done
  if [ -s "$TMP/admin.$mode" ]; then
    echo "FAIL: --mode $mode started an admin server"; failures=$((failures + 1))
  fi
done
if ! cmp -s <(grep -F "$want" "$TMP/err.validate") <(grep -F "$want" "$TMP/err.serve"); then
  echo "FAIL: validate and serve answer differently:"
  sed 's/^/  validate: /' "$TMP/err.validate"; sed 's/^/  serve: /' "$TMP/err.serve"
  failures=$((failures + 1))
fi
if ! timeout 30 "$BIN" --mode validate -c "$TMP/good.yaml" >"$TMP/out" 2>"$TMP/err"; then
  echo "FAIL: the good format does not validate:"; sed 's/^/  stderr: /' "$TMP/err"
  failures=$((failures + 1))
fi

if [ "$failures" -ne 0 ]; then echo "$failures failure(s)"; exit 1; fi
echo "access_log_validate_test: OK"
