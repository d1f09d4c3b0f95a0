#!/usr/bin/env python3
"""CONNECT through turnout, terminated here or proxied upstream, against the
real binary.

Usage: connect_test.py <turnout-binary> [unittest args]

Envoy's CONNECT support (docs/connect.md): a CONNECT is an upgrade of type
"CONNECT", off unless the connection manager's or the route's
upgrade_configs enable it (403 otherwise); only `connect_matcher` routes
take it, matched by its target against the virtual hosts' domains. A route
whose CONNECT upgrade has `connect_config` terminates it: a TCP connection
to the cluster's host, a 200 once it is up, then the payload both ways;
without it the CONNECT goes upstream as a CONNECT and the upstream's 2xx
opens the tunnel. Both on HTTP/1.1 (authority-form) and HTTP/2 (RFC 9113
§8.5, the stream's DATA is the tunnel).

The far end is support/upgrade_backend.py as a plain TCP echo (b"echo:" +
each chunk; b"eof:<n>" after the client's FIN), an HTTP origin
(fake_backend.py) for curl's --proxytunnel, and, for the proxied mode, a
second turnout that terminates. Real sockets, 127.0.0.1 port 0, deadlines
on every wait.
"""

import os
import socket
import subprocess
import sys
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))

from envoy_yaml import bootstrap, cluster, request  # noqa: E402
from fake_backend import FakeBackend, free_closed_port  # noqa: E402
from h2_client import H2Client  # noqa: E402
from turnout_process import TurnoutProcess, run_suite  # noqa: E402
from upgrade_backend import (  # noqa: E402
    UpgradeEchoBackend, check_connect_tunnel, expect_echo, h1_connect, recv_all)

TURNOUT = None  # set from argv in main()
TIMEOUT_S = 10
TERMINATE = "upgrade_configs: [{upgrade_type: CONNECT, connect_config: {}}]"


def connect_vhost(name, domain, cluster_name, upgrade=TERMINATE):
    """A virtual host for CONNECTs to `domain` (target host:port) only."""
    return ("- name: %s\n  domains: [\"%s\"]\n  routes:\n"
            "  - match: { connect_matcher: {} }\n"
            "    route: { cluster: %s%s }\n") % (
                name, domain, cluster_name, (", " + upgrade) if upgrade else "")


def with_hcm_connect(yaml):
    """The ingress connection manager enables CONNECT (Envoy's HCM upgrade_configs)."""
    marker = "          stat_prefix: ingress\n"
    return yaml.replace(marker, marker + "          upgrade_configs: [{upgrade_type: CONNECT}]\n"
                        "          stream_idle_timeout: 30s\n", 1)


class TerminateTest(unittest.TestCase):
    """One turnout terminating CONNECTs: to a TCP echo (echo.test:443), to an
    HTTP origin (any other target, for curl), to a closed port (dead.test:1);
    closed.test:443's route disables CONNECT."""

    @classmethod
    def setUpClass(cls):
        cls.echo = UpgradeEchoBackend(upgrade=False)
        cls.web = FakeBackend("web").start()
        vhosts = (connect_vhost("echo", "echo.test:443", "echo")
                  + connect_vhost("dead", "dead.test:1", "dead")
                  + connect_vhost("closed", "closed.test:443", "echo",
                                  "upgrade_configs: [{upgrade_type: CONNECT, enabled: false}]")
                  + "- name: direct\n  domains: [\"direct.test:443\"]\n  routes:\n"
                    "  - match: { connect_matcher: {} }\n"
                    "    direct_response: { status: 200, body: { inline_string: hi } }\n"
                  + "- name: web\n  domains: [\"*\"]\n  routes:\n"
                    "  - match: { prefix: \"/\" }\n    route: { cluster: web }\n"
                    "  - match: { connect_matcher: {} }\n    route: { cluster: web, %s }\n"
                    % TERMINATE)
        yaml = with_hcm_connect(bootstrap(vhosts, [
            cluster("echo", [cls.echo.port]), cluster("web", [cls.web.port]),
            cluster("dead", [free_closed_port()])]))
        try:
            cls.proxy = TurnoutProcess(TURNOUT, yaml).start()
        except Exception:
            cls.echo.stop()
            cls.web.stop()
            raise
        cls.port = cls.proxy.port("ingress")

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        cls.echo.stop()
        cls.web.stop()

    def test_h1_connect_is_answered_200_and_the_bytes_after_it_are_the_tunnel(self):
        before = self.proxy.counter("cluster.echo.upstream_rq_200") or 0
        check_connect_tunnel(self, self.port, b"echo.test:443", b"0123456789" * 1000)
        self.assertEqual(self.proxy.wait_counter("cluster.echo.upstream_rq_200", before + 1),
                         before + 1)

    def test_curl_tunnels_http_through_it(self):
        target = "http://web.test:%d/through/the/tunnel" % self.web.port
        out = subprocess.run(
            ["curl", "-s", "-S", "--max-time", str(TIMEOUT_S), "-p",
             "-x", "http://127.0.0.1:%d" % self.port, "-o", "/dev/null",
             "-w", "%{http_connect} %{http_code}", target],
            capture_output=True, text=True, timeout=TIMEOUT_S + 5)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout, "200 200")
        seen = [r for r in self.web.requests if r["path"] == "/through/the/tunnel"]
        self.assertEqual(len(seen), 1)
        # The request inside the tunnel is the client's bytes, untouched:
        # turnout added nothing to it (no x-forwarded-for, no x-request-id).
        names = [k for k, _ in seen[0]["headers"]]
        self.assertNotIn("x-forwarded-for", names)
        self.assertNotIn("x-request-id", names)

    def test_h2_connect_is_answered_200_and_its_data_is_the_tunnel(self):
        c = H2Client(self.port)
        self.addCleanup(c.close)
        sid = c.connect("echo.test:443")
        c.wait(lambda: c.streams[sid]["headers"] is not None)
        self.assertEqual(c.streams[sid]["headers"][":status"], "200")
        self.assertFalse(c.streams[sid]["ended"])
        c.send_body(sid, b"over h2", end=False)
        c.wait(lambda: c.streams[sid]["data"] == b"echo:over h2")
        # END_STREAM is the FIN towards the far end; its FIN ends the stream.
        c.send_body(sid, b"!", end=True)
        c.wait(lambda: c.streams[sid]["ended"])
        self.assertEqual(c.streams[sid]["data"], b"echo:over h2echo:!eof:8")
        self.assertIsNone(c.streams[sid]["reset"])
        # The connection goes on serving other streams.
        get = c.request("/after")
        c.wait(lambda: c.done(get))
        self.assertEqual(c.streams[get]["headers"][":status"], "200")

    def test_a_host_that_refuses_the_connection_is_503(self):
        s, head, rest = h1_connect(self.port, b"dead.test:1")
        self.addCleanup(s.close)
        self.assertTrue(head.startswith(b"HTTP/1.1 503 "), head)
        self.assertIn(b"upstream connect error", rest + recv_all(s))  # then closed

    def test_a_route_can_disable_connect(self):
        s, head, _ = h1_connect(self.port, b"closed.test:443")
        self.addCleanup(s.close)
        self.assertTrue(head.startswith(b"HTTP/1.1 403 "), head)
        recv_all(s)  # closed: the bytes after a refused CONNECT are not HTTP

    def test_a_direct_response_to_a_connect_ends_the_connection(self):
        # No tunnel opened: the bytes behind the CONNECT are not HTTP, so the
        # connection closes after the answer (it never hangs as a tunnel to
        # nowhere).
        s, head, rest = h1_connect(self.port, b"direct.test:443", early=b"GET / HTTP/1.1\r\n\r\n")
        self.addCleanup(s.close)
        self.assertTrue(head.startswith(b"HTTP/1.1 200 "), head)
        self.assertNotIn(b"HTTP/1.1", rest + recv_all(s))

    def test_connect_matcher_takes_no_other_method(self):
        # The echo virtual host has only its connect_matcher route: a GET
        # there finds no route; a GET elsewhere is routed as usual.
        status, _, _ = request(self.port, "GET", "/", host="echo.test:443")
        self.assertEqual(status, 404)
        status, _, _ = request(self.port, "GET", "/plain", host="other")
        self.assertEqual(status, 200)


class ProxiedTest(unittest.TestCase):
    """A front turnout whose connection manager leaves CONNECT off and whose
    echo.test:443 route turns it on without connect_config: the CONNECT goes
    to an edge turnout, which terminates it at the TCP echo (or refuses
    refused.test:443 with 403)."""

    @classmethod
    def setUpClass(cls):
        cls.echo = UpgradeEchoBackend(upgrade=False)
        cls.edge = cls.front = None
        try:
            edge_yaml = with_hcm_connect(bootstrap(
                connect_vhost("echo", "echo.test:443", "echo")
                + connect_vhost("refused", "refused.test:443", "echo",
                                "upgrade_configs: [{upgrade_type: CONNECT, enabled: false}]"),
                [cluster("echo", [cls.echo.port])]))
            cls.edge = TurnoutProcess(TURNOUT, edge_yaml).start()
            edge_port = cls.edge.port("ingress")
            proxied = "upgrade_configs: [{upgrade_type: CONNECT}]"
            front_yaml = bootstrap(
                connect_vhost("echo", "echo.test:443", "edge", proxied)
                + connect_vhost("refused", "refused.test:443", "edge", proxied)
                + connect_vhost("disabled", "off.test:443", "edge", ""),
                [cluster("edge", [edge_port])])
            cls.front = TurnoutProcess(TURNOUT, front_yaml).start()
        except Exception:
            cls.tearDownClass()
            raise
        cls.port = cls.front.port("ingress")

    @classmethod
    def tearDownClass(cls):
        for p in (cls.front, cls.edge):
            if p is not None:
                p.stop()
        cls.echo.stop()

    def test_h1_connect_is_forwarded_as_a_connect_and_its_2xx_opens_the_tunnel(self):
        s, head, rest = h1_connect(self.port, b"echo.test:443", early=b"early")
        self.addCleanup(s.close)
        self.assertTrue(head.startswith(b"HTTP/1.1 200 "), head)
        expect_echo(self, s, rest, b"early")
        s.sendall(b"x" * 100000)
        expect_echo(self, s, b"", b"x" * 100000)
        s.shutdown(socket.SHUT_WR)
        self.assertEqual(recv_all(s), b"eof:100005")
        # The edge saw a CONNECT, and terminated it.
        self.assertGreaterEqual(self.edge.wait_counter("cluster.echo.upstream_rq_200", 1), 1)

    def test_h2_connect_is_forwarded_to_an_http1_upstream(self):
        c = H2Client(self.port)
        self.addCleanup(c.close)
        sid = c.connect("echo.test:443")
        c.wait(lambda: c.streams[sid]["headers"] is not None)
        self.assertEqual(c.streams[sid]["headers"][":status"], "200")
        c.send_body(sid, b"hop", end=True)
        c.wait(lambda: c.streams[sid]["ended"])
        self.assertEqual(c.streams[sid]["data"], b"echo:hopeof:3")

    def test_the_upstreams_refusal_comes_back(self):
        s, head, _ = h1_connect(self.port, b"refused.test:443")
        self.addCleanup(s.close)
        self.assertTrue(head.startswith(b"HTTP/1.1 403 "), head)

    def test_connect_off_in_the_connection_manager_and_the_route_is_403(self):
        before = self.edge.counter("http.ingress.downstream_rq_total") or 0
        s, head, _ = h1_connect(self.port, b"off.test:443")
        self.addCleanup(s.close)
        self.assertTrue(head.startswith(b"HTTP/1.1 403 "), head)
        # Over HTTP/2 too, and nothing reached the edge.
        c = H2Client(self.port)
        self.addCleanup(c.close)
        sid = c.connect("off.test:443")
        c.wait(lambda: c.done(sid))
        self.assertEqual(c.streams[sid]["headers"][":status"], "403")
        time.sleep(0.2)
        self.assertEqual(self.edge.counter("http.ingress.downstream_rq_total") or 0, before)


def main():
    def set_binary(b):
        global TURNOUT
        TURNOUT = b
    return run_suite("connect_test", set_binary)


if __name__ == "__main__":
    sys.exit(main())
