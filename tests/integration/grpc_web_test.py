#!/usr/bin/env python3
"""gRPC-Web clients -> turnout (envoy.filters.http.grpc_web) -> grpcio servers, end to end.

Usage: grpc_web_test.py <turnout-binary>

The clients speak gRPC-Web (grpc/doc/PROTOCOL-WEB.md) as a browser library
does, over HTTP/1.1 (http.client) and HTTP/2 (curl --http2-prior-knowledge):
length-prefixed messages in the body, binary or base64 ("text"); the
servers are the python3-grpcio echo servers of grpc_test.py behind an h2c
cluster, and a plain HTTP/1.1 origin (fake_backend) for responses that are
not gRPC. Every request has a timeout.
"""

import base64
import http.client
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


import grpc_test  # noqa: E402
from envoy_yaml import ROUTER, ROUTING_KEY, TIMEOUT_S, bootstrap, cluster  # noqa: E402
from fake_backend import FakeBackend  # noqa: E402
from turnout_process import run_suite  # noqa: E402

TURNOUT = None  # set from argv in main()

GRPC_WEB = """\
- name: envoy.filters.http.grpc_web
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.grpc_web.v3.GrpcWeb
"""

# grpc_test's routes, and one to a plain HTTP/1.1 origin.
VHOSTS = grpc_test.VHOSTS + """\
  - match: { prefix: "/test.Plain/" }
    route: { cluster: plain }
"""

WEB = "application/grpc-web+proto"
WEB_TEXT = "application/grpc-web-text"


def frame(message, flag=0):
    return struct.pack(">BI", flag, len(message)) + message


def parse_frames(body):
    """[(flag, payload)] of a gRPC-Web body; fails on a truncated message."""
    frames = []
    at = 0
    while at < len(body):
        flag, length = struct.unpack(">BI", body[at:at + 5])
        payload = body[at + 5:at + 5 + length]
        if len(payload) != length:
            raise AssertionError("truncated message at %d: %r" % (at, body))
        frames.append((flag, payload))
        at += 5 + length
    return frames


def decode_text(body):
    """A text body: base64 chunks, each padded on its own, concatenated."""
    out = b""
    for i in range(0, len(body), 4):
        out += base64.b64decode(body[i:i + 4], validate=True)
    return out


def trailers_of(frames):
    """The trailers message (flag 0x80) as a dict; it must be the last one."""
    flag, payload = frames[-1]
    if flag != 0x80:
        raise AssertionError("the last message is not the trailers: %r" % (frames,))
    lines = payload.decode().split("\r\n")
    if lines[-1] != "":
        raise AssertionError("trailers do not end with CRLF: %r" % payload)
    return dict(line.split(":", 1) for line in lines[:-1])


class GrpcWebTest(grpc_test.GrpcTestCase):
    HTTP_FILTERS = GRPC_WEB + ROUTING_KEY + grpc_test.GRPC_STATS + ROUTER
    VHOSTS = VHOSTS
    plain = None

    @classmethod
    def extra_clusters(cls):
        cls.plain = FakeBackend("plain").start()
        return [cluster("plain", [cls.plain.port])]

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        if cls.plain is not None:
            cls.plain.stop()
            cls.plain = None

    def post(self, path, body, content_type=WEB, accept=None, headers=None, conn=None):
        """One gRPC-Web call over HTTP/1.1; returns (status, headers, body)."""
        own = conn is None
        if own:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT_S)
            self.addCleanup(conn.close)
        hdrs = {"content-type": content_type, "x-grpc-web": "1"}
        if accept:
            hdrs["accept"] = accept
        hdrs.update(headers or {})
        conn.request("POST", path, body=body, headers=hdrs)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()

    # ---- HTTP/1.1, binary ----

    def test_unary_call_over_http1_carries_metadata_and_trailers_in_the_body(self):
        status, headers, body = self.post("/test.Echo/Unary", frame(b"hello"),
                                          headers={"x-client-meta": "m1"})
        self.assertEqual(status, 200)
        self.assertEqual(headers["content-type"], WEB)
        self.assertEqual(headers["x-server"], "main")
        self.assertEqual(headers["x-echo-meta"], "m1")
        self.assertEqual(headers.get("transfer-encoding"), "chunked")
        self.assertNotIn("content-length", headers)
        frames = parse_frames(body)
        self.assertEqual(frames[0], (0, b"echo:hello"))
        self.assertEqual(len(frames), 2)
        trailers = trailers_of(frames)
        self.assertEqual(trailers["grpc-status"], "0")
        self.assertEqual(trailers["x-trail"], "main")
        # The server saw a gRPC request (the grpc: {} route matched too).
        md = self.main.seen_metadata[-1]
        self.assertEqual(md.get("x-grpc-web"), "1")

    def test_server_streaming_and_a_status_after_messages(self):
        _, _, body = self.post("/test.Echo/ServerStream", frame(b"20"))
        frames = parse_frames(body)
        self.assertEqual([p for _, p in frames[:-1]], [b"msg-%d" % i for i in range(20)])
        self.assertEqual(trailers_of(frames)["grpc-status"], "0")
        _, _, body = self.post("/test.Echo/StreamFail", frame(b""))
        frames = parse_frames(body)
        self.assertEqual([p for _, p in frames[:-1]], [b"first", b"second"])
        trailers = trailers_of(frames)
        self.assertEqual(trailers["grpc-status"], "15")
        self.assertEqual(urllib.parse.unquote(trailers["grpc-message"]), "lost after two")

    def test_a_trailers_only_status_comes_in_the_headers(self):
        status, headers, body = self.post("/test.Echo/Fail", frame(b"NOT_FOUND:gone"))
        self.assertEqual(status, 200)
        self.assertEqual(headers["grpc-status"], "5")
        self.assertEqual(headers["grpc-message"], "gone")
        self.assertEqual(headers["content-type"], WEB)
        self.assertEqual(body, b"")

    def test_many_messages_up_in_one_body(self):
        parts = [b"a" * 1000, b"", b"c" * 70000, b"d"]
        _, _, body = self.post("/test.Echo/ClientStream", b"".join(frame(p) for p in parts))
        frames = parse_frames(body)
        self.assertEqual(frames[0], (0, b"4:" + b"".join(parts)))
        self.assertEqual(trailers_of(frames)["grpc-status"], "0")

    def test_calls_reuse_the_client_connection(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT_S)
        self.addCleanup(conn.close)
        for i in range(3):
            _, _, body = self.post("/test.Echo/Unary", frame(b"%d" % i), conn=conn)
            self.assertEqual(parse_frames(body)[0], (0, b"echo:%d" % i))

    # ---- text (base64) ----

    def test_text_request_and_text_response(self):
        # Two messages, each base64-encoded on its own (padding in the middle).
        body = base64.b64encode(frame(b"x")) + base64.b64encode(frame(b"yz" * 1000))
        status, headers, out = self.post("/test.Echo/ClientStream", body,
                                         content_type=WEB_TEXT, accept=WEB_TEXT)
        self.assertEqual(status, 200)
        self.assertEqual(headers["content-type"], "application/grpc-web-text+proto")
        frames = parse_frames(decode_text(out))
        self.assertEqual(frames[0], (0, b"2:x" + b"yz" * 1000))
        self.assertEqual(trailers_of(frames)["grpc-status"], "0")

    def test_text_request_with_a_binary_response(self):
        status, headers, out = self.post("/test.Echo/Unary", base64.b64encode(frame(b"t")),
                                         content_type=WEB_TEXT)
        self.assertEqual(headers["content-type"], WEB)
        self.assertEqual(parse_frames(out)[0], (0, b"echo:t"))

    def test_a_text_body_that_is_not_base64_is_refused_before_any_upstream(self):
        calls = len(self.main.seen_metadata)
        for body, details in ((b"AAAA*AAA", "invalid"), (b"AAAAAA", "bad size")):
            status, headers, out = self.post("/test.Echo/Unary", body, content_type=WEB_TEXT)
            self.assertEqual(status, 400, details)
            self.assertEqual(headers["grpc-status"], "13")
            self.assertEqual(urllib.parse.unquote(headers["grpc-message"]),
                             "Bad gRPC-web request, invalid base64 data.")
            self.assertEqual(headers["content-type"], WEB)
            self.assertEqual(headers["content-length"], "0")
            self.assertEqual(out, b"")
        self.assertEqual(len(self.main.seen_metadata), calls)

    def test_a_text_body_that_turns_bad_midway_is_refused(self):
        # Valid base64 first (the upstream call starts), then garbage: Slow
        # sends nothing until its call ends, so turnout still can answer.
        calls = len(self.main.seen_metadata)
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT_S)
        self.addCleanup(conn.close)
        conn.putrequest("POST", "/test.Echo/Slow")
        conn.putheader("content-type", WEB_TEXT)
        conn.putheader("transfer-encoding", "chunked")
        conn.endheaders()
        good = base64.b64encode(frame(b"0123456789" * 30))
        conn.send(b"%x\r\n%s\r\n" % (len(good), good))
        deadline = time.monotonic() + TIMEOUT_S
        while len(self.main.seen_metadata) == calls and time.monotonic() < deadline:
            time.sleep(0.02)
        conn.send(b"4\r\n!!!!\r\n0\r\n\r\n")
        r = conn.getresponse()
        self.assertEqual(r.status, 400)
        self.assertEqual(r.getheader("grpc-status"), "13")
        self.assertEqual(r.getheader("connection"), "close")
        self.assertEqual(r.read(), b"")
        # The upstream call had started: the server saw it, and it was reset.
        self.assertEqual(len(self.main.seen_metadata), calls + 1)

    # ---- responses that are not gRPC, local replies ----

    def test_a_response_that_is_not_grpc_becomes_a_grpc_status(self):
        body = base64.b64encode(frame(b"abc"))
        status, headers, out = self.post("/test.Plain/status/503", body, content_type=WEB_TEXT)
        self.assertEqual(status, 503)
        self.assertEqual(headers["grpc-status"], "14")
        self.assertEqual(headers["content-length"], "0")
        self.assertEqual(headers["content-type"], WEB)
        self.assertEqual(out, b"")
        # grpc-message is the origin's body: its echo of what it got, which
        # was gRPC (decoded body, no content-length, te: trailers).
        echo = json.loads(urllib.parse.unquote(headers["grpc-message"]))
        got = dict(echo["headers"])
        self.assertEqual(got["content-type"], "application/grpc")
        self.assertEqual(got["te"], "trailers")
        self.assertEqual(got["grpc-accept-encoding"], "identity,deflate,gzip")
        self.assertNotIn("content-length", got)
        self.assertTrue(echo["request_chunked"])
        self.assertEqual(echo["body_len"], len(frame(b"abc")))

    def test_local_replies_are_grpc_web_statuses(self):
        status, headers, out = self.post("/test.NoHost/Call", frame(b"x"))
        self.assertEqual((status, headers["grpc-status"], headers["grpc-message"]),
                         (200, "14", "no healthy upstream"))
        self.assertEqual(headers["content-type"], WEB)
        self.assertEqual(out, b"")
        status, headers, out = self.post("/test.Direct/Call", frame(b"x"), accept=WEB_TEXT)
        self.assertEqual((status, headers["grpc-status"], headers["grpc-message"]),
                         (200, "7", "denied: 100%25 %C3%A9 %7E"))
        self.assertEqual(headers["content-type"], "application/grpc-web-text+proto")

    # ---- the rest of the chain ----

    def test_the_routing_key_in_baggage_reaches_the_sandbox(self):
        _, headers, body = self.post("/test.Echo/Unary", frame(b"k"),
                                     headers={"baggage": "turnout-routing-key=feat-x"})
        self.assertEqual(headers["x-server"], "feat-x")
        self.assertEqual(trailers_of(parse_frames(body))["x-trail"], "feat-x")

    def test_grpc_stats_count_grpc_web_calls_as_grpc(self):
        before = self.proxy.stats()
        total = int(before.get("cluster.grpc-feat-x.grpc.total", 0))
        self.post("/test.Echo/ServerStream", frame(b"3"),
                  headers={"baggage": "turnout-routing-key=feat-x"})
        self.proxy.wait_counter("cluster.grpc-feat-x.grpc.total", total + 1)
        stats = self.proxy.stats()
        self.assertGreaterEqual(int(stats["cluster.grpc-feat-x.grpc.response_message_count"]), 3)
        self.assertGreaterEqual(int(stats["cluster.grpc-feat-x.grpc.0"]), 1)

    def test_the_grpc_web_filter_counts_each_calls_status_under_its_method(self):
        # Envoy's cluster.<name>.grpc-web.<service>.<method>.*: the status in
        # the trailers, in a trailers-only response, or in a local reply.
        prefix = "cluster.grpc.grpc-web.test.Echo."
        before = {k: int(v) for k, v in self.proxy.stats().items() if k.startswith(prefix)}
        self.post("/test.Echo/Unary", frame(b"w"))
        self.post("/test.Echo/Fail", frame(b"NOT_FOUND:gone"))
        self.proxy.wait_counter(prefix + "Unary.total", before.get(prefix + "Unary.total", 0) + 1)
        self.proxy.wait_counter(prefix + "Fail.total", before.get(prefix + "Fail.total", 0) + 1)
        stats = {k: int(v) for k, v in self.proxy.stats().items() if k.startswith(prefix)}
        for name in ("Unary.0", "Unary.success", "Fail.5", "Fail.failure"):
            self.assertEqual(stats[prefix + name], before.get(prefix + name, 0) + 1, name)
        self.assertEqual(stats.get(prefix + "Unary.failure", 0),
                         before.get(prefix + "Unary.failure", 0))
        self.post("/test.NoHost/Call", frame(b"x"))  # 14, answered by turnout
        self.proxy.wait_counter("cluster.nohost.grpc-web.test.NoHost.Call.14", 1)

    def test_native_grpc_clients_pass_unchanged(self):
        self.assertEqual(self.uu("Unary")(b"native", timeout=TIMEOUT_S), b"echo:native")

    def test_a_plain_request_passes_unchanged(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT_S)
        self.addCleanup(conn.close)
        conn.request("POST", "/test.Plain/x", body=b"{}",
                     headers={"content-type": "application/json"})
        r = conn.getresponse()
        self.assertEqual(r.status, 200)
        self.assertNotIn("grpc-status", {k.lower() for k, _ in r.getheaders()})
        echo = json.loads(r.read())
        self.assertEqual(dict(echo["headers"])["content-type"], "application/json")

    # ---- HTTP/2 downstream ----

    def test_unary_call_over_http2_has_no_http_trailers(self):
        with tempfile.TemporaryDirectory() as tmp:
            req = os.path.join(tmp, "req")
            with open(req, "wb") as f:
                f.write(frame(b"over h2"))
            out = os.path.join(tmp, "out")
            hdrs = os.path.join(tmp, "headers")
            r = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "--max-time",
                                str(TIMEOUT_S), "-o", out, "-D", hdrs,
                                "-H", "content-type: " + WEB, "--data-binary", "@" + req,
                                "http://127.0.0.1:%d/test.Echo/Unary" % self.port],
                               capture_output=True, timeout=TIMEOUT_S * 2)
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(hdrs) as f:
                head = f.read().lower()
            with open(out, "rb") as f:
                body = f.read()
        self.assertIn("http/2 200", head)
        self.assertIn("content-type: application/grpc-web+proto", head)
        # The status is in the body's trailers message, not in HTTP trailers.
        self.assertNotIn("grpc-status", head)
        frames = parse_frames(body)
        self.assertEqual(frames[0], (0, b"echo:over h2"))
        self.assertEqual(trailers_of(frames)["grpc-status"], "0")


class GrpcWebConfigTest(unittest.TestCase):
    """The filter's config is accepted by --mode validate as serve would take it."""

    def test_validate_accepts_the_filter(self):
        yaml = bootstrap(VHOSTS, [grpc_test.h2_cluster(n, [1]) for n in
                                  ("grpc", "grpc-feat-x", "nohost", "refused")] +
                         [cluster("plain", [1])],
                         http_filters=GRPC_WEB + ROUTER)
        r = subprocess.run([TURNOUT, "--mode", "validate", "--config-yaml", yaml],
                           capture_output=True, text=True, timeout=TIMEOUT_S)
        self.assertEqual(r.returncode, 0, r.stderr)
        bad = yaml.replace("grpc_web.v3.GrpcWeb\n", "grpc_web.v3.GrpcWeb\n              nope: 1\n")
        self.assertNotEqual(bad, yaml)
        r = subprocess.run([TURNOUT, "--mode", "validate", "--config-yaml", bad],
                           capture_output=True, text=True, timeout=TIMEOUT_S)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("nope", r.stderr)


def main():
    def set_binary(path):
        global TURNOUT
        TURNOUT = path
        grpc_test.TURNOUT = path
    return run_suite("grpc_web_test", set_binary)


if __name__ == "__main__":
    sys.exit(main())
