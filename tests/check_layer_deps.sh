#!/usr/bin/env bash
# Fails if the given layer directory includes anything from I/O or wire-format
# libraries. routing/ takes string views and returns values; nothing more.
set -u
dir=${1:?usage: check_layer_deps.sh DIR}
[ -d "$dir" ] || { echo "no such directory: $dir"; exit 2; }
pattern='#[[:space:]]*include[[:space:]]*[<"](boost/|asio|nghttp2/|openssl/|google/protobuf/|envoy/|yaml-cpp/|sqlite3)'
hits=$(grep -rnE "$pattern" "$dir" --include='*.h' --include='*.cc' || true)
if [ -n "$hits" ]; then
  echo "forbidden includes in $dir:"
  echo "$hits"
  exit 1
fi
files=$(find "$dir" -name '*.h' -o -name '*.cc' | wc -l)
[ "$files" -gt 0 ] || { echo "no sources in $dir"; exit 1; }
echo "$dir: $files files, no forbidden includes"
