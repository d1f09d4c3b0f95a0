#!/usr/bin/env bash
# Layering checks (DESIGN.md §3).
#   check_layer_deps.sh DIR
#     Fails if the layer directory includes anything from I/O or wire-format
#     libraries. routing/ takes string views and returns values; nothing more.
#   check_layer_deps.sh --private ROOT SUBDIR
#     Fails if a source outside ROOT/SUBDIR (and outside ROOT/tests and ROOT/bench,
#     which measure it) includes a
#     header of ROOT/SUBDIR: config/control_plane/ is turnout-cp's alone.
set -u
if [ "${1:-}" = "--typed-executor" ]; then
  # check_layer_deps.sh --typed-executor ROOT
  #   Fails if a source names Asio's type-erased executor or an I/O object,
  #   coroutine or token that defaults to it, instead of proxy/common/asio.h's
  #   aliases (Awaitable, use_awaitable, TcpSocket, SteadyTimer, ...) over
  #   the io_context's own executor (docs/threading.md). A timer or socket
  #   made with the default compiles and runs, only slower: this is what
  #   catches it.
  root=${2:?usage: check_layer_deps.sh --typed-executor ROOT}
  pattern='any_io_executor|asio::awaitable<|asio::use_awaitable\b|asio::steady_timer|asio::system_timer'
  pattern+='|(ip::)?tcp::(socket|acceptor|resolver)\b|beast::tcp_stream|asio::signal_set'
  pattern+='|posix::stream_descriptor'
  hits=$(cd "$root" && grep -rnE "$pattern" --include='*.h' --include='*.cc' proxy config bench tests \
         | grep -v '^proxy/common/asio.h:' || true)
  if [ -n "$hits" ]; then
    echo "type-erased Asio names (use proxy/common/asio.h's aliases):"
    echo "$hits"
    exit 1
  fi
  echo "every coroutine, socket and timer names the io_context's executor"
  exit 0
fi
if [ "${1:-}" = "--private" ]; then
  root=${2:?usage: check_layer_deps.sh --private ROOT SUBDIR}
  sub=${3:?usage: check_layer_deps.sh --private ROOT SUBDIR}
  [ -d "$root/$sub" ] || { echo "no such directory: $root/$sub"; exit 2; }
  hits=$(cd "$root" && grep -rnE "#[[:space:]]*include[[:space:]]*\"$sub/" \
           --include='*.h' --include='*.cc' . \
         | grep -vE "^\./($sub|tests|bench)/" | grep -v '^\./build' || true)
  if [ -n "$hits" ]; then
    echo "$sub is private to itself, but these include it:"
    echo "$hits"
    exit 1
  fi
  echo "$sub: included only from itself and tests"
  exit 0
fi
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
