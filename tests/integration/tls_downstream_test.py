#!/usr/bin/env python3
"""Downstream TLS (DownstreamTlsContext) against the real turnout binary.

Usage: tls_downstream_test.py <turnout-binary> [unittest args]

Certificates are made by the test with the openssl CLI in a temporary
directory (a CA, a server certificate for svc.test, a client certificate and
one from another CA); no private key is committed. Clients are real: curl
(HTTP/1.1 and h2 by ALPN), openssl s_client, and a raw socket for plaintext
sent to the TLS port. The origin is the HTTP/1.1 FakeBackend.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))

from envoy_yaml import bootstrap, cluster  # noqa: E402
from turnout_process import ProxyWithBackend, run_suite  # noqa: E402

TURNOUT = None  # set from argv in main()
CERTS = None    # the temporary directory of certificates

ALL_TO_SVC = """\
- name: all
  domains: ["*"]
  routes:
  - match: { prefix: "/" }
    route: { cluster: svc }
"""
CHAIN_MARKER = "    - filters:\n"


def openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True, capture_output=True, cwd=CERTS)


def make_certs():
    """ca.pem signs server.pem (svc.test) and client.pem; other-ca signs other-client."""
    for ca in ("ca", "other-ca"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca + ".key",
                "-out", ca + ".pem", "-days", "2", "-subj", "/CN=" + ca)
    for name, ca, san in (("server", "ca", "DNS:svc.test"), ("client", "ca", "URI:spiffe://t/c"),
                          ("other-client", "other-ca", "URI:spiffe://t/o")):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key", "-out",
                name + ".csr", "-subj", "/CN=" + name)
        with open(os.path.join(CERTS, name + ".ext"), "w") as f:
            f.write("subjectAltName=%s\n" % san)
        openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key",
                "-CAcreateserial", "-out", name + ".pem", "-days", "2", "-extfile", name + ".ext")


def tls_chain(extra_common="", extra_context="", cert_by_secret=False, cert_dir=None):
    """A DownstreamTlsContext transport socket for the first filter chain."""
    cert_dir = cert_dir or CERTS
    cert = ("            tls_certificate_sds_secret_configs: [{name: server-cert}]\n"
            if cert_by_secret else
            "            tls_certificates:\n"
            "            - certificate_chain: {filename: %s/server.pem}\n"
            "              private_key: {filename: %s/server.key}\n" % (cert_dir, cert_dir))
    return ("    - transport_socket:\n"
            "        name: envoy.transport_sockets.tls\n"
            "        typed_config:\n"
            "          \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."
            "DownstreamTlsContext\n" + extra_context +
            "          common_tls_context:\n"
            "            alpn_protocols: [h2, http/1.1]\n" + cert + extra_common +
            "      filters:\n")


def tls_bootstrap(backend_port, **kw):
    yaml = bootstrap(ALL_TO_SVC, [cluster("svc", [backend_port])])
    assert CHAIN_MARKER in yaml
    yaml = yaml.replace(CHAIN_MARKER, tls_chain(**kw), 1)
    if kw.get("cert_by_secret"):
        yaml += ("  secrets:\n"
                 "  - name: server-cert\n"
                 "    tls_certificate:\n"
                 "      certificate_chain: {filename: %s/server.pem}\n"
                 "      private_key: {filename: %s/server.key}\n" % (CERTS, CERTS))
    return yaml


class TlsTestCase(ProxyWithBackend):
    KW = {}

    @classmethod
    def bootstrap_yaml(cls, backend_port):
        return tls_bootstrap(backend_port, **cls.KW)

    def curl(self, path, *args):
        return subprocess.run(
            ["curl", "-sS", "--max-time", "10", "--cacert", os.path.join(CERTS, "ca.pem"),
             "--resolve", "svc.test:%d:127.0.0.1" % self.port, "-w", "\n%{http_version} %{http_code}",
             "https://svc.test:%d%s" % (self.port, path)] + list(args),
            capture_output=True, timeout=20)

    def ssl_stat_name(self, short):
        """The listener's ssl.<short> counter's full name."""
        for k in self.proxy.stats():
            if k.startswith("listener.") and k.endswith(".ssl." + short):
                return k
        raise AssertionError("no ssl.%s stat" % short)

    def ssl_stats(self):
        out = {}
        for k, v in self.proxy.stats().items():
            if ".ssl." in k and k.startswith("listener."):
                out[k.split(".ssl.", 1)[1]] = int(v)
        return out


class ServerTlsTest(TlsTestCase):
    def test_http11_and_h2_are_served_by_alpn(self):
        before_h2 = self.proxy.counter("http.ingress.downstream_cx_http2_total")
        r = self.curl("/h2")
        body, _, tail = r.stdout.rpartition(b"\n")
        self.assertEqual(tail, b"2 200", r)
        self.assertEqual(json.loads(body)["path"], "/h2")
        # The connection is TLS, whatever the client claims.
        self.assertEqual(dict(json.loads(body)["headers"]).get("x-forwarded-proto"), "https")
        self.assertEqual(self.proxy.counter("http.ingress.downstream_cx_http2_total"), before_h2 + 1)
        r = self.curl("/h1", "--http1.1")
        self.assertTrue(r.stdout.endswith(b"\n1.1 200"), r)
        self.assertEqual(dict(json.loads(r.stdout.rpartition(b"\n")[0])["headers"])
                         .get("x-forwarded-proto"), "https")
        payload = os.urandom(300000)
        r = subprocess.run(
            ["curl", "-sS", "--max-time", "10", "--cacert", os.path.join(CERTS, "ca.pem"),
             "--resolve", "svc.test:%d:127.0.0.1" % self.port, "--data-binary", "@-",
             "https://svc.test:%d/post" % self.port], input=payload, capture_output=True, timeout=20)
        self.assertEqual(json.loads(r.stdout)["body_len"], len(payload), r)
        self.assertGreaterEqual(self.ssl_stats()["handshake"], 3)

    def test_openssl_s_client_negotiates_h2(self):
        r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % self.port,
                            "-servername", "svc.test", "-alpn", "h2",
                            "-CAfile", os.path.join(CERTS, "ca.pem"), "-verify_return_error"],
                           input=b"", capture_output=True, timeout=20)
        self.assertIn(b"ALPN protocol: h2", r.stdout, r)
        self.assertIn(b"Verify return code: 0 (ok)", r.stdout, r)

    def test_plaintext_on_the_tls_port_gets_no_http_answer(self):
        before = self.ssl_stats()["connection_error"]
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        self.addCleanup(s.close)
        s.sendall(b"GET / HTTP/1.1\r\nHost: svc\r\n\r\n")
        got = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        # Nothing but (at most) a TLS alert record: content type 21.
        self.assertNotIn(b"HTTP/", got)
        if got:
            self.assertEqual(got[0], 21, got)
        self.proxy.wait_stat(self.ssl_stat_name("connection_error"),
                             lambda v: int(v) >= before + 1)
        self.assertNotIn("/", [r["path"] for r in self.backend.requests])


class StaticSecretTest(TlsTestCase):
    KW = {"cert_by_secret": True}

    def test_the_certificate_comes_from_a_static_secret(self):
        r = self.curl("/secret")
        self.assertTrue(r.stdout.endswith(b"\n2 200"), r)


class MutualTlsTest(TlsTestCase):
    KW = {"extra_context": "          require_client_certificate: true\n",
          "extra_common": ("            validation_context:\n"
                           "              trusted_ca: {filename: %s}\n"
                           "              match_typed_subject_alt_names:\n"
                           "              - san_type: URI\n"
                           "                matcher: {exact: \"spiffe://t/c\"}\n")}

    @classmethod
    def setUpClass(cls):
        cls.KW = dict(cls.KW)
        cls.KW["extra_common"] = cls.KW["extra_common"] % os.path.join(CERTS, "ca.pem")
        super().setUpClass()

    def test_a_client_without_a_certificate_is_refused(self):
        before = self.ssl_stats()["fail_verify_no_cert"]
        r = self.curl("/nocert")
        self.assertNotEqual(r.returncode, 0, r)
        self.proxy.wait_stat(self.ssl_stat_name("fail_verify_no_cert"),
                             lambda v: int(v) >= before + 1)

    def test_the_trusted_client_certificate_is_accepted(self):
        r = self.curl("/mtls", "--cert", os.path.join(CERTS, "client.pem"),
                      "--key", os.path.join(CERTS, "client.key"))
        self.assertTrue(r.stdout.endswith(b"\n2 200"), r)

    def test_a_certificate_from_another_ca_is_refused(self):
        before = self.ssl_stats()["fail_verify_error"]
        r = self.curl("/other", "--cert", os.path.join(CERTS, "other-client.pem"),
                      "--key", os.path.join(CERTS, "other-client.key"))
        self.assertNotEqual(r.returncode, 0, r)
        self.proxy.wait_stat(self.ssl_stat_name("fail_verify_error"),
                             lambda v: int(v) >= before + 1)


class ReloadTest(TlsTestCase):
    """The certificate files rotate under a running turnout (Kubernetes
    swaps a mounted secret): new connections get the new certificate within
    seconds; a broken rotation keeps the last good one serving."""

    @classmethod
    def setUpClass(cls):
        cls.dir = os.path.join(CERTS, "rotating")
        os.makedirs(cls.dir, exist_ok=True)
        for f in ("server.pem", "server.key"):
            shutil.copy(os.path.join(CERTS, f), os.path.join(cls.dir, f))
        cls.KW = {"cert_dir": cls.dir}
        super().setUpClass()

    def subject(self):
        r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % self.port,
                            "-servername", "svc.test"], input=b"", capture_output=True, timeout=20)
        for line in r.stdout.decode("latin-1").splitlines():
            if line.startswith("subject="):
                return line
        return None

    def wait_subject(self, want):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            got = self.subject()
            if got is not None and want in got:
                return got
            time.sleep(0.2)
        self.fail("still %r, want %r" % (self.subject(), want))

    def rotate(self, cert_bytes, key_bytes):
        # Write aside, then rename into place: what a secret volume update does.
        for name, data in (("server.key", key_bytes), ("server.pem", cert_bytes)):
            tmp = os.path.join(self.dir, name + ".new")
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, os.path.join(self.dir, name))

    def test_a_rotated_certificate_is_served_and_a_broken_rotation_is_not(self):
        self.wait_subject("CN = server")
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "rotated.key", "-out",
                "rotated.csr", "-subj", "/CN=rotated")
        openssl("x509", "-req", "-in", "rotated.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", "rotated.pem", "-days", "2", "-extfile", "server.ext")
        with open(os.path.join(CERTS, "rotated.pem"), "rb") as c, \
                open(os.path.join(CERTS, "rotated.key"), "rb") as k:
            self.rotate(c.read(), k.read())
        self.wait_subject("CN = rotated")
        r = self.curl("/after-rotation")
        self.assertTrue(r.stdout.endswith(b"\n2 200"), r)
        # A rotation to something that is not a certificate: the last good one
        # keeps serving.
        self.rotate(b"not a certificate", b"not a key")
        time.sleep(1.5)  # past the once-a-second check
        self.assertIn("CN = rotated", self.subject())
        r = self.curl("/after-bad-rotation")
        self.assertTrue(r.stdout.endswith(b"\n2 200"), r)


class ConfigTest(unittest.TestCase):
    def validate(self, yaml):
        return subprocess.run([TURNOUT, "--mode", "validate", "--config-yaml", yaml],
                              capture_output=True, text=True, timeout=20)

    def test_a_missing_certificate_file_names_its_field(self):
        yaml = tls_bootstrap(1).replace("%s/server.pem" % CERTS, "%s/nope.pem" % CERTS)
        r = self.validate(yaml)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("static_resources.listeners[0].filter_chains[0].transport_socket."
                      "typed_config.common_tls_context.tls_certificates[0].certificate_chain",
                      r.stderr)

    def test_a_key_that_does_not_match_the_certificate_names_its_field(self):
        yaml = tls_bootstrap(1).replace("%s/server.key" % CERTS, "%s/client.key" % CERTS)
        r = self.validate(yaml)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("tls_certificates[0]", r.stderr)


def set_turnout(binary):
    global TURNOUT
    TURNOUT = binary


if __name__ == "__main__":
    CERTS = tempfile.mkdtemp(prefix="turnout-tls-")
    try:
        make_certs()
        rc = run_suite("tls_downstream_test", set_turnout)
    finally:
        shutil.rmtree(CERTS, ignore_errors=True)
    sys.exit(rc)
