#!/usr/bin/env python3
"""turnout-cp at scale: RSS with N sandboxes, and a sidecar fed by it.

Starts turnout-cp (SQLite store in a temp dir), stores --services services and
--sandboxes sandboxes through the REST API (one keep-alive connection; each
sandbox forks --forks services, spread evenly), then measures:
  - the API: mutations per second while loading (each one a SQLite commit);
  - turnout-cp RSS (VmRSS, VmHWM) with the model loaded and no client;
  - a turnout sidecar started from `turnout-cp bootstrap`: time from start to
    every generated cluster active, its RSS, and turnout-cp's RSS once it has
    generated and served that client (turnout dialect);
  - one more sandbox created: time from the API call to the sidecar routing
    to it (what a user waits for), and the sidecar's own update_duration for
    the CDS and VHDS updates it took (Envoy's histogram, mean of the new
    samples).
Prints a Markdown table; --json FILE writes the figures.

Usage: cp_scale_bench.py --turnout build/proxy/turnout
         --turnout-cp build/config/control_plane/turnout-cp [--sandboxes 10000]
         [--services 100] [--forks 2]
"""

import argparse
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests",
                                "integration", "support"))

from fake_backend import FakeBackend, free_closed_port, get_backend  # noqa: E402
from turnout_cp_process import TurnoutCp  # noqa: E402
from turnout_process import TurnoutProcess, _poll  # noqa: E402


def rss_kib(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "RssAnon"):
                out[k] = int(v.split()[0])
    return out


def update_durations(proxy):
    """The sidecar's update_duration histograms (Envoy's xDS subscription
    stat) from /stats/prometheus: {metric with tags: (sum ms, count)}."""
    status, body, _ = proxy.admin("GET", "/stats/prometheus?filter=update_duration")
    if status != 200:
        return {}
    out = {}
    for line in body.decode().splitlines():
        if line.startswith("#") or "update_duration_" not in line:
            continue
        name, _, value = line.rpartition(" ")
        for suffix in ("_sum", "_count"):
            head, sep, tags = name.partition(suffix + "{")
            if sep and head.endswith("update_duration"):
                entry = out.setdefault(head + "{" + tags, [0.0, 0])
                entry[0 if suffix == "_sum" else 1] = float(value)
    return out


def new_update_ms(before, after):
    """Per histogram with new samples: their mean, in ms."""
    out = {}
    for key, (s, c) in after.items():
        s0, c0 = before.get(key, (0.0, 0))
        if c > c0:
            label = next((k for k in ("cds", "lds", "vhds", "rds") if "_%s_" % k in key), key)
            out[label] = round((s - s0) / (c - c0), 2)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--turnout", required=True)
    ap.add_argument("--turnout-cp", required=True)
    ap.add_argument("--services", type=int, default=100)
    ap.add_argument("--sandboxes", type=int, default=10000)
    ap.add_argument("--forks", type=int, default=2)
    ap.add_argument("--delta", action="store_true",
                    help="the sidecar speaks Delta xDS (api_type DELTA_GRPC)")
    ap.add_argument("--perf", metavar="FILE",
                    help="perf record the sidecar (call graphs) while it applies the new sandbox")
    ap.add_argument("--perf-cp", metavar="FILE",
                    help="perf record turnout-cp (call graphs) while it takes the new sandbox")
    ap.add_argument("--json")
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="turnout-cp-scale-")
    cp = TurnoutCp(args.turnout_cp, tmp, extra_args=["--log-level", "warn"])
    proxy = None
    # svc0's baseline, the last loaded sandbox's fork of svc0 and the sandbox
    # created at the end answer with their names: requests through the sidecar
    # tell when it has the config, without polling its /stats (which sorts
    # every stat name: tens of ms at 20,000 clusters, and it skews the timing).
    backends = {n: FakeBackend(n).start() for n in ("baseline", "last", "new")}
    figures = {"services": args.services, "sandboxes": args.sandboxes, "forks": args.forks}
    try:
        cp.start()
        conn = http.client.HTTPConnection(cp.host, cp.port, timeout=30)  # keep-alive

        def put(path, body):
            status, _, answer = cp.request("PUT", path, body, conn=conn)
            if status >= 300:
                raise RuntimeError("PUT %s -> %d %s" % (path, status, answer))
        figures["cp_rss_empty_kib"] = rss_kib(cp.proc.pid)["VmRSS"]
        for i in range(args.services):
            ep = ("127.0.0.1:%d" % backends["baseline"].port if i == 0
                  else "10.0.%d.%d:8000" % (i // 250, i % 250 + 1))
            put("/v1/services/svc%d" % i, {"port": 8000, "endpoints": [ep]})
        t0 = time.monotonic()
        for k in range(args.sandboxes):
            forks = {}
            for j in range(args.forks):
                s = (k * args.forks + j) % args.services
                forks["svc%d" % s] = ["10.%d.%d.%d:8000" % (1 + k // 62500, (k // 250) % 250,
                                                            k % 250 + 1)]
            if k == args.sandboxes - 1:
                forks["svc0"] = ["127.0.0.1:%d" % backends["last"].port]
            put("/v1/sandboxes/sb-%d" % k, {"forks": forks})
        load_s = time.monotonic() - t0
        figures["api_puts_per_s"] = round(args.sandboxes / load_s, 1)
        figures["cp_rss_loaded_kib"] = rss_kib(cp.proc.pid)["VmRSS"]

        def answered_by(key, name):
            def check():
                try:
                    return get_backend(outbound, "/", {
                        "Host": "svc0", "baggage": "turnout-routing-key=" + key})[1] == name
                except OSError:
                    return False
            return check

        outbound = free_closed_port()
        config = cp.sidecar_bootstrap("scale-sidecar", outbound, free_closed_port())
        # turnout-cp's bootstraps ask for Delta by default.
        config = config.replace("api_type: DELTA_GRPC", "api_type: GRPC")
        if args.delta:
            config = config.replace("api_type: GRPC", "api_type: DELTA_GRPC")
        figures["protocol"] = "delta" if args.delta else "sotw"
        t0 = time.monotonic()
        proxy = TurnoutProcess(args.turnout, config).start()

        if not _poll(300, answered_by("sb-%d" % (args.sandboxes - 1), "last")):
            raise RuntimeError("the sidecar did not get every cluster:\n" + proxy.log()[-3000:])
        figures["sidecar_converge_s"] = round(time.monotonic() - t0, 2)
        time.sleep(1)
        figures["sidecar_rss_kib"] = rss_kib(proxy.proc.pid)["VmRSS"]
        figures["cp_rss_serving_kib"] = rss_kib(cp.proc.pid)["VmRSS"]
        figures["cp_hwm_kib"] = rss_kib(cp.proc.pid)["VmHWM"]

        # One more sandbox: API answer -> the sidecar has its cluster.
        perf = None
        if args.perf or args.perf_cp:
            pid = proxy.proc.pid if args.perf else cp.proc.pid
            perf = subprocess.Popen(["perf", "record", "-F", "1999", "--call-graph", "dwarf,16384",
                                     "-o", args.perf or args.perf_cp, "-p", str(pid)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
        durations = update_durations(proxy)
        t0 = time.monotonic()
        put("/v1/sandboxes/sb-new",
                 {"forks": {"svc0": ["127.0.0.1:%d" % backends["new"].port]}})
        api_s = time.monotonic() - t0
        if not _poll(60, answered_by("sb-new", "new")):
            raise RuntimeError("the new sandbox did not arrive")
        figures["new_sandbox_api_ms"] = round(api_s * 1000, 1)
        figures["new_sandbox_to_sidecar_ms"] = round((time.monotonic() - t0) * 1000, 1)
        # The sidecar's own share: its update_duration per update (CDS with
        # the new clusters, VHDS with the changed virtual host), in ms.
        for kind, ms in sorted(new_update_ms(durations, update_durations(proxy)).items()):
            figures["new_sandbox_sidecar_%s_update_ms" % kind] = ms
        if perf is not None:
            perf.send_signal(signal.SIGINT)
            perf.wait(timeout=30)
    finally:
        if proxy is not None:
            proxy.stop()
        cp.stop()
        for b in backends.values():
            b.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    print("| figure | value |\n|---|---|")
    for k, v in figures.items():
        print("| %s | %s |" % (k, v))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)


if __name__ == "__main__":
    main()
