#!/usr/bin/env python3
"""Bootstrap fields turnout accepts, each shown to change what the proxy does.

Usage: fields_test.py <turnout-binary>

docs/envoy-compatibility.md names a test case here for each field it covers;
tests/unit/config/field_policy_test.cc checks that the named case exists.
Every test sets a field and asserts the behaviour the field asks for, next to
a request the field does not apply to where that makes the assertion sharper
(a listener without it, a path the route does not cover). Real turnout
processes, real sockets, 127.0.0.1 port 0; every wait has a deadline.
"""

import base64
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))

from envoy_yaml import ROUTER, request  # noqa: E402
from fake_backend import FakeBackend, free_closed_port  # noqa: E402
from turnout_process import TurnoutProcess, run_suite  # noqa: E402

TURNOUT = None
TIMEOUT_S = 5.0
HCM_TYPE = ("type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
            "HttpConnectionManager")
FILE_LOG_TYPE = "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog"


def echo(body):
    return json.loads(body.decode())


def echo_headers(body):
    return dict(echo(body)["headers"])


def cluster(name, ports, lb_policy="ROUND_ROBIN", weights=None, extra=""):
    """A STATIC cluster; weights: the load_balancing_weight of each port, or None."""
    endpoints = ""
    for i, p in enumerate(ports):
        endpoints += ("      - endpoint: { address: { socket_address: "
                      "{ address: 127.0.0.1, port_value: %d } } }\n" % p)
        if weights is not None:
            endpoints += "        load_balancing_weight: %d\n" % weights[i]
    return ("- name: %s\n"
            "  connect_timeout: 1s\n"
            "  type: STATIC\n"
            "  lb_policy: %s\n%s"
            "  load_assignment:\n"
            "    cluster_name: %s\n"
            "    endpoints:\n"
            "    - lb_endpoints:\n%s") % (name, lb_policy, extra, name, endpoints)


def listener(name, hcm, port=0, protocol=None, extra=""):
    """A listener on 127.0.0.1:`port` whose one filter is the HCM `hcm` (YAML at column 0,
    without @type); `extra`: listener fields at column 2."""
    return ("- name: %s\n"
            "  address:\n"
            "    socket_address: { address: 127.0.0.1, port_value: %d%s }\n%s"
            "  filter_chains:\n"
            "  - filters:\n"
            "    - name: envoy.filters.network.http_connection_manager\n"
            "      typed_config:\n"
            "        \"@type\": %s\n%s") % (
                name, port, ", protocol: %s" % protocol if protocol else "", extra, HCM_TYPE,
                textwrap.indent(hcm, " " * 8))


def bootstrap(listeners, clusters):
    return ("admin:\n"
            "  address:\n"
            "    socket_address: { address: 127.0.0.1, port_value: 0 }\n"
            "static_resources:\n"
            "  listeners:\n%s"
            "  clusters:\n%s") % (textwrap.indent("".join(listeners), "  "),
                                  textwrap.indent("".join(clusters), "  "))


def poll(deadline_s, fn):
    end = time.monotonic() + deadline_s
    while True:
        value = fn()
        if value or time.monotonic() >= end:
            return value
        time.sleep(0.02)


class FieldsCase(unittest.TestCase):
    backends = {}
    proxy = None

    @classmethod
    def start(cls, yaml):
        cls.proxy = TurnoutProcess(TURNOUT, yaml).start()

    @classmethod
    def tearDownClass(cls):
        if cls.proxy is not None:
            cls.proxy.stop()
        for b in cls.backends.values():
            b.stop()

    def get(self, path, listener=None, host="svc", headers=None, **kw):
        return request(self.proxy.port(listener), "GET", path, headers=headers, host=host, **kw)


class Ipv4CompatTest(FieldsCase):
    """Listener `dual` on [::] sets SocketAddress.ipv4_compat; listener `v6only` on [::]
    does not. Real sockets, connected over 127.0.0.1 and ::1."""

    @classmethod
    def setUpClass(cls):
        cls.backends = {"base": FakeBackend("base").start()}
        hcm = ("stat_prefix: %s\n"
               "use_remote_address: true\n"
               "route_config:\n"
               "  virtual_hosts:\n"
               "  - name: svc\n"
               "    domains: [\"*\"]\n"
               "    routes: [{ match: { prefix: \"/\" }, route: { cluster: base } }]\n"
               "http_filters:\n" + ROUTER)
        listeners = []
        for name, compat in (("dual", ", ipv4_compat: true"), ("v6only", "")):
            listeners.append(listener(name, hcm % name).replace(
                "address: 127.0.0.1, port_value: 0 }",
                "address: \"::\", port_value: 0%s }" % compat))
        cls.start(bootstrap(listeners, [cluster("base", [cls.backends["base"].port])]))

    def via(self, ip, name):
        conn = http.client.HTTPConnection(ip, self.proxy.port(name), timeout=TIMEOUT_S)
        status, _, body = request(0, "GET", "/who", conn=conn)
        conn.close()
        self.assertEqual(status, 200, body)
        return echo_headers(body).get("x-forwarded-for")

    def test_ipv4_compat_takes_ipv4_on_an_ipv6_wildcard_listener(self):
        # The IPv4 peer is an IPv4 address (not ::ffff:127.0.0.1), as in Envoy.
        self.assertEqual(self.via("127.0.0.1", "dual"), "127.0.0.1")
        self.assertEqual(self.via("::1", "dual"), "::1")
        # Without it the listener takes IPv6 only.
        self.assertEqual(self.via("::1", "v6only"), "::1")
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", self.proxy.port("v6only")),
                                     timeout=TIMEOUT_S).close()

    def test_ipv4_compat_elsewhere_is_rejected_with_its_path(self):
        for where, yaml, path in (
                ("an endpoint", bootstrap([], [cluster("c", [1]).replace(
                    "port_value: 1 }", "port_value: 1, ipv4_compat: true }")]),
                 "static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0]"
                 ".endpoint.address.socket_address.ipv4_compat: ipv4_compat is supported on "
                 "listener addresses only"),
                ("an IPv4 listener", bootstrap([listener("v4", "stat_prefix: v4\nroute_config: {}\nhttp_filters:\n" + ROUTER).replace(
                    "port_value: 0 }", "port_value: 0, ipv4_compat: true }")], []),
                 "static_resources.listeners[0].address.socket_address.ipv4_compat: "
                 "ipv4_compat applies to IPv6 addresses; '127.0.0.1' is IPv4")):
            with self.subTest(where):
                out = subprocess.run([TURNOUT, "--mode", "validate", "--config-yaml", yaml],
                                     capture_output=True, text=True, timeout=30)
                self.assertNotEqual(out.returncode, 0, out.stdout)
                self.assertIn(path, out.stdout + out.stderr)


# --------------------------------------------------------------------------
# Listener and HTTP connection manager fields.
# --------------------------------------------------------------------------

ROUTING_KEY_FROM_TRACESTATE = """\
- name: turnout.filters.http.routing_key
  typed_config:
    "@type": type.googleapis.com/turnout.extensions.filters.http.routing_key.v3.RoutingKey
    sources: [{ tracestate_key: fx }]
    output_header: x-sandbox
"""


class ConnectionManagerFieldsTest(FieldsCase):
    """Listener `custom` sets the HCM fields; listener `plain` leaves them at Envoy's defaults
    over the same routes, so each assertion has its counterpart."""

    @classmethod
    def setUpClass(cls):
        cls.backends = {n: FakeBackend(n).start() for n in ("base", "sandbox")}
        cls.logdir = tempfile.mkdtemp(prefix="turnout-fields-")
        cls.unbound_port = free_closed_port()
        routes = """\
        route_config:
          name: local
          virtual_hosts:
          - name: svc
            domains: ["svc"]
            routes:
            - match:
                prefix: "/"
                headers: [{ name: x-sandbox, string_match: { exact: feat-x } }]
              route: { cluster: sandbox }
            - match: { prefix: "/" }
              route: { cluster: base }
        """

        def log(name, fmt):
            return ("- name: %s\n  typed_config:\n    \"@type\": %s\n    path: %s\n%s"
                    % (name, FILE_LOG_TYPE, os.path.join(cls.logdir, name),
                       textwrap.indent(fmt, "    ")))

        access_logs = "".join([
            log("json_format", 'json_format: { path: "%REQ(:PATH)%", code: "%RESPONSE_CODE%" }\n'),
            log("typed_json_format",
                'typed_json_format: { path: "%REQ(:PATH)%", code: "%RESPONSE_CODE%" }\n'),
            log("text_format", 'log_format: { text_format: "text %REQ(:PATH)% %RESPONSE_CODE%\\n" }\n'),
            log("log_json_format",
                'log_format: { json_format: { p: "%REQ(:PATH)%", c: "%RESPONSE_CODE%" } }\n'),
            log("text_format_source",
                'log_format: { text_format_source: { inline_string: "source %REQ(:PATH)%\\n" } }\n'),
        ])
        custom = ("stat_prefix: custom\n"
                  "server_name: fields-proxy\n"
                  "generate_request_id: false\n"
                  "use_remote_address: true\n"
                  "strip_any_host_port: true\n"
                  "common_http_protocol_options: { idle_timeout: 0.3s }\n"
                  "access_log:\n" + textwrap.indent(access_logs, "") +
                  textwrap.dedent(routes) +
                  "http_filters:\n" + ROUTING_KEY_FROM_TRACESTATE + ROUTER)
        plain = ("stat_prefix: plain\n"
                 "strip_matching_host_port: true\n" + textwrap.dedent(routes) +
                 "http_filters:\n" + ROUTER)
        unbound = "stat_prefix: unbound\n" + textwrap.dedent(routes) + "http_filters:\n" + ROUTER
        cls.start(bootstrap(
            [listener("custom", custom, protocol="TCP"),
             listener("plain", plain),
             listener("unbound", unbound, port=cls.unbound_port,
                      extra="  bind_to_port: false\n")],
            [cluster("base", [cls.backends["base"].port]),
             cluster("sandbox", [cls.backends["sandbox"].port])]))

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        shutil.rmtree(cls.logdir, ignore_errors=True)

    def test_a_tcp_listener_serves_and_one_not_bound_to_its_port_refuses(self):
        # SocketAddress.protocol TCP is what `custom` listens with.
        status, _, body = self.get("/tcp", "custom")
        self.assertEqual(status, 200, body)
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", self.unbound_port), timeout=TIMEOUT_S)
        # Listed all the same, with its configured address (as Envoy lists it).
        self.assertEqual(self.proxy.listeners["unbound"], ("127.0.0.1", self.unbound_port))
        status, body, _ = self.proxy.admin("GET", "/listeners?format=json")
        self.assertEqual(status, 200)
        statuses = {s["name"]: s for s in json.loads(body)["listener_statuses"]}
        self.assertEqual(list(statuses), ["custom", "plain", "unbound"])
        self.assertEqual(statuses["unbound"]["local_address"],
                         {"socket_address": {"address": "127.0.0.1",
                                             "port_value": self.unbound_port}})
        self.assertEqual(statuses["custom"]["local_address"]["socket_address"]["port_value"],
                         self.proxy.port("custom"))

    def test_server_name_request_id_and_remote_address(self):
        xff = {"x-forwarded-for": "192.0.2.7"}
        status, headers, body = self.get("/who", "custom", headers=xff)
        self.assertEqual(status, 200, body)
        self.assertEqual(headers.get("server"), "fields-proxy")
        seen = echo_headers(body)
        self.assertNotIn("x-request-id", seen)
        self.assertEqual(seen.get("x-forwarded-for"), "192.0.2.7,127.0.0.1")
        # A local reply carries the server name too.
        status, headers, _ = self.get("/who", "custom", host="nobody")
        self.assertEqual(status, 404)
        self.assertEqual(headers.get("server"), "fields-proxy")

        status, headers, body = self.get("/who", "plain", headers=xff)
        self.assertEqual(status, 200, body)
        self.assertEqual(headers.get("server"), "envoy")
        seen = echo_headers(body)
        self.assertIn("x-request-id", seen)
        self.assertEqual(seen.get("x-forwarded-for"), "192.0.2.7")

    def test_host_ports_are_stripped_any_or_matching_the_listener(self):
        custom, plain = self.proxy.port("custom"), self.proxy.port("plain")
        other = free_closed_port()
        # strip_any_host_port: any port goes; the vhost lists "svc" only.
        status, _, body = self.get("/p", "custom", host="svc:%d" % other)
        self.assertEqual(status, 200, body)
        self.assertEqual(echo_headers(body).get("host"), "svc")
        status, _, _ = self.get("/p", "custom", host="svc:%d" % custom)
        self.assertEqual(status, 200)
        # strip_matching_host_port: only the listener's own port goes.
        status, _, body = self.get("/p", "plain", host="svc:%d" % plain)
        self.assertEqual(status, 200, body)
        self.assertEqual(echo_headers(body).get("host"), "svc")
        status, _, _ = self.get("/p", "plain", host="svc:%d" % other)
        self.assertEqual(status, 404)

    def test_idle_timeout_closes_an_idle_downstream_connection(self):
        for name, closes in (("custom", True), ("plain", False)):
            conn = http.client.HTTPConnection("127.0.0.1", self.proxy.port(name), timeout=TIMEOUT_S)
            try:
                status, _, _ = request(0, "GET", "/idle", conn=conn)
                self.assertEqual(status, 200)
                sock = conn.sock
                sock.settimeout(1.5)
                start = time.monotonic()
                try:
                    got = sock.recv(1)
                except socket.timeout:
                    got = None
                if closes:
                    self.assertEqual(got, b"", name)
                    self.assertGreaterEqual(time.monotonic() - start, 0.2)
                else:
                    self.assertIsNone(got, name)  # still open after 1.5 s
            finally:
                conn.close()

    def test_idle_timeout_restarts_with_every_request(self):
        # The idle deadline is moved later by every request without touching
        # the worker's timer (DeadlineQueue): a connection kept busy for
        # three times the 0.3 s idle_timeout stays open, and then closes
        # about 0.3 s after its last request, not after its first.
        conn = http.client.HTTPConnection("127.0.0.1", self.proxy.port("custom"),
                                          timeout=TIMEOUT_S)
        try:
            start = time.monotonic()
            for i in range(10):
                status, _, _ = request(0, "GET", "/busy%d" % i, conn=conn)
                self.assertEqual(status, 200, "request %d at %.2f s" % (i, time.monotonic() - start))
                time.sleep(0.1)
            last = time.monotonic()
            self.assertGreater(last - start, 0.9)
            sock = conn.sock
            sock.settimeout(1.5)
            try:
                got = sock.recv(1)
            except socket.timeout:
                got = None
            self.assertEqual(got, b"")
            self.assertGreaterEqual(time.monotonic() - last, 0.15)
        finally:
            conn.close()

    def test_routing_key_from_a_tracestate_key_is_written_to_the_output_header(self):
        status, _, body = self.get("/k", "custom", headers={"tracestate": "a=1,fx=feat-x"})
        self.assertEqual(status, 200, body)
        self.assertEqual(echo(body)["backend"], "sandbox")
        seen = echo_headers(body)
        self.assertEqual(seen.get("x-sandbox"), "feat-x")
        self.assertNotIn("x-turnout-routing-key", seen)
        # The default tracestate key is not a source here.
        status, _, body = self.get("/k", "custom", headers={"tracestate": "turnout=feat-x"})
        self.assertEqual(echo(body)["backend"], "base")
        self.assertNotIn("x-sandbox", echo_headers(body))

    def test_access_log_formats_each_write_their_line(self):
        status, _, _ = self.get("/logged/1", "custom")
        self.assertEqual(status, 200)

        def line(name):
            def read():
                try:
                    with open(os.path.join(self.logdir, name)) as f:
                        lines = [x for x in f.read().splitlines() if "/logged/1" in x]
                except OSError:
                    return None
                return lines[0] if lines else None
            got = poll(TIMEOUT_S, read)
            self.assertIsNotNone(got, name)
            return got

        # The deprecated json_format renders every value as a string; typed_json_format
        # and log_format.json_format keep numbers numbers.
        self.assertEqual(json.loads(line("json_format")), {"path": "/logged/1", "code": "200"})
        self.assertEqual(json.loads(line("typed_json_format")), {"path": "/logged/1", "code": 200})
        self.assertEqual(json.loads(line("log_json_format")), {"p": "/logged/1", "c": 200})
        self.assertEqual(line("text_format"), "text /logged/1 200")
        self.assertEqual(line("text_format_source"), "source /logged/1")


# --------------------------------------------------------------------------
# Route, retry, hashing and cluster fields.
# --------------------------------------------------------------------------

ENV_BODY = "TURNOUT_FIELDS_TEST_BODY"


class RouteFieldsTest(FieldsCase):
    HASHED = ("h1", "h2", "h3", "h4")

    @classmethod
    def setUpClass(cls):
        drops = [("x-rc-drop", "1"), ("x-vh-drop", "1"), ("x-cw-drop", "1"), ("x-keep", "1")]
        cls.backends = {n: FakeBackend(n, extra_headers=drops).start()
                        for n in ("svc", "shadow", "heavy", "light") + cls.HASHED}
        os.environ[ENV_BODY] = "body from the environment"
        hashed = [cls.backends[n].port for n in cls.HASHED]
        routes = """\
        route_config:
          name: local
          response_headers_to_remove: [x-rc-drop]
          virtual_hosts:
          - name: svc
            domains: ["svc"]
            response_headers_to_remove: [x-vh-drop]
            routes:
            - match: { prefix: "/weighted" }
              route:
                weighted_clusters:
                  clusters:
                  - name: svc
                    weight: 1
                    response_headers_to_remove: [x-cw-drop]
            - match: { prefix: "/mirrored" }
              route:
                cluster: svc
                request_mirror_policies:
                - { cluster: shadow, disable_shadow_host_suffix_append: true }
            - match: { prefix: "/by-query" }
              route:
                cluster: hashed
                hash_policy: [{ query_parameter: { name: user } }]
            - match: { prefix: "/by-source" }
              route:
                cluster: hashed
                hash_policy: [{ connection_properties: { source_ip: true } }]
            - match: { prefix: "/unhashed" }
              route: { cluster: hashed }
            - match: { prefix: "/per-try" }
              route:
                cluster: svc
                timeout: 5s
                retry_policy: { retry_on: 5xx, num_retries: 1, per_try_timeout: 0.2s }
            - match: { prefix: "/codes" }
              route:
                cluster: svc
                retry_policy:
                  retry_on: retriable-status-codes
                  num_retries: 2
                  retriable_status_codes: [418]
                  retry_back_off: { base_interval: 0.001s }
            - match: { prefix: "/backoff" }
              route:
                cluster: svc
                retry_policy:
                  retry_on: 5xx
                  num_retries: 10
                  retry_back_off: { base_interval: 0.05s, max_interval: 0.05s }
            - match: { prefix: "/weights" }
              route: { cluster: weighted }
            - match: { path: "/bytes" }
              direct_response: { status: 200, body: { inline_bytes: "%s" } }
            - match: { path: "/env" }
              direct_response: { status: 200, body: { environment_variable: %s } }
            - match: { prefix: "/" }
              route: { cluster: svc }
        """ % (base64.b64encode(b"bytes\x00inline").decode(), ENV_BODY)
        hcm = "stat_prefix: routes\n" + textwrap.dedent(routes) + "http_filters:\n" + ROUTER
        cls.start(bootstrap(
            [listener("routes", hcm)],
            [cluster("svc", [cls.backends["svc"].port]),
             cluster("shadow", [cls.backends["shadow"].port]),
             cluster("hashed", hashed, lb_policy="MAGLEV"),
             cluster("weighted", [cls.backends["heavy"].port, cls.backends["light"].port],
                     weights=[3, 1], extra="  alt_stat_name: weighted_alt\n")]))

    def test_response_headers_are_removed_at_each_level(self):
        status, headers, body = self.get("/weighted")
        self.assertEqual(status, 200, body)
        for h in ("x-rc-drop", "x-vh-drop", "x-cw-drop"):
            self.assertNotIn(h, headers)
        self.assertEqual(headers.get("x-keep"), "1")
        # The cluster weight's list applies only to that route.
        status, headers, _ = self.get("/other")
        self.assertEqual(status, 200)
        self.assertNotIn("x-rc-drop", headers)
        self.assertNotIn("x-vh-drop", headers)
        self.assertEqual(headers.get("x-cw-drop"), "1")

    def test_mirror_keeps_the_host_when_the_shadow_suffix_is_disabled(self):
        status, _, _ = self.get("/mirrored/1")
        self.assertEqual(status, 200)
        got = poll(TIMEOUT_S, lambda: [r for r in self.backends["shadow"].requests
                                       if r["path"] == "/mirrored/1"])
        self.assertEqual(len(got), 1)
        self.assertEqual(dict(got[0]["headers"]).get("host"), "svc")

    def hashed_backend(self, path, source=None):
        kw = {"source_address": (source, 0)} if source else {}
        conn = http.client.HTTPConnection("127.0.0.1", self.proxy.port(), timeout=TIMEOUT_S, **kw)
        try:
            status, headers, body = request(0, "GET", path, conn=conn)
        finally:
            conn.close()
        self.assertEqual(status, 200, body)
        return headers["x-backend"]

    def test_hash_policies_on_a_query_parameter_and_the_source_ip_stick(self):
        by_user, by_source = {}, {}
        for u in range(16):
            seen = {self.hashed_backend("/by-query/%d?a=1&user=u%d" % (i, u)) for i in range(3)}
            self.assertEqual(len(seen), 1, ("user", u, seen))
            by_user[u] = seen.pop()
        for s in range(2, 18):
            source = "127.0.0.%d" % s
            seen = {self.hashed_backend("/by-source/%d" % i, source) for i in range(3)}
            self.assertEqual(len(seen), 1, (source, seen))
            by_source[s] = seen.pop()
        self.assertGreater(len(set(by_user.values())), 1, by_user)
        self.assertGreater(len(set(by_source.values())), 1, by_source)
        # Without a hash policy the same requests spread.
        self.assertGreater(len({self.hashed_backend("/unhashed/x?user=u1") for _ in range(20)}), 1)

    def test_per_try_timeout_bounds_each_try(self):
        before = self.proxy.counter("cluster.svc.upstream_rq_per_try_timeout") or 0
        start = time.monotonic()
        status, _, body = self.get("/per-try/delay/2000")
        self.assertEqual(status, 504, body)
        self.assertLess(time.monotonic() - start, 1.5)
        tries = [r for r in self.backends["svc"].requests if r["path"] == "/per-try/delay/2000"]
        self.assertEqual(len(tries), 2)
        self.assertIsNotNone(
            self.proxy.wait_counter("cluster.svc.upstream_rq_per_try_timeout", before + 2))

    def test_only_retriable_status_codes_are_retried(self):
        status, _, _ = self.get("/codes/status/418/a")
        self.assertEqual(status, 418)
        status, _, _ = self.get("/codes/status/419/b")
        self.assertEqual(status, 419)
        hits = [r["path"] for r in self.backends["svc"].requests if r["path"].startswith("/codes")]
        self.assertEqual(hits.count("/codes/status/418/a"), 3)
        self.assertEqual(hits.count("/codes/status/419/b"), 1)

    def test_retry_back_off_waits_at_most_max_interval(self):
        # Without max_interval the cap is 10 x base (500 ms): ten waits would not all
        # stay under 250 ms.
        status, _, _ = self.get("/backoff/status/503/c")
        self.assertEqual(status, 503)
        times = [r["received_at"] for r in self.backends["svc"].requests
                 if r["path"] == "/backoff/status/503/c"]
        self.assertEqual(len(times), 11)
        gaps = [b - a for a, b in zip(times, times[1:])]
        self.assertLess(max(gaps), 0.25, gaps)

    def test_endpoint_weights_and_alt_stat_name(self):
        n = 40
        for i in range(n):
            status, _, _ = self.get("/weights/%d" % i)
            self.assertEqual(status, 200)
        heavy = len(self.backends["heavy"].requests)
        light = len(self.backends["light"].requests)
        self.assertEqual(heavy + light, n)
        # 3:1 is 30:10; round robin without weights would be 20:20.
        self.assertGreaterEqual(heavy, 26, (heavy, light))
        self.assertGreaterEqual(light, 5, (heavy, light))
        self.assertEqual(self.proxy.wait_counter("cluster.weighted_alt.upstream_rq_total", n), n)
        self.assertEqual([k for k in self.proxy.stats() if k.startswith("cluster.weighted.")], [])

    def test_direct_response_bodies_from_inline_bytes_and_the_environment(self):
        status, _, body = self.get("/bytes")
        self.assertEqual((status, body), (200, b"bytes\x00inline"))
        status, _, body = self.get("/env")
        self.assertEqual((status, body), (200, b"body from the environment"))


def set_turnout(binary):
    global TURNOUT
    TURNOUT = binary


if __name__ == "__main__":
    sys.exit(run_suite("fields_test", set_turnout))
