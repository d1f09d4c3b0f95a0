#!/usr/bin/env bash
# bench/compare/run.py and scale.py end to end with tiny runs: the direct
# origin is measured first and every proxy row carries its load-side headroom,
# the load-bound verdict that follows from it, CPU per request, busy share and
# syscalls per request (counted by strace, divided by turnout-bench's
# responses); scale.py reports ready time, RSS and bytes per sandbox. The
# figures themselves are not checked (a busy 2-core machine), their
# consistency is.
# Usage: bench_compare_test.sh <turnout-binary> <source-dir> [<turnout-bench-binary>]
set -u
. "$2/tests/integration/support/bench_lib.sh"
need_tools bench_compare_test nginx haproxy taskset curl openssl python3
RUN="$SRC/bench/compare/run.py"
SCALE="$SRC/bench/compare/scale.py"
STRACE=0
strace -c -o /dev/null true >/dev/null 2>&1 && STRACE=1

# --- 1. the load-bound rule, on made-up rows ---------------------------------
PYTHONDONTWRITEBYTECODE=1 python3 - "$SRC/bench/compare" <<'PY' || fail "mark_load_bound"
import sys
sys.path.insert(0, sys.argv[1])
import run
rows = [{"proxy": "direct", "saturation": {"rps": 1300}},
        {"proxy": "a", "saturation": {"rps": 1000}},    # exactly 1.3x: enough
        {"proxy": "b", "saturation": {"rps": 1001}},    # just under 1.3x
        {"proxy": "c", "skipped": "cannot"}]
run.mark_load_bound(rows, 1.3)
assert rows[1]["load_bound"] is False and abs(rows[1]["direct_ratio"] - 1.3) < 1e-9, rows[1]
assert rows[2]["load_bound"] is True, rows[2]
assert "load_bound" not in rows[0] and "load_bound" not in rows[3]
rows = [{"proxy": "direct", "failed": ["x"]}, {"proxy": "a", "saturation": {"rps": 1}}]
run.mark_load_bound(rows, 1.3)
assert rows[1]["load_bound"] is None  # no direct run: unknown, never "ok"
summary = """% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 60.00    0.000600           2       300       100 recvmsg
 40.00    0.000400           2       200           sendmsg
------ ----------- ----------- --------- --------- ----------------
100.00    0.001000           2       500       100 total
"""
assert run.parse_strace_summary(summary) == {"recvmsg": {"calls": 300, "errors": 100},
                                             "sendmsg": {"calls": 200, "errors": 0}}
# Busy is measured against what the proxy was allowed: under a 40 % quota,
# 39 % of the CPU is saturated and 20 % is not.
assert run.busy_of_allowance({"proxy_cpu_busy": 0.39, "cpu_quota": 0.4}) > run.BUSY_SATURATED
assert run.busy_of_allowance({"proxy_cpu_busy": 0.2, "cpu_quota": 0.4}) < run.BUSY_SATURATED
assert run.busy_of_allowance({"proxy_cpu_busy": 0.39}) < run.BUSY_SATURATED
assert "(not saturated)" not in run.busy_cell({"proxy_cpu_busy": 0.39, "cpu_quota": 0.4,
                                              "throttled_share": 0.9})
assert "of its 40 % quota" in run.busy_cell({"proxy_cpu_busy": 0.39, "cpu_quota": 0.4})
PY

# --- 2. run.py: one scenario, turnout and haproxy ----------------------------
timeout 240 python3 "$RUN" --turnout "$TURNOUT" --bench "$BENCH" --scenarios h1-keepalive-0b \
  --proxies turnout,haproxy --duration 1 --warmup 1 --connections 16 --rounds 2 \
  --strace-requests 500 --strace-duration 3 --out "$TMP/out" >"$TMP/run.out" 2>"$TMP/run.err"
rc=$?
[ $rc = 0 ] || fail "run.py exited $rc: $(tail -20 "$TMP/run.err")"
JSON=$(ls "$TMP"/out/*.json 2>/dev/null | head -1)
MD="${JSON%.json}.md"
[ -f "$JSON" ] && [ -f "$MD" ] || fail "run.py wrote no JSON/md: $(ls "$TMP/out")"
checks "$JSON" <<CHECKS
three rows, direct first :: [x["proxy"] for x in r["rows"]] == ["direct", "turnout", "haproxy"]
every row measured :: all("saturation" in x and x["saturation"]["requests"] > 0 for x in r["rows"])
headroom is direct over proxy :: all(abs(x["direct_ratio"] - r["rows"][0]["saturation"]["rps"] / x["saturation"]["rps"]) < 1e-6 for x in r["rows"][1:])
load-bound follows the 1.3x rule :: all(x["load_bound"] == (x["direct_ratio"] < 1.3) for x in r["rows"][1:])
CPU per request and busy share :: all(x["cpu_us_per_request"] > 0 and 0 < x["proxy_cpu_busy"] < 1.5 for x in r["rows"][1:])
whole-CPU busy shares :: all(0 < x["load_cpus_busy"] <= 1 for x in r["rows"]) and all(0 < x["proxy_cpus_busy"] <= 1 for x in r["rows"][1:])
strace on when it can trace :: r["strace"] == bool($STRACE)
syscalls per request :: not r["strace"] or all(x["syscalls"]["requests"] > 0 and abs(x["syscalls"]["per_request"] - x["syscalls"]["calls"] / x["syscalls"]["requests"]) < 1e-9 for x in r["rows"][1:])
by name adds up :: not r["strace"] or all(sum(c["calls"] for c in x["syscalls"]["by_name"].values()) == x["syscalls"]["calls"] for x in r["rows"][1:])
worker threads traced (reads and writes) :: not r["strace"] or all(any(n.startswith(("recv", "read")) for n in x["syscalls"]["by_name"]) and any(n.startswith(("send", "write")) for n in x["syscalls"]["by_name"]) for x in r["rows"][1:])
window by request count :: not r["strace"] or all(x["syscalls"]["requests"] <= 500 and x["syscalls"]["connections"] == 8 for x in r["rows"][1:])
two rounds each :: r["rounds"] == 2 and all(len(x["rounds"]) == 2 for x in r["rows"])
a proxy row is its lower-CPU round (the lower median of two) :: all(x["cpu_us_per_request"] == min(y["cpu_us_per_request"] for y in x["rounds"]) for x in r["rows"][1:])
the direct row is its faster round :: r["rows"][0]["saturation"]["rps"] == max(y["rps"] for y in r["rows"][0]["rounds"])
turnout over haproxy pass by pass :: sorted(a["cpu_us_per_request"] / b["cpu_us_per_request"] for a, b in zip(r["rows"][1]["rounds"], r["rows"][2]["rounds"])) == r["rows"][1]["vs_per_round"]["haproxy"]["ratios"]
the lower median of the passes :: r["rows"][1]["vs_per_round"]["haproxy"]["median"] == r["rows"][1]["vs_per_round"]["haproxy"]["ratios"][0]
CHECKS
grep -q "## turnout against each peer, pass by pass" "$MD" || fail "md lacks the pass-by-pass ratios"
grep -q "| load side |" "$MD" || fail "md lacks the load side column"
grep -qE "\| turnout \| (ok|\*\*load-bound\*\*) \([0-9.]+x, load CPUs [0-9]+ %\) \|" "$MD" || fail "md lacks turnout's load-side verdict: $(cat "$MD")"
if [ $STRACE = 1 ]; then
  grep -q "## Syscalls per request by name" "$MD" || fail "md lacks the syscall table"
else
  grep -q "Syscalls/req: not measured" "$MD" || fail "md does not say syscalls were not measured"
fi
# --- 2a. the h2-upstream scenarios: h2c to the proxy, h2c to the origin ----
PYTHONDONTWRITEBYTECODE=1 python3 - "$SRC/bench/compare" "$TMP" <<'PY' || fail "h2-upstream configs"
import sys
sys.path.insert(0, sys.argv[1])
import run
boot = run.envoy_style_bootstrap(10000, 10001, 10002, 0, True, h2_upstream=True)
assert "explicit_http_config: { http2_protocol_options: {} }" in boot, boot
assert "http2_protocol_options" not in run.envoy_style_bootstrap(10000, 10001, 10002, 0, True)
open(sys.argv[2] + "/h2up.yaml", "w").write(boot)
assert "server o 127.0.0.1:10002 proto h2" in run.haproxy_conf(sys.argv[2], 10000, "h2c", 10002, 1, 0, True)
assert "server o 127.0.0.1:10002\n" in run.haproxy_conf(sys.argv[2], 10000, "h2c", 10002, 1, 0)
assert run.H2_UPSTREAM_SCENARIOS <= set(run.SCENARIOS) and "nginx" not in run.H2_UPSTREAM
PY
"$TURNOUT" --mode validate -c "$TMP/h2up.yaml" >/dev/null 2>"$TMP/h2up.err" ||
  fail "turnout refuses the h2-upstream bench config: $(cat "$TMP/h2up.err")"
timeout 240 python3 "$RUN" --turnout "$TURNOUT" --bench "$BENCH" --scenarios h2c-h2-upstream-1-stream \
  --proxies turnout,nginx --duration 1 --warmup 1 --no-strace --out "$TMP/h2up" \
  >"$TMP/h2up.out" 2>"$TMP/h2up.run.err"
rc=$?
[ $rc = 0 ] || fail "run.py h2c-h2-upstream exited $rc: $(tail -20 "$TMP/h2up.run.err")"
checks "$(ls "$TMP"/h2up/*.json | head -1)" <<'CHECKS'
direct, turnout, nginx :: [x["proxy"] for x in r["rows"]] == ["direct", "turnout", "nginx"]
turnout measured through its HTTP/2 cluster :: r["rows"][1]["saturation"]["requests"] > 0
nginx says why not :: r["rows"][2]["skipped"] == "nginx does not proxy to an HTTP/2 origin"
CHECKS

# --- 2b. --proxy-cpu-quota: the proxy in a CPU cgroup of its own -----------
# Needs a writable CPU cgroup (root; cgroup v2 with +cpu, or v1's cpu).
QUOTA_OK=0
if [ "$(id -u)" = 0 ] && { grep -qw cpu /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null ||
                           [ -w /sys/fs/cgroup/cpu/cpu.cfs_quota_us ] ||
                           [ -w /sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us ]; }; then
  QUOTA_OK=1
fi
if [ $QUOTA_OK = 1 ]; then
  timeout 240 python3 "$RUN" --turnout "$TURNOUT" --bench "$BENCH" --scenarios h1-keepalive-0b \
    --proxies turnout --duration 2 --warmup 1 --connections 16 --no-strace --proxy-cpu-quota 0.3 \
    --out "$TMP/quota" >"$TMP/quota.out" 2>"$TMP/quota.err"
  rc=$?
  [ $rc = 0 ] || fail "run.py --proxy-cpu-quota exited $rc: $(tail -20 "$TMP/quota.err")"
  QJSON=$(ls "$TMP"/quota/*.json 2>/dev/null | head -1)
  checks "$QJSON" <<'CHECKS'
the quota is recorded :: r["proxy_cpu_quota"] == 0.3 and r["rows"][1]["cpu_quota"] == 0.3
the direct row runs unlimited :: "cpu_quota" not in r["rows"][0]
the proxy kept to its quota :: 0 < r["rows"][1]["proxy_cpu_busy"] < 0.3 * 1.15
the proxy was throttled (it, not the load side, was the limit) :: r["rows"][1]["throttled_share"] > 0.3
CHECKS
  grep -q "\*\*CPU quota\*\*" "${QJSON%.json}.md" || fail "md does not say the proxy ran under a quota"
  leftover=$(ls -d /sys/fs/cgroup/turnout-compare-* /sys/fs/cgroup/cpu/turnout-compare-* \
             /sys/fs/cgroup/cpu,cpuacct/turnout-compare-* 2>/dev/null)
  [ -z "$leftover" ] || fail "run.py left its cgroups behind: $leftover"
else
  echo "bench_compare_test: no writable CPU cgroup here; --proxy-cpu-quota not run"
fi
python3 "$RUN" --proxy-cpu-quota 1.5 2>"$TMP/err"; rc=$?
[ $rc != 0 ] && grep -q "proxy-cpu-quota must be" "$TMP/err" || fail "quota 1.5: rc $rc $(cat "$TMP/err")"

python3 "$RUN" --proxies frob 2>"$TMP/err"; rc=$?
[ $rc != 0 ] && grep -q "unknown proxy 'frob'" "$TMP/err" || fail "unknown proxy: rc $rc $(cat "$TMP/err")"

# --- 3. scale.py: 1 and 100 sandboxes ----------------------------------------
timeout 120 python3 "$SCALE" --turnout "$TURNOUT" --sandboxes 1,100 --proxies turnout,haproxy \
  --settle 0.1 --out "$TMP/scale" >"$TMP/scale.out" 2>"$TMP/scale.err"
rc=$?
[ $rc = 0 ] || fail "scale.py exited $rc: $(tail -20 "$TMP/scale.err")"
SJSON=$(ls "$TMP"/scale/*-scale.json 2>/dev/null | head -1)
checks "$SJSON" <<'CHECKS'
rows for the small config, 1 and 100 :: [(x["proxy"], x["sandboxes"]) for x in r["rows"]] == [("turnout", 0), ("turnout", 1), ("turnout", 100), ("haproxy", 0), ("haproxy", 1), ("haproxy", 100)]
ready and RSS :: all(0 < x["ready_s"] < 60 and x["rss_ready_kib"] > 1024 for x in r["rows"])
every probe routed :: [x["routed_ok"] for x in r["rows"]] == ["1/1", "2/2", "4/4"] * 2
bytes per sandbox from the small config :: all(abs(x["bytes_per_sandbox"] - (x["rss_ready_kib"] - r["rows"][3 * (x["proxy"] == "haproxy")]["rss_ready_kib"]) * 1024 / x["sandboxes"]) < 1e-6 for x in r["rows"] if x["sandboxes"])
stats for the last sandbox :: all(x["stats_last_sandbox"] is True for x in r["rows"] if x["proxy"] == "turnout" and x["sandboxes"])
update time waits for live config :: all(x["update_ms"] == "n/a (in-process: snapshot_publisher_test)" for x in r["rows"] if x["proxy"] == "turnout")
concurrency 2 :: r["concurrency"] == 2
CHECKS
grep -q "n/a (in-process: snapshot_publisher_test)" "${SJSON%.json}.md" || fail "scale md lacks the update column"

finish bench_compare_test
