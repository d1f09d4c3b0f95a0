#!/usr/bin/env bash
# turnout-route-check and the routing-key header (issue #8): without a
# RoutingKey filter, x-turnout-routing-key is an ordinary header matched as the
# client sent it; with the filter, the extracted key replaces it (or removes it
# when no key is found), as in the proxy.
# Usage: route_check_cli_test.sh <turnout-binary> <source-dir>. The tool is
# found beside the build's config/ folder, or in $TURNOUT_ROUTE_CHECK. No network.
set -u
BIN="$1"
RC="${TURNOUT_ROUTE_CHECK:-$(dirname "$BIN")/../config/turnout-route-check}"
if [ ! -x "$RC" ]; then echo "FAIL: no turnout-route-check at $RC"; exit 1; fi
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
failures=0

# check <expected-rc> <bootstrap> <tests> <line that stdout must contain>...
check() {
  local want="$1" boot="$2" tests="$3"; shift 3
  timeout 30 "$RC" -c "$boot" -t "$tests" >"$TMP/out" 2>"$TMP/err"
  local rc=$?
  if [ "$rc" -ne "$want" ]; then
    echo "FAIL: turnout-route-check -c $(basename "$boot") -t $(basename "$tests") -> exit $rc, want $want"
    sed 's/^/  stdout: /' "$TMP/out"; sed 's/^/  stderr: /' "$TMP/err"
    failures=$((failures + 1))
    return
  fi
  for line in "$@"; do
    if ! grep -qF -- "$line" "$TMP/out"; then
      echo "FAIL: stdout lacks '$line':"; sed 's/^/  stdout: /' "$TMP/out"
      failures=$((failures + 1))
    fi
  done
}

# bootstrap <file> <http_filters entries>: reviews has an indexed run of three
# sandbox routes; ratings has a single (not indexed) sandbox route.
bootstrap() {
  cat >"$1" <<YAML
static_resources:
  listeners:
  - name: ingress
    address: { socket_address: { address: 127.0.0.1, port_value: 10000 } }
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          route_config:
            virtual_hosts:
            - name: reviews
              domains: ["reviews"]
              routes:
              - match: { prefix: "/", headers: [{ name: x-turnout-routing-key, string_match: { exact: feat-x } }] }
                route: { cluster: reviews-feat-x }
              - match: { prefix: "/", headers: [{ name: X-Turnout-Routing-Key, string_match: { exact: feat-y } }] }
                route: { cluster: reviews-feat-y }
              - match: { prefix: "/", headers: [{ name: x-turnout-routing-key, string_match: { exact: "feat-x,feat-y" } }] }
                route: { cluster: reviews-joined }
              - match: { prefix: "/" }
                route: { cluster: reviews }
            - name: ratings
              domains: ["ratings"]
              routes:
              - match: { prefix: "/", headers: [{ name: x-turnout-routing-key, exact_match: feat-x }] }
                route: { cluster: ratings-feat-x }
              - match: { prefix: "/" }
                route: { cluster: ratings }
          http_filters:
$2
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
  clusters:
YAML
  for c in reviews reviews-feat-x reviews-feat-y reviews-joined ratings ratings-feat-x; do
    cat >>"$1" <<YAML
  - name: $c
    load_assignment:
      cluster_name: $c
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 9 } } } }] }]
YAML
  done
}

bootstrap "$TMP/no_filter.yaml" ""
bootstrap "$TMP/filter.yaml" "          - name: turnout.filters.http.routing_key
            typed_config: { \"@type\": type.googleapis.com/turnout.extensions.filters.http.routing_key.v3.RoutingKey }"

cat >"$TMP/no_filter_tests.yaml" <<'YAML'
tests:
- test_name: raw header reaches the indexed fork
  input: { authority: reviews, additional_request_headers: [{ key: x-turnout-routing-key, value: feat-x }] }
  validate: { cluster_name: reviews-feat-x, routing_key: "" }
- test_name: header names are case-insensitive
  input: { authority: reviews, additional_request_headers: [{ key: X-Turnout-Routing-Key, value: feat-y }] }
  validate: { cluster_name: reviews-feat-y }
- test_name: a repeated header is matched joined with ','
  input:
    authority: reviews
    additional_request_headers:
    - { key: x-turnout-routing-key, value: feat-x }
    - { key: x-turnout-routing-key, value: feat-y }
  validate: { cluster_name: reviews-joined }
- test_name: equal repeated values do not match one of them
  input:
    authority: reviews
    additional_request_headers:
    - { key: x-turnout-routing-key, value: feat-x }
    - { key: x-turnout-routing-key, value: feat-x }
  validate: { cluster_name: reviews }
- test_name: baggage means nothing without the filter
  input: { authority: reviews, additional_request_headers: [{ key: baggage, value: "turnout-routing-key=feat-x" }] }
  validate: { cluster_name: reviews, routing_key: "" }
- test_name: raw header reaches a non-indexed fork
  input: { authority: ratings, additional_request_headers: [{ key: x-turnout-routing-key, value: feat-x }] }
  validate: { cluster_name: ratings-feat-x }
- test_name: no header is the baseline
  input: { authority: ratings }
  validate: { cluster_name: ratings }
YAML

cat >"$TMP/filter_tests.yaml" <<'YAML'
tests:
- test_name: the filter's key replaces a forged header
  input:
    authority: reviews
    additional_request_headers:
    - { key: x-turnout-routing-key, value: feat-x }
    - { key: baggage, value: "turnout-routing-key=feat-y" }
  validate: { cluster_name: reviews-feat-y, routing_key: feat-y }
- test_name: no key found removes a forged header
  input:
    authority: reviews
    additional_request_headers:
    - { key: x-turnout-routing-key, value: feat-x }
    - { key: x-turnout-routing-key, value: feat-y }
  validate: { cluster_name: reviews, routing_key: "" }
- test_name: the plain header is a default source
  input: { authority: ratings, additional_request_headers: [{ key: x-turnout-routing-key, value: feat-x }] }
  validate: { cluster_name: ratings-feat-x, routing_key: feat-x }
YAML

check 0 "$TMP/no_filter.yaml" "$TMP/no_filter_tests.yaml" \
  "PASS  raw header reaches the indexed fork" "route check: 7 passed, 0 failed"
check 0 "$TMP/filter.yaml" "$TMP/filter_tests.yaml" "route check: 3 passed, 0 failed"
# The no-filter expectations under the filter: the tool must tell them apart
# (a key is now reported; two different values are a conflict, so no key and
# no header; two equal ones are the key; baggage is a source).
check 1 "$TMP/filter.yaml" "$TMP/no_filter_tests.yaml" \
  "FAIL  raw header reaches the indexed fork" \
  "FAIL  a repeated header is matched joined with ','" \
  "FAIL  equal repeated values do not match one of them" \
  "FAIL  baggage means nothing without the filter" \
  "PASS  raw header reaches a non-indexed fork" "route check: 3 passed, 4 failed"

if [ "$failures" -ne 0 ]; then
  echo "$failures failure(s)"
  exit 1
fi
echo "route_check_cli_test: all passed"
