#!/usr/bin/env python3
"""The scale benchmark: memory and start-up time against the number of sandboxes.

For each N (--sandboxes, default 1,100,10000) it generates one bootstrap with N
sandboxes, each its own STATIC cluster and its own route matching the routing
key exactly (as examples/sandbox-routing, N times), before a baseline route, and
starts turnout with --concurrency 2 on it. It measures:
  - the time from starting the process to the admin /ready answering 200;
  - RSS once ready (the process and its children, from /proc), and bytes per
    sandbox: (RSS(N) - RSS(small config)) / N, where the small config is the
    same bootstrap with no sandbox (one listener, one route, one cluster);
  - that a request with no key, and with the first, middle and last key, is
    answered 200, and whether the last sandbox's cluster has stats after it;
  - RSS after those requests.
haproxy gets the equivalent config for reference (one backend per sandbox,
chosen through a map file, nbthread 2, monitor-uri /ready), and Envoy too when
`envoy` is on the PATH.

Replacing one sandbox's route or cluster and timing the update needs live
config (issue #8); until then that column says "n/a (needs live config)".

It also reports the anonymous part of the RSS (RssAnon: heap, stacks; the rest
is mapped code and data of the binary and its libraries).

It writes bench/results/<date>-<machine>-scale[-<tag>].{json,md}.
Usage: bench/compare/scale.py [--sandboxes 1,100,10000] [--proxies turnout,haproxy] [--tag mem] ...
"""

import argparse
import datetime
import http.client
import http.server
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import run as compare  # noqa: E402  (the comparison suite's process helpers)

ROOT = compare.ROOT
KEY_HEADER = "x-turnout-routing-key"
# Replacing one sandbox in a live table is timed in-process by
# tests/unit/proxy/server/snapshot_publisher_test.cc; through files, a CDS
# update re-reads the whole file (Envoy's path_config_source is state of the
# world), which would time the parser, not the O(1) swap.
UPDATE_NA = "n/a (in-process: snapshot_publisher_test)"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def sandbox_key(i):
    return "sb-%d" % i


def probe_keys(n):
    """No key, then the first, middle and last sandbox."""
    return [None] + sorted({sandbox_key(0), sandbox_key(n // 2), sandbox_key(n - 1)}) if n else [None]


# --------------------------------------------------------------------------
# Configurations.
# --------------------------------------------------------------------------

def envoy_bootstrap(n, port, admin, origin, routing_key_filter):
    """Envoy v3 YAML: N sandbox routes, each to its own STATIC cluster, then the
    baseline route. turnout gets its RoutingKey filter (as in
    examples/sandbox-routing); Envoy matches the plain header."""
    out = ["admin: { address: { socket_address: { address: 127.0.0.1, port_value: %d } } }" % admin,
           "static_resources:",
           "  listeners:",
           "  - name: ingress",
           "    address: { socket_address: { address: 127.0.0.1, port_value: %d } }" % port,
           "    filter_chains:",
           "    - filters:",
           "      - name: envoy.filters.network.http_connection_manager",
           "        typed_config:",
           '          "@type": type.googleapis.com/envoy.extensions.filters.network.'
           'http_connection_manager.v3.HttpConnectionManager',
           "          stat_prefix: ingress",
           "          route_config:",
           "            name: sandboxes",
           "            virtual_hosts:",
           "            - name: all",
           '              domains: ["*"]',
           "              routes:"]
    for i in range(n):
        out.append('              - { match: { prefix: "/", headers: [{ name: %s, string_match: '
                   '{ exact: "%s" } }] }, route: { cluster: %s } }' % (KEY_HEADER, sandbox_key(i),
                                                                        sandbox_key(i)))
    out.append('              - { match: { prefix: "/" }, route: { cluster: baseline } }')
    out.append("          http_filters:")
    if routing_key_filter:
        out += ["          - name: turnout.filters.http.routing_key",
                "            typed_config: { \"@type\": type.googleapis.com/"
                "turnout.extensions.filters.http.routing_key.v3.RoutingKey }"]
    out += ["          - name: envoy.filters.http.router",
            "            typed_config: { \"@type\": type.googleapis.com/"
            "envoy.extensions.filters.http.router.v3.Router }",
            "  clusters:"]
    for name in ["baseline"] + [sandbox_key(i) for i in range(n)]:
        out.append("  - { name: %s, type: STATIC, load_assignment: { cluster_name: %s, endpoints: "
                   "[{ lb_endpoints: [{ endpoint: { address: { socket_address: "
                   "{ address: 127.0.0.1, port_value: %d } } } }] }] } }" % (name, name, origin))
    return "\n".join(out) + "\n"


def haproxy_config(work, n, port, origin, threads):
    """One backend per sandbox, picked by the key through a map file."""
    with open(os.path.join(work, "sandboxes.map"), "w") as f:
        for i in range(n):
            f.write("%s %s\n" % (sandbox_key(i), sandbox_key(i)))
    lines = ["global", "  nbthread %d" % threads, "  maxconn 1000",
             "defaults", "  mode http", "  timeout connect 5s", "  timeout client 30s",
             "  timeout server 30s", "  option http-keep-alive",
             "frontend fe", "  bind 127.0.0.1:%d" % port, "  monitor-uri /ready"]
    if n:
        lines.append("  use_backend %%[req.hdr(%s),map(%s/sandboxes.map,baseline)]"
                     % (KEY_HEADER, work))
    lines.append("  default_backend baseline")
    for be in ["baseline"] + [sandbox_key(i) for i in range(n)]:
        lines += ["backend %s" % be, "  server s 127.0.0.1:%d" % origin]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------
# The origin: every cluster points at one small HTTP/1.1 server in this process.
# --------------------------------------------------------------------------

class Origin(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def start_origin():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Origin)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# --------------------------------------------------------------------------
# One measurement.
# --------------------------------------------------------------------------

def http_get(port, path, headers=None, timeout=5.0):
    """(status, body) or (None, error text)."""
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        body = r.read()
        c.close()
        return r.status, body
    except (OSError, http.client.HTTPException) as e:
        return None, str(e)


def rss_anon_kib(pid):
    """RssAnon of one process (KiB), or None."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def wait_ready(port, proc, deadline_s):
    """Polls GET /ready every 2 ms; the monotonic time it first answered 200."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if not proc.alive():
            raise RuntimeError("exited before it was ready:\n" + proc.tail())
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
                s.sendall(b"GET /ready HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
                head = s.recv(64)
                if head.startswith(b"HTTP/1.1 200") or head.startswith(b"HTTP/1.0 200"):
                    return time.monotonic()
        except OSError:
            pass
        time.sleep(0.002)
    raise RuntimeError("not ready within %.0f s:\n%s" % (deadline_s, proc.tail()))


def measure_once(ctx, proxy, n):
    work = ctx["work"]
    port, admin = compare.free_port(), compare.free_port()
    if proxy == "turnout":
        conf = os.path.join(work, "turnout-%d.yaml" % n)
        with open(conf, "w") as f:
            f.write(envoy_bootstrap(n, port, admin, ctx["origin"], True))
        args = [ctx["turnout"], "-c", conf, "--concurrency", str(ctx["concurrency"]), "-l", "error"]
        ready_port = admin
    elif proxy == "envoy":
        conf = os.path.join(work, "envoy-%d.yaml" % n)
        with open(conf, "w") as f:
            f.write(envoy_bootstrap(n, port, admin, ctx["origin"], False))
        args = ["envoy", "-c", conf, "--concurrency", str(ctx["concurrency"]), "-l", "error",
                "--base-id", str(port)]
        ready_port = admin
    elif proxy == "haproxy":
        conf = os.path.join(work, "haproxy-%d.cfg" % n)
        with open(conf, "w") as f:
            f.write(haproxy_config(work, n, port, ctx["origin"], ctx["concurrency"]))
        args = ["haproxy", "-f", conf, "-q"]
        ready_port = port
    else:
        raise ValueError(proxy)
    row = {"config_bytes": os.path.getsize(conf)}
    t0 = time.monotonic()
    proc = compare.Proc("%s-%d" % (proxy, n), args, ctx["cpus"], work)
    try:
        row["ready_s"] = wait_ready(ready_port, proc, ctx["ready_timeout"]) - t0
        time.sleep(ctx["settle"])
        row["rss_ready_kib"] = compare.rss_kib(proc.pid)
        row["rss_anon_ready_kib"] = rss_anon_kib(proc.pid)
        routed = []
        for key in probe_keys(n):
            status, _ = http_get(port, "/", {KEY_HEADER: key} if key else {})
            routed.append(status == 200)
        row["routed_ok"] = "%d/%d" % (sum(routed), len(routed))
        if proxy in ("turnout", "envoy") and n:
            name = "cluster.%s.upstream_rq_total" % sandbox_key(n - 1)
            status, body = http_get(admin, "/stats?filter=%s" % name)
            text = body.decode(errors="replace") if status == 200 else ""
            row["stats_last_sandbox"] = any(line.split(":")[0].strip() == name and
                                            line.split(":")[-1].strip() not in ("", "0")
                                            for line in text.splitlines())
        time.sleep(ctx["settle"])
        row["rss_after_requests_kib"] = compare.rss_kib(proc.pid)
    finally:
        proc.stop()
    return row


def measure(ctx, proxy, n):
    """Median of --repeats runs (each a fresh process)."""
    runs = [measure_once(ctx, proxy, n) for _ in range(ctx["repeats"])]
    row = dict(runs[len(runs) // 2])
    for k in ("ready_s", "rss_ready_kib", "rss_after_requests_kib"):
        row[k] = statistics.median(r[k] for r in runs)
    if len(runs) > 1:
        row["runs"] = runs
    return row


def markdown(result):
    out = ["# Scale: sandboxes, %s, %s" % (result["date"], result["machine"]), "",
           "Each sandbox is its own STATIC cluster and its own route (exact match on `%s`) before "
           "the baseline route; turnout and Envoy run with `--concurrency %d`, haproxy with "
           "`nbthread %d` (one backend per sandbox, chosen by a map). The small config is the "
           "same bootstrap with no sandbox. Bytes per sandbox = (RSS(N) - RSS(small)) / N. "
           "Ready = from starting the process to `/ready` answering 200 (haproxy: its "
           "`monitor-uri`). Median of %d run(s); RSS read %.1f s after ready."
           % (KEY_HEADER, result["concurrency"], result["concurrency"], result["repeats"],
              result["settle_s"]), "",
           "| proxy | sandboxes | config KiB | ready s | RSS after ready MiB | of which anon MiB | "
           "bytes/sandbox | RSS after 4 requests MiB | routed 200 | stats for last sandbox | "
           "replace one sandbox |",
           "|" + "---|" * 11]
    for r in result["rows"]:
        label = "small (0)" if r["sandboxes"] == 0 else str(r["sandboxes"])
        if "failed" in r:
            out.append("| %s | %s | failed: %s |%s" % (r["proxy"], label,
                                                        r["failed"].replace("|", "/"), " |" * 8))
            continue
        stats = {True: "yes", False: "**no**"}.get(r.get("stats_last_sandbox"), "-")
        anon = r.get("rss_anon_ready_kib")
        out.append("| %s | %s | %.0f | %.2f | %.1f | %s | %s | %.1f | %s | %s | %s |" % (
            r["proxy"], label, r["config_bytes"] / 1024, r["ready_s"], r["rss_ready_kib"] / 1024,
            "%.1f" % (anon / 1024) if anon is not None else "-",
            "%.0f" % r["bytes_per_sandbox"] if "bytes_per_sandbox" in r else "-",
            r["rss_after_requests_kib"] / 1024, r["routed_ok"], stats, r.get("update_ms") or "-"))
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--turnout", default=os.path.join(ROOT, "build/proxy/turnout"))
    ap.add_argument("--sandboxes", default="1,100,10000", help="comma list of N")
    ap.add_argument("--proxies", default="turnout,haproxy,envoy",
                    help="those not on the PATH are skipped")
    ap.add_argument("--concurrency", type=int, default=2, help="turnout/Envoy workers, haproxy threads")
    ap.add_argument("--cpus", default="", help="taskset CPUs for the proxy (default: any)")
    ap.add_argument("--repeats", type=int, default=1, help="runs per config; the median is kept")
    ap.add_argument("--settle", type=float, default=0.5, help="seconds between ready and the RSS read")
    ap.add_argument("--ready-timeout", type=float, default=300)
    ap.add_argument("--out", default=os.path.join(ROOT, "bench/results"))
    ap.add_argument("--tag", default="", help="suffix of the result file name (scale-<tag>)")
    args = ap.parse_args()

    ns = [int(x) for x in args.sandboxes.split(",") if x]
    proxies = [p for p in args.proxies.split(",") if p]
    for p in proxies:
        if p not in ("turnout", "haproxy", "envoy"):
            sys.exit("scale: unknown proxy %r (choose from turnout,haproxy,envoy)" % p)
    if "turnout" in proxies and not os.access(args.turnout, os.X_OK):
        sys.exit("scale: no turnout at %s (run scripts/build.sh)" % args.turnout)
    missing = [p for p in proxies if p != "turnout" and not shutil.which(p)]
    if missing:
        log("scale: not on the PATH, skipped: %s" % ", ".join(missing))
        proxies = [p for p in proxies if p not in missing]
    if args.cpus and not shutil.which("taskset"):
        sys.exit("scale: --cpus needs taskset")

    work = tempfile.mkdtemp(prefix="turnout-scale-")
    origin = start_origin()
    ctx = {"work": work, "turnout": os.path.abspath(args.turnout), "origin": origin.server_address[1],
           "concurrency": args.concurrency, "repeats": max(1, args.repeats), "settle": args.settle,
           "ready_timeout": args.ready_timeout,
           "cpus": compare.cpu_list(args.cpus) if args.cpus else None}
    rows = []
    try:
        for proxy in proxies:
            small = None
            for n in [0] + [n for n in ns if n > 0]:
                row = {"proxy": proxy, "sandboxes": n}
                try:
                    row.update(measure(ctx, proxy, n))
                except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
                    row["failed"] = str(e).splitlines()[0] if str(e) else repr(e)
                    log("  %s N=%d: %s" % (proxy, n, row["failed"]))
                    rows.append(row)
                    continue
                if n == 0:
                    small = row
                elif small:
                    row["bytes_per_sandbox"] = (row["rss_ready_kib"] - small["rss_ready_kib"]) * 1024 / n
                row["update_ms"] = UPDATE_NA if proxy == "turnout" else None
                rows.append(row)
                log("%-8s N=%-6d ready %.2f s  RSS %.1f MiB%s  routed %s%s" % (
                    proxy, n, row["ready_s"], row["rss_ready_kib"] / 1024,
                    "  %.0f B/sandbox" % row["bytes_per_sandbox"] if "bytes_per_sandbox" in row else "",
                    row["routed_ok"],
                    "  stats for the last sandbox: %s" % row["stats_last_sandbox"]
                    if "stats_last_sandbox" in row else ""))
    finally:
        origin.shutdown()

    date = datetime.date.today().isoformat()
    machine = "%dcpu-%s" % (os.cpu_count(), platform.machine())
    result = {"date": date, "machine": machine, "cpu_model": compare.cpu_model(),
              "concurrency": args.concurrency, "repeats": ctx["repeats"], "settle_s": args.settle,
              "cpus": args.cpus or "any", "key_header": KEY_HEADER,
              "versions": compare.versions(ctx), "rows": rows}
    os.makedirs(args.out, exist_ok=True)
    base = os.path.join(args.out, "%s-%s-scale%s" % (date, machine,
                                                      "-" + args.tag if args.tag else ""))
    with open(base + ".json", "w") as f:
        json.dump(result, f, indent=2)
    with open(base + ".md", "w") as f:
        f.write(markdown(result))
    shutil.rmtree(work, ignore_errors=True)
    print(markdown(result))
    log("wrote %s.{json,md}" % base)


if __name__ == "__main__":
    main()
