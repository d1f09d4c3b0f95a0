#!/usr/bin/env python3
"""CORS (Envoy's envoy.filters.http.cors) through the real turnout binary.

Usage: cors_test.py <turnout-binary> [unittest args]

One turnout, two listeners on the same route configuration: `ingress` has
the CORS filter in its http_filters, `nocors` does not (a policy without
the filter does nothing, as in Envoy). The virtual host's policy allows
https://app.example; the /admin route's own policy allows only
https://admin.example and is read first; /shadow's policy is in shadow mode
(origins counted, nothing enforced). The origin is fake_backend.py, which
records what reached it. Clients: curl (a browser's preflight and simple
request, by hand) and http.client. docs/cors.md.
"""

import json
import os
import subprocess
import sys
import textwrap
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))

from envoy_yaml import ROUTER, cluster  # noqa: E402
from fake_backend import FakeBackend, free_closed_port  # noqa: E402
from turnout_process import TurnoutProcess, run_suite  # noqa: E402

TURNOUT = None
TIMEOUT_S = 10
CORS_FILTER = """\
- name: envoy.filters.http.cors
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors
"""
ROUTE_CONFIG = """\
name: local
virtual_hosts:
- name: typed
  domains: ["typed.example"]
  cors:
    allow_origin_string_match: [{exact: "https://deprecated.example"}]
  typed_per_filter_config:
    envoy.filters.http.cors:
      "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy
      allow_origin_string_match: [{exact: "https://app.example"}]
      allow_methods: "PUT"
  routes:
  - match: { prefix: "/" }
    route: { cluster: web }
    typed_per_filter_config:
      envoy.filters.http.cors:
        "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy
        max_age: "7"
- name: web
  domains: ["*"]
  cors:
    allow_origin_string_match: [{exact: "https://app.example"}]
    allow_methods: "GET, POST"
    allow_headers: "content-type, x-grpc-web"
    expose_headers: "grpc-status, grpc-message"
    max_age: "600"
    allow_credentials: true
  routes:
  - match: { prefix: "/admin" }
    route:
      cluster: web
      cors:
        allow_origin_string_match: [{prefix: "https://admin."}]
        forward_not_matching_preflights: false
  - match: { prefix: "/shadow" }
    route:
      cluster: web
      cors:
        filter_enabled: {default_value: {numerator: 0}}
        shadow_enabled: {default_value: {numerator: 100}}
  - match: { prefix: "/down" }
    route: { cluster: down }
  - match: { prefix: "/" }
    route: { cluster: web }
"""


def listener(name, filters):
    hcm = ("stat_prefix: %s\nroute_config:\n%s\nhttp_filters:\n%s"
           % (name, textwrap.indent(ROUTE_CONFIG, "  "), filters))
    return ("- name: %s\n"
            "  address: {socket_address: {address: 127.0.0.1, port_value: 0}}\n"
            "  filter_chains:\n"
            "  - filters:\n"
            "    - name: envoy.filters.network.http_connection_manager\n"
            "      typed_config:\n"
            "        \"@type\": type.googleapis.com/envoy.extensions.filters.network."
            "http_connection_manager.v3.HttpConnectionManager\n%s"
            % (name, textwrap.indent(hcm, " " * 8)))


def curl(port, path, *args):
    """curl -i; returns (status, headers dict lower-cased, body bytes)."""
    out = subprocess.run(["curl", "-s", "-S", "-i", "--max-time", str(TIMEOUT_S)] + list(args)
                         + ["http://127.0.0.1:%d%s" % (port, path)],
                         capture_output=True, timeout=TIMEOUT_S + 5)
    if out.returncode != 0:
        raise AssertionError("curl failed: %s" % out.stderr.decode())
    head, _, body = out.stdout.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body


def preflight(port, path, origin, method="POST", extra=()):
    return curl(port, path, "-X", "OPTIONS", "-H", "Origin: " + origin,
                "-H", "Access-Control-Request-Method: " + method,
                "-H", "Access-Control-Request-Headers: content-type", *extra)


class CorsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.web = FakeBackend("web").start()
        yaml = ("admin:\n  address: {socket_address: {address: 127.0.0.1, port_value: 0}}\n"
                "static_resources:\n  listeners:\n%s%s  clusters:\n%s" % (
                    textwrap.indent(listener("ingress", CORS_FILTER + ROUTER), "  "),
                    textwrap.indent(listener("nocors", ROUTER), "  "),
                    textwrap.indent(cluster("web", [cls.web.port])
                                    + cluster("down", [free_closed_port()]), "  ")))
        try:
            cls.proxy = TurnoutProcess(TURNOUT, yaml).start()
        except Exception:
            cls.web.stop()
            raise
        cls.port = cls.proxy.port("ingress")
        cls.nocors = cls.proxy.port("nocors")

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        cls.web.stop()

    def reached(self, path):
        return [r for r in self.web.requests if r["path"] == path]

    def test_a_preflight_is_answered_here_with_the_virtual_hosts_policy(self):
        valid = self.proxy.counter("http.ingress.cors.origin_valid") or 0
        status, h, body = preflight(self.port, "/api/pre", "https://app.example")
        self.assertEqual(status, 200)
        self.assertEqual(body, b"")
        self.assertEqual(h["access-control-allow-origin"], "https://app.example")
        self.assertEqual(h["access-control-allow-methods"], "GET, POST")
        self.assertEqual(h["access-control-allow-headers"], "content-type, x-grpc-web")
        self.assertEqual(h["access-control-max-age"], "600")
        self.assertEqual(h["access-control-allow-credentials"], "true")
        self.assertEqual(self.reached("/api/pre"), [])  # never went upstream
        self.assertEqual(self.proxy.wait_counter("http.ingress.cors.origin_valid", valid + 1),
                         valid + 1)

    def test_a_simple_request_from_an_allowed_origin_gets_the_response_headers(self):
        status, h, body = curl(self.port, "/api/simple", "-H", "Origin: https://app.example")
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body)["path"], "/api/simple")  # answered by the origin
        self.assertEqual(h["access-control-allow-origin"], "https://app.example")
        self.assertEqual(h["access-control-allow-credentials"], "true")
        self.assertEqual(h["access-control-expose-headers"], "grpc-status, grpc-message")
        # A local reply to a routed request carries them too (Envoy's
        # encoder filters see the router's replies): a browser can read it.
        status, h, _ = curl(self.port, "/down", "-H", "Origin: https://app.example")
        self.assertEqual(status, 503)
        self.assertEqual(h["access-control-allow-origin"], "https://app.example")

    def test_another_origin_gets_no_cors_headers_and_its_preflight_goes_upstream(self):
        invalid = self.proxy.counter("http.ingress.cors.origin_invalid") or 0
        status, h, _ = curl(self.port, "/api/evil", "-H", "Origin: https://evil.example")
        self.assertEqual(status, 200)
        self.assertNotIn("access-control-allow-origin", h)
        status, h, _ = preflight(self.port, "/api/evil-pre", "https://evil.example")
        self.assertEqual(status, 200)  # the origin's answer to OPTIONS
        self.assertEqual(len(self.reached("/api/evil-pre")), 1)
        self.assertNotIn("access-control-allow-origin", h)
        self.assertEqual(self.proxy.wait_counter("http.ingress.cors.origin_invalid", invalid + 2),
                         invalid + 2)

    def test_the_routes_policy_is_read_first(self):
        # /admin allows only https://admin.*; the virtual host's origin is not
        # allowed there, and forward_not_matching_preflights: false answers
        # its preflight here, without access-control-allow-origin.
        status, h, _ = preflight(self.port, "/admin/pre", "https://app.example")
        self.assertEqual(status, 200)
        self.assertNotIn("access-control-allow-origin", h)
        self.assertEqual(h["access-control-allow-methods"], "GET, POST")  # from the vhost
        self.assertEqual(self.reached("/admin/pre"), [])
        status, h, _ = preflight(self.port, "/admin/pre2", "https://admin.example")
        self.assertEqual(h["access-control-allow-origin"], "https://admin.example")

    def test_shadow_mode_counts_and_changes_nothing(self):
        valid = self.proxy.counter("http.ingress.cors.origin_valid") or 0
        status, h, _ = preflight(self.port, "/shadow/pre", "https://app.example")
        self.assertEqual(status, 200)
        self.assertEqual(len(self.reached("/shadow/pre")), 1)  # not answered here
        self.assertNotIn("access-control-allow-origin", h)
        self.assertEqual(self.proxy.wait_counter("http.ingress.cors.origin_valid", valid + 1),
                         valid + 1)

    def test_typed_per_filter_config_policies_replace_the_cors_fields(self):
        # Envoy's newer spelling: the CORS filter's CorsPolicy per virtual
        # host and route; with one there, the cors fields are not read.
        status, h, _ = preflight(self.port, "/t", "https://app.example",
                                 extra=("-H", "Host: typed.example"))
        self.assertEqual(status, 200)
        self.assertEqual(h["access-control-allow-origin"], "https://app.example")
        self.assertEqual(h["access-control-allow-methods"], "PUT")  # the vhost's
        self.assertEqual(h["access-control-max-age"], "7")  # the route's
        self.assertEqual(self.reached("/t"), [])
        status, h, _ = curl(self.port, "/t2", "-H", "Host: typed.example",
                            "-H", "Origin: https://deprecated.example")
        self.assertEqual(status, 200)
        self.assertNotIn("access-control-allow-origin", h)

    def test_without_the_filter_the_policy_does_nothing(self):
        status, h, _ = preflight(self.nocors, "/api/nocors", "https://app.example")
        self.assertEqual(len(self.reached("/api/nocors")), 1)
        self.assertNotIn("access-control-allow-origin", h)
        self.assertIsNone(self.proxy.counter("http.nocors.cors.origin_valid"))


def main():
    def set_binary(b):
        global TURNOUT
        TURNOUT = b
    return run_suite("cors_test", set_binary)


if __name__ == "__main__":
    sys.exit(main())
