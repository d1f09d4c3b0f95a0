#!/usr/bin/env bash
# turnout --mode validate and the Envoy command line, on good and bad configs.
# Usage: validate_cli_test.sh <turnout-binary> <source-dir>. No network; each run is
# bounded by `timeout`.
set -u
BIN="$1"
SRC="$2"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
failures=0

# run <expected-rc> <args...>: runs the binary, keeps stdout/stderr in $TMP.
run() {
  local want="$1"; shift
  timeout 30 "$BIN" "$@" >"$TMP/out" 2>"$TMP/err"
  local rc=$?
  if [ "$rc" -ne "$want" ]; then
    echo "FAIL: turnout $* -> exit $rc, want $want"
    sed 's/^/  stdout: /' "$TMP/out"; sed 's/^/  stderr: /' "$TMP/err"
    failures=$((failures + 1))
    return 1
  fi
  return 0
}

expect_stdout_exact() {
  if [ "$(cat "$TMP/out")" != "$1" ]; then
    echo "FAIL: stdout '$(cat "$TMP/out")', want '$1'"; failures=$((failures + 1))
  fi
}
expect_stderr_contains() {
  if ! grep -qF -- "$1" "$TMP/err"; then
    echo "FAIL: stderr lacks '$1':"; sed 's/^/  stderr: /' "$TMP/err"; failures=$((failures + 1))
  fi
}

cd "$SRC"

# Examples that need features of later issues are refused (fail closed), with
# the field that needs them; every other example loads unchanged.
declare -A refused=(
  [examples/front-proxy/bootstrap.yaml]="layered_runtime: the runtime is not supported"
)
for f in examples/*/bootstrap.yaml; do
  if [ -n "${refused[$f]:-}" ]; then
    run 1 --mode validate -c "$f" && expect_stderr_contains "${refused[$f]}"
  elif run 0 --mode validate -c "$f"; then
    expect_stdout_exact "configuration '$f' OK"
  fi
done

# Good configs: tests/configs/good.
for f in tests/configs/good/*; do
  if run 0 --mode validate -c "$f"; then
    expect_stdout_exact "configuration '$f' OK"
  fi
done

# Bad configs: the first line says `# expect: <text the error must contain>`.
for f in tests/configs/bad/*; do
  want="$(head -1 "$f" | sed -n 's/^# expect: //p')"
  if [ -z "$want" ]; then echo "FAIL: $f has no '# expect:' line"; failures=$((failures + 1)); continue; fi
  if run 1 --mode validate -c "$f"; then
    expect_stderr_contains "error initializing configuration '$f': "
    expect_stderr_contains "$want"
    [ -s "$TMP/out" ] && { echo "FAIL: $f printed to stdout"; failures=$((failures + 1)); }
  fi
done

# --config-yaml alone, and merged over -c (proto MergeFrom: repeated fields append).
run 0 --mode validate --config-yaml 'admin: {address: {socket_address: {address: 127.0.0.1, port_value: 9901}}}' &&
  expect_stdout_exact "configuration '' OK"
run 1 --mode validate -c examples/service-sidecar/bootstrap.yaml \
  --config-yaml 'static_resources: {clusters: [{name: local_service}]}' &&
  expect_stderr_contains "static_resources.clusters[1].name: duplicate cluster 'local_service'"
run 1 --mode validate -c examples/service-sidecar/bootstrap.yaml --config-yaml 'bogus: 1' &&
  expect_stderr_contains "bogus: unknown field"

# Unknown fields: fatal unless --allow-unknown-static-fields (then a warning).
run 1 --mode validate -c tests/configs/bad/unknown_field.yaml
printf 'static_resources:\n  clusters:\n  - name: a\n    not_a_field: 1\n' >"$TMP/unknown.yaml"
run 0 --mode validate -c "$TMP/unknown.yaml" --allow-unknown-static-fields &&
  expect_stderr_contains "static_resources.clusters[0].not_a_field: unknown field ignored"

# Binary protobuf (.pb): an empty file is an empty bootstrap.
: >"$TMP/empty.pb"
run 0 --mode validate -c "$TMP/empty.pb"

# Missing file, and no config at all (Envoy's wording).
run 1 --mode validate -c "$TMP/does-not-exist.yaml" && expect_stderr_contains "unable to read file"
run 1 --mode validate && expect_stderr_contains "At least one of --config-path or --config-yaml"

# Command line errors exit 1 with a clear message.
run 1 --bogus-flag && expect_stderr_contains "PARSE ERROR: Argument: --bogus-flag"
run 1 --mode foo && expect_stderr_contains "error: unknown mode"
run 1 -l loud && expect_stderr_contains "invalid log level"
run 1 --component-log-level upstream:foo:bar && expect_stderr_contains "component log level not correctly specified"
run 1 --component-log-level foo:debug && expect_stderr_contains "invalid component specified"
run 1 --concurrency many && expect_stderr_contains "--concurrency"
run 1 -c && expect_stderr_contains "Missing a value"
run 0 --mode validate -c examples/service-sidecar/bootstrap.yaml --concurrency 2 -l debug \
  --component-log-level router:trace,pool:debug --log-format '%v' --service-node n1 \
  --service-cluster c1 --service-zone z1 --drain-time-s 5 --parent-shutdown-time-s 10 \
  --base-id 7 --reject-unknown-dynamic-fields --admin-address-path "$TMP/admin"
run 0 --version && grep -q "version" "$TMP/out" || { echo "FAIL: --version"; failures=$((failures + 1)); }
run 0 --help && grep -q -- "--config-path" "$TMP/out" || { echo "FAIL: --help"; failures=$((failures + 1)); }

# Serving a config that cannot start fails at once with the reason (the
# address is TEST-NET-1, never local, so bind() fails and nothing is sent).
cat >"$TMP/unbindable.yaml" <<'YAML'
static_resources:
  listeners:
  - name: l
    address: { socket_address: { address: 192.0.2.1, port_value: 10000 } }
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: s
          route_config: { virtual_hosts: [{ name: v, domains: ["*"], routes: [{ match: { prefix: "/" }, direct_response: { status: 200 } }] }] }
          http_filters:
          - name: router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
YAML
run 1 --mode serve -c "$TMP/unbindable.yaml" && expect_stderr_contains "listener 'l': cannot bind '192.0.2.1:10000'"
run 1 --mode init_only -c "$TMP/unbindable.yaml" && expect_stderr_contains "init_only is not supported"

# --log-path, --log-format and --component-log-level are honoured, not only
# parsed: the log goes to the file in the given pattern, with the component's
# own level (main at warning here, so its info lines are not written).
sed 's/192.0.2.1/127.0.0.1/; s/port_value: 10000/port_value: 0/' "$TMP/unbindable.yaml" >"$TMP/local.yaml"
timeout -s TERM 2 "$BIN" -c "$TMP/local.yaml" --log-path "$TMP/log/turnout.log" \
  --log-format 'LF %n %l: %v' -l info >"$TMP/out" 2>"$TMP/err"
grep -q "^LF main info: listener 'l' on 127.0.0.1:" "$TMP/log/turnout.log" ||
  { echo "FAIL: --log-path/--log-format: $(cat "$TMP/log/turnout.log" 2>&1)"; failures=$((failures + 1)); }
[ ! -s "$TMP/err" ] || { echo "FAIL: --log-path still wrote to stderr: $(cat "$TMP/err")"; failures=$((failures + 1)); }
timeout -s TERM 2 "$BIN" -c "$TMP/local.yaml" --log-path "$TMP/quiet.log" -l info \
  --component-log-level main:warning >"$TMP/out" 2>"$TMP/err"
if grep -q "listener 'l' on" "$TMP/quiet.log"; then
  echo "FAIL: --component-log-level main:warning still logged main's info lines"; failures=$((failures + 1))
fi
touch "$TMP/a-file"
run 1 -c "$TMP/local.yaml" --log-path "$TMP/a-file/turnout.log" && expect_stderr_contains "--log-path $TMP/a-file/turnout.log: "

if [ "$failures" -ne 0 ]; then
  echo "$failures failure(s)"
  exit 1
fi
echo "validate_cli_test: all passed"
