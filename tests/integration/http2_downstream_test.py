#!/usr/bin/env python3
"""Downstream HTTP/2 (h2c with prior knowledge) against the real turnout binary.

Usage: http2_downstream_test.py <turnout-binary> [unittest args]

Clients are real: curl --http2-prior-knowledge, nghttp, and python3-h2 driving
raw sockets (for what the others cannot do: many streams at once, trailers,
resets, a client that never returns window, protocol errors). The origin is
the HTTP/1.1 FakeBackend, so every request also crosses H2 -> H1 translation.
Port 0 everywhere; reads are bounded by socket deadlines.
"""

import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import time
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))

import h2.settings  # noqa: E402
import hpack  # noqa: E402

from envoy_yaml import STAT_PREFIX, bootstrap, cluster  # noqa: E402
import fake_backend  # noqa: E402
from h2_client import H2Client  # noqa: E402
from turnout_process import ProxyWithBackend, TurnoutProcess, run_suite  # noqa: E402
from upgrade_backend import UpgradeProxyCase  # noqa: E402

TURNOUT = None  # set from argv in main()

# The origin writing to a connection turnout gave up on (a reset stream, a
# flood cut off) is expected here: keep it quiet.
fake_backend._Server.handle_error = lambda self, request, client_address: None
DEADLINE_S = 10.0

ALL_TO_SVC = """\
- name: all
  domains: ["*"]
  routes:
  - match: { prefix: "/" }
    route: { cluster: svc }
"""
HCM_MARKER = "          stat_prefix: %s\n" % STAT_PREFIX


def with_hcm(yaml, extra):
    """Adds HttpConnectionManager fields (YAML at the HCM's indentation)."""
    assert HCM_MARKER in yaml
    return yaml.replace(HCM_MARKER, HCM_MARKER + extra, 1)


class Http2TestCase(ProxyWithBackend):
    HCM_EXTRA = ""

    @classmethod
    def bootstrap_yaml(cls, backend_port):
        yaml = bootstrap(ALL_TO_SVC, [cluster("svc", [backend_port])])
        return with_hcm(yaml, cls.HCM_EXTRA) if cls.HCM_EXTRA else yaml

    def client(self, **kw):
        c = H2Client(self.port, **kw)
        self.addCleanup(c.close)
        return c

    def curl(self, *args):
        return subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "--max-time", "10"] +
                              list(args), capture_output=True, timeout=20)


class AutoCodecTest(Http2TestCase):
    """codec_type AUTO (the default): h2c by its preface, HTTP/1.1 otherwise."""

    def test_curl_h2c_get_and_a_large_post_reach_the_http1_origin(self):
        r = self.curl("-w", "\n%{http_version} %{http_code}", "http://127.0.0.1:%d/get" % self.port)
        body, _, tail = r.stdout.rpartition(b"\n")
        self.assertEqual(tail, b"2 200", r)
        got = json.loads(body)
        self.assertEqual(got["method"], "GET")
        self.assertEqual(got["path"], "/get")
        hdrs = dict(got["headers"])
        self.assertEqual(hdrs.get("host"), "127.0.0.1:%d" % self.port)
        payload = os.urandom(1 << 20)
        r = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "--max-time", "10",
                            "--data-binary", "@-", "http://127.0.0.1:%d/post" % self.port],
                           input=payload, capture_output=True, timeout=20)
        got = json.loads(r.stdout)
        self.assertEqual(got["body_len"], len(payload))
        self.assertEqual(got["body_sha256"], hashlib.sha256(payload).hexdigest())
        self.assertGreaterEqual(self.proxy.counter("http.ingress.downstream_cx_http2_total"), 2)

    def test_http1_still_served_on_the_same_listener(self):
        r = subprocess.run(["curl", "-sS", "-w", "\n%{http_version} %{http_code}",
                            "http://127.0.0.1:%d/h1" % self.port], capture_output=True, timeout=20)
        self.assertTrue(r.stdout.endswith(b"\n1.1 200"), r)

    def test_an_h2c_upgrade_is_served_as_http1(self):
        # As Envoy: the Upgrade: h2c offer is dropped, the request answered
        # over HTTP/1.1, and the upgrade fields never reach the origin.
        s = socket.create_connection(("127.0.0.1", self.port), timeout=DEADLINE_S)
        self.addCleanup(s.close)
        s.sendall(b"GET /up HTTP/1.1\r\nHost: svc\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                  b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n")
        got = b""
        while b"\r\n\r\n" not in got or not got.rstrip().endswith(b"}"):
            chunk = s.recv(65536)
            self.assertTrue(chunk, got)
            got += chunk
        self.assertTrue(got.startswith(b"HTTP/1.1 200"), got)
        seen = json.loads(got.partition(b"\r\n\r\n")[2])
        names = [k for k, _ in seen["headers"]]
        self.assertNotIn("upgrade", names)
        self.assertNotIn("http2-settings", names)

    def test_many_concurrent_streams_share_one_connection(self):
        before = self.proxy.counter("http.ingress.downstream_cx_http2_total")
        c = self.client()
        sids = [c.request("/delay/50/s%d" % i) for i in range(40)]
        c.wait(lambda: all(c.done(s) for s in sids))
        for i, sid in enumerate(sids):
            s = c.streams[sid]
            self.assertIsNone(s["reset"], s)
            self.assertEqual(s["headers"][":status"], "200", s)
            self.assertEqual(s["headers"]["x-backend"], "svc")
            self.assertEqual(json.loads(s["data"])["path"], "/delay/50/s%d" % i)
        self.assertEqual(self.proxy.counter("http.ingress.downstream_cx_http2_total"), before + 1)

    def test_nghttp_multiplexes_requests(self):
        urls = ["http://127.0.0.1:%d/n%d" % (self.port, i) for i in range(5)]
        r = subprocess.run(["nghttp", "-n", "-s"] + urls, capture_output=True, timeout=20)
        self.assertEqual(r.returncode, 0, r)
        # -s prints one timing row per response: "... <code> <size> <path>".
        rows = re.findall(rb"\s(\d{3})\s+\S+\s+/n(\d)\n", r.stdout)
        self.assertEqual(sorted(rows), [(b"200", b"%d" % i) for i in range(5)], r.stdout)

    def test_request_trailers_become_a_chunked_http1_body(self):
        c = self.client()
        sid = c.request("/trailers", method="POST", body=b"0123456789",
                        trailers=[("x-checksum", "abc")])
        c.wait(lambda: c.done(sid))
        got = json.loads(c.streams[sid]["data"])
        self.assertEqual(got["body_len"], 10)
        self.assertTrue(got["request_chunked"], got)

    def test_response_body_and_status_pass_through(self):
        c = self.client()
        sid = c.request("/status/503/x")
        big = c.request("/chunked/300000/y")
        c.wait(lambda: c.done(sid) and c.done(big))
        self.assertEqual(c.streams[sid]["headers"][":status"], "503")
        self.assertEqual(c.streams[big]["data"], b"x" * 300000)
        # Connection-specific fields never reach an HTTP/2 client.
        self.assertNotIn("transfer-encoding", c.streams[big]["headers"])
        self.assertNotIn("connection", c.streams[big]["headers"])

    def test_a_response_head_goes_out_before_its_body_arrives(self):
        # Encoding only queues a response (as on HTTP/1): the head must still
        # leave when it is forwarded, not with the body 1.5 s later. Also
        # with a second stream running beside it (the writer, not the
        # stream, then sends).
        for beside in (False, True):
            c = self.client()
            other = c.request("/delay/3000/beside") if beside else None
            sid = c.request("/slow-body/1500/head-first")
            start = time.monotonic()
            c.wait(lambda: c.streams[sid]["headers"] is not None)
            head_s = time.monotonic() - start
            c.wait(lambda: c.done(sid))
            body_s = time.monotonic() - start
            self.assertEqual(c.streams[sid]["headers"][":status"], "200")
            self.assertEqual(c.streams[sid]["data"], b"hello")
            self.assertLess(head_s, 1.0, "the head waited for the body (beside=%s)" % beside)
            self.assertGreaterEqual(body_s, 1.4)
            if other is not None:
                c.wait(lambda: c.done(other))
                self.assertEqual(c.streams[other]["headers"][":status"], "200")

    def test_a_reset_stream_leaves_the_connection_serving(self):
        c = self.client()
        slow = c.request("/delay/2000/slow")
        c.conn.reset_stream(slow, error_code=8)  # CANCEL
        c.flush()
        fast = c.request("/fast")
        c.wait(lambda: c.done(fast))
        self.assertEqual(c.streams[fast]["headers"][":status"], "200")
        self.assertIsNone(c.streams[fast]["reset"])

    def test_local_replies_are_http2_responses(self):
        c = self.client()
        sid = c.request("/x", headers=[("content-length", "0")])
        c.wait(lambda: c.done(sid))
        self.assertEqual(c.streams[sid]["headers"][":status"], "200")
        # A CONNECT that no upgrade_configs enables is answered 403 by
        # turnout, as by Envoy (docs/connect.md), and nothing reaches the
        # origin. This client is raw frames: preface, empty SETTINGS,
        # HEADERS(END_STREAM|END_HEADERS).
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=DEADLINE_S)
        self.addCleanup(sock.close)
        block = hpack.Encoder().encode([(":method", "CONNECT"), (":authority", "svc:443")])
        sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00" +
                     len(block).to_bytes(3, "big") + b"\x01\x05\x00\x00\x00\x01" + block)
        decoder, buf, status = hpack.Decoder(), b"", None
        while status is None:
            while len(buf) < 9 or len(buf) < 9 + int.from_bytes(buf[:3], "big"):
                chunk = sock.recv(65536)
                self.assertTrue(chunk, "closed before the CONNECT was answered")
                buf += chunk
            n = int.from_bytes(buf[:3], "big")
            ftype, payload, buf = buf[3], buf[9:9 + n], buf[9 + n:]
            if ftype == 0x1:  # HEADERS (no padding or priority from turnout)
                status = dict(decoder.decode(payload)).get(":status")
        self.assertEqual(status, "403")
        self.assertNotIn("CONNECT", [r["method"] for r in self.backend.requests])

    def test_a_protocol_error_is_answered_with_goaway(self):
        before = self.proxy.counter("http.ingress.downstream_cx_protocol_error")
        c = self.client()
        c.wait(lambda: c.remote_settings)
        # A DATA frame on stream 0 is a connection error (RFC 9113 §6.1).
        c.sock.sendall(b"\x00\x00\x01\x00\x00\x00\x00\x00\x00x")
        try:
            c.wait(lambda: c.goaway is not None)
        except ConnectionError:
            pass
        self.assertIsNotNone(c.goaway)
        self.assertEqual(c.goaway.error_code, 1)  # PROTOCOL_ERROR
        self.proxy.wait_counter("http.ingress.downstream_cx_protocol_error", before + 1)

    def test_rapid_reset_is_answered_with_goaway_and_others_keep_being_served(self):
        # CVE-2023-44487: streams opened and reset at once, as fast as the
        # client can. nghttp2's reset-rate limit ends the connection with a
        # GOAWAY; another client on the same worker is served throughout.
        before = self.proxy.counter("http.ingress.downstream_rq_rx_reset")
        c = self.client()
        c.wait(lambda: c.remote_settings)
        sent = 0
        try:
            for i in range(20000):
                sid = c.conn.get_next_available_stream_id()
                c.conn.send_headers(sid, [(":method", "GET"), (":path", "/delay/500/x"),
                                          (":scheme", "http"), (":authority", "svc")])
                c.conn.reset_stream(sid, error_code=8)
                sent += 1
                if i % 100 == 99:
                    c.flush()
                    try:
                        c.pump_once(0.001)  # whatever turnout sent so far
                    except (TimeoutError, ConnectionError):
                        pass
                    if c.goaway is not None or c.closed:
                        break
        except (BrokenPipeError, ConnectionResetError):
            pass
        if c.goaway is None and not c.closed:
            try:
                c.wait(lambda: c.goaway is not None, deadline_s=5)
            except ConnectionError:
                pass
        self.assertTrue(c.goaway is not None or c.closed, "sent %d resets, no GOAWAY" % sent)
        self.assertLess(sent, 20000)
        other = self.client()
        sid = other.request("/after-flood")
        other.wait(lambda: other.done(sid))
        self.assertEqual(other.streams[sid]["headers"][":status"], "200")
        self.assertGreater(self.proxy.counter("http.ingress.downstream_rq_rx_reset"), before)

    def test_a_client_that_returns_no_window_gets_no_more_than_its_window(self):
        # The client never acknowledges DATA: turnout may send 65535 bytes
        # (the initial windows) and must then hold the rest.
        c = self.client()
        c.auto_ack = False
        sid = c.request("/big/1000000/z")
        c.wait(lambda: len(c.streams[sid]["data"]) >= 65535)
        c.sock.settimeout(0.5)
        try:
            c.pump_once(0.5)
        except socket.timeout:
            pass
        self.assertEqual(len(c.streams[sid]["data"]), 65535)
        self.assertFalse(c.streams[sid]["ended"])
        # Returning the window lets the rest through.
        c.auto_ack = True
        c.conn.acknowledge_received_data(65535, sid)
        c.conn.increment_flow_control_window(1 << 20)
        c.conn.increment_flow_control_window(1 << 20, sid)
        c.flush()
        c.wait(lambda: c.done(sid))
        self.assertEqual(len(c.streams[sid]["data"]), 1000000)


def frame(ftype, flags, stream_id, payload):
    return len(payload).to_bytes(3, "big") + bytes([ftype, flags]) + stream_id.to_bytes(4, "big") + payload


class FloodTest(Http2TestCase):
    """The flood classes (RFC 9113 §10.5; the 2019 and 2024 nghttp2/Envoy
    advisories): a client that sends control frames, CONTINUATIONs or empty
    DATA without end and never reads is cut off (GOAWAY or close) within
    bounded memory, and other clients keep being served."""

    PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0, b"")
    LIMIT = 3000000  # frames a flood may send before the test calls it unbounded

    def flood(self, opening, chunk):
        """Sends `opening`, then `chunk` (1000 frames) until turnout ends the
        connection, never reading what turnout answers (a client that reads
        its PING and SETTINGS acks is only chatty, and turnout keeps up with
        it, as Envoy does); returns how it ended and how many frames went out."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=DEADLINE_S)
        self.addCleanup(s.close)
        s.sendall(self.PREFACE + opening)
        s.setblocking(False)
        sent, end = 0, time.monotonic() + DEADLINE_S
        pending = b""  # what a partial send left of the current chunk: frames stay whole
        while sent < self.LIMIT and time.monotonic() < end:
            try:
                if not pending:
                    pending = chunk
                    sent += 1000
                pending = pending[s.send(pending):]
            except BlockingIOError:
                how = self.ended(s)
                if how:
                    return how, sent
                time.sleep(0.001)
            except (BrokenPipeError, ConnectionResetError):
                return "closed", sent
        return self.ended(s) or "still open", sent

    @staticmethod
    def ended(s):
        """'goaway' or 'closed' when turnout ended the connection, else None;
        peeks, so that the flood still reads nothing."""
        try:
            data = s.recv(16 << 20, socket.MSG_PEEK)
        except BlockingIOError:
            return None
        except ConnectionResetError:
            return "closed"
        if not data:
            return "closed"
        i = 0
        while i + 9 <= len(data):  # a GOAWAY frame among what came back?
            if data[i + 3] == 7:
                return "goaway"
            i += 9 + int.from_bytes(data[i:i + 3], "big")
        return None

    def check(self, opening, chunk, stat=None):
        before = self.proxy.rss_kib()
        counted = self.proxy.counter(stat) if stat else None
        how, sent = self.flood(opening, chunk)
        self.assertIn(how, ("goaway", "closed"), "after %d frames" % sent)
        self.assertLess(self.proxy.rss_kib() - before, 32 * 1024, "RSS grew by more than 32 MiB")
        c = self.client()
        sid = c.request("/after-flood")
        c.wait(lambda: c.done(sid))
        self.assertEqual(c.streams[sid]["headers"][":status"], "200")
        if stat:  # Envoy's http2.* codec stat for this flood
            self.proxy.wait_stat(stat, lambda v: v == counted + 1)
            self.assertEqual(self.proxy.counter(stat), counted + 1)

    # PING and SETTINGS floods end on nghttp2's ACK limit (http2.outbound_control_flood)
    # once turnout's output to this client backs up; how many it takes depends on
    # the socket buffers, so no stat is asserted (the codec tests check it).
    def test_ping_flood(self):
        self.check(b"", frame(6, 0, 0, b"12345678") * 1000)

    def test_settings_flood(self):
        self.check(b"", frame(4, 0, 0, b"") * 1000)

    def test_window_update_flood(self):
        self.check(b"", frame(8, 0, 0, b"\x00\x00\x00\x01") * 1000,
                   "http2.inbound_window_update_frames_flood")

    def test_priority_flood(self):
        self.check(b"", frame(2, 0, 1, b"\x00\x00\x00\x00\x0f") * 1000,
                   "http2.inbound_priority_frames_flood")

    def test_continuation_flood(self):
        block = hpack.Encoder().encode([(":method", "GET"), (":path", "/"), (":scheme", "http"),
                                        (":authority", "svc")])
        # HEADERS without END_HEADERS, then CONTINUATIONs of literal fields forever.
        self.check(frame(1, 0, 1, block), frame(9, 0, 1, b"\x40\x03abc\x03def") * 1000)

    def test_empty_data_flood(self):
        block = hpack.Encoder().encode([(":method", "POST"), (":path", "/"), (":scheme", "http"),
                                        (":authority", "svc")])
        self.check(frame(1, 4, 1, block), frame(0, 0, 1, b"") * 1000,
                   "http2.inbound_empty_frames_flood")


class CodecStatsTest(Http2TestCase):
    """Envoy's downstream HTTP/2 codec stats (http2.*) from real h2 clients."""

    def test_resets_trailers_and_active_streams_are_counted(self):
        # Missing before the first HTTP/2 connection (Envoy creates them with it).
        rx = self.proxy.counter("http2.rx_reset") or 0
        trailers = self.proxy.counter("http2.trailers") or 0
        c = self.client()
        sid = c.request("/t", method="POST", body=b"abc", trailers=[("x-trailer", "1")])
        c.wait(lambda: c.done(sid))
        self.assertEqual(self.proxy.counter("http2.trailers"), trailers + 1)
        slow = c.request("/slow", method="POST", body=b"partial", end=False)
        self.proxy.wait_stat("http2.streams_active", lambda v: v >= 1)
        c.conn.reset_stream(slow, error_code=8)  # CANCEL
        c.flush()
        self.proxy.wait_stat("http2.rx_reset", lambda v: v == rx + 1)
        c.close()
        self.proxy.wait_stat("http2.streams_active", lambda v: v == 0)
        self.assertEqual(self.proxy.counter("http2.pending_send_bytes"), 0)

    def test_oversized_headers_count_header_overflow_and_tx_reset(self):
        overflow = self.proxy.counter("http2.header_overflow") or 0
        tx = self.proxy.counter("http2.tx_reset") or 0
        c = self.client()
        # 80 KB over ten fields (turnout's limit is 60 KiB; each field stays
        # under nghttp2's own per-field bound).
        sid = c.request("/big", headers=[("x-big-%d" % i, "a" * 8000) for i in range(10)])
        c.wait(lambda: c.done(sid) or c.streams[sid]["reset"] is not None or c.closed)
        self.proxy.wait_stat("http2.header_overflow", lambda v: v == overflow + 1)
        self.proxy.wait_stat("http2.tx_reset", lambda v: v == tx + 1)

    def test_a_forbidden_header_counts_rx_messaging_error(self):
        before = self.proxy.counter("http2.rx_messaging_error") or 0
        raw = RawH2(self.port)
        self.addCleanup(raw.sock.close)
        raw.headers(1, [(":method", "GET"), (":path", "/"), (":scheme", "http"),
                        (":authority", "svc"), ("connection", "close")])
        self.assertTrue(raw.outcome(1).startswith("rst 1"))
        self.proxy.wait_stat("http2.rx_messaging_error", lambda v: v == before + 1)


class RawH2:
    """Frames by hand (python3-h2 refuses to send malformed ones)."""

    def __init__(self, port):
        self.decoder = hpack.Decoder()
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S)
        self.sock.sendall(FloodTest.PREFACE)
        self.encoder = hpack.Encoder()
        self.buf = b""
        self.block_prefix = b""  # an HPACK dynamic table size update owed (RFC 7541 §4.2)

    def headers(self, stream_id, fields, end_stream=True):
        # Literal without indexing keeps names as given (uppercase included).
        block = self.block_prefix + b"".join(b"\x00" + bytes([len(n)]) + n + bytes([len(v)]) + v
                                             for n, v in ((n.encode(), v.encode()) for n, v in fields))
        self.block_prefix = b""
        self.sock.sendall(frame(1, 0x4 | (0x1 if end_stream else 0), stream_id, block))

    def data(self, stream_id, payload, end_stream=False):
        self.sock.sendall(frame(0, 0x1 if end_stream else 0, stream_id, payload))

    def outcome(self, stream_id):
        """'rst <code>', 'goaway <code>', 'status <n>' (a response), or 'closed'."""
        decoder = self.decoder  # the connection's HPACK state, across calls
        end = time.monotonic() + DEADLINE_S
        while time.monotonic() < end:
            while len(self.buf) >= 9 and len(self.buf) >= 9 + int.from_bytes(self.buf[:3], "big"):
                n = int.from_bytes(self.buf[:3], "big")
                ftype, sid, payload = self.buf[3], int.from_bytes(self.buf[5:9], "big") & 0x7fffffff, \
                    self.buf[9:9 + n]
                self.buf = self.buf[9 + n:]
                if ftype == 3 and sid == stream_id:
                    return "rst %d" % int.from_bytes(payload[:4], "big")
                if ftype == 7:
                    return "goaway %d" % int.from_bytes(payload[4:8], "big")
                if ftype == 1 and sid == stream_id:
                    return "status %s" % dict(decoder.decode(payload)).get(":status")
                if ftype == 1:
                    decoder.decode(payload)  # keep the HPACK table in step
            chunk = self.sock.recv(65536)
            if not chunk:
                return "closed"
            self.buf += chunk
        return "nothing"

    def close(self):
        self.sock.close()


class ConformanceTest(Http2TestCase):
    """RFC 9113 rules a proxy must enforce (§8.2, §8.3, §8.1.1, §5.1, §6.9):
    each malformed request is a stream error (RST_STREAM PROTOCOL_ERROR) or
    a connection error (GOAWAY), never a response from the origin."""

    GOOD = [(":method", "GET"), (":scheme", "http"), (":path", "/c"), (":authority", "svc")]

    def raw(self):
        r = RawH2(self.port)
        self.addCleanup(r.close)
        return r

    refused_count = 0

    def assert_refused(self, fields, end_stream=True, then=None):
        # Each refused request gets a path of its own: the origin must never
        # see that path. (Counting all the origin's requests raced with an
        # earlier test's request that the origin records late, after reading
        # a body the proxy then cut short.)
        ConformanceTest.refused_count += 1
        tag = "/refused-%d" % ConformanceTest.refused_count
        fields = [(k, tag if k == ":path" else v) for k, v in fields]
        r = self.raw()
        r.headers(1, fields, end_stream)
        if then is not None:
            then(r)
        got = r.outcome(1)
        self.assertTrue(got.startswith("rst 1") or got.startswith("goaway 1"), (fields, got))
        time.sleep(0.05)  # what the proxy would have sent on has reached the origin
        self.assertNotIn(tag, [q["path"] for q in self.backend.requests], "the origin saw it")

    def test_a_well_formed_request_is_served(self):
        r = self.raw()
        r.headers(1, self.GOOD)
        self.assertEqual(r.outcome(1), "status 200")

    def test_missing_or_duplicate_pseudo_headers(self):
        self.assert_refused([f for f in self.GOOD if f[0] != ":path"])
        self.assert_refused([f for f in self.GOOD if f[0] != ":method"])
        self.assert_refused(self.GOOD + [(":path", "/again")])

    def test_a_pseudo_header_after_a_regular_one(self):
        self.assert_refused(self.GOOD[:2] + [("x-a", "1")] + self.GOOD[2:])

    def test_an_unknown_or_response_pseudo_header(self):
        self.assert_refused(self.GOOD + [(":status", "200")])
        self.assert_refused(self.GOOD + [(":foo", "bar")])

    def test_connection_specific_fields(self):
        for name, value in (("connection", "keep-alive"), ("keep-alive", "1"),
                            ("transfer-encoding", "chunked"), ("upgrade", "websocket"),
                            ("te", "gzip")):
            with self.subTest(name=name):
                self.assert_refused(self.GOOD + [(name, value)])

    def test_uppercase_field_names(self):
        self.assert_refused(self.GOOD + [("X-Upper", "1")])

    def test_content_length_that_disagrees_with_the_body(self):
        def short_body(r):
            r.data(1, b"12345", end_stream=True)
        r = self.raw()
        r.headers(1, [(":method", "POST")] + self.GOOD[1:] + [("content-length", "10")],
                  end_stream=False)
        short_body(r)
        got = r.outcome(1)
        self.assertTrue(got.startswith("rst 1") or got.startswith("goaway 1"), got)

    def test_data_on_a_closed_stream_goes_nowhere(self):
        # turnout keeps no closed streams (nghttp2's no_closed_streams, as
        # Envoy): DATA for a stream that ended is dropped unseen, or (were
        # the stream remembered) a connection error. Either way it reaches no
        # origin, and the connection serves the next stream or ends cleanly.
        # Paths of this test's own: a request an earlier test left in flight
        # (its POST body cut short) may reach the shared origin meanwhile.
        mine = ("/closed-stream", "/after")
        r = self.raw()
        r.headers(1, [(k, mine[0] if k == ":path" else v) for k, v in self.GOOD])
        self.assertEqual(r.outcome(1), "status 200")
        r.data(1, b"late", end_stream=True)
        r.headers(3, [(k, mine[1] if k == ":path" else v) for k, v in self.GOOD])
        got = r.outcome(3)
        self.assertTrue(got == "status 200" or got.startswith("goaway 5") or
                        got.startswith("goaway 1") or got == "closed", got)
        ours = [q for q in self.backend.requests if q["path"] in mine]
        self.assertTrue(ours, self.backend.requests)
        self.assertTrue(all(q["body_len"] == 0 for q in ours), ours)


class LongConnectionTest(unittest.TestCase):
    """A long-lived HTTP/2 connection does not keep its closed streams.

    nghttp2 keeps closed streams for the RFC 7540 priority tree, up to
    max_concurrent_streams of them (2^31 - 1 by default), unless told not to:
    a connection's memory then grows with every stream it ever carried. Two
    h2load runs on one connection each (turnout answers itself: a direct
    response), 5,000 then 60,000 streams: turnout's peak RSS must not grow
    with the second (it grew by about 13 MiB when the streams were kept).
    """

    VHOST = """\
- name: all
  domains: ["*"]
  routes:
  - match: { prefix: "/" }
    direct_response: { status: 200, body: { inline_string: "ok" } }
"""

    def hwm_kib(self, proxy):
        with open("/proc/%d/status" % proxy.proc.pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        raise AssertionError("no VmHWM")

    def h2load(self, port, n):
        r = subprocess.run(["h2load", "-c1", "-m10", "-n", str(n), "http://127.0.0.1:%d/" % port],
                           capture_output=True, text=True, timeout=120)
        self.assertIn("%d succeeded" % n, r.stdout, r.stdout[-800:])

    def test_sixty_thousand_streams_on_one_connection_do_not_grow_the_heap(self):
        proxy = TurnoutProcess(TURNOUT, bootstrap(self.VHOST, [cluster("svc", [1])])).start()
        self.addCleanup(proxy.stop)
        port = proxy.port("ingress")
        self.h2load(port, 5000)
        before = self.hwm_kib(proxy)
        self.h2load(port, 60000)
        grown = self.hwm_kib(proxy) - before
        self.assertLess(grown, 4 * 1024, "peak RSS grew by %d KiB over 60,000 streams" % grown)


class RunnerTrimTest(unittest.TestCase):
    """A connection keeps a coroutine (runner) per stream it ran at once,
    to serve the next batch without spawning again, and ends all but 16 of
    them a second after its last stream ended (an idle connection's
    memory). Observed through the http2 component's debug log."""

    def test_runners_beyond_sixteen_end_once_the_connection_is_idle(self):
        backend = fake_backend.FakeBackend("svc").start()
        self.addCleanup(backend.stop)
        proxy = TurnoutProcess(TURNOUT, bootstrap(ALL_TO_SVC, [cluster("svc", [backend.port])]),
                               extra_args=["--component-log-level", "http2:debug"]).start()
        self.addCleanup(proxy.stop)
        c = H2Client(proxy.port("ingress"))
        self.addCleanup(c.close)
        for burst in range(2):  # the second batch reuses the runners left
            sids = [c.request("/delay/300/burst-%d-%d" % (burst, i)) for i in range(60)]
            c.wait(lambda: all(c.done(sid) for sid in sids))
            self.assertEqual([c.streams[sid]["headers"][":status"] for sid in sids], ["200"] * 60)
        end = time.monotonic() + DEADLINE_S
        while "stream runners ended" not in proxy.log() and time.monotonic() < end:
            time.sleep(0.1)
        self.assertRegex(proxy.log(), r"idle: 44 stream runners ended, 16 kept")
        self.assertEqual(proxy.log().count("stream runners ended"), 1)
        # What is left still serves.
        sid = c.request("/after-trim")
        c.wait(lambda: c.done(sid))
        self.assertEqual(c.streams[sid]["headers"][":status"], "200")


class DrainTest(Http2TestCase):
    """Draining (POST /drain_listeners) sends GOAWAY; in-flight streams
    complete; the connection then closes."""

    def test_drain_sends_goaway_and_in_flight_streams_complete(self):
        # nghttp, not python3-h2: h2 treats a GOAWAY as the end of the
        # connection and refuses the in-flight stream's response after it.
        p = subprocess.Popen(["nghttp", "-v", "http://127.0.0.1:%d/delay/800/in-flight" % self.port],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.addCleanup(p.kill)
        deadline = time.monotonic() + DEADLINE_S
        while not any(r["path"] == "/delay/800/in-flight" for r in self.backend.requests):
            self.assertLess(time.monotonic(), deadline, "the request never reached the backend")
            time.sleep(0.01)
        status, _, _ = self.proxy.admin("POST", "/drain_listeners?graceful")
        self.assertEqual(status, 200)
        out, _ = p.communicate(timeout=DEADLINE_S)
        out = out.decode("latin-1")
        self.assertEqual(p.returncode, 0, out)
        goaway = out.index("recv GOAWAY frame")
        self.assertIn("error_code=NO_ERROR", out[goaway:goaway + 200], out)
        # The in-flight stream's response comes after the GOAWAY, whole.
        self.assertIn(":status: 200", out[goaway:], out)
        self.assertIn("/delay/800/in-flight", out[goaway:], out)


class IdleTimeoutTest(Http2TestCase):
    """The HCM's idle_timeout on HTTP/2 (Envoy's): after that long with no
    stream open, GOAWAY(NO_ERROR), then the connection closes a moment
    later (the GOAWAY's grace); an open stream holds it off."""
    HCM_EXTRA = ("          common_http_protocol_options:\n"
                 "            idle_timeout: 0.5s\n")

    def test_an_idle_connection_gets_goaway_then_is_closed(self):
        c = RawH2(self.port)
        self.addCleanup(c.close)
        start = time.monotonic()
        c.headers(1, [(":method", "GET"), (":scheme", "http"), (":path", "/delay/900/busy"),
                      (":authority", "svc")])
        self.assertEqual(c.outcome(1), "status 200")
        # The stream outlived the idle timeout without the connection going.
        self.assertGreater(time.monotonic() - start, 0.85)
        idle_from = time.monotonic()
        self.assertEqual(c.outcome(3), "goaway 0")
        self.assertGreater(time.monotonic() - idle_from, 0.3)
        self.assertEqual(c.outcome(3), "closed")
        self.assertLess(time.monotonic() - idle_from, 4)


class Http2OnlyTest(Http2TestCase):
    HCM_EXTRA = ("          codec_type: HTTP2\n"
                 "          http2_protocol_options:\n"
                 "            max_concurrent_streams: 3\n"
                 "            initial_stream_window_size: 65536\n"
                 "            initial_connection_window_size: 1048576\n"
                 "            hpack_table_size: 0\n")

    def test_connection_window_and_hpack_table_come_from_http2_protocol_options(self):
        c = self.client()
        c.wait(lambda: h2.settings.SettingCodes.HEADER_TABLE_SIZE in c.remote_settings and
               c.conn.outbound_flow_control_window > 65535)
        self.assertEqual(c.remote_settings[h2.settings.SettingCodes.HEADER_TABLE_SIZE], 0)
        # The connection window is opened with a WINDOW_UPDATE on stream 0.
        self.assertEqual(c.conn.outbound_flow_control_window, 1048576)

    def test_settings_come_from_http2_protocol_options(self):
        c = self.client()
        c.wait(lambda: h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS in c.remote_settings)
        self.assertEqual(c.remote_settings[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS], 3)
        self.assertEqual(c.remote_settings[h2.settings.SettingCodes.INITIAL_WINDOW_SIZE], 65536)
        sid = c.request("/ok")
        c.wait(lambda: c.done(sid))
        self.assertEqual(c.streams[sid]["headers"][":status"], "200")

    def test_streams_beyond_max_concurrent_streams_are_refused(self):
        r = RawH2(self.port)
        self.addCleanup(r.close)
        r.sock.sendall(frame(4, 0x1, 0, b""))  # ACK turnout's SETTINGS: its limit of 3 applies
        r.block_prefix = b"\x20"  # and its HPACK table size of 0, acknowledged
        fields = [(":method", "GET"), (":scheme", "http"), (":authority", "svc")]
        for sid in (1, 3, 5, 7, 9):
            r.headers(sid, fields + [(":path", "/delay/300/s%d" % sid)])
        outcomes = [r.outcome(sid) for sid in (1, 3, 5, 7, 9)]
        # RFC 9113 §5.1.2: a stream error (REFUSED_STREAM) or, as nghttp2 and
        # so Envoy answer once the limit was acknowledged, a connection error.
        self.assertTrue("rst 7" in outcomes or "goaway 1" in outcomes, outcomes)
        time.sleep(0.5)  # any stream let through has reached the origin by now
        seen = [q["path"] for q in self.backend.requests if q["path"].startswith("/delay/300/s")]
        self.assertLessEqual(len(seen), 3, seen)

    def test_http1_is_not_served(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=DEADLINE_S)
        self.addCleanup(s.close)
        s.sendall(b"GET / HTTP/1.1\r\nHost: svc\r\n\r\n")
        got = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        self.assertNotIn(b"HTTP/1.1 200", got)


class Http1OnlyTest(Http2TestCase):
    HCM_EXTRA = "          codec_type: HTTP1\n"

    def test_the_h2_preface_is_not_taken_for_http2(self):
        r = self.curl("http://127.0.0.1:%d/x" % self.port)
        self.assertNotEqual(r.returncode, 0, r)
        self.assertEqual(self.proxy.counter("http.ingress.downstream_cx_http2_total"), 0)


WEBSOCKET_HCM = ("          http2_protocol_options:\n"
                 "            allow_connect: true\n"
                 "          stream_idle_timeout: 2s\n"
                 "          upgrade_configs:\n"
                 "          - upgrade_type: websocket\n")


class WebSocketOverHttp2Case(UpgradeProxyCase):
    """turnout with the HCM fields HCM in front of an UpgradeEchoBackend."""

    HCM = ""

    @classmethod
    def TURNOUT_BINARY(cls):
        return TURNOUT

    @classmethod
    def bootstrap_yaml(cls, backend_port):
        return with_hcm(bootstrap(ALL_TO_SVC, [cluster("svc", [backend_port])]), cls.HCM)

    def open(self, protocol="websocket", client=None):
        c = client
        if c is None:
            c = H2Client(self.port)
            self.addCleanup(c.close)
            c.wait(lambda: h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL in c.remote_settings)
            self.assertEqual(c.remote_settings[h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL],
                             1)
        sid = c.request("/chat?room=1", method="CONNECT",
                        headers=[(":protocol", protocol), ("sec-websocket-version", "13")],
                        end=False)
        return c, sid


class WebSocketOverHttp2Test(WebSocketOverHttp2Case, unittest.TestCase):
    """RFC 8441: a WebSocket opened with an extended CONNECT on an HTTP/2
    stream reaches an HTTP/1.1 origin as an Upgrade request (Envoy's
    allow_connect). The origin answers 101 and echoes b"echo:" + each
    chunk, then b"eof:<n>" at the client's FIN."""

    HCM = WEBSOCKET_HCM

    def test_a_websocket_over_http2_reaches_an_http1_upstream(self):
        heads = len(self.backend.heads)
        c, sid = self.open()
        c.wait(lambda: c.streams[sid]["headers"] is not None or c.done(sid))
        s = c.streams[sid]
        self.assertEqual(s["headers"].get(":status"), "200", s)
        self.assertNotIn("upgrade", s["headers"])
        self.assertNotIn("connection", s["headers"])
        # The origin got an HTTP/1.1 upgrade: GET, Upgrade: websocket.
        head = self.backend.heads[heads].decode()
        self.assertTrue(head.startswith("GET /chat?room=1 HTTP/1.1\r\n"), head)
        fields = head.lower()
        self.assertIn("\r\nupgrade: websocket", fields)
        self.assertIn("\r\nconnection: upgrade", fields)
        self.assertIn("\r\nsec-websocket-version: 13", fields)
        self.assertNotIn("transfer-encoding", fields)
        # Bytes both ways, in order, several round trips.
        for i in range(3):
            msg = b"frame-%d" % i
            before = len(c.streams[sid]["data"])
            c.send_body(sid, msg, end=False)
            c.wait(lambda: len(c.streams[sid]["data"]) >= before + 5 + len(msg))
            self.assertEqual(c.streams[sid]["data"][before:], b"echo:" + msg)
        # A large message (past the stream windows) arrives whole.
        big = os.urandom(300000)
        before = len(c.streams[sid]["data"])
        c.send_body(sid, big, end=False)
        c.wait(lambda: len(c.streams[sid]["data"][before:].replace(b"echo:", b"")) >= len(big))
        self.assertEqual(c.streams[sid]["data"][before:].replace(b"echo:", b""), big)
        # END_STREAM is a FIN: the origin reports every byte, then closes,
        # which ends the stream.
        c.send_body(sid, b"", end=True)
        c.wait(lambda: c.done(sid))
        self.assertTrue(c.streams[sid]["ended"], c.streams[sid])
        sent = sum(len(b"frame-%d" % i) for i in range(3)) + len(big)
        self.assertTrue(c.streams[sid]["data"].endswith(b"eof:%d" % sent),
                        c.streams[sid]["data"][-40:])
        stats = self.proxy.stats()
        self.assertGreaterEqual(int(stats["cluster.svc.upstream_rq_101"]), 1)

    def test_two_tunnels_share_one_connection(self):
        c, first = self.open()
        _, second = self.open(client=c)
        c.wait(lambda: c.streams[first]["headers"] is not None and
               c.streams[second]["headers"] is not None)
        c.send_body(second, b"two", end=False)
        c.send_body(first, b"one", end=False)
        c.wait(lambda: b"echo:one" in c.streams[first]["data"] and
               b"echo:two" in c.streams[second]["data"])
        self.assertEqual(c.streams[first]["data"], b"echo:one")
        self.assertEqual(c.streams[second]["data"], b"echo:two")
        # One ends; the other still carries bytes.
        c.send_body(first, b"", end=True)
        c.wait(lambda: c.done(first))
        c.send_body(second, b"more", end=False)
        c.wait(lambda: b"echo:more" in c.streams[second]["data"])

    def test_a_reset_stream_closes_the_upstream(self):
        c, sid = self.open()
        c.wait(lambda: c.streams[sid]["headers"] is not None)
        c.conn.reset_stream(sid)
        c.flush()
        self.proxy.wait_stat("http.ingress.downstream_rq_active", lambda v: int(v) == 0)

    def test_an_idle_tunnel_is_closed_by_the_stream_idle_timeout(self):
        c, sid = self.open()
        c.wait(lambda: c.streams[sid]["headers"] is not None)
        start = time.monotonic()
        c.wait(lambda: c.done(sid), deadline_s=8)
        self.assertGreaterEqual(time.monotonic() - start, 1.5)
        self.assertIsNotNone(c.streams[sid]["reset"], c.streams[sid])
        self.proxy.wait_counter("http.ingress.downstream_rq_idle_timeout", 1)

    def test_an_upgrade_the_route_does_not_allow_is_refused(self):
        c, sid = self.open(protocol="h2c-nonsense")
        c.wait(lambda: c.done(sid))
        self.assertIsNotNone(c.streams[sid]["headers"], c.streams[sid])
        self.assertEqual(c.streams[sid]["headers"][":status"], "403")


class WebSocketOverHttp2OffTest(WebSocketOverHttp2Case, unittest.TestCase):
    """Without allow_connect the setting is not sent and :protocol is refused (nghttp2)."""

    HCM = ("          upgrade_configs:\n"
           "          - upgrade_type: websocket\n")

    def test_no_extended_connect_without_allow_connect(self):
        c = H2Client(self.port)
        self.addCleanup(c.close)
        c.wait(lambda: h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS in c.remote_settings)
        self.assertNotIn(h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL, c.remote_settings)
        heads = len(self.backend.heads)
        sid = c.request("/chat", method="CONNECT", headers=[(":protocol", "websocket")],
                        end=False)
        c.wait(lambda: c.done(sid))
        self.assertIsNotNone(c.streams[sid]["reset"], c.streams[sid])
        self.assertEqual(len(self.backend.heads), heads)


class ConfigTest(unittest.TestCase):
    def validate(self, yaml):
        return subprocess.run([TURNOUT, "--mode", "validate", "--config-yaml", yaml],
                              capture_output=True, text=True, timeout=20)

    def validate_hcm(self, http2_options):
        return self.validate(with_hcm(bootstrap(ALL_TO_SVC, [cluster("svc", [1])]),
                                      "          http2_protocol_options:\n"
                                      "            %s\n" % http2_options))

    def test_an_out_of_range_window_names_its_field(self):
        r = self.validate_hcm("initial_stream_window_size: 100")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("http2_protocol_options.initial_stream_window_size", r.stdout + r.stderr)

    def test_an_unsupported_http2_option_names_its_field(self):
        r = self.validate_hcm("allow_metadata: true")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("http2_protocol_options.allow_metadata", r.stdout + r.stderr)

    def test_allow_connect_is_taken_on_a_listener_and_a_cluster(self):
        # Downstream it lets WebSockets come over HTTP/2; a cluster
        # advertises it as Envoy's does (http2_upstream_test's UpgradeTest).
        r = self.validate_hcm("allow_connect: true")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.validate(bootstrap(ALL_TO_SVC, [cluster("svc", [1]) +
                                                 "  http2_protocol_options: {allow_connect: true}\n"]))
        self.assertEqual(r.returncode, 0, r.stderr)


def set_turnout(binary):
    global TURNOUT
    TURNOUT = binary


if __name__ == "__main__":
    sys.exit(run_suite("http2_downstream_test", set_turnout))
