#!/usr/bin/env python3
"""WebSockets and CONNECT through an HTTP/2 upstream, against the real binary.

Usage: tunnel_http2_upstream_test.py <turnout-binary> [unittest args]

Envoy's "WebSocket over HTTP/2 hops" (upgrades.rst; docs/connect.md): a
front turnout whose cluster speaks HTTP/2 sends an HTTP/1.1 upgrade as an
extended CONNECT (RFC 8441: :method CONNECT, :protocol websocket, the
payload as the stream's DATA), and a CONNECT as a CONNECT stream (RFC 9113
§8.5); the upstream's 2xx opens the tunnel, which the client sees as the 101
(or 200) it asked for. Many tunnels share one upstream connection.

The upstream is a second turnout (the "edge": an HTTP/2 listener with
allow_connect, the Envoy-compatible peer), which turns the extended CONNECT
back into an HTTP/1.1 upgrade to support/upgrade_backend.py (101, then
b"echo:" + each chunk, b"eof:<n>" after the client's FIN), and terminates
CONNECTs to the same backend as a plain TCP echo. Clients: raw HTTP/1.1
sockets and python3-h2. Real sockets, 127.0.0.1 port 0, deadlines on
every wait.
"""

import os
import socket
import sys
import threading
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))

import h2.settings  # noqa: E402

from envoy_yaml import bootstrap, cluster  # noqa: E402
from h2_client import H2Client  # noqa: E402
from turnout_process import TurnoutProcess, run_suite  # noqa: E402
from upgrade_backend import (  # noqa: E402
    UpgradeEchoBackend, check_connect_tunnel, expect_echo, h1_connect, recv_all, recv_until)

TURNOUT = None  # set from argv in main()
TIMEOUT_S = 10
WS_KEY = b"dGhlIHNhbXBsZSBub25jZQ=="


def h2_cluster(name, port):
    """A STATIC cluster that speaks HTTP/2 (h2c) to 127.0.0.1:port."""
    return ("- name: %s\n"
            "  connect_timeout: 1s\n"
            "  type: STATIC\n"
            "  typed_extension_protocol_options:\n"
            "    envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n"
            "      \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3"
            ".HttpProtocolOptions\n"
            "      explicit_http_config:\n"
            "        http2_protocol_options: {}\n"
            "  load_assignment:\n"
            "    cluster_name: %s\n"
            "    endpoints:\n"
            "    - lb_endpoints:\n"
            "      - endpoint: { address: { socket_address: { address: 127.0.0.1, "
            "port_value: %d } } }\n") % (name, name, port)


def with_hcm(yaml, extra):
    marker = "          stat_prefix: ingress\n"
    assert marker in yaml
    return yaml.replace(marker, marker + extra, 1)


def hcm_fields(allow_connect):
    return (("          http2_protocol_options: { allow_connect: true }\n" if allow_connect
             else "")
            + "          stream_idle_timeout: 30s\n"
            "          upgrade_configs: [{upgrade_type: websocket}, {upgrade_type: CONNECT}]\n")


def edge_yaml(backend_port, echo_port, allow_connect=True):
    """WebSockets on any host to the upgrade backend; CONNECTs to
    echo.test:443 (or plain.test:443) terminated at the TCP echo; refused.test:443's route
    turns CONNECT off, /nows turns WebSockets off."""
    vhosts = ("- name: echo\n  domains: [\"echo.test:443\", \"plain.test:443\"]\n  routes:\n"
              "  - match: { connect_matcher: {} }\n"
              "    route: { cluster: echo, upgrade_configs: "
              "[{upgrade_type: CONNECT, connect_config: {}}] }\n"
              "- name: refused\n  domains: [\"refused.test:443\"]\n  routes:\n"
              "  - match: { connect_matcher: {} }\n"
              "    route: { cluster: echo, upgrade_configs: "
              "[{upgrade_type: CONNECT, enabled: false}] }\n"
              "- name: ws\n  domains: [\"*\"]\n  routes:\n"
              "  - match: { prefix: \"/nows\" }\n"
              "    route: { cluster: ws, upgrade_configs: "
              "[{upgrade_type: websocket, enabled: false}] }\n"
              "  - match: { prefix: \"/\" }\n    route: { cluster: ws }\n")
    return with_hcm(bootstrap(vhosts, [cluster("ws", [backend_port]),
                                       cluster("echo", [echo_port])]),
                    hcm_fields(allow_connect))


def front_yaml(edge_port, plain_edge_port):
    """Everything to the edge over HTTP/2; /plain/ and plain.test:443 to an
    edge without allow_connect."""
    vhosts = ("- name: plain\n  domains: [\"plain.test:443\"]\n  routes:\n"
              "  - match: { connect_matcher: {} }\n    route: { cluster: plain }\n"
              "- name: all\n  domains: [\"*\"]\n  routes:\n"
              "  - match: { prefix: \"/plain/\" }\n    route: { cluster: plain }\n"
              "  - match: { prefix: \"/\" }\n    route: { cluster: edge }\n"
              "  - match: { connect_matcher: {} }\n    route: { cluster: edge }\n")
    return with_hcm(bootstrap(vhosts, [h2_cluster("edge", edge_port),
                                       h2_cluster("plain", plain_edge_port)]),
                    hcm_fields(allow_connect=True))


def ws_upgrade(port, path=b"/chat?room=1", early=b""):
    """An HTTP/1.1 WebSocket upgrade; returns (socket, head, bytes after it)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S)
    s.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: svc\r\nConnection: Upgrade\r\n"
              b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
              b"Sec-WebSocket-Key: " + WS_KEY + b"\r\n\r\n" + early)
    data = recv_until(s, b"\r\n\r\n")
    head, _, rest = data.partition(b"\r\n\r\n")
    return s, head, rest


class Http2UpstreamTunnelTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ws_backend = UpgradeEchoBackend()
        cls.tcp_echo = UpgradeEchoBackend(upgrade=False)
        cls.edge = cls.plain_edge = cls.front = None
        try:
            cls.edge = TurnoutProcess(TURNOUT, edge_yaml(cls.ws_backend.port,
                                                         cls.tcp_echo.port)).start()
            cls.plain_edge = TurnoutProcess(TURNOUT, edge_yaml(
                cls.ws_backend.port, cls.tcp_echo.port, allow_connect=False)).start()
            cls.front = TurnoutProcess(TURNOUT, front_yaml(
                cls.edge.port("ingress"), cls.plain_edge.port("ingress"))).start()
        except Exception:
            cls.tearDownClass()
            raise
        cls.port = cls.front.port("ingress")

    @classmethod
    def tearDownClass(cls):
        for p in (cls.front, cls.edge, cls.plain_edge):
            if p is not None:
                p.stop()
        cls.ws_backend.stop()
        cls.tcp_echo.stop()

    def test_an_http1_websocket_crosses_the_http2_hop_intact(self):
        heads = len(self.ws_backend.heads)
        s, head, rest = ws_upgrade(self.port)
        self.addCleanup(s.close)
        # The client sees the switch it asked for.
        lines = head.decode().lower().split("\r\n")
        self.assertEqual(lines[0], "http/1.1 101 switching protocols", head)
        self.assertIn("upgrade: websocket", lines)
        self.assertIn("connection: upgrade", lines)
        self.assertFalse([ln for ln in lines if ln.startswith(("content-length",
                                                              "transfer-encoding"))], head)
        # The origin behind the edge got an HTTP/1.1 upgrade again, with the
        # client's WebSocket fields.
        origin = self.ws_backend.heads[heads].decode()
        self.assertTrue(origin.startswith("GET /chat?room=1 HTTP/1.1\r\n"), origin)
        fields = origin.lower()
        self.assertIn("\r\nupgrade: websocket", fields)
        self.assertIn("\r\nsec-websocket-key: " + WS_KEY.decode().lower(), fields)
        self.assertIn("\r\nsec-websocket-version: 13", fields)
        # Messages both ways, in order, then more than the HTTP/2 windows.
        sent = 0
        for i in range(3):
            msg = b"frame-%d" % i
            s.sendall(msg)
            expect_echo(self, s, rest, msg)
            rest = b""
            sent += len(msg)
        big = os.urandom(400000)
        s.sendall(big)
        expect_echo(self, s, b"", big)
        sent += len(big)
        # The client's FIN is the stream's END_STREAM: the origin counts every
        # byte, answers and closes; the close comes back as the end.
        s.shutdown(socket.SHUT_WR)
        self.assertEqual(recv_all(s), b"eof:%d" % sent)
        # It went over HTTP/2 on both turnouts.
        self.assertGreaterEqual(self.front.counter("cluster.edge.upstream_cx_http2_total"), 1)
        self.assertGreaterEqual(self.edge.counter("http.ingress.downstream_cx_http2_total"), 1)
        self.assertGreaterEqual(self.front.wait_counter("cluster.edge.upstream_rq_101", 1), 1)

    def test_bytes_sent_before_the_switch_wait_for_it(self):
        s, head, rest = ws_upgrade(self.port, early=b"too-early")
        self.addCleanup(s.close)
        self.assertTrue(head.startswith(b"HTTP/1.1 101 "), head)
        expect_echo(self, s, rest, b"too-early")
        s.shutdown(socket.SHUT_WR)
        self.assertEqual(recv_all(s), b"eof:9")

    def test_websockets_share_one_upstream_connection(self):
        before = self.front.counter("cluster.edge.upstream_cx_http2_total") or 0
        opened = []
        for i in range(4):
            s, head, rest = ws_upgrade(self.port, path=b"/multi/%d" % i)
            self.addCleanup(s.close)
            self.assertTrue(head.startswith(b"HTTP/1.1 101 "), head)
            self.assertEqual(rest, b"")
            opened.append(s)
        errors = []

        def talk(i, s):
            try:
                for j in range(20):
                    msg = b"%d:%d;" % (i, j)
                    s.sendall(msg)
                    expect_echo(self, s, b"", msg)
                s.shutdown(socket.SHUT_WR)
                total = sum(len(b"%d:%d;" % (i, j)) for j in range(20))
                self.assertEqual(recv_all(s), b"eof:%d" % total)
            except Exception as e:  # reported below, with the others
                errors.append((i, e))
        threads = [threading.Thread(target=talk, args=(i, s)) for i, s in enumerate(opened)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=TIMEOUT_S * 2)
        self.assertEqual(errors, [])
        # Four tunnels at once, still at most the one connection opened for
        # them (a test run earlier may have opened the first).
        self.assertLessEqual(self.front.counter("cluster.edge.upstream_cx_http2_total"),
                             max(before, 1))

    def test_an_http2_websocket_goes_upstream_as_an_extended_connect(self):
        c = H2Client(self.port)
        self.addCleanup(c.close)
        c.wait(lambda: h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL in c.remote_settings)
        heads = len(self.ws_backend.heads)
        sid = c.request("/h2ws", method="CONNECT",
                        headers=[(":protocol", "websocket"), ("sec-websocket-version", "13")],
                        end=False)
        c.wait(lambda: c.streams[sid]["headers"] is not None or c.done(sid))
        self.assertEqual(c.streams[sid]["headers"].get(":status"), "200", c.streams[sid])
        self.assertNotIn("upgrade", c.streams[sid]["headers"])
        self.assertTrue(self.ws_backend.heads[heads].startswith(b"GET /h2ws HTTP/1.1\r\n"))
        c.send_body(sid, b"ping", end=False)
        c.wait(lambda: c.streams[sid]["data"] == b"echo:ping")
        c.send_body(sid, b"", end=True)
        c.wait(lambda: c.streams[sid]["ended"])
        self.assertEqual(c.streams[sid]["data"], b"echo:pingeof:4")

    def test_an_http1_connect_crosses_as_a_connect_stream(self):
        before = self.edge.counter("cluster.echo.upstream_rq_200") or 0
        check_connect_tunnel(self, self.port, b"echo.test:443", b"y" * 200000)
        self.assertEqual(self.edge.wait_counter("cluster.echo.upstream_rq_200", before + 1),
                         before + 1)

    def test_an_http2_connect_crosses_as_a_connect_stream(self):
        c = H2Client(self.port)
        self.addCleanup(c.close)
        sid = c.connect("echo.test:443")
        c.wait(lambda: c.streams[sid]["headers"] is not None or c.done(sid))
        self.assertEqual(c.streams[sid]["headers"][":status"], "200", c.streams[sid])
        c.send_body(sid, b"hop", end=True)
        c.wait(lambda: c.streams[sid]["ended"])
        self.assertEqual(c.streams[sid]["data"], b"echo:hopeof:3")

    def test_the_upstreams_refusal_comes_back_and_nothing_is_relayed(self):
        heads = len(self.ws_backend.heads)
        s, head, _ = ws_upgrade(self.port, path=b"/nows", early=b"never")
        self.addCleanup(s.close)
        self.assertTrue(head.startswith(b"HTTP/1.1 403 "), head)
        self.assertIn(b"connection: close", head.lower())
        self.assertEqual(len(self.ws_backend.heads), heads)
        s2, head2, _ = h1_connect(self.port, b"refused.test:443", early=b"never")
        self.addCleanup(s2.close)
        self.assertTrue(head2.startswith(b"HTTP/1.1 403 "), head2)
        c = H2Client(self.port)
        self.addCleanup(c.close)
        sid = c.connect("refused.test:443")
        c.wait(lambda: c.done(sid))
        self.assertEqual(c.streams[sid]["headers"][":status"], "403")

    def test_an_upstream_without_extended_connect_fails_the_upgrade_cleanly(self):
        # RFC 8441 needs SETTINGS_ENABLE_CONNECT_PROTOCOL from the upstream:
        # this edge does not send it, so its HTTP/2 stack refuses :protocol.
        # The stream is reset before any response: Envoy's 503 for a reset
        # before headers, with the reason.
        heads = len(self.ws_backend.heads)
        s, head, rest = ws_upgrade(self.port, path=b"/plain/ws")
        self.addCleanup(s.close)
        self.assertTrue(head.startswith(b"HTTP/1.1 503 "), head)
        self.assertIn(b"connection: close", head.lower())
        body = rest + recv_all(s)
        self.assertIn(b"reset", body)
        self.assertEqual(len(self.ws_backend.heads), heads)
        # A plain CONNECT needs no setting (RFC 9113 §8.5).
        s2, head2, rest = h1_connect(self.port, b"plain.test:443")
        self.addCleanup(s2.close)
        self.assertTrue(head2.startswith(b"HTTP/1.1 200 "), head2)
        s2.sendall(b"ok")
        expect_echo(self, s2, rest, b"ok")
        # And the front keeps serving.
        s3, head3, _ = ws_upgrade(self.port)
        self.addCleanup(s3.close)
        self.assertTrue(head3.startswith(b"HTTP/1.1 101 "), head3)

    def test_a_client_that_goes_away_resets_the_upstream_stream(self):
        before = self.edge.counter("http.ingress.downstream_rq_rx_reset") or 0
        s, head, rest = ws_upgrade(self.port, path=b"/gone")
        self.assertTrue(head.startswith(b"HTTP/1.1 101 "), head)
        s.sendall(b"bye")
        expect_echo(self, s, rest, b"bye")
        # An abortive close (RST), not a FIN: the tunnel is cut, not ended.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()
        self.assertGreater(self.edge.wait_counter("http.ingress.downstream_rq_rx_reset",
                                                  before + 1), before)
        # The front's stream is gone.
        self.assertEqual(
            self.front.wait_stat("cluster.edge.upstream_rq_active", lambda v: int(v) == 0), 0)


def main():
    def set_binary(b):
        global TURNOUT
        TURNOUT = b
    return run_suite("tunnel_http2_upstream_test", set_binary)


if __name__ == "__main__":
    sys.exit(main())
