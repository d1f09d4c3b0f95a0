#!/usr/bin/env python3
"""Two turnout-cp replicas share one state in a real etcd (Debian etcd-server).

The test starts etcd on loopback (its own ports and data directory), then
turnout-cp replicas A and B with `--store etcd://127.0.0.1:PORT/<prefix>`:
- a change made on A is served by B's API and pushed by B to a sidecar;
- ETags and versions are the shared ones: a stale If-Match on B is refused,
  and two replicas never both write the same version;
- a replica killed (SIGKILL) right after a change loses nothing: B has it, a
  sidecar connected to A goes on with B, a restarted A has everything;
- bad calls change nothing, on either replica;
- bad --store flags and an unreachable etcd are clear errors.
Real processes, loopback, bounded polls. Usage:
control_plane_etcd_test.py <turnout> <turnout-cp>
"""

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))

from fake_backend import FakeBackend, free_closed_port, get_backend  # noqa: E402
from turnout_cp_process import TurnoutCp  # noqa: E402
from turnout_process import TurnoutProcess, _poll  # noqa: E402

TURNOUT = None
TURNOUT_CP = None
ETCD = shutil.which("etcd")
POLL_S = 5.0


class Etcd:
    def __init__(self, workdir):
        self.workdir = workdir
        self.port = free_closed_port()
        self.peer = free_closed_port()
        self.proc = None

    def start(self):
        self.log = open(os.path.join(self.workdir, "etcd.log"), "wb")
        url = "http://127.0.0.1:%d" % self.port
        peer = "http://127.0.0.1:%d" % self.peer
        self.proc = subprocess.Popen(
            [ETCD, "--name", "t", "--data-dir", os.path.join(self.workdir, "etcd"),
             "--listen-client-urls", url, "--advertise-client-urls", url,
             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
             "--initial-cluster", "t=" + peer],
            stdout=self.log, stderr=subprocess.STDOUT)

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError("etcd exited:\n" + self.output())
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                c.request("POST", "/v3/kv/range", body='{"key":"AA=="}')
                ok = c.getresponse().status == 200
                c.close()
                return ok
            except OSError:
                return False
        if not _poll(20, up):
            raise RuntimeError("etcd did not start:\n" + self.output())
        return self

    def output(self):
        with open(os.path.join(self.workdir, "etcd.log"), "rb") as f:
            return f.read().decode(errors="replace")[-4000:]

    def stop(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.log.close()


def call(cp, method, path, body=None, headers=None):
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    return cp.request(method, path, body, h)


@unittest.skipIf(ETCD is None, "etcd is not installed (scripts/setup.sh installs etcd-server)")
class EtcdStoreTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="turnout-cp-etcd-")
        self.etcd = Etcd(self.tmp).start()
        self.store = "etcd://127.0.0.1:%d/t%d" % (self.etcd.port, os.getpid())
        self.replicas = []
        self.proxy = None
        self.backends = [FakeBackend(n).start() for n in ("baseline", "sandbox", "other")]

    def tearDown(self):
        if self.proxy is not None:
            self.proxy.stop()
        for r in self.replicas:
            r.stop()
        self.etcd.stop()
        for b in self.backends:
            b.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def replica(self, name):
        d = os.path.join(self.tmp, name)
        os.makedirs(d, exist_ok=True)
        r = TurnoutCp(TURNOUT_CP, d, store_args=["--store", self.store]).start()
        self.replicas.append(r)
        return r

    def logs(self):
        out = "".join("\n--- %s\n%s" % (r.workdir, r.output()[-3000:]) for r in self.replicas)
        if self.proxy is not None:
            out += "\n--- turnout\n" + self.proxy.log()[-3000:]
        return out

    def sidecar(self, *cps):
        outbound = free_closed_port()
        yaml = cps[0].sidecar_bootstrap("etcd-sidecar", outbound, free_closed_port())
        first = "        - endpoint: {address: {socket_address: {address: \"127.0.0.1\", " \
                "port_value: %d}}}\n" % cps[0].xds_port
        self.assertIn(first, yaml)
        for cp in cps[1:]:  # more xDS endpoints: the stream moves on when one goes
            yaml = yaml.replace(first, first + first.replace(str(cps[0].xds_port),
                                                             str(cp.xds_port)))
        self.proxy = TurnoutProcess(TURNOUT, yaml).start()
        return outbound

    def served(self, port, want, key=None):
        headers = {"Host": "reviews"}
        if key:
            headers["baggage"] = "turnout-routing-key=" + key
        got = _poll(POLL_S, lambda: get_backend(port, "/", headers)[1] == want)
        self.assertIsNotNone(got, "never %s; last %r%s" % (
            want, get_backend(port, "/", headers), self.logs()))

    def ep(self, i):
        return ["127.0.0.1:%d" % self.backends[i].port]

    def test_a_change_on_one_replica_is_served_and_pushed_by_the_other(self):
        a, b = self.replica("a"), self.replica("b")
        status, _, body = call(a, "PUT", "/v1/services/reviews", {"port": 9080,
                                                                  "endpoints": self.ep(0)})
        self.assertEqual((status, body["version"]), (201, 1))
        got = _poll(POLL_S, lambda: call(b, "GET", "/v1/services/reviews")[0] == 200)
        self.assertIsNotNone(got, self.logs())
        status, headers, body = call(b, "GET", "/v1/services/reviews")
        self.assertEqual((headers["etag"], body["endpoints"]), ('"1"', self.ep(0)))

        port = self.sidecar(b)
        self.served(port, "baseline")
        status, _, body = call(a, "PUT", "/v1/sandboxes/feat-x", {"forks": {"reviews": self.ep(1)}})
        self.assertEqual((status, body["version"]), (201, 2))
        self.served(port, "sandbox", key="feat-x")
        self.served(port, "baseline")
        # And back: a delete on B reaches A.
        self.assertEqual(call(b, "DELETE", "/v1/sandboxes/feat-x")[0], 200)
        self.assertIsNotNone(_poll(POLL_S, lambda: call(a, "GET", "/v1/sandboxes/feat-x")[0]
                                   == 404), self.logs())
        self.served(port, "baseline", key="feat-x")

    def test_versions_and_etags_are_shared_and_never_fork(self):
        a, b = self.replica("a"), self.replica("b")
        self.assertEqual(call(a, "PUT", "/v1/services/reviews", {"port": 9080})[0], 201)
        self.assertIsNotNone(_poll(POLL_S, lambda: call(b, "GET", "/v1/version")[2]["version"]
                                   == 1), self.logs())
        status, _, body = call(a, "PUT", "/v1/services/reviews",
                               {"port": 9080, "endpoints": self.ep(0)}, {"If-Match": '"1"'})
        self.assertEqual((status, body["version"]), (200, 2))
        # B answers with the ETag it was given: stale now. Whether B has heard
        # of version 2 yet (412) or finds out when it writes (409), nothing is
        # written and both end at version 2 with A's content.
        status, _, body = call(b, "PUT", "/v1/services/reviews",
                               {"port": 9080, "endpoints": self.ep(2)}, {"If-Match": '"1"'})
        self.assertIn(status, (409, 412), body)
        for cp in (a, b):
            self.assertIsNotNone(_poll(POLL_S, lambda cp=cp: call(cp, "GET", "/v1/version")[2]
                                       ["version"] == 2), self.logs())
            self.assertEqual(call(cp, "GET", "/v1/services/reviews")[2]["endpoints"], self.ep(0))
        # Writes from both replicas in turn: one version sequence.
        versions = []
        for i in range(6):
            cp = (a, b)[i % 2]
            for _ in range(20):  # a 409 (lost race) is retried, as a client would
                status, _, body = call(cp, "PUT", "/v1/services/s%d" % i, {"port": 80})
                if status != 409:
                    break
                time.sleep(0.05)
            self.assertEqual(status, 201, body)
            versions.append(body["version"])
        self.assertEqual(versions, list(range(3, 9)))

    def test_a_replica_killed_right_after_a_change_loses_nothing(self):
        a, b = self.replica("a"), self.replica("b")
        self.assertEqual(call(a, "PUT", "/v1/services/reviews", {"port": 9080,
                                                                 "endpoints": self.ep(0)})[0], 201)
        self.assertIsNotNone(_poll(POLL_S, lambda: call(b, "GET", "/v1/version")[2]["version"]
                                   == 1), self.logs())
        port = self.sidecar(a, b)
        self.served(port, "baseline")
        # A stores the sandbox and dies before (or while) pushing it.
        status, _, _ = call(a, "PUT", "/v1/sandboxes/feat-x", {"forks": {"reviews": self.ep(1)}})
        self.assertEqual(status, 201)
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait()
        self.assertIsNotNone(_poll(POLL_S, lambda: call(b, "GET", "/v1/sandboxes/feat-x")[0]
                                   == 200), self.logs())
        # The sidecar moves to B and gets the sandbox.
        self.served(port, "sandbox", key="feat-x")
        # A restarted A has everything, at the same version.
        a.start()
        status, _, body = call(a, "GET", "/v1/version")
        self.assertEqual(body["version"], 2)
        self.assertEqual(call(a, "GET", "/v1/sandboxes/feat-x")[0], 200)

    def test_bad_calls_change_nothing_on_either_replica(self):
        a, b = self.replica("a"), self.replica("b")
        self.assertEqual(call(a, "PUT", "/v1/services/reviews", {"port": 9080})[0], 201)
        for method, path, body, want in [
                ("PUT", "/v1/services/reviews", "{bad json", 400),
                ("PUT", "/v1/services/reviews", {"port": 0}, 400),
                ("PUT", "/v1/sandboxes/feat-x", {"forks": {"nosuch": ["10.0.0.1:80"]}}, None),
                ("DELETE", "/v1/services/nosuch", None, 404),
                ("PUT", "/v1/services/reviews", {"port": 1}, 412)]:
            headers = {"If-Match": '"7"'} if want == 412 else None
            status, _, answer = call(a, method, path, body, headers)
            if want is None:
                self.assertGreaterEqual(status, 400, answer)
                self.assertLess(status, 500, answer)
            else:
                self.assertEqual(status, want, answer)
        time.sleep(0.3)
        for cp in (a, b):
            self.assertEqual(call(cp, "GET", "/v1/version")[2]["version"], 1)
            self.assertEqual(call(cp, "GET", "/v1/services/reviews")[2]["port"], 9080)


@unittest.skipIf(ETCD is None, "etcd is not installed")
class EtcdFlagsTest(unittest.TestCase):
    def serve(self, *args, timeout=30):
        return subprocess.run([TURNOUT_CP, "serve", "--http-address", "127.0.0.1:0",
                               "--xds-address", "127.0.0.1:0"] + list(args),
                              capture_output=True, text=True, timeout=timeout)

    def test_bad_store_flags_are_clear_errors(self):
        for args, needle in [
                (["--store", "etcd://"], "no host"),
                (["--store", "etcd://h:99999"], "port"),
                (["--store", "redis://h"], "unknown store"),
                (["--store", "etcd://h:2379", "--data-dir", "/tmp/x"], "choose one store")]:
            r = self.serve(*args)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn(needle, r.stderr)

    def test_an_unreachable_etcd_is_a_startup_error(self):
        port = free_closed_port()
        t0 = time.monotonic()
        r = self.serve("--store", "etcd://127.0.0.1:%d" % port)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("cannot connect", r.stderr)
        self.assertLess(time.monotonic() - t0, 25)


def main():
    global TURNOUT, TURNOUT_CP
    TURNOUT, TURNOUT_CP = sys.argv[1], sys.argv[2]
    unittest.main(argv=[sys.argv[0], "-v"] + sys.argv[3:])


if __name__ == "__main__":
    main()
