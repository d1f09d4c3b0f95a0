#!/usr/bin/python3
"""Pods injected by turnout-cp's webhook, run the way a kubelet runs them, in
network namespaces the test makes (no Kubernetes: it cannot run here).

turnout-cp runs in a namespace of its own with the args of
examples/kubernetes/turnout-cp.yaml (only the data directory and the TLS file
paths differ) and the certificates examples/kubernetes/make-certs.sh makes.
From an "apiserver" namespace, the pod templates of
examples/kubernetes/sample-app.yaml (client, reviews-v1, reviews-feat-x) are
sent to the webhook over HTTPS as AdmissionReviews, trusting only the CA
make-certs.sh wrote, for the Service's DNS name. Each answer's JSON Patch is
applied (python3-jsonpatch), and each patched pod is started in its own
namespace as the kubelet would: the init containers in order, as their
securityContext says (`turnout iptables ...` as root), then the containers:
the app (support/chain_app.py in place of the sample's image) and
turnout-proxy as UID/GID 1337, with its env from the downward API and
`$(VAR)` expanded in its args. turnout-cp's name resolves in each pod
(/etc/hosts, as cluster DNS would), and `reviews` to a virtual IP that exists
nowhere (as a ClusterIP: only the capture and the sidecar's routes reach a
pod).

Asserts: the kubelet's readiness probe (GET <pod IP>:15021/healthz/ready from
outside the pod) answers 200 and its port is excluded from the capture;
turnout-cp lists every sidecar as <pod>.<namespace> with its service; a call
into the client pod goes out through both captures to the baseline reviews,
and with routing key feat-x to the fork.

Usage: kubernetes_injected_pod_test.py <turnout> <turnout-cp> <source-dir>.
Exits 77 (CTest: skipped) with the reason when the machine forbids network
namespaces.
"""

import base64
import copy
import json
import os
import sys
import time
import unittest

import jsonpatch
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "support"))
import netns  # noqa: E402
from turnout_cp_process import TurnoutCp  # noqa: E402

TURNOUT = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else None
TURNOUT_CP = os.path.abspath(sys.argv[2]) if len(sys.argv) > 2 else None
SOURCE = os.path.abspath(sys.argv[3]) if len(sys.argv) > 3 else None
APP = os.path.join(HERE, "support", "chain_app.py")
DEADLINE_S = 20.0
NAMESPACE = "shop"
SERVICE_DNS = "turnout-cp.turnout-system.svc"
CP_IP = "10.88.0.2"
APISERVER_IP = "10.88.0.3"
TESTER_IP = "10.88.0.4"
REVIEWS_VIP = "10.96.0.11"
HOSTS = {"reviews": REVIEWS_VIP, SERVICE_DNS: CP_IP}
# sample-app Deployment -> (pod name, pod IP, the app that stands in for its image)
PODS = {
    "client": ("client-6d5f7c8b9-k2m4p", "10.88.0.10",
               ["--name", "client", "--variant", "baseline", "--port", "8080",
                "--next", "http://reviews:9080/"]),
    "reviews-v1": ("reviews-v1-5d8b7c9f4-q7x2k", "10.88.0.11",
                   ["--name", "reviews", "--variant", "baseline", "--port", "9080"]),
    "reviews-feat-x": ("reviews-feat-x-7c9d6b5f8-z9w8v", "10.88.0.21",
                       ["--name", "reviews", "--variant", "feat-x", "--port", "9080"]),
}


def load(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def serve_flags(args):
    """The Deployment's `serve` args as an ordered list of (flag, value)."""
    assert args[0] == "serve", args
    return [(args[i], args[i + 1]) for i in range(1, len(args), 2)]


class InjectedPodTest(netns.TopologyCase, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.setUpTopology("turnout-k8s-pods-", "tkp", TURNOUT_CP)

    @classmethod
    def _build(cls):
        topo = cls.topo
        examples = os.path.join(SOURCE, "examples", "kubernetes")
        certs = os.path.join(cls.tmp, "generated")
        netns.sh([os.path.join(examples, "make-certs.sh"), certs], timeout=60)
        cls.ca = os.path.join(certs, "ca.crt")
        topo.add("cp", CP_IP)
        topo.add("apiserver", APISERVER_IP, hosts={SERVICE_DNS: CP_IP})
        topo.add("tester", TESTER_IP)
        for deployment, (_, ip, _) in PODS.items():
            topo.add(deployment, ip, hosts=HOSTS)

        # turnout-cp with the manifest's args.
        (dep,) = [d for d in load(os.path.join(examples, "turnout-cp.yaml")) if d["kind"] == "Deployment"]
        (container,) = dep["spec"]["template"]["spec"]["containers"]
        flags = dict(serve_flags(container["args"]))
        extra = []
        for flag, value in serve_flags(container["args"]):
            if flag in ("--data-dir", "--http-address", "--xds-address"):
                continue  # TurnoutCp gives them (same addresses, a temporary data directory)
            if flag == "--webhook-tls-cert-file":
                value = os.path.join(certs, "tls.crt")
            elif flag == "--webhook-tls-key-file":
                value = os.path.join(certs, "tls.key")
            extra += [flag, value]
        cls.webhook_port = int(flags["--webhook-address"].rsplit(":", 1)[1])
        cls.cp = TurnoutCp(TURNOUT_CP, cls.tmp, command_prefix=topo.wrap("cp", []), extra_args=extra,
                           http_address=flags["--http-address"], xds_address=flags["--xds-address"])
        cls.cp.start()
        cls.wait_webhook()

        # The model: reviews with its baseline pod, a fork for feat-x.
        cls.cpctl("service", "put", "reviews", "--port", "9080", "--namespace", NAMESPACE,
                  "--endpoint", PODS["reviews-v1"][1] + ":9080")
        cls.cpctl("sandbox", "create", "feat-x", "--fork", "reviews=%s:9080" % PODS["reviews-feat-x"][1])

        # The pods, as the API server and the kubelet make them.
        sample = {d["metadata"]["name"]: d for d in load(os.path.join(examples, "sample-app.yaml"))
                  if d["kind"] == "Deployment"}
        cls.pods = {}
        for deployment, (name, ip, app) in PODS.items():
            pod = cls.admit(sample[deployment], name)
            cls.pods[deployment] = pod
            cls.run_pod(deployment, pod, name, app)
        for deployment in PODS:
            cls.wait_ready(deployment)


    @classmethod
    def curl(cls, ns, args, timeout=15):
        return cls.topo.run(ns, ["curl", "-s", "--max-time", "10"] + list(args), check=False, timeout=timeout)

    @classmethod
    def wait_webhook(cls):
        end = time.monotonic() + DEADLINE_S
        while time.monotonic() < end:
            r = cls.curl("apiserver", ["-o", "/dev/null", "-w", "%{http_code}", "--cacert", cls.ca,
                                       "https://%s:%d/inject" % (SERVICE_DNS, cls.webhook_port)])
            if r.stdout == b"405":  # GET: it is up, and speaks TLS with this CA
                return
            time.sleep(0.1)
        raise AssertionError("the webhook never answered:\n" + cls.cp.output())

    @classmethod
    def admit(cls, deployment, name):
        """The Deployment's pod as the ReplicaSet creates it, through the
        webhook as the API server calls it: the pod the kubelet gets."""
        template = deployment["spec"]["template"]
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": dict(copy.deepcopy(template["metadata"]), generateName=name.rsplit("-", 1)[0] + "-",
                                namespace=NAMESPACE),
               "spec": copy.deepcopy(template["spec"])}
        pod["metadata"]["labels"]["pod-template-hash"] = name.rsplit("-", 2)[1]
        review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                  "request": {"uid": "uid-" + name, "kind": {"group": "", "version": "v1", "kind": "Pod"},
                              "resource": {"group": "", "version": "v1", "resource": "pods"},
                              "namespace": NAMESPACE, "operation": "CREATE", "object": pod,
                              "oldObject": None, "dryRun": False}}
        path = os.path.join(cls.tmp, name + "-review.json")
        with open(path, "w") as f:
            json.dump(review, f)
        r = cls.curl("apiserver", ["--cacert", cls.ca, "-H", "Content-Type: application/json",
                                   "--data-binary", "@" + path,
                                   "https://%s:%d/inject?timeout=5s" % (SERVICE_DNS, cls.webhook_port)])
        answer = json.loads(r.stdout)["response"]
        assert answer["allowed"] and answer["uid"] == "uid-" + name, answer
        patched = jsonpatch.JsonPatch(json.loads(base64.b64decode(answer["patch"]))).apply(pod)
        patched["metadata"]["name"] = name  # the API server names it after admission
        return patched

    @classmethod
    def command(cls, container):
        cmd = list(container["command"]) + list(container.get("args", []))
        assert cmd[0] == "turnout", cmd
        return [TURNOUT] + cmd[1:]

    @classmethod
    def run_pod(cls, deployment, pod, name, app):
        topo = cls.topo
        # Init containers, in order, each to completion.
        for init in pod["spec"].get("initContainers", []):
            security = init["securityContext"]
            assert security["runAsUser"] == 0 and "NET_ADMIN" in security["capabilities"]["add"], security
            r = topo.run(deployment, cls.command(init), check=False)
            if r.returncode != 0:
                raise AssertionError("init container %s of %s exited %d: %s" % (
                    init["name"], name, r.returncode, (r.stdout + r.stderr).decode(errors="replace")))
        # The containers: the app, then the sidecar as its securityContext says.
        for container in pod["spec"]["containers"]:
            log = os.path.join(cls.tmp, "%s-%s.log" % (name, container["name"]))
            if container["name"] != "turnout-proxy":
                topo.popen(deployment, ["/usr/bin/python3", APP] + app, log=log)
                continue
            security = container["securityContext"]
            assert security["runAsUser"] == security["runAsGroup"], security  # setpriv sets both
            env = {}
            for e in container["env"]:
                field = e["valueFrom"]["fieldRef"]["fieldPath"]
                env[e["name"]] = {"metadata.name": name, "metadata.namespace": NAMESPACE}[field]
            cmd = cls.command(container)
            for var, value in env.items():
                cmd = [a.replace("$(%s)" % var, value) for a in cmd]
            assert "$(" not in " ".join(cmd), cmd
            topo.popen(deployment, cmd, user=security["runAsUser"], log=log)

    @classmethod
    def wait_ready(cls, deployment):
        """The kubelet's readiness: the sidecar's probe from outside the pod, at
        its IP, and the app listening (its own container's readiness; without
        it a loaded machine sent the first calls to an app not yet bound, and
        the inbound passthrough answered 503)."""
        pod = cls.pods[deployment]
        (proxy,) = [c for c in pod["spec"]["containers"] if c["name"] == "turnout-proxy"]
        probe = proxy["readinessProbe"]["httpGet"]
        ip = PODS[deployment][1]
        app = PODS[deployment][2]
        app_port = int(app[app.index("--port") + 1])
        listening = ("import socket, sys\n"
                     "try:\n"
                     "    socket.create_connection(('127.0.0.1', %d), 1).close()\n"
                     "except OSError:\n"
                     "    sys.exit(1)\n" % app_port)
        end = time.monotonic() + DEADLINE_S
        while time.monotonic() < end:
            r = cls.curl("tester", ["-o", "/dev/null", "-w", "%{http_code}",
                                    "http://%s:%d%s" % (ip, probe["port"], probe["path"])])
            if r.stdout == b"200" and cls.topo.run(deployment, ["/usr/bin/python3", "-c", listening],
                                                   check=False).returncode == 0:
                return
            time.sleep(0.1)
        cls._dump()
        raise AssertionError("%s never became ready" % deployment)

    def call(self, headers=()):
        args = ["http://%s:8080/" % PODS["client"][1]]
        for h in headers:
            args += ["-H", h]
        r = self.curl("tester", args)
        try:
            body = json.loads(r.stdout)
        except ValueError:
            self._dump()
            self.fail("no JSON from the client pod: rc %d, %r" % (r.returncode, r.stdout[:500]))
        out = []
        while body:
            self.assertIn("service", body, body)
            out.append((body["service"], body["variant"]))
            body = body.get("next")
        return out

    def test_every_pod_got_the_sidecar_and_the_capture(self):
        for deployment, pod in self.pods.items():
            with self.subTest(deployment):
                self.assertEqual([c["name"] for c in pod["spec"]["initContainers"]], ["turnout-init"])
                self.assertEqual([c["name"] for c in pod["spec"]["containers"]][-1], "turnout-proxy")
                self.assertEqual(pod["metadata"]["annotations"]["turnout.dev/status"], "injected")
                rules = self.topo.run(deployment, ["iptables-save", "-t", "nat"]).stdout.decode()
                self.assertIn("REDIRECT --to-ports 15001", rules)
                self.assertIn("REDIRECT --to-ports 15006", rules)
                self.assertRegex(rules, r"--dport 15021 -j RETURN")  # the probe is never captured

    def test_turnout_cp_knows_every_sidecar(self):
        proxies = json.loads(self.cpctl("proxies", "--output", "json"))["proxies"]
        seen = {p["node_id"]: p["node_cluster"] for p in proxies}
        for deployment, (name, _, _) in PODS.items():
            service = "client" if deployment == "client" else "reviews"
            self.assertEqual(seen.get("%s.%s" % (name, NAMESPACE)), service, seen)

    def test_calls_go_through_both_captures_to_the_baseline(self):
        self.assertEqual(self.call(), [("client", "baseline"), ("reviews", "baseline")])

    def test_the_routing_key_takes_the_fork(self):
        for header in ("baggage: turnout-routing-key=feat-x", "x-turnout-routing-key: feat-x"):
            with self.subTest(header):
                self.assertEqual(self.call([header]), [("client", "baseline"), ("reviews", "feat-x")])
        self.assertEqual(self.call(["baggage: turnout-routing-key=nope"]),
                         [("client", "baseline"), ("reviews", "baseline")])


if __name__ == "__main__":
    if TURNOUT is None or TURNOUT_CP is None or SOURCE is None:
        sys.exit("usage: kubernetes_injected_pod_test.py <turnout> <turnout-cp> <source-dir>")
    why = netns.namespaces_allowed()
    if why is not None:
        print("SKIP kubernetes_injected_pod_test: " + why)
        sys.exit(77)
    unittest.main(argv=[sys.argv[0]] + sys.argv[4:], verbosity=2)
