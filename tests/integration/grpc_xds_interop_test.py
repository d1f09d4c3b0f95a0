#!/usr/bin/env python3
"""turnout-cp drives a foreign xDS client, @grpc/grpc-js-xds, and it routes as turnout does.

One turnout-cp (SQLite store, REST API and ADS on port 0) knows two gRPC
services, `reviews` and `ratings`, two sandboxes and a release of `ratings`.
The same calls, each with the routing key in one of the forms people send it
(W3C baggage and tracestate, turnout's and Signadot's headers) or with none,
are made twice:
- by @grpc/grpc-js with @grpc/grpc-js-xds (tests/interop/grpc-js-xds/client.js),
  a channel to `xds:///<service domain>` per target, its whole config (API
  listener, routes, clusters, endpoints) pushed by turnout-cp over ADS;
- by python3-grpcio through a turnout sidecar started from `turnout-cp
  bootstrap`, its config pushed by the same turnout-cp.
Every call must reach the backend the model says, on both paths. Then the
model changes (a sandbox is deleted, the release flips) and both clients,
still connected, must follow the push.

Real processes on loopback: turnout-cp, turnout, node, grpcio servers. Bounded
polls. Usage: grpc_xds_interop_test.py <turnout> <turnout-cp> <interop-dir>
(interop-dir: tests/interop/grpc-js-xds with its node_modules installed).
"""

import json
import os
import shutil
import select
import subprocess
import sys
import tempfile
import unittest
from concurrent import futures

import grpc

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))

from fake_backend import free_closed_port  # noqa: E402
from turnout_cp_process import TurnoutCp  # noqa: E402
from turnout_process import TurnoutProcess, _poll  # noqa: E402

TURNOUT = None
TURNOUT_CP = None
INTEROP_DIR = None
METHOD = "/turnout.test.Backend/Who"
POLL_S = 10.0


class Backend:
    """A grpcio server on 127.0.0.1:0 that answers Who with its name."""

    def __init__(self, name):
        self.name = name
        handler = grpc.method_handlers_generic_handler(
            "turnout.test.Backend",
            {"Who": grpc.unary_unary_rpc_method_handler(lambda req, ctx: self.name.encode())})
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), handlers=[handler])
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def stop(self):
        self.server.stop(grace=None).wait(5)


# Where each service's calls go: routing key -> backend, before the change.
SANDBOXES = {"feat-x": ["reviews", "ratings"], "feat-y": ["reviews"]}

# (metadata, the sandbox key the model gives it or None, canary header set)
KEY_CASES = [
    ({}, None),
    ({"baggage": "turnout-routing-key=feat-x"}, "feat-x"),
    ({"baggage": "userId=7, turnout-routing-key = feat-y ;ttl=5"}, "feat-y"),
    ({"baggage": "turnout-routing-key=feat-xx"}, None),
    ({"baggage": "other=turnout-routing-key=feat-x"}, None),
    ({"baggage": "sd-routing-key=feat-x"}, "feat-x"),
    ({"tracestate": "vendor=1,turnout=feat-y"}, "feat-y"),
    ({"tracestate": "sd-routing-key=feat-x"}, "feat-x"),
    ({"x-turnout-routing-key": "feat-y"}, "feat-y"),
    ({"sd-routing-key": "feat-x"}, "feat-x"),
    ({"ot-baggage-sd-routing-key": "feat-y"}, "feat-y"),
    ({"uberctx-sd-routing-key": "feat-x"}, "feat-x"),
    # Precedence: baggage before tracestate before the plain headers.
    ({"baggage": "turnout-routing-key=feat-x", "tracestate": "turnout=feat-y"}, "feat-x"),
    ({"tracestate": "turnout=feat-y", "x-turnout-routing-key": "feat-x"}, "feat-y"),
    ({"x-canary": "always"}, None),
    ({"x-canary": "always", "baggage": "turnout-routing-key=feat-x"}, "feat-x"),
]

TARGETS = ["reviews", "ratings", "reviews.shop.svc.cluster.local:9080", "ratings.shop:50051"]


def service_of(target):
    return target.split(".")[0].split(":")[0]


def expected(target, metadata, key, sandboxes, canary_version):
    service = service_of(target)
    if key is not None and service in sandboxes.get(key, []):
        return "%s-%s" % (service, key)
    if service == "ratings":
        if metadata.get("x-canary") == "always":
            return "ratings-v2"
        return "ratings-" + canary_version
    return service


class GrpcXdsInteropTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="turnout-grpc-xds-")
        self.proxy = None
        self.node = None
        self.node_err = None
        self.channels = {}
        self.backends = {}
        for name in ["reviews", "ratings", "reviews-feat-x", "reviews-feat-y", "ratings-feat-x",
                     "ratings-v1", "ratings-v2"]:
            self.backends[name] = Backend(name)
        self.cp = TurnoutCp(TURNOUT_CP, self.tmp).start()
        self.api = self.cp.api
        self.xds_port = self.cp.xds_port

    def tearDown(self):
        if self.node is not None:
            self.node.kill()
            self.node.wait()
            self.node.stdin.close()
            self.node.stdout.close()
            self.node_err.close()
        for channel in self.channels.values():
            channel.close()
        if self.proxy is not None:
            self.proxy.stop()
        self.cp.stop()
        for b in self.backends.values():
            b.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def logs(self):
        out = ""
        for name in ["cp.log", "node.err"]:
            path = os.path.join(self.tmp, name)
            if os.path.exists(path):
                with open(path, "rb") as f:
                    out += "\n--- %s\n%s" % (name, f.read().decode(errors="replace")[-6000:])
        if self.proxy is not None:
            out += "\n--- turnout\n" + self.proxy.log()[-6000:]
        return out

    def call_api(self, method, path, body=None):
        status, _, answer = self.cp.request(method, path, body)
        self.assertLess(status, 300, "%s %s: %d %s" % (method, path, status, answer))
        return answer

    def endpoint(self, name):
        return ["127.0.0.1:%d" % self.backends[name].port]

    def put_model(self):
        for service, port in [("reviews", 9080), ("ratings", 50051)]:
            self.call_api("PUT", "/v1/services/" + service,
                          {"port": port, "namespace": "shop", "protocol": "grpc",
                           "endpoints": self.endpoint(service)})
        for key, services in SANDBOXES.items():
            self.call_api("PUT", "/v1/sandboxes/" + key,
                          {"forks": {s: self.endpoint("%s-%s" % (s, key)) for s in services}})
        self.set_release(100, 0)

    def set_release(self, v1, v2):
        self.call_api("PUT", "/v1/releases/ratings", {
            "versions": {"v1": self.endpoint("ratings-v1"), "v2": self.endpoint("ratings-v2")},
            "weights": {"v1": v1, "v2": v2},
            "matches": [{"headers": {"x-canary": "always"}, "version": "v2"}]})

    # -- the two clients ------------------------------------------------------

    def start_node(self):
        bootstrap = {
            "xds_servers": [{"server_uri": "127.0.0.1:%d" % self.xds_port,
                             "channel_creds": [{"type": "insecure"}],
                             "server_features": ["xds_v3"]}],
            "node": {"id": "grpc-js-interop", "cluster": "interop", "locality": {}},
        }
        env = dict(os.environ, GRPC_XDS_BOOTSTRAP_CONFIG=json.dumps(bootstrap))
        if os.environ.get("TURNOUT_GRPC_TRACE"):
            env.update(GRPC_TRACE=os.environ["TURNOUT_GRPC_TRACE"], GRPC_VERBOSITY="DEBUG")
        self.node_err = open(os.path.join(self.tmp, "node.err"), "wb")
        self.node = subprocess.Popen(
            ["node", os.path.join(INTEROP_DIR, "client.js"), "--wait-ms=10000"], cwd=INTEROP_DIR,
            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.node_err,
            text=True)

    def node_calls(self, calls):
        """Backend names (or "error: ...") for each (target, metadata), through grpc-js-xds."""
        line = json.dumps([{"target": "xds:///" + t, "metadata": md} for t, md in calls])
        self.node.stdin.write(line + "\n")
        self.node.stdin.flush()
        # Bounded: the client retries a call only until its target first answers.
        ready, _, _ = select.select([self.node.stdout], [], [], 30 + 4 * len(calls))
        self.assertTrue(ready, "node client did not answer" + self.logs())
        out = self.node.stdout.readline()
        self.assertTrue(out, "node client ended" + self.logs())
        return [r.get("backend") or "error: " + r["error"] for r in json.loads(out)]

    def start_sidecar(self):
        outbound = free_closed_port()
        yaml = self.cp.sidecar_bootstrap("sidecar-interop", outbound, free_closed_port())
        self.proxy = TurnoutProcess(TURNOUT, yaml).start()
        self.outbound = outbound

    def turnout_calls(self, calls):
        out = []
        for target, md in calls:
            if target not in self.channels:
                self.channels[target] = grpc.insecure_channel(
                    "127.0.0.1:%d" % self.outbound, options=[("grpc.default_authority", target)])
            try:
                reply = self.channels[target].unary_unary(METHOD)(
                    b"", metadata=list(md.items()), timeout=3)
                out.append(reply.decode())
            except grpc.RpcError as e:
                out.append("error: %s: %s" % (e.code().name, e.details()))
        return out

    def agree(self, calls, want, what):
        """Both clients answer `want`, polling (bounded) while a push may be on its way."""
        got = {}

        def both():
            got["grpc-js-xds"] = self.node_calls(calls)
            got["turnout"] = self.turnout_calls(calls)
            return got["grpc-js-xds"] == want and got["turnout"] == want
        if _poll(POLL_S, both):
            return
        lines = []
        for i, (target, md) in enumerate(calls):
            a, b = got["grpc-js-xds"][i], got["turnout"][i]
            mark = "  " if a == b == want[i] else "!!"
            lines.append("%s %-40s %-70s want %-16s grpc-js-xds %-16s turnout %s" % (
                mark, target, json.dumps(md), want[i], a, b))
        self.fail("%s: the clients do not route as the model says\n%s%s" % (
            what, "\n".join(lines), self.logs()))

    def cases(self, sandboxes, canary_version):
        calls, want = [], []
        for target in TARGETS:
            for md, key in KEY_CASES:
                calls.append((target, md))
                want.append(expected(target, md, key, sandboxes, canary_version))
        return calls, want

    def test_grpc_js_xds_and_turnout_route_every_key_form_alike_and_follow_pushes(self):
        self.put_model()
        self.start_sidecar()
        self.start_node()
        calls, want = self.cases(SANDBOXES, "v1")
        self.agree(calls, want, "initial model")

        # The control plane sees the gRPC client, in the gRPC dialect, having ACKed.
        proxies = self.call_api("GET", "/v1/proxies")
        grpc_js = [p for p in proxies["proxies"] if p["node_id"] == "grpc-js-interop"]
        self.assertEqual(len(grpc_js), 1, proxies)
        self.assertEqual(grpc_js[0]["dialect"], "grpc", grpc_js[0])
        for t in ["listeners", "routes", "clusters", "endpoints"]:
            self.assertIn(t, grpc_js[0]["types"], grpc_js[0])
            self.assertEqual(grpc_js[0]["types"][t]["nack_error"], "", grpc_js[0])
            self.assertNotEqual(grpc_js[0]["types"][t]["acked_version"], "", grpc_js[0])

        # Pushes: feat-x goes away, the release sends every call to v2.
        self.call_api("DELETE", "/v1/sandboxes/feat-x")
        self.set_release(0, 100)
        after = {"feat-y": SANDBOXES["feat-y"]}
        calls, want = self.cases(after, "v2")
        self.agree(calls, want, "after deleting feat-x and flipping the release")

    def test_an_unknown_service_is_an_error_for_grpc_js_xds_not_a_wrong_route(self):
        self.put_model()
        self.start_node()
        got = self.node_calls([("reviews", {}), ("nosuch", {})])
        self.assertEqual(got[0], "reviews", self.logs())
        # gRPC waits for the listener (its does-not-exist timer): the call fails
        # UNAVAILABLE or runs into its deadline, and never reaches a backend.
        self.assertRegex(got[1], r"^error: (UNAVAILABLE|DEADLINE_EXCEEDED)", got[1])


def main():
    global TURNOUT, TURNOUT_CP, INTEROP_DIR
    if len(sys.argv) < 4:
        sys.exit("usage: grpc_xds_interop_test.py <turnout> <turnout-cp> <interop-dir>")
    TURNOUT, TURNOUT_CP = sys.argv[1], sys.argv[2]
    INTEROP_DIR = os.path.abspath(sys.argv[3])
    unittest.main(argv=[sys.argv[0], "-v"] + sys.argv[4:])


if __name__ == "__main__":
    main()
