# Shell helpers for the turnout-bench integration tests, sourced first with
# the test's own arguments in effect:
#   <turnout-binary> <source-dir> [<turnout-bench-binary>]
# It sets TURNOUT, SRC, BENCH (turnout-bench, by default next to turnout's
# build) and TMP (a scratch folder, removed at exit); a test that compares
# throughput sets TOLERANCE before calling paired_ratio.
# Failures are counted in `failures`; each script exits 1 if it is not 0.

TURNOUT="$1"
SRC="$2"
BENCH="${3:-$(cd "$(dirname "$1")/.." && pwd)/bench/turnout_bench/turnout-bench}"
TMP="$(mktemp -d)"

failures=0
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT

fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# need_tools NAME TOOL...: exits 1 naming the first TOOL missing (in PATH or
# /usr/sbin, where Debian puts the servers).
need_tools() {
  local name=$1 tool
  shift
  for tool in "$@"; do
    command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] ||
      { echo "$name: $tool is missing (scripts/setup.sh)"; exit 1; }
  done
}

# finish NAME: the script's last line.
finish() {
  if [ $failures -ne 0 ]; then
    echo "$failures failure(s)"
    exit 1
  fi
  echo "$1: all passed"
}

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# bench NAME ARGS...: runs turnout-bench with --json $TMP/NAME.json; keeps
# stdout/stderr in $TMP/NAME.out/.err and the exit status in RC.
bench() {
  local name=$1; shift
  timeout 60 "$BENCH" --json "$TMP/$name.json" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err"
  RC=$?
}

# checks FILE < LINES: each line "description :: condition" is a Python
# condition over the JSON document `r` in FILE (one python3 per file: it is
# slow to start on a busy machine). A file that does not parse fails every
# line.
checks() {
  local out
  out=$(python3 - "$1" 3<&0 <<'PY'
import json, os, sys
try:
    r = json.load(open(sys.argv[1]))
except Exception as e:
    r, why = None, repr(e)
for line in os.fdopen(3):
    if "::" not in line:
        continue
    desc, cond = line.split("::", 1)
    if r is None:
        print("FAIL: %s: %s unreadable (%s)" % (desc.strip(), sys.argv[1], why))
        continue
    try:
        ok = bool(eval(cond, {"r": r}))
    except Exception as e:  # a missing field is a failure, not a crash
        ok = False
        desc += " (%r)" % e
    if not ok:
        print("FAIL: %s: %s" % (desc.strip(), cond.strip()))
PY
)
  if [ -n "$out" ]; then
    echo "$out"
    failures=$((failures + $(echo "$out" | grep -c '^FAIL')))
  fi
}

# paired_ratio NAME ROUNDS "PEER COMMAND" TURNOUT-BENCH-ARGS...: pairs of
# runs, the peer (wrk or h2load) then turnout-bench right after it, so both
# see about the same background load on a shared machine. Compares the best
# rate of each (a run starved by a neighbour only ever reads low, never
# high); fails if turnout-bench's best / the peer's best is outside
# 1 +- TOLERANCE. After ROUNDS pairs a ratio outside the band gets up to four
# more pairs before it counts: a CI machine running other tests beside this
# one can starve either side for a whole round or two, while a harness that
# really is slower or faster stays outside the band in every round.
# turnout-bench's reports are $TMP/NAME<round>.json.
paired_ratio() {
  local name=$1 rounds=$2 peer=$3 round p b rates=""
  shift 3
  for round in $(seq 1 $((rounds + 4))); do
    p=$($peer 2>/dev/null | awk '/^Requests\/sec/ {print $2} /^finished in/ {for (i = 1; i < NF; i++) if ($(i + 1) ~ /^req\/s/) print $i}' | head -1)
    bench "$name$round" "$@"
    b=$(sed -n 's/^Requests\/sec: *//p' "$TMP/$name$round.out")
    echo "$name round $round: ${peer%% *} ${p:-?} req/s, turnout-bench ${b:-?} req/s"
    rates="$rates ${p:-0}/${b:-0}"
    [ "$round" -lt "$rounds" ] && continue
    RATIO=$(python3 -c "
import sys
pairs = [tuple(map(float, x.split('/'))) for x in sys.argv[1:]]
print(round(max(b for p, b in pairs) / max(1, max(p for p, b in pairs)), 3))" $rates)
    python3 -c "import sys; sys.exit(0 if abs($RATIO - 1) <= $TOLERANCE else 1)" && break
  done
  echo "$name: turnout-bench / ${peer%% *} throughput ratio, best of $round rounds each: $RATIO (${peer#* })"
  python3 -c "import sys; sys.exit(0 if abs($RATIO - 1) <= $TOLERANCE else 1)" ||
    fail "$name: turnout-bench/${peer%% *} throughput ratio $RATIO is outside 1 +- $TOLERANCE"
}
