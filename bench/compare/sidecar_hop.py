#!/usr/bin/python3
"""Added latency of one sidecar hop: client -> outbound sidecar -> inbound
sidecar -> app, against the same chain without sidecars and with haproxy in
the same two positions (issue #11).

Three pairs of "pods" (network namespaces on a private bridge, made with
tests/integration/support/netns.py as in sidecar_e2e_test.py), one per
variant, all up at once so that the variants can be measured in turns at each
rate:

  direct   client pod -> app pod; no capture, no proxy.
  turnout  both pods captured by `turnout iptables`; in each a turnout sidecar
           (UID 1337, --concurrency 1) from `turnout-cp bootstrap --mode
           capture`, driven by one turnout-cp: client -> 15001 -> the 8080
           listener (route by Host to the `app` service's endpoint) -> 15006
           -> InboundPassthroughCluster -> the app.
  haproxy  the same capture; in each pod haproxy (UID 1337, nbthread 1, HTTP
           mode, keep-alive both sides, http-reuse always) on 15001 / 15006,
           forwarding to `server s 0.0.0.0:0`, the original destination
           (haproxy reads SO_ORIGINAL_DST of a REDIRECTed connection).

The app is nginx answering a 14-byte body. turnout-bench runs in the client
pod. Both proxies of a variant share --cpus-proxy (default CPU 1); the load
generator and the origin share --cpus-load (default CPU 0). First a short
closed-loop run of each variant finds its knee (its saturation rate); then
open loop (coordinated omission corrected) at each of --rates, each variant
in turn, --rounds times. Every run checks that the origin served every
request (nginx stub_status) and that nothing failed, and reads each proxy's
CPU time (/proc utime+stime) around it.

Writes bench/results/<date>-<machine>-sidecar-hop.{json,md}. Cleans up its
namespaces (and with them every iptables rule and process) on any exit.

Usage: bench/compare/sidecar_hop.py [--rates 500,1000,2000] [--duration 20] ...
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(ROOT, "tests", "integration", "support"))
sys.path.insert(0, HERE)
import netns  # noqa: E402
import run as compare  # noqa: E402  (bench/compare/run.py: /proc accounting, versions)
from turnout_cp_process import TurnoutCp  # noqa: E402

PROXY_UID = 1337
CP_IP = "10.88.0.2"
XDS_PORT = 18000
ADMIN_PORT = 15000
APP_PORT = 8080
STATUS_PORT = 8081  # the origin's stub_status, on 127.0.0.1 in the app pod
VARIANTS = ("direct", "turnout", "haproxy")
PERCENTILES = ("50", "90", "99", "99.9")
READY_DEADLINE_S = 30.0


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def origin_conf(work, pod):
    return """worker_processes 1; daemon off; master_process off;
pid {w}/{p}-origin.pid; error_log {w}/{p}-origin.err;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 1000000; keepalive_timeout 300s;
  server {{ listen {a}; location / {{ return 200 "hello sidecar\\n"; }} }}
  server {{ listen 127.0.0.1:{s}; location / {{ stub_status; }} }} }}
""".format(w=work, p=pod, a=APP_PORT, s=STATUS_PORT)


def haproxy_conf(port):
    # 0.0.0.0:0: connect to the connection's original destination (with
    # USE_LINUX_TPROXY, haproxy's destination of an accepted IPv4 socket is
    # SO_ORIGINAL_DST). Runs as UID 1337, so its own connects are not captured.
    # The inbound one (15006) connects from 127.0.0.6, as turnout's
    # InboundPassthroughCluster does: the capture (Istio's rules) sends UID
    # 1337's connections to its own pod IP over lo back to 15006 unless they
    # come from 127.0.0.6.
    server = "  server s 0.0.0.0:0" + (" source 127.0.0.6" if port == 15006 else "")
    return "\n".join([
        "global", "  nbthread 1", "  maxconn 4096",
        "defaults", "  mode http", "  option http-keep-alive", "  http-reuse always",
        "  timeout connect 5s", "  timeout client 60s", "  timeout server 60s",
        "frontend fe", "  bind 0.0.0.0:%d" % port, "  default_backend original_dst",
        "backend original_dst", server, ""])


class Bench:
    def __init__(self, args, work):
        self.args, self.work = args, work
        self.topo = None
        self.cp = None
        self.proxies = {}   # variant -> [(name, Popen)], outbound first

    # -- set-up --------------------------------------------------------------

    def pods(self, variant):
        i = VARIANTS.index(variant)
        return (("client-" + variant, "10.88.0.%d" % (10 + i)),
                ("app-" + variant, "10.88.0.%d" % (20 + i)))

    def spawn(self, pod, args, cpus, name, user=None):
        return self.topo.popen(pod, ["taskset", "-c", cpus] + args, user=user,
                               log=os.path.join(self.work, name + ".log"))

    def build(self):
        a = self.args
        os.chmod(self.work, 0o777)  # the proxies (UID 1337) log here
        topo = self.topo = netns.Topology("thop%d" % (os.getpid() % 100000))
        topo.add("cp", CP_IP)
        self.cp = TurnoutCp(a.turnout_cp, self.work,
                            command_prefix=topo.wrap("cp", ["taskset", "-c", a.cpus_proxy]),
                            xds_address="%s:%d" % (CP_IP, XDS_PORT))
        self.cp.start()
        for v in VARIANTS:
            (client, cip), (app, aip) = self.pods(v)
            topo.add(client, cip, hosts={"app": aip})
            topo.add(app, aip)
            conf = os.path.join(self.work, app + "-origin.conf")
            with open(conf, "w") as f:
                f.write(origin_conf(self.work, app))
            self.spawn(app, ["nginx", "-c", conf], a.cpus_load, app + "-origin")
            if v == "direct":
                continue
            for pod in (client, app):
                topo.run(pod, [a.turnout, "iptables", "--proxy-uid", str(PROXY_UID),
                               "--proxy-gid", str(PROXY_UID)])
            if v == "turnout":
                self.cpctl("service", "put", "app", "--port", str(APP_PORT), "--endpoint",
                           "%s:%d" % (aip, APP_PORT))
            self.proxies[v] = [self.start_proxy(v, client, "client"),
                               self.start_proxy(v, app, "app")]
        for v in VARIANTS:
            self.wait_chain(v)

    def cpctl(self, *args):
        extra = [] if args[0] == "bootstrap" else ["--server", self.cp.url]
        return self.topo.run("cp", [self.args.turnout_cp] + list(args) + extra).stdout.decode()

    def start_proxy(self, variant, pod, service):
        name = pod + "-proxy"
        if variant == "turnout":
            boot = os.path.join(self.work, pod + "-bootstrap.yaml")
            with open(boot, "w") as f:
                f.write(self.cpctl("bootstrap", "--mode", "capture", "--node", pod,
                                   "--service", service, "--namespace", "default",
                                   "--xds-host", CP_IP, "--xds-port", str(XDS_PORT),
                                   "--admin-port", str(ADMIN_PORT)))
            args = [self.args.turnout, "-c", boot, "--concurrency", "1", "-l", "warn"]
        else:
            conf = os.path.join(self.work, pod + "-haproxy.cfg")
            with open(conf, "w") as f:
                f.write(haproxy_conf(15001 if service == "client" else 15006))
            args = ["haproxy", "-db", "-f", conf]
        return name, self.spawn(pod, args, self.args.cpus_proxy, name, user=PROXY_UID)

    def wait_chain(self, variant):
        """Bounded poll: a GET from the client pod answered by the app."""
        (client, _), _ = self.pods(variant)
        end = time.monotonic() + READY_DEADLINE_S
        last = None
        while time.monotonic() < end:
            for _, p in self.proxies.get(variant, []):
                if p.poll() is not None:
                    raise RuntimeError("a %s proxy exited (%s): see %s"
                                       % (variant, p.returncode, self.work))
            last = self.topo.run(client, ["curl", "-s", "-m", "2", "http://app:%d/" % APP_PORT],
                                 check=False)
            if last.stdout == b"hello sidecar\n":
                return
            time.sleep(0.2)
        raise RuntimeError("%s: the chain did not answer: %r"
                           % (variant, last and last.stdout[:200]))

    # -- measurement ---------------------------------------------------------

    def origin_counts(self, variant):
        """(accepted connections, requests) from the origin's stub_status."""
        _, (app, _) = self.pods(variant)
        out = self.topo.run(app, ["curl", "-s", "-m", "2", "http://127.0.0.1:%d/" % STATUS_PORT])
        accepts, _, requests = out.stdout.decode().splitlines()[2].split()
        return int(accepts), int(requests)

    def retransmits(self, variant):
        """TCP segments retransmitted in both pods (/proc/net/snmp is per
        namespace): a latency spike with retransmits was the network's."""
        total = 0
        for pod, _ in self.pods(variant):
            lines = [l.split() for l in self.topo.run(pod, ["cat", "/proc/net/snmp"]).stdout.decode()
                     .splitlines() if l.startswith("Tcp:")]
            total += int(lines[1][lines[0].index("RetransSegs")])
        return total

    def load(self, variant, label, rate=None, duration=None, warmup=None):
        """One turnout-bench run in the client pod, with the origin's counts,
        each proxy's CPU time and the CPUs' busy shares around it."""
        a = self.args
        (client, _), _ = self.pods(variant)
        duration = duration or a.duration
        warmup = a.warmup if warmup is None else warmup
        report = os.path.join(self.work, label + ".json")
        cmd = ["taskset", "-c", a.cpus_load, a.bench, "-c", str(a.connections),
               "-d", str(duration), "--warmup", str(warmup), "--json", report, "--label", label]
        if rate:
            cmd += ["-R", str(rate)]
        cmd.append("http://app:%d/" % APP_PORT)
        procs = self.proxies.get(variant, [])
        retrans = self.retransmits(variant)
        before = (self.origin_counts(variant), [compare.cpu_seconds(p.pid) for _, p in procs],
                  compare.cpu_ticks(compare.cpu_list(a.cpus_proxy)),
                  compare.cpu_ticks(compare.cpu_list(a.cpus_load)))
        self.topo.run(client, cmd, timeout=duration + warmup + 60)
        after = (self.origin_counts(variant), [compare.cpu_seconds(p.pid) for _, p in procs],
                 compare.cpu_ticks(compare.cpu_list(a.cpus_proxy)),
                 compare.cpu_ticks(compare.cpu_list(a.cpus_load)))
        retrans = self.retransmits(variant) - retrans
        with open(report) as f:
            r = json.load(f)
        served = after[0][1] - before[0][1] - 1  # the second stub_status read counts itself
        row = {"variant": variant, "label": label, "rate": rate, "rps": r["rps"],
               "requests": r["requests"], "errors": r["errors"]["total"], "status": r["status"],
               "latency_us": {q: r["latency"]["us"]["p" + q] for q in PERCENTILES},
               "origin_requests": served, "tcp_retransmits": retrans,
               "max_us": r["latency"]["us"]["max"], "origin_connections": after[0][0] - before[0][0] - 1,
               "busy_proxy_cpus": compare.busy_share(before[2], after[2]),
               "busy_load_cpus": compare.busy_share(before[3], after[3]),
               "cpu_us_per_request": {name: 1e6 * (c1 - c0) / max(1, served)
                                      for (name, _), c0, c1 in zip(procs, before[1], after[1])}}
        # Every request the client counted went through to the app, none failed.
        if row["errors"] or served < r["requests"]:
            raise RuntimeError("%s: %d errors, the origin served %d of %d requests (%s)"
                               % (label, row["errors"], served, r["requests"], report))
        return row

    def measure(self):
        a = self.args
        knees = {}
        for v in VARIANTS:
            row = self.load(v, "knee-" + v, duration=a.knee_duration, warmup=1)
            knees[v] = row
            # Both proxies are on the path: each worked during the run.
            for name, us in row["cpu_us_per_request"].items():
                if us <= 0:
                    raise RuntimeError("%s used no CPU during %d requests" % (name, row["requests"]))
            log("knee %-8s %8.0f req/s  proxy CPUs %s  load CPUs %s" % (
                v, row["rps"], pct(row["busy_proxy_cpus"]), pct(row["busy_load_cpus"])))
        runs = []
        for rnd in range(a.rounds):
            for rate in a.rates:
                # Each round starts with another variant, so slow drift (a
                # neighbour's load) does not always favour the same one.
                for v in VARIANTS[rnd % 3:] + VARIANTS[:rnd % 3]:
                    row = self.load(v, "r%d-%s-%d" % (rnd, v, rate), rate=rate)
                    row["round"] = rnd
                    runs.append(row)
                    log("round %d %5d req/s %-8s p50 %7.0f p99 %7.0f p99.9 %7.0f us  %s" % (
                        rnd, rate, v, row["latency_us"]["50"], row["latency_us"]["99"],
                        row["latency_us"]["99.9"],
                        " ".join("%s %.1f us/req" % kv for kv in row["cpu_us_per_request"].items())))
        return knees, runs

    def close(self):
        if self.cp is not None:
            self.cp.stop()
        if self.topo is not None:
            self.topo.close()


# -- report -------------------------------------------------------------------

def pct(x):
    return "-" if x is None else "%.0f %%" % (100 * x)


def summarise(rates, runs):
    """Medians over rounds per (variant, rate); the added latency is the
    median over rounds of (variant - direct) in the same round."""
    out = {}
    for rate in rates:
        by = {v: sorted((r for r in runs if r["rate"] == rate and r["variant"] == v),
                        key=lambda r: r["round"]) for v in VARIANTS}
        for v, rows in by.items():
            med = lambda f: statistics.median(f(r) for r in rows)  # noqa: E731
            out[(v, rate)] = {
                "latency_us": {q: med(lambda r: r["latency_us"][q]) for q in PERCENTILES},
                "added_us": {q: statistics.median(r["latency_us"][q] - d["latency_us"][q]
                                                  for r, d in zip(rows, by["direct"]))
                             for q in PERCENTILES},
                "cpu_us_per_request": {name: med(lambda r: r["cpu_us_per_request"][name])
                                       for name in rows[0]["cpu_us_per_request"]},
                "busy_load_cpus": med(lambda r: r["busy_load_cpus"] or 0),
                "busy_proxy_cpus": med(lambda r: r["busy_proxy_cpus"] or 0)}
    return out


def markdown(result, summary):
    a = result["args"]
    rates, knees = a["rates"], result["knees"]
    lines = ["# Sidecar hop latency, %s, %s" % (result["date"], result["machine"]), "",
             "`bench/compare/sidecar_hop.py %s` (%s). %s; %s." % (
                 " ".join(result["argv"]), result["cpu_model"], result["versions"].get("haproxy", ""),
                 result["versions"].get("nginx", "")),
             "Proxies on CPU %s, turnout-bench and the nginx origin on CPU %s; %d connections; "
             "open loop, %d s per run after a %d s warm-up, %d round(s) (medians over rounds)."
             % (a["cpus_proxy"], a["cpus_load"], a["connections"], a["duration"], a["warmup"],
                a["rounds"]), "",
             "## Knee (closed loop, %d s, %d connections)" % (a["knee_duration"], a["connections"]), "",
             "| variant | req/s | proxy CPU busy | load CPU busy | highest rate / knee "
             "| CPU µs/req (out + in) |",
             "|---|---|---|---|---|---|"]
    for v in VARIANTS:
        k = knees[v]
        cpu = k["cpu_us_per_request"]
        lines.append("| %s | %.0f | %s | %s | %.0f %% | %s |" % (
            v, k["rps"], pct(k["busy_proxy_cpus"]) if v != "direct" else "-",
            pct(k["busy_load_cpus"]), 100.0 * max(rates) / k["rps"],
            "%s = %.1f" % (" + ".join("%.1f" % c for c in cpu.values()), sum(cpu.values()))
            if cpu else "-"))
    lines += ["", "## Latency (µs, open loop, coordinated omission corrected)", "",
              "| rate | variant | p50 | p90 | p99 | p99.9 | load CPU busy |",
              "|---|---|---|---|---|---|---|"]
    for rate in rates:
        for v in VARIANTS:
            s = summary[(v, rate)]
            lines.append("| %d | %s | %s | %s |" % (
                rate, v, " | ".join("%.0f" % s["latency_us"][q] for q in PERCENTILES),
                pct(s["busy_load_cpus"])))
    lines += ["", "## Added latency of the hop (variant minus direct, µs)", "",
              "| rate | percentile | turnout | haproxy | turnout / haproxy |", "|---|---|---|---|---|"]
    for rate in rates:
        for q in PERCENTILES:
            t = summary[("turnout", rate)]["added_us"][q]
            h = summary[("haproxy", rate)]["added_us"][q]
            lines.append("| %d | p%s | %.0f | %.0f | %s |" % (
                rate, q, t, h, "%.2f" % (t / h) if t > 0 and h > 0 else "-"))
    lines += ["", "## CPU per request (µs, utime+stime / requests the origin served)", "",
              "| rate | variant | outbound | inbound | both | turnout / haproxy |",
              "|---|---|---|---|---|---|"]
    for rate in rates:
        both = {}
        for v in ("turnout", "haproxy"):
            cpu = list(summary[(v, rate)]["cpu_us_per_request"].values())
            both[v] = sum(cpu)
            lines.append("| %d | %s | %.1f | %.1f | %.1f | %s |" % (
                rate, v, cpu[0], cpu[1], both[v],
                "%.2f" % (both["turnout"] / both["haproxy"]) if v == "haproxy" else ""))
    lines += ["", "## Every run", "",
              "| round | rate | variant | req/s | p50 | p99 | p99.9 | max | TCP retransmits "
              "| new origin connections | CPU µs/req (out + in) | proxy CPU busy | load CPU busy |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["runs"]:
        lines.append("| %d | %d | %s | %.0f | %.0f | %.0f | %.0f | %s | %s | %d | %s | %s | %s |" % (
            r["round"], r["rate"], r["variant"], r["rps"], r["latency_us"]["50"],
            r["latency_us"]["99"], r["latency_us"]["99.9"],
            "%.0f" % r["max_us"] if "max_us" in r else "-", r.get("tcp_retransmits", "-"),
            r["origin_connections"],
            " + ".join("%.1f" % c for c in r["cpu_us_per_request"].values()) or "-",
            pct(r["busy_proxy_cpus"]), pct(r["busy_load_cpus"])))
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--turnout", default=os.path.join(ROOT, "build/proxy/turnout"))
    ap.add_argument("--turnout-cp", default=os.path.join(ROOT, "build/config/control_plane/turnout-cp"))
    ap.add_argument("--bench", default=os.path.join(ROOT, "build/bench/turnout_bench/turnout-bench"))
    n = os.cpu_count() or 2
    ap.add_argument("--cpus-proxy", default=str(n - 1), help="both proxies of a variant (default: the last CPU)")
    ap.add_argument("--cpus-load", default="0",
                    help="turnout-bench and the origin (default: CPU 0)")
    ap.add_argument("--rates", default="500,1000,2000", help="open-loop rates, req/s")
    ap.add_argument("--duration", type=int, default=20, help="seconds per open-loop run")
    ap.add_argument("--warmup", type=int, default=5, help="seconds before each run's window")
    ap.add_argument("--knee-duration", type=int, default=5, help="seconds of the closed-loop run")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=1, help="repeat the open-loop grid (medians)")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench/results"),
                    help="directory of the results (made if missing)")
    ap.add_argument("--keep-logs", action="store_true", help="keep the work directory")
    ap.add_argument("--from-json", metavar="FILE", help="only print the tables of an earlier run")
    args = ap.parse_args()
    if args.from_json:
        with open(args.from_json) as f:
            result = json.load(f)
        print(markdown(result, summarise(result["args"]["rates"], result["runs"])))
        return
    args.rates = [int(r) for r in args.rates.split(",")]
    for tool in ("nginx", "haproxy", "curl", "taskset"):
        if shutil.which(tool) is None:
            sys.exit("%s is not installed" % tool)
    why = netns.namespaces_allowed()
    if why:
        sys.exit(why)

    def interrupted(*_):
        raise KeyboardInterrupt()
    # SIGTERM unwinds like Ctrl-C, so the finally below always tears down.
    signal.signal(signal.SIGTERM, interrupted)
    work = tempfile.mkdtemp(prefix="turnout-sidecar-hop-")
    bench = None
    try:
        bench = Bench(args, work)
        bench.build()
        knees, runs = bench.measure()
    except KeyboardInterrupt:
        log("interrupted")
        sys.exit(130)
    except BaseException:
        log("failed; logs in %s" % work)
        args.keep_logs = True
        raise
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not stop the clean-up
        if bench is not None:
            bench.close()
        if not args.keep_logs:
            shutil.rmtree(work, ignore_errors=True)

    date = datetime.date.today().isoformat()
    machine = "%dcpu-%s" % (n, platform.machine())
    result = {"date": date, "machine": machine, "cpu_model": compare.cpu_model(),
              "argv": sys.argv[1:], "args": {k: v for k, v in vars(args).items()},
              "versions": compare.versions({"turnout": args.turnout}),
              "knees": knees, "runs": runs}
    summary = summarise(args.rates, runs)
    result["summary"] = [dict(variant=v, rate=r, **s) for (v, r), s in summary.items()]
    os.makedirs(args.out, exist_ok=True)
    base = os.path.join(args.out, "%s-%s-sidecar-hop" % (date, machine))
    with open(base + ".json", "w") as f:
        json.dump(result, f, indent=1)
    md = markdown(result, summary)
    with open(base + ".md", "w") as f:
        f.write(md)
    print(md)
    log("wrote %s.{json,md}" % base)


if __name__ == "__main__":
    main()
