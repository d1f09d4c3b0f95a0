#!/usr/bin/env python3
"""examples/kubernetes/ without a cluster (Kubernetes cannot run here): every
YAML file parses; the manifests agree with each other (ports, names, the
Secret, the volumes, the webhook's Service and path) and with turnout-cp's
flags; `turnout-cp serve` accepts the Deployments' args as they are written;
make-certs.sh makes a CA and a certificate for the Service's DNS name with
which a real turnout-cp, started with the manifest's flags, serves the webhook
to a client that trusts only the generated caBundle; the sample app's pods,
sent through it as the API server would, get the sidecar with the image the
manifest names; and the Dockerfile installs every library the binaries link.

Usage: kubernetes_manifests_test.py <turnout-binary> <turnout-cp-binary> <source-dir>
"""

import base64
import copy
import glob
import json
import os
import re
import shutil
import signal
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
from turnout_process import _poll  # noqa: E402

TURNOUT = None
TURNOUT_CP = None
EXAMPLES = None

CP_VARIANTS = ("turnout-cp.yaml", "turnout-cp-etcd.yaml")


def load_path(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def load(name):
    return load_path(os.path.join(EXAMPLES, name))


def find(docs, kind, name=None):
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, "want one %s %s, have %d" % (kind, name, len(found))
    return found[0]


def flags(args):
    """`serve --a x --b y --c` -> {"--a": "x", ...} (a flag without a value: True)."""
    assert args[0] == "serve", args
    out, i = {}, 1
    while i < len(args):
        flag = args[i]
        assert flag.startswith("--"), flag
        assert flag not in out, "%s twice" % flag
        if flag == "--webhook-plaintext":
            out[flag] = True
            i += 1
        else:
            out[flag] = args[i + 1]
            i += 2
    return out


def host_port(text):
    host, _, port = text.rpartition(":")
    return host, int(port)


def container_port(container, port):
    """The containerPort a probe's or Service's port (name or number) names."""
    for p in container.get("ports", []):
        if port in (p.get("name"), p["containerPort"]):
            return p["containerPort"]
    raise AssertionError("no port %r in container %s" % (port, container["name"]))


class ManifestsTest(unittest.TestCase):
    def test_every_yaml_parses_into_named_objects(self):
        files = sorted(glob.glob(os.path.join(EXAMPLES, "*.yaml")))
        self.assertEqual([os.path.basename(f) for f in files],
                         ["namespace.yaml", "sample-app.yaml", "turnout-cp-etcd.yaml", "turnout-cp.yaml",
                          "webhook.yaml"])
        for path in files:
            with self.subTest(os.path.basename(path)):
                docs = load(os.path.basename(path))
                self.assertTrue(docs)
                seen = set()
                for d in docs:
                    self.assertIn("apiVersion", d)
                    self.assertIn("kind", d)
                    self.assertTrue(d["metadata"]["name"])
                    key = (d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"])
                    self.assertNotIn(key, seen)
                    seen.add(key)

    def test_turnout_cp_deployments_agree_with_their_service_and_flags(self):
        webhook = find(load("webhook.yaml"), "MutatingWebhookConfiguration")["webhooks"][0]
        svc_ref = webhook["clientConfig"]["service"]
        ns = find(load("namespace.yaml"), "Namespace")["metadata"]["name"]
        for variant in CP_VARIANTS:
            with self.subTest(variant):
                docs = load(variant)
                dep = find(docs, "Deployment", "turnout-cp")
                svc = find(docs, "Service", "turnout-cp")
                sa = find(docs, "ServiceAccount", "turnout-cp")
                for d in (dep, svc, sa):
                    self.assertEqual(d["metadata"]["namespace"], ns)
                # No RBAC: turnout-cp never calls the API server.
                self.assertFalse([d for d in docs if d["kind"] in ("Role", "ClusterRole", "RoleBinding",
                                                                   "ClusterRoleBinding")])
                self.assertIs(sa["automountServiceAccountToken"], False)
                pod = dep["spec"]["template"]
                self.assertEqual(pod["spec"]["serviceAccountName"], "turnout-cp")
                self.assertEqual(dep["spec"]["selector"]["matchLabels"], svc["spec"]["selector"])
                for k, v in svc["spec"]["selector"].items():
                    self.assertEqual(pod["metadata"]["labels"][k], v)
                (c,) = pod["spec"]["containers"]
                self.assertEqual(c["command"], ["turnout-cp"])
                f = flags(c["args"])
                ports = {p["name"]: p for p in svc["spec"]["ports"]}
                # xDS on 18000, the API on 18080, the webhook behind 443.
                for flag, name, number in (("--xds-address", "grpc-xds", 18000),
                                           ("--http-address", "http-api", 18080),
                                           ("--webhook-address", "https-webhook", None)):
                    host, port = host_port(f[flag])
                    self.assertEqual(host, "0.0.0.0", flag)
                    self.assertEqual(container_port(c, ports[name]["targetPort"]), port, flag)
                    if number:
                        self.assertEqual(port, number)
                        self.assertEqual(ports[name]["port"], number)
                self.assertEqual(ports["grpc-xds"].get("appProtocol"), "grpc")
                # The webhook configuration names this Service and port, path /inject.
                self.assertEqual((svc_ref["name"], svc_ref["namespace"]),
                                 (svc["metadata"]["name"], svc["metadata"]["namespace"]))
                self.assertEqual(svc_ref["port"], ports["https-webhook"]["port"])
                self.assertEqual(svc_ref["path"], "/inject")
                # Sidecars reach ADS through the Service.
                self.assertEqual(f["--inject-xds-address"], "%s.%s.svc:%d" % (
                    svc["metadata"]["name"], ns, ports["grpc-xds"]["port"]))
                self.assertEqual(f["--inject-proxy-image"], c["image"])
                # Probes on the API's /healthz.
                for probe in ("readinessProbe", "livenessProbe"):
                    get = c[probe]["httpGet"]
                    self.assertEqual(get["path"], "/healthz")
                    self.assertEqual(container_port(c, get["port"]), 18080)
                # The TLS files come from the Secret make-certs.sh writes.
                mounts = {m["name"]: m for m in c["volumeMounts"]}
                volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
                for flag, key in (("--webhook-tls-cert-file", "tls.crt"), ("--webhook-tls-key-file", "tls.key")):
                    directory, _, file = f[flag].rpartition("/")
                    self.assertEqual(file, key)
                    (mount,) = [m for m in mounts.values() if m["mountPath"] == directory]
                    self.assertEqual(volumes[mount["name"]]["secret"]["secretName"], "turnout-cp-webhook-tls")
                self.assertNotIn("--webhook-plaintext", f)
                self.assertTrue(c["securityContext"]["readOnlyRootFilesystem"])
                if variant == "turnout-cp.yaml":
                    # SQLite: one writer on a PVC.
                    self.assertEqual(dep["spec"]["replicas"], 1)
                    self.assertEqual(dep["spec"]["strategy"]["type"], "Recreate")
                    self.assertNotIn("--store", f)
                    (mount,) = [m for m in mounts.values() if m["mountPath"] == f["--data-dir"]]
                    claim = volumes[mount["name"]]["persistentVolumeClaim"]["claimName"]
                    find(docs, "PersistentVolumeClaim", claim)
                else:
                    self.assertGreater(dep["spec"]["replicas"], 1)
                    self.assertNotIn("--data-dir", f)
                    m = re.fullmatch(r"etcd://([^:/]+):(\d+)(/.*)?", f["--store"])
                    self.assertTrue(m, f["--store"])
                    etcd_host, etcd_port = m.group(1), int(m.group(2))
                    name, etcd_ns, _ = etcd_host.split(".", 2)
                    self.assertEqual(etcd_ns, ns)
                    etcd_svc = find(docs, "Service", name)
                    self.assertIn(etcd_port, [p["port"] for p in etcd_svc["spec"]["ports"]])
                    sts = find(docs, "StatefulSet", name)
                    self.assertEqual(sts["spec"]["serviceName"], name)
                    (etcd,) = sts["spec"]["template"]["spec"]["containers"]
                    self.assertIn("--listen-client-urls=http://0.0.0.0:%d" % etcd_port, etcd["args"])
                    policy = find(docs, "NetworkPolicy", name)
                    allowed = policy["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"]
                    self.assertEqual(allowed, svc["spec"]["selector"])

    def test_webhook_configuration(self):
        config = find(load("webhook.yaml"), "MutatingWebhookConfiguration")
        (w,) = config["webhooks"]
        self.assertEqual(w["admissionReviewVersions"], ["v1"])
        self.assertEqual(w["sideEffects"], "None")
        self.assertIn(w["failurePolicy"], ("Fail", "Ignore"))
        self.assertLessEqual(w["timeoutSeconds"], 10)
        self.assertEqual(w["clientConfig"]["caBundle"], "REPLACED-BY-make-certs.sh")
        (rule,) = w["rules"]
        self.assertEqual(rule["operations"], ["CREATE"])
        self.assertEqual((rule["apiGroups"], rule["apiVersions"], rule["resources"]), ([""], ["v1"], ["pods"]))
        # turnout-cp's own namespace is never selected (its pods would wait on
        # themselves), the sample app's is.
        selector = w["namespaceSelector"]["matchLabels"]
        system = find(load("namespace.yaml"), "Namespace")
        self.assertFalse(all(system["metadata"].get("labels", {}).get(k) == v for k, v in selector.items()))
        shop = find(load("sample-app.yaml"), "Namespace")
        self.assertTrue(all(shop["metadata"]["labels"].get(k) == v for k, v in selector.items()))
        (expr,) = w["objectSelector"]["matchExpressions"]
        self.assertEqual((expr["key"], expr["operator"], expr["values"]), ("turnout.dev/inject", "NotIn", ["false"]))

    def test_sample_app(self):
        docs = load("sample-app.yaml")
        ns = find(docs, "Namespace")["metadata"]["name"]
        services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
        for dep in (d for d in docs if d["kind"] == "Deployment"):
            with self.subTest(dep["metadata"]["name"]):
                self.assertEqual(dep["metadata"]["namespace"], ns)
                pod = dep["spec"]["template"]
                self.assertEqual(pod["metadata"]["annotations"]["turnout.dev/inject"], "true")
                labels = pod["metadata"]["labels"]
                self.assertEqual(dep["spec"]["selector"]["matchLabels"], labels)
                # Each Service selects exactly one Deployment's pods.
                for svc in services.values():
                    sel = svc["spec"]["selector"]
                    if all(labels.get(k) == v for k, v in sel.items()):
                        (c,) = pod["spec"]["containers"]
                        self.assertEqual(container_port(c, svc["spec"]["ports"][0]["targetPort"]), 9080)
        for svc in services.values():
            sel = svc["spec"]["selector"]
            matching = [d for d in docs if d["kind"] == "Deployment" and
                        all(d["spec"]["template"]["metadata"]["labels"].get(k) == v for k, v in sel.items())]
            self.assertEqual(len(matching), 1, svc["metadata"]["name"])


class CertsAndWebhookTest(unittest.TestCase):
    """make-certs.sh, then a real turnout-cp with the manifest's flags."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="turnout_k8s_manifests_")
        self.out = os.path.join(self.tmp, "generated")
        r = subprocess.run([os.path.join(EXAMPLES, "make-certs.sh"), self.out], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.cp = None

    def tearDown(self):
        if self.cp:
            self.cp.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_make_certs_outputs(self):
        out = self.out
        r = subprocess.run(["openssl", "verify", "-CAfile", os.path.join(out, "ca.crt"), os.path.join(out, "tls.crt")],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        sans = subprocess.run(["openssl", "x509", "-in", os.path.join(out, "tls.crt"), "-noout", "-ext",
                               "subjectAltName"], capture_output=True, text=True).stdout
        self.assertIn("DNS:turnout-cp.turnout-system.svc,", sans)
        self.assertEqual(oct(os.stat(os.path.join(out, "tls.key")).st_mode & 0o777), "0o600")
        self.assertEqual(oct(os.stat(os.path.join(out, "ca.key")).st_mode & 0o777), "0o600")
        (secret,) = load_path(os.path.join(out, "webhook-tls-secret.yaml"))
        self.assertEqual(secret["metadata"], {"name": "turnout-cp-webhook-tls", "namespace": "turnout-system"})
        self.assertEqual(secret["type"], "kubernetes.io/tls")
        for key in ("tls.crt", "tls.key"):
            with open(os.path.join(out, key), "rb") as f:
                self.assertEqual(base64.b64decode(secret["data"][key]), f.read())
        (generated,) = load_path(os.path.join(out, "webhook.yaml"))
        (template,) = load("webhook.yaml")
        with open(os.path.join(out, "ca.crt"), "rb") as f:
            self.assertEqual(base64.b64decode(generated["webhooks"][0]["clientConfig"]["caBundle"]), f.read())
        generated["webhooks"][0]["clientConfig"]["caBundle"] = template["webhooks"][0]["clientConfig"]["caBundle"]
        self.assertEqual(generated, template)
        # A second run rotates the serving certificate and keeps the CA (caBundle).
        with open(os.path.join(out, "ca.crt"), "rb") as f:
            ca = f.read()
        with open(os.path.join(out, "tls.crt"), "rb") as f:
            cert = f.read()
        r = subprocess.run([os.path.join(EXAMPLES, "make-certs.sh"), out], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(out, "ca.crt"), "rb") as f:
            self.assertEqual(f.read(), ca)
        with open(os.path.join(out, "tls.crt"), "rb") as f:
            self.assertNotEqual(f.read(), cert)

    def start_cp(self, variant):
        """turnout-cp with the Deployment's args, where only the addresses
        (port 0 on loopback), the store (a temporary SQLite) and the TLS file
        paths (make-certs.sh's output) differ."""
        dep = find(load(variant), "Deployment", "turnout-cp")
        (c,) = dep["spec"]["template"]["spec"]["containers"]
        f = flags(c["args"])
        replaced = {"--xds-address", "--http-address", "--webhook-address", "--data-dir", "--store",
                    "--webhook-tls-cert-file", "--webhook-tls-key-file"}
        extra = []
        for flag, value in f.items():
            if flag not in replaced:
                extra += [flag] if value is True else [flag, value]
        workdir = os.path.join(self.tmp, "cp-" + variant)  # a fresh one: no stale address file
        os.makedirs(workdir)
        webhook_path = os.path.join(workdir, "webhook.addr")
        self.cp = TurnoutCp(TURNOUT_CP, workdir, extra_args=extra + [
            "--webhook-address", "127.0.0.1:0", "--webhook-address-path", webhook_path,
            "--webhook-tls-cert-file", os.path.join(self.out, "tls.crt"),
            "--webhook-tls-key-file", os.path.join(self.out, "tls.key")]).start()

        def port():
            try:
                with open(webhook_path) as fh:
                    text = fh.read().strip()
            except OSError:
                return None
            return int(text.rsplit(":", 1)[1]) if text else None
        self.webhook_port = _poll(10, port)
        self.assertTrue(self.webhook_port, self.cp.output())
        return f

    def post(self, review):
        """As the API server: TLS trusting only caBundle, for the Service's name."""
        (config,) = load_path(os.path.join(self.out, "webhook.yaml"))
        client = config["webhooks"][0]["clientConfig"]
        ref = client["service"]
        context = ssl.create_default_context(cadata=base64.b64decode(client["caBundle"]).decode())
        import http.client
        import socket

        class Conn(http.client.HTTPSConnection):
            def connect(self):
                sock = socket.create_connection((self.host, self.port), self.timeout)
                self.sock = self._context.wrap_socket(sock, server_hostname="%s.%s.svc" % (ref["name"],
                                                                                          ref["namespace"]))
        conn = Conn("127.0.0.1", self.webhook_port, context=context, timeout=10)
        conn.request("POST", ref["path"] + "?timeout=%ds" % config["webhooks"][0]["timeoutSeconds"],
                     body=json.dumps(review), headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        body = json.loads(resp.read())
        conn.close()
        return resp.status, body

    def test_sample_pods_through_the_manifest_flags(self):
        for variant in CP_VARIANTS:
            with self.subTest(variant):
                f = self.start_cp(variant)
                for dep in (d for d in load("sample-app.yaml") if d["kind"] == "Deployment"):
                    template = dep["spec"]["template"]
                    pod = {"apiVersion": "v1", "kind": "Pod",
                           "metadata": dict(copy.deepcopy(template["metadata"]),
                                            generateName=dep["metadata"]["name"] + "-5d8b7c9f4-",
                                            namespace=dep["metadata"]["namespace"]),
                           "spec": copy.deepcopy(template["spec"])}
                    pod["metadata"]["labels"]["pod-template-hash"] = "5d8b7c9f4"
                    review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                              "request": {"uid": "uid-" + dep["metadata"]["name"],
                                          "kind": {"group": "", "version": "v1", "kind": "Pod"},
                                          "resource": {"group": "", "version": "v1", "resource": "pods"},
                                          "namespace": dep["metadata"]["namespace"], "operation": "CREATE",
                                          "object": pod, "oldObject": None, "dryRun": False}}
                    status, answer = self.post(review)
                    self.assertEqual(status, 200, answer)
                    response = answer["response"]
                    self.assertEqual(response["uid"], review["request"]["uid"])
                    self.assertTrue(response["allowed"])
                    patched = jsonpatch.JsonPatch(json.loads(base64.b64decode(response["patch"]))).apply(pod)
                    proxy = [c for c in patched["spec"]["containers"] if c["name"] == "turnout-proxy"]
                    self.assertEqual(len(proxy), 1)
                    self.assertEqual(proxy[0]["image"], f["--inject-proxy-image"])
                    self.assertEqual(proxy[0]["imagePullPolicy"], f["--inject-image-pull-policy"])
                    args = proxy[0]["args"]
                    service = args[args.index("--service-cluster") + 1]
                    self.assertEqual(service, "reviews" if dep["metadata"]["name"].startswith("reviews")
                                     else "client")
                    bootstrap = yaml.safe_load(args[args.index("--config-yaml") + 1])
                    xds = bootstrap["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0]
                    address = xds["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
                    self.assertEqual("%s:%d" % (address["address"], address["port_value"]),
                                     f["--inject-xds-address"])
                    self.assertEqual(patched["spec"]["initContainers"][-1]["name"], "turnout-init")
                self.cp.stop()
                self.cp = None


class DockerfileTest(unittest.TestCase):
    def test_image_has_every_library_the_binaries_link(self):
        with open(os.path.join(EXAMPLES, "Dockerfile")) as f:
            text = f.read()
        install = re.search(r"apt-get install -y --no-install-recommends(.*?)&&", text, re.S).group(1)
        packages = set(install.replace("\\", " ").split())
        self.assertIn("iptables", packages)  # `turnout iptables` runs it
        copy_line = re.search(r"^COPY (.*) /usr/local/bin/$", text, re.M).group(1).split()
        build_dir = os.environ.get("TURNOUT_BUILD_DIR")
        if build_dir:
            for src in copy_line:
                self.assertTrue(os.path.exists(os.path.join(build_dir, src[len("build/"):])), src)
        base = {"libc6", "libgcc-s1", "libstdc++6", "zlib1g"}  # in debian:12-slim
        for binary in (TURNOUT, TURNOUT_CP):
            ldd = subprocess.run(["ldd", binary], capture_output=True, text=True, timeout=30).stdout
            for lib in re.findall(r"=> (/\S+)", ldd):
                owner = subprocess.run(["dpkg", "-S", os.path.realpath(lib)], capture_output=True, text=True)
                if owner.returncode != 0:
                    owner = subprocess.run(["dpkg", "-S", lib], capture_output=True, text=True)
                self.assertEqual(owner.returncode, 0, lib)
                package = owner.stdout.split(":", 1)[0]
                if package not in base:
                    self.assertIn(package, packages, "%s (%s) for %s" % (package, lib, binary))


def main():
    global TURNOUT, TURNOUT_CP, EXAMPLES
    if len(sys.argv) < 4:
        print("usage: kubernetes_manifests_test.py <turnout-binary> <turnout-cp-binary> <source-dir> "
              "[unittest args]", file=sys.stderr)
        return 2
    TURNOUT, TURNOUT_CP = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    EXAMPLES = os.path.join(os.path.abspath(sys.argv[3]), "examples", "kubernetes")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    start = time.monotonic()
    prog = unittest.main(module="__main__", argv=[sys.argv[0]] + sys.argv[4:], exit=False, verbosity=2)
    print("kubernetes_manifests_test: %.1fs" % (time.monotonic() - start), file=sys.stderr)
    return 0 if prog.result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
