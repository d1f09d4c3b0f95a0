#!/usr/bin/env python3
"""Routing-key recovery from the trace id, end to end, with a real turnout.

Usage: trace_key_recovery_test.py <turnout-binary>

One turnout plays a sidecar's two halves:
  client -> [inbound listener: RoutingKey REMEMBER] -> app
  app    -> [outbound listener: RoutingKey RECOVER] -> sandbox (key feat-x) | baseline
The app is a python server that, for each request, calls the outbound
listener copying ONLY `traceparent` from its inbound request (never baggage
or the key header), and answers with what the backend echoed. So the app's
outbound call reaches the sandbox only if turnout re-attached the key from
the trace id. Every socket has a timeout and every wait is a bounded poll.
"""

import http.client
import http.server
import json
import os
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))

from envoy_yaml import cluster  # noqa: E402
from fake_backend import FakeBackend  # noqa: E402
from turnout_process import TurnoutProcess, run_suite  # noqa: E402

TURNOUT = None
IO_TIMEOUT_S = 10.0
TTL_S = 2


def traceparent(n, parent="00f067aa0ba902b7"):
    """A valid version-00 traceparent whose trace id is made from n."""
    return "00-%032x-%s-01" % (0x4bf92f3577b34da6a3ce929d00000000 + n, parent)


class App:
    """The app behind the inbound listener. For each request it calls the
    outbound listener (path /call<...>) with Host reviews and ONLY the
    inbound `traceparent`; `?key=<k>` makes it send an explicit
    x-turnout-routing-key too. It answers 200 with JSON
    {"backend": ..., "headers": [...]} from the backend's echo."""

    def __init__(self):
        self.outbound_port = None
        app = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = IO_TIMEOUT_S

            def log_message(self, *args):
                pass

            def do_GET(self):
                headers = {"Host": "reviews"}
                tp = self.headers.get("traceparent")
                if tp is not None:
                    headers["traceparent"] = tp
                if "?key=" in self.path:
                    headers["x-turnout-routing-key"] = self.path.split("?key=", 1)[1]
                conn = http.client.HTTPConnection("127.0.0.1", app.outbound_port,
                                                  timeout=IO_TIMEOUT_S)
                try:
                    conn.request("GET", "/from-app", headers=headers)
                    resp = conn.getresponse()
                    body = resp.read()
                    status = resp.status
                finally:
                    conn.close()
                self.send_response(200 if status == 200 else 502)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def port(self):
        return self.server.server_address[1]

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def listener(name, stat_prefix, mode, vhosts):
    return """\
  - name: %s
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: %s
          route_config:
            name: %s
            virtual_hosts:
%s
          http_filters:
          - name: turnout.filters.http.routing_key
            typed_config:
              "@type": type.googleapis.com/turnout.extensions.filters.http.routing_key.v3.RoutingKey
              trace_key_recovery:
                mode: %s
                ttl: %ss
                max_entries: 4096
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
""" % (name, stat_prefix, name, vhosts, mode, TTL_S)


INBOUND_VHOSTS = """\
            - name: app
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                route: { cluster: app }"""

OUTBOUND_VHOSTS = """\
            - name: reviews
              domains: ["reviews"]
              routes:
              - match:
                  prefix: "/"
                  headers:
                  - name: x-turnout-routing-key
                    string_match: { exact: feat-x }
                route: { cluster: reviews-feat-x }
              - match: { prefix: "/" }
                route: { cluster: reviews }"""


def bootstrap(app_port, sandbox_port, baseline_port):
    return (
        "admin:\n"
        "  address: { socket_address: { address: 127.0.0.1, port_value: 0 } }\n"
        "static_resources:\n"
        "  listeners:\n"
        + listener("inbound", "inbound", "REMEMBER", INBOUND_VHOSTS)
        + listener("outbound", "outbound", "RECOVER", OUTBOUND_VHOSTS)
        + "  clusters:\n"
        + "".join("  " + line + "\n" for c in (cluster("app", [app_port]),
                                                cluster("reviews-feat-x", [sandbox_port]),
                                                cluster("reviews", [baseline_port]))
                  for line in c.rstrip("\n").split("\n"))
    )


def get(port, path, headers):
    """GET through turnout; returns (status, decoded JSON body or None)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=IO_TIMEOUT_S)
    try:
        h = {"Host": "app"}
        h.update(headers)
        conn.request("GET", path, headers=h)
        resp = conn.getresponse()
        body = resp.read()
        try:
            return resp.status, json.loads(body)
        except ValueError:
            return resp.status, None
    finally:
        conn.close()


class TraceKeyRecoveryTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sandbox = FakeBackend("sandbox").start()
        cls.baseline = FakeBackend("baseline").start()
        cls.app = App().start()
        cls.proxy = TurnoutProcess(
            TURNOUT, bootstrap(cls.app.port, cls.sandbox.port, cls.baseline.port)).start()
        cls.app.outbound_port = cls.proxy.port("outbound")
        cls.inbound_port = cls.proxy.port("inbound")
        cls.outbound_port = cls.proxy.port("outbound")
        cls.next_trace = 1

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        cls.app.stop()
        cls.sandbox.stop()
        cls.baseline.stop()

    def trace(self):
        cls = type(self)
        cls.next_trace += 1
        return traceparent(cls.next_trace)

    def call_app(self, headers, path="/"):
        status, body = get(self.inbound_port, path, headers)
        self.assertEqual(status, 200, "%s: %r\n%s" % (headers, body, self.proxy.log()))
        self.assertIsNotNone(body)
        return body["backend"], dict(body["headers"])

    def counter(self, name):
        return self.proxy.counter(name) or 0

    def test_key_on_the_inbound_call_reaches_the_sandbox_through_an_app_that_drops_baggage(self):
        recovered = self.counter("http.outbound.routing_key.recovered_from_trace")
        remembered = self.counter("http.inbound.routing_key.remembered_for_trace")
        tp = self.trace()
        backend, seen = self.call_app({"traceparent": tp,
                                       "baggage": "userId=7,turnout-routing-key=feat-x"})
        self.assertEqual(backend, "sandbox")
        # The upstream saw the key re-attached as baggage and as the normalised header.
        self.assertEqual(seen.get("baggage"), "turnout-routing-key=feat-x")
        self.assertEqual(seen.get("x-turnout-routing-key"), "feat-x")
        self.assertEqual(seen.get("traceparent"), tp)
        self.assertEqual(self.proxy.wait_stat("http.outbound.routing_key.recovered_from_trace",
                                              lambda v: v is not None and v > recovered),
                         recovered + 1)
        self.assertEqual(self.counter("http.inbound.routing_key.remembered_for_trace"),
                         remembered + 1)

    def test_a_key_in_the_plain_header_is_remembered_too(self):
        backend, _ = self.call_app({"traceparent": self.trace(), "x-turnout-routing-key": "feat-x"})
        self.assertEqual(backend, "sandbox")

    def test_no_key_on_the_inbound_call_goes_to_the_baseline(self):
        missing = self.counter("http.outbound.routing_key.missing")
        backend, seen = self.call_app({"traceparent": self.trace()})
        self.assertEqual(backend, "baseline")
        self.assertNotIn("baggage", seen)
        self.assertNotIn("x-turnout-routing-key", seen)
        self.assertEqual(self.counter("http.outbound.routing_key.missing"), missing + 1)

    def test_a_different_trace_id_goes_to_the_baseline(self):
        tp = self.trace()
        self.assertEqual(self.call_app({"traceparent": tp, "x-turnout-routing-key": "feat-x"})[0],
                         "sandbox")
        other = self.trace()
        status, body = get(self.outbound_port, "/", {"Host": "reviews", "traceparent": other})
        self.assertEqual((status, body["backend"]), (200, "baseline"))
        # The same trace id with another parent span is the same trace.
        child = tp[:36] + "b7ad6b7169203331" + tp[52:]
        status, body = get(self.outbound_port, "/", {"Host": "reviews", "traceparent": child})
        self.assertEqual((status, body["backend"]), (200, "sandbox"))

    def test_without_traceparent_nothing_is_remembered_or_recovered(self):
        remembered = self.counter("http.inbound.routing_key.remembered_for_trace")
        backend, _ = self.call_app({"x-turnout-routing-key": "feat-x"})
        self.assertEqual(backend, "baseline")
        self.assertEqual(self.counter("http.inbound.routing_key.remembered_for_trace"), remembered)

    def test_an_invalid_traceparent_is_ignored(self):
        remembered = self.counter("http.inbound.routing_key.remembered_for_trace")
        bad = traceparent(999).upper()  # uppercase hex is invalid
        backend, _ = self.call_app({"traceparent": bad, "x-turnout-routing-key": "feat-x"})
        self.assertEqual(backend, "baseline")
        self.assertEqual(self.counter("http.inbound.routing_key.remembered_for_trace"), remembered)

    def test_an_explicit_different_key_on_the_outbound_call_wins(self):
        recovered = self.counter("http.outbound.routing_key.recovered_from_trace")
        backend, seen = self.call_app({"traceparent": self.trace(),
                                       "x-turnout-routing-key": "feat-x"}, path="/?key=feat-y")
        self.assertEqual(backend, "baseline")
        self.assertEqual(seen.get("x-turnout-routing-key"), "feat-y")
        self.assertNotIn("baggage", seen)
        self.assertEqual(self.counter("http.outbound.routing_key.recovered_from_trace"), recovered)

    def test_after_the_ttl_the_trace_goes_to_the_baseline(self):
        tp = self.trace()
        start = time.monotonic()
        self.assertEqual(self.call_app({"traceparent": tp, "x-turnout-routing-key": "feat-x"})[0],
                         "sandbox")
        # Poll the outbound listener with the trace alone until the key is
        # forgotten; it must not be forgotten before the ttl has passed.
        deadline = start + TTL_S + 8.0
        backend = "sandbox"
        for _ in range(1000):
            if time.monotonic() > deadline:
                break
            status, body = get(self.outbound_port, "/", {"Host": "reviews", "traceparent": tp})
            self.assertEqual(status, 200)
            backend = body["backend"]
            if backend == "baseline":
                break
            time.sleep(0.1)
        self.assertEqual(backend, "baseline")
        self.assertGreaterEqual(time.monotonic() - start, TTL_S)
        # And through the app too.
        self.assertEqual(self.call_app({"traceparent": tp})[0], "baseline")


def set_turnout(binary):
    global TURNOUT
    TURNOUT = binary


if __name__ == "__main__":
    sys.exit(run_suite("trace_key_recovery_test", set_turnout))
