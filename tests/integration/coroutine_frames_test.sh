#!/usr/bin/env bash
# The coroutine frames every proxied request allocates stay small
# (bench/compare/frame_layout.py reads their layout from the objects'
# DWARF). With hundreds of requests in flight each line of a frame that a
# request touches is a cache miss on its way up and again on its way back
# (docs/memory.md, "Per request in flight"); GCC gives every local and
# every co_await's temporaries a slot of their own, so one more local reply
# awaited in place, or a rare path's locals, grows the frame of every
# request. The bounds are today's sizes with some room; the router's
# per-request coroutines (gone: ActiveStream::run awaits the attempts'
# steps) must not come back.
# Exits 77 (skipped) when the objects carry no debug info (not a
# RelWithDebInfo or Debug build).
# Usage: coroutine_frames_test.sh <turnout-binary> <source-dir> [<turnout-bench-binary>]
set -u
TURNOUT=$1
SRC=$2
OBJ="$(cd "$(dirname "$TURNOUT")" && pwd)/CMakeFiles/turnout_proxy.dir"
command -v readelf >/dev/null || { echo "coroutine_frames_test: readelf is missing"; exit 1; }
command -v nm >/dev/null || { echo "coroutine_frames_test: nm is missing"; exit 1; }
failures=0

# check OBJECT PATTERN MAX: the one frame matching PATTERN is at most MAX bytes.
check() {
  local out
  out=$(/usr/bin/python3 "$SRC/bench/compare/frame_layout.py" "$OBJ/$1" "$2" 2>&1)
  if [ $? -ne 0 ]; then
    if ! readelf -S "$OBJ/$1" 2>/dev/null | grep -q debug_info; then
      echo "coroutine_frames_test: $1 has no debug info: skipped"
      exit 77
    fi
    echo "FAIL: no frame $2 in $1: $out"
    failures=$((failures + 1))
    return
  fi
  local size
  size=$(echo "$out" | awk 'NR == 1 { print $1 }')
  if [ "$(echo "$out" | wc -l)" -ne 1 ] || [ "$size" -gt "$3" ]; then
    echo "FAIL: $2: $size bytes (at most $3), or more than one frame matched: $out"
    failures=$((failures + 1))
  else
    echo "ok: $2 $size bytes (at most $3)"
  fi
}

# A routed request's one frame: the stream's, which awaits the router's
# attempts and their upstream exchanges itself (1,088 bytes; 728 + 512
# when RouterFilter::attempt() was a frame of its own, and 232 more before
# that for UpstreamRequest::run()).
check stream/active_stream.cc.o _ZN7turnout5proxy12ActiveStream3runEv.Frame 1200
# A request mirror's exchange.
check router/upstream_request.cc.o _ZN7turnout5proxy15UpstreamRequest3runEv.Frame 320
# No frame of the router's or of the exchange's between: forward() and
# attempt() are gone, and the router and the stream do not call
# UpstreamRequest::run().
for gone in _ZN7turnout5proxy12RouterFilter7forwardEv.Frame \
    _ZN7turnout5proxy12RouterFilter7attemptEjRNS1_7OutcomeE.Frame; do
  if /usr/bin/python3 "$SRC/bench/compare/frame_layout.py" "$OBJ/router/router_filter.cc.o" \
      "$gone" >/dev/null 2>&1; then
    echo "FAIL: $gone: the router makes a coroutine frame per request again"
    failures=$((failures + 1))
  fi
done
for o in router/router_filter.cc.o stream/active_stream.cc.o; do
  if nm "$OBJ/$o" | grep -q ' U _ZN7turnout5proxy15UpstreamRequest3runEv$'; then
    echo "FAIL: $o calls UpstreamRequest::run() (a frame per request)"
    failures=$((failures + 1))
  fi
done
[ $failures -eq 0 ] || { echo "$failures failure(s)"; exit 1; }
echo "coroutine_frames_test: ok"
