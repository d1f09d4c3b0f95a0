#!/usr/bin/env python3
"""Filter chain selection by SNI against the real turnout binary.

Usage: tls_sni_test.py <turnout-binary> [unittest args]

One listener ("sni") has three chains: a.test (its own certificate, ALPN h2
and http/1.1, routes to backend "a"), *.wild.test (its own certificate, ALPN
http/1.1 only, routes to backend "b") and a default_filter_chain (its own
certificate, a direct response). A second listener ("strict") has one chain
for a.test and no default: anything else is closed and counted in
listener.strict.no_filter_chain_match. Clients are real: curl --resolve and
openssl s_client -servername. Certificates are made with the openssl CLI in
a temporary directory.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))

from fake_backend import FakeBackend  # noqa: E402
from turnout_process import TurnoutProcess, run_suite  # noqa: E402

TURNOUT = None  # set from argv in main()
CERTS = None    # the temporary directory of certificates


def openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True, capture_output=True, cwd=CERTS)


def make_certs():
    """ca.pem signs a.pem (a.test), wild.pem (*.wild.test) and default.pem (default.test)."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "2", "-subj", "/CN=ca")
    for name, san in (("a", "DNS:a.test"), ("wild", "DNS:*.wild.test"),
                      ("default", "DNS:default.test")):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key", "-out",
                name + ".csr", "-subj", "/CN=" + name)
        with open(os.path.join(CERTS, name + ".ext"), "w") as f:
            f.write("subjectAltName=%s\n" % san)
        openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", name + ".pem", "-days", "2", "-extfile", name + ".ext")


def chain(cert, alpn, stat_prefix, route, match=None, key="    - "):
    """One filter chain (`key` starts it: a list item, or `default_filter_chain:`)."""
    out = key + "transport_socket:\n" if key.endswith("- ") else key + "\n      transport_socket:\n"
    out += (
        "        name: envoy.transport_sockets.tls\n"
        "        typed_config:\n"
        "          \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."
        "DownstreamTlsContext\n"
        "          common_tls_context:\n"
        "            alpn_protocols: [%s]\n"
        "            tls_certificates:\n"
        "            - certificate_chain: {filename: %s/%s.pem}\n"
        "              private_key: {filename: %s/%s.key}\n") % (alpn, CERTS, cert, CERTS, cert)
    if match is not None:
        out += "      filter_chain_match: %s\n" % match
    out += (
        "      filters:\n"
        "      - name: envoy.filters.network.http_connection_manager\n"
        "        typed_config:\n"
        "          \"@type\": type.googleapis.com/envoy.extensions.filters.network."
        "http_connection_manager.v3.HttpConnectionManager\n"
        "          stat_prefix: %s\n"
        "          route_config:\n"
        "            virtual_hosts:\n"
        "            - name: all\n"
        "              domains: [\"*\"]\n"
        "              routes:\n"
        "              - match: {prefix: \"/\"}\n"
        "                %s\n"
        "          http_filters:\n"
        "          - name: envoy.filters.http.router\n"
        "            typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.http."
        "router.v3.Router}\n") % (stat_prefix, route)
    return out


def cluster(name, port):
    return ("  - name: %s\n"
            "    connect_timeout: 1s\n"
            "    load_assignment:\n"
            "      cluster_name: %s\n"
            "      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: "
            "{address: 127.0.0.1, port_value: %d}}}}]}]\n") % (name, name, port)


TLS_INSPECTOR = (
    "    listener_filters:\n"
    "    - name: envoy.filters.listener.tls_inspector\n"
    "      typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.listener."
    "tls_inspector.v3.TlsInspector}\n")


def sni_bootstrap(port_a, port_b):
    return (
        "admin:\n"
        "  address: {socket_address: {address: 127.0.0.1, port_value: 0}}\n"
        "static_resources:\n"
        "  listeners:\n"
        "  - name: sni\n"
        "    address: {socket_address: {address: 127.0.0.1, port_value: 0}}\n" + TLS_INSPECTOR +
        "    filter_chains:\n" +
        chain("a", "h2, http/1.1", "chain_a", "route: {cluster: a}",
              match="{server_names: [a.test]}") +
        chain("wild", "http/1.1", "chain_wild", "route: {cluster: b}",
              match="{server_names: [\"*.wild.test\"], transport_protocol: tls}") +
        chain("default", "h2, http/1.1", "chain_default",
              "direct_response: {status: 200, body: {inline_string: default-chain}}",
              key="    default_filter_chain:") +
        "  - name: strict\n"
        # Envoy names listener stats after the configured address (here
        # 127.0.0.1_0, shared by both port-0 listeners) unless stat_prefix.
        "    stat_prefix: strict\n"
        "    address: {socket_address: {address: 127.0.0.1, port_value: 0}}\n"
        "    filter_chains:\n" +
        chain("a", "http/1.1", "strict_a", "route: {cluster: a}",
              match="{server_names: [a.test]}") +
        "  clusters:\n" + cluster("a", port_a) + cluster("b", port_b))


class SniTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.backend_a = cls.backend_b = cls.proxy = None
        try:
            cls.backend_a = FakeBackend("a").start()
            cls.backend_b = FakeBackend("b").start()
            cls.proxy = TurnoutProcess(
                TURNOUT, sni_bootstrap(cls.backend_a.port, cls.backend_b.port)).start()
        except Exception:
            cls.tearDownClass()
            raise
        cls.port = cls.proxy.port("sni")
        cls.strict_port = cls.proxy.port("strict")

    @classmethod
    def tearDownClass(cls):
        for x in (cls.proxy, cls.backend_a, cls.backend_b):
            if x is not None:
                x.stop()

    def curl(self, host, path, port=None, *args):
        port = port or self.port
        return subprocess.run(
            ["curl", "-sS", "--max-time", "10", "--cacert", os.path.join(CERTS, "ca.pem"),
             "--resolve", "%s:%d:127.0.0.1" % (host, port), "-w", "\n%{http_version} %{http_code}",
             "https://%s:%d%s" % (host, port, path)] + list(args),
            capture_output=True, timeout=20)

    def s_client(self, port, servername=None):
        args = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                "-CAfile", os.path.join(CERTS, "ca.pem")]
        args += ["-servername", servername] if servername else ["-noservername"]
        return subprocess.run(args, input=b"", capture_output=True, timeout=20)

    def strict_counter(self, name):
        value = self.proxy.counter("listener.strict." + name)
        self.assertIsNotNone(value, "listener.strict.%s is not in /stats" % name)
        return value

    def test_two_chains_serve_their_own_certificate_alpn_and_routes(self):
        before_a = self.proxy.counter("http.chain_a.downstream_rq_total") or 0
        before_w = self.proxy.counter("http.chain_wild.downstream_rq_total") or 0
        r = self.curl("a.test", "/to-a")
        body, _, tail = r.stdout.rpartition(b"\n")
        self.assertEqual(tail, b"2 200", r)  # chain a offers h2
        self.assertEqual(json.loads(body)["backend"], "a")
        r = self.curl("x.wild.test", "/to-b")
        body, _, tail = r.stdout.rpartition(b"\n")
        self.assertEqual(tail, b"1.1 200", r)  # the wildcard chain offers http/1.1 only
        self.assertEqual(json.loads(body)["backend"], "b")
        self.assertEqual(self.proxy.counter("http.chain_a.downstream_rq_total"), before_a + 1)
        self.assertEqual(self.proxy.counter("http.chain_wild.downstream_rq_total"), before_w + 1)
        self.assertIn(b"subject=CN = a", self.s_client(self.port, "a.test").stdout)
        self.assertIn(b"subject=CN = wild", self.s_client(self.port, "x.wild.test").stdout)
        self.assertIn(b"Verify return code: 0 (ok)", self.s_client(self.port, "A.TEST").stdout)

    def test_a_wildcard_chain_takes_any_depth_of_subdomain_but_not_its_parent(self):
        r = self.curl("deep.er.wild.test", "/deep", None, "--insecure")
        body, _, tail = r.stdout.rpartition(b"\n")
        self.assertEqual(tail, b"1.1 200", r)
        self.assertEqual(json.loads(body)["backend"], "b")
        self.assertIn(b"subject=CN = default", self.s_client(self.port, "wild.test").stdout)

    def test_the_default_filter_chain_serves_unmatched_and_sni_less_connections(self):
        before = self.proxy.counter("http.chain_default.downstream_rq_total") or 0
        r = self.curl("default.test", "/x")
        body, _, tail = r.stdout.rpartition(b"\n")
        self.assertEqual(tail, b"2 200", r)
        self.assertEqual(body, b"default-chain")
        out = self.s_client(self.port).stdout
        self.assertIn(b"subject=CN = default", out)
        self.assertEqual(self.proxy.counter("http.chain_default.downstream_rq_total"), before + 1)
        # Plaintext on this listener: no SNI, transport raw_buffer; the
        # default chain takes it and its TLS handshake fails.
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            self.assertNotIn(b"HTTP/1.1", s.recv(4096))

    def test_no_match_without_a_default_chain_closes_the_connection_and_is_counted(self):
        before = self.strict_counter("no_filter_chain_match")
        before_cx = self.strict_counter("downstream_cx_total")
        out = self.s_client(self.strict_port, "b.test")
        self.assertNotIn(b"BEGIN CERTIFICATE", out.stdout, out)
        self.assertNotIn(b"subject=", out.stdout, out)
        out = self.s_client(self.strict_port)  # no SNI at all
        self.assertNotIn(b"subject=", out.stdout, out)
        with socket.create_connection(("127.0.0.1", self.strict_port), timeout=10) as s:
            s.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            self.assertEqual(s.recv(4096), b"")  # closed without a word
        self.proxy.wait_counter(
            "listener.strict.no_filter_chain_match", before + 3)
        # As in Envoy, a connection without a chain is no downstream connection.
        self.assertEqual(self.strict_counter("downstream_cx_total"), before_cx)
        self.assertEqual(self.strict_counter("ssl.connection_error"), 0)
        # The chain that matches serves.
        r = self.curl("a.test", "/strict", self.strict_port)
        self.assertTrue(r.stdout.endswith(b"\n1.1 200"), r)


class ConfigTest(unittest.TestCase):
    def validate(self, yaml):
        return subprocess.run([TURNOUT, "--mode", "validate", "--config-yaml", yaml],
                              capture_output=True, text=True, timeout=20)

    def test_the_sni_listeners_validate(self):
        r = self.validate(sni_bootstrap(1, 2))
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_two_chains_with_the_same_server_name_are_refused_with_the_path(self):
        yaml = sni_bootstrap(1, 2).replace(
            '{server_names: ["*.wild.test"], transport_protocol: tls}', "{server_names: [a.test]}")
        r = self.validate(yaml)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("static_resources.listeners[0].filter_chains[1].filter_chain_match."
                      "server_names[0]: multiple filter chains with the same matching rules are "
                      "defined: static_resources.listeners[0].filter_chains[0]", r.stderr)

    def test_unsupported_match_fields_and_partial_wildcards_are_refused_with_the_path(self):
        r = self.validate(sni_bootstrap(1, 2).replace(
            "{server_names: [a.test]}", "{server_names: [a.test], address_suffix: \"1.2\"}", 1))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("static_resources.listeners[0].filter_chains[0].filter_chain_match."
                      "address_suffix: not implemented by Envoy either", r.stderr)
        # A destination port of its own is another chain (docs/sidecar.md).
        r = self.validate(sni_bootstrap(1, 2).replace(
            "{server_names: [a.test]}", "{server_names: [a.test], destination_port: 443}", 1))
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.validate(sni_bootstrap(1, 2).replace('"*.wild.test"', '"*wild.test"'))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("static_resources.listeners[0].filter_chains[1].filter_chain_match."
                      "server_names[0]: '*wild.test' is not a server name", r.stderr)


def set_turnout(binary):
    global TURNOUT
    TURNOUT = binary


if __name__ == "__main__":
    CERTS = tempfile.mkdtemp(prefix="turnout-sni-")
    try:
        make_certs()
        rc = run_suite("tls_sni_test", set_turnout)
    finally:
        shutil.rmtree(CERTS, ignore_errors=True)
    sys.exit(rc)
