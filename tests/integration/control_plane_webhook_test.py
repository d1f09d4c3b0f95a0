#!/usr/bin/env python3
"""turnout-cp's mutating admission webhook against the real binary, over HTTPS
with a certificate made by openssl at test time: the AdmissionReview v1
fixtures of tests/configs/kubernetes/ POSTed with python's ssl and with curl,
each JSON Patch applied with python3-jsonpatch (RFC 6902) to the review's pod
and the result checked; pods that must pass unchanged; malformed reviews of
every kind (400 with a reason) and an oversized one (413), after which
turnout-cp still serves; plaintext refused on the TLS port; a rotated
certificate served without a restart; flag errors; and the injected sidecar
itself: its args, expanded as the kubelet does, start a real turnout that
connects to this turnout-cp's ADS, is listed in /v1/proxies under the pod's
node id, and answers its readiness probe.

Usage: control_plane_webhook_test.py <turnout-binary> <turnout-cp-binary>
"""

import base64
import copy
import glob
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

import jsonpatch
import yaml

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "support"))

from turnout_cp_process import TurnoutCp  # noqa: E402
from turnout_process import TurnoutProcess, _poll  # noqa: E402
import webhook_pki  # noqa: E402

TURNOUT = None
TURNOUT_CP = None
FIXTURES = os.path.join(HERE, "..", "configs", "kubernetes")


def fixture(name):
    with open(os.path.join(FIXTURES, name), "rb") as f:
        return f.read()


def wait_file(path, proc, deadline_s=10):
    def ready():
        if proc.poll() is not None:
            raise RuntimeError("turnout-cp exited with %s" % proc.returncode)
        try:
            with open(path) as f:
                text = f.read().strip()
        except OSError:
            return None
        return text or None
    return _poll(deadline_s, ready)


class SniConnection(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1 verifying the certificate for the Service's DNS name,
    as the API server calls it."""

    def __init__(self, port, context, server_hostname=webhook_pki.SERVICE_DNS):
        super().__init__("127.0.0.1", port, context=context, timeout=10)
        self.server_hostname = server_hostname

    def connect(self):
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.server_hostname)


class WebhookCp(TurnoutCp):
    """turnout-cp with the webhook on 127.0.0.1:0 over HTTPS."""

    def __init__(self, workdir, cert, key, extra=()):
        self.webhook_path = os.path.join(workdir, "webhook.addr")
        super().__init__(TURNOUT_CP, workdir, extra_args=[
            "--webhook-address", "127.0.0.1:0", "--webhook-address-path", self.webhook_path,
            "--webhook-tls-cert-file", cert, "--webhook-tls-key-file", key] + list(extra))
        self.webhook_port = None

    def start(self):
        if os.path.exists(self.webhook_path):
            os.unlink(self.webhook_path)
        super().start()
        text = wait_file(self.webhook_path, self.proc)
        if not text:
            raise RuntimeError("no webhook address:\n" + self.output())
        self.webhook_port = int(text.rsplit(":", 1)[1])
        return self


class WebhookTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="turnout_cp_webhook_")
        cls.ca = webhook_pki.make_ca(cls.tmp)
        cls.cert, cls.key = webhook_pki.make_server_cert(cls.tmp, cls.ca)
        cls.context = ssl.create_default_context(cafile=cls.ca[0])
        workdir = os.path.join(cls.tmp, "cp")
        os.makedirs(workdir)
        cls.cp = WebhookCp(workdir, cls.cert, cls.key).start()

    @classmethod
    def tearDownClass(cls):
        cls.cp.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def tearDown(self):
        self.assertIsNone(self.cp.proc.poll(), "turnout-cp died:\n" + self.cp.output())

    def post(self, body, path="/inject?timeout=10s", content_type="application/json", conn=None):
        own = conn is None
        conn = conn or SniConnection(self.cp.webhook_port, self.context)
        headers = {"Content-Type": content_type} if content_type else {}
        try:
            conn.request("POST", path, body=body, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            if own:
                conn.close()
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = raw
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, parsed

    def review(self, name):
        """POSTs fixture `name`: (the review, its response, the patched pod or None)."""
        body = fixture(name)
        review = json.loads(body)
        status, headers, answer = self.post(body)
        self.assertEqual(status, 200, answer)
        self.assertEqual(headers["content-type"], "application/json")
        self.assertEqual(answer["apiVersion"], "admission.k8s.io/v1")
        self.assertEqual(answer["kind"], "AdmissionReview")
        response = answer["response"]
        self.assertEqual(response["uid"], review["request"]["uid"])
        if "patch" not in response:
            self.assertNotIn("patchType", response)
            return review, response, None
        self.assertEqual(response["patchType"], "JSONPatch")
        patch = jsonpatch.JsonPatch(json.loads(base64.b64decode(response["patch"])))
        # apply() fails on a path whose parent is missing (RFC 6902 `add`).
        pod = patch.apply(copy.deepcopy(review["request"]["object"]))
        return review, response, pod

    def containers(self, pod, key="containers"):
        return {c["name"]: c for c in pod["spec"].get(key, [])}

    # ---- injection --------------------------------------------------------------

    def test_plain_pod_is_injected(self):
        review, response, pod = self.review("pod_plain.json")
        self.assertTrue(response["allowed"])
        self.assertNotIn("warnings", response)
        self.assertEqual([c["name"] for c in pod["spec"]["initContainers"]], ["turnout-init"])
        self.assertEqual([c["name"] for c in pod["spec"]["containers"]], ["reviews", "turnout-proxy"])
        self.assertEqual(pod["metadata"]["annotations"],
                         {"turnout.dev/inject": "true", "turnout.dev/status": "injected"})
        # Everything else is the pod as it was.
        original = review["request"]["object"]
        self.assertEqual(pod["spec"]["containers"][0], original["spec"]["containers"][0])
        self.assertEqual(pod["spec"]["volumes"], original["spec"]["volumes"])
        self.assertEqual(pod["metadata"]["labels"], original["metadata"]["labels"])
        init = self.containers(pod, "initContainers")["turnout-init"]
        self.assertEqual(init["command"], ["turnout"])
        self.assertEqual(init["args"], ["iptables", "--proxy-port", "15001", "--inbound-capture-port", "15006",
                                        "--proxy-uid", "1337", "--proxy-gid", "1337",
                                        "--exclude-inbound-ports", "15021"])
        self.assertEqual(init["securityContext"]["capabilities"]["add"], ["NET_ADMIN", "NET_RAW"])
        self.assertEqual(init["securityContext"]["runAsUser"], 0)
        self.assertIs(init["securityContext"]["runAsNonRoot"], False)
        proxy = self.containers(pod)["turnout-proxy"]
        self.assertEqual(proxy["securityContext"]["runAsUser"], 1337)
        self.assertEqual(proxy["securityContext"]["runAsGroup"], 1337)
        self.assertEqual(proxy["readinessProbe"]["httpGet"], {"path": "/healthz/ready", "port": 15021})
        self.assertEqual([e["name"] for e in proxy["env"]], ["POD_NAME", "POD_NAMESPACE"])

    def test_existing_init_containers_and_annotations(self):
        _, response, pod = self.review("pod_init_containers_and_annotations.json")
        self.assertTrue(response["allowed"])
        self.assertEqual([c["name"] for c in pod["spec"]["initContainers"]], ["wait-for-db", "turnout-init"])
        annotations = pod["metadata"]["annotations"]
        self.assertEqual(annotations["turnout.dev/status"], "injected")
        self.assertEqual(annotations["prometheus.io/port"], "9090")
        self.assertEqual(len(annotations), 7)
        args = self.containers(pod)["turnout-proxy"]["args"]
        self.assertEqual(args[args.index("--service-cluster") + 1], "ratings")
        init = self.containers(pod, "initContainers")["turnout-init"]
        self.assertEqual(init["args"][-1], "9090,9091,15021")

    def test_label_without_annotations_map(self):
        _, response, pod = self.review("pod_label_no_annotations.json")
        self.assertTrue(response["allowed"])
        self.assertEqual(pod["metadata"]["annotations"], {"turnout.dev/status": "injected"})
        self.assertIn("turnout-proxy", self.containers(pod))

    def test_injected_pod_reviewed_again_is_unchanged(self):
        # What a reinvocation sees: the patched pod passes as it is.
        review, _, pod = self.review("pod_plain.json")
        again = copy.deepcopy(review)
        again["request"]["object"] = pod
        status, _, answer = self.post(json.dumps(again))
        self.assertEqual(status, 200)
        self.assertTrue(answer["response"]["allowed"])
        self.assertNotIn("patch", answer["response"])

    def test_pods_that_pass_unchanged(self):
        for name in ("pod_already_injected_container.json", "pod_already_injected_status.json",
                     "pod_not_annotated.json", "deployment.json", "pod_update.json", "pod_host_network.json"):
            with self.subTest(name):
                _, response, pod = self.review(name)
                self.assertTrue(response["allowed"])
                self.assertIsNone(pod)
                if name == "pod_host_network.json":
                    self.assertEqual(len(response["warnings"]), 1)
                    self.assertIn("hostNetwork", response["warnings"][0])
                else:
                    self.assertNotIn("warnings", response)

    def test_curl_over_https(self):
        r = subprocess.run(
            ["curl", "-sS", "--max-time", "10", "--cacert", self.ca[0],
             "--resolve", "%s:%d:127.0.0.1" % (webhook_pki.SERVICE_DNS, self.cp.webhook_port),
             "-H", "Content-Type: application/json", "--data-binary",
             "@" + os.path.join(FIXTURES, "pod_plain.json"), "-w", "\n%{http_code}",
             "https://%s:%d/inject" % (webhook_pki.SERVICE_DNS, self.cp.webhook_port)],
            capture_output=True, text=True, timeout=20)
        self.assertEqual(r.returncode, 0, r.stderr)
        body, _, code = r.stdout.rpartition("\n")
        self.assertEqual(code, "200")
        self.assertEqual(json.loads(body)["response"]["patchType"], "JSONPatch")

    def test_keep_alive(self):
        conn = SniConnection(self.cp.webhook_port, self.context)
        try:
            for name in ("pod_plain.json", "pod_not_annotated.json", "pod_plain.json"):
                status, _, answer = self.post(fixture(name), conn=conn)
                self.assertEqual(status, 200)
        finally:
            conn.close()

    # ---- errors -----------------------------------------------------------------

    def assert_still_serving(self):
        status, _, answer = self.post(fixture("pod_plain.json"))
        self.assertEqual(status, 200)
        self.assertIn("patch", answer["response"])

    def test_malformed_reviews_get_400_with_the_reason(self):
        expected = {
            "not_json.txt": ("the body is not JSON", None),
            "not_an_object.json": ("the body is not a JSON object", None),
            "wrong_api_version.json": ("'admission.k8s.io/v1beta1' is not admission.k8s.io/v1", "apiVersion"),
            "wrong_kind.json": ("'AdmissionRequest' is not AdmissionReview", "kind"),
            "missing_request.json": ("request: missing", "request"),
            "missing_uid.json": ("request.uid: missing", "request.uid"),
            "uid_not_a_string.json": ("not a string", "request.uid"),
            "object_not_a_pod.json": ("'ConfigMap' is not Pod", "request.object.kind"),
            "object_not_an_object.json": ("not an object", "request.object"),
            "missing_object.json": ("request.object: missing", "request.object"),
            "missing_containers.json": ("missing", "request.object.spec.containers"),
            "annotation_not_a_string.json": ("not a string", None),
        }
        names = sorted(os.path.basename(p) for p in glob.glob(os.path.join(FIXTURES, "malformed", "*")))
        self.assertEqual(names, sorted(expected))  # every fixture is checked
        for name, (message, field) in expected.items():
            with self.subTest(name):
                status, headers, answer = self.post(fixture(os.path.join("malformed", name)))
                self.assertEqual(status, 400, answer)
                self.assertEqual(headers["content-type"], "application/json")
                self.assertIn(message, answer["error"])
                if field:
                    self.assertEqual(answer.get("field"), field)
                self.assert_still_serving()

    def test_hostile_bodies(self):
        for body in (b"", b"\xff\xfe\x00", b"[" * 200000, b'{"apiVersion":"admission.k8s.io/v1"' * 1000,
                     json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                                 "request": {"uid": "u", "kind": {"kind": "Pod"}, "operation": "CREATE",
                                             "namespace": "shop", "object": {"spec": {"containers": [7]}}}})):
            with self.subTest(body[:40]):
                status, _, answer = self.post(body)
                self.assertEqual(status, 400, answer)
                self.assertTrue(answer["error"])
        self.assert_still_serving()

    def test_deep_nesting_is_refused_at_once(self):
        # protobuf's JSON parser is quadratic in the nesting depth: 40 KB of
        # brackets used to keep turnout-cp's one thread busy for minutes.
        deep = b"[" * 20000 + b"]" * 20000
        start = time.monotonic()
        status, _, answer = self.post(deep)
        self.assertEqual(status, 400)
        self.assertIn("deeper than 32", answer["error"])
        # The REST API shares the guard (model.cc).
        status, _, answer = self.cp.put("/v1/services/deep", '{"port": 80, "x": %s}' % deep.decode(),
                                        headers={"Content-Type": "application/json"})
        self.assertEqual(status, 400)
        self.assertIn("deeper than 32", answer["error"])
        self.assertLess(time.monotonic() - start, 5)
        self.assert_still_serving()

    def test_oversized_body_is_413(self):
        body = b'{"apiVersion":"admission.k8s.io/v1","pad":"' + b"x" * (5 * 1024 * 1024) + b'"}'
        try:
            status, _, answer = self.post(body)
            self.assertEqual(status, 413)
            self.assertIn("too large", answer["error"])
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass  # refused from Content-Length and closed while we were still sending
        self.assert_still_serving()

    def test_wrong_method_path_and_content_type(self):
        conn = SniConnection(self.cp.webhook_port, self.context)
        conn.request("GET", "/inject")
        resp = conn.getresponse()
        resp.read()
        conn.close()
        self.assertEqual(resp.status, 405)
        self.assertEqual(resp.getheader("Allow"), "POST")
        status, _, answer = self.post(fixture("pod_plain.json"), path="/v1/services")
        self.assertEqual(status, 404)
        status, _, answer = self.post(fixture("pod_plain.json"), content_type="text/plain")
        self.assertEqual(status, 415)

    def test_plaintext_is_refused_on_the_tls_port(self):
        body = fixture("pod_plain.json")
        with socket.create_connection(("127.0.0.1", self.cp.webhook_port), timeout=10) as s:
            s.sendall(b"POST /inject HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n" % len(body) + body)
            received = b""
            try:
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    received += chunk
            except ConnectionResetError:
                pass
        self.assertNotIn(b"HTTP/1.1", received)
        self.assertNotIn(b"patch", received)
        r = subprocess.run(["curl", "-sS", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}",
                            "-H", "Content-Type: application/json", "--data-binary", "{}",
                            "http://127.0.0.1:%d/inject" % self.cp.webhook_port],
                           capture_output=True, text=True, timeout=20)
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual(r.stdout, "000")
        self.assert_still_serving()

    def test_untrusted_client_view(self):
        # A client that does not trust the CA fails the handshake: the server
        # does present the certificate it was given, nothing else.
        strict = ssl.create_default_context()
        with self.assertRaises(ssl.SSLCertVerificationError):
            self.post(fixture("pod_plain.json"), conn=SniConnection(self.cp.webhook_port, strict))
        self.assert_still_serving()

    # ---- the injected sidecar runs --------------------------------------------------

    def test_injected_sidecar_connects_and_gets_ready(self):
        _, _, pod = self.review("pod_plain.json")
        proxy = self.containers(pod)["turnout-proxy"]
        # The kubelet's $(VAR) expansion from the downward API env.
        env = {"POD_NAME": "reviews-v1-5d8b7c9f4-x2x7q", "POD_NAMESPACE": "shop"}
        for e in proxy["env"]:
            self.assertIn(e["name"], env)
        args = [a.replace("$(POD_NAME)", env["POD_NAME"]).replace("$(POD_NAMESPACE)", env["POD_NAMESPACE"])
                for a in proxy["args"]]
        self.assertNotIn("$(", " ".join(args))
        flags = dict(zip(args[0::2], args[1::2]))
        self.assertEqual(sorted(flags), ["--concurrency", "--config-yaml", "--log-level", "--service-cluster",
                                         "--service-node"])
        bootstrap = yaml.safe_load(flags["--config-yaml"])
        self.assertEqual(bootstrap["node"]["metadata"],
                         {"turnout": {"mode": "sidecar", "service": "reviews", "namespace": "shop"}})
        # On loopback, not in a pod: the fixed ports become free ones and the
        # ADS endpoint this turnout-cp.
        bootstrap["admin"]["address"]["socket_address"]["port_value"] = 0
        (listener,) = bootstrap["static_resources"]["listeners"]
        self.assertEqual(listener["address"]["socket_address"]["port_value"], 15021)
        listener["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": 0}
        (xds,) = bootstrap["static_resources"]["clusters"]
        endpoint = xds["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
        self.assertEqual(endpoint["address"]["socket_address"],
                         {"address": "turnout-cp.turnout-system.svc", "port_value": 18000})
        endpoint["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": self.cp.xds_port}
        # Nor the capture listeners (fixed ports 15001 and 15006 on this host):
        # kubernetes_injected_pod_test.py runs the sidecar with them, in its
        # own network namespaces.
        bootstrap["node"]["metadata"]["turnout"]["mode"] = "host-test"
        sidecar = TurnoutProcess(TURNOUT, yaml.safe_dump(bootstrap),
                                 extra_args=["--service-node", flags["--service-node"],
                                             "--service-cluster", flags["--service-cluster"]])
        sidecar.start()  # waits for /ready LIVE: the ADS initial fetch done
        try:
            node = "reviews-v1-5d8b7c9f4-x2x7q.shop"

            def listed():
                status, _, body = self.cp.get("/v1/proxies")
                return status == 200 and [p for p in body["proxies"] if p["node_id"] == node]
            proxies = _poll(10, listed)
            self.assertTrue(proxies, self.cp.get("/v1/proxies"))
            self.assertEqual(proxies[0]["node_cluster"], "reviews")
            port = sidecar.port("readiness")
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/healthz/ready")
            self.assertEqual(conn.getresponse().status, 200)
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/other")
            resp = conn.getresponse()
            resp.read()
            self.assertEqual(resp.status, 404)
            conn.close()
            # /healthcheck/fail (what a draining sidecar does) fails readiness.
            status, _, _ = sidecar.admin("POST", "/healthcheck/fail")
            self.assertEqual(status, 200)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/healthz/ready")
            self.assertEqual(conn.getresponse().status, 503)
            conn.close()
        finally:
            sidecar.stop()


class RotationTest(unittest.TestCase):
    def test_rotated_certificate_serves_new_connections(self):
        tmp = tempfile.mkdtemp(prefix="turnout_cp_webhook_rot_")
        try:
            ca = webhook_pki.make_ca(tmp)
            live = os.path.join(tmp, "live")
            os.makedirs(live)
            first = webhook_pki.make_server_cert(tmp, ca, name="first")
            second = webhook_pki.make_server_cert(tmp, ca, name="second", common_name="rotated.turnout-system.svc")
            cert, key = os.path.join(live, "tls.crt"), os.path.join(live, "tls.key")
            shutil.copy(first[0], cert)
            shutil.copy(first[1], key)
            workdir = os.path.join(tmp, "cp")
            os.makedirs(workdir)
            cp = WebhookCp(workdir, cert, key).start()
            context = ssl.create_default_context(cafile=ca[0])
            try:
                def served_cn():
                    conn = SniConnection(cp.webhook_port, context)
                    conn.connect()
                    cn = webhook_pki.common_name(conn.sock.getpeercert(True))
                    conn.close()
                    return cn
                self.assertEqual(served_cn(), webhook_pki.SERVICE_DNS)
                # As a Secret volume rotates: new files, then a rename over the old.
                for src, dst in ((second[0], cert), (second[1], key)):
                    shutil.copy(src, dst + ".new")
                    os.rename(dst + ".new", dst)
                self.assertTrue(_poll(10, lambda: served_cn() == "rotated.turnout-system.svc"))
                # A broken rotation (garbage) keeps the last good certificate.
                with open(cert + ".new", "w") as f:
                    f.write("not a certificate\n")
                os.rename(cert + ".new", cert)
                self.assertTrue(_poll(10, lambda: "reload failed" in cp.output()), cp.output())
                self.assertEqual(served_cn(), "rotated.turnout-system.svc")
                self.assertIsNone(cp.proc.poll())
            finally:
                cp.stop()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


class FlagTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="turnout_cp_webhook_flags_")
        self.ca = webhook_pki.make_ca(self.tmp)
        self.cert, self.key = webhook_pki.make_server_cert(self.tmp, self.ca)
        self.other_cert, self.other_key = webhook_pki.make_server_cert(self.tmp, self.ca, name="other")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def serve(self, *flags):
        r = subprocess.run([TURNOUT_CP, "serve", "--data-dir", os.path.join(self.tmp, "data"),
                            "--http-address", "127.0.0.1:0", "--xds-address", "127.0.0.1:0"] + list(flags),
                           capture_output=True, text=True, timeout=20)
        return r.returncode, r.stderr

    def test_refuses_to_start(self):
        missing = os.path.join(self.tmp, "missing.crt")
        cases = [
            (["--webhook-address", "127.0.0.1:0"], 2, "--webhook-address needs --webhook-tls-cert-file"),
            (["--webhook-address", "127.0.0.1:0", "--webhook-tls-cert-file", self.cert], 2,
             "--webhook-tls-cert-file needs --webhook-tls-key-file"),
            (["--webhook-address", "127.0.0.1:0", "--webhook-tls-key-file", self.key], 2,
             "--webhook-tls-key-file needs --webhook-tls-cert-file"),
            (["--webhook-address", "127.0.0.1:0", "--webhook-plaintext", "--webhook-tls-cert-file", self.cert,
              "--webhook-tls-key-file", self.key], 2, "--webhook-plaintext cannot be combined"),
            (["--webhook-tls-cert-file", self.cert, "--webhook-tls-key-file", self.key], 2,
             "--webhook-tls-cert-file needs --webhook-address"),
            (["--inject-proxy-image", "x:1"], 2, "--inject-* needs --webhook-address"),
            (["--webhook-address", "nowhere"], 2, "--webhook-address: 'nowhere' is not HOST:PORT"),
            (["--webhook-address", "127.0.0.1:0", "--webhook-plaintext=true"], 2,
             "--webhook-plaintext takes no value"),
            (["--webhook-address", "127.0.0.1:0", "--webhook-plaintext", "--inject-image-pull-policy", "Sometimes"],
             2, "--inject-image-pull-policy: 'Sometimes' is not Always"),
            (["--webhook-address", "127.0.0.1:0", "--webhook-tls-cert-file", missing,
              "--webhook-tls-key-file", self.key], 1, "--webhook-tls-cert-file: cannot read '%s'" % missing),
            (["--webhook-address", "127.0.0.1:0", "--webhook-tls-cert-file", self.cert,
              "--webhook-tls-key-file", self.tmp], 1, "--webhook-tls-key-file: cannot read '%s'" % self.tmp),
            (["--webhook-address", "127.0.0.1:0", "--webhook-tls-cert-file", self.key,
              "--webhook-tls-key-file", self.key], 1, "--webhook-tls-cert-file '%s'" % self.key),
            (["--webhook-address", "127.0.0.1:0", "--webhook-tls-cert-file", self.cert,
              "--webhook-tls-key-file", self.other_key], 1, "does not match the certificate"),
        ]
        for flags, code, message in cases:
            with self.subTest(" ".join(flags)):
                rc, err = self.serve(*flags)
                self.assertEqual(rc, code, err)
                self.assertIn(message, err)

    def test_busy_port(self):
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen(1)
            rc, err = self.serve("--webhook-address", "127.0.0.1:%d" % busy.getsockname()[1],
                                 "--webhook-tls-cert-file", self.cert, "--webhook-tls-key-file", self.key)
        self.assertEqual(rc, 1, err)
        self.assertIn("--webhook-address: cannot listen", err)

    def test_explicit_plaintext_for_local_testing(self):
        workdir = os.path.join(self.tmp, "cp")
        os.makedirs(workdir)
        path = os.path.join(workdir, "webhook.addr")
        cp = TurnoutCp(TURNOUT_CP, workdir, extra_args=[
            "--webhook-address", "127.0.0.1:0", "--webhook-address-path", path, "--webhook-plaintext"]).start()
        try:
            port = int(wait_file(path, cp.proc).rsplit(":", 1)[1])
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("POST", "/inject", body=fixture("pod_plain.json"),
                         headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            self.assertEqual(resp.status, 200)
            self.assertIn("patch", json.loads(resp.read())["response"])
            conn.close()
            self.assertIn("plaintext", cp.output())
        finally:
            cp.stop()


def main():
    global TURNOUT, TURNOUT_CP
    if len(sys.argv) < 3:
        print("usage: control_plane_webhook_test.py <turnout-binary> <turnout-cp-binary> [unittest args]",
              file=sys.stderr)
        return 2
    TURNOUT, TURNOUT_CP = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    for b in (TURNOUT, TURNOUT_CP):
        if not os.access(b, os.X_OK):
            print("not executable: %s" % b, file=sys.stderr)
            return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    start = time.monotonic()
    prog = unittest.main(module="__main__", argv=[sys.argv[0]] + sys.argv[3:], exit=False, verbosity=2)
    print("control_plane_webhook_test: %.1fs" % (time.monotonic() - start), file=sys.stderr)
    return 0 if prog.result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
