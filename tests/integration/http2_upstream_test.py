#!/usr/bin/env python3
"""HTTP/1.1 clients -> turnout -> h2c upstreams (Http2ConnPool), end to end.

Usage: http2_upstream_test.py <turnout-binary>

The upstreams are python3-h2 servers (support/h2_backend.py) on 127.0.0.1
port 0; turnout runs with 2 workers. Every socket has a timeout and every
wait is a bounded poll.
"""

import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import h2.settings  # Debian's python3-h2
from hpack import NeverIndexedHeaderTuple

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))

from envoy_yaml import (  # noqa: E402
    REVIEWS_WITH_SANDBOX_VHOST, ROUTER, ROUTING_KEY, TIMEOUT_S, bootstrap, request)
from h2_backend import H2Backend  # noqa: E402
from h2_client import H2Client  # noqa: E402
from turnout_process import TurnoutProcess, run_suite  # noqa: E402
from upgrade_backend import recv_all  # noqa: E402

TURNOUT = None  # set from argv in main()
WORKERS = 2     # TurnoutProcess runs --concurrency 2: one pool per worker

ALL_VHOST = """\
- name: all
  domains: ["*"]
  routes:
  - match: { prefix: "/" }
    route: { cluster: h2 }
"""


def h2_cluster(name, ports, http2_options="{}", deprecated=False, extra=""):
    """A STATIC cluster whose upstream protocol is HTTP/2 (h2c)."""
    endpoints = "".join(
        "      - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: %d } } }\n" % p
        for p in ports)
    if deprecated:
        proto = "  http2_protocol_options: %s\n" % http2_options
    else:
        proto = ("  typed_extension_protocol_options:\n"
                 "    envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n"
                 "      \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n"
                 "      explicit_http_config:\n"
                 "        http2_protocol_options: %s\n") % http2_options
    return ("- name: %s\n"
            "  connect_timeout: 1s\n"
            "  type: STATIC\n"
            "%s%s"
            "  load_assignment:\n"
            "    cluster_name: %s\n"
            "    endpoints:\n"
            "    - lb_endpoints:\n%s") % (name, proto, extra, name, endpoints)


def read_response(sock):
    """Reads one HTTP/1.1 response (Content-Length or chunked) from `sock`.

    Returns (status, headers list of (name lower, value), body, trailers list).
    """
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError("EOF before the response head: %r" % buf)
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = []
    for line in lines[1:]:
        n, _, v = line.partition(":")
        headers.append((n.strip().lower(), v.strip()))
    hdict = dict(headers)

    def need(n):
        nonlocal rest
        while len(rest) < n:
            chunk = sock.recv(65536)
            if not chunk:
                raise AssertionError("EOF inside the body")
            rest += chunk

    def line():
        nonlocal rest
        while b"\r\n" not in rest:
            chunk = sock.recv(65536)
            if not chunk:
                raise AssertionError("EOF inside a chunk header")
            rest += chunk
        l, rest = rest.split(b"\r\n", 1)
        return l

    body = b""
    trailers = []
    if hdict.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int(line().split(b";")[0], 16)
            if size == 0:
                break
            need(size + 2)
            body += rest[:size]
            rest = rest[size + 2:]
        while True:
            l = line()
            if not l:
                break
            n, _, v = l.decode("latin-1").partition(":")
            trailers.append((n.strip().lower(), v.strip()))
    else:
        n = int(hdict.get("content-length", "0"))
        need(n)
        body = rest[:n]
    return status, headers, body, trailers


class Http2UpstreamTestCase(unittest.TestCase):
    BACKEND_OPTIONS = {}

    @classmethod
    def setUpClass(cls):
        cls.backend = H2Backend(**cls.BACKEND_OPTIONS).start()
        cls.turnout = TurnoutProcess(TURNOUT, cls.make_bootstrap()).start()
        cls.port = cls.turnout.port()

    @classmethod
    def tearDownClass(cls):
        cls.turnout.stop()
        cls.backend.stop()

    @classmethod
    def make_bootstrap(cls):
        return bootstrap(ALL_VHOST, [h2_cluster("h2", [cls.backend.port])])

    def echo(self, method, path, headers=None, body=None):
        status, hdrs, data = request(self.port, method, path, headers=headers, body=body)
        self.assertEqual(status, 200, data[:300])
        return json.loads(data), hdrs


class BodiesTest(Http2UpstreamTestCase):
    def test_a_1_mib_post_and_a_1_mib_response_cross_intact(self):
        body = os.urandom(1 << 20)
        info, _ = self.echo("POST", "/upload", body=body,
                            headers={"content-type": "application/octet-stream"})
        self.assertEqual(info["method"], "POST")
        self.assertEqual(info["body_len"], len(body))
        self.assertEqual(info["body_sha256"], hashlib.sha256(body).hexdigest())
        hdrs = dict(info["headers"])
        self.assertEqual(hdrs.get(":authority"), "svc")
        self.assertEqual(hdrs.get("content-length"), str(len(body)))

        status, _, data = request(self.port, "GET", "/big/%d" % (1 << 20))
        self.assertEqual(status, 200)
        self.assertEqual(data, b"x" * (1 << 20))

    def test_a_chunked_request_with_trailers_arrives_as_data_and_trailing_headers(self):
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT_S)
        try:
            sock.sendall(b"POST /chunked HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: chunked\r\n"
                         b"TE: trailers\r\nConnection: keep-alive\r\n\r\n"
                         b"5\r\nhello\r\n6\r\n world\r\n0\r\nx-checksum: abc\r\n\r\n")
            status, _, body, _ = read_response(sock)
        finally:
            sock.close()
        self.assertEqual(status, 200, body)
        info = json.loads(body)
        self.assertEqual(info["body_len"], 11)
        self.assertEqual(info["body_sha256"], hashlib.sha256(b"hello world").hexdigest())
        self.assertEqual(info["trailers"], [["x-checksum", "abc"]])
        names = [n for n, _ in info["headers"]]
        self.assertNotIn("transfer-encoding", names)
        self.assertNotIn("connection", names)
        self.assertIn(["te", "trailers"], info["headers"])

    def test_te_other_than_trailers_is_dropped(self):
        info, _ = self.echo("GET", "/te", headers={"TE": "gzip"})
        self.assertNotIn("te", [n for n, _ in info["headers"]])

    def test_response_trailers_reach_a_chunked_http1_client(self):
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT_S)
        try:
            sock.sendall(b"GET /trailers HTTP/1.1\r\nHost: svc\r\nTE: trailers\r\n\r\n")
            status, headers, body, trailers = read_response(sock)
        finally:
            sock.close()
        self.assertEqual(status, 200)
        self.assertEqual(dict(headers).get("transfer-encoding", "").lower(), "chunked", headers)
        self.assertEqual(json.loads(body)["path"], "/trailers")
        self.assertIn(("x-resp-trailer", "done"), trailers)

    def test_curl_gets_the_response_through_the_h2_upstream(self):
        out = subprocess.run(
            ["curl", "-sS", "--max-time", "5", "-H", "Host: svc",
             "http://127.0.0.1:%d/curl?x=1" % self.port],
            capture_output=True, check=True)
        info = json.loads(out.stdout)
        self.assertEqual(info["path"], "/curl?x=1")
        self.assertEqual(info["method"], "GET")


class MultiplexingTest(Http2UpstreamTestCase):
    def test_many_parallel_requests_use_few_upstream_connections(self):
        before = self.backend.connections
        results = []
        errors = []

        def one(i):
            try:
                status, _, data = request(self.port, "GET", "/p/%d" % i)
                results.append((status, json.loads(data)["path"]))
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))

        threads = [threading.Thread(target=one, args=(i,)) for i in range(60)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(TIMEOUT_S * 2)
        self.assertEqual(errors, [])
        self.assertEqual(sorted(p for _, p in results), sorted("/p/%d" % i for i in range(60)))
        self.assertTrue(all(s == 200 for s, _ in results))
        # One connection per worker at most (60 requests, 100 streams each).
        opened = self.backend.connections - before
        self.assertLessEqual(opened, WORKERS)
        total = self.turnout.counter("cluster.h2.upstream_cx_total")
        self.assertLessEqual(total, WORKERS)
        self.assertEqual(self.turnout.counter("cluster.h2.upstream_cx_http2_total"), total)
        self.assertEqual(self.turnout.counter("cluster.h2.upstream_cx_http1_total") or 0, 0)
        self.assertGreaterEqual(self.turnout.counter("cluster.h2.upstream_rq_total"), 60)


class ClientAbortTest(Http2UpstreamTestCase):
    def test_clients_that_go_away_mid_response_cancel_only_their_streams(self):
        before = self.turnout.counter("cluster.h2.upstream_cx_total") or 0

        def abort():
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT_S)
            try:
                sock.sendall(b"GET /big/4000000 HTTP/1.1\r\nHost: svc\r\n\r\n")
                got = 0
                while got < 100000:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    got += len(chunk)
            finally:
                sock.close()  # mid-response

        threads = [threading.Thread(target=abort) for _ in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(TIMEOUT_S * 2)
        # The streams were cancelled upstream, the connections kept.
        info, _ = self.echo("GET", "/after")
        self.assertEqual(info["path"], "/after")
        after = self.turnout.counter("cluster.h2.upstream_cx_total")
        self.assertLessEqual(after - before, WORKERS)
        self.assertEqual(self.turnout.counter("cluster.h2.upstream_cx_destroy") or 0, 0)


class RefusedStreamTest(Http2UpstreamTestCase):
    BACKEND_OPTIONS = {"refuse_first": True}

    def test_a_refused_stream_is_retried_without_a_retry_policy(self):
        body = b"payload" * 1000
        info, _ = self.echo("POST", "/refused", body=body)
        self.assertEqual(info["body_sha256"], hashlib.sha256(body).hexdigest())
        self.assertEqual(self.backend.refused, 1)
        self.assertEqual(len([r for r in self.backend.requests if r["path"] == "/refused"]), 1)


class CodecStatsTest(Http2UpstreamTestCase):
    """Envoy's upstream HTTP/2 codec stats, cluster.<name>.http2.*."""

    def test_a_stream_the_backend_resets_counts_rx_reset(self):
        # Missing before the cluster's first HTTP/2 connection (as in Envoy).
        before = self.turnout.counter("cluster.h2.http2.rx_reset") or 0
        status, _, _ = request(self.port, "GET", "/reset")
        self.assertGreaterEqual(status, 500)
        self.assertGreater(self.turnout.counter("cluster.h2.http2.rx_reset"), before)
        self.assertGreater(self.turnout.counter("cluster.h2.upstream_rq_rx_reset"), 0)
        self.echo("GET", "/after-reset")  # the connection still serves
        self.turnout.wait_stat("cluster.h2.http2.streams_active", lambda v: v == 0)


class HeldWindowTest(Http2UpstreamTestCase):
    """The upstream's window holds the request body back while the client
    sends the rest of it: what arrives during that wait, up to the end of
    the stream, must still go upstream."""
    BACKEND_OPTIONS = {"hold_window_s": 0.5}
    STREAMS = 8

    def test_body_that_arrives_while_the_upstream_window_is_shut_is_still_forwarded(self):
        # Warm the pool first, so that the upstream's 1-byte stream window is
        # known when the requests below start.
        info, _ = self.echo("GET", "/warm")
        self.assertEqual(info["path"], "/warm")
        # Whether the router has a stream's first bytes when it starts the
        # upstream request depends on scheduling: a few rounds make the race
        # this guards against show up every time it exists.
        for attempt in range(4):
            with self.subTest(attempt=attempt):
                self.split_bodies_round()

    def split_bodies_round(self):
        c = H2Client(self.port)
        try:
            # Each stream's headers and first 1000 bytes in one write, so
            # turnout has both when the router starts the upstream request
            # (several streams: which comes first is up to scheduling).
            bodies = {}
            for _ in range(self.STREAMS):
                sid = c.conn.get_next_available_stream_id()
                c.conn.send_headers(sid, [(":method", "POST"), (":path", "/split"),
                                          (":scheme", "http"), (":authority", "svc")])
                c.streams[sid] = {"headers": None, "data": b"", "trailers": None,
                                  "ended": False, "reset": None}
                bodies[sid] = (os.urandom(1000), os.urandom(3000))
                c.conn.send_data(sid, bodies[sid][0])
            c.flush()
            time.sleep(0.2)  # turnout sent 1 byte of each and waits for window
            for sid, (_, rest) in bodies.items():
                c.send_body(sid, rest, end=True)
            c.wait(lambda: all(c.done(sid) for sid in bodies))
            for sid, (first, rest) in bodies.items():
                s = c.streams[sid]
                self.assertIsNone(s["reset"], s)
                self.assertEqual(s["headers"].get(":status"), "200", s)
                info = json.loads(s["data"])
                self.assertEqual(info["body_len"], len(first) + len(rest))
                self.assertEqual(info["body_sha256"], hashlib.sha256(first + rest).hexdigest())
        finally:
            c.close()


class NeverIndexedTest(Http2UpstreamTestCase):
    """RFC 7541 §6.2.3: an intermediary re-encodes a field that came as a
    never-indexed literal as one too (a credential kept out of every HPACK
    table on the way), in both directions; other fields as it likes."""

    def test_never_indexed_fields_cross_turnout_still_never_indexed(self):
        c = H2Client(self.port)
        try:
            sids = [c.request("/never-indexed", headers=[
                NeverIndexedHeaderTuple("x-api-key", "k-%d" % i), ("x-plain-req", "1")])
                for i in range(3)]
            c.wait(lambda: all(c.done(sid) for sid in sids))
            for i, sid in enumerate(sids):
                s = c.streams[sid]
                self.assertEqual(s["headers"][":status"], "200")
                echo = json.loads(s["data"])
                self.assertIn(["x-api-key", "k-%d" % i], echo["headers"])
                self.assertIn("x-api-key", echo["never_indexed"])
                self.assertNotIn("x-plain-req", echo["never_indexed"])
                self.assertEqual(s["headers"]["x-session"], "s3cr3t")
                self.assertIn("x-session", s["never_indexed"])
                self.assertNotIn("x-plain", s["never_indexed"])
        finally:
            c.close()


class DeprecatedFieldTest(Http2UpstreamTestCase):
    @classmethod
    def make_bootstrap(cls):
        return bootstrap(ALL_VHOST, [h2_cluster(
            "h2", [cls.backend.port], deprecated=True,
            http2_options="{max_concurrent_streams: 1, initial_stream_window_size: 65535, "
                          "initial_connection_window_size: 65535, hpack_table_size: 0}")])

    def test_the_deprecated_cluster_field_selects_h2_and_max_concurrent_streams_caps_it(self):
        # max_concurrent_streams 1: parallel requests on one worker need one
        # connection each; they all arrive over HTTP/2.
        results = []

        def one(i):
            status, _, data = request(self.port, "GET", "/big/200000")
            results.append((status, len(data)))

        threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(TIMEOUT_S * 2)
        self.assertEqual(results, [(200, 200000)] * 8)
        self.assertEqual(self.turnout.counter("cluster.h2.upstream_cx_http2_total"),
                         self.turnout.counter("cluster.h2.upstream_cx_total"))
        self.assertGreater(self.turnout.counter("cluster.h2.upstream_cx_total"), WORKERS)


class UseDownstreamProtocolTest(Http2UpstreamTestCase):
    """use_downstream_protocol_config: each request upstream in its client's
    protocol (Envoy's ClusterInfoImpl::upstreamHttpProtocol). The backend
    serves HTTP/1.1 and h2c on one port and says which one it saw."""

    BACKEND_OPTIONS = {"http1": True}

    @classmethod
    def make_bootstrap(cls):
        cluster = h2_cluster("h2", [cls.backend.port]).replace(
            "      explicit_http_config:\n        http2_protocol_options: {}\n",
            "      use_downstream_protocol_config:\n"
            "        http2_protocol_options: {max_concurrent_streams: 7}\n")
        assert "use_downstream_protocol_config" in cluster
        return bootstrap(ALL_VHOST, [cluster])

    def test_each_request_goes_upstream_in_its_clients_protocol(self):
        status, _, data = request(self.port, "GET", "/from-http1")
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(data)["protocol"], "HTTP/1.1")
        c = H2Client(self.port)
        self.addCleanup(c.close)
        sid = c.request("/from-h2")
        c.wait(lambda: c.done(sid))
        self.assertEqual(c.streams[sid]["headers"][":status"], "200")
        echo = json.loads(c.streams[sid]["data"])
        self.assertNotIn("protocol", echo)  # the h2 side's echo
        self.assertEqual(echo["path"], "/from-h2")
        self.assertGreaterEqual(self.turnout.counter("cluster.h2.upstream_cx_http2_total"), 1)
        self.assertGreaterEqual(self.turnout.counter("cluster.h2.upstream_cx_http1_total"), 1)


class UpgradeTest(Http2UpstreamTestCase):
    """An HTTP/1.1 upgrade to an HTTP/2 cluster goes as an extended CONNECT
    (RFC 8441), seen here by python3-h2 on the far side (which does not take
    a plain CONNECT: tunnel_http2_upstream_test.py has those, and the full
    hop, against a second turnout)."""

    BACKEND_OPTIONS = {"tunnels": True}

    @classmethod
    def make_bootstrap(cls):
        # allow_connect on the cluster: advertised, as Envoy's (not needed
        # for the extended CONNECT itself).
        yaml = bootstrap(ALL_VHOST, [h2_cluster("h2", [cls.backend.port],
                                                http2_options="{allow_connect: true}")])
        return yaml.replace("stat_prefix: ingress\n",
                            "stat_prefix: ingress\n"
                            "          upgrade_configs: [{upgrade_type: websocket}]\n", 1)

    def tunnel(self, head):
        """Sends `head`; returns (socket, response head, first line of the
        backend's echo of the request it saw)."""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT_S)
        self.addCleanup(sock.close)
        sock.sendall(head)
        data = b""
        while b"\r\n\r\n" not in data or not data.endswith(b"\n"):
            d = sock.recv(65536)
            self.assertTrue(d, data)
            data += d
        resp, _, echo = data.partition(b"\r\n\r\n")
        return sock, resp, json.loads(echo)

    def test_an_upgrade_goes_as_an_extended_connect_and_its_200_is_the_101(self):
        sock, resp, echo = self.tunnel(
            b"GET /ws?x=1 HTTP/1.1\r\nHost: svc\r\nConnection: Upgrade\r\n"
            b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        lines = resp.decode().lower().split("\r\n")
        self.assertEqual(lines[0], "http/1.1 101 switching protocols", resp)
        self.assertIn("upgrade: websocket", lines)
        self.assertIn("connection: upgrade", lines)
        # RFC 8441 §4: :method CONNECT, :protocol, :scheme, :path and
        # :authority; no connection-specific field, no content-length.
        fields = echo["headers"]
        pseudo = [(n, v) for n, v in fields if n.startswith(":")]
        self.assertEqual(sorted(pseudo), sorted([(":method", "CONNECT"),
                                                 (":protocol", "websocket"),
                                                 (":scheme", "http"), (":path", "/ws?x=1"),
                                                 (":authority", "svc")]), fields)
        names = [n for n, _ in fields]
        for banned in ("upgrade", "connection", "content-length", "host"):
            self.assertNotIn(banned, names)
        self.assertIn(["sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="], fields)
        sock.sendall(b"frame")
        self.assertEqual(recv_exactly(sock, len(b"echo:frame")), b"echo:frame")
        # The cluster's allow_connect went out in turnout's SETTINGS.
        self.assertEqual(self.backend.client_settings.get(
            h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL), 1)
        sock.shutdown(socket.SHUT_WR)
        self.assertEqual(recv_all(sock), b"")  # END_STREAM, then the close


def recv_exactly(sock, n):
    data = b""
    while len(data) < n:
        d = sock.recv(n - len(data))
        if not d:
            break
        data += d
    return data


class SandboxRoutingTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.base = H2Backend().start()
        cls.sandbox = H2Backend().start()
        cls.turnout = TurnoutProcess(TURNOUT, bootstrap(
            REVIEWS_WITH_SANDBOX_VHOST,
            [h2_cluster("reviews", [cls.base.port]),
             h2_cluster("reviews-feat-x", [cls.sandbox.port])],
            http_filters=ROUTING_KEY + ROUTER)).start()
        cls.port = cls.turnout.port()

    @classmethod
    def tearDownClass(cls):
        cls.turnout.stop()
        cls.base.stop()
        cls.sandbox.stop()

    def test_the_baggage_routing_key_reaches_the_sandbox_h2_cluster(self):
        status, _, data = request(self.port, "GET", "/api", host="reviews",
                                  headers={"baggage": "turnout-routing-key=feat-x"})
        self.assertEqual(status, 200, data)
        info = json.loads(data)
        self.assertEqual(len(self.sandbox.requests), 1)
        self.assertEqual(len(self.base.requests), 0)
        self.assertIn(["baggage", "turnout-routing-key=feat-x"], info["headers"])
        status, _, data = request(self.port, "GET", "/api", host="reviews")
        self.assertEqual(status, 200, data)
        self.assertEqual(len(self.base.requests), 1)


class ConfigRejectionTest(unittest.TestCase):
    def run_turnout(self, cluster_yaml):
        with tempfile.TemporaryDirectory(prefix="turnout-h2-") as d:
            path = os.path.join(d, "bootstrap.yaml")
            with open(path, "w") as f:
                f.write(bootstrap(ALL_VHOST, [cluster_yaml]))
            return subprocess.run([TURNOUT, "-c", path, "--concurrency", "1", "-l", "warning"],
                                  capture_output=True, text=True, timeout=10,
                                  stdin=subprocess.DEVNULL)

    def test_a_bad_http2_protocol_options_field_is_rejected_at_startup_with_its_path(self):
        r = self.run_turnout(h2_cluster("h2", [1], http2_options="{allow_metadata: true}"))
        self.assertNotEqual(r.returncode, 0)
        out = r.stdout + r.stderr
        self.assertIn("static_resources.clusters[0].typed_extension_protocol_options"
                      "[\"envoy.extensions.upstreams.http.v3.HttpProtocolOptions\"]"
                      ".explicit_http_config.http2_protocol_options.allow_metadata", out)
        self.assertIn("not honoured by turnout's HTTP/2 connections", out)

    def test_the_deprecated_field_is_checked_the_same_way(self):
        r = self.run_turnout(h2_cluster("h2", [1], deprecated=True,
                                        http2_options="{allow_metadata: true}"))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("static_resources.clusters[0].http2_protocol_options.allow_metadata",
                      r.stdout + r.stderr)


def main():
    def set_binary(path):
        global TURNOUT
        TURNOUT = path
    return run_suite("http2_upstream_test", set_binary)


if __name__ == "__main__":
    sys.exit(main())
