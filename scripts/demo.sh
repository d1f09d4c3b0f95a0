#!/usr/bin/env bash
# The demo: builds turnout, validates the sandbox-routing example bootstrap
# the way `envoy --mode validate` would, then shows where requests with and
# without a routing key go (baggage, tracestate, plain header) by running the
# real routing-key extraction and route table over examples/sandbox-routing,
# then runs turnout for real in front of four backends and sends requests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
BUILD_DIR=${BUILD_DIR:-build}
export BUILD_DIR
echo "== building turnout (first build fetches the Envoy API protos and takes a few minutes)"
scripts/build.sh >/tmp/turnout-demo-build.log 2>&1 || { tail -30 /tmp/turnout-demo-build.log; exit 1; }

example=examples/sandbox-routing
echo
echo "== turnout --mode validate -c $example/bootstrap.yaml"
"$BUILD_DIR/proxy/turnout" --mode validate -c "$example/bootstrap.yaml"
echo
echo "== a broken bootstrap is rejected with the field path"
broken=$(mktemp --suffix=.yaml)
sed 's/port_value: 18082/port_value: 180820/' "$example/bootstrap.yaml" >"$broken"
"$BUILD_DIR/proxy/turnout" --mode validate -c "$broken" || true
rm -f "$broken"
echo
echo "== where each request goes (turnout-route-check -c $example/bootstrap.yaml -t $example/route_tests.yaml)"
"$BUILD_DIR/config/turnout-route-check" -c "$example/bootstrap.yaml" -t "$example/route_tests.yaml"
echo
echo "== the real proxy: examples/sandbox-routing/run.sh (turnout between curl and four backends)"
"$example/run.sh" "$BUILD_DIR/proxy/turnout"
echo
echo "== the control plane: examples/control-plane/run.sh (turnout-cp pushes sandbox routes to a turnout sidecar over ADS)"
examples/control-plane/run.sh "$BUILD_DIR"
