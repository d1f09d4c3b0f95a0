#!/usr/bin/env python3
"""The TCP proxy network filter and ORIGINAL_DST clusters against the real
turnout binary.

Usage: tcp_proxy_test.py <turnout-binary> [unittest args]

One turnout serves a listener per scenario, each a filter chain whose only
network filter is envoy.filters.network.tcp_proxy (or an HTTP connection
manager routing to an ORIGINAL_DST cluster). The upstreams are plain Python
TCP servers on 127.0.0.1:0 (echo, a hashing sink, a counting source, a
half-closer, a resetter) and FakeBackend for HTTP. Clients are raw sockets
(and ssl for the TLS chain). Everything binds 127.0.0.1 port 0; every wait
has a deadline.
"""

import hashlib
import http.client
import os
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))

from fake_backend import FakeBackend, free_closed_port  # noqa: E402
from turnout_process import TurnoutProcess, run_suite  # noqa: E402

TURNOUT = None
TIMEOUT_S = 10.0
TCP_TYPE = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
HCM_TYPE = ("type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
            "HttpConnectionManager")
MIB = 1024 * 1024


def poll(deadline_s, fn):
    end = time.monotonic() + deadline_s
    while True:
        value = fn()
        if value or time.monotonic() >= end:
            return value
        time.sleep(0.02)


def pattern(n):
    """n deterministic bytes (a SHA-256 counter stream), and their SHA-256."""
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(struct.pack("<Q", i)).digest() * 64
        i += 1
    data = bytes(out[:n])
    return data, hashlib.sha256(data).hexdigest()


def recv_all(sock, deadline_s=TIMEOUT_S):
    """Reads until EOF: the bytes, and how it ended ('eof' or 'reset')."""
    sock.settimeout(deadline_s)
    chunks = []
    try:
        while True:
            b = sock.recv(65536)
            if not b:
                return b"".join(chunks), "eof"
            chunks.append(b)
    except ConnectionResetError:
        return b"".join(chunks), "reset"


def recv_line(sock, deadline_s=TIMEOUT_S):
    sock.settimeout(deadline_s)
    out = b""
    while not out.endswith(b"\n"):
        b = sock.recv(1)
        if not b:
            break
        out += b
    return out


def connect(port, rcvbuf=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(TIMEOUT_S)
    s.connect(("127.0.0.1", port))
    return s


def kernel_buffering():
    """The most bytes the kernel may hold between the source and a client
    that reads nothing, besides what turnout holds: turnout's upstream socket
    receive buffer and its downstream send buffer autotune up to tcp_rmem[2]
    and tcp_wmem[2] (on a CI machine 40 MB sat in buffers while turnout held
    248 KiB; this VM's tcp_rmem max is 32 MiB). The source's send buffer
    and the client's receive buffer are pinned small by the test."""
    def last(path):
        with open(path) as f:
            return int(f.read().split()[-1])
    return last("/proc/sys/net/ipv4/tcp_rmem") + last("/proc/sys/net/ipv4/tcp_wmem")


# What the test lets the source's and the client's pinned buffers and
# turnout's own relay buffer hold on top of the kernel's autotuned buffers.
SLOW_READER_SLACK = 8 * MIB


class TcpServer:
    """A threaded TCP server on 127.0.0.1:0; `mode` says what each connection does:

    echo          echoes until EOF, then shuts its side down
    greet:<name>  sends "<name>\\n", then echoes
    sink          reads to EOF, then answers "<bytes> <sha256>\\n" and closes
    source        reads "<n>\\n", sends n pattern() bytes (counting them in `sent`), shuts down
    half          sends "bye\\n", shuts down its side, reads to EOF into `received`
    reset         reads a line, then resets the connection (SO_LINGER 0)
    observe       reads to EOF or a reset and records which in `endings`
    """

    def __init__(self, mode):
        self.mode = mode
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.accepted = 0
        self.sent = 0
        self.received = []
        self.endings = []
        self.source_data = None
        self.closed = False

    def start(self):
        threading.Thread(target=self._accept_loop, daemon=True).start()
        return self

    def stop(self):
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass

    def _accept_loop(self):
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.accepted += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        conn.settimeout(30)
        try:
            getattr(self, "_" + self.mode.split(":")[0])(conn)
        except OSError:
            pass
        finally:
            conn.close()

    def _echo(self, conn):
        while True:
            b = conn.recv(65536)
            if not b:
                conn.shutdown(socket.SHUT_WR)
                return
            conn.sendall(b)

    def _greet(self, conn):
        conn.sendall(self.mode.split(":", 1)[1].encode() + b"\n")
        self._echo(conn)

    def _sink(self, conn):
        h = hashlib.sha256()
        n = 0
        while True:
            b = conn.recv(65536)
            if not b:
                break
            h.update(b)
            n += len(b)
        conn.sendall(b"%d %s\n" % (n, h.hexdigest().encode()))
        conn.shutdown(socket.SHUT_WR)

    def _source(self, conn):
        # A small send buffer: what the source gets ahead of turnout is
        # then turnout's (and its sockets') doing, not the source's.
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        n = int(recv_line(conn, 30))
        data = self.source_data
        view = memoryview(data)[:n]
        for i in range(0, n, 65536):
            conn.sendall(view[i:i + 65536])
            with self.lock:
                self.sent += len(view[i:i + 65536])
        conn.shutdown(socket.SHUT_WR)
        while conn.recv(65536):
            pass

    def _half(self, conn):
        conn.sendall(b"bye\n")
        conn.shutdown(socket.SHUT_WR)
        data, _ = recv_all(conn, 30)
        with self.lock:
            self.received.append(data)

    def _reset(self, conn):
        recv_line(conn, 30)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    def _observe(self, conn):
        _, how = recv_all(conn, 30)
        with self.lock:
            self.endings.append(how)


class BlackholeServer:
    """A listening socket whose accept queue is full: a connect to it gets no
    SYN-ACK (Linux drops the SYN), so it times out."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.fillers = []
        for _ in range(3):
            c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            c.setblocking(False)
            try:
                c.connect(("127.0.0.1", self.port))
            except BlockingIOError:
                pass
            self.fillers.append(c)
        time.sleep(0.1)  # let the handshakes that can complete complete

    def stop(self):
        for c in self.fillers:
            c.close()
        self.sock.close()


def static_cluster(name, ports, extra="", host="127.0.0.1"):
    endpoints = "".join(
        "      - endpoint: {address: {socket_address: {address: \"%s\", port_value: %d}}}\n" % (host, p)
        for p in ports)
    return ("- name: %s\n"
            "  connect_timeout: 1s\n"
            "  type: STATIC\n%s"
            "  load_assignment:\n"
            "    cluster_name: %s\n"
            "    endpoints:\n"
            "    - lb_endpoints:\n%s") % (name, extra, name, endpoints)


def original_dst_cluster(name, extra=""):
    return ("- name: %s\n"
            "  type: ORIGINAL_DST\n"
            "  lb_policy: CLUSTER_PROVIDED\n"
            "  connect_timeout: 1s\n%s") % (name, extra)


def tcp_listener(name, tcp_fields, listener_extra="", chain_extra=""):
    return ("- name: %s\n"
            "  address: {socket_address: {address: 127.0.0.1, port_value: 0}}\n%s"
            "  filter_chains:\n"
            "  - filters:\n"
            "    - name: envoy.filters.network.tcp_proxy\n"
            "      typed_config:\n"
            "        \"@type\": %s\n%s%s") % (
                name, listener_extra, TCP_TYPE, textwrap.indent(tcp_fields, " " * 8), chain_extra)


def http_listener(name, cluster):
    return ("- name: %s\n"
            "  address: {socket_address: {address: 127.0.0.1, port_value: 0}}\n"
            "  filter_chains:\n"
            "  - filters:\n"
            "    - name: envoy.filters.network.http_connection_manager\n"
            "      typed_config:\n"
            "        \"@type\": %s\n"
            "        stat_prefix: %s\n"
            "        route_config:\n"
            "          virtual_hosts:\n"
            "          - {name: all, domains: [\"*\"], routes: [{match: {prefix: /}, route: {cluster: %s}}]}\n"
            "        http_filters:\n"
            "        - name: envoy.filters.http.router\n"
            "          typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}\n"
            ) % (name, HCM_TYPE, name, cluster)


def bootstrap(listeners, clusters):
    return ("admin:\n"
            "  address: {socket_address: {address: 127.0.0.1, port_value: 0}}\n"
            "static_resources:\n"
            "  listeners:\n%s"
            "  clusters:\n%s") % (textwrap.indent("".join(listeners), "  "),
                                  textwrap.indent("".join(clusters), "  "))


def make_cert(directory):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    "tls.key", "-out", "tls.pem", "-days", "2", "-subj", "/CN=tcp.test",
                    "-addext", "subjectAltName=DNS:tcp.test"],
                   check=True, capture_output=True, cwd=directory)


class TcpProxyTest(unittest.TestCase):
    proxy = None
    servers = {}

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="turnout-tcp-")
        make_cert(cls.tmp)
        cls.access_log = os.path.join(cls.tmp, "tcp_access.log")
        s = cls.servers = {
            "echo": TcpServer("echo").start(),
            "sink": TcpServer("sink").start(),
            "source": TcpServer("source").start(),
            "half": TcpServer("half").start(),
            "reset": TcpServer("reset").start(),
            "observe": TcpServer("observe").start(),
            "a": TcpServer("greet:a").start(),
            "b": TcpServer("greet:b").start(),
        }
        # Enough that the kernel's buffers cannot take it all: the source
        # must stall on turnout stopping reading.
        cls.source_data, cls.source_sha = pattern(
            max(64 * MIB, 2 * (kernel_buffering() + SLOW_READER_SLACK)))
        s["source"].source_data = cls.source_data
        cls.blackhole = BlackholeServer()
        cls.http_a = FakeBackend("http-a").start()
        cls.http_b = FakeBackend("http-b").start()
        refused = free_closed_port()
        tls_chain = textwrap.indent(textwrap.dedent("""\
            transport_socket:
              name: envoy.transport_sockets.tls
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
                common_tls_context:
                  tls_certificates:
                  - certificate_chain: {filename: %s}
                    private_key: {filename: %s}
            """ % (os.path.join(cls.tmp, "tls.pem"), os.path.join(cls.tmp, "tls.key"))), "    ")
        access_log = textwrap.dedent("""\
            access_log:
            - name: envoy.access_loggers.file
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
                path: %s
                log_format:
                  text_format_source:
                    inline_string: "%%UPSTREAM_CLUSTER%% %%UPSTREAM_HOST%% %%BYTES_RECEIVED%% %%BYTES_SENT%% %%RESPONSE_FLAGS%% %%PROTOCOL%%\\n"
            """ % cls.access_log)
        listeners = [
            tcp_listener("echo", "stat_prefix: echo\ncluster: echo\n" + access_log),
            tcp_listener("sink", "stat_prefix: sink\ncluster: sink\n"),
            tcp_listener("source", "stat_prefix: source\ncluster: source\n"),
            tcp_listener("half", "stat_prefix: half\ncluster: half\n"),
            tcp_listener("reset", "stat_prefix: reset\ncluster: reset\n"),
            tcp_listener("observe", "stat_prefix: observe\ncluster: observe\n"),
            tcp_listener("refused", "stat_prefix: refused\ncluster: refused\n" + access_log),
            tcp_listener("retry", "stat_prefix: retry\ncluster: mixed\nmax_connect_attempts: 2\n"),
            tcp_listener("timeout", "stat_prefix: timeout\ncluster: blackhole\n"),
            tcp_listener("idle", "stat_prefix: idle\ncluster: echo\nidle_timeout: 0.5s\n"),
            tcp_listener("weighted", "stat_prefix: weighted\nweighted_clusters:\n"
                                     "  clusters: [{name: a, weight: 1}, {name: b, weight: 9}]\n"),
            tcp_listener("overflow", "stat_prefix: overflow\ncluster: echo_one\n"),
            tcp_listener("tls", "stat_prefix: tls\ncluster: echo\n", chain_extra=tls_chain),
            tcp_listener("odst_loop", "stat_prefix: odst_loop\ncluster: passthrough\n"),
            tcp_listener("odst_port", "stat_prefix: odst_port\ncluster: passthrough_to_echo\n"),
            http_listener("http", "passthrough_http"),
            http_listener("http_override", "passthrough_override"),
        ]
        clusters = [
            static_cluster("echo", [s["echo"].port]),
            static_cluster("sink", [s["sink"].port]),
            static_cluster("source", [s["source"].port]),
            static_cluster("half", [s["half"].port]),
            static_cluster("reset", [s["reset"].port]),
            static_cluster("observe", [s["observe"].port]),
            static_cluster("refused", [refused]),
            static_cluster("mixed", [refused, s["echo"].port]),
            static_cluster("blackhole", [cls.blackhole.port]).replace("connect_timeout: 1s",
                                                                      "connect_timeout: 0.25s"),
            static_cluster("a", [s["a"].port]),
            static_cluster("b", [s["b"].port]),
            static_cluster("echo_one", [s["echo"].port],
                           "  circuit_breakers: {thresholds: [{max_connections: 1}]}\n"),
            original_dst_cluster("passthrough"),
            original_dst_cluster("passthrough_to_echo",
                                 "  original_dst_lb_config: {upstream_port_override: %d}\n"
                                 % s["echo"].port),
            original_dst_cluster("passthrough_http",
                                 "  original_dst_lb_config: {use_http_header: true}\n"),
            original_dst_cluster("passthrough_override",
                                 "  original_dst_lb_config: {use_http_header: true, "
                                 "upstream_port_override: %d}\n" % cls.http_b.port),
        ]
        cls.proxy = TurnoutProcess(TURNOUT, bootstrap(listeners, clusters)).start()

    @classmethod
    def tearDownClass(cls):
        if cls.proxy is not None:
            cls.proxy.stop()
        for srv in cls.servers.values():
            srv.stop()
        cls.blackhole.stop()
        cls.http_a.stop()
        cls.http_b.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def port(self, name):
        return self.proxy.port(name)

    def counter(self, name):
        return self.proxy.counter(name) or 0

    def wait_counter(self, name, at_least):
        got = self.proxy.wait_counter(name, at_least, deadline_s=TIMEOUT_S)
        self.assertIsNotNone(got, name)
        self.assertGreaterEqual(got, at_least, name)

    # -- relaying ------------------------------------------------------------

    def test_bytes_go_both_ways_and_are_counted(self):
        before_tx = self.counter("tcp.echo.downstream_cx_tx_bytes_total")
        before_up_tx = self.counter("cluster.echo.upstream_cx_tx_bytes_total")
        with connect(self.port("echo")) as c:
            for msg in (b"hello\n", b"x" * 100000):
                c.sendall(msg)
                got = b""
                while len(got) < len(msg):
                    b = c.recv(65536)
                    self.assertTrue(b, "EOF before the echo")
                    got += b
                self.assertEqual(got, msg)
            c.shutdown(socket.SHUT_WR)
            rest, how = recv_all(c)
            self.assertEqual((rest, how), (b"", "eof"))
        n = 6 + 100000
        self.wait_counter("tcp.echo.downstream_cx_tx_bytes_total", before_tx + n)
        self.wait_counter("cluster.echo.upstream_cx_tx_bytes_total", before_up_tx + n)
        self.assertGreaterEqual(self.counter("tcp.echo.downstream_cx_rx_bytes_total"), n)
        self.assertGreaterEqual(self.counter("cluster.echo.upstream_cx_rx_bytes_total"), n)
        self.assertGreaterEqual(self.counter("tcp.echo.downstream_cx_total"), 1)
        self.assertGreaterEqual(self.counter("cluster.echo.upstream_cx_total"), 1)
        self.assertEqual(self.counter("cluster.echo.upstream_cx_http1_total"), 0)
        # Both sides closed: nothing stays active, and the access log has a line.
        self.proxy.wait_stat("cluster.echo.upstream_cx_active", lambda v: v == 0)
        self.assertEqual(self.proxy.counter("cluster.echo.upstream_cx_active"), 0)

        def logged():
            try:
                with open(self.access_log) as f:
                    return [l for l in f.read().splitlines() if l.startswith("echo ")]
            except OSError:
                return []
        # Other tests' echo connections log lines of their own: wait for ours.
        want = "echo 127.0.0.1:%d %d %d - -" % (self.servers["echo"].port, n, n)
        poll(TIMEOUT_S, lambda: want in logged())
        self.assertIn(want, logged())

    def test_a_burst_bigger_than_a_chunk_is_relayed_with_nothing_sent_behind_it(self):
        # Several relay chunks (64 KiB) arrive at once and the client then
        # only reads: the relay must read on until the socket is empty (its
        # reactor is edge-triggered: a wait begun with bytes unread would end
        # only when more came, and none will).
        data = os.urandom(3 * MIB // 2)
        with connect(self.port("echo")) as c:
            threading.Thread(target=c.sendall, args=(data,), daemon=True).start()
            got = b""
            while len(got) < len(data):
                b = c.recv(1 << 20)
                self.assertTrue(b, "EOF before the echo")
                got += b
            self.assertEqual(got, data)

    def test_many_megabytes_to_the_upstream_arrive_intact_and_half_close_reaches_it(self):
        data, sha = pattern(16 * MIB)
        with connect(self.port("sink")) as c:
            c.sendall(data)
            # Our FIN reaches the sink (it answers only at EOF) while we can
            # still read its answer.
            c.shutdown(socket.SHUT_WR)
            answer, how = recv_all(c)
        self.assertEqual(answer, b"%d %s\n" % (len(data), sha.encode()))
        self.assertEqual(how, "eof")

    def test_a_slow_reader_holds_the_upstream_back_and_memory_stays_bounded(self):
        src = self.servers["source"]
        src.sent = 0
        rss_before = self.proxy.rss_kib()
        paused_before = self.counter("cluster.source.upstream_flow_control_paused_reading_total")
        total = len(self.source_data)
        with connect(self.port("source"), rcvbuf=65536) as c:
            c.sendall(b"%d\n" % total)
            # Not reading: the source gets as far as the socket buffers let it,
            # then stops (sendall blocks): turnout stopped reading it.
            last = [-1, time.monotonic()]

            def stalled():
                sent = src.sent
                now = time.monotonic()
                if sent != last[0]:
                    last[0], last[1] = sent, now
                    return False
                return sent > 0 and now - last[1] >= 0.7
            self.assertTrue(poll(20, stalled), "the source never stalled (sent %d)" % src.sent)
            stalled_at = src.sent
            rss_stalled = self.proxy.rss_kib()
            print("\n  source stalled at %d of %d bytes; turnout RSS %+d KiB"
                  % (stalled_at, total, rss_stalled - rss_before), file=sys.stderr)
            bound = kernel_buffering() + SLOW_READER_SLACK
            self.assertLess(stalled_at, bound,
                            "the source sent %d of %d bytes to a client that reads nothing "
                            "(kernel buffers and turnout's allow %d)" % (stalled_at, total, bound))
            self.assertLess(rss_stalled - rss_before, 16 * 1024,
                            "turnout's RSS grew %d KiB while the client read nothing"
                            % (rss_stalled - rss_before))
            got, how = recv_all(c, 60)
        self.assertEqual(how, "eof")
        self.assertEqual(len(got), total)
        self.assertEqual(hashlib.sha256(got).hexdigest(), self.source_sha)
        self.assertGreater(self.counter("cluster.source.upstream_flow_control_paused_reading_total"),
                           paused_before)

    def test_an_upstream_half_close_reaches_the_client_which_can_still_send(self):
        half = self.servers["half"]
        with connect(self.port("half")) as c:
            self.assertEqual(recv_line(c), b"bye\n")
            c.settimeout(TIMEOUT_S)
            self.assertEqual(c.recv(10), b"", "the upstream's FIN did not reach the client")
            c.sendall(b"after the upstream's FIN")
            c.shutdown(socket.SHUT_WR)
            rest, how = recv_all(c)
            self.assertEqual((rest, how), (b"", "eof"))
        self.assertTrue(poll(TIMEOUT_S, lambda: half.received))
        self.assertEqual(half.received[-1], b"after the upstream's FIN")

    def test_an_upstream_reset_resets_the_client(self):
        with connect(self.port("reset")) as c:
            c.sendall(b"go\n")
            _, how = recv_all(c)
        self.assertEqual(how, "reset")

    def test_a_client_reset_resets_the_upstream(self):
        obs = self.servers["observe"]
        before = len(obs.endings)
        with connect(self.port("observe")) as c:
            c.sendall(b"some bytes")
            self.wait_counter("cluster.observe.upstream_cx_tx_bytes_total", 10)
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.assertTrue(poll(TIMEOUT_S, lambda: len(obs.endings) > before))
        self.assertEqual(obs.endings[-1], "reset")

    def test_tls_is_terminated_and_the_plaintext_relayed(self):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        data, _ = pattern(3 * MIB)
        with socket.create_connection(("127.0.0.1", self.port("tls")), timeout=TIMEOUT_S) as raw:
            with ctx.wrap_socket(raw, server_hostname="tcp.test") as c:
                got = bytearray()
                # Write and read in turns, so neither side's buffers fill.
                for i in range(0, len(data), 256 * 1024):
                    c.sendall(data[i:i + 256 * 1024])
                    while len(got) < min(i + 256 * 1024, len(data)):
                        b = c.recv(65536)
                        self.assertTrue(b)
                        got += b
        self.assertEqual(bytes(got), data)
        # Every listener here is 127.0.0.1:0 in the config: one stats scope.
        self.wait_counter("listener.127.0.0.1_0.ssl.handshake", 1)
        self.wait_counter("tcp.tls.downstream_cx_rx_bytes_total", len(data))

    # -- connecting ----------------------------------------------------------

    def test_a_refused_upstream_closes_the_client_and_is_counted(self):
        before = self.counter("cluster.refused.upstream_cx_connect_fail")
        with connect(self.port("refused")) as c:
            data, how = recv_all(c)
        self.assertEqual(data, b"")
        self.wait_counter("cluster.refused.upstream_cx_connect_fail", before + 1)
        self.wait_counter("cluster.refused.upstream_cx_connect_attempts_exceeded", 1)
        self.wait_counter("tcp.refused.downstream_cx_total", 1)
        self.assertEqual(self.proxy.counter("cluster.refused.upstream_cx_active"), 0)

        def flagged():
            try:
                with open(self.access_log) as f:
                    return [l for l in f.read().splitlines() if l.startswith("refused ")]
            except OSError:
                return []
        lines = poll(TIMEOUT_S, flagged)
        self.assertTrue(lines)
        self.assertIn("UF,URX", lines[-1])

    def test_max_connect_attempts_tries_another_host(self):
        before_fail = self.counter("cluster.mixed.upstream_cx_connect_fail")
        for _ in range(6):
            with connect(self.port("retry")) as c:
                c.sendall(b"ping")
                self.assertEqual(c.recv(4), b"ping")
        # Round robin alternates, so some first attempts hit the refusing host
        # and were retried on the other.
        self.assertGreater(self.counter("cluster.mixed.upstream_cx_connect_fail"), before_fail)
        self.assertEqual(self.counter("cluster.mixed.upstream_cx_connect_attempts_exceeded"), 0)

    def test_a_connect_timeout_closes_the_client_and_is_counted(self):
        start = time.monotonic()
        with connect(self.port("timeout")) as c:
            data, _ = recv_all(c)
        self.assertEqual(data, b"")
        self.assertLess(time.monotonic() - start, TIMEOUT_S)
        self.wait_counter("cluster.blackhole.upstream_cx_connect_timeout", 1)

    def test_the_idle_timeout_closes_a_silent_connection(self):
        before = self.counter("tcp.idle.idle_timeout")
        with connect(self.port("idle")) as c:
            c.sendall(b"once")
            self.assertEqual(c.recv(4), b"once")
            start = time.monotonic()
            data, _ = recv_all(c)
            waited = time.monotonic() - start
        self.assertEqual(data, b"")
        self.assertGreaterEqual(waited, 0.3)
        self.wait_counter("tcp.idle.idle_timeout", before + 1)

    def test_weighted_clusters_split_connections_by_weight(self):
        seen = {"a": 0, "b": 0}
        for _ in range(100):
            with connect(self.port("weighted")) as c:
                seen[recv_line(c).strip().decode()] += 1
        self.assertGreater(seen["a"], 0, seen)
        self.assertGreater(seen["b"], seen["a"] * 2, seen)

    def test_max_connections_refuses_a_second_connection(self):
        before = self.counter("cluster.echo_one.upstream_cx_overflow")
        with connect(self.port("overflow")) as first:
            first.sendall(b"hold")
            self.assertEqual(first.recv(4), b"hold")
            with connect(self.port("overflow")) as second:
                data, _ = recv_all(second)
                self.assertEqual(data, b"")
            self.wait_counter("cluster.echo_one.upstream_cx_overflow", before + 1)
            first.sendall(b"still")
            self.assertEqual(first.recv(5), b"still")

    # -- ORIGINAL_DST ----------------------------------------------------------

    def test_original_dst_without_a_restored_destination_refuses_rather_than_loop(self):
        before = self.counter("cluster.passthrough.original_dst_loop_refused")
        with connect(self.port("odst_loop")) as c:
            data, _ = recv_all(c)
        self.assertEqual(data, b"")
        self.wait_counter("cluster.passthrough.original_dst_loop_refused", before + 1)
        self.wait_counter("cluster.passthrough.upstream_cx_none_healthy", 1)
        self.assertEqual(self.counter("cluster.passthrough.upstream_cx_total"), 0)
        self.assertEqual(self.counter("tcp.odst_loop.downstream_cx_total"),
                         self.counter("cluster.passthrough.upstream_cx_none_healthy"))

    def test_original_dst_port_override_connects_to_the_local_address_on_that_port(self):
        with connect(self.port("odst_port")) as c:
            c.sendall(b"via the original destination")
            got = b""
            while len(got) < 28:
                b = c.recv(64)
                self.assertTrue(b)
                got += b
        self.assertEqual(got, b"via the original destination")
        self.wait_counter("cluster.passthrough_to_echo.upstream_cx_total", 1)

    def http_get(self, listener, headers):
        conn = http.client.HTTPConnection("127.0.0.1", self.port(listener), timeout=TIMEOUT_S)
        try:
            conn.request("GET", "/x", headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def test_http_through_original_dst_goes_to_the_header_destination(self):
        status, body = self.http_get(
            "http", {"x-envoy-original-dst-host": "127.0.0.1:%d" % self.http_a.port})
        self.assertEqual(status, 200)
        self.assertIn(b"http-a", body)
        status, body = self.http_get(
            "http", {"x-envoy-original-dst-host": "127.0.0.1:%d" % self.http_b.port})
        self.assertEqual(status, 200)
        self.assertIn(b"http-b", body)

    def test_a_bad_original_dst_header_is_503_no_healthy_upstream(self):
        before = self.counter("cluster.passthrough_http.original_dst_host_invalid")
        status, body = self.http_get("http", {"x-envoy-original-dst-host": "not-a-host:port"})
        self.assertEqual(status, 503)
        self.assertEqual(body, b"no healthy upstream")
        self.wait_counter("cluster.passthrough_http.original_dst_host_invalid", before + 1)
        # Without the header the destination would be the listener itself.
        before_loop = self.counter("cluster.passthrough_http.original_dst_loop_refused")
        status, body = self.http_get("http", {})
        self.assertEqual(status, 503)
        self.wait_counter("cluster.passthrough_http.original_dst_loop_refused", before_loop + 1)

    def test_upstream_port_override_wins_over_the_header_port(self):
        status, body = self.http_get("http_override",
                                     {"x-envoy-original-dst-host": "127.0.0.1:%d" % self.http_a.port})
        self.assertEqual(status, 200)
        self.assertIn(b"http-b", body)


class PeerServer:
    """Accepts TCP connections and answers each with its peer's address: a
    line, or, when the first bytes are an HTTP request, a 200 whose body is
    that address."""

    def __init__(self, host="127.0.0.1"):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.stopped = False
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def _run(self):
        self.sock.settimeout(0.2)
        while not self.stopped:
            try:
                conn, peer = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            with conn:
                conn.settimeout(TIMEOUT_S)
                try:
                    first = conn.recv(4096)
                    if first.startswith(b"GET "):
                        while b"\r\n\r\n" not in first:
                            more = conn.recv(4096)
                            if not more:
                                break
                            first += more
                        body = peer[0].encode()
                        conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s"
                                     % (len(body), body))
                    else:
                        conn.sendall(peer[0].encode() + b"\n")
                except OSError:
                    pass

    def stop(self):
        self.stopped = True
        self.sock.close()
        self.thread.join(timeout=5)


BIND_127_0_0_6 = "  upstream_bind_config: {source_address: {address: 127.0.0.6, port_value: 0}}\n"


class UpstreamBindConfigTest(unittest.TestCase):
    """Cluster.upstream_bind_config.source_address: what the sidecar's inbound
    passthrough binds (127.0.0.6, Istio's), seen by the upstream as the peer."""

    def test_upstream_connections_come_from_the_source_address(self):
        peer = PeerServer().start()
        proxy = TurnoutProcess(TURNOUT, bootstrap(
            [tcp_listener("tcp", "stat_prefix: tcp\ncluster: bound\n"),
             http_listener("http", "bound"),
             http_listener("plain", "unbound"),
             http_listener("mismatch", "v6_source")],
            [static_cluster("bound", [peer.port], BIND_127_0_0_6),
             static_cluster("unbound", [peer.port]),
             static_cluster("v6_source", [peer.port],
                            "  upstream_bind_config: {source_address: {address: \"::1\", port_value: 0}}\n")])).start()
        try:
            with connect(proxy.port("tcp")) as c:
                c.sendall(b"who am i\n")
                self.assertEqual(recv_line(c), b"127.0.0.6\n")
            for listener, want in (("http", b"127.0.0.6"), ("plain", b"127.0.0.1")):
                conn = http.client.HTTPConnection("127.0.0.1", proxy.port(listener), timeout=TIMEOUT_S)
                conn.request("GET", "/")
                resp = conn.getresponse()
                self.assertEqual((resp.status, resp.read()), (200, want), listener)
                conn.close()
            # A source of another family than the endpoint's: the connect fails (503).
            conn = http.client.HTTPConnection("127.0.0.1", proxy.port("mismatch"), timeout=TIMEOUT_S)
            conn.request("GET", "/")
            resp = conn.getresponse()
            resp.read()
            self.assertEqual(resp.status, 503)
            conn.close()
        finally:
            proxy.stop()
            peer.stop()

    def test_an_ipv6_upstream_sees_the_extra_source_address(self):
        """extra_source_addresses (and the deprecated additional_source_addresses):
        the source address of the host's family is bound, as Envoy's default
        local address selector does; an IPv4 host still sees source_address."""
        peer4 = PeerServer().start()
        peer6 = PeerServer("::1").start()
        extra = ("  upstream_bind_config: {source_address: {address: 127.0.0.6, port_value: 0}, "
                 "extra_source_addresses: [{address: {address: \"::1\", port_value: 0}}]}\n")
        additional = ("  upstream_bind_config: {source_address: {address: 127.0.0.6, port_value: 0}, "
                      "additional_source_addresses: [{address: \"::1\", port_value: 0}]}\n")
        proxy = TurnoutProcess(TURNOUT, bootstrap(
            [tcp_listener("tcp6", "stat_prefix: tcp6\ncluster: v6\n"),
             tcp_listener("tcp4", "stat_prefix: tcp4\ncluster: v4\n"),
             http_listener("http6", "v6"),
             http_listener("deprecated6", "deprecated_v6"),
             http_listener("v4_only6", "v4_only_v6")],
            [static_cluster("v6", [peer6.port], extra, host="::1"),
             static_cluster("v4", [peer4.port], extra),
             static_cluster("deprecated_v6", [peer6.port], additional, host="::1"),
             static_cluster("v4_only_v6", [peer6.port], BIND_127_0_0_6, host="::1")])).start()
        try:
            for listener, want in (("tcp6", b"::1\n"), ("tcp4", b"127.0.0.6\n")):
                with connect(proxy.port(listener)) as c:
                    c.sendall(b"who am i\n")
                    self.assertEqual(recv_line(c), want, listener)
            for listener, status, want in (("http6", 200, b"::1"), ("deprecated6", 200, b"::1"),
                                           ("v4_only6", 503, None)):
                conn = http.client.HTTPConnection("127.0.0.1", proxy.port(listener), timeout=TIMEOUT_S)
                conn.request("GET", "/")
                resp = conn.getresponse()
                body = resp.read()
                self.assertEqual(resp.status, status, listener)
                if want is not None:
                    self.assertEqual(body, want, listener)
                conn.close()
        finally:
            proxy.stop()
            peer4.stop()
            peer6.stop()

    def test_what_turnout_does_not_bind_is_refused_with_its_path(self):
        cases = (
            ("  upstream_bind_config: {source_address: {address: not-an-ip, port_value: 0}}\n",
             "upstream_bind_config.source_address.address"),
            ("  upstream_bind_config: {source_address: {address: 127.0.0.6, port_value: 0}, freebind: true}\n",
             "upstream_bind_config.freebind"),
            ("  upstream_bind_config: {}\n", "upstream_bind_config.source_address"),
            ("  upstream_bind_config: {source_address: {address: 127.0.0.6, port_value: 0}, "
             "extra_source_addresses: [{address: {address: 127.0.0.7, port_value: 0}}]}\n",
             "upstream_bind_config.extra_source_addresses[0].address: the upstream binding config "
             "has two same IP version source addresses"),
            ("  upstream_bind_config: {source_address: {address: 127.0.0.6, port_value: 0}, "
             "extra_source_addresses: [{address: {address: \"::1\", port_value: 0}, "
             "socket_options: {}}]}\n",
             "upstream_bind_config.extra_source_addresses[0].socket_options"),
        )
        for extra, path in cases:
            with self.subTest(path):
                yaml = bootstrap([tcp_listener("tcp", "stat_prefix: tcp\ncluster: c\n")],
                                 [static_cluster("c", [9], extra)])
                r = subprocess.run([TURNOUT, "--mode", "validate", "--config-yaml", yaml],
                                   capture_output=True, text=True, timeout=20)
                self.assertNotEqual(r.returncode, 0, r.stdout)
                self.assertIn(path, r.stdout + r.stderr)


class TcpProxyShutdownTest(unittest.TestCase):
    def test_stopping_turnout_ends_an_open_relay(self):
        echo = TcpServer("echo").start()
        proxy = TurnoutProcess(TURNOUT, bootstrap(
            [tcp_listener("echo", "stat_prefix: echo\ncluster: echo\n")],
            [static_cluster("echo", [echo.port])])).start()
        try:
            with connect(proxy.port("echo")) as c:
                c.sendall(b"open")
                self.assertEqual(c.recv(4), b"open")
                proxy.proc.terminate()
                self.assertIsNotNone(proxy.wait_exit(TIMEOUT_S), "turnout did not exit")
                data, _ = recv_all(c)
                self.assertEqual(data, b"")
        finally:
            proxy.stop()
            echo.stop()


def main():
    def set_binary(b):
        global TURNOUT
        TURNOUT = b
    return run_suite("tcp_proxy_test", set_binary)


if __name__ == "__main__":
    sys.exit(main())
