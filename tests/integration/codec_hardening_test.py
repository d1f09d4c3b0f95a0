#!/usr/bin/env python3
"""Bad HTTP/1.1 input (RFC 9110/9112) against the real turnout binary.

Usage: codec_hardening_test.py <turnout-binary> [unittest args]

A raw TCP client sends each probe and reads until the proxy closes the
connection, with a socket deadline of a few seconds. Every probe must end in
one of two ways: an answer from the proxy itself (4xx, or 501 for a transfer
coding it does not implement, RFC 9112 §6.1) followed by a close, or a clean
close. A probe that is still open at the deadline is a hang and fails. Request
smuggling probes also check that the smuggled request never reaches the
backend. Port 0 everywhere; no sleeps.
"""

import json
import os
import socket
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))

from envoy_yaml import STAT_PREFIX, bootstrap, cluster  # noqa: E402
import fake_backend  # noqa: E402
from fake_backend import FakeBackend  # noqa: E402
from turnout_process import ProxyWithBackend, run_suite  # noqa: E402

TURNOUT = None  # set from argv in main()

# The backend writing to a connection the proxy has already given up on (a
# request whose body turned out malformed) is expected here: keep it quiet.
fake_backend._Server.handle_error = lambda self, request, client_address: None

# How long a probe may take before it counts as a hang. The suites that must
# answer at once run with a stream_idle_timeout far above it, so that only an
# answer (or a close caused by the input itself) can beat it.
DEADLINE_S = 5.0
LONG_IDLE = "30s"
# The stalled-input suite: a peer that stops sending must be cut off by the
# stream idle timeout, well within DEADLINE_S.
SHORT_IDLE = "1s"

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: svc\r\n\r\n"


class Exchange:
    """What the client saw: the first response (if any), and how it ended."""

    def __init__(self, raw, closed, hung):
        self.raw, self.closed, self.hung = raw, closed, hung
        self.status, self.headers, self.body = None, [], b""
        head, sep, rest = raw.partition(b"\r\n\r\n")
        if not sep:
            return
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) >= 2 and parts[1].isdigit():
            self.status = int(parts[1])
        for line in lines[1:]:
            k, _, v = line.partition(":")
            self.headers.append((k.strip().lower(), v.strip()))
        length = self.header("content-length")
        if length is not None and length.isdigit():
            self.body = rest[:int(length)]
        else:
            self.body = rest

    def header(self, name):
        for k, v in self.headers:
            if k == name:
                return v
        return None

    def all(self, name):
        return [v for k, v in self.headers if k == name]

    def __repr__(self):
        return "Exchange(status=%r, closed=%r, hung=%r, raw=%r)" % (
            self.status, self.closed, self.hung, self.raw[:300])


def exchange(port, data, shut_wr=False, deadline_s=DEADLINE_S):
    """Sends `data` on a new connection and reads until EOF or the deadline.

    shut_wr: half-close after sending, as a client that gave up would.
    """
    sock = socket.create_connection(("127.0.0.1", port), timeout=deadline_s)
    try:
        try:
            sock.sendall(data)
            if shut_wr:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the proxy may answer and close before reading everything
        buf = b""
        end = time.monotonic() + deadline_s
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return Exchange(buf, closed=False, hung=True)
            sock.settimeout(left)
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                return Exchange(buf, closed=False, hung=True)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return Exchange(buf, closed=True, hung=False)
            buf += chunk
    finally:
        sock.close()


def with_idle_timeout(yaml, idle):
    """Adds stream_idle_timeout to the bootstrap's HttpConnectionManager."""
    marker = "          stat_prefix: %s\n" % STAT_PREFIX
    assert marker in yaml
    return yaml.replace(marker, marker + "          stream_idle_timeout: %s\n" % idle)


ALL_TO_SVC = """\
- name: svc
  domains: ["*"]
  routes:
  - match: { prefix: "/" }
    route: { cluster: svc }
"""


class RawUpstream:
    """An origin on 127.0.0.1:0 that answers each request with canned bytes
    chosen by its path, then closes: for responses no real server would send."""

    def __init__(self, responses):
        self.responses = responses  # path -> raw response bytes
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stopping.set()
        self.thread.join(timeout=5)
        self.sock.close()

    def _accept(self):
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        conn.settimeout(DEADLINE_S)
        try:
            buf = b""
            while b"\r\n\r\n" not in buf and len(buf) < 65536:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
            path = buf.split(b" ", 2)[1].decode("latin-1") if buf.count(b" ") >= 2 else ""
            conn.sendall(self.responses.get(path, b"HTTP/1.1 404 Not Found\r\n"
                                                  b"Content-Length: 0\r\nConnection: close\r\n\r\n"))
            conn.shutdown(socket.SHUT_WR)
            # Drain until the proxy closes, so the close is not a reset.
            while conn.recv(65536):
                pass
        except OSError:
            pass
        finally:
            conn.close()


class HardeningTestCase(ProxyWithBackend):
    IDLE = LONG_IDLE

    @classmethod
    def bootstrap_yaml(cls, backend_port):
        return with_idle_timeout(bootstrap(ALL_TO_SVC, [cluster("svc", [backend_port])]), cls.IDLE)

    def send(self, data, **kw):
        r = exchange(self.port, data, **kw)
        self.assertFalse(r.hung, "no answer and no close within %ss: %r" % (DEADLINE_S, r))
        return r

    def assert_answered(self, data, statuses, **kw):
        """The proxy answers with one of `statuses` and closes."""
        r = self.send(data, **kw)
        self.assertIn(r.status, statuses, r)
        self.assertTrue(r.closed, r)
        self.assertIsNone(r.header("x-backend"), "the backend answered, not the proxy: %r" % r)
        return r

    def assert_still_serving(self):
        r = self.send(b"GET /after HTTP/1.1\r\nHost: svc\r\nConnection: close\r\n\r\n")
        self.assertEqual(r.status, 200, r)


# --------------------------------------------------------------------------
# Requests: every bad head or body is answered at once.
# --------------------------------------------------------------------------


class RequestProbeTest(HardeningTestCase):
    def paths_seen(self):
        return [r["path"] for r in self.backend.requests]

    _probe_id = 0

    def tagged(self, data):
        """`data` with a unique X-Probe header after the request line, and its value.

        The backend records requests on its own threads, so a request from an
        earlier probe whose head went upstream before its body turned out bad
        can be recorded at any time later: probes count only their own tag.
        """
        RequestProbeTest._probe_id += 1
        tag = "p%d" % RequestProbeTest._probe_id
        line, sep, rest = data.partition(b"\r\n")
        return line + sep + b"X-Probe: " + tag.encode() + b"\r\n" + rest, tag

    def seen(self, tag):
        return [r for r in self.backend.requests if ["x-probe", tag] in r["headers"]]

    def assert_rejected_before_upstream(self, data, statuses=(400,)):
        data, tag = self.tagged(data)
        r = self.assert_answered(data, statuses)
        self.assertEqual(self.seen(tag), [], "the request reached the backend")
        return r

    def forwarded(self, data):
        """Sends an acceptable request; returns what the backend received."""
        data, tag = self.tagged(data)
        r = self.send(data)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("x-backend"), "svc", r)
        self.assertEqual(len(self.seen(tag)), 1, self.backend.requests)
        return json.loads(r.body)

    # -- Content-Length ------------------------------------------------------

    def test_equal_content_length_list_is_forwarded_as_one_value(self):
        for cl in (b"Content-Length: 5, 5\r\n", b"Content-Length: 5,5,5\r\n",
                   b"Content-Length: 5\r\nContent-Length: 5\r\n",
                   b"Content-Length: 5\r\nContent-Length: 5, 5\r\n", b"Content-Length: 005\r\n"):
            with self.subTest(cl=cl):
                got = self.forwarded(b"POST /cl HTTP/1.1\r\nHost: svc\r\n" + cl +
                                     b"Connection: close\r\n\r\nhello")
                values = [v for k, v in got["headers"] if k == "content-length"]
                self.assertEqual(values, ["5"], got["headers"])
                self.assertEqual(got["body_len"], 5)

    def test_bad_content_length_is_400(self):
        for cl in (b"5, 6", b"5\r\nContent-Length: 6", b"5,,5", b"5, ", b", 5", b"", b"5 5",
                   b"+5", b"-1", b"0x5", b"abc", b"18446744073709551616",
                   b"99999999999999999999999"):
            with self.subTest(cl=cl):
                r = self.assert_rejected_before_upstream(
                    b"POST /cl HTTP/1.1\r\nHost: svc\r\nContent-Length: " + cl + b"\r\n\r\nhello")
                self.assertIn(b"http1.invalid_content_length", r.body)
        self.assert_still_serving()

    # -- Request smuggling ---------------------------------------------------

    def test_smuggling_probes_are_rejected_and_nothing_is_smuggled(self):
        # (name, request bytes, accepted statuses). Each request would, on a
        # server that picked the other framing, leave SMUGGLED as a second
        # request on the connection.
        body = b"0\r\n\r\n" + SMUGGLED
        n = b"%d" % len(body)
        probes = [
            ("CL.TE", b"POST /s HTTP/1.1\r\nHost: svc\r\nContent-Length: " + n +
             b"\r\nTransfer-Encoding: chunked\r\n\r\n" + body, (400,)),
            ("TE.CL", b"POST /s HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: chunked\r\n"
             b"Content-Length: 3\r\n\r\n" + body, (400,)),
            ("CL list mismatch", b"POST /s HTTP/1.1\r\nHost: svc\r\nContent-Length: 5, " + n +
             b"\r\n\r\n" + body, (400,)),
            ("CL.CL mismatch", b"POST /s HTTP/1.1\r\nHost: svc\r\nContent-Length: 5\r\n"
             b"Content-Length: " + n + b"\r\n\r\n" + body, (400,)),
            ("space before colon", b"POST /s HTTP/1.1\r\nHost: svc\r\nContent-Length: " + n +
             b"\r\nTransfer-Encoding : chunked\r\n\r\n" + body, (400,)),
            ("xchunked", b"POST /s HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: xchunked\r\n\r\n" +
             body, (501,)),
            ("xchunked with CL", b"POST /s HTTP/1.1\r\nHost: svc\r\nContent-Length: " + n +
             b"\r\nTransfer-Encoding: xchunked\r\n\r\n" + body, (400,)),
            ("chunked listed twice", b"POST /s HTTP/1.1\r\nHost: svc\r\n"
             b"Transfer-Encoding: chunked, chunked\r\n\r\n" + body, (501,)),
            ("chunked repeated", b"POST /s HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: chunked\r\n"
             b"Transfer-Encoding: chunked\r\n\r\n" + body, (501,)),
            ("chunked then gzip", b"POST /s HTTP/1.1\r\nHost: svc\r\n"
             b"Transfer-Encoding: chunked, gzip\r\n\r\n" + body, (501,)),
            ("identity then chunked", b"POST /s HTTP/1.1\r\nHost: svc\r\n"
             b"Transfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n\r\n" + body, (501,)),
            ("vertical tab", b"POST /s HTTP/1.1\r\nHost: svc\r\n"
             b"Transfer-Encoding: \x0bchunked\r\n\r\n" + body, (400,)),
            ("obs-fold", b"POST /s HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding:\r\n chunked\r\n\r\n" +
             body, (400,)),
            ("HTTP/1.0 chunked", b"POST /s HTTP/1.0\r\nHost: svc\r\n"
             b"Transfer-Encoding: chunked\r\n\r\n" + body, (400,)),
            ("bare LF line ending", b"POST /s HTTP/1.1\r\nHost: svc\nTransfer-Encoding: chunked\r\n"
             b"\r\n" + body, (400,)),
            ("CL in trailers", b"POST /s HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: chunked\r\n\r\n"
             b"0\r\nContent-Length: " + n + b"\r\n\r\n" + SMUGGLED, (400,)),
        ]
        for name, data, statuses in probes:
            with self.subTest(probe=name):
                r = self.assert_answered(data, statuses)
                self.assertNotIn("/smuggled", self.paths_seen())
                self.assertNotIn(b"/smuggled", r.raw)
        self.assert_still_serving()
        self.assertNotIn("/smuggled", self.paths_seen())

    # -- Host -----------------------------------------------------------------

    def test_invalid_host_is_400(self):
        for host in (b"svc x", b"user@svc", b"user:pw@svc", b"svc:abc", b"svc:", b"svc:70000",
                     b"", b"[::1", b"svc/x", b"svc\"", b"\xc3\xa9"):
            with self.subTest(host=host):
                r = self.assert_rejected_before_upstream(
                    b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
                self.assertIn(b"http.invalid_authority", r.body)
        self.assert_still_serving()

    def test_missing_and_repeated_host_are_still_400(self):
        self.assert_rejected_before_upstream(b"GET / HTTP/1.1\r\n\r\n")
        self.assert_rejected_before_upstream(b"GET / HTTP/1.1\r\nHost: svc\r\nHost: svc\r\n\r\n")

    def test_absolute_form_target_replaces_the_host_header(self):
        got = self.forwarded(b"GET http://svc:80/abs?q=1 HTTP/1.1\r\nHost: elsewhere\r\n"
                             b"Connection: close\r\n\r\n")
        self.assertEqual([v for k, v in got["headers"] if k == "host"], ["svc:80"], got)
        self.assertEqual(got["path"], "/abs?q=1")

    # -- Chunked framing --------------------------------------------------------

    CHUNKED_HEAD = b"POST /chunked-in HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: chunked\r\n\r\n"

    def test_valid_chunked_variants_are_forwarded_intact(self):
        for body in (b"A\r\n0123456789\r\n0\r\n\r\n", b"a;ext=1;q=\"x y\"\r\n0123456789\r\n0\r\n\r\n",
                     b"000a\r\n0123456789\r\n000\r\n\r\n",
                     b"5\r\n01234\r\n5\r\n56789\r\n0\r\nX-Sum: 1\r\nHost: evil\r\n\r\n"):
            with self.subTest(body=body):
                got = self.forwarded(self.CHUNKED_HEAD.replace(b"\r\n\r\n", b"\r\nConnection: close"
                                                                              b"\r\n\r\n") + body)
                self.assertEqual(got["body_len"], 10)
                self.assertTrue(got["request_chunked"])

    def test_bad_chunked_bodies_are_400_and_closed(self):
        # The head may already be upstream (bodies stream): only the answer
        # and the close are checked.
        for body in (b"zz\r\nhello\r\n0\r\n\r\n", b"5 \r\nhello\r\n0\r\n\r\n",
                     b" 5\r\nhello\r\n0\r\n\r\n", b"5;\x01\r\nhello\r\n0\r\n\r\n",
                     b"5;a b\r\nhello\r\n0\r\n\r\n", b"10000000000000000\r\nx\r\n",
                     b"5\r\nhelloXX\r\n0\r\n\r\n", b"5\r\nhello\n0\r\n\r\n",
                     b"5\nhello\n0\n\n", b"5\nhel", b"5\r\nhello\r\n0\n\n",
                     b"5\r\nhello\r\n0\r\n\n", b"5\r\nhello\r\n0\r\nX: 1\n\n",
                     b"5\r\nhello\r\n0\r\nBad trailer\r\n\r\n",
                     b"5;e=" + b"x" * 5000 + b"\r\nhello\r\n0\r\n\r\n",
                     b"5;e=" + b"x" * 5000):
            with self.subTest(body=body[:40]):
                self.assert_answered(self.CHUNKED_HEAD + body, (400,))
        self.assert_still_serving()

    def test_eof_inside_a_request_closes_at_once(self):
        # The client half-closes mid-request: nothing can complete the
        # framing, so the proxy closes (within DEADLINE_S, far below the
        # 30 s stream idle timeout), answering nothing or a 4xx.
        full = self.CHUNKED_HEAD + b"5;e=1\r\nhello\r\n0\r\nX: 1\r\n\r\n"
        cuts = sorted({1, 20, len(self.CHUNKED_HEAD) - 1, len(self.CHUNKED_HEAD),
                       len(self.CHUNKED_HEAD) + 2, len(self.CHUNKED_HEAD) + 5,
                       len(self.CHUNKED_HEAD) + 9, len(self.CHUNKED_HEAD) + 14,
                       len(self.CHUNKED_HEAD) + 17, len(self.CHUNKED_HEAD) + 20, len(full) - 1})
        for cut in cuts:
            with self.subTest(cut=cut):
                r = self.send(full[:cut], shut_wr=True)
                self.assertTrue(r.closed, r)
                if r.status is not None:
                    self.assertGreaterEqual(r.status, 400, r)
        r = self.send(b"POST /cl HTTP/1.1\r\nHost: svc\r\nContent-Length: 10\r\n\r\nabc",
                      shut_wr=True)
        self.assertTrue(r.closed, r)
        self.assert_still_serving()


# --------------------------------------------------------------------------
# A peer that stops sending mid-request is cut off by the stream idle timeout.
# --------------------------------------------------------------------------


class StalledInputTest(HardeningTestCase):
    IDLE = SHORT_IDLE

    def test_a_stalled_request_is_closed_within_the_idle_timeout(self):
        head = b"POST /stall HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: chunked\r\n\r\n"
        for name, data in (("partial head", b"POST /stall HTTP/1.1\r\nHost: s"),
                           ("head without its blank line", head[:-2]),
                           ("partial chunk line", head + b"5;e="),
                           ("partial chunk data", head + b"5\r\nhel"),
                           ("chunk data without CRLF", head + b"5\r\nhello"),
                           ("no last chunk", head + b"5\r\nhello\r\n"),
                           ("huge chunk", head + b"ffffffffffffffff\r\nabc"),
                           ("last chunk without final CRLF", head + b"0\r\n"),
                           ("unterminated trailers", head + b"0\r\nX: 1\r\n"),
                           ("short sized body", b"POST /stall HTTP/1.1\r\nHost: svc\r\n"
                                                b"Content-Length: 10\r\n\r\nabc")):
            with self.subTest(stall=name):
                r = self.send(data)
                self.assertTrue(r.closed, r)
                if r.status is not None:
                    self.assertIn(r.status, (400, 408), r)


# --------------------------------------------------------------------------
# Responses: what an upstream sends is collapsed or refused, never relayed as is.
# --------------------------------------------------------------------------


def canned(head, body=b""):
    return head + b"\r\nConnection: close\r\n\r\n" + body


class ResponseProbeTest(HardeningTestCase):
    RESPONSES = {
        "/cl-list": canned(b"HTTP/1.1 200 OK\r\nContent-Length: 3, 3", b"abc"),
        "/cl-repeated": canned(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3", b"abc"),
        "/cl-zeros": canned(b"HTTP/1.1 200 OK\r\nContent-Length: 003", b"abc"),
        "/cl-mismatch": canned(b"HTTP/1.1 200 OK\r\nContent-Length: 3, 4", b"abcd"),
        "/cl-repeated-mismatch": canned(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"
                                        b"Content-Length: 4", b"abcd"),
        "/cl-signed": canned(b"HTTP/1.1 200 OK\r\nContent-Length: +3", b"abc"),
        "/cl-and-te": canned(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"
                             b"Transfer-Encoding: chunked", b"3\r\nabc\r\n0\r\n\r\n"),
        "/204-cl": canned(b"HTTP/1.1 204 No Content\r\nContent-Length: 5", b"hello"),
        "/204-te": canned(b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked",
                          b"0\r\n\r\n"),
        "/te-xchunked": canned(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunked",
                               b"3\r\nabc\r\n0\r\n\r\n"),
    }

    @classmethod
    def make_backend(cls):
        return RawUpstream(cls.RESPONSES)

    def get(self, path):
        return self.send(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: svc\r\n"
                         b"Connection: close\r\n\r\n")

    def test_equal_content_length_values_reach_the_client_as_one(self):
        for path in ("/cl-list", "/cl-repeated", "/cl-zeros"):
            with self.subTest(path=path):
                r = self.get(path)
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.all("content-length"), ["3"], r)
                self.assertEqual(r.body, b"abc")
                self.assertTrue(r.closed, r)

    def test_bad_framing_from_upstream_is_502(self):
        for path in ("/cl-mismatch", "/cl-repeated-mismatch", "/cl-signed", "/cl-and-te",
                     "/204-cl", "/204-te", "/te-xchunked"):
            with self.subTest(path=path):
                r = self.get(path)
                self.assertEqual(r.status, 502, r)
                self.assertTrue(r.closed, r)


def set_turnout(binary):
    global TURNOUT
    TURNOUT = binary


if __name__ == "__main__":
    sys.exit(run_suite("codec_hardening_test", set_turnout))
