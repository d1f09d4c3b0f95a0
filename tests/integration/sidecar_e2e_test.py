#!/usr/bin/python3
"""Sidecar mode end to end, in network namespaces the test makes itself.

Three "pods", frontend -> reviews -> ratings, each an app process
(support/chain_app.py) plus a turnout sidecar captured by `turnout iptables`,
in its own network namespace on a private bridge; turnout-cp in another
namespace drives every sidecar over ADS (`turnout-cp bootstrap --mode
capture`). Sandbox forks: reviews for key feat-x, ratings for key feat-y, each
a pod of its own with its own sidecar. Apps call each other by service name
(each namespace's /etc/hosts maps the names to virtual service IPs that exist
nowhere: only the capture and the sidecar's routes get a call to a pod, as
kube-proxy would), and propagate baggage, or only traceparent (frontend's
`/lazy` path, an app that drops baggage).

Asserts: with key feat-x the chain takes the sandbox reviews and the baseline
ratings; without a key, all baseline; key feat-y forks only ratings; a
sandbox deleted sends traffic back within one push; non-HTTP TCP passes
through both captures; a pod whose app propagates only traceparent still
reaches the sandbox (the sidecar remembered the key by trace id).

Usage: sidecar_e2e_test.py <turnout> <turnout-cp>. Exits 77 (CTest: skipped)
with the reason when the machine forbids network namespaces.
"""

import os
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "support"))
import netns  # noqa: E402
from turnout_cp_process import TurnoutCp  # noqa: E402

TURNOUT = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else None
TURNOUT_CP = os.path.abspath(sys.argv[2]) if len(sys.argv) > 2 else None
APP = os.path.join(HERE, "support", "chain_app.py")
PROXY_UID = 1337
CP_IP = "10.88.0.2"
XDS_PORT = 18000
ADMIN_PORT = 15000
DEADLINE_S = 20.0

# Virtual service IPs (the names' addresses in every pod's /etc/hosts).
HOSTS = {"frontend": "10.96.0.10", "reviews": "10.96.0.11", "ratings": "10.96.0.12"}
# pod -> (service, variant, address, port, next hop)
PODS = {
    "frontend": ("frontend", "baseline", "10.88.0.10", 8080, "http://reviews:9080/"),
    "reviews": ("reviews", "baseline", "10.88.0.11", 9080, "http://ratings:9090/"),
    "ratings": ("ratings", "baseline", "10.88.0.12", 9090, None),
    "reviews-fx": ("reviews", "feat-x", "10.88.0.21", 9080, "http://ratings:9090/"),
    "ratings-fy": ("ratings", "feat-y", "10.88.0.22", 9090, None),
}
ECHO_PORT = 5432  # a "database" on the ratings pod, not a service in turnout-cp
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e47%02x"


def traceparent(n):
    return "00-%s-00f067aa0ba902b7-01" % (TRACE_ID % n)


class SidecarE2ETest(netns.TopologyCase, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.setUpTopology("turnout-sidecar-e2e-", "tsc", TURNOUT_CP)

    @classmethod
    def _build(cls):
        topo = cls.topo
        topo.add("cp", CP_IP)
        topo.add("client", "10.88.0.3")
        for pod, (_, _, ip, _, _) in PODS.items():
            topo.add(pod, ip, hosts=HOSTS)
        cls.cp = TurnoutCp(TURNOUT_CP, cls.tmp, command_prefix=topo.wrap("cp", []),
                           xds_address="%s:%d" % (CP_IP, XDS_PORT))
        cls.cp.start()
        cls.cpctl("service", "put", "frontend", "--port", "8080", "--endpoint", "10.88.0.10:8080")
        cls.cpctl("service", "put", "reviews", "--port", "9080", "--endpoint", "10.88.0.11:9080")
        cls.cpctl("service", "put", "ratings", "--port", "9090", "--endpoint", "10.88.0.12:9090")
        # The frontend pod's second app (drops baggage) is a service too: its
        # port gets an inbound HTTP chain, where the sidecar learns the key.
        cls.cpctl("service", "put", "frontend-lazy", "--port", "8081",
                  "--endpoint", "10.88.0.10:8081")
        cls.cpctl("sandbox", "create", "feat-x", "--fork", "reviews=10.88.0.21:9080")
        cls.cpctl("sandbox", "create", "feat-y", "--fork", "ratings=10.88.0.22:9090")
        for pod, (service, variant, ip, port, nxt) in PODS.items():
            topo.run(pod, [TURNOUT, "iptables", "--proxy-uid", str(PROXY_UID),
                           "--proxy-gid", str(PROXY_UID)])
            args = ["/usr/bin/python3", APP, "--name", service, "--variant", variant,
                    "--port", str(port), "--tcp-target", "10.88.0.12:%d" % ECHO_PORT]
            if nxt:
                args += ["--next", nxt]
            if pod == "ratings":
                args += ["--echo-port", str(ECHO_PORT)]
            topo.popen(pod, args, log=os.path.join(cls.tmp, pod + "-app.log"))
            if pod == "frontend":
                # The same frontend, but an app that drops baggage (only traceparent).
                topo.popen(pod, ["/usr/bin/python3", APP, "--name", service, "--variant", "lazy",
                                 "--port", "8081", "--next", nxt, "--propagate", "traceparent"],
                           log=os.path.join(cls.tmp, pod + "-lazy-app.log"))
            cls.startSidecar(pod, TURNOUT, service, "%s:%d" % (CP_IP, XDS_PORT), ADMIN_PORT,
                             PROXY_UID)
        for pod in PODS:
            cls.waitReady(pod)


    @classmethod
    def waitReady(cls, pod):
        cls.waitSidecarReady(pod, ADMIN_PORT, DEADLINE_S)

    def call(self, path="/", port=8080, headers=()):
        """GET from the client namespace to the frontend pod; the JSON chain."""
        return self.clientJson("http://10.88.0.10:%d%s" % (port, path), headers)

    def chain(self, body):
        """[(service, variant), ...] along the call chain."""
        out = []
        while body:
            if "service" not in body:
                self.fail("a hop failed: %r" % body)
            out.append((body["service"], body["variant"]))
            body = body.get("next")
        return out

    def test_no_key_is_all_baseline(self):
        self.assertEqual(self.chain(self.call()), [("frontend", "baseline"),
                                                   ("reviews", "baseline"),
                                                   ("ratings", "baseline")])

    def test_key_takes_the_sandbox_reviews_and_the_baseline_ratings(self):
        for header in ("baggage: turnout-routing-key=feat-x",
                       "tracestate: turnout=feat-x",
                       "x-turnout-routing-key: feat-x"):
            with self.subTest(header=header):
                body = self.call(headers=[header])
                self.assertEqual(self.chain(body), [("frontend", "baseline"),
                                                    ("reviews", "feat-x"),
                                                    ("ratings", "baseline")])

    def test_second_key_forks_only_ratings(self):
        body = self.call(headers=["baggage: turnout-routing-key=feat-y"])
        self.assertEqual(self.chain(body), [("frontend", "baseline"), ("reviews", "baseline"),
                                            ("ratings", "feat-y")])

    def test_unknown_key_is_baseline(self):
        body = self.call(headers=["baggage: turnout-routing-key=feat-nope"])
        self.assertEqual(self.chain(body), [("frontend", "baseline"), ("reviews", "baseline"),
                                            ("ratings", "baseline")])

    def test_tcp_passes_through_both_captures(self):
        body = self.call(path="/tcp")
        self.assertEqual(body.get("tcp"), "echo ping from frontend", body)

    def test_app_that_propagates_only_traceparent_still_reaches_the_sandbox(self):
        body = self.call(port=8081, headers=["baggage: turnout-routing-key=feat-x",
                                             "traceparent: " + traceparent(1)])
        self.assertEqual(self.chain(body), [("frontend", "lazy"), ("reviews", "feat-x"),
                                            ("ratings", "baseline")])
        # The sidecar re-attached the key as baggage: reviews saw it.
        self.assertIn("turnout-routing-key=feat-x", body["next"]["seen"].get("baggage", ""))
        # Another trace, without a key: baseline.
        body = self.call(port=8081, headers=["traceparent: " + traceparent(2)])
        self.assertEqual(self.chain(body)[1], ("reviews", "baseline"))

    def test_each_pod_inbound_listener_has_its_own_ports(self):
        # virtualInbound holds the chains of the pod's own ports (its
        # endpoints' ports and its service's), not one per service.
        import json
        want = {"frontend": {8080, 8081}, "reviews": {9080}, "ratings": {9090},
                "reviews-fx": {9080}, "ratings-fy": {9090}}
        for pod, ports in want.items():
            with self.subTest(pod=pod):
                r = self.topo.run(pod, ["curl", "-s", "--max-time", "5",
                                        "http://127.0.0.1:%d/config_dump" % ADMIN_PORT])
                dump = json.loads(r.stdout)
                got = None
                for c in dump["configs"]:
                    for l in c.get("dynamic_listeners", []):
                        listener = l["active_state"]["listener"]
                        if listener["name"] == "virtualInbound":
                            got = {fc["filter_chain_match"]["destination_port"]
                                   for fc in listener["filter_chains"]}
                self.assertEqual(got, ports)

    def test_z_deleting_a_sandbox_sends_traffic_back(self):
        # Runs last (z): it changes the model.
        self.cpctl("sandbox", "delete", "feat-x")
        end = time.monotonic() + DEADLINE_S
        got = None
        while time.monotonic() < end:
            got = self.chain(self.call(headers=["baggage: turnout-routing-key=feat-x"]))
            if got[1] == ("reviews", "baseline"):
                break
            time.sleep(0.1)
        self.assertEqual(got, [("frontend", "baseline"), ("reviews", "baseline"),
                               ("ratings", "baseline")])
        # And back again.
        self.cpctl("sandbox", "create", "feat-x", "--fork", "reviews=10.88.0.21:9080")
        end = time.monotonic() + DEADLINE_S
        while time.monotonic() < end:
            got = self.chain(self.call(headers=["baggage: turnout-routing-key=feat-x"]))
            if got[1] == ("reviews", "feat-x"):
                break
            time.sleep(0.1)
        self.assertEqual(got[1], ("reviews", "feat-x"))


if __name__ == "__main__":
    if TURNOUT is None or TURNOUT_CP is None:
        sys.exit("usage: sidecar_e2e_test.py <turnout> <turnout-cp>")
    why = netns.namespaces_allowed()
    if why is not None:
        print("SKIP sidecar_e2e_test: " + why)
        sys.exit(77)
    unittest.main(argv=[sys.argv[0]] + sys.argv[3:], verbosity=2)
