#!/usr/bin/env python3
"""grpcio clients -> turnout (h2c) -> grpcio servers (h2c upstream cluster), end to end.

Usage: grpc_test.py <turnout-binary>

The servers are python3-grpcio servers with generic (bytes in, bytes out)
handlers on 127.0.0.1 port 0, so no protoc is needed; the clients are
grpcio channels to turnout's listener (h2c by prior knowledge, which the
default AUTO codec detects). Every call has a deadline.
"""

import hashlib
import os
import socket
import struct
import sys
import threading
import time
import unittest
from concurrent import futures

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))

import grpc  # noqa: E402

from envoy_yaml import ROUTER, ROUTING_KEY, TIMEOUT_S, bootstrap  # noqa: E402
from turnout_process import TurnoutProcess, run_suite  # noqa: E402

TURNOUT = None  # set from argv in main()
SERVICE = "test.Echo"
BIG = 3 * 1024 * 1024 + 17  # a few MiB, not a multiple of any frame size
CHANNEL_OPTIONS = [("grpc.max_receive_message_length", -1),
                   ("grpc.max_send_message_length", -1),
                   ("grpc.enable_http_proxy", 0),
                   ("grpc.enable_retries", 0)]

VHOSTS = """\
- name: all
  domains: ["*"]
  routes:
  - match:
      prefix: "/"
      headers:
      - name: x-turnout-routing-key
        string_match: { exact: feat-x }
    route: { cluster: grpc-feat-x }
  - match: { path: "/test.Echo/Flaky" }
    route:
      cluster: grpc
      retry_policy: { retry_on: unavailable, num_retries: 2 }
  - match: { path: "/test.Echo/FlakyInternal" }
    route:
      cluster: grpc
      retry_policy: { retry_on: "cancelled,resource-exhausted", num_retries: 2 }
  - match: { path: "/test.Echo/Slow" }
    route: { cluster: grpc, timeout: 0.3s }
  - match: { path: "/test.Echo/SlowCapped" }
    route:
      cluster: grpc
      timeout: 30s
      max_stream_duration: { grpc_timeout_header_max: 0.3s }
  - match: { prefix: "/test.Echo/", grpc: {} }
    route: { cluster: grpc }
  - match: { prefix: "/test.Echo/" }
    direct_response: { status: 418, body: { inline_string: "not a gRPC request" } }
  - match: { prefix: "/test.NoHost/" }
    route: { cluster: nohost }
  - match: { prefix: "/test.Refused/" }
    route: { cluster: refused }
  - match: { prefix: "/test.Direct/" }
    direct_response: { status: 403, body: { inline_string: "denied: 100% \u00e9 ~" } }
"""


def h2_cluster(name, ports):
    """A STATIC h2c cluster; no ports: no endpoint at all (no healthy upstream)."""
    if ports:
        endpoints = "    - lb_endpoints:\n" + "".join(
            "      - endpoint: { address: { socket_address: { address: 127.0.0.1, "
            "port_value: %d } } }\n" % p for p in ports)
    else:
        endpoints = "    []\n"
    return ("- name: %s\n"
            "  connect_timeout: 1s\n"
            "  type: STATIC\n"
            "  typed_extension_protocol_options:\n"
            "    envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n"
            "      \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n"
            "      explicit_http_config:\n"
            "        http2_protocol_options: {}\n"
            "  load_assignment:\n"
            "    cluster_name: %s\n"
            "    endpoints:\n%s") % (name, name, endpoints)


FLOOD_MESSAGE = 64 * 1024


def flood_bytes(n):
    """n bytes that differ from message to message (a SHA-256 counter stream)."""
    block = b"".join(hashlib.sha256(struct.pack("<Q", i)).digest() for i in range(2048))
    return (block * (n // len(block) + 1))[:n]


class EchoServer:
    """A grpcio server on 127.0.0.1:0 whose test.Echo methods take and return raw bytes.

    Every response carries initial metadata x-server: <name> and echoes the
    request's x-client-meta as initial metadata x-echo-meta; every OK call ends
    with trailing metadata x-trail: <name>.
    """

    def __init__(self, name):
        self.name = name
        self.seen_metadata = []  # one dict per call, in arrival order
        self.server = None
        self.port = None
        self.lock = threading.Lock()
        self.flaky_calls = {}  # request body -> calls seen

    def _begin(self, context):
        md = dict(context.invocation_metadata())
        self.seen_metadata.append(md)
        initial = [("x-server", self.name)]
        if "x-client-meta" in md:
            initial.append(("x-echo-meta", md["x-client-meta"]))
        context.send_initial_metadata(initial)
        context.set_trailing_metadata([("x-trail", self.name)])

    def unary(self, request, context):
        self._begin(context)
        return b"echo:" + request

    def big(self, request, context):
        # request: the response size in decimal; answers that many bytes of a pattern.
        self._begin(context)
        n = int(request.decode())
        return (b"0123456789abcdef" * (n // 16 + 1))[:n]

    def fail(self, request, context):
        # request: "<code name>:<details>"; the status goes back with no message.
        md = dict(context.invocation_metadata())
        self.seen_metadata.append(md)
        code, _, details = request.decode().partition(":")
        context.set_trailing_metadata([("x-fail-trail", "yes")])
        context.abort(getattr(grpc.StatusCode, code), details)

    def flaky(self, request, context):
        # The first call with a given body fails UNAVAILABLE (trailers-only); later ones answer.
        md = dict(context.invocation_metadata())
        self.seen_metadata.append(md)
        with self.lock:
            n = self.flaky_calls.get(request, 0)
            self.flaky_calls[request] = n + 1
        if n == 0:
            context.abort(grpc.StatusCode.UNAVAILABLE, "try again")
        return b"attempt-%d" % (n + 1)

    def slow(self, request, context):
        # Answers only when the call ends (turnout's route timeout cancels it);
        # sends no headers before, so that turnout can still answer itself.
        self.seen_metadata.append(dict(context.invocation_metadata()))
        ended = threading.Event()
        context.add_callback(ended.set)
        ended.wait(TIMEOUT_S)
        return b"too late"

    def server_stream(self, request, context):
        # request: "<count>"; yields count messages, then an OK status.
        self._begin(context)
        for i in range(int(request.decode())):
            yield b"msg-%d" % i

    def stream_fail(self, request, context):
        # Two messages, then DATA_LOSS in the trailers (not trailers-only).
        self._begin(context)
        yield b"first"
        yield b"second"
        context.abort(grpc.StatusCode.DATA_LOSS, "lost after two")

    def flood(self, request, context):
        # request: "<bytes>"; that many bytes of flood_bytes() in 64 KiB messages.
        self._begin(context)
        n = int(request.decode())
        data = flood_bytes(n)
        for i in range(0, n, FLOOD_MESSAGE):
            yield data[i:i + FLOOD_MESSAGE]

    def client_stream(self, request_iterator, context):
        self._begin(context)
        parts = list(request_iterator)
        return b"%d:" % len(parts) + b"".join(parts)

    def bidi(self, request_iterator, context):
        self._begin(context)
        for req in request_iterator:
            yield b"re:" + req

    def start(self):
        handlers = {
            "Unary": grpc.unary_unary_rpc_method_handler(self.unary),
            "Big": grpc.unary_unary_rpc_method_handler(self.big),
            "Fail": grpc.unary_unary_rpc_method_handler(self.fail),
            "Slow": grpc.unary_unary_rpc_method_handler(self.slow),
            "SlowCapped": grpc.unary_unary_rpc_method_handler(self.slow),
            "Flaky": grpc.unary_unary_rpc_method_handler(self.flaky),
            "FlakyInternal": grpc.unary_unary_rpc_method_handler(self.flaky),
            "FlakyNoRetry": grpc.unary_unary_rpc_method_handler(self.flaky),
            "ServerStream": grpc.unary_stream_rpc_method_handler(self.server_stream),
            "Flood": grpc.unary_stream_rpc_method_handler(self.flood),
            "StreamFail": grpc.unary_stream_rpc_method_handler(self.stream_fail),
            "ClientStream": grpc.stream_unary_rpc_method_handler(self.client_stream),
            "Bidi": grpc.stream_stream_rpc_method_handler(self.bidi),
        }
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=8),
            handlers=[grpc.method_handlers_generic_handler(SERVICE, handlers)],
            options=CHANNEL_OPTIONS[:2])
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        if not self.port:
            raise RuntimeError("grpc server could not bind")
        self.server.start()
        return self

    def stop(self):
        if self.server is not None:
            self.server.stop(grace=None).wait(TIMEOUT_S)
            self.server = None


GRPC_STATS = """\
- name: envoy.filters.http.grpc_stats
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.grpc_stats.v3.FilterConfig
    stats_for_all_methods: false
    enable_upstream_stats: true
"""


class GrpcTestCase(unittest.TestCase):
    proxy = None
    main = None
    sandbox = None
    HTTP_FILTERS = ROUTING_KEY + ROUTER
    VHOSTS = VHOSTS

    @classmethod
    def extra_clusters(cls):
        """Clusters a subclass adds (it starts their origins and stops them in tearDownClass)."""
        return []

    @classmethod
    def setUpClass(cls):
        try:
            cls.main = EchoServer("main").start()
            cls.sandbox = EchoServer("feat-x").start()
            yaml = bootstrap(cls.VHOSTS,
                             [h2_cluster("grpc", [cls.main.port]),
                              h2_cluster("grpc-feat-x", [cls.sandbox.port]),
                              h2_cluster("nohost", []),
                              h2_cluster("refused", [1])] + cls.extra_clusters(),
                             http_filters=cls.HTTP_FILTERS)
            cls.proxy = TurnoutProcess(TURNOUT, yaml).start()
        except Exception:
            cls.tearDownClass()
            raise
        cls.port = cls.proxy.port("ingress")

    @classmethod
    def tearDownClass(cls):
        for attr in ("proxy",):
            p = getattr(cls, attr)
            if p is not None:
                p.stop()
                setattr(cls, attr, None)
        for attr in ("main", "sandbox"):
            s = getattr(cls, attr)
            if s is not None:
                s.stop()
                setattr(cls, attr, None)

    def setUp(self):
        self.channel = grpc.insecure_channel("127.0.0.1:%d" % self.port, options=CHANNEL_OPTIONS)
        self.addCleanup(self.channel.close)

    def uu(self, method, service=SERVICE):
        return self.channel.unary_unary("/%s/%s" % (service, method))

    def us(self, method):
        return self.channel.unary_stream("/%s/%s" % (SERVICE, method))

    def su(self, method):
        return self.channel.stream_unary("/%s/%s" % (SERVICE, method))

    def ss(self, method):
        return self.channel.stream_stream("/%s/%s" % (SERVICE, method))

    def log(self):
        return self.proxy.log() if self.proxy is not None else ""


class ProxiedCallsTest(GrpcTestCase):
    """The four call shapes, metadata both ways, statuses and big messages through turnout."""

    def test_unary_call_carries_metadata_both_ways(self):
        resp, call = self.uu("Unary").with_call(
            b"hello", timeout=TIMEOUT_S, metadata=[("x-client-meta", "from-client")])
        self.assertEqual(resp, b"echo:hello")
        self.assertEqual(call.code(), grpc.StatusCode.OK)
        initial = dict(call.initial_metadata())
        self.assertEqual(initial.get("x-server"), "main")
        self.assertEqual(initial.get("x-echo-meta"), "from-client")
        self.assertEqual(dict(call.trailing_metadata()).get("x-trail"), "main")
        seen = self.main.seen_metadata[-1]
        # The upstream saw a gRPC request: te: trailers and the gRPC content type survive.
        self.assertEqual(seen.get("x-client-meta"), "from-client")

    def test_server_streaming_call(self):
        call = self.us("ServerStream")(b"50", timeout=TIMEOUT_S)
        got = list(call)
        self.assertEqual(got, [b"msg-%d" % i for i in range(50)])
        self.assertEqual(call.code(), grpc.StatusCode.OK)
        self.assertEqual(dict(call.trailing_metadata()).get("x-trail"), "main")

    def test_client_streaming_call(self):
        parts = [b"a" * 1000, b"b" * 10, b"", b"c" * 70000]
        resp, call = self.su("ClientStream").with_call(iter(parts), timeout=TIMEOUT_S)
        self.assertEqual(resp, b"4:" + b"".join(parts))
        self.assertEqual(call.code(), grpc.StatusCode.OK)

    def test_bidirectional_call_interleaves(self):
        import queue
        q = queue.Queue()

        def requests():
            for i in range(20):
                yield b"m%d" % i
                # The next request goes only once its echo came back: a true ping-pong.
                q.get(timeout=TIMEOUT_S)

        call = self.ss("Bidi")(requests(), timeout=TIMEOUT_S)
        got = []
        for resp in call:
            got.append(resp)
            q.put(None)
        self.assertEqual(got, [b"re:m%d" % i for i in range(20)])
        self.assertEqual(call.code(), grpc.StatusCode.OK)

    def test_non_ok_status_details_and_trailing_metadata_reach_the_client(self):
        with self.assertRaises(grpc.RpcError) as cm:
            self.uu("Fail")(b"NOT_FOUND:no such thing \xc3\xa9 100%".decode("utf-8").encode(),
                            timeout=TIMEOUT_S)
        err = cm.exception
        self.assertEqual(err.code(), grpc.StatusCode.NOT_FOUND, self.log())
        self.assertEqual(err.details(), "no such thing \u00e9 100%")
        self.assertEqual(dict(err.trailing_metadata()).get("x-fail-trail"), "yes")

    def test_every_non_ok_code_passes_unchanged(self):
        for code in ("INVALID_ARGUMENT", "PERMISSION_DENIED", "UNAVAILABLE", "INTERNAL",
                     "RESOURCE_EXHAUSTED", "UNAUTHENTICATED", "ABORTED"):
            with self.subTest(code=code):
                with self.assertRaises(grpc.RpcError) as cm:
                    self.uu("Fail")(("%s:details of %s" % (code, code)).encode(), timeout=TIMEOUT_S)
                self.assertEqual(cm.exception.code(), getattr(grpc.StatusCode, code))
                self.assertEqual(cm.exception.details(), "details of %s" % code)

    def test_status_after_messages_in_real_trailers(self):
        call = self.us("StreamFail")(b"", timeout=TIMEOUT_S)
        got = []
        with self.assertRaises(grpc.RpcError) as cm:
            for m in call:
                got.append(m)
        self.assertEqual(got, [b"first", b"second"])
        self.assertEqual(cm.exception.code(), grpc.StatusCode.DATA_LOSS)
        self.assertEqual(cm.exception.details(), "lost after two")

    def test_large_messages_both_ways(self):
        payload = bytes(range(256)) * (BIG // 256) + b"tail"
        resp = self.uu("Unary")(payload, timeout=TIMEOUT_S * 2)
        self.assertEqual(len(resp), len(payload) + 5)
        self.assertEqual(resp, b"echo:" + payload)
        resp = self.uu("Big")(str(BIG).encode(), timeout=TIMEOUT_S * 2)
        self.assertEqual(len(resp), BIG)
        self.assertEqual(resp, (b"0123456789abcdef" * (BIG // 16 + 1))[:BIG])

    def test_large_bidirectional_stream(self):
        chunk = b"x" * (1024 * 1024)
        call = self.ss("Bidi")(iter([chunk] * 4), timeout=TIMEOUT_S * 2)
        got = list(call)
        self.assertEqual(len(got), 4)
        self.assertTrue(all(g == b"re:" + chunk for g in got))

    def test_many_concurrent_calls_on_one_channel(self):
        fs = [self.uu("Unary").future(b"c%d" % i, timeout=TIMEOUT_S) for i in range(64)]
        self.assertEqual([f.result() for f in fs], [b"echo:c%d" % i for i in range(64)])

    def test_baggage_routing_key_in_metadata_reaches_the_sandbox_server(self):
        resp, call = self.uu("Unary").with_call(
            b"fork", timeout=TIMEOUT_S, metadata=[("baggage", "turnout-routing-key=feat-x")])
        self.assertEqual(resp, b"echo:fork")
        self.assertEqual(dict(call.initial_metadata()).get("x-server"), "feat-x")
        self.assertEqual(self.sandbox.seen_metadata[-1].get("baggage"),
                         "turnout-routing-key=feat-x")
        # Without the key the same method goes to the main server.
        _, call = self.uu("Unary").with_call(b"main", timeout=TIMEOUT_S)
        self.assertEqual(dict(call.initial_metadata()).get("x-server"), "main")


class RetryTest(GrpcTestCase):
    """retry_on's gRPC conditions retry a trailers-only grpc-status from the upstream."""

    def test_unavailable_is_retried_when_the_route_says_so(self):
        resp = self.uu("Flaky")(b"retry-me", timeout=TIMEOUT_S)
        self.assertEqual(resp, b"attempt-2", self.log())
        self.assertEqual(self.main.flaky_calls[b"retry-me"], 2)

    def test_unavailable_is_not_retried_without_its_condition(self):
        with self.assertRaises(grpc.RpcError) as cm:
            self.uu("FlakyInternal")(b"other-conditions", timeout=TIMEOUT_S)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
        self.assertEqual(cm.exception.details(), "try again")
        self.assertEqual(self.main.flaky_calls[b"other-conditions"], 1)

    def test_unavailable_is_not_retried_without_a_retry_policy(self):
        with self.assertRaises(grpc.RpcError) as cm:
            self.uu("FlakyNoRetry")(b"no-policy", timeout=TIMEOUT_S)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
        self.assertEqual(self.main.flaky_calls[b"no-policy"], 1)


class LocalReplyTest(GrpcTestCase):
    """Replies turnout answers itself reach gRPC clients as gRPC statuses (Envoy's mapping)."""

    def test_unrouted_method_is_unimplemented(self):
        with self.assertRaises(grpc.RpcError) as cm:
            self.uu("Method", service="other.Service")(b"x", timeout=TIMEOUT_S)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNIMPLEMENTED, self.log())

    def raw_h2_call(self, path):
        """One gRPC-shaped request over a raw h2c socket; returns (events of the stream)."""
        import socket
        import h2.config
        import h2.connection
        import h2.events
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT_S)
        self.addCleanup(sock.close)
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        conn.send_headers(1, [(":method", "POST"), (":scheme", "http"), (":path", path),
                              (":authority", "svc"), ("content-type", "application/grpc"),
                              ("te", "trailers")])
        conn.send_data(1, b"\x00\x00\x00\x00\x01x", end_stream=True)
        sock.sendall(conn.data_to_send())
        events = []
        while not any(isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset))
                      for e in events):
            data = sock.recv(65536)
            if not data:
                raise AssertionError("EOF before the stream ended: %r" % events)
            for e in conn.receive_data(data):
                if getattr(e, "stream_id", None) == 1:
                    events.append(e)
            sock.sendall(conn.data_to_send())
        return events

    def test_local_replies_are_one_trailers_only_headers_frame(self):
        import h2.events
        events = self.raw_h2_call("/test.NoHost/Call")
        self.assertIsInstance(events[0], h2.events.ResponseReceived, events)
        self.assertIsNotNone(events[0].stream_ended, events)  # END_STREAM on the HEADERS
        self.assertEqual(len([e for e in events if isinstance(e, h2.events.DataReceived)]), 0)
        headers = {k.decode(): v.decode() for k, v in events[0].headers}
        self.assertEqual(headers[":status"], "200")
        self.assertEqual(headers["content-type"], "application/grpc")
        self.assertEqual(headers["grpc-status"], "14")
        self.assertEqual(headers["grpc-message"], "no healthy upstream")
        self.assertNotIn("content-length", headers)
        events = self.raw_h2_call("/other.Service/Method")
        headers = {k.decode(): v.decode() for k, v in events[0].headers}
        self.assertEqual((headers[":status"], headers["grpc-status"]), ("200", "12"))
        self.assertNotIn("grpc-message", headers)  # a route miss has no body text

    def test_no_healthy_upstream_is_unavailable_with_envoys_text(self):
        with self.assertRaises(grpc.RpcError) as cm:
            self.uu("Call", service="test.NoHost")(b"x", timeout=TIMEOUT_S)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE, self.log())
        self.assertEqual(cm.exception.details(), "no healthy upstream")

    def test_connect_failure_is_unavailable_with_envoys_text(self):
        with self.assertRaises(grpc.RpcError) as cm:
            self.uu("Call", service="test.Refused")(b"x", timeout=TIMEOUT_S)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE, self.log())
        self.assertEqual(cm.exception.details(),
                         "upstream connect error or disconnect/reset before headers. "
                         "reset reason: connection failure")

    def test_upstream_timeout_is_unavailable(self):
        with self.assertRaises(grpc.RpcError) as cm:
            self.uu("Slow")(b"x", timeout=TIMEOUT_S)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE, self.log())
        self.assertEqual(cm.exception.details(), "upstream request timeout")

    def test_grpc_timeout_header_max_caps_the_clients_deadline(self):
        # The client allows 5 s (grpc-timeout ~5S) on a route whose timeout is
        # 30 s; grpc_timeout_header_max 0.3 s caps the stream's duration, and
        # turnout answers first, as Envoy: DEADLINE_EXCEEDED with its text.
        import time
        start = time.monotonic()
        with self.assertRaises(grpc.RpcError) as cm:
            self.uu("SlowCapped")(b"x", timeout=TIMEOUT_S)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED, self.log())
        self.assertEqual(cm.exception.details(), "downstream duration timeout")
        self.assertLess(time.monotonic() - start, TIMEOUT_S / 2)

    def test_direct_response_maps_its_status_and_percent_encodes_its_body(self):
        # 403 -> PERMISSION_DENIED; the body's '%', non-ASCII and '~' are
        # percent-encoded on the wire and decoded by the client.
        with self.assertRaises(grpc.RpcError) as cm:
            self.uu("Any", service="test.Direct")(b"x", timeout=TIMEOUT_S)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.PERMISSION_DENIED, self.log())
        self.assertEqual(cm.exception.details(), "denied: 100% \u00e9 ~")

    def test_plain_http_requests_get_the_plain_reply(self):
        # The same direct response to a non-gRPC request stays HTTP: 403 and its body.
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT_S)
        self.addCleanup(conn.close)
        conn.request("POST", "/test.Direct/Any", body=b"x",
                     headers={"content-type": "application/grpc-web"})
        r = conn.getresponse()
        self.assertEqual(r.status, 403)
        self.assertEqual(r.read(), "denied: 100% \u00e9 ~".encode())
        self.assertIsNone(r.getheader("grpc-status"))


class GrpcMatchTest(GrpcTestCase):
    """match: {grpc: {}} takes gRPC requests only; others fall to the next route."""

    def test_grpc_requests_match_the_grpc_route(self):
        self.assertEqual(self.uu("Unary")(b"m", timeout=TIMEOUT_S), b"echo:m")

    def test_a_plain_request_to_the_same_path_skips_the_grpc_route(self):
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT_S)
        self.addCleanup(conn.close)
        conn.request("POST", "/test.Echo/Unary", body=b"m",
                     headers={"content-type": "application/json"})
        r = conn.getresponse()
        self.assertEqual(r.status, 418)
        self.assertEqual(r.read(), b"not a gRPC request")


class GrpcStatsTest(GrpcTestCase):
    """envoy.filters.http.grpc_stats: cluster.<name>.grpc.* per call, created at first use."""

    HTTP_FILTERS = ROUTING_KEY + GRPC_STATS + ROUTER

    def grpc_stats(self, cluster):
        prefix = "cluster.%s.grpc." % cluster
        return {k[len(prefix):]: v for k, v in self.proxy.stats().items() if k.startswith(prefix)}

    def wait_total(self, cluster, total):
        self.proxy.wait_counter("cluster.%s.grpc.total" % cluster, total)
        return {k: int(v) for k, v in self.grpc_stats(cluster).items() if k != "upstream_rq_time"}

    def test_calls_count_their_status_and_messages_once_the_first_one_ended(self):
        # Nothing before the first call, as Envoy creates them at its end;
        # http2.* of the h2 cluster neither, before its first connection.
        self.assertEqual(self.grpc_stats("grpc"), {})
        self.assertFalse("cluster.grpc.http2.rx_reset" in self.proxy.stats())
        self.assertEqual(self.uu("Unary")(b"hello", timeout=TIMEOUT_S), b"echo:hello")
        self.assertEqual(self.wait_total("grpc", 1),
                         {"0": 1, "success": 1, "total": 1,
                          "request_message_count": 1, "response_message_count": 1})
        self.assertTrue("cluster.grpc.http2.rx_reset" in self.proxy.stats())
        # A status the server sends with no message: trailers-only.
        with self.assertRaises(grpc.RpcError):
            self.uu("Fail")(b"NOT_FOUND:gone", timeout=TIMEOUT_S)
        # Two messages, then DATA_LOSS in real trailers.
        call = self.us("StreamFail")(b"", timeout=TIMEOUT_S)
        with self.assertRaises(grpc.RpcError):
            list(call)
        # 50 messages down, 4 up.
        self.assertEqual(len(list(self.us("ServerStream")(b"50", timeout=TIMEOUT_S))), 50)
        parts = [b"a" * 1000, b"", b"c" * 70000, b"d"]
        self.assertTrue(self.su("ClientStream")(iter(parts), timeout=TIMEOUT_S).startswith(b"4:"))
        got = self.wait_total("grpc", 5)
        self.assertEqual(got, {"0": 3, "5": 1, "15": 1, "success": 3, "failure": 2, "total": 5,
                               "request_message_count": 1 + 1 + 1 + 1 + 4,
                               "response_message_count": 1 + 2 + 50 + 1}, got)

    def test_local_replies_count_under_the_route_target_cluster(self):
        with self.assertRaises(grpc.RpcError) as cm:
            self.uu("Call", service="test.NoHost")(b"x", timeout=TIMEOUT_S)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
        got = self.wait_total("nohost", 1)
        self.assertEqual((got["14"], got["failure"], got["total"]), (1, 1, 1), got)
        self.assertNotIn("response_message_count", got)

    def test_upstream_time_is_recorded_with_enable_upstream_stats(self):
        self.assertEqual(self.uu("Unary")(b"t", timeout=TIMEOUT_S), b"echo:t")
        self.proxy.wait_counter("cluster.grpc.grpc.total", 1)
        self.assertIn("upstream_rq_time", self.grpc_stats("grpc"))

    def test_a_plain_request_and_a_non_service_path_are_not_counted(self):
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT_S)
        self.addCleanup(conn.close)
        conn.request("POST", "/test.Echo/Unary", body=b"m",
                     headers={"content-type": "application/json"})
        self.assertEqual(conn.getresponse().status, 418)
        self.assertEqual(self.grpc_stats("grpc"), {})


class GrpcMethodStatsTest(GrpcTestCase):
    """individual_method_stats_allowlist: a listed method's calls count in
    cluster.<name>.grpc.<service>.<method>.*, every other call in the
    cluster's grpc.*, as Envoy's; the stats appear with the first call."""

    HTTP_FILTERS = ROUTING_KEY + GRPC_STATS.replace(
        "    stats_for_all_methods: false\n",
        "    individual_method_stats_allowlist:\n"
        "      services: [{name: test.Echo, method_names: [Unary, ServerStream]}]\n") + ROUTER

    def grpc_stats(self, prefix):
        return {k[len(prefix):]: int(v) for k, v in self.proxy.stats().items()
                if k.startswith(prefix) and not k.endswith("upstream_rq_time")}

    def test_listed_methods_count_under_their_names_and_the_rest_under_the_cluster(self):
        unary = "cluster.grpc.grpc.test.Echo.Unary."
        self.assertEqual(self.grpc_stats(unary), {})
        for i in range(3):
            self.assertEqual(self.uu("Unary")(b"u%d" % i, timeout=TIMEOUT_S), b"echo:u%d" % i)
        self.assertEqual(len(list(self.us("ServerStream")(b"7", timeout=TIMEOUT_S))), 7)
        with self.assertRaises(grpc.RpcError):
            self.uu("Fail")(b"NOT_FOUND:gone", timeout=TIMEOUT_S)  # not listed
        self.proxy.wait_counter(unary + "total", 3)
        self.proxy.wait_counter("cluster.grpc.grpc.test.Echo.ServerStream.total", 1)
        self.proxy.wait_counter("cluster.grpc.grpc.total", 1)
        self.assertEqual(self.grpc_stats(unary),
                         {"0": 3, "success": 3, "total": 3,
                          "request_message_count": 3, "response_message_count": 3})
        self.assertEqual(self.grpc_stats("cluster.grpc.grpc.test.Echo.ServerStream."),
                         {"0": 1, "success": 1, "total": 1,
                          "request_message_count": 1, "response_message_count": 7})
        # The cluster's own grpc.* has the unlisted call only.
        cluster = {k: v for k, v in self.grpc_stats("cluster.grpc.grpc.").items()
                   if "." not in k}
        self.assertEqual(cluster, {"5": 1, "failure": 1, "total": 1,
                                   "request_message_count": 1}, cluster)
        self.assertIn(unary + "upstream_rq_time", self.proxy.stats())
        # A sandbox cluster has stats of its own.
        md = (("baggage", "turnout-routing-key=feat-x"),)
        self.assertEqual(self.uu("Unary")(b"s", timeout=TIMEOUT_S, metadata=md), b"echo:s")
        self.proxy.wait_counter("cluster.grpc-feat-x.grpc.test.Echo.Unary.success", 1)


class GrpcAllMethodsStatsTest(GrpcTestCase):
    """stats_for_all_methods: true names every call after its method;
    replace_dots_in_grpc_service_name makes the service's dots underscores."""

    HTTP_FILTERS = ROUTING_KEY + GRPC_STATS.replace(
        "    stats_for_all_methods: false\n",
        "    stats_for_all_methods: true\n"
        "    replace_dots_in_grpc_service_name: true\n") + ROUTER

    def test_every_method_counts_under_its_name(self):
        self.assertEqual(self.uu("Unary")(b"a", timeout=TIMEOUT_S), b"echo:a")
        with self.assertRaises(grpc.RpcError):
            self.uu("Fail")(b"NOT_FOUND:gone", timeout=TIMEOUT_S)
        self.proxy.wait_counter("cluster.grpc.grpc.test_Echo.Unary.success", 1)
        self.proxy.wait_counter("cluster.grpc.grpc.test_Echo.Fail.5", 1)
        stats = self.proxy.stats()
        self.assertEqual(int(stats["cluster.grpc.grpc.test_Echo.Fail.failure"]), 1)
        self.assertNotIn("cluster.grpc.grpc.total", stats)
        self.assertNotIn("cluster.grpc.grpc.test.Echo.Unary.success", stats)


class SlowReaderTest(GrpcTestCase):
    """A 64 MiB server stream to a client that stops reading: turnout holds
    no more than the windows it grants (a window is returned upstream only
    once the bytes were written downstream), so its RSS stays within twice
    its window settings, and every byte arrives once the client reads."""

    STREAM_WINDOW = 1 << 20
    CONNECTION_WINDOW = 2 << 20
    TOTAL = 64 << 20

    @classmethod
    def setUpClass(cls):
        windows = ("http2_protocol_options: { initial_stream_window_size: %d, "
                   "initial_connection_window_size: %d }"
                   % (cls.STREAM_WINDOW, cls.CONNECTION_WINDOW))
        real = bootstrap

        def windowed(vhosts, clusters, http_filters):
            yaml = real(vhosts, [c.replace("http2_protocol_options: {}", windows)
                                 for c in clusters], http_filters)
            hcm = "          stat_prefix: "
            assert hcm in yaml
            return yaml.replace(hcm, "          %s\n%s" % (windows, hcm), 1)
        globals()["bootstrap"] = windowed
        try:
            super().setUpClass()
        finally:
            globals()["bootstrap"] = real

    def test_a_64_mib_stream_to_a_reader_that_stops_holds_turnout_to_its_windows(self):
        import h2.config
        import h2.connection
        import h2.events
        rss_kib = self.proxy.rss_kib
        # Warm the h2 upstream connection and the codecs' first allocations.
        self.assertEqual(self.uu("Unary")(b"warm", timeout=TIMEOUT_S), b"echo:warm")
        rss_before = rss_kib()
        peak = [rss_before]

        sock = socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT_S)
        self.addCleanup(sock.close)
        conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        conn.initiate_connection()  # windows of 65,535 bytes, returned only when we say
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, [(":method", "POST"), (":path", "/%s/Flood" % SERVICE),
                                (":scheme", "http"), (":authority", "svc"),
                                ("content-type", "application/grpc"), ("te", "trailers")])
        body = b"%d" % self.TOTAL
        conn.send_data(sid, b"\0" + struct.pack(">I", len(body)) + body, end_stream=True)
        sock.sendall(conn.data_to_send())

        state = {"data": bytearray(), "trailers": None, "ended": False, "reset": None,
                 "unacked": 0}

        def pump(timeout, ack):
            sock.settimeout(timeout)
            try:
                chunk = sock.recv(1 << 20)
            except socket.timeout:
                return False
            self.assertTrue(chunk, "turnout closed the connection")
            for ev in conn.receive_data(chunk):
                if isinstance(ev, h2.events.DataReceived):
                    state["data"] += ev.data
                    state["unacked"] += ev.flow_controlled_length
                elif isinstance(ev, h2.events.TrailersReceived):
                    state["trailers"] = dict(ev.headers)
                elif isinstance(ev, h2.events.StreamEnded):
                    state["ended"] = True
                elif isinstance(ev, h2.events.StreamReset):
                    state["reset"] = ev.error_code
            if ack and state["unacked"]:
                conn.acknowledge_received_data(state["unacked"], sid)
                state["unacked"] = 0
            out = conn.data_to_send()
            if out:
                sock.sendall(out)
            peak[0] = max(peak[0], rss_kib())
            return True

        # Not reading: turnout sends the client its 65,535 bytes, takes from
        # the upstream what its windows grant, and then nothing moves.
        upstream_rx = "cluster.grpc.upstream_cx_rx_bytes_total"
        last = [-1, time.monotonic()]

        def stalled():
            pump(0.05, ack=False)
            peak[0] = max(peak[0], rss_kib())
            rx = self.proxy.counter(upstream_rx)
            now = time.monotonic()
            if rx != last[0]:
                last[0], last[1] = rx, now
                return False
            return now - last[1] >= 0.7
        deadline = time.monotonic() + 20
        while not stalled():
            self.assertLess(time.monotonic(), deadline, "the upstream never stalled")
        self.assertLessEqual(len(state["data"]), 65535)
        self.assertFalse(state["ended"])
        held_rss = rss_kib() - rss_before
        bound_kib = 2 * (self.STREAM_WINDOW + self.CONNECTION_WINDOW) // 1024
        print("\n  stalled with %d bytes at the client; turnout RSS %+d KiB (bound %d KiB)"
              % (len(state["data"]), held_rss, bound_kib), file=sys.stderr)

        # Reading again, with a wider window: the rest arrives, in order, and
        # RSS never passed the bound on the way.
        conn.increment_flow_control_window(8 << 20)
        conn.increment_flow_control_window(8 << 20, sid)
        sock.sendall(conn.data_to_send())
        deadline = time.monotonic() + 60
        while not state["ended"] and state["reset"] is None:
            self.assertLess(time.monotonic(), deadline, "the stream did not finish")
            pump(5, ack=True)
        self.assertIsNone(state["reset"])
        self.assertEqual((state["trailers"] or {}).get("grpc-status"), "0", state["trailers"])
        # 1,024 length-prefixed messages of 64 KiB, whole and in order.
        data = state["data"]
        payload = bytearray()
        i = 0
        while i < len(data):
            self.assertEqual(data[i], 0, "a compressed-flag byte at %d" % i)
            n = struct.unpack(">I", data[i + 1:i + 5])[0]
            payload += data[i + 5:i + 5 + n]
            i += 5 + n
        self.assertEqual(len(payload), self.TOTAL)
        self.assertEqual(hashlib.sha256(payload).digest(),
                         hashlib.sha256(flood_bytes(self.TOTAL)).digest())
        grown = peak[0] - rss_before
        print("  peak turnout RSS %+d KiB over the whole stream" % grown, file=sys.stderr)
        self.assertLess(grown, bound_kib, "turnout's RSS grew %d KiB; its windows allow %d KiB"
                        % (grown, bound_kib))


class GrpcStatsConfigTest(unittest.TestCase):
    """What the grpc_stats filter does not do, or a bad field, is refused with its path."""

    def validate(self, extra):
        import subprocess
        yaml = bootstrap(VHOSTS, [h2_cluster(n, [1]) for n in
                                  ("grpc", "grpc-feat-x", "nohost", "refused")],
                         http_filters=ROUTING_KEY + GRPC_STATS.replace(
                             "    stats_for_all_methods: false\n", extra) + ROUTER)
        return subprocess.run([TURNOUT, "--mode", "validate", "--config-yaml", yaml],
                              capture_output=True, text=True, timeout=TIMEOUT_S)

    def test_a_bad_allowlist_is_refused_with_its_path(self):
        path = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config." \
               "http_filters[1].typed_config.individual_method_stats_allowlist.services[0]."
        r = self.validate("    individual_method_stats_allowlist:\n"
                          "      services: [{name: test.Echo, method_names: []}]\n")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(path + "method_names", r.stderr)
        r = self.validate("    individual_method_stats_allowlist:\n"
                          "      services: [{name: '', method_names: [Unary]}]\n")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(path + "name", r.stderr)
        # Both at once: a oneof.
        r = self.validate("    individual_method_stats_allowlist:\n"
                          "      services: [{name: test.Echo, method_names: [Unary]}]\n"
                          "    stats_for_all_methods: true\n")
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual(self.validate("    individual_method_stats_allowlist:\n"
                                       "      services: [{name: test.Echo, "
                                       "method_names: [Unary]}]\n").returncode, 0)
        self.assertEqual(self.validate("    stats_for_all_methods: true\n").returncode, 0)
        self.assertEqual(self.validate("").returncode, 0)

    def test_the_filter_state_object_is_refused_with_its_path(self):
        r = self.validate("    emit_filter_state: true\n")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("http_filters[1].typed_config.emit_filter_state: ", r.stderr)


def main():
    def set_binary(path):
        global TURNOUT
        TURNOUT = path
    return run_suite("grpc_test", set_binary)


if __name__ == "__main__":
    sys.exit(main())
