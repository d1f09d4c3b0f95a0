#!/usr/bin/env python3
"""The real turnout binary between real clients (curl, wrk) and real nginx
backends, on loopback: sandbox routing, retries, timeouts, active health
checks, admin output, and a short wrk load whose counts must agree with
turnout's stats and nginx's access log.

Usage: proxy_nginx_test.py <turnout-binary>

Every process has a deadline and every wait is a bounded poll.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))

from envoy_yaml import (  # noqa: E402
    REVIEWS_WITH_SANDBOX_VHOST, ROUTER, ROUTING_KEY, bootstrap, cluster)
from nginx_backend import NginxBackends  # noqa: E402
from turnout_process import TurnoutProcess  # noqa: E402

TURNOUT = None  # set from argv in main()

VHOSTS = REVIEWS_WITH_SANDBOX_VHOST + """\
- name: web
  domains: ["web"]
  routes:
  - match: { prefix: "/slow/" }
    route: { cluster: web, timeout: 0.5s }
  - match: { prefix: "/" }
    route:
      cluster: web
      retry_policy:
        retry_on: 5xx
        num_retries: 2
- name: checked
  domains: ["checked"]
  routes:
  - match: { prefix: "/" }
    route: { cluster: checked }
"""

# Hosts start failing until their first passing check (as in Envoy), so the
# down host never gets traffic; three failures in a row are needed before a
# slow check on a loaded CI machine can take the up host out.
HEALTH_CHECKS = (
    "  health_checks:\n"
    "  - timeout: 2s\n"
    "    interval: 0.1s\n"
    "    unhealthy_threshold: 3\n"
    "    healthy_threshold: 1\n"
    "    http_health_check: { path: /healthz }\n")


def curl(port, path, host, *headers):
    """curl through turnout; returns (status, x-served-by, body)."""
    args = ["curl", "-s", "-m", "5", "-D", "-", "-H", "host: " + host]
    for h in headers:
        args += ["-H", h]
    out = subprocess.run(args + ["http://127.0.0.1:%d%s" % (port, path)],
                         capture_output=True, timeout=10, check=False).stdout.decode()
    head, _, body = out.partition("\r\n\r\n")
    lines = head.split("\r\n")
    status = int(lines[0].split(" ")[1]) if lines and lines[0].startswith("HTTP/") else None
    served_by = None
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "x-served-by":
            served_by = value.strip()
    return status, served_by, body


class NginxBackedTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.nginx = NginxBackends(
            ["reviews", "reviews-feat-x", "web-1", "web-2", "checked-up", "checked-down"],
            unhealthy=["checked-down"], flaky=["web-1"]).start()
        n = cls.nginx
        clusters = [
            cluster("reviews", [n.port("reviews")]),
            cluster("reviews-feat-x", [n.port("reviews-feat-x")]),
            cluster("web", [n.port("web-1"), n.port("web-2")]),
            cluster("checked", [n.port("checked-up"), n.port("checked-down")]) + HEALTH_CHECKS,
        ]
        cls.proxy = TurnoutProcess(TURNOUT, bootstrap(VHOSTS, clusters, ROUTING_KEY + ROUTER))
        try:
            cls.proxy.start()
        except Exception:
            cls.nginx.stop()
            raise
        cls.port = cls.proxy.port()

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        cls.nginx.stop()

    def test_routing_key_picks_the_sandbox_and_nginx_sees_the_normalised_key(self):
        cases = [
            ((), "reviews", ""),
            (("baggage: userId=7,turnout-routing-key=feat-x",), "reviews-feat-x", "feat-x"),
            (("tracestate: congo=t61rcWkgMzE,turnout=feat-x",), "reviews-feat-x", "feat-x"),
            (("x-turnout-routing-key: feat-x",), "reviews-feat-x", "feat-x"),
            (("baggage: turnout-routing-key=feat-y",), "reviews", "feat-y"),
            (("baggage: turnout-routing-key=feat-x;;broken",), "reviews", ""),
        ]
        before = len([r for r in self.nginx.requests() if r["uri"] == "/reviews/1"])
        for headers, server, key in cases:
            with self.subTest(headers=headers):
                status, served_by, body = curl(self.port, "/reviews/1", "reviews", *headers)
                self.assertEqual(status, 200)
                self.assertEqual(served_by, server)
                self.assertEqual(body, "%s /reviews/1 key=%s\n" % (server, key))
        seen = self.nginx.wait_requests(lambda r: r["uri"] == "/reviews/1", before + len(cases))
        self.assertEqual([(r["server"], r["key"]) for r in seen][-len(cases):],
                         [(server, key) for _, server, key in cases])

    def test_a_5xx_from_one_nginx_is_retried_on_the_other(self):
        before = self.proxy.counter("cluster.web.upstream_rq_retry") or 0
        results = [curl(self.port, "/flaky/%d" % i, "web")[:2] for i in range(6)]
        self.assertEqual(results, [(200, "web-2")] * 6)
        # Round robin sends half of the first tries to web-1, whose 503 is retried.
        retries = self.proxy.counter("cluster.web.upstream_rq_retry") - before
        self.assertGreaterEqual(retries, 2)
        flaky_hits = self.nginx.wait_requests(
            lambda r: r["server"] == "web-1" and r["uri"].startswith("/flaky/"), retries)
        self.assertEqual(len(flaky_hits), retries)

    def test_an_upstream_that_never_answers_gets_504_after_the_route_timeout(self):
        before = self.proxy.counter("cluster.web.upstream_rq_timeout") or 0
        status, served_by, body = curl(self.port, "/slow/x", "web")
        self.assertEqual(status, 504)
        self.assertIsNone(served_by)
        self.assertEqual(body, "upstream request timeout")
        self.assertEqual(self.proxy.counter("cluster.web.upstream_rq_timeout"), before + 1)

    def test_active_health_checks_keep_traffic_off_the_failing_nginx(self):
        self.assertGreaterEqual(
            self.proxy.wait_counter("cluster.checked.health_check.failure", 1), 1)
        self.assertGreaterEqual(
            self.proxy.wait_counter("cluster.checked.health_check.success", 1), 1)
        results = [curl(self.port, "/c/%d" % i, "checked")[:2] for i in range(8)]
        self.assertEqual(results, [(200, "checked-up")] * 8)
        status, body, _ = self.proxy.admin("GET", "/clusters")
        self.assertEqual(status, 200)
        down = "checked::127.0.0.1:%d::health_flags::/failed_active_hc" % self.nginx.port(
            "checked-down")
        up = "checked::127.0.0.1:%d::health_flags::healthy" % self.nginx.port("checked-up")
        self.assertIn(down, body.decode())
        self.assertIn(up, body.decode())

    @unittest.skipUnless(shutil.which("wrk"), "wrk not installed")
    def test_wrk_load_through_turnout_agrees_with_stats_and_nginx(self):
        before_sandbox = self.proxy.counter("cluster.reviews-feat-x.upstream_rq_2xx") or 0
        before_base = self.proxy.counter("cluster.reviews.upstream_rq_2xx") or 0
        out = subprocess.run(
            ["wrk", "-t1", "-c8", "-d2s", "--timeout", "2s",
             # "Host" capitalised: wrk adds its own Host unless this exact key is set.
             "-H", "Host: reviews", "-H", "baggage: turnout-routing-key=feat-x",
             "http://127.0.0.1:%d/reviews/wrk" % self.port],
            capture_output=True, timeout=30, check=True).stdout.decode()
        completed = int(re.search(r"(\d+) requests in", out).group(1))
        self.assertGreater(completed, 100, out)
        self.assertNotIn("Non-2xx", out)
        self.assertNotIn("Socket errors", out)
        # wrk stops with up to -c requests in flight; turnout counted those too.
        sandbox = self.proxy.wait_counter("cluster.reviews-feat-x.upstream_rq_2xx",
                                          before_sandbox + completed)
        # The requests wrk left in flight finish after it exits: read the
        # counter and nginx's log until they agree (bounded).
        deadline = time.monotonic() + 5
        while True:
            sandbox = self.proxy.counter("cluster.reviews-feat-x.upstream_rq_2xx")
            logged = [r for r in self.nginx.requests() if r["uri"] == "/reviews/wrk"]
            if len(logged) == sandbox - before_sandbox or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertGreaterEqual(sandbox - before_sandbox, completed)
        self.assertLessEqual(sandbox - before_sandbox, completed + 8)
        self.assertEqual(self.proxy.counter("cluster.reviews.upstream_rq_2xx") or 0, before_base)
        self.assertEqual(len(logged), sandbox - before_sandbox)
        self.assertEqual({(r["server"], r["key"]) for r in logged}, {("reviews-feat-x", "feat-x")})

    def test_a_response_that_ends_before_a_large_upload_is_clean(self):
        # nginx's `return 200` answers without reading the body: the response
        # ends the exchange mid-upload. The client gets it, the connection
        # closes if the body was not all read, and the body pump stops
        # without an error (it once filled the read buffer and threw).
        import http.client
        for _ in range(4):
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                c.request("GET", "/reviews/first", headers={"Host": "reviews"})
                r = c.getresponse()
                r.read()
                self.assertEqual(r.status, 200)
                c.request("POST", "/reviews/upload", body=os.urandom(1 << 20),
                          headers={"Host": "reviews"})
                r = c.getresponse()
                self.assertEqual(r.status, 200)
                self.assertIn(b"reviews /reviews/upload", r.read())
            finally:
                c.close()
        self.assertNotIn("pump failed", self.proxy.log())
        status, _, _ = self.proxy.admin("GET", "/ready")
        self.assertEqual(status, 200)

    def test_admin_stats_json_lists_the_clusters_counters(self):
        curl(self.port, "/reviews/json", "reviews")
        status, body, _ = self.proxy.admin("GET", "/stats?format=json&filter=^cluster%5C.reviews%5C.")
        self.assertEqual(status, 200)
        stats = {s["name"]: s.get("value") for s in json.loads(body)["stats"] if "name" in s}
        self.assertGreaterEqual(stats["cluster.reviews.upstream_rq_total"], 1)
        self.assertTrue(all(name.startswith("cluster.reviews.") for name in stats), stats)


def main():
    global TURNOUT
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    if not shutil.which("nginx"):
        print("proxy_nginx_test: nginx is required (scripts/setup.sh installs nginx-light)")
        return 1
    TURNOUT = os.path.abspath(sys.argv.pop(1))
    result = unittest.main(exit=False, verbosity=2).result
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
