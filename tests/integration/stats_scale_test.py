#!/usr/bin/env python3
"""Stats at sandbox scale, on the real binary: 10,000 STATIC clusters (each
its own stats scope) with --concurrency 2. Every cluster has stats (no fixed
capacity), and a request routed to a high-numbered cluster counts in that
cluster's upstream_rq_total.

Usage: stats_scale_test.py <turnout-binary>
"""

import os
import re
import sys
import time
import unittest
import urllib.parse

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))

from envoy_yaml import bootstrap, request  # noqa: E402
from fake_backend import FakeBackend  # noqa: E402
from turnout_process import TurnoutProcess, run_suite  # noqa: E402

TURNOUT = None  # set from argv in main()
CLUSTERS = 10000
ROUTED = (9999, 7777)  # clusters with a route of their own: /c<N>/...


def clusters(port):
    one = ("- name: c%d\n"
           "  connect_timeout: 1s\n"
           "  type: STATIC\n"
           "  load_assignment:\n"
           "    cluster_name: c%d\n"
           "    endpoints:\n"
           "    - lb_endpoints:\n"
           "      - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: %d } } }\n")
    return [one % (i, i, port) for i in range(CLUSTERS)]


def vhosts():
    routes = "".join("  - match: { prefix: \"/c%d/\" }\n    route: { cluster: c%d }\n" % (n, n)
                     for n in ROUTED)
    return ("- name: all\n"
            "  domains: [\"*\"]\n"
            "  routes:\n" + routes +
            "  - match: { prefix: \"/\" }\n    route: { cluster: c0 }\n")


class StatsScaleTest(unittest.TestCase):
    proxy = None
    backend = None

    @classmethod
    def setUpClass(cls):
        cls.backend = FakeBackend("origin").start()
        try:
            start = time.monotonic()
            cls.proxy = TurnoutProcess(TURNOUT, bootstrap(vhosts(), clusters(cls.backend.port))).start()
            cls.ready_s = time.monotonic() - start
        except Exception:
            cls.backend.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.proxy is not None:
            cls.proxy.stop()
        cls.backend.stop()

    def stats(self, regex, used_only=False):
        query = "filter=" + urllib.parse.quote(regex) + ("&usedonly" if used_only else "")
        status, body, _ = self.proxy.admin("GET", "/stats?" + query)
        self.assertEqual(status, 200, body)
        out = {}
        for line in body.decode().splitlines():
            name, sep, value = line.partition(": ")
            if sep:
                out[name] = value
        return out

    def test_0_report_memory(self):
        try:
            with open("/proc/%d/status" % self.proxy.proc.pid) as f:
                rss = next(line for line in f if line.startswith("VmRSS:"))
        except OSError:
            return
        kib = int(rss.split()[1])
        print("\n[stats_scale] %d clusters, 2 workers: ready in %.2f s, VmRSS %d KiB before any /stats read (%.0f B per cluster, stats and everything else)"
              % (CLUSTERS, self.ready_s, kib, kib * 1024.0 / CLUSTERS), file=sys.stderr)

    def test_1_every_cluster_has_stats(self):
        totals = self.stats(r"^cluster\.c[0-9]+\.upstream_rq_total$")
        self.assertEqual(len(totals), CLUSTERS)
        self.assertEqual(set(totals.values()), {"0"})
        last = self.stats(r"^cluster\.c9999\.")
        self.assertEqual(last.get("cluster.c9999.membership_total"), "1")
        self.assertEqual(last.get("cluster.c9999.upstream_rq_total"), "0")
        self.assertIn("cluster.c9999.upstream_rq_time", last)  # "No recorded values"
        self.assertGreater(len(last), 100)

    def test_2_a_request_counts_in_its_high_numbered_cluster(self):
        for n in ROUTED:
            status, _, _ = request(self.proxy.port("ingress"), "GET", "/c%d/x" % n, host="svc")
            self.assertEqual(status, 200)
        for n in ROUTED:
            # Polls a filtered /stats: an unfiltered one is a million lines here.
            name = "cluster.c%d.upstream_rq_total" % n
            deadline = time.monotonic() + 5
            while self.stats("^" + re.escape(name) + "$").get(name) != "1" and time.monotonic() < deadline:
                time.sleep(0.02)
            self.assertEqual(self.stats("^" + re.escape(name) + "$").get(name), "1", name)
        used = self.stats(r"^cluster\.", used_only=True)
        self.assertEqual(used.get("cluster.c9999.upstream_rq_200"), "1")
        self.assertEqual(used.get("cluster.c9999.upstream_rq_2xx"), "1")
        # usedonly lists the two clusters that served, plus every cluster's
        # membership gauges (set at config build).
        served = {m.group(1) for m in (re.match(r"^cluster\.(c[0-9]+)\.upstream_rq_", k) for k in used) if m}
        self.assertEqual(served, {"c9999", "c7777"})

def set_turnout(binary):
    global TURNOUT
    TURNOUT = binary


if __name__ == "__main__":
    sys.exit(run_suite("stats_scale_test", set_turnout))
