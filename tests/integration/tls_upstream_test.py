#!/usr/bin/env python3
"""Upstream TLS (a cluster's UpstreamTlsContext) against the real turnout
binary and real nginx TLS servers.

Usage: tls_upstream_test.py <turnout-binary> [unittest args]

Certificates are made by the test with the openssl CLI in a temporary
directory (tls_downstream_test.make_certs: a CA, server.pem for svc.test, a
client certificate, and a CA the proxy does not trust); no private key is
committed. One nginx process serves several TLS servers on loopback:
  good      server.pem, HTTP/1.1 only
  h2        server.pem, HTTP/2 by ALPN (and HTTP/1.1)
  mtls      server.pem, requires a client certificate from ca.pem
  untrusted a certificate for svc.test from other-ca
Each answers "<name> <uri> proto=<protocol> conn=<nginx connection serial>
reused=<ssl_session_reused> client=<client certificate subject> len=<request
length>", so the tests see what nginx saw on its side of the TLS connection.
nghttpx (in front of nginx's plaintext server) is a second h2-by-ALPN server
for auto_config; its access log records the ALPN of each request.
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "support"))
sys.path.insert(0, HERE)

import tls_downstream_test as certs  # noqa: E402  (make_certs, openssl)
from envoy_yaml import bootstrap, cluster, request  # noqa: E402
from nginx_backend import stop_process, wait_listening  # noqa: E402
from turnout_process import TurnoutProcess, run_suite  # noqa: E402

TURNOUT = None  # set from argv in main()
CERTS = None

SERVERS = ("good", "h2", "mtls", "untrusted", "plain")


def make_other_server_cert():
    """untrusted.pem: a svc.test certificate from the CA turnout does not trust."""
    certs.openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "untrusted.key", "-out",
                  "untrusted.csr", "-subj", "/CN=untrusted")
    with open(os.path.join(CERTS, "untrusted.ext"), "w") as f:
        f.write("subjectAltName=DNS:svc.test\n")
    certs.openssl("x509", "-req", "-in", "untrusted.csr", "-CA", "other-ca.pem", "-CAkey",
                  "other-ca.key", "-CAcreateserial", "-out", "untrusted.pem", "-days", "2",
                  "-extfile", "untrusted.ext")


def free_ports(n):
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class TlsNginx:
    """One nginx with a TLS server per name in SERVERS (ports picked free,
    retried on a collision as support/nginx_backend.py does)."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="turnout-nginx-tls-")
        self.proc = None
        self.ports = {}

    def _server(self, name):
        cert = "untrusted" if name == "untrusted" else "server"
        listen = "listen 127.0.0.1:%d%s%s;" % (
            self.ports[name], "" if name == "plain" else " ssl", " http2" if name == "h2" else "")
        tls = "" if name == "plain" else (
            "ssl_certificate %(c)s/%(cert)s.pem; ssl_certificate_key %(c)s/%(cert)s.key;\n"
            "    ssl_session_cache shared:%(name)s:1m;" % {"c": CERTS, "cert": cert, "name": name})
        if name == "mtls":
            tls += " ssl_verify_client on; ssl_client_certificate %s/ca.pem;" % CERTS
        return """
  server {
    %(listen)s
    %(tls)s
    set $server_label %(name)s;
    %(post)s
    location / {
      return 200 "%(name)s $uri proto=$server_protocol conn=$connection reused=$ssl_session_reused sni=$ssl_server_name client=$ssl_client_s_dn\\n";
    }
  }""" % {"listen": listen, "tls": tls, "name": name,
       # Reading a body to proxy it (to the plaintext server) counts it in
       # $request_length; a body that `return` discards is not counted.
       "post": "" if name == "plain" else
               "location ~ /post$ { proxy_pass http://127.0.0.1:%d; }" % self.ports["plain"]}

    def _config(self):
        d = self.dir
        return """
daemon off;
master_process off;
worker_processes 1;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log info;
events { worker_connections 1024; }
http {
  client_body_temp_path %(d)s/body;
  proxy_temp_path %(d)s/proxy;
  fastcgi_temp_path %(d)s/fastcgi;
  uwsgi_temp_path %(d)s/uwsgi;
  scgi_temp_path %(d)s/scgi;
  default_type text/plain;
  client_max_body_size 8m;
  keepalive_requests 100000;
  log_format it '$server_label|$request_method|$uri|$connection|$request_length|$server_protocol|$ssl_session_reused';
  access_log %(d)s/access.log it;
%(servers)s
}
""" % {"d": d, "servers": "".join(self._server(n) for n in SERVERS)}

    def start(self):
        for _ in range(5):
            self.ports = dict(zip(SERVERS, free_ports(len(SERVERS))))
            conf = os.path.join(self.dir, "nginx.conf")
            with open(conf, "w") as f:
                f.write(self._config())
            self.proc = subprocess.Popen(["nginx", "-p", self.dir, "-c", conf],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                         stdin=subprocess.DEVNULL)
            if self._wait_listening():
                return self
            self._kill()
        raise RuntimeError("nginx did not start: " + self.error_log())

    def _wait_listening(self):
        return wait_listening(self.proc, self.ports.values())

    def error_log(self):
        try:
            with open(os.path.join(self.dir, "error.log")) as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    def requests(self, server):
        """The logged requests of `server`: (method, uri, connection, request_length, protocol,
        session_reused). nginx logs a request once its response is sent, so a test polls."""
        try:
            with open(os.path.join(self.dir, "access.log")) as f:
                lines = f.read().splitlines()
        except OSError:
            return []
        out = []
        for line in lines:
            parts = line.split("|")
            if parts[0] == server:
                out.append(tuple(parts[1:]))
        return out

    def wait_requests(self, server, keep, count):
        end = time.monotonic() + 5
        while True:
            seen = [r for r in self.requests(server) if keep(r)]
            if len(seen) >= count or time.monotonic() > end:
                return seen
            time.sleep(0.02)

    def _kill(self):
        stop_process(self.proc)
        self.proc = None

    def stop(self):
        self._kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class TlsNghttpx:
    """nghttpx as a second real h2-by-ALPN TLS server (its own HTTP/2 stack),
    in front of nginx's plaintext server; its access log records the ALPN each
    request arrived with ($alpn)."""

    def __init__(self, backend_port):
        self.dir = tempfile.mkdtemp(prefix="turnout-nghttpx-")
        self.log = os.path.join(self.dir, "access.log")
        self.port = free_ports(1)[0]
        self.proc = subprocess.Popen(
            ["nghttpx", "--conf=/dev/null", "--workers=1", "--no-ocsp",
             "--frontend=127.0.0.1,%d" % self.port, "--backend=127.0.0.1,%d" % backend_port,
             "--accesslog-file=" + self.log, "--accesslog-format=$alpn $path",
             "--errorlog-file=" + os.path.join(self.dir, "error.log"),
             os.path.join(CERTS, "server.key"), os.path.join(CERTS, "server.pem")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        if not wait_listening(self.proc, [self.port]):
            self.stop()
            raise RuntimeError("nghttpx did not start")

    def wait_alpn(self, path):
        """The ALPN of the logged request for `path` (nghttpx logs once it answered)."""
        end = time.monotonic() + 5
        while time.monotonic() < end:
            try:
                with open(self.log) as f:
                    for line in f.read().splitlines():
                        alpn, _, got = line.partition(" ")
                        if got == path:
                            return alpn
            except OSError:
                pass
            time.sleep(0.02)
        return None

    def stop(self):
        stop_process(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


def tls_socket(sni="svc.test", ca="ca.pem", client_cert=False, sans=("svc.test",), extra=""):
    """An UpstreamTlsContext transport socket (cluster-level YAML, 2 spaces)."""
    out = ("  transport_socket:\n"
           "    name: envoy.transport_sockets.tls\n"
           "    typed_config:\n"
           "      \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."
           "UpstreamTlsContext\n")
    if sni:
        out += "      sni: %s\n" % sni
    out += "      common_tls_context:\n" + extra
    if client_cert:
        out += ("        tls_certificates:\n"
                "        - certificate_chain: {filename: %s/client.pem}\n"
                "          private_key: {filename: %s/client.key}\n" % (CERTS, CERTS))
    if ca:
        out += ("        validation_context:\n"
                "          trusted_ca: {filename: %s/%s}\n" % (CERTS, ca))
        if sans:
            out += "          match_typed_subject_alt_names:\n"
            for s in sans:
                out += "          - san_type: DNS\n            matcher: {exact: \"%s\"}\n" % s
    return out


H2 = ("  typed_extension_protocol_options:\n"
      "    envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n"
      "      \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n"
      "      explicit_http_config:\n"
      "        http2_protocol_options: {}\n")

AUTO = ("  typed_extension_protocol_options:\n"
        "    envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n"
        "      \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n"
        "      auto_config:\n"
        "        http2_protocol_options: { max_concurrent_streams: 50 }\n"
        "        http_protocol_options: {}\n")

HEALTH_CHECK = ("  health_checks:\n"
                "  - timeout: 2s\n"
                "    interval: 0.1s\n"
                "    unhealthy_threshold: 1\n"
                "    healthy_threshold: 1\n"
                "    http_health_check: { path: /healthz }\n")

# (route prefix, cluster name, nginx server, cluster extra YAML)
CLUSTERS = (
    ("/good/", "good", "good", lambda: tls_socket()),
    ("/nosni/", "nosni", "good", lambda: tls_socket(sni="")),
    ("/untrusted/", "untrusted", "untrusted", lambda: tls_socket()),
    ("/san/", "san", "good", lambda: tls_socket(sans=("other.test",))),
    ("/mtls/", "mtls", "mtls", lambda: tls_socket(client_cert=True)),
    ("/nocert/", "nocert", "mtls", lambda: tls_socket()),
    ("/h2/", "h2", "h2", lambda: H2 + tls_socket()),
    ("/h2-to-http1/", "h2_to_http1", "good", lambda: H2 + tls_socket()),
    ("/h2-alpn-http1/", "h2_alpn_http1", "h2",
     lambda: H2 + tls_socket(extra="        alpn_protocols: [http/1.1]\n")),
    ("/plain-tls/", "plain_tls", "plain", lambda: tls_socket()),
    ("/post/", "post", "good", lambda: tls_socket()),
    ("/resume/", "resume", "good", lambda: "  max_requests_per_connection: 1\n" + tls_socket()),
    ("/checked/", "checked", "good", lambda: HEALTH_CHECK + tls_socket()),
    ("/silent/", "silent", "silent", lambda: tls_socket()),
    ("/auto-h2/", "auto_h2", "h2", lambda: AUTO + tls_socket()),
    ("/auto-http1/", "auto_http1", "good", lambda: AUTO + tls_socket()),
    ("/auto-plain/", "auto_plain", "plain", lambda: AUTO),
    ("/auto-nghttpx/", "auto_nghttpx", "nghttpx", lambda: AUTO + tls_socket()),
)


def upstream_bootstrap(ports):
    vhost = "- name: all\n  domains: [\"*\"]\n  routes:\n"
    clusters = []
    for prefix, name, server, extra in CLUSTERS:
        vhost += "  - match: { prefix: \"%s\" }\n    route: { cluster: %s }\n" % (prefix, name)
        clusters.append(cluster(name, [ports[server]]) + extra())
    yaml = bootstrap(vhost, clusters)
    marker = "          stat_prefix: ingress\n"
    assert marker in yaml
    # WebSocket upgrades are configured, so that the HTTP/2 refusal is what answers.
    return yaml.replace(marker, marker + "          upgrade_configs: [{upgrade_type: websocket}]\n", 1)


class UpstreamTlsTest(unittest.TestCase):
    nginx = None
    proxy = None
    nghttpx = None

    silent = None

    @classmethod
    def setUpClass(cls):
        try:
            # Accepts TCP (the kernel's backlog) and never says a word: the
            # TLS handshake waits until the connect timeout.
            cls.silent = socket.socket()
            cls.silent.bind(("127.0.0.1", 0))
            cls.silent.listen(16)
            cls.nginx = TlsNginx().start()
            cls.nginx.ports["silent"] = cls.silent.getsockname()[1]
            cls.nghttpx = TlsNghttpx(cls.nginx.ports["plain"])
            cls.nginx.ports["nghttpx"] = cls.nghttpx.port
            # One worker: session caches and pools are per worker.
            cls.proxy = TurnoutProcess(TURNOUT, upstream_bootstrap(cls.nginx.ports),
                                       extra_args=("--concurrency", "1")).start()
        except Exception:
            cls.tearDownClass()
            raise
        cls.port = cls.proxy.port("ingress")

    @classmethod
    def tearDownClass(cls):
        if cls.proxy is not None:
            cls.proxy.stop()
            cls.proxy = None
        if cls.nghttpx is not None:
            cls.nghttpx.stop()
            cls.nghttpx = None
        if cls.nginx is not None:
            cls.nginx.stop()
            cls.nginx = None
        if cls.silent is not None:
            cls.silent.close()
            cls.silent = None

    def get(self, path, **kw):
        return request(self.port, "GET", path, **kw)

    def c(self, name, stat):
        return self.proxy.counter("cluster.%s.%s" % (name, stat)) or 0

    def test_requests_reuse_one_tls_connection(self):
        for i in range(4):
            status, _, body = self.get("/good/again%d" % i)
            self.assertEqual(status, 200, body)
            self.assertTrue(body.startswith(b"good /good/again%d proto=HTTP/1.1" % i), body)
        seen = self.nginx.wait_requests("good", lambda r: r[1].startswith("/good/again"), 4)
        self.assertEqual(len(seen), 4, seen)
        # One TLS connection carried them all.
        self.assertEqual(len({r[2] for r in seen}), 1, seen)
        self.assertEqual(self.c("good", "upstream_cx_total"), 1)
        self.assertEqual(self.c("good", "ssl.handshake"), 1)
        self.assertEqual(self.c("good", "upstream_cx_http1_total"), 1)

    def test_a_1mib_post_arrives_whole_over_tls(self):
        payload = os.urandom(1024 * 1024)
        status, _, body = request(self.port, "POST", "/post/post", body=payload)
        self.assertEqual(status, 200, body)
        self.assertIn(b"plain /post/post", body)
        seen = self.nginx.wait_requests("good", lambda r: r[1] == "/post/post", 1)
        # nginx read the whole body over TLS before proxying it.
        self.assertGreater(int(seen[0][3]), len(payload), seen)
        self.assertEqual(self.c("post", "ssl.handshake"), 1)

    def test_sni_is_sent_only_when_configured(self):
        status, _, body = self.get("/good/sni")
        self.assertEqual(status, 200, body)
        self.assertIn(b" sni=svc.test ", body)
        status, _, body = self.get("/nosni/x")
        self.assertEqual(status, 200, body)
        self.assertIn(b" sni= ", body)

    def test_a_server_certificate_from_an_untrusted_ca_is_a_connect_failure(self):
        before = self.c("untrusted", "ssl.fail_verify_error")
        status, headers, body = self.get("/untrusted/x")
        self.assertEqual(status, 503, body)
        self.assertIn(b"upstream connect error or disconnect/reset before headers", body)
        self.assertIn(b"connection failure", body)
        self.assertEqual(self.c("untrusted", "ssl.fail_verify_error"), before + 1)
        self.assertGreaterEqual(self.c("untrusted", "upstream_cx_connect_fail"), 1)
        self.assertEqual(self.nginx.requests("untrusted"), [])

    def test_a_handshake_that_never_completes_times_out_as_a_connect_timeout(self):
        # connect_timeout 1s covers the TCP connect and the TLS handshake.
        start = time.monotonic()
        status, _, body = self.get("/silent/x")
        elapsed = time.monotonic() - start
        self.assertEqual(status, 503, body)
        self.assertIn(b"connection timeout", body)
        self.assertGreaterEqual(elapsed, 0.9)
        self.assertLess(elapsed, 4)
        self.assertEqual(self.c("silent", "upstream_cx_connect_timeout"), 1)
        self.assertEqual(self.c("silent", "ssl.connection_error"), 1)

    def test_a_san_mismatch_is_a_connect_failure(self):
        before = self.c("san", "ssl.fail_verify_san")
        status, _, body = self.get("/san/x")
        self.assertEqual(status, 503, body)
        self.assertIn(b"connection failure", body)
        self.assertEqual(self.c("san", "ssl.fail_verify_san"), before + 1)
        self.assertEqual(self.nginx.requests("good")
                         and [r for r in self.nginx.requests("good") if r[1].startswith("/san/")],
                         [])

    def test_plaintext_server_behind_a_tls_cluster_is_a_connect_failure(self):
        status, _, body = self.get("/plain-tls/x")
        self.assertEqual(status, 503, body)
        self.assertGreaterEqual(self.c("plain_tls", "ssl.connection_error"), 1)

    def test_mtls_presents_the_client_certificate(self):
        status, _, body = self.get("/mtls/x")
        self.assertEqual(status, 200, body)
        self.assertIn(b"client=CN=client", body)

    def test_mtls_without_a_client_certificate_is_refused_by_the_server(self):
        status, _, body = self.get("/nocert/x")
        # nginx completes the handshake and answers 400 over TLS.
        self.assertEqual(status, 400, body)
        self.assertIn(b"No required SSL certificate was sent", body)

    def test_a_second_connection_to_the_host_resumes_the_tls_session(self):
        # max_requests_per_connection 1: every request opens a connection.
        for i in range(3):
            status, _, body = self.get("/resume/%d" % i)
            self.assertEqual(status, 200, body)
        self.assertEqual(self.c("resume", "upstream_cx_total"), 3)
        self.assertEqual(self.c("resume", "ssl.handshake"), 3)
        self.assertEqual(self.c("resume", "ssl.session_reused"), 2)
        seen = self.nginx.wait_requests("good", lambda r: r[1].startswith("/resume/"), 3)
        self.assertEqual([r[5] for r in seen], [".", "r", "r"], seen)

    def test_h2_over_tls_negotiates_alpn_h2(self):
        status, _, body = self.get("/h2/x")
        self.assertEqual(status, 200, body)
        self.assertIn(b"proto=HTTP/2.0", body)
        status, _, body = self.get("/h2/y")
        self.assertEqual(status, 200, body)
        self.assertEqual(self.c("h2", "upstream_cx_http2_total"), 1)
        self.assertEqual(self.c("h2", "ssl.handshake"), 1)
        payload = os.urandom(1024 * 1024)
        status, _, body = request(self.port, "POST", "/h2/post", body=payload)
        self.assertIn(b"plain /h2/post", body)
        self.assertEqual(status, 200, body)
        seen = self.nginx.wait_requests("h2", lambda r: r[1] == "/h2/post", 1)
        self.assertEqual(seen[0][4], "HTTP/2.0", seen)
        self.assertGreater(int(seen[0][3]), len(payload), seen)

    def test_auto_config_speaks_h2_to_a_server_that_selects_it_by_alpn(self):
        for i in range(3):
            status, _, body = self.get("/auto-h2/x%d" % i)
            self.assertEqual(status, 200, body)
            self.assertTrue(body.startswith(b"h2 /auto-h2/x%d proto=HTTP/2.0" % i), body)
        self.assertEqual(self.c("auto_h2", "upstream_cx_http2_total"), 1)
        self.assertEqual(self.c("auto_h2", "upstream_cx_http1_total"), 0)
        self.assertEqual(self.c("auto_h2", "upstream_cx_connect_fail"), 0)

    def test_auto_config_speaks_h2_to_nghttpx(self):
        for i in range(2):
            status, _, body = self.get("/auto-nghttpx/n%d" % i)
            self.assertEqual(status, 200, body)
            self.assertTrue(body.startswith(b"plain /auto-nghttpx/n%d" % i), body)
            self.assertEqual(self.nghttpx.wait_alpn("/auto-nghttpx/n%d" % i), "h2")
        self.assertEqual(self.c("auto_nghttpx", "upstream_cx_http2_total"), 1)
        self.assertEqual(self.c("auto_nghttpx", "upstream_cx_http1_total"), 0)

    def test_auto_config_speaks_http1_to_a_server_without_h2(self):
        for i in range(3):
            status, _, body = self.get("/auto-http1/x%d" % i)
            self.assertEqual(status, 200, body)
            self.assertTrue(body.startswith(b"good /auto-http1/x%d proto=HTTP/1.1" % i), body)
        seen = self.nginx.wait_requests("good", lambda r: r[1].startswith("/auto-http1/"), 3)
        self.assertEqual([r[4] for r in seen], ["HTTP/1.1"] * 3, seen)
        self.assertEqual(self.c("auto_http1", "upstream_cx_http2_total"), 0)
        self.assertEqual(self.c("auto_http1", "upstream_cx_connect_fail"), 0)
        # The probe that learned http/1.1, then one HTTP/1 connection reused.
        self.assertEqual(self.c("auto_http1", "upstream_cx_http1_total"), 1)

    def test_auto_config_without_tls_is_http1(self):
        status, _, body = self.get("/auto-plain/x")
        self.assertEqual(status, 200, body)
        self.assertTrue(body.startswith(b"plain /auto-plain/x proto=HTTP/1.1"), body)

    def test_an_http2_cluster_to_a_server_without_h2_fails_the_connection(self):
        status, _, body = self.get("/h2-to-http1/x")
        self.assertEqual(status, 503, body)
        self.assertIn(b"connection failure", body)
        self.assertEqual([r for r in self.nginx.requests("good") if r[1] == "/h2-to-http1/x"], [])

    def test_configured_alpn_protocols_win_over_h2(self):
        # The context names http/1.1 only: h2 is not offered, the server picks
        # http/1.1, and the HTTP/2 cluster refuses to speak h2 to it.
        status, _, body = self.get("/h2-alpn-http1/x")
        self.assertEqual(status, 503, body)

    def test_active_health_checks_of_a_tls_cluster_run_over_tls(self):
        self.proxy.wait_counter("cluster.checked.health_check.success", 2)
        self.assertEqual(self.c("checked", "health_check.failure"), 0)
        self.assertGreaterEqual(self.c("checked", "ssl.handshake"), 2)
        seen = self.nginx.wait_requests("good", lambda r: r[1] == "/healthz", 2)
        self.assertGreaterEqual(len(seen), 2)
        status, _, body = self.get("/checked/x")
        self.assertEqual(status, 200, body)

    def test_an_upgrade_to_an_h2_upstream_is_an_extended_connect_never_a_plain_request(self):
        # A WebSocket tunnel over TLS is relayed (tunnel_tls_test); over
        # HTTP/2 it goes as an extended CONNECT (RFC 8441;
        # tunnel_http2_upstream_test), on an explicit h2 cluster and on an
        # auto_config host that chose h2 by ALPN alike. nginx does not take
        # one (it sends no SETTINGS_ENABLE_CONNECT_PROTOCOL): its 400 comes
        # back, and it never saw a GET it could answer as a plain request.
        for prefix in ("/h2/", "/auto-h2/"):
            status, _, body = self.get(prefix + "ws", headers={"Connection": "Upgrade",
                                                               "Upgrade": "websocket"})
            self.assertEqual(status, 400, (prefix, body))
            self.assertIn(b"nginx", body)
        self.assertEqual([r for r in self.nginx.requests("h2")
                          if r[1].endswith("/ws") and r[0] == "GET"], [])


class UpstreamTlsConfigTest(unittest.TestCase):
    def validate(self, yaml):
        return subprocess.run([TURNOUT, "--mode", "validate", "--config-yaml", yaml],
                              capture_output=True, text=True, timeout=20)

    def yaml(self, extra):
        return bootstrap("- name: all\n  domains: [\"*\"]\n  routes:\n"
                         "  - match: { prefix: \"/\" }\n    route: { cluster: svc }\n",
                         [cluster("svc", [1]) + extra])

    def test_a_good_upstream_tls_context_validates(self):
        r = self.validate(self.yaml(tls_socket(client_cert=True)))
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_a_missing_trusted_ca_file_names_its_field(self):
        r = self.validate(self.yaml(tls_socket(ca="nope.pem")))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("static_resources.clusters[0].transport_socket.typed_config."
                      "common_tls_context.validation_context.trusted_ca", r.stderr)

    def test_a_missing_client_certificate_names_its_field_when_serving_too(self):
        yaml = self.yaml(tls_socket(client_cert=True)).replace("client.pem", "gone.pem")
        r = self.validate(yaml)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("static_resources.clusters[0].transport_socket.typed_config."
                      "common_tls_context.tls_certificates[0].certificate_chain", r.stderr)
        serve = subprocess.run([TURNOUT, "--config-yaml", yaml], capture_output=True, text=True,
                               timeout=20)
        self.assertNotEqual(serve.returncode, 0)
        self.assertIn("tls_certificates[0].certificate_chain", serve.stderr)

    def test_auto_config_http3_protocol_options_is_rejected_with_its_path(self):
        r = self.validate(self.yaml(AUTO.replace("        http_protocol_options: {}\n",
                                                 "        http3_protocol_options: {}\n")))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("auto_config.http3_protocol_options", r.stderr)
        self.assertIn("HTTP/3 upstreams are not supported by turnout", r.stderr)

    def test_auto_config_with_tls_validates(self):
        r = self.validate(self.yaml(AUTO + tls_socket()))
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_an_unhonoured_upstream_tls_field_is_rejected_with_its_path(self):
        r = self.validate(self.yaml(tls_socket() + "      allow_renegotiation: true\n"))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("static_resources.clusters[0].transport_socket.typed_config."
                      "allow_renegotiation", r.stderr)


def set_turnout(binary):
    global TURNOUT
    TURNOUT = binary


if __name__ == "__main__":
    CERTS = tempfile.mkdtemp(prefix="turnout-tls-up-")
    certs.CERTS = CERTS
    try:
        certs.make_certs()
        make_other_server_cert()
        rc = run_suite("tls_upstream_test", set_turnout)
    finally:
        shutil.rmtree(CERTS, ignore_errors=True)
    sys.exit(rc)
