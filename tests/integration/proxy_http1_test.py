#!/usr/bin/env python3
"""HTTP/1.1 data plane of the real turnout binary, end to end on loopback.

Usage: proxy_http1_test.py <turnout-binary>

Each TestCase class starts its own fake backends and one turnout process
(port 0 everywhere; ports come from admin /listeners) in setUpClass and
stops them in tearDownClass. Every socket has a timeout and every wait is a
bounded poll, so a hung proxy fails the test instead of hanging it.
"""

import hashlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))

from envoy_yaml import (  # noqa: E402
    HEALTH_CHECK, REVIEWS_WITH_SANDBOX_VHOST, ROUTER, ROUTING_KEY, STAT_PREFIX, TIMEOUT_S, bootstrap,
    cluster, request)
from fake_backend import FakeBackend, free_closed_port  # noqa: E402
from turnout_process import TurnoutProcess, run_suite  # noqa: E402
from upgrade_backend import UpgradeProxyCase, recv_all, recv_until  # noqa: E402

TURNOUT = None  # set from argv in main()


def echo(body):
    """The fake backend's JSON echo, with headers as a dict (last value wins)."""
    info = json.loads(body)
    info["hdrs"] = {k: v for k, v in info["headers"]}
    return info


class RawResponse:
    def __init__(self, status, headers, body, closed):
        self.status, self.headers, self.body, self.closed = status, headers, body, closed

    def __repr__(self):
        return "RawResponse(status=%r, headers=%r, body=%r, closed=%r)" % (
            self.status, self.headers, self.body[:200], self.closed)


def raw_exchange(port, data, timeout=TIMEOUT_S):
    """Sends raw bytes on a fresh connection and reads one response.

    Returns a RawResponse; .closed tells whether the proxy closed the
    connection after the response (EOF seen within `timeout`). A response
    without Content-Length is read to EOF.
    """
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the proxy may answer and close before reading everything
        buf = b""
        deadline = time.monotonic() + timeout
        eof = False
        while b"\r\n\r\n" not in buf and time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                eof = True
                break
            buf += chunk
        if b"\r\n\r\n" not in buf:
            return RawResponse(None, {}, buf, eof)
        head, _, rest = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        length = int(headers["content-length"]) if "content-length" in headers else None
        body = rest
        while (length is None or len(body) < length) and not eof and time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                eof = True
                break
            body += chunk
        if not eof:
            # Is the connection closed after the response? Wait (bounded) for EOF.
            try:
                sock.settimeout(max(0.1, deadline - time.monotonic()))
                eof = sock.recv(1) == b""
            except ConnectionResetError:
                eof = True
            except socket.timeout:
                eof = False
        return RawResponse(status, headers, body[:length] if length is not None else body, eof)
    finally:
        sock.close()


class ProxyTestCase(unittest.TestCase):
    """Base: subclasses set BACKENDS (names) and implement make_bootstrap()."""

    BACKENDS = ("svc",)
    EXTRA_ARGS = ()  # more turnout flags (a later --concurrency wins over the default 2)
    proxy = None

    @classmethod
    def make_bootstrap(cls):
        raise NotImplementedError

    @classmethod
    def setUpClass(cls):
        cls.backends = {}
        try:
            for name in cls.BACKENDS:
                cls.backends[name] = FakeBackend(name).start()
            cls.bootstrap_yaml = cls.make_bootstrap()
            cls.proxy = TurnoutProcess(TURNOUT, cls.bootstrap_yaml, cls.EXTRA_ARGS).start()
        except Exception:
            cls._stop_all()
            raise
        cls.port = cls.proxy.port("ingress")

    @classmethod
    def tearDownClass(cls):
        cls._stop_all()

    @classmethod
    def _stop_all(cls):
        if cls.proxy is not None:
            cls.proxy.stop()
            cls.proxy = None
        for b in cls.backends.values():
            b.stop()
        cls.backends = {}

    def get(self, path, headers=None, host="svc", **kw):
        return request(self.port, "GET", path, headers=headers, host=host, **kw)


# --------------------------------------------------------------------------
# 1. Sandbox routing.
# --------------------------------------------------------------------------


class SandboxRoutingTest(ProxyTestCase):
    BACKENDS = ("reviews", "reviews-feat-x")

    @classmethod
    def make_bootstrap(cls):
        vhosts = REVIEWS_WITH_SANDBOX_VHOST
        return bootstrap(vhosts,
                         [cluster(n, [b.port]) for n, b in cls.backends.items()],
                         http_filters=ROUTING_KEY + ROUTER)

    def route(self, headers):
        status, _, body = self.get("/api", headers=headers, host="reviews")
        self.assertEqual(status, 200, body)
        return echo(body)

    def assert_sandbox(self, headers):
        info = self.route(headers)
        self.assertEqual(info["backend"], "reviews-feat-x", headers)
        self.assertEqual(info["hdrs"].get("x-turnout-routing-key"), "feat-x", info["headers"])

    def assert_baseline_without_key(self, headers):
        info = self.route(headers)
        self.assertEqual(info["backend"], "reviews", headers)
        self.assertNotIn("x-turnout-routing-key", info["hdrs"], info["headers"])

    def test_no_key_goes_to_baseline(self):
        self.assert_baseline_without_key({})

    def test_baggage_key_goes_to_sandbox(self):
        self.assert_sandbox({"baggage": "turnout-routing-key=feat-x"})

    def test_tracestate_key_goes_to_sandbox(self):
        self.assert_sandbox({"tracestate": "turnout=feat-x"})

    def test_plain_header_goes_to_sandbox(self):
        self.assert_sandbox({"x-turnout-routing-key": "feat-x"})

    def test_signadot_alias_goes_to_sandbox(self):
        self.assert_sandbox({"baggage": "sd-routing-key=feat-x"})

    def test_malformed_baggage_yields_no_key(self):
        self.assert_baseline_without_key({"baggage": "turnout-routing-key=feat-x;;"})

    def test_key_without_sandbox_goes_to_baseline(self):
        info = self.route({"baggage": "turnout-routing-key=feat-zzz"})
        self.assertEqual(info["backend"], "reviews")

    def test_found_counter_counts(self):
        name = "http.%s.routing_key.found" % STAT_PREFIX
        before = self.proxy.counter(name) or 0
        for _ in range(3):
            self.assert_sandbox({"baggage": "turnout-routing-key=feat-x"})
        seen = self.proxy.wait_counter(name, before + 3)
        self.assertIsNotNone(seen, "%s missing from /stats" % name)
        self.assertGreaterEqual(seen, before + 3)


# --------------------------------------------------------------------------
# 2, 3. Keep-alive and request bodies.
# --------------------------------------------------------------------------

ONE_CLUSTER_VHOSTS = """\
- name: svc
  domains: ["svc"]
  routes:
  - match: { prefix: "/" }
    route: { cluster: svc }
"""


class KeepAliveTest(ProxyTestCase):
    @classmethod
    def make_bootstrap(cls):
        return bootstrap(ONE_CLUSTER_VHOSTS, [cluster("svc", [cls.backends["svc"].port])])

    def test_requests_on_one_connection_reuse_upstream_connections(self):
        backend = self.backends["svc"]
        conns_before = backend.connections
        n = 8
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT_S)
        try:
            for i in range(n):
                status, _, body = request(self.port, "GET", "/ka/%d" % i, conn=conn)
                self.assertEqual(status, 200, body)
                self.assertEqual(echo(body)["path"], "/ka/%d" % i)
        finally:
            conn.close()
        used = backend.connections - conns_before
        self.assertLess(used, n, "backend saw %d connections for %d requests" % (used, n))


class RequestBodyTest(ProxyTestCase):
    @classmethod
    def make_bootstrap(cls):
        return bootstrap(ONE_CLUSTER_VHOSTS, [cluster("svc", [cls.backends["svc"].port])])

    def test_one_mib_content_length_body_arrives_intact(self):
        body = os.urandom(1 << 20)
        status, _, resp = request(self.port, "POST", "/upload", body=body,
                                  headers={"Content-Type": "application/octet-stream"})
        self.assertEqual(status, 200, resp[:200])
        info = echo(resp)
        self.assertEqual(info["body_len"], len(body))
        self.assertEqual(info["body_sha256"], hashlib.sha256(body).hexdigest())

    def test_chunked_body_arrives_intact(self):
        pieces = [os.urandom(n) for n in (1, 1000, 70000, 5, 300000)]
        whole = b"".join(pieces)
        status, _, resp = request(self.port, "POST", "/upload-chunked", body=iter(pieces),
                                  headers={"Transfer-Encoding": "chunked"}, encode_chunked=True)
        self.assertEqual(status, 200, resp[:200])
        info = echo(resp)
        self.assertEqual(info["body_len"], len(whole))
        self.assertEqual(info["body_sha256"], hashlib.sha256(whole).hexdigest())

    def test_chunked_response_body_arrives_intact(self):
        status, _, resp = self.get("/chunked/200000")
        self.assertEqual(status, 200)
        self.assertEqual(resp, b"x" * 200000)


# --------------------------------------------------------------------------
# 4. No route.
# --------------------------------------------------------------------------


class NoRouteTest(ProxyTestCase):
    @classmethod
    def make_bootstrap(cls):
        vhosts = """\
        - name: svc
          domains: ["svc"]
          routes:
          - match: { prefix: "/api" }
            route: { cluster: svc }
        """
        return bootstrap(vhosts, [cluster("svc", [cls.backends["svc"].port])])

    def test_routed_path_reaches_backend(self):
        status, _, body = self.get("/api/x")
        self.assertEqual(status, 200, body)

    def test_path_without_route_is_404_with_empty_body(self):
        status, _, body = self.get("/other")
        self.assertEqual(status, 404)
        self.assertEqual(body, b"")

    def test_unknown_host_is_404(self):
        status, _, body = self.get("/api/x", host="nobody.example")
        self.assertEqual(status, 404)
        self.assertEqual(body, b"")


# --------------------------------------------------------------------------
# 5, 6. Upstream failures: connect error, route timeout.
# --------------------------------------------------------------------------


class UpstreamFailureTest(ProxyTestCase):
    @classmethod
    def make_bootstrap(cls):
        vhosts = """\
        - name: svc
          domains: ["svc"]
          routes:
          - match: { prefix: "/dead" }
            route: { cluster: dead }
          - match: { prefix: "/slow" }
            route: { cluster: svc, timeout: 0.3s }
          - match: { prefix: "/" }
            route: { cluster: svc }
        """
        return bootstrap(vhosts, [cluster("svc", [cls.backends["svc"].port]),
                                  cluster("dead", [free_closed_port()])])

    def test_closed_port_is_503_connect_error(self):
        status, _, body = self.get("/dead")
        self.assertEqual(status, 503, body)
        self.assertTrue(body.startswith(b"upstream connect error or disconnect/reset before headers"),
                        body)

    def test_route_timeout_is_504(self):
        start = time.monotonic()
        status, _, body = self.get("/slow/delay/2000")
        elapsed = time.monotonic() - start
        self.assertEqual(status, 504, body)
        self.assertEqual(body, b"upstream request timeout")
        self.assertLess(elapsed, 2.0, "504 took %.2fs; the route timeout is 0.3s" % elapsed)

    def test_backend_closing_without_answer_is_503(self):
        status, _, body = self.get("/close")
        self.assertEqual(status, 503, body)
        self.assertTrue(body.startswith(b"upstream connect error or disconnect/reset before headers"),
                        body)


# --------------------------------------------------------------------------
# 7. Retries.
# --------------------------------------------------------------------------


class RetryTest(ProxyTestCase):
    @classmethod
    def make_bootstrap(cls):
        vhosts = """\
        - name: svc
          domains: ["svc"]
          routes:
          - match: { prefix: "/retry/" }
            route:
              cluster: svc
              retry_policy: { retry_on: "5xx", num_retries: 2 }
          - match: { prefix: "/" }
            route: { cluster: svc }
        """
        return bootstrap(vhosts, [cluster("svc", [cls.backends["svc"].port])])

    def test_retry_on_5xx_turns_one_503_into_200(self):
        stat = "cluster.svc.upstream_rq_retry"
        before = self.proxy.counter(stat) or 0
        status, _, body = self.get("/retry/fail-first/1/a")
        self.assertEqual(status, 200, body)
        hits = [r for r in self.backends["svc"].requests if r["path"] == "/retry/fail-first/1/a"]
        self.assertEqual(len(hits), 2)
        seen = self.proxy.wait_counter(stat, before + 1)
        self.assertIsNotNone(seen, "%s missing from /stats" % stat)
        self.assertGreaterEqual(seen, before + 1)

    def test_retries_are_bounded_by_num_retries(self):
        status, _, _ = self.get("/retry/fail-first/10/b")
        self.assertEqual(status, 503)
        hits = [r for r in self.backends["svc"].requests if r["path"] == "/retry/fail-first/10/b"]
        self.assertEqual(len(hits), 3, "1 try + num_retries 2")

    def test_a_body_within_the_buffer_limit_is_retried_whole(self):
        # Envoy keeps the body for retries up to the listener's
        # per_connection_buffer_limit_bytes (1 MiB by default).
        body = os.urandom(300 * 1024)
        status, _, reply = request(self.port, "POST", "/retry/fail-first/1/body", body=body,
                                   host="svc")
        self.assertEqual(status, 200, reply)
        hits = [r for r in self.backends["svc"].requests if r["path"] == "/retry/fail-first/1/body"]
        self.assertEqual(len(hits), 2)
        digest = hashlib.sha256(body).hexdigest()
        self.assertEqual([(h["body_len"], h["body_sha256"]) for h in hits],
                         [(len(body), digest)] * 2)

    def test_a_body_over_the_buffer_limit_is_not_retried(self):
        body = os.urandom(1024 * 1024 + 1)
        status, _, _ = request(self.port, "POST", "/retry/fail-first/1/huge", body=body, host="svc")
        self.assertEqual(status, 503)
        hits = [r for r in self.backends["svc"].requests if r["path"] == "/retry/fail-first/1/huge"]
        self.assertEqual(len(hits), 1)
        self.assertEqual(hits[0]["body_len"], len(body))

    def test_without_retry_policy_503_passes_through(self):
        status, headers, body = self.get("/fail-first/1/c")
        self.assertEqual(status, 503)
        self.assertEqual(headers.get("x-backend"), "svc")
        self.assertEqual(echo(body)["path"], "/fail-first/1/c")
        hits = [r for r in self.backends["svc"].requests if r["path"] == "/fail-first/1/c"]
        self.assertEqual(len(hits), 1)


# --------------------------------------------------------------------------
# 8. Direct response and redirect.
# --------------------------------------------------------------------------


class DirectResponseAndRedirectTest(ProxyTestCase):
    BACKENDS = ()

    @classmethod
    def make_bootstrap(cls):
        vhosts = """\
        - name: svc
          domains: ["svc"]
          routes:
          - match: { path: "/hello" }
            direct_response: { status: 200, body: { inline_string: "hello" } }
          - match: { prefix: "/" }
            redirect: { https_redirect: true }
        """
        return bootstrap(vhosts, [cluster("unused", [free_closed_port()])])

    def test_direct_response(self):
        status, _, body = self.get("/hello")
        self.assertEqual(status, 200)
        self.assertEqual(body, b"hello")

    def test_https_redirect(self):
        status, headers, _ = self.get("/some/path?q=1")
        self.assertEqual(status, 301)
        self.assertEqual(headers.get("location"), "https://svc/some/path?q=1")


# --------------------------------------------------------------------------
# 9. Malformed requests on a raw socket.
# --------------------------------------------------------------------------


class MalformedRequestTest(ProxyTestCase):
    @classmethod
    def make_bootstrap(cls):
        vhosts = """\
        - name: svc
          domains: ["*"]
          routes:
          - match: { prefix: "/" }
            route: { cluster: svc }
        """
        return bootstrap(vhosts, [cluster("svc", [cls.backends["svc"].port])])

    def raw(self, data):
        return raw_exchange(self.port, data)

    def assert_rejected(self, data, status, closed=None):
        """The proxy itself answers `status` (the backend never sees the request)."""
        seen_before = len(self.backends["svc"].requests)
        r = self.raw(data)
        self.assertEqual(r.status, status, r)
        self.assertNotIn("x-backend", r.headers, "the backend answered, not the proxy: %r" % r)
        self.assertEqual(len(self.backends["svc"].requests), seen_before,
                         "the request reached the backend")
        if closed is not None:
            self.assertEqual(r.closed, closed, "connection closed=%r after %d: %r"
                             % (r.closed, status, r))
        return r

    def assert_still_serving(self):
        status, _, body = self.get("/after")
        self.assertEqual(status, 200, body)

    def test_well_formed_raw_request_is_200(self):
        r = self.raw(b"GET /ok HTTP/1.1\r\nHost: svc\r\nConnection: close\r\n\r\n")
        self.assertEqual(r.status, 200, r)

    def test_content_length_and_transfer_encoding_is_400_and_close(self):
        self.assert_rejected(b"POST / HTTP/1.1\r\nHost: svc\r\nContent-Length: 5\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, closed=True)
        self.assert_still_serving()

    def test_obs_fold_is_400(self):
        self.assert_rejected(b"GET / HTTP/1.1\r\nHost: svc\r\nX-Folded: a\r\n  b\r\n\r\n", 400)
        self.assert_still_serving()

    def test_70_kib_header_is_431(self):
        self.assert_rejected(
            b"GET / HTTP/1.1\r\nHost: svc\r\nX-Big: " + b"a" * (70 * 1024) + b"\r\n\r\n", 431)
        self.assert_still_serving()

    def test_101_headers_is_431(self):
        extra = b"".join(b"X-H-%d: v\r\n" % i for i in range(100))  # + Host = 101
        self.assert_rejected(b"GET / HTTP/1.1\r\nHost: svc\r\n" + extra + b"\r\n", 431)
        self.assert_still_serving()

    def test_100_headers_are_accepted(self):
        extra = b"".join(b"X-H-%d: v\r\n" % i for i in range(98))  # + Host + Connection = 100
        r = self.raw(b"GET / HTTP/1.1\r\nHost: svc\r\nConnection: close\r\n" + extra + b"\r\n")
        self.assertEqual(r.status, 200, r)

    def test_transfer_encoding_gzip_chunked_is_501(self):
        self.assert_rejected(b"POST / HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                             b"0\r\n\r\n", 501)
        self.assert_still_serving()

    def test_http11_without_host_is_400(self):
        self.assert_rejected(b"GET / HTTP/1.1\r\nUser-Agent: t\r\n\r\n", 400)
        self.assert_still_serving()

    def test_invalid_chunk_size_is_400(self):
        r = self.raw(b"POST / HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"zz\r\nhello\r\n0\r\n\r\n")
        # The headers may already be on their way upstream (bodies stream), so
        # only the answer is checked: the proxy's 400, not the backend's.
        self.assertEqual(r.status, 400, r)
        self.assertNotIn("x-backend", r.headers, r)
        self.assert_still_serving()


# --------------------------------------------------------------------------
# 10. Admin.
# --------------------------------------------------------------------------


class AdminTest(ProxyTestCase):
    @classmethod
    def make_bootstrap(cls):
        return bootstrap(ONE_CLUSTER_VHOSTS, [cluster("svc", [cls.backends["svc"].port])],
                         http_filters=HEALTH_CHECK + ROUTER)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # Traffic so that the cluster and 2xx counters exist and count.
        for _ in range(3):
            status, _, _ = request(cls.port, "GET", "/warmup")
            assert status == 200, status
        cls.proxy.wait_counter("http.%s.downstream_rq_2xx" % STAT_PREFIX, 3)

    def admin(self, method, path):
        return self.proxy.admin(method, path)

    def test_ready_is_live(self):
        status, body, _ = self.admin("GET", "/ready")
        self.assertEqual(status, 200)
        self.assertEqual(body.strip(), b"LIVE")

    def test_stats_text_has_cluster_http_and_listener_stats(self):
        status, body, _ = self.admin("GET", "/stats")
        self.assertEqual(status, 200)
        text = body.decode()
        stats = self.proxy.stats()
        self.assertIn("cluster.svc.upstream_rq_total", stats, text[:2000])
        self.assertGreaterEqual(int(stats["cluster.svc.upstream_rq_total"]), 3)
        self.assertIn("http.%s.downstream_rq_2xx" % STAT_PREFIX, stats, text[:2000])
        self.assertGreaterEqual(int(stats["http.%s.downstream_rq_2xx" % STAT_PREFIX]), 3)
        self.assertTrue(any(line.startswith("listener.") for line in text.splitlines()),
                        "no listener.* line in /stats")

    def test_stats_json_parses(self):
        status, body, _ = self.admin("GET", "/stats?format=json")
        self.assertEqual(status, 200)
        doc = json.loads(body)
        self.assertIn("stats", doc)
        names = {s.get("name") for s in doc["stats"] if isinstance(s, dict)}
        self.assertIn("cluster.svc.upstream_rq_total", names)

    def test_stats_prometheus(self):
        status, body, _ = self.admin("GET", "/stats/prometheus")
        self.assertEqual(status, 200)
        self.assertIn(b'envoy_cluster_upstream_rq_total{envoy_cluster_name="svc"}', body)

    def test_clusters(self):
        status, body, _ = self.admin("GET", "/clusters")
        self.assertEqual(status, 200)
        self.assertIn(b"svc::default_priority::max_connections::1024", body)

    def test_healthcheck_fail_needs_post(self):
        status, _, _ = self.admin("GET", "/healthcheck/fail")
        self.assertEqual(status, 405)

    def test_healthcheck_fail_and_ok_drive_health_check_filter(self):
        status, _, _ = self.get("/healthz")
        self.assertEqual(status, 200)
        self.addCleanup(self.admin, "POST", "/healthcheck/ok")
        status, _, _ = self.admin("POST", "/healthcheck/fail")
        self.assertEqual(status, 200)
        status, _, _ = self.get("/healthz")
        self.assertEqual(status, 503)
        status, _, _ = self.admin("POST", "/healthcheck/ok")
        self.assertEqual(status, 200)
        status, _, _ = self.get("/healthz")
        self.assertEqual(status, 200)

    def test_health_check_filter_answers_without_backend(self):
        before = len([r for r in self.backends["svc"].requests if r["path"] == "/healthz"])
        status, _, _ = self.get("/healthz")
        self.assertEqual(status, 200)
        after = len([r for r in self.backends["svc"].requests if r["path"] == "/healthz"])
        self.assertEqual(after, before, "pass_through_mode: false must not reach the backend")


class ShutdownTest(unittest.TestCase):
    """Each test gets its own turnout process, since each one ends it."""

    @classmethod
    def setUpClass(cls):
        cls.backend = FakeBackend("svc").start()
        cls.bootstrap_yaml = bootstrap(ONE_CLUSTER_VHOSTS, [cluster("svc", [cls.backend.port])])

    @classmethod
    def tearDownClass(cls):
        cls.backend.stop()

    def setUp(self):
        self.proxy = TurnoutProcess(TURNOUT, self.bootstrap_yaml).start()
        self.addCleanup(self.proxy.stop)
        self.port = self.proxy.port("ingress")

    def assert_exits_zero(self, what):
        rc = self.proxy.wait_exit(5)
        self.assertIsNotNone(rc, "turnout still running 5s after %s" % what)
        self.assertEqual(rc, 0, "exit status after %s (negative: killed by that signal); log:\n%s"
                         % (what, self.proxy.log()))

    def quit(self):
        status, _, _ = self.proxy.admin("POST", "/quitquitquit")
        self.assertEqual(status, 200)

    def test_quitquitquit_exits_zero(self):
        status, _, _ = request(self.port, "GET", "/before-quit")
        self.assertEqual(status, 200)
        # No downstream connection left open: see the keep-alive tests below.
        active = "http.%s.downstream_cx_active" % STAT_PREFIX
        seen = self.proxy.wait_stat(active, lambda v: v == 0)
        self.assertEqual(seen, 0, "%s never reached 0" % active)
        self.quit()
        self.assert_exits_zero("POST /quitquitquit")

    # Regression: ~Worker used to destroy its connection list before io_, whose
    # destructor destroys suspended connection coroutines that unregister
    # themselves from that list (SIGSEGV on shutdown with a client connected).
    def open_idle_keepalive_connection(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT_S)
        self.addCleanup(conn.close)
        status, _, _ = request(self.port, "GET", "/keep", conn=conn)
        self.assertEqual(status, 200)

    def test_quitquitquit_with_open_keepalive_connection_exits_zero(self):
        self.open_idle_keepalive_connection()
        self.quit()
        self.assert_exits_zero("POST /quitquitquit with an idle keep-alive connection open")

    def test_sigterm_with_open_keepalive_connection_exits_zero(self):
        self.open_idle_keepalive_connection()
        self.proxy.proc.terminate()
        self.assert_exits_zero("SIGTERM with an idle keep-alive connection open")


# --------------------------------------------------------------------------
# 11. Headers added and kept.
# --------------------------------------------------------------------------


class HeadersTest(ProxyTestCase):
    @classmethod
    def make_bootstrap(cls):
        return bootstrap(ONE_CLUSTER_VHOSTS, [cluster("svc", [cls.backends["svc"].port])])

    def test_response_keeps_upstream_headers_and_adds_envoy_ones(self):
        status, headers, _ = self.get("/h")
        self.assertEqual(status, 200)
        self.assertEqual(headers.get("x-backend"), "svc")
        self.assertEqual(headers.get("content-type"), "application/json")
        self.assertIn("x-envoy-upstream-service-time", headers)
        self.assertTrue(headers["x-envoy-upstream-service-time"].isdigit(), headers)
        self.assertEqual(headers.get("server"), "envoy")

    def test_backend_receives_request_id_and_forwarded_proto(self):
        status, _, body = self.get("/h", headers={"X-Custom": "kept"})
        self.assertEqual(status, 200)
        hdrs = echo(body)["hdrs"]
        # A version-4 UUID, as Envoy's request id.
        self.assertRegex(hdrs.get("x-request-id", ""),
                         r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
        self.assertEqual(hdrs.get("x-forwarded-proto"), "http")
        self.assertEqual(hdrs.get("x-custom"), "kept")

    def test_request_ids_differ_per_request(self):
        ids = set()
        for _ in range(3):
            _, _, body = self.get("/h")
            ids.add(echo(body)["hdrs"].get("x-request-id"))
        self.assertEqual(len(ids), 3, ids)


# --------------------------------------------------------------------------
# 12. Load balancing.
# --------------------------------------------------------------------------


class LoadBalancingTest(ProxyTestCase):
    BACKENDS = ("a", "b")

    @classmethod
    def make_bootstrap(cls):
        return bootstrap(ONE_CLUSTER_VHOSTS,
                         [cluster("svc", [cls.backends["a"].port, cls.backends["b"].port])])

    def test_round_robin_spreads_evenly(self):
        counts = {"a": 0, "b": 0}
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT_S)
        try:
            for i in range(10):
                status, _, body = request(self.port, "GET", "/lb/%d" % i, conn=conn)
                self.assertEqual(status, 200, body)
                counts[echo(body)["backend"]] += 1
        finally:
            conn.close()
        self.assertLessEqual(abs(counts["a"] - counts["b"]), 2, counts)  # 5/5 +- 1

    def test_round_robin_across_connections(self):
        counts = {"a": 0, "b": 0}
        for i in range(10):
            status, _, body = self.get("/lb-new/%d" % i)
            self.assertEqual(status, 200, body)
            counts[echo(body)["backend"]] += 1
        self.assertLessEqual(abs(counts["a"] - counts["b"]), 2, counts)


# --------------------------------------------------------------------------
# 13. WebSocket upgrades: tunnelled after the 101 when upgrade_configs allows.
# --------------------------------------------------------------------------


class WebSocketTest(UpgradeProxyCase, unittest.TestCase):
    UPGRADE = (b"GET %s HTTP/1.1\r\nHost: svc\r\nUpgrade: websocket\r\n"
               b"Connection: Upgrade\r\n\r\n")

    @staticmethod
    def TURNOUT_BINARY():
        return TURNOUT

    @classmethod
    def bootstrap_yaml(cls, backend_port):
        vhosts = """\
        - name: svc
          domains: ["*"]
          routes:
          - match: { prefix: "/off" }
            route: { cluster: svc, upgrade_configs: [{ upgrade_type: websocket, enabled: false }] }
          - match: { prefix: "/" }
            route: { cluster: svc }
        """
        return bootstrap(vhosts, [cluster("svc", [backend_port])]).replace(
            "          route_config:\n",
            "          upgrade_configs: [{ upgrade_type: websocket }]\n          route_config:\n", 1)

    def test_upgrade_tunnels_bytes_both_ways(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT_S)
        try:
            s.sendall(self.UPGRADE % b"/chat" + b"early")
            got = recv_until(s, b"echo:early")
            self.assertTrue(got.startswith(b"HTTP/1.1 101 "), got)
            self.assertIn(b"connection: upgrade", got.lower())
            self.assertIn(b"upgrade: websocket", got.lower())
            self.assertIn(b"echo:early", got)
            s.sendall(b"ping")
            self.assertEqual(recv_until(s, b"echo:ping"), b"echo:ping")
        finally:
            s.close()

    def test_a_half_close_goes_through_and_the_answer_after_it_arrives(self):
        # The client ends its side; the origin still answers after the FIN
        # (eof:<bytes>), and only then do both sides close.
        s = socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT_S)
        try:
            s.sendall(self.UPGRADE % b"/chat" + b"abc")
            self.assertIn(b"echo:abc", recv_until(s, b"echo:abc"))
            s.sendall(b"defg")
            self.assertIn(b"echo:defg", recv_until(s, b"echo:defg"))
            s.shutdown(socket.SHUT_WR)
            self.assertEqual(recv_all(s), b"eof:7")
        finally:
            s.close()

    def test_upgrade_disabled_on_the_route_is_refused_with_403(self):
        got = raw_exchange(self.port, self.UPGRADE % b"/off/chat")
        self.assertEqual(got.status, 403, got)

    def test_upgrade_not_configured_is_refused_with_403(self):
        # A second proxy without upgrade_configs.
        yaml = bootstrap(ONE_CLUSTER_VHOSTS, [cluster("svc", [self.backend.port])])
        proxy = TurnoutProcess(TURNOUT, yaml).start()
        try:
            got = raw_exchange(proxy.port("ingress"), self.UPGRADE % b"/chat")
            self.assertEqual(got.status, 403, got)
        finally:
            proxy.stop()


# --------------------------------------------------------------------------
# 14. Request mirroring: a fire-and-forget copy to the shadow cluster.
# --------------------------------------------------------------------------


class MirrorTest(ProxyTestCase):
    BACKENDS = ("svc", "shadow")

    @classmethod
    def make_bootstrap(cls):
        vhosts = """\
        - name: svc
          domains: ["svc", "svc:*"]
          routes:
          - match: { prefix: "/half" }
            route:
              cluster: svc
              request_mirror_policies:
              - cluster: shadow
                runtime_fraction: { default_value: { numerator: 0 } }
          - match: { prefix: "/" }
            route:
              cluster: svc
              request_mirror_policies: [{ cluster: shadow }]
        """
        return bootstrap(vhosts, [cluster("svc", [cls.backends["svc"].port]),
                                  cluster("shadow", [cls.backends["shadow"].port])])

    def shadow_requests(self, path, want, deadline_s=5.0):
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            got = [r for r in self.backends["shadow"].requests if r["path"] == path]
            if len(got) >= want:
                return got
            time.sleep(0.02)
        return [r for r in self.backends["shadow"].requests if r["path"] == path]

    def test_mirror_gets_a_copy_with_shadow_host_and_body(self):
        status, _, body = request(self.port, "POST", "/orders", body=b"x" * 1000)
        self.assertEqual(status, 200, body)
        self.assertEqual(echo(body)["backend"], "svc")
        got = self.shadow_requests("/orders", 1)
        self.assertEqual(len(got), 1, self.backends["shadow"].requests)
        headers = dict(got[0]["headers"])
        self.assertEqual(headers.get("host"), "svc-shadow")
        self.assertEqual(got[0]["body_len"], 1000)
        self.assertEqual(got[0]["method"], "POST")

    def test_runtime_fraction_zero_mirrors_nothing(self):
        for i in range(5):
            status, _, _ = self.get("/half/%d" % i)
            self.assertEqual(status, 200)
        # The primary answered; a mirror would have been started before that.
        self.get("/after-half")
        self.shadow_requests("/after-half", 1)
        self.assertEqual([r for r in self.backends["shadow"].requests
                          if r["path"].startswith("/half")], [])


# --------------------------------------------------------------------------
# 15. Outlier detection: consecutive 5xx eject a host.
# --------------------------------------------------------------------------


class GoodBadClusterTest(unittest.TestCase):
    """One cluster of two hosts: "good" answers 200, "bad" BAD_STATUS to everything.

    Subclasses add cluster YAML (outlier detection, health checks) in CLUSTER_EXTRA.
    """

    BAD_STATUS = 500
    CLUSTER_EXTRA = ""

    @classmethod
    def setUpClass(cls):
        cls.good = FakeBackend("good").start()
        cls.bad = FakeBackend("bad", force_status=cls.BAD_STATUS).start()
        c = cluster("svc", [cls.good.port, cls.bad.port]) + cls.CLUSTER_EXTRA
        try:
            cls.proxy = TurnoutProcess(TURNOUT, bootstrap(ONE_CLUSTER_VHOSTS, [c])).start()
        except Exception:
            cls.good.stop()
            cls.bad.stop()
            raise
        cls.port = cls.proxy.port("ingress")

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        cls.good.stop()
        cls.bad.stop()


class OutlierDetectionTest(GoodBadClusterTest):
    CLUSTER_EXTRA = (
        "  outlier_detection:\n"
        "    consecutive_5xx: 3\n"
        "    base_ejection_time: 30s\n"
        "    max_ejection_percent: 50\n")

    def test_a_host_failing_in_a_row_is_ejected(self):
        statuses = []
        for i in range(30):
            status, _, _ = request(self.port, "GET", "/od/%d" % i)
            statuses.append(status)
        # Round robin sends every other request to the bad host until three
        # 500s in a row eject it; after that only the good host answers. The
        # main thread ejects and posts the ejection to the workers, as Envoy's
        # detector does, so one request picked meanwhile may still reach it.
        self.assertIn(statuses.count(500), (3, 4), statuses)
        self.assertTrue(all(s == 200 for s in statuses[10:]), statuses)
        self.assertEqual(self.proxy.counter("cluster.svc.outlier_detection.ejections_total"), 1)


# --------------------------------------------------------------------------
# 16. Active HTTP health checks take failing hosts out of rotation.
# --------------------------------------------------------------------------


class ActiveHealthCheckTest(GoodBadClusterTest):
    BAD_STATUS = 503
    CLUSTER_EXTRA = (
        "  health_checks:\n"
        "  - timeout: 1s\n"
        "    interval: 0.1s\n"
        "    unhealthy_threshold: 1\n"
        "    healthy_threshold: 1\n"
        "    http_health_check: { path: /healthz }\n")

    def test_only_hosts_passing_their_checks_get_traffic(self):
        seen = self.proxy.wait_counter("cluster.svc.health_check.success", 1)
        self.assertGreaterEqual(seen, 1)
        self.assertGreaterEqual(self.proxy.wait_counter("cluster.svc.health_check.failure", 1), 1)
        statuses = [request(self.port, "GET", "/hc/%d" % i)[0] for i in range(10)]
        self.assertEqual(statuses, [200] * 10)
        self.assertTrue(any(r["path"] == "/healthz" for r in self.bad.requests))
        self.assertFalse(any(r["path"].startswith("/hc/") for r in self.bad.requests))
        _, clusters, _ = self.proxy.admin("GET", "/clusters")
        text = clusters.decode()
        self.assertIn(":%d::health_flags::/failed_active_hc" % self.bad.port, text)
        self.assertIn(":%d::health_flags::healthy" % self.good.port, text)


# --------------------------------------------------------------------------
# 17. normalize_path / merge_slashes run before routing.
# --------------------------------------------------------------------------


class PathNormalizationTest(ProxyTestCase):
    @classmethod
    def make_bootstrap(cls):
        vhosts = """\
        - name: svc
          domains: ["*"]
          routes:
          - match: { path: "/api/users" }
            route: { cluster: svc }
        """
        return bootstrap(vhosts, [cluster("svc", [cls.backends["svc"].port])]).replace(
            "          route_config:\n",
            "          normalize_path: true\n          merge_slashes: true\n"
            "          route_config:\n", 1)

    def test_dot_segments_and_slashes_are_normalised_before_matching(self):
        for path in ("/api/users", "/api/./users", "/x/../api/users", "//api///users",
                     "/api/%75sers"):
            status, _, body = raw_status_and_body(self.port, path)
            self.assertEqual(status, 200, (path, body))
        got = [r["path"] for r in self.backends["svc"].requests]
        self.assertTrue(all(p == "/api/users" for p in got), got)

    def test_a_path_above_the_root_is_rejected_with_400(self):
        status, _, _ = raw_status_and_body(self.port, "/../etc/passwd")
        self.assertEqual(status, 400)


# --------------------------------------------------------------------------
# 18. Circuit breakers: requests over max_connections wait as pending requests.
# --------------------------------------------------------------------------


class InFlight:
    """One request on its own thread; join() returns (status, headers, body)."""

    def __init__(self, port, path):
        self.result = None
        self.error = None
        self.thread = threading.Thread(target=self._run, args=(port, path), daemon=True)
        self.thread.start()

    def _run(self, port, path):
        try:
            self.result = request(port, "GET", path)
        except Exception as e:  # noqa: BLE001 - reported by join()
            self.error = e

    def done(self):
        return not self.thread.is_alive()

    def join(self):
        self.thread.join(timeout=TIMEOUT_S + 1)
        if self.thread.is_alive():
            raise AssertionError("request still running after %ss" % (TIMEOUT_S + 1))
        if self.error is not None:
            raise self.error
        return self.result


class PendingRequestTest(ProxyTestCase):
    """One worker, one backend, max_connections 1, max_pending_requests 1."""

    EXTRA_ARGS = ("--concurrency", "1")

    @classmethod
    def make_bootstrap(cls):
        vhosts = """\
        - name: svc
          domains: ["*"]
          routes:
          - match: { prefix: "/short" }
            route: { cluster: svc, timeout: 0.3s }
          - match: { prefix: "/" }
            route: { cluster: svc }
        """
        svc = cluster("svc", [cls.backends["svc"].port]) + (
            "  circuit_breakers:\n"
            "    thresholds:\n"
            "    - max_connections: 1\n"
            "      max_pending_requests: 1\n")
        return bootstrap(vhosts, [svc])

    def stat(self, name):
        return self.proxy.counter("cluster.svc." + name) or 0

    def hold_the_connection(self, ms):
        """Starts a request that keeps the cluster's only connection busy for `ms`."""
        holder = InFlight(self.port, "/delay/%d/hold" % ms)
        self.assertEqual(self.proxy.wait_stat("cluster.svc.upstream_rq_active", lambda v: v == 1), 1)
        return holder

    def wait_pending(self, n):
        got = self.proxy.wait_stat("cluster.svc.upstream_rq_pending_active", lambda v: v == n)
        self.assertEqual(got, n)

    def test_a_request_over_max_connections_waits_and_gets_the_released_connection(self):
        overflow = self.stat("upstream_rq_pending_overflow")
        cx_overflow = self.stat("upstream_cx_overflow")
        holder = self.hold_the_connection(700)
        waiter = InFlight(self.port, "/queued")
        self.wait_pending(1)
        self.assertEqual(self.stat("circuit_breakers.default.cx_open"), 1)
        self.assertEqual(self.stat("circuit_breakers.default.rq_pending_open"), 1)
        self.assertGreater(self.stat("upstream_cx_overflow"), cx_overflow)
        # The pending queue is full: the next one overflows at once.
        status, headers, body = self.get("/overflow")
        self.assertEqual(status, 503, body)
        self.assertEqual(body, b"upstream connect error or disconnect/reset before headers. "
                               b"reset reason: overflow")
        self.assertEqual(headers.get("x-envoy-overloaded"), "true")
        self.assertEqual(self.stat("upstream_rq_pending_overflow"), overflow + 1)
        self.assertFalse(waiter.done())
        held, queued = holder.join(), waiter.join()
        self.assertEqual(held[0], 200)
        self.assertEqual(queued[0], 200, queued[2])
        # The waiter got the connection the holder released.
        self.assertEqual(echo(queued[2])["conn_id"], echo(held[2])["conn_id"])
        self.assertEqual(self.stat("upstream_rq_pending_active"), 0)
        self.assertEqual(self.stat("circuit_breakers.default.rq_pending_open"), 0)
        self.assertFalse(any(r["path"] == "/overflow" for r in self.backends["svc"].requests))

    def test_a_pending_request_past_its_route_timeout_gets_504_and_leaves_the_queue(self):
        cancelled = self.stat("upstream_rq_cancelled")
        timeouts = self.stat("upstream_rq_timeout")
        holder = self.hold_the_connection(1500)
        status, _, body = self.get("/short/late")
        self.assertEqual(status, 504, body)
        self.assertEqual(body, b"upstream request timeout")
        self.assertFalse(holder.done(), "the 504 must not wait for the busy connection")
        self.assertEqual(self.stat("upstream_rq_pending_active"), 0)
        self.assertEqual(self.stat("upstream_rq_cancelled"), cancelled + 1)
        self.assertEqual(self.stat("upstream_rq_timeout"), timeouts + 1)
        self.assertEqual(holder.join()[0], 200)
        self.assertFalse(any(r["path"] == "/short/late" for r in self.backends["svc"].requests))

    def test_a_client_hanging_up_while_pending_leaves_the_queue(self):
        cancelled = self.stat("upstream_rq_cancelled")
        holder = self.hold_the_connection(1500)
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT_S)
        try:
            sock.sendall(b"GET /gone HTTP/1.1\r\nHost: svc\r\n\r\n")
            self.wait_pending(1)
        finally:
            sock.close()
        self.wait_pending(0)
        self.assertFalse(holder.done(), "the hang-up must be noticed while the connection is busy")
        self.assertEqual(self.stat("upstream_rq_cancelled"), cancelled + 1)
        self.assertEqual(holder.join()[0], 200)
        # The released connection went idle and serves the next request.
        status, _, body = self.get("/after-gone")
        self.assertEqual(status, 200, body)
        self.assertFalse(any(r["path"] == "/gone" for r in self.backends["svc"].requests))


# --------------------------------------------------------------------------
# 19. STRICT_DNS / LOGICAL_DNS clusters are resolved again every dns_refresh_rate.
# --------------------------------------------------------------------------


def dns_cluster(name, dns_name, port, kind="STRICT_DNS", refresh="0.1s"):
    return ("- name: %s\n"
            "  connect_timeout: 1s\n"
            "  type: %s\n"
            "  dns_refresh_rate: %s\n"
            "  dns_lookup_family: V4_ONLY\n"
            "  load_assignment:\n"
            "    cluster_name: %s\n"
            "    endpoints:\n"
            "    - lb_endpoints:\n"
            "      - endpoint: { address: { socket_address: { address: %s, port_value: %d } } }\n"
            ) % (name, kind, refresh, name, dns_name, port)


class DnsRefreshTest(ProxyTestCase):
    REFRESH_S = 0.1

    @classmethod
    def make_bootstrap(cls):
        vhosts = """\
        - name: svc
          domains: ["*"]
          routes:
          - match: { prefix: "/" }
            route: { cluster: svc }
        """
        return bootstrap(vhosts, [dns_cluster("svc", "localhost", cls.backends["svc"].port,
                                              refresh="%ss" % cls.REFRESH_S)])

    def test_a_strict_dns_cluster_is_resolved_again_at_its_refresh_rate(self):
        attempts = self.proxy.counter("cluster.svc.update_attempt")
        successes = self.proxy.counter("cluster.svc.update_success")
        start = time.monotonic()
        seen = self.proxy.wait_counter("cluster.svc.update_attempt", attempts + 10, deadline_s=10)
        elapsed = time.monotonic() - start
        self.assertGreaterEqual(seen, attempts + 10)
        # Never faster than dns_refresh_rate (10 intervals, with 10 % for the clocks).
        self.assertGreaterEqual(elapsed, 0.9 * 9 * self.REFRESH_S)
        self.assertGreaterEqual(self.proxy.counter("cluster.svc.update_success"), successes + 9)
        self.assertEqual(self.proxy.counter("cluster.svc.update_failure") or 0, 0)
        self.assertGreaterEqual(self.proxy.counter("cluster.svc.update_no_rebuild"), 9)
        self.assertEqual(self.proxy.counter("cluster.svc.membership_total"), 1)
        status, _, body = self.get("/after-refreshes")
        self.assertEqual(status, 200, body)


HOSTS_FILE_SIZE = 512


def can_unshare_mounts():
    try:
        return subprocess.run(["unshare", "-rm", "true"], timeout=5,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class DnsHostsFileTest(unittest.TestCase):
    """turnout runs in its own mount namespace over a private /etc/hosts that
    the test rewrites in place (same size, one pwrite, so a resolver never
    reads a half-written file); backends listen on 127.0.0.1 and 127.0.0.2 at
    the same port."""

    STRICT = "turnout-strict.test"
    LOGICAL = "turnout-logical.test"

    @classmethod
    def setUpClass(cls):
        if not can_unshare_mounts():
            raise unittest.SkipTest("needs `unshare -rm` (user and mount namespaces)")
        cls.a = cls.b = cls.proxy = None
        for _ in range(10):  # the port taken on 127.0.0.1 may be busy on 127.0.0.2
            a = FakeBackend("a", host="127.0.0.1").start()
            try:
                cls.b = FakeBackend("b", host="127.0.0.2", port=a.port).start()
                cls.a = a
                break
            except OSError:
                a.stop()
        if cls.a is None:
            raise AssertionError("no port free on both 127.0.0.1 and 127.0.0.2")
        cls.tmpdir = tempfile.mkdtemp(prefix="turnout-dns-")
        cls.hosts_path = os.path.join(cls.tmpdir, "hosts")
        cls.entries = {cls.STRICT: ["127.0.0.1"], cls.LOGICAL: ["127.0.0.1"]}
        with open(cls.hosts_path, "wb") as f:
            f.write(cls.hosts_bytes())
        vhosts = """\
        - name: svc
          domains: ["*"]
          routes:
          - match: { prefix: "/strict" }
            route: { cluster: strict }
          - match: { prefix: "/logical" }
            route: { cluster: logical }
        """
        clusters = [dns_cluster("strict", cls.STRICT, cls.a.port),
                    dns_cluster("logical", cls.LOGICAL, cls.a.port, kind="LOGICAL_DNS")]
        wrapper = ["unshare", "-rm", "sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$@"',
                   cls.hosts_path]
        try:
            cls.proxy = TurnoutProcess(TURNOUT, bootstrap(vhosts, clusters),
                                       ("--concurrency", "1"), wrapper).start()
        except Exception:
            cls.tearDownClass()
            raise
        cls.port = cls.proxy.port("ingress")

    @classmethod
    def tearDownClass(cls):
        if cls.proxy is not None:
            cls.proxy.stop()
        for b in (cls.a, cls.b):
            if b is not None:
                b.stop()
        shutil.rmtree(cls.tmpdir, ignore_errors=True)

    @classmethod
    def hosts_bytes(cls):
        text = "".join("%s %s\n" % (ip, name)
                       for name, ips in sorted(cls.entries.items()) for ip in ips)
        pad = HOSTS_FILE_SIZE - len(text) - 2
        return (text + "#" + "x" * pad + "\n").encode()

    @classmethod
    def set_hosts(cls, name, ips):
        cls.entries[name] = ips
        fd = os.open(cls.hosts_path, os.O_WRONLY)
        try:
            os.pwrite(fd, cls.hosts_bytes(), 0)
        finally:
            os.close(fd)

    def cluster_hosts(self, cluster):
        """The host addresses admin /clusters lists for `cluster`."""
        _, body, _ = self.proxy.admin("GET", "/clusters")
        out = set()
        for line in body.decode().splitlines():
            parts = line.split("::")
            if len(parts) >= 3 and parts[0] == cluster and parts[2] == "hostname":
                out.add(parts[1])
        return out

    def wait_hosts(self, cluster, want):
        end = time.monotonic() + 5.0
        while time.monotonic() < end and self.cluster_hosts(cluster) != want:
            time.sleep(0.02)
        self.assertEqual(self.cluster_hosts(cluster), want)

    def backend_of(self, path):
        status, headers, body = request(self.port, "GET", path)
        self.assertEqual(status, 200, body)
        return headers["x-backend"], echo(body)["conn_id"]

    def test_strict_dns_follows_the_answers_and_survivors_keep_their_connections(self):
        p = self.a.port
        self.set_hosts(self.STRICT, ["127.0.0.1"])
        self.wait_hosts("strict", {"127.0.0.1:%d" % p})
        self.assertEqual({self.backend_of("/strict/1/%d" % i)[0] for i in range(4)}, {"a"})

        changes = self.proxy.counter("cluster.strict.membership_change") or 0
        self.set_hosts(self.STRICT, ["127.0.0.1", "127.0.0.2"])
        self.wait_hosts("strict", {"127.0.0.1:%d" % p, "127.0.0.2:%d" % p})
        self.assertEqual(self.proxy.counter("cluster.strict.membership_total"), 2)
        self.assertGreater(self.proxy.counter("cluster.strict.membership_change"), changes)
        seen = [self.backend_of("/strict/2/%d" % i) for i in range(6)]
        self.assertEqual({name for name, _ in seen}, {"a", "b"})
        b_connections = {conn for name, conn in seen if name == "b"}

        self.set_hosts(self.STRICT, ["127.0.0.2"])
        self.wait_hosts("strict", {"127.0.0.2:%d" % p})
        seen = [self.backend_of("/strict/3/%d" % i) for i in range(4)]
        self.assertEqual({name for name, _ in seen}, {"b"})
        # 127.0.0.2 survived the update: its idle connection was kept.
        self.assertTrue({conn for _, conn in seen} <= b_connections, (seen, b_connections))
        self.assertEqual(self.proxy.counter("cluster.strict.update_failure") or 0, 0)

    def test_logical_dns_sends_new_connections_to_the_new_address(self):
        p = self.a.port
        self.set_hosts(self.LOGICAL, ["127.0.0.1"])
        self.wait_hosts("logical", {"127.0.0.1:%d" % p})
        self.assertEqual(self.backend_of("/logical/warm")[0], "a")

        changes = self.proxy.counter("cluster.logical.membership_change")
        self.set_hosts(self.LOGICAL, ["127.0.0.2"])
        self.wait_hosts("logical", {"127.0.0.2:%d" % p})
        # The same one host, at a new address: not a membership change.
        self.assertEqual(self.proxy.counter("cluster.logical.membership_change"), changes)
        # The existing connection is kept and used first (Envoy keeps a
        # logical host's connections when its address changes) ...
        self.assertEqual(self.backend_of("/logical/idle")[0], "a")
        # ... and a second connection, needed now, goes to the new address.
        b_before = self.b.connections
        both = [InFlight(self.port, "/logical/delay/400/%d" % i) for i in range(2)]
        names = sorted(r.join()[1]["x-backend"] for r in both)
        self.assertEqual(names, ["a", "b"])
        self.assertEqual(self.b.connections, b_before + 1)


# --------------------------------------------------------------------------
# 20. MAGLEV: a hash_policy key sticks to one backend.
# --------------------------------------------------------------------------


class MaglevTest(ProxyTestCase):
    BACKENDS = ("m1", "m2", "m3")

    @classmethod
    def make_bootstrap(cls):
        vhosts = """\
        - name: svc
          domains: ["*"]
          routes:
          - match: { prefix: "/" }
            route:
              cluster: sticky
              hash_policy:
              - header: { header_name: x-user }
        """
        ports = [cls.backends[n].port for n in cls.BACKENDS]
        return bootstrap(vhosts, [cluster("sticky", ports, lb_policy="MAGLEV")])

    def backend_for(self, user, i):
        status, headers, body = self.get("/u/%s/%d" % (user, i), headers={"x-user": user})
        self.assertEqual(status, 200, body)
        return headers["x-backend"]

    def test_each_key_sticks_to_one_backend_and_keys_spread(self):
        chosen = {}
        for u in range(24):
            user = "user-%d" % u
            seen = {self.backend_for(user, i) for i in range(3)}
            self.assertEqual(len(seen), 1, (user, seen))
            chosen[user] = seen.pop()
        self.assertEqual(set(chosen.values()), set(self.BACKENDS), chosen)
        # Envoy's maglev_lb stats: 65537 slots over 3 equal hosts.
        self.assertEqual(self.proxy.counter("cluster.sticky.maglev_lb.min_entries_per_host"), 21845)
        self.assertEqual(self.proxy.counter("cluster.sticky.maglev_lb.max_entries_per_host"), 21846)

    def test_requests_without_the_key_are_spread(self):
        seen = {self.get("/nokey/%d" % i)[1]["x-backend"] for i in range(30)}
        self.assertGreater(len(seen), 1)


def raw_status_and_body(port, path):
    """GET with the path exactly as given (http.client would not normalise it either)."""
    got = raw_exchange(port, b"GET " + path.encode() + b" HTTP/1.1\r\nHost: svc\r\n"
                       b"Connection: close\r\n\r\n")
    return got.status, got.headers, got.body


def set_turnout(binary):
    global TURNOUT
    TURNOUT = binary


if __name__ == "__main__":
    sys.exit(run_suite("proxy_http1_test", set_turnout))
