#!/usr/bin/env python3
"""The data-plane core end to end: full-duplex exchanges, early responses,
timeouts that start at the end of the request, retries that replay exactly
what the client sent, and the route-level fields the router honours.

Usage: stream_core_test.py <turnout-binary>

Backends here are scripted raw TCP servers (one python function per
connection), so each test controls exactly when the upstream reads, answers
or resets. Every socket has a timeout and every loop is bounded.
"""

import hashlib
import os
import socket
import struct
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))

from envoy_yaml import bootstrap, cluster, request  # noqa: E402
from fake_backend import FakeBackend  # noqa: E402
from turnout_process import TurnoutProcess, run_suite  # noqa: E402

TURNOUT = None
IO_TIMEOUT_S = 10.0


class ScriptedBackend:
    """A TCP server on 127.0.0.1:0 that runs `script(conn, index)` for each
    accepted connection on its own thread (index counts from 0)."""

    def __init__(self, script):
        self.script = script
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.results = []  # whatever scripts append
        self.lock = threading.Lock()
        self._stop = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.settimeout(IO_TIMEOUT_S)
            with self.lock:
                index = self.accepted
                self.accepted += 1
            threading.Thread(target=self._run, args=(conn, index), daemon=True).start()

    def _run(self, conn, index):
        try:
            self.script(self, conn, index)
        except OSError:
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def stop(self):
        self._stop = True
        self.sock.close()
        self.thread.join(2)


def read_head(conn):
    """Reads up to the end of the request head; returns (head_bytes, rest)."""
    buf = b""
    for _ in range(10000):
        if b"\r\n\r\n" in buf:
            break
        chunk = conn.recv(65536)
        if not chunk:
            break
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head, rest


def header(head, name):
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == name:
            return v.strip().decode()
    return None


def read_exactly(conn, rest, n):
    data = rest
    for _ in range(100000):
        if len(data) >= n:
            break
        chunk = conn.recv(min(65536, n - len(data)))
        if not chunk:
            break
        data += chunk
    return data


def read_chunked(conn, rest):
    """Decodes a chunked body; returns (body, trailer_lines)."""
    buf = rest
    body = b""

    def fill(need_fn):
        nonlocal buf
        for _ in range(100000):
            if need_fn():
                return True
            chunk = conn.recv(65536)
            if not chunk:
                return False
            buf += chunk
        return False

    for _ in range(100000):
        if not fill(lambda: b"\r\n" in buf):
            break
        line, _, buf = buf.partition(b"\r\n")
        size = int(line.split(b";")[0], 16)
        if size == 0:
            fill(lambda: b"\r\n\r\n" in b"\r\n" + buf)
            trailers = (b"\r\n" + buf).split(b"\r\n\r\n")[0].strip(b"\r\n")
            return body, [t for t in trailers.split(b"\r\n") if t]
        fill(lambda: len(buf) >= size + 2)
        body += buf[:size]
        buf = buf[size + 2:]
    return body, []


def respond(conn, status, body=b"", extra=b""):
    conn.sendall(b"HTTP/1.1 %d X\r\ncontent-length: %d\r\n%s\r\n%s" % (status, len(body), extra, body))


def reset(conn):
    """Closes with RST (SO_LINGER 0)."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def read_response(sock, deadline_s=IO_TIMEOUT_S):
    """Reads one response with content-length; returns (status, headers, body, closed)."""
    sock.settimeout(deadline_s)
    buf = b""
    for _ in range(10000):
        if b"\r\n\r\n" in buf:
            break
        chunk = sock.recv(65536)
        if not chunk:
            return None, {}, buf, True
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0"))
    body = rest
    closed = False
    for _ in range(100000):
        if len(body) >= n:
            break
        chunk = sock.recv(65536)
        if not chunk:
            closed = True
            break
        body += chunk
    return int(lines[0].split(" ")[1]), headers, body[:n], closed


class ProxyCase(unittest.TestCase):
    proxy = None
    backends = ()

    @classmethod
    def start_proxy(cls, vhosts, clusters):
        cls.proxy = TurnoutProcess(TURNOUT, bootstrap(vhosts, clusters)).start()
        cls.port = cls.proxy.port("ingress")

    @classmethod
    def tearDownClass(cls):
        if cls.proxy is not None:
            cls.proxy.stop()
            cls.proxy = None
        for b in cls.backends:
            b.stop()

    def connect(self):
        return socket.create_connection(("127.0.0.1", self.port), timeout=IO_TIMEOUT_S)


# --------------------------------------------------------------------------
# Full duplex: the response is read while the request is still arriving.
# --------------------------------------------------------------------------


def early_413(backend, conn, index):
    head, _ = read_head(conn)
    backend.results.append(header(head, b"content-length"))
    # Answer before reading a single body byte, then keep reading so the
    # proxy's writes do not fail (a real server drains or closes).
    respond(conn, 413, b"too big", b"connection: close\r\n")
    conn.settimeout(3)
    try:
        for _ in range(1000):
            if not conn.recv(65536):
                break
    except OSError:
        pass


def echo_chunks(backend, conn, index):
    """Streams back every chunk of a chunked request as it arrives."""
    head, buf = read_head(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
    for _ in range(1000):
        while b"\r\n" not in buf:
            chunk = conn.recv(65536)
            if not chunk:
                return
            buf += chunk
        line, _, buf = buf.partition(b"\r\n")
        size = int(line.split(b";")[0], 16)
        if size == 0:
            conn.sendall(b"0\r\n\r\n")
            return
        while len(buf) < size + 2:
            chunk = conn.recv(65536)
            if not chunk:
                return
            buf += chunk
        data, buf = buf[:size], buf[size + 2:]
        out = b"echo:" + data
        conn.sendall(b"%x\r\n%s\r\n" % (len(out), out))


class FullDuplexTest(ProxyCase):
    @classmethod
    def setUpClass(cls):
        cls.early = ScriptedBackend(early_413)
        cls.echo = ScriptedBackend(echo_chunks)
        cls.backends = (cls.early, cls.echo)
        vhosts = """\
        - name: svc
          domains: ["svc"]
          routes:
          - match: { prefix: "/early" }
            route: { cluster: early }
          - match: { prefix: "/echo" }
            route: { cluster: echo, timeout: 0s }
        """
        cls.start_proxy(vhosts, [cluster("early", [cls.early.port]),
                                 cluster("echo", [cls.echo.port])])

    def test_early_response_reaches_the_client_before_its_upload_ends(self):
        s = self.connect()
        try:
            s.sendall(b"POST /early HTTP/1.1\r\nhost: svc\r\ncontent-length: 1000000\r\n\r\n")
            s.sendall(b"x" * 1000)  # far from the announced million bytes
            status, headers, body, _ = read_response(s, deadline_s=5)
            self.assertEqual(status, 413)
            self.assertEqual(body, b"too big")
            # The rest of the upload will not be read: the connection closes.
            self.assertEqual(headers.get("connection"), "close")
        finally:
            s.close()

    def test_response_chunks_stream_back_while_request_chunks_are_sent(self):
        s = self.connect()
        try:
            s.sendall(b"POST /echo HTTP/1.1\r\nhost: svc\r\ntransfer-encoding: chunked\r\n\r\n")
            got = b""
            for i in range(5):
                piece = b"part%d" % i
                s.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                # The echo of this chunk must come back before the next is sent.
                want = b"echo:" + piece
                for _ in range(1000):
                    if want in got:
                        break
                    chunk = s.recv(65536)
                    self.assertTrue(chunk, "connection closed mid-stream; got %r" % got)
                    got += chunk
                self.assertIn(want, got)
            s.sendall(b"0\r\n\r\n")
        finally:
            s.close()


    def test_body_in_the_same_segment_as_the_head_is_forwarded(self):
        # The whole request arrives in one read: head and body together.
        s = self.connect()
        try:
            s.sendall(b"POST /echo HTTP/1.1\r\nhost: svc\r\ntransfer-encoding: chunked\r\n\r\n"
                      b"3\r\nabc\r\n0\r\n\r\n")
            got = b""
            for _ in range(1000):
                if b"echo:abc" in got and got.endswith(b"0\r\n\r\n"):
                    break
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
            self.assertIn(b"echo:abc", got)
        finally:
            s.close()


# --------------------------------------------------------------------------
# Timeouts: the route timeout starts at the end of the request.
# --------------------------------------------------------------------------


class TimeoutTest(ProxyCase):
    @classmethod
    def setUpClass(cls):
        cls.svc = FakeBackend("svc").start()
        cls.backends = (cls.svc,)
        vhosts = """\
        - name: svc
          domains: ["svc"]
          routes:
          - match: { prefix: "/upload" }
            route: { cluster: svc, timeout: 0.5s }
          - match: { prefix: "/per-try-idle" }
            route:
              cluster: svc
              timeout: 10s
              retry_policy: { retry_on: "reset", num_retries: 0, per_try_idle_timeout: 0.3s }
          - match: { prefix: "/route-idle" }
            route: { cluster: svc, timeout: 10s, idle_timeout: 0.3s }
        """
        cls.start_proxy(vhosts, [cluster("svc", [cls.svc.port])])

    def test_slow_upload_longer_than_route_timeout_succeeds(self):
        body = b"y" * 4000
        s = self.connect()
        try:
            s.sendall(b"POST /upload HTTP/1.1\r\nhost: svc\r\ncontent-length: %d\r\n\r\n" % len(body))
            for i in range(4):  # 4 x 0.3 s = 1.2 s, well past the 0.5 s route timeout
                s.sendall(body[i * 1000:(i + 1) * 1000])
                time.sleep(0.3)
            status, _, reply, _ = read_response(s)
            self.assertEqual(status, 200, reply)
        finally:
            s.close()
        hits = [r for r in self.svc.requests if r["path"] == "/upload"]
        self.assertEqual([h["body_sha256"] for h in hits], [hashlib.sha256(body).hexdigest()])

    def test_route_timeout_still_bounds_the_response(self):
        start = time.monotonic()
        status, _, body = request(self.port, "POST", "/upload/delay/3000", body=b"z", host="svc")
        self.assertEqual(status, 504, body)
        self.assertLess(time.monotonic() - start, 2.5)

    def test_per_try_idle_timeout_answers_504_and_counts(self):
        before = self.proxy.counter("cluster.svc.upstream_rq_per_try_idle_timeout") or 0
        start = time.monotonic()
        status, _, body = request(self.port, "GET", "/per-try-idle/delay/3000", host="svc")
        self.assertEqual(status, 504, body)
        self.assertLess(time.monotonic() - start, 2.5)
        self.assertIsNotNone(
            self.proxy.wait_counter("cluster.svc.upstream_rq_per_try_idle_timeout", before + 1))

    def test_route_idle_timeout_answers_408_stream_timeout(self):
        start = time.monotonic()
        status, _, body = request(self.port, "GET", "/route-idle/delay/3000", host="svc")
        self.assertEqual(status, 408, body)
        self.assertEqual(body, b"stream timeout")
        self.assertLess(time.monotonic() - start, 2.5)


# --------------------------------------------------------------------------
# Retries replay exactly the bytes the client sent.
# --------------------------------------------------------------------------


def reset_mid_body_then_digest(backend, conn, index):
    head, rest = read_head(conn)
    if index == 0:
        read_exactly(conn, rest, 1000)  # some of the body, then a reset
        reset(conn)
        return
    if header(head, b"transfer-encoding") == "chunked":
        body, trailers = read_chunked(conn, rest)
    else:
        body = read_exactly(conn, rest, int(header(head, b"content-length")))
        trailers = []
    backend.results.append((len(body), hashlib.sha256(body).hexdigest(), trailers))
    respond(conn, 200, b"ok")


class RetryReplayTest(ProxyCase):
    @classmethod
    def setUpClass(cls):
        cls.flaky = ScriptedBackend(reset_mid_body_then_digest)
        cls.backends = (cls.flaky,)
        vhosts = """\
        - name: svc
          domains: ["svc"]
          routes:
          - match: { prefix: "/" }
            route:
              cluster: flaky
              retry_policy: { retry_on: "reset", num_retries: 1 }
        """
        cls.start_proxy(vhosts, [cluster("flaky", [cls.flaky.port])])

    def setUp(self):
        with self.flaky.lock:
            self.flaky.accepted = 0
        self.flaky.results.clear()

    def test_reset_mid_upload_retries_with_the_whole_body(self):
        body = os.urandom(300 * 1024)
        s = self.connect()
        try:
            s.sendall(b"POST /up HTTP/1.1\r\nhost: svc\r\ncontent-length: %d\r\n\r\n" % len(body))
            # The client is still sending when the first upstream resets.
            for i in range(0, len(body), 50 * 1024):
                s.sendall(body[i:i + 50 * 1024])
                time.sleep(0.05)
            status, _, reply, _ = read_response(s)
            self.assertEqual(status, 200, reply)
        finally:
            s.close()
        self.assertEqual(self.flaky.results,
                         [(len(body), hashlib.sha256(body).hexdigest(), [])])

    def test_chunked_retry_replays_the_trailers(self):
        s = self.connect()
        try:
            s.sendall(b"POST /up HTTP/1.1\r\nhost: svc\r\ntransfer-encoding: chunked\r\n\r\n")
            pieces = [os.urandom(800), os.urandom(900), os.urandom(700)]
            for p in pieces:
                s.sendall(b"%x\r\n%s\r\n" % (len(p), p))
                time.sleep(0.05)
            s.sendall(b"0\r\nx-checksum: abc\r\n\r\n")
            status, _, reply, _ = read_response(s)
            self.assertEqual(status, 200, reply)
        finally:
            s.close()
        body = b"".join(pieces)
        self.assertEqual(len(self.flaky.results), 1, self.flaky.results)
        n, digest, trailers = self.flaky.results[0]
        self.assertEqual((n, digest), (len(body), hashlib.sha256(body).hexdigest()))
        self.assertEqual([t.lower() for t in trailers], [b"x-checksum: abc"])


# --------------------------------------------------------------------------
# Route fields the router honours.
# --------------------------------------------------------------------------


def retriable_header_once(backend, conn, index):
    for _ in range(100):
        head, _ = read_head(conn)
        if not head:
            return
        backend.results.append(head.split(b" ")[1])
        if len(backend.results) == 1:
            respond(conn, 200, b"first", b"x-try-again: yes\r\n")
        else:
            respond(conn, 200, b"second")


class RouteFieldsTest(ProxyCase):
    @classmethod
    def setUpClass(cls):
        cls.svc = FakeBackend("svc").start()
        cls.retry = ScriptedBackend(retriable_header_once)
        cls.backends = (cls.svc, cls.retry)
        vhosts = """\
        - name: svc
          domains: ["svc"]
          response_headers_to_add:
          - header: { key: x-vhost, value: v1 }
          routes:
          - match: { prefix: "/hdr" }
            route: { cluster: svc }
            response_headers_to_add:
            - header: { key: x-route, value: "%ROUTING_KEY%r" }
            response_headers_to_remove: [x-backend]
          - match: { prefix: "/retry-hdr" }
            route:
              cluster: retry
              retry_policy:
                retry_on: retriable-headers
                num_retries: 1
                retriable_headers:
                - name: x-try-again
                  string_match: { exact: "yes" }
          - match: { prefix: "/auto" }
            route: { cluster: named, auto_host_rewrite: true, append_x_forwarded_host: true }
        """
        named = cluster("named", [cls.svc.port]).replace(
            "      - endpoint: { address:",
            "      - endpoint: { hostname: backend.internal, address:")
        cls.start_proxy(vhosts, [cluster("svc", [cls.svc.port]),
                                 cluster("retry", [cls.retry.port]), named])

    def test_response_headers_are_added_and_removed(self):
        status, headers, _ = request(self.port, "GET", "/hdr", host="svc")
        self.assertEqual(status, 200)
        self.assertEqual(headers.get("x-route"), "r")
        self.assertEqual(headers.get("x-vhost"), "v1")
        self.assertIsNone(headers.get("x-backend"))

    def test_retriable_headers_trigger_a_retry(self):
        status, _, body = request(self.port, "GET", "/retry-hdr", host="svc")
        self.assertEqual((status, body), (200, b"second"))
        self.assertEqual(len(self.retry.results), 2)

    def test_auto_host_rewrite_uses_the_endpoint_hostname(self):
        status, _, _ = request(self.port, "GET", "/auto", host="svc")
        self.assertEqual(status, 200)
        hit = [r for r in self.svc.requests if r["path"] == "/auto"][-1]
        hdrs = dict(hit["headers"])
        self.assertEqual(hdrs.get("host"), "backend.internal")
        self.assertEqual(hdrs.get("x-forwarded-host"), "svc")


def set_turnout(binary):
    global TURNOUT
    TURNOUT = binary


if __name__ == "__main__":
    sys.exit(run_suite("stream_core_test", set_turnout))
