#!/usr/bin/env python3
"""turnout-cp drives turnout end to end: the README demo as a test.

turnout-cp serve (SQLite store, REST API and ADS on port 0), a baseline and a
sandbox backend, and a turnout started from `turnout-cp bootstrap`. A sandbox
created with the CLI takes the requests that carry its key (W3C baggage,
tracestate and Signadot's headers); requests without it stay on the
baseline; deleting the sandbox sends the traffic back. Real binaries,
loopback, bounded polls.

Usage: control_plane_e2e_test.py <turnout-binary> <turnout-cp-binary>
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))

from fake_backend import FakeBackend, free_closed_port, get_backend  # noqa: E402
from turnout_cp_process import TurnoutCp  # noqa: E402
from turnout_process import TurnoutProcess, _poll  # noqa: E402

TURNOUT = None
TURNOUT_CP = None
POLL_S = 5.0


def get(port, headers=None, host="reviews"):
    h = {"Host": host}
    h.update(headers or {})
    return get_backend(port, "/", h)


class ControlPlaneE2eTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="turnout-cp-e2e-")
        self.baseline = FakeBackend("baseline").start()
        self.sandbox = FakeBackend("sandbox").start()
        self.cp = TurnoutCp(TURNOUT_CP, self.tmp).start()
        self.url = self.cp.url
        self.xds_port = self.cp.xds_port
        self.proxy = None

    def tearDown(self):
        if self.proxy is not None:
            self.proxy.stop()
        self.cp.stop()
        self.baseline.stop()
        self.sandbox.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def cp_output(self):
        return self.cp.output()

    def cli(self, *args):
        r = subprocess.run([TURNOUT_CP] + list(args) + ["--server", self.url], capture_output=True,
                           text=True, timeout=20)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return r.stdout

    def start_sidecar(self):
        outbound = free_closed_port()
        yaml = self.cp.sidecar_bootstrap("sidecar-e2e", outbound, free_closed_port())
        self.proxy = TurnoutProcess(TURNOUT, yaml).start()
        return outbound

    def test_sandbox_created_with_the_cli_takes_keyed_traffic_then_gives_it_back(self):
        self.cli("service", "put", "reviews", "--port", "9080",
                 "--endpoint", "127.0.0.1:%d" % self.baseline.port)
        port = self.start_sidecar()
        self.assertIsNotNone(_poll(POLL_S, lambda: get(port)[1] == "baseline"),
                             self.proxy.log() + self.cp_output())
        key = {"baggage": "userId=7,turnout-routing-key=feat-x"}
        # No sandbox yet: the key goes to the baseline.
        self.assertEqual(get(port, key)[1], "baseline")

        self.cli("sandbox", "create", "feat-x", "--fork",
                 "reviews=127.0.0.1:%d" % self.sandbox.port, "--ttl", "1h")
        self.assertIsNotNone(_poll(POLL_S, lambda: get(port, key)[1] == "sandbox"),
                             self.proxy.log() + self.cp_output())
        self.assertEqual(get(port)[1], "baseline")
        self.assertEqual(get(port, {"baggage": "turnout-routing-key=feat-y"})[1], "baseline")
        # Every form of the key, Signadot's included, and the other domains.
        for h in ({"tracestate": "turnout=feat-x"}, {"x-turnout-routing-key": "feat-x"},
                  {"baggage": "sd-routing-key=feat-x"}, {"tracestate": "sd-routing-key=feat-x"},
                  {"ot-baggage-sd-routing-key": "feat-x"}, {"uberctx-sd-routing-key": "feat-x"}):
            self.assertEqual(get(port, h)[1], "sandbox", h)
        self.assertEqual(get(port, key, host="reviews.default.svc.cluster.local:9080")[1], "sandbox")

        # /v1/proxies: the sidecar, turnout's dialect, its routes ACKed.
        def acked():
            out = json.loads(self.cli("proxies", "--output", "json"))
            proxies = out["proxies"] if isinstance(out, dict) else out
            for p in proxies:
                if p.get("node_id") == "sidecar-e2e" and p.get("dialect") == "turnout":
                    routes = p.get("types", {}).get("routes", {})
                    if routes.get("acked_version") and not routes.get("nack_error"):
                        return p
            return None
        self.assertIsNotNone(_poll(POLL_S, acked), self.cli("proxies", "--output", "json"))

        self.cli("sandbox", "delete", "feat-x")
        self.assertIsNotNone(_poll(POLL_S, lambda: get(port, key)[1] == "baseline"),
                             self.proxy.log())

    def test_the_sidecar_keeps_serving_when_turnout_cp_stops(self):
        self.cli("service", "put", "reviews", "--port", "9080",
                 "--endpoint", "127.0.0.1:%d" % self.baseline.port)
        port = self.start_sidecar()
        self.assertIsNotNone(_poll(POLL_S, lambda: get(port)[1] == "baseline"), self.proxy.log())
        self.cp.stop()
        self.assertEqual(self.proxy.wait_stat("control_plane.connected_state", lambda v: v == 0), 0)
        for _ in range(10):
            self.assertEqual(get(port)[1], "baseline")


def main():
    global TURNOUT, TURNOUT_CP
    if len(sys.argv) < 3:
        print("usage: control_plane_e2e_test.py <turnout> <turnout-cp> [unittest args]",
              file=sys.stderr)
        return 2
    TURNOUT, TURNOUT_CP = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    prog = unittest.main(module="__main__", argv=[sys.argv[0]] + sys.argv[3:], exit=False,
                         verbosity=2)
    return 0 if prog.result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
