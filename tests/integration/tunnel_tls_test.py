#!/usr/bin/env python3
"""WebSocket tunnels over TLS on either leg, against the real turnout binary.

Usage: tunnel_tls_test.py <turnout-binary> [unittest args]

After a 101, turnout relays bytes between the client and the origin with the
same relay as its TCP proxy (proxy/connection/byte_relay.h): TLS terminated
on the listener (DownstreamTlsContext), originated to the cluster
(UpstreamTlsContext), or both. The origin is support/upgrade_backend.py,
plaintext or TLS (python's ssl); clients are python sockets, wrapped in TLS
where the listener wants it. Certificates are made at test time
(tls_downstream_test.make_certs: ca.pem signs server.pem for svc.test). The
last class sends the tunnel through an HTTP/2 cluster (a second turnout).
"""

import os
import shutil
import socket
import ssl
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tls_downstream_test as certs  # noqa: E402  (make_certs, tls_chain)
from envoy_yaml import bootstrap, cluster  # noqa: E402
from turnout_process import TurnoutProcess, run_suite  # noqa: E402
from upgrade_backend import UpgradeProxyCase, expect_echo, recv_all, recv_until  # noqa: E402

TURNOUT = None  # set from argv in main()
TIMEOUT_S = 10
UPGRADE = (b"GET /chat HTTP/1.1\r\nHost: svc.test\r\nUpgrade: websocket\r\n"
           b"Connection: Upgrade\r\n\r\n")


def upstream_tls():
    """An UpstreamTlsContext that verifies the origin as svc.test."""
    return ("  transport_socket:\n"
            "    name: envoy.transport_sockets.tls\n"
            "    typed_config:\n"
            "      \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."
            "UpstreamTlsContext\n"
            "      sni: svc.test\n"
            "      common_tls_context:\n"
            "        validation_context:\n"
            "          trusted_ca: {filename: %s/ca.pem}\n"
            "          match_typed_subject_alt_names:\n"
            "          - san_type: DNS\n"
            "            matcher: {exact: svc.test}\n" % certs.CERTS)


def server_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(certs.CERTS, "server.pem"),
                        os.path.join(certs.CERTS, "server.key"))
    return ctx


def client_context():
    ctx = ssl.create_default_context(cafile=os.path.join(certs.CERTS, "ca.pem"))
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def digits(n):
    """n bytes of digits: no b"echo:" or b"eof:" can be made of them."""
    return (b"0123456789" * (n // 10 + 1))[:n]


class TunnelCase(UpgradeProxyCase):
    """The tests of every leg combination; the classes below pick the legs."""

    DOWNSTREAM_TLS = False
    UPSTREAM_TLS = False

    @staticmethod
    def TURNOUT_BINARY():
        return TURNOUT

    @classmethod
    def backend_tls(cls):
        return server_context() if cls.UPSTREAM_TLS else None

    @classmethod
    def bootstrap_yaml(cls, backend_port):
        vhosts = ('- name: all\n  domains: ["*"]\n  routes:\n'
                  '  - match: { prefix: "/" }\n    route: { cluster: svc }\n')
        svc = cluster("svc", [backend_port]) + (upstream_tls() if cls.UPSTREAM_TLS else "")
        yaml = bootstrap(vhosts, [svc])
        marker = "          stat_prefix: ingress\n"
        yaml = yaml.replace(marker, marker + "          upgrade_configs: [{upgrade_type: websocket}]\n"
                            "          stream_idle_timeout: 30s\n", 1)
        if cls.DOWNSTREAM_TLS:
            yaml = yaml.replace(certs.CHAIN_MARKER, certs.tls_chain(), 1)
        return yaml

    def connect(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT_S)
        if self.DOWNSTREAM_TLS:
            s = client_context().wrap_socket(s, server_hostname="svc.test")
        self.addCleanup(s.close)
        return s

    def upgrade(self, early=b""):
        s = self.connect()
        s.sendall(UPGRADE + early)
        head = recv_until(s, b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 101 "), head)
        rest = head.split(b"\r\n\r\n", 1)[1]
        return s, rest

    def test_bytes_go_both_ways_after_the_101(self):
        s, rest = self.upgrade(b"early")
        got = rest if b"echo:early" in rest else rest + recv_until(s, b"echo:early")
        self.assertEqual(got, b"echo:early")
        s.sendall(b"ping")
        self.assertEqual(recv_until(s, b"echo:ping"), b"echo:ping")
        self.assertIn(b"upgrade: websocket", self.backend.heads[-1].lower())

    def test_megabytes_arrive_whole_both_ways(self):
        # 3 MiB up while the echo comes down: both of turnout's pumps busy at
        # once, every byte through, in order. One thread sends and reads in
        # turns (an ssl socket must not be used by two threads at once),
        # keeping at most WINDOW bytes unechoed so neither side's buffers
        # fill up.
        WINDOW = 256 * 1024
        s, rest = self.upgrade()
        payload = digits(3 * 1024 * 1024) + b"done"
        raw = bytearray(rest)

        def echoed():
            return len(bytes(raw).replace(b"echo:", b""))

        sent = 0
        while sent < len(payload):
            piece = payload[sent:sent + 65536]
            s.sendall(piece)
            sent += len(piece)
            while echoed() < sent - WINDOW:
                d = s.recv(65536)
                self.assertTrue(d, "EOF before the echo")
                raw += d
        while echoed() < len(payload):
            d = s.recv(65536)
            self.assertTrue(d, "EOF before the echo")
            raw += d
        self.assertEqual(bytes(raw).replace(b"echo:", b""), payload)


class DownstreamTlsTunnelTest(TunnelCase, unittest.TestCase):
    DOWNSTREAM_TLS = True

    def test_the_client_closing_ends_the_origin_side(self):
        before = len(self.backend.heads)
        s, _ = self.upgrade()
        s.sendall(b"x")
        self.assertIn(b"echo:x", recv_until(s, b"echo:x"))
        s.close()
        # The origin saw its client end (it then closes); the listener's
        # connection is gone from the active gauge.
        self.assertEqual(
            self.proxy.wait_stat("http.ingress.downstream_cx_active", lambda v: int(v) == 0), 0)
        self.assertEqual(len(self.backend.heads), before + 1)


class UpstreamTlsTunnelTest(TunnelCase, unittest.TestCase):
    UPSTREAM_TLS = True

    def test_a_half_close_reaches_the_origin_as_close_notify_and_its_answer_comes_back(self):
        s, rest = self.upgrade(b"abc")
        s.sendall(b"defg")
        s.shutdown(socket.SHUT_WR)
        data = (rest + recv_all(s)).replace(b"echo:", b"")
        self.assertEqual(data, b"abcdefgeof:7")
        self.assertGreaterEqual(self.proxy.counter("cluster.svc.ssl.handshake"), 1)


class BothLegsTlsTunnelTest(TunnelCase, unittest.TestCase):
    DOWNSTREAM_TLS = True
    UPSTREAM_TLS = True


class Http2ToTlsUpstreamTunnelTest(UpgradeProxyCase, unittest.TestCase):
    """A WebSocket over HTTP/2 (RFC 8441 extended CONNECT, h2c) to a TLS origin:
    the stream's DATA is relayed through the upstream's TLS (StreamTunnel)."""

    TURNOUT_BINARY = TunnelCase.TURNOUT_BINARY

    @classmethod
    def backend_tls(cls):
        return server_context()

    @classmethod
    def bootstrap_yaml(cls, backend_port):
        yaml = UpstreamTlsTunnelTest.bootstrap_yaml(backend_port)
        marker = "          stat_prefix: ingress\n"
        return yaml.replace(marker, marker + "          http2_protocol_options: "
                            "{allow_connect: true}\n", 1)

    def test_a_stream_end_reaches_the_origin_as_close_notify_and_its_answer_comes_back(self):
        import h2.settings
        from h2_client import H2Client
        c = H2Client(self.port)
        self.addCleanup(c.close)
        c.wait(lambda: h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL in c.remote_settings)
        sid = c.request("/chat", method="CONNECT", headers=[(":protocol", "websocket")],
                        end=False)
        c.wait(lambda: c.streams[sid]["headers"] is not None)
        self.assertEqual(c.streams[sid]["headers"][":status"], "200")
        big = digits(200000)
        c.send_body(sid, b"abc", end=False)
        c.send_body(sid, big, end=True)
        c.wait(lambda: c.done(sid))
        self.assertTrue(c.streams[sid]["ended"], c.streams[sid]["reset"])
        data = c.streams[sid]["data"].replace(b"echo:", b"")
        self.assertEqual(data, b"abc" + big + b"eof:%d" % (3 + len(big)))
        self.assertGreaterEqual(self.proxy.counter("cluster.svc.ssl.handshake"), 1)


class TlsClientToHttp2UpstreamTunnelTest(UpgradeProxyCase, unittest.TestCase):
    """A WebSocket from an HTTP/1.1 client over TLS to an HTTP/2 cluster (an
    extended CONNECT, docs/connect.md): the client's decrypted bytes after
    its head are the stream's DATA, and the stream's DATA go back encrypted.
    The cluster is a second turnout (allow_connect) in front of the origin."""

    TURNOUT_BINARY = TunnelCase.TURNOUT_BINARY
    edge = None

    @classmethod
    def bootstrap_yaml(cls, backend_port):
        vhosts = ('- name: all\n  domains: ["*"]\n  routes:\n'
                  '  - match: { prefix: "/" }\n    route: { cluster: svc }\n')
        marker = "          stat_prefix: ingress\n"
        edge_yaml = bootstrap(vhosts, [cluster("svc", [backend_port])]).replace(
            marker, marker + "          upgrade_configs: [{upgrade_type: websocket}]\n"
            "          http2_protocol_options: {allow_connect: true}\n", 1)
        cls.edge = TurnoutProcess(cls.TURNOUT_BINARY(), edge_yaml).start()
        h2 = cluster("svc", [cls.edge.port("ingress")]) + (
            "  typed_extension_protocol_options:\n"
            "    envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n"
            "      \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3"
            ".HttpProtocolOptions\n"
            "      explicit_http_config: {http2_protocol_options: {}}\n")
        yaml = bootstrap(vhosts, [h2]).replace(
            marker, marker + "          upgrade_configs: [{upgrade_type: websocket}]\n"
            "          stream_idle_timeout: 30s\n", 1)
        return yaml.replace(certs.CHAIN_MARKER, certs.tls_chain(), 1)

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        if cls.edge is not None:
            cls.edge.stop()

    def test_bytes_go_both_ways_encrypted_to_the_client_and_as_data_upstream(self):
        heads = len(self.backend.heads)
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT_S)
        s = client_context().wrap_socket(raw, server_hostname="svc.test")
        self.addCleanup(s.close)
        s.sendall(UPGRADE + b"early")
        data = recv_until(s, b"\r\n\r\n")
        head, _, rest = data.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 101 "), head)
        expect_echo(self, s, rest, b"early")
        big = digits(300000)
        s.sendall(big)
        expect_echo(self, s, b"", big)
        self.assertEqual(len(self.backend.heads), heads + 1)
        self.assertGreaterEqual(self.proxy.counter("cluster.svc.upstream_cx_http2_total"), 1)
        # The client goes: its end reaches the edge as END_STREAM, the
        # origin's answer ends the stream, and nothing stays open upstream.
        s.close()
        self.assertEqual(
            self.proxy.wait_stat("cluster.svc.upstream_rq_active", lambda v: int(v) == 0), 0)
        self.assertEqual(
            self.edge.wait_stat("http.ingress.downstream_rq_active", lambda v: int(v) == 0), 0)


def set_turnout(binary):
    global TURNOUT
    TURNOUT = binary


if __name__ == "__main__":
    certs.CERTS = tempfile.mkdtemp(prefix="turnout-tunnel-")
    try:
        certs.make_certs()
        rc = run_suite("tunnel_tls_test", set_turnout)
    finally:
        shutil.rmtree(certs.CERTS, ignore_errors=True)
    sys.exit(rc)
