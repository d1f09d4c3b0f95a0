#!/usr/bin/env python3
"""turnout-cp replicas sharing one real etcd (`serve --store etcd://`).

A real etcd (Debian's etcd-server) on loopback, started and killed by the
tests, and two turnout-cp replicas A and B on the same prefix: a change made on
A is served by B and pushed to the proxy connected to B (a real turnout from
`turnout-cp bootstrap`, routing to the new sandbox); a stale ETag on B after A
wrote is 412; A killed with SIGKILL right after a mutation loses nothing; bad
calls of every kind get their 4xx and change nothing in etcd; TTL expiry by two
replicas is one mutation; etcd down answers 503 and changes nothing, and the
replicas come back (watch reconnected) when etcd does; etcd unreachable at
start exits 1. Free ports, temporary directories, bounded polls.

Usage: control_plane_etcd_test.py <turnout-binary> <turnout-cp-binary>
(etcd from $ETCD, else the PATH).
"""

import base64
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
ETCD = None
START_S = 15.0
SEEN_S = 2.0   # a change on one replica is served by the other within this
PUSH_S = 5.0


def stop_process(proc, timeout=5):
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Etcd:
    """One etcd member on 127.0.0.1 with a temporary data directory."""

    def __init__(self, tmp):
        self.data_dir = os.path.join(tmp, "etcd-data")
        self.log_path = os.path.join(tmp, "etcd.log")
        self.client_port = free_closed_port()
        self.peer_port = free_closed_port()
        self.proc = None

    def start(self):
        client = "http://127.0.0.1:%d" % self.client_port
        peer = "http://127.0.0.1:%d" % self.peer_port
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [ETCD, "--name", "t", "--data-dir", self.data_dir, "--listen-client-urls", client,
             "--advertise-client-urls", client, "--listen-peer-urls", peer,
             "--initial-advertise-peer-urls", peer, "--initial-cluster", "t=" + peer],
            stdout=self.log, stderr=subprocess.STDOUT)

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError("etcd exited %s:\n%s" % (self.proc.returncode, self.output()))
            try:
                return self.call("/v3/kv/range", {"key": b64("/")}) is not None
            except OSError:
                return False
        if not _poll(START_S, ready):
            raise RuntimeError("etcd did not start:\n" + self.output())
        return self

    def stop(self):
        stop_process(self.proc)
        self.proc = None
        self.log.close()

    def output(self):
        self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")[-4000:]

    def call(self, path, body):
        conn = http.client.HTTPConnection("127.0.0.1", self.client_port, timeout=5)
        try:
            conn.request("POST", path, body=json.dumps(body))
            resp = conn.getresponse()
            data = resp.read()
            return json.loads(data) if resp.status == 200 else None
        finally:
            conn.close()

    def url(self, prefix, host="127.0.0.1"):
        return "etcd://%s:%d%s" % (host, self.client_port, prefix)

    def dump(self, prefix):
        """{key: decoded value} under prefix/."""
        start = prefix + "/"
        end = prefix + "0"
        out = self.call("/v3/kv/range", {"key": b64(start), "range_end": b64(end)})
        return {unb64(kv["key"]): unb64(kv.get("value", "")) for kv in out.get("kvs", [])}


def b64(s):
    return base64.b64encode(s.encode()).decode()


def unb64(s):
    return base64.b64decode(s).decode()


class Replica(TurnoutCp):
    """One `turnout-cp serve --store etcd://...` on 127.0.0.1:0."""

    def __init__(self, tmp, name, store_url):
        workdir = os.path.join(tmp, name)
        os.makedirs(workdir, exist_ok=True)
        super().__init__(TURNOUT_CP, workdir, store_args=["--store", store_url])
        self.name = name
        self.store_url = store_url

    @property
    def log(self):
        return getattr(self, "_log", None)

    def output(self):
        return super().output()[-6000:]


REVIEWS = {"port": 9080, "endpoints": ["10.0.0.5:9080"]}
PREFIX = "/turnout-test"


class EtcdReplicasTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="turnout-cp-etcd-")
        self.etcd = Etcd(self.tmp).start()
        self.replicas = []
        self.a = self.replica("a")
        self.b = self.replica("b")
        self.proxy = None
        self.backends = []

    def replica(self, name, prefix=PREFIX, host="127.0.0.1"):
        r = Replica(self.tmp, name, self.etcd.url(prefix, host)).start()
        self.replicas.append(r)
        return r

    def tearDown(self):
        if self.proxy is not None:
            self.proxy.stop()
        for r in self.replicas:
            if r.proc is not None:
                r.stop()
        for b in self.backends:
            b.stop()
        if self.etcd.proc is not None:
            self.etcd.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def logs(self):
        return "\n".join("--- %s:\n%s" % (r.name, r.output()) for r in self.replicas if r.log) + \
            "\n--- etcd:\n" + self.etcd.output()

    def seen(self, replica, predicate, deadline_s=SEEN_S):
        got = _poll(deadline_s, predicate)
        self.assertTrue(got, "%s did not see the change within %ss\n%s" % (replica.name, deadline_s,
                                                                          self.logs()))
        return got

    def etcd_version(self):
        return int(self.etcd.dump(PREFIX).get(PREFIX + "/version", "0"))

    def backend(self, name):
        b = FakeBackend(name).start()
        self.backends.append(b)
        return b

    def start_sidecar(self, replica):
        outbound = free_closed_port()
        yaml = replica.sidecar_bootstrap("sidecar-etcd", outbound, free_closed_port())
        self.proxy = TurnoutProcess(TURNOUT, yaml).start()
        return outbound

    # ---------------------------------------------------------------------------

    def test_a_change_on_a_is_served_by_b_and_pushed_to_bs_proxy(self):
        baseline, sandbox = self.backend("baseline"), self.backend("sandbox")
        status, _, body = self.a.put("/v1/services/reviews",
                                     {"port": 9080, "endpoints": ["127.0.0.1:%d" % baseline.port]})
        self.assertEqual((status, body), (201, {"version": 1, "etag": '"1"'}))
        self.seen(self.b, lambda: self.b.get("/v1/services/reviews")[0] == 200)
        self.assertEqual(self.b.get("/v1/services/reviews")[1]["etag"], '"1"')

        port = self.start_sidecar(self.b)
        host = {"Host": "reviews"}
        self.assertTrue(_poll(PUSH_S, lambda: get_backend(port, "/", host)[1] == "baseline"),
                        self.proxy.log() + self.logs())
        keyed = {"Host": "reviews", "baggage": "turnout-routing-key=feat-x"}
        self.assertEqual(get_backend(port, "/", keyed)[1], "baseline")

        # The sandbox is created on A; B's proxy routes to it.
        status, _, body = self.a.put("/v1/sandboxes/feat-x", {"forks": {"reviews": ["127.0.0.1:%d" % sandbox.port]},
                                                              "ttl": "1h"})
        self.assertEqual((status, body["version"]), (201, 2))
        self.assertTrue(_poll(PUSH_S, lambda: get_backend(port, "/", keyed)[1] == "sandbox"),
                        self.proxy.log() + self.logs())
        self.assertEqual(get_backend(port, "/", host)[1], "baseline")
        self.seen(self.b, lambda: self.b.version() == 2)
        self.assertEqual(self.a.snapshot(), self.b.snapshot())

        # ... and deleted on A: B's proxy sends the key back to the baseline.
        self.assertEqual(self.a.delete("/v1/sandboxes/feat-x")[0], 200)
        self.assertTrue(_poll(PUSH_S, lambda: get_backend(port, "/", keyed)[1] == "baseline"),
                        self.proxy.log() + self.logs())

        # B writes too; A sees it; versions never collide.
        status, _, body = self.b.put("/v1/services/ratings", {"port": 80})
        self.assertEqual((status, body["version"]), (201, 4))
        self.seen(self.a, lambda: self.a.version() == 4)
        self.assertEqual(self.a.snapshot(), self.b.snapshot())
        self.assertEqual(self.etcd_version(), 4)

    def test_stale_etag_on_b_after_a_wrote_is_412(self):
        self.assertEqual(self.a.put("/v1/services/reviews", REVIEWS)[0], 201)
        self.seen(self.b, lambda: self.b.get("/v1/services/reviews")[1].get("etag") == '"1"')
        status, _, body = self.a.put("/v1/services/reviews", dict(REVIEWS, port=9090),
                                     headers={"If-Match": '"1"'})
        self.assertEqual((status, body["version"]), (200, 2))
        status, _, body = self.b.put("/v1/services/reviews", dict(REVIEWS, port=7070),
                                     headers={"If-Match": '"1"'})
        self.assertEqual(status, 412, body)
        self.assertEqual(self.b.get("/v1/services/reviews")[2]["port"], 9090)
        self.assertEqual(self.etcd_version(), 2)
        # With the fresh ETag it goes through.
        status, _, body = self.b.put("/v1/services/reviews", dict(REVIEWS, port=7070),
                                     headers={"If-Match": '"2"'})
        self.assertEqual((status, body), (200, {"version": 3, "etag": '"3"'}))
        self.seen(self.a, lambda: self.a.get("/v1/services/reviews")[2].get("port") == 7070)

    def test_a_write_on_a_replica_that_has_not_seen_the_other_yet(self):
        # B is paused (its watch too) while A writes: B's State is stale when it
        # gets the next request; its txn's guard fails, it reloads and runs the
        # mutation again (or its watch got there first). Either way the answer
        # is right and the versions do not collide.
        self.assertEqual(self.a.put("/v1/services/reviews", REVIEWS)[0], 201)
        self.seen(self.b, lambda: self.b.version() == 1)
        for round in range(3):
            stale = self.b.get("/v1/services/reviews")[1]["etag"]  # stale once A writes
            self.b.proc.send_signal(signal.SIGSTOP)
            try:
                self.assertEqual(self.a.put("/v1/services/s%d" % round, {"port": 80})[0], 201)
                self.assertEqual(self.a.put("/v1/services/reviews", dict(REVIEWS, port=9000 + round))[0], 200)
            finally:
                self.b.proc.send_signal(signal.SIGCONT)
            status, _, body = self.b.put("/v1/services/t%d" % round, {"port": 81})
            self.assertEqual((status, body.get("version")), (201, 4 + 3 * round), body)
            status, _, body = self.b.put("/v1/services/reviews", REVIEWS, headers={"If-Match": stale})
            self.assertEqual(status, 412, body)
        self.assertEqual(self.b.version(), 10)
        self.seen(self.a, lambda: self.a.version() == 10)
        self.assertEqual(self.a.snapshot(), self.b.snapshot())
        self.assertEqual(self.etcd_version(), 10)

    def test_a_killed_right_after_a_mutation_loses_nothing(self):
        self.assertEqual(self.a.put("/v1/services/reviews", REVIEWS)[0], 201)
        status, _, body = self.a.put("/v1/sandboxes/feat-x", {"forks": {"reviews": ["10.0.0.7:9080"]}})
        self.assertEqual(status, 201, body)
        self.a.kill()
        self.seen(self.b, lambda: self.b.version() == 2)
        self.assertEqual(self.b.get("/v1/sandboxes/feat-x")[0], 200)
        # B keeps serving and writing while A is down.
        self.assertEqual(self.b.put("/v1/services/ratings", {"port": 80})[0], 201)
        self.a.start()
        self.assertEqual(self.a.version(), 3)
        self.assertEqual(self.a.snapshot(), self.b.snapshot())
        # The restarted A watches again.
        self.assertEqual(self.b.delete("/v1/services/ratings")[0], 200)
        self.seen(self.a, lambda: self.a.get("/v1/services/ratings")[0] == 404)

    def test_bad_calls_get_4xx_and_change_nothing_in_etcd(self):
        a, b = self.a, self.b
        self.assertEqual(a.put("/v1/services/reviews", REVIEWS)[0], 201)
        self.assertEqual(a.put("/v1/sandboxes/feat-x", {"forks": {"reviews": ["10.0.0.7:9080"]}})[0], 201)
        self.seen(b, lambda: b.version() == 2)
        before_etcd = self.etcd.dump(PREFIX)
        before = a.snapshot()
        calls = [
            (a, "PUT", "/v1/services/bad", "{not json", {"Content-Type": "application/json"}, 400),
            (b, "PUT", "/v1/services/bad", "[]", {"Content-Type": "application/json"}, 400),
            (a, "PUT", "/v1/services/bad", json.dumps(REVIEWS), {"Content-Type": "text/plain"}, 415),
            (b, "PUT", "/v1/services/bad", json.dumps({"port": 0}), {"Content-Type": "application/json"}, 400),
            (a, "PUT", "/v1/services/bad", json.dumps({"port": 80, "frob": 1}),
             {"Content-Type": "application/json"}, 400),
            (b, "PUT", "/v1/sandboxes/feat-y", json.dumps({"forks": {"nope": ["10.0.0.1:80"]}}),
             {"Content-Type": "application/json"}, 409),  # an unknown service
            (a, "PUT", "/v1/releases/nope", json.dumps({"versions": {"v1": ["10.0.0.1:80"]},
                                                        "weights": {"v1": 100}}),
             {"Content-Type": "application/json"}, None),
            (b, "DELETE", "/v1/services/reviews", None, {}, 409),  # a sandbox forks it
            (a, "DELETE", "/v1/services/missing", None, {}, 404),
            (b, "DELETE", "/v1/sandboxes/feat-x", None, {"If-Match": '"1"'}, 412),
            (a, "PUT", "/v1/services/reviews", json.dumps(REVIEWS),
             {"Content-Type": "application/json", "If-Match": '"7"'}, 412),
            (b, "POST", "/v1/services/reviews", json.dumps(REVIEWS), {"Content-Type": "application/json"}, 405),
            (a, "PUT", "/v1/version", "{}", {"Content-Type": "application/json"}, 405),
            (b, "GET", "/v1/nothing", None, {}, 404),
            (a, "GET", "/v1/services?x=1", None, {}, 400),
        ]
        for replica, method, path, body, headers, want in calls:
            status, _, answer = replica.request(method, path, body, headers)
            if want is None:
                self.assertTrue(400 <= status < 500, (method, path, status, answer))
            else:
                self.assertEqual(status, want, (replica.name, method, path, answer))
            self.assertIn("error", answer, (method, path))
        self.assertEqual(self.etcd.dump(PREFIX), before_etcd)
        self.assertEqual(a.snapshot(), before)
        self.assertEqual(b.snapshot(), before)
        self.assertEqual((a.version(), b.version(), self.etcd_version()), (2, 2, 2))
        # And the next good call takes the next version on either.
        self.assertEqual(b.put("/v1/services/ratings", {"port": 80})[2]["version"], 3)

    def test_ttl_expiry_by_two_replicas_is_one_mutation(self):
        self.assertEqual(self.a.put("/v1/services/reviews", REVIEWS)[0], 201)
        self.assertEqual(self.a.put("/v1/sandboxes/short", {"forks": {"reviews": ["10.0.0.7:9080"]},
                                                            "ttl": "1s"})[0], 201)
        self.assertEqual(self.a.put("/v1/sandboxes/long", {"forks": {"reviews": ["10.0.0.8:9080"]},
                                                           "ttl": "1h"})[0], 201)
        self.seen(self.b, lambda: self.b.version() == 3)
        for r in (self.a, self.b):
            self.assertTrue(_poll(5.0, lambda: r.get("/v1/sandboxes/short")[0] == 404), self.logs())
        time.sleep(0.5)  # the loser's reload
        self.assertEqual((self.a.version(), self.b.version(), self.etcd_version()), (4, 4, 4), self.logs())
        self.assertEqual(self.b.get("/v1/sandboxes/long")[0], 200)
        self.assertEqual(self.a.snapshot(), self.b.snapshot())

    def test_etcd_down_is_503_and_changes_nothing_then_both_come_back(self):
        self.assertEqual(self.a.put("/v1/services/reviews", REVIEWS)[0], 201)
        self.seen(self.b, lambda: self.b.version() == 1)
        before = self.a.snapshot()
        self.etcd.stop()
        status, _, body = self.a.put("/v1/services/ratings", {"port": 80})
        self.assertEqual(status, 503, body)
        self.assertIn("store is unavailable", body["error"])
        status, _, body = self.b.delete("/v1/services/reviews")
        self.assertEqual(status, 503, body)
        # Nothing changed in memory: reads still answer, as before.
        self.assertEqual(self.a.snapshot(), before)
        self.assertEqual(self.b.snapshot(), before)
        self.assertEqual((self.a.version(), self.b.version()), (1, 1))

        self.etcd.start()  # same data directory and ports
        got = _poll(10.0, lambda: self.a.put("/v1/services/ratings", {"port": 80})[0] == 201)
        self.assertTrue(got, self.logs())
        self.assertEqual(self.a.version(), 2)
        # B's watch reconnected: it sees A's write.
        self.seen(self.b, lambda: self.b.version() == 2, deadline_s=10.0)
        self.assertEqual(self.a.snapshot(), self.b.snapshot())
        # Stopped while etcd was down and back: a clean exit.
        self.assertEqual(self.b.stop(), 0)

    def test_replicas_on_another_prefix_do_not_share(self):
        # "localhost" may resolve to ::1 first; etcd listens on 127.0.0.1 only.
        c = self.replica("c", prefix="/other", host="localhost")
        self.assertEqual(self.a.put("/v1/services/reviews", REVIEWS)[0], 201)
        self.seen(self.b, lambda: self.b.version() == 1)
        self.assertEqual(c.version(), 0)
        self.assertEqual(c.put("/v1/services/x", {"port": 1})[2]["version"], 1)
        self.assertEqual(self.etcd.dump("/other")["/other/version"], "1")
        self.assertEqual(self.b.get("/v1/services/x")[0], 404)
        # SIGTERM stops a replica (its watch thread too) promptly and cleanly.
        t0 = time.monotonic()
        self.assertEqual(c.stop(), 0)
        self.assertLess(time.monotonic() - t0, 3)


class EtcdStartTest(unittest.TestCase):
    def test_unreachable_etcd_at_start_exits_1(self):
        port = free_closed_port()
        t0 = time.monotonic()
        r = subprocess.run([TURNOUT_CP, "serve", "--store", "etcd://127.0.0.1:%d" % port,
                            "--http-address", "127.0.0.1:0", "--xds-address", "127.0.0.1:0"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("etcd does not answer", r.stderr)
        self.assertIn("etcd://127.0.0.1:%d/turnout-cp" % port, r.stderr)
        self.assertLess(time.monotonic() - t0, 20)


def main():
    global TURNOUT, TURNOUT_CP, ETCD
    if len(sys.argv) < 3:
        print("usage: control_plane_etcd_test.py <turnout> <turnout-cp> [unittest args]", file=sys.stderr)
        return 2
    TURNOUT, TURNOUT_CP = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    ETCD = os.environ.get("ETCD") or shutil.which("etcd")
    if not ETCD:
        print("SKIP: no etcd binary (apt-get install etcd-server, or set ETCD)")
        return 77
    prog = unittest.main(module="__main__", argv=[sys.argv[0]] + sys.argv[3:], exit=False, verbosity=2)
    return 0 if prog.result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
