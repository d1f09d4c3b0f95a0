#!/usr/bin/python3
"""Dual-stack captured sidecars end to end, in network namespaces the test makes.

Pods frontend -> reviews, plus reviews-fx (the fork of reviews for key
feat-x), each with an IPv4 and an IPv6 address, an app listening on both
families (support/chain_app.py --dual-stack), `turnout iptables --ipv6`
(which also puts ::6 on lo) and a sidecar from `turnout-cp bootstrap --mode
capture --ip-families dual`: turnout-cp sends it capture listeners on `::`
with ipv4_compat and an InboundPassthroughCluster that binds 127.0.0.6 and,
for IPv6 hosts, ::6 (extra_source_addresses). In the frontend pod the name
`reviews` is an IPv6 virtual service IP and `reviews.default` an IPv4 one;
neither exists anywhere, so a call arrives only because the sidecar routed
it. reviews' baseline endpoint is IPv4, the feat-x fork's IPv6.

Asserts: the app's call over IPv6 and over IPv4 reaches the fork with the
key and the baseline without it; the fork's app is reached over IPv6 from
::6 and the baseline's over IPv4 from 127.0.0.6; a client reaching the
frontend over IPv6 arrives from ::6.

SidecarIpv6OnlyTest does the same with `--ip-families ipv6`: every
endpoint, name and call is IPv6 (the pods' IPv4 addresses carry only the
namespace plumbing and the xDS connection), the capture listeners are `::`
without ipv4_compat, and every hop arrives from ::6.

Usage: sidecar_dual_stack_test.py <turnout> <turnout-cp>. Exits 77 (CTest:
skipped) with the reason when the machine forbids network namespaces.
"""

import json
import os
import sys
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
VIRTUAL_V6 = "fd96::/64"

# In the frontend pod: `reviews` is IPv6, `reviews.default` IPv4 (both are
# domains of the service reviews in namespace default).
FRONTEND_HOSTS = {"reviews": "fd96::11", "reviews.default": "10.96.0.11"}
# pod -> (service, variant, IPv4, IPv6, port)
PODS = {
    "frontend": ("frontend", "baseline", "10.88.0.10", "fd88::10", 8080),
    "reviews": ("reviews", "baseline", "10.88.0.11", "fd88::11", 9080),
    "reviews-fx": ("reviews", "feat-x", "10.88.0.21", "fd88::21", 9080),
}
KEY = "baggage: turnout-routing-key=feat-x"


class ChainCase(netns.TopologyCase):
    """The pods' IPv6 plumbing and the client's view of the call chain."""

    @classmethod
    def _ipv6(cls, pod, address):
        ns = cls.topo.ns(pod)
        netns.sh(["ip", "-n", ns, "addr", "add", address + "/64", "dev", "eth0", "nodad"])
        netns.sh(["ip", "-n", ns, "-6", "route", "add", VIRTUAL_V6, "dev", "eth0"])

    @classmethod
    def waitReady(cls, pod):
        cls.waitSidecarReady(pod, ADMIN_PORT, DEADLINE_S)

    def call(self, host="10.88.0.10", port=8080, headers=()):
        """GET from the client namespace to the frontend pod; the JSON chain."""
        return self.clientJson("http://%s:%d/" % ("[%s]" % host if ":" in host else host, port),
                               headers)

    def hops(self, body):
        """[(service, variant, peer the app saw), ...] along the call chain."""
        out = []
        while body:
            if "service" not in body:
                self.fail("a hop failed: %r" % body)
            out.append((body["service"], body["variant"], body["peer"]))
            body = body.get("next")
        return out



class SidecarDualStackTest(ChainCase, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.setUpTopology("turnout-sidecar-dual-", "tds", TURNOUT_CP)

    @classmethod
    def _build(cls):
        topo = cls.topo
        topo.add("cp", CP_IP)
        topo.add("client", "10.88.0.3")
        cls._ipv6("client", "fd88::3")
        for pod, (_, _, ip4, ip6, _) in PODS.items():
            topo.add(pod, ip4, hosts=FRONTEND_HOSTS if pod == "frontend" else None)
            cls._ipv6(pod, ip6)
        cls.cp = TurnoutCp(TURNOUT_CP, cls.tmp, command_prefix=topo.wrap("cp", []),
                           xds_address="%s:%d" % (CP_IP, XDS_PORT))
        cls.cp.start()
        cls.cpctl("service", "put", "frontend", "--port", "8080", "--endpoint", "10.88.0.10:8080")
        cls.cpctl("service", "put", "reviews", "--port", "9080", "--endpoint", "10.88.0.11:9080")
        cls.cpctl("sandbox", "create", "feat-x", "--fork", "reviews=[fd88::21]:9080")
        for pod, (service, variant, _, _, port) in PODS.items():
            topo.run(pod, [TURNOUT, "iptables", "--ipv6", "--proxy-uid", str(PROXY_UID),
                           "--proxy-gid", str(PROXY_UID)])
            apps = [(port, None)]
            if pod == "frontend":
                # The same app calling reviews by its IPv6 name, and on 8082 by its IPv4 name.
                apps = [(port, "http://reviews:9080/"), (8082, "http://reviews.default:9080/")]
            for app_port, nxt in apps:
                args = ["/usr/bin/python3", APP, "--name", service, "--variant", variant,
                        "--port", str(app_port), "--dual-stack"]
                if nxt:
                    args += ["--next", nxt]
                topo.popen(pod, args, log=os.path.join(cls.tmp, "%s-%d-app.log" % (pod, app_port)))
            cls.startSidecar(pod, TURNOUT, service, "%s:%d" % (CP_IP, XDS_PORT), ADMIN_PORT,
                             PROXY_UID, extra_bootstrap=("--ip-families", "dual"))
        for pod, (_, _, _, _, port) in PODS.items():
            cls.waitReady(pod)
            # The apps too: the ipv4 test failed 503 (connection failure) on
            # a loaded machine when the 8082 app was not listening yet.
            for app_port in ([port, 8082] if pod == "frontend" else [port]):
                cls.waitListening(pod, app_port, DEADLINE_S)

    def test_an_ipv6_call_with_the_key_reaches_the_ipv6_fork_from_6(self):
        self.assertEqual(self.hops(self.call(headers=[KEY])),
                         [("frontend", "baseline", "::ffff:127.0.0.6"),
                          ("reviews", "feat-x", "::6")])

    def test_an_ipv6_call_without_a_key_reaches_the_ipv4_baseline_from_127_0_0_6(self):
        self.assertEqual(self.hops(self.call()),
                         [("frontend", "baseline", "::ffff:127.0.0.6"),
                          ("reviews", "baseline", "::ffff:127.0.0.6")])

    def test_an_ipv4_call_goes_through_the_same_dual_stack_listeners(self):
        self.assertEqual(self.hops(self.call(port=8082, headers=[KEY])),
                         [("frontend", "baseline", "::ffff:127.0.0.6"),
                          ("reviews", "feat-x", "::6")])
        self.assertEqual(self.hops(self.call(port=8082))[1], ("reviews", "baseline", "::ffff:127.0.0.6"))

    def test_inbound_over_ipv6_reaches_the_app_from_6(self):
        self.assertEqual(self.hops(self.call(host="fd88::10", headers=[KEY])),
                         [("frontend", "baseline", "::6"), ("reviews", "feat-x", "::6")])


# pod -> (service, variant, IPv4 (plumbing only), IPv6, port)
V6_PODS = {
    "frontend": ("frontend", "baseline", "10.89.0.10", "fd89::10", 8080),
    "reviews": ("reviews", "baseline", "10.89.0.11", "fd89::11", 9080),
    "reviews-fx": ("reviews", "feat-x", "10.89.0.21", "fd89::21", 9080),
}
V6_CP_IP = "10.89.0.2"


class SidecarIpv6OnlyTest(ChainCase, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.setUpTopology("turnout-sidecar-v6-", "tdv", TURNOUT_CP)

    @classmethod
    def _build(cls):
        topo = cls.topo
        topo.add("cp", V6_CP_IP)
        topo.add("client", "10.89.0.3")
        cls._ipv6("client", "fd89::3")
        for pod, (_, _, ip4, ip6, _) in V6_PODS.items():
            topo.add(pod, ip4, hosts={"reviews": "fd96::11"} if pod == "frontend" else None)
            cls._ipv6(pod, ip6)
        cls.cp = TurnoutCp(TURNOUT_CP, cls.tmp, command_prefix=topo.wrap("cp", []),
                           xds_address="%s:%d" % (V6_CP_IP, XDS_PORT))
        cls.cp.start()
        cls.cpctl("service", "put", "frontend", "--port", "8080", "--endpoint", "[fd89::10]:8080")
        cls.cpctl("service", "put", "reviews", "--port", "9080", "--endpoint", "[fd89::11]:9080")
        cls.cpctl("sandbox", "create", "feat-x", "--fork", "reviews=[fd89::21]:9080")
        for pod, (service, variant, _, _, port) in V6_PODS.items():
            topo.run(pod, [TURNOUT, "iptables", "--ipv6", "--proxy-uid", str(PROXY_UID),
                           "--proxy-gid", str(PROXY_UID)])
            args = ["/usr/bin/python3", APP, "--name", service, "--variant", variant,
                    "--port", str(port), "--dual-stack"]
            if pod == "frontend":
                args += ["--next", "http://reviews:9080/"]
            topo.popen(pod, args, log=os.path.join(cls.tmp, "%s-app.log" % pod))
            cls.startSidecar(pod, TURNOUT, service, "%s:%d" % (V6_CP_IP, XDS_PORT), ADMIN_PORT,
                             PROXY_UID, extra_bootstrap=("--ip-families", "ipv6"))
        for pod, (_, _, _, _, port) in V6_PODS.items():
            cls.waitReady(pod)
            # As in the dual-stack case: a call failed 503 (connection
            # failure) under a loaded ctest run when an app was not listening.
            cls.waitListening(pod, port, DEADLINE_S)

    def test_every_hop_is_ipv6_and_the_key_picks_the_fork(self):
        self.assertEqual(self.hops(self.call(host="fd89::10", headers=[KEY])),
                         [("frontend", "baseline", "::6"), ("reviews", "feat-x", "::6")])
        self.assertEqual(self.hops(self.call(host="fd89::10")),
                         [("frontend", "baseline", "::6"), ("reviews", "baseline", "::6")])

    def test_the_capture_listeners_are_ipv6_only(self):
        # No listener of the pod's sidecar accepts IPv4: the listeners are
        # `::` without ipv4_compat (an IPv4 client to the pod's inbound port
        # is captured to 15006, where nothing answers IPv4).
        r = self.topo.run("frontend", ["curl", "-s", "http://127.0.0.1:%d/listeners?format=json"
                                       % ADMIN_PORT], timeout=15)
        listeners = json.loads(r.stdout)["listener_statuses"]
        addresses = [l["local_address"]["socket_address"]["address"] for l in listeners]
        self.assertTrue(addresses, r.stdout[:300])
        self.assertTrue(all(a == "::" for a in addresses), addresses)
        r = self.topo.run("client", ["curl", "-s", "--max-time", "5", "http://10.89.0.10:8080/"],
                          check=False, timeout=15)
        self.assertNotEqual(r.returncode, 0, r.stdout[:300])


if __name__ == "__main__":
    if TURNOUT is None or TURNOUT_CP is None:
        sys.exit("usage: sidecar_dual_stack_test.py <turnout> <turnout-cp>")
    why = netns.namespaces_allowed()
    if why is not None:
        print("SKIP sidecar_dual_stack_test: " + why)
        sys.exit(77)
    unittest.main(argv=[sys.argv[0]] + sys.argv[3:], verbosity=2)
