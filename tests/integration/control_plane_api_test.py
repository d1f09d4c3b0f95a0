#!/usr/bin/env python3
"""turnout-cp's REST/JSON API and CLI against the real binary: every endpoint's
happy path, bad calls of every kind (the right 4xx, nothing changed), versions,
restart on the same data directory, TTL expiry, the CLI end to end, and the
sidecar bootstrap it prints checked by `turnout --mode validate`. Loopback,
port 0, temporary data directories, bounded polls.

Usage: control_plane_api_test.py <turnout-binary> <turnout-cp-binary>
"""

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))

from turnout_cp_process import TurnoutCp  # noqa: E402
from turnout_process import _poll  # noqa: E402

TURNOUT = None
TURNOUT_CP = None


def poll(deadline_s, predicate):
    return _poll(deadline_s, predicate)


class ControlPlane(TurnoutCp):
    """One `turnout-cp serve` on 127.0.0.1:0 over `data_dir`."""

    def __init__(self, data_dir):
        workdir = data_dir + ".cp"
        os.makedirs(workdir, exist_ok=True)
        super().__init__(TURNOUT_CP, workdir, store_args=["--data-dir", data_dir])
        self.data_dir = data_dir

    def cli(self, *args, expect=0):
        r = subprocess.run([TURNOUT_CP] + list(args) + ["--server", self.url], capture_output=True, text=True,
                           timeout=10)
        if expect is not None and r.returncode != expect:
            raise AssertionError("turnout-cp %s: exit %d, want %d\nstdout: %s\nstderr: %s" %
                                 (" ".join(args), r.returncode, expect, r.stdout, r.stderr))
        return r


REVIEWS = {"port": 9080, "endpoints": ["10.0.0.5:9080"]}
RATINGS = {"port": 9081, "namespace": "shop", "endpoints": ["10.0.0.6:9081", "[fd00::6]:9081"]}


class ApiTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="turnout_cp_api_")
        self.cp = ControlPlane(os.path.join(self.tmp, "data")).start()

    def tearDown(self):
        if self.cp.proc:
            self.cp.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def seed(self):
        self.assertEqual(self.cp.put("/v1/services/reviews", REVIEWS)[0], 201)
        self.assertEqual(self.cp.put("/v1/services/ratings", RATINGS)[0], 201)

    # ---- happy paths ------------------------------------------------------------

    def test_services(self):
        cp = self.cp
        self.assertEqual(cp.version(), 0)
        status, headers, body = cp.put("/v1/services/reviews", REVIEWS)
        self.assertEqual((status, body), (201, {"version": 1, "etag": '"1"'}))
        self.assertEqual(headers["etag"], '"1"')
        status, headers, body = cp.get("/v1/services/reviews")
        self.assertEqual(status, 200)
        self.assertEqual(headers["etag"], '"1"')
        self.assertEqual(headers["content-type"], "application/json")
        self.assertEqual(body, {"name": "reviews", "port": 9080, "namespace": "default",
                                "endpoints": ["10.0.0.5:9080"], "protocol": "http"})
        # A GET body can be PUT back; a replace answers 200 with a new version.
        status, headers, body = cp.put("/v1/services/reviews", body, headers={"If-Match": '"1"'})
        self.assertEqual((status, body), (200, {"version": 2, "etag": '"2"'}))
        cp.put("/v1/services/ratings", RATINGS)
        status, headers, body = cp.get("/v1/services")
        self.assertEqual(status, 200)
        self.assertEqual(headers["etag"], '"3"')
        self.assertEqual(body["version"], 3)
        self.assertEqual([s["name"] for s in body["services"]], ["ratings", "reviews"])
        self.assertEqual(body["services"][0]["endpoints"], ["10.0.0.6:9081", "[fd00::6]:9081"])
        status, headers, body = cp.delete("/v1/services/ratings")
        self.assertEqual((status, body), (200, {"version": 4}))
        self.assertEqual(cp.get("/v1/services/ratings")[0], 404)

    def test_sandboxes_and_releases(self):
        cp = self.cp
        self.seed()
        status, _, body = cp.put("/v1/sandboxes/feat-x", {"forks": {"reviews": ["10.0.0.7:9080"]},
                                                          "labels": {"team": "checkout"}, "ttl": "24h"})
        self.assertEqual((status, body), (201, {"version": 3, "etag": '"3"'}))
        status, headers, body = cp.get("/v1/sandboxes/feat-x")
        self.assertEqual((status, headers["etag"]), (200, '"3"'))
        self.assertEqual(body["forks"], {"reviews": ["10.0.0.7:9080"]})
        self.assertEqual(body["labels"], {"team": "checkout"})
        self.assertEqual(body["ttl"], "24h")
        self.assertTrue(body["expires_at"].endswith("Z"), body)
        status, _, body = cp.get("/v1/sandboxes")
        self.assertEqual([s["key"] for s in body["sandboxes"]], ["feat-x"])

        release = {"versions": {"v1": ["10.0.1.1:9080"], "v2": ["10.0.2.1:9080"]},
                   "weights": {"v1": 90, "v2": 10},
                   "matches": [{"headers": {"x-canary": "always"}, "version": "v2"}]}
        status, _, body = cp.put("/v1/releases/reviews", release)
        self.assertEqual((status, body), (201, {"version": 4, "etag": '"4"'}))
        status, headers, body = cp.get("/v1/releases/reviews")
        self.assertEqual((status, headers["etag"]), (200, '"4"'))
        self.assertEqual(body["weights"], {"v1": 90, "v2": 10})
        self.assertEqual(len(cp.get("/v1/releases")[2]["releases"]), 1)

        # A service with a sandbox or a release cannot go: 409.
        status, _, body = cp.delete("/v1/services/reviews")
        self.assertEqual(status, 409, body)
        self.assertEqual(cp.delete("/v1/releases/reviews")[2], {"version": 5})
        self.assertEqual(cp.delete("/v1/sandboxes/feat-x", headers={"If-Match": '"3"'})[2], {"version": 6})
        self.assertEqual(cp.delete("/v1/services/reviews")[2], {"version": 7})

    def test_misc_endpoints_and_keep_alive(self):
        cp = self.cp
        conn = http.client.HTTPConnection(cp.host, cp.port, timeout=5)
        self.assertEqual(cp.request("GET", "/healthz", conn=conn)[:1], (200,))
        status, headers, body = cp.request("GET", "/v1/version", conn=conn)
        self.assertEqual((status, body["version"], headers["etag"]), (200, 0, '"0"'))
        self.assertEqual(cp.request("GET", "/v1/proxies", conn=conn)[2], {"version": 0, "proxies": []})
        # Several requests rode one connection (HTTP/1.1 keep-alive).
        self.assertEqual(cp.request("PUT", "/v1/services/reviews", json.dumps(REVIEWS),
                                    headers={"Content-Type": "application/json; charset=utf-8"},
                                    conn=conn)[0], 201)
        conn.close()

    def test_versions_increase_by_one_per_mutation(self):
        cp = self.cp
        seen = []
        seen.append(cp.put("/v1/services/reviews", REVIEWS)[2]["version"])
        seen.append(cp.put("/v1/services/reviews", REVIEWS)[2]["version"])
        cp.get("/v1/services/reviews")  # reads change nothing
        seen.append(cp.put("/v1/sandboxes/k1", {"forks": {"reviews": ["10.0.0.9:1"]}})[2]["version"])
        cp.put("/v1/sandboxes/k2", {"forks": {"nope": ["10.0.0.9:1"]}})  # refused: no version
        seen.append(cp.delete("/v1/sandboxes/k1")[2]["version"])
        self.assertEqual(seen, [1, 2, 3, 4])
        self.assertEqual(cp.version(), 4)

    # ---- bad calls --------------------------------------------------------------

    def assertRefused(self, status, method, path, body=None, headers=None, field=None):
        before = self.cp.snapshot()
        version = self.cp.version()
        got, resp_headers, resp = self.cp.request(method, path, body, headers)
        self.assertEqual(got, status, "%s %s -> %s %s" % (method, path, got, resp))
        self.assertIsInstance(resp, dict, resp)
        self.assertTrue(resp.get("error"), resp)
        self.assertEqual(resp_headers.get("content-type"), "application/json")
        if field is not None:
            self.assertEqual(resp.get("field"), field, resp)
        self.assertEqual(self.cp.snapshot(), before)
        self.assertEqual(self.cp.version(), version)
        return resp, resp_headers

    def test_bad_calls_change_nothing(self):
        self.seed()
        cp = self.cp
        cp.put("/v1/sandboxes/feat-x", {"forks": {"reviews": ["10.0.0.7:9080"]}})
        json_type = {"Content-Type": "application/json"}
        # 400: bad JSON, bad fields (named), unknown fields, a mismatched name.
        self.assertRefused(400, "PUT", "/v1/services/reviews", "{not json", json_type)
        self.assertRefused(400, "PUT", "/v1/services/reviews", {"port": 0, "endpoints": []}, field="port")
        # A port the sidecar uses itself (docs/sidecar.md).
        self.assertRefused(400, "PUT", "/v1/services/reviews", {"port": 15006, "endpoints": []},
                           field="port")
        self.assertRefused(400, "PUT", "/v1/services/reviews", {"port": 9080, "endpoints": ["nope"]},
                           field="endpoints[0]")
        self.assertRefused(400, "PUT", "/v1/services/reviews", {"port": 9080, "colour": "red"}, field="colour")
        self.assertRefused(400, "PUT", "/v1/services/Bad_Name", REVIEWS)
        self.assertRefused(400, "PUT", "/v1/sandboxes/feat-y", {"forks": {"reviews": ["x"]}},
                           field="forks.reviews[0]")
        self.assertRefused(400, "PUT", "/v1/sandboxes/feat-y", {"forks": {"reviews": ["10.0.0.1:1"]}, "ttl": "soon"},
                           field="ttl")
        self.assertRefused(400, "PUT", "/v1/releases/reviews",
                           {"versions": {"v1": []}, "weights": {"v1": 90}}, field="weights")
        self.assertRefused(400, "GET", "/v1/services?limit=1")
        # 404: unknown resources and paths.
        self.assertRefused(404, "GET", "/v1/services/nope")
        self.assertRefused(404, "DELETE", "/v1/sandboxes/nope")
        self.assertRefused(404, "GET", "/v1/releases/reviews")
        resp, _ = self.assertRefused(404, "GET", "/v2/services")
        self.assertIn("no such endpoint", resp["error"])
        self.assertRefused(404, "GET", "/v1/services/a/b")
        # 409: a sandbox forking an unknown service; deleting a forked service.
        self.assertRefused(409, "PUT", "/v1/sandboxes/feat-y", {"forks": {"unknown": ["10.0.0.1:1"]}})
        self.assertRefused(409, "PUT", "/v1/releases/unknown", {"versions": {"v1": []}, "weights": {"v1": 100}})
        self.assertRefused(409, "DELETE", "/v1/services/reviews")
        # 412: a stale If-Match, or If-Match on something absent.
        etag = cp.get("/v1/services/reviews")[1]["etag"]
        self.assertRefused(412, "PUT", "/v1/services/reviews", REVIEWS, {"If-Match": '"999"'})
        self.assertRefused(412, "DELETE", "/v1/services/ratings", headers={"If-Match": '"1"'})
        self.assertRefused(412, "PUT", "/v1/services/newsvc", REVIEWS, {"If-Match": "*"})
        self.assertRefused(412, "DELETE", "/v1/sandboxes/feat-x", headers={"If-Match": etag + "x"})
        # 405 with Allow.
        _, headers = self.assertRefused(405, "POST", "/v1/services/reviews", REVIEWS)
        self.assertEqual(headers["allow"], "GET, PUT, DELETE")
        _, headers = self.assertRefused(405, "DELETE", "/v1/services")
        self.assertEqual(headers["allow"], "GET")
        self.assertRefused(405, "PUT", "/v1/version", REVIEWS)
        # 415: PUT without JSON.
        self.assertRefused(415, "PUT", "/v1/services/reviews", json.dumps(REVIEWS),
                           {"Content-Type": "application/x-www-form-urlencoded"})
        self.assertRefused(415, "PUT", "/v1/services/reviews", json.dumps(REVIEWS), {"Content-Type": "text/plain"})
        # 413: a body over the limit (1 MiB) is refused from its Content-Length.
        before = cp.snapshot()
        with socket.create_connection((cp.host, cp.port), timeout=5) as s:
            s.sendall(b"PUT /v1/services/reviews HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 2000000\r\n\r\n{\"port\": 1")
            reply = b""
            while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                reply += chunk
        self.assertTrue(reply.startswith(b"HTTP/1.1 413"), reply)
        self.assertIn(b"too large", reply)
        self.assertEqual(cp.snapshot(), before)
        # And a body just under it reaches the parser (400, not 413).
        big = json.dumps({"port": 9080, "endpoints": [], "pad": "x" * (1024 * 1024 - 100)})
        self.assertRefused(400, "PUT", "/v1/services/reviews", big, json_type, field="pad")

    # ---- persistence and expiry -------------------------------------------------

    def test_restart_keeps_state_and_version(self):
        self.seed()
        cp = self.cp
        cp.put("/v1/sandboxes/feat-x", {"forks": {"reviews": ["10.0.0.7:9080"]}, "ttl": "1h"})
        cp.put("/v1/releases/reviews", {"versions": {"v1": ["10.0.1.1:9080"]}, "weights": {"v1": 100}})
        before = cp.snapshot()
        etag = cp.get("/v1/sandboxes/feat-x")[1]["etag"]
        self.assertEqual(cp.stop(), 0)  # SIGTERM: a clean exit
        cp.start()
        self.assertEqual(cp.snapshot(), before)
        self.assertEqual(cp.version(), 4)
        self.assertEqual(cp.get("/v1/sandboxes/feat-x")[1]["etag"], etag)
        self.assertEqual(cp.put("/v1/services/extra", REVIEWS)[2]["version"], 5)

    def test_store_failure_answers_500_and_changes_nothing(self):
        import sqlite3
        self.seed()
        cp = self.cp
        before = cp.snapshot()
        # Another writer holds the database's write lock past turnout-cp's busy
        # timeout (5 s): the write fails after the State has changed in memory.
        db = sqlite3.connect(os.path.join(cp.data_dir, "turnout-cp.db"), isolation_level=None)
        db.execute("BEGIN IMMEDIATE")
        try:
            conn = http.client.HTTPConnection(cp.host, cp.port, timeout=20)
            status, _, body = cp.request("PUT", "/v1/services/extra", REVIEWS, conn=conn)
            conn.close()
        finally:
            db.execute("ROLLBACK")
            db.close()
        self.assertEqual(status, 500, body)
        self.assertIn("not stored", body["error"])
        # The State was rebuilt from the store: what was not acknowledged is gone.
        self.assertEqual(cp.snapshot(), before)
        self.assertEqual(cp.version(), 2)
        self.assertEqual(cp.get("/healthz")[0], 200)
        self.assertEqual(cp.put("/v1/services/extra", REVIEWS)[2], {"version": 3, "etag": '"3"'})

    def test_ttl_expiry(self):
        self.seed()
        cp = self.cp
        cp.put("/v1/sandboxes/short", {"forks": {"reviews": ["10.0.0.7:9080"]}, "ttl": "1s"})
        cp.put("/v1/sandboxes/long", {"forks": {"reviews": ["10.0.0.8:9080"]}, "ttl": "1h"})
        self.assertEqual(cp.version(), 4)
        gone = poll(5.0, lambda: cp.get("/v1/sandboxes/short")[0] == 404)
        self.assertTrue(gone, "sandbox with ttl 1s still there after 5s")
        self.assertEqual(cp.get("/v1/sandboxes/long")[0], 200)
        self.assertEqual(cp.version(), 5)  # the expiry is one mutation
        # ... and stored: a restart does not bring it back.
        cp.stop()
        cp.start()
        self.assertEqual(cp.get("/v1/sandboxes/short")[0], 404)
        self.assertEqual(cp.version(), 5)

    # ---- the CLI ----------------------------------------------------------------

    def test_cli(self):
        cp = self.cp
        r = cp.cli("service", "put", "reviews", "--port", "9080", "--endpoint", "10.0.0.5:9080",
                   "--endpoint", "10.0.0.6:9080", "--namespace", "shop")
        self.assertIn("service reviews stored (config version 1)", r.stdout)
        cp.cli("service", "put", "ratings", "--port", "9081", "--protocol", "grpc")
        r = cp.cli("service", "list")
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0].split(), ["NAME", "NAMESPACE", "PORT", "PROTOCOL", "ENDPOINTS"])
        self.assertEqual(lines[1].split(), ["ratings", "default", "9081", "grpc", "-"])
        self.assertEqual(lines[2].split(),
                         ["reviews", "shop", "9080", "http", "10.0.0.5:9080,10.0.0.6:9080"])
        # Columns are aligned: every row's second column starts where the header's does.
        col = lines[0].index("NAMESPACE")
        self.assertTrue(all(l[col - 2:col] == "  " and l[col] != " " for l in lines[1:]), r.stdout)
        r = cp.cli("service", "get", "reviews", "--output", "json")
        self.assertEqual(json.loads(r.stdout)["endpoints"], ["10.0.0.5:9080", "10.0.0.6:9080"])

        r = cp.cli("sandbox", "create", "feat-x", "--fork", "reviews=10.0.0.7:9080", "--fork",
                   "ratings=10.0.0.8:9081", "--ttl", "2h", "--label", "team=checkout")
        self.assertIn("sandbox feat-x stored (config version 3)", r.stdout)
        sandbox = cp.get("/v1/sandboxes/feat-x")[2]
        self.assertEqual(sandbox["forks"], {"ratings": ["10.0.0.8:9081"], "reviews": ["10.0.0.7:9080"]})
        self.assertEqual((sandbox["ttl"], sandbox["labels"]), ("2h", {"team": "checkout"}))
        r = cp.cli("sandbox", "list")
        self.assertEqual(r.stdout.splitlines()[0].split(), ["KEY", "FORKS", "TTL", "EXPIRES", "LABELS"])
        self.assertIn("feat-x", r.stdout)
        self.assertIn("reviews=10.0.0.7:9080", r.stdout)
        self.assertIn("team=checkout", r.stdout)
        r = cp.cli("sandbox", "list", "--output", "json")
        self.assertEqual([s["key"] for s in json.loads(r.stdout)["sandboxes"]], ["feat-x"])

        # release set: versions given, then only the weights (the versions kept).
        r = cp.cli("release", "set", "reviews", "--weights", "v1=90,v2=10", "--version", "v1=10.0.1.1:9080",
                   "--version", "v2=10.0.2.1:9080")
        self.assertIn("config version 4", r.stdout)
        r = cp.cli("release", "set", "reviews", "--weights", "v1=0,v2=100")
        self.assertIn("config version 5", r.stdout)
        release = cp.get("/v1/releases/reviews")[2]
        self.assertEqual(release["weights"], {"v1": 0, "v2": 100})
        self.assertEqual(release["versions"], {"v1": ["10.0.1.1:9080"], "v2": ["10.0.2.1:9080"]})
        r = cp.cli("release", "get", "reviews")
        self.assertIn("v1=0 v2=100", r.stdout)
        # No versions and no release yet: a clear error.
        r = cp.cli("release", "set", "ratings", "--weights", "v1=100", expect=1)
        self.assertIn("--version", r.stderr)

        r = cp.cli("proxies")
        self.assertEqual(r.stdout.split()[:3], ["NODE", "DIALECT", "PEER"])
        r = cp.cli("version")
        self.assertIn("config version 5", r.stdout)

        # Errors from the server: non-zero exit, the status and message on stderr.
        r = cp.cli("sandbox", "create", "feat-y", "--fork", "unknown=10.0.0.1:1", expect=1)
        self.assertIn("409", r.stderr)
        self.assertIn("unknown", r.stderr)
        r = cp.cli("service", "put", "reviews", "--port", "9080", "--endpoint", "bad", expect=1)
        self.assertIn("400", r.stderr)
        self.assertIn("field: endpoints[0]", r.stderr)
        r = cp.cli("service", "put", "admin", "--port", "15000", expect=1)
        self.assertIn("400", r.stderr)
        self.assertIn("port: 15000 is a port the sidecar uses itself", r.stderr)
        self.assertIn("field: port", r.stderr)
        r = cp.cli("service", "delete", "reviews", expect=1)
        self.assertIn("409", r.stderr)
        r = cp.cli("sandbox", "get", "nope", expect=1)
        self.assertIn("404", r.stderr)
        # Bad usage: exit 2 and the usage text; nothing sent.
        r = cp.cli("service", "put", "x", expect=2)
        self.assertIn("--port", r.stderr)
        r = cp.cli("service", "list", "--weights", "a=1", expect=2)
        self.assertIn("does not take --weights", r.stderr)
        r = cp.cli("frobnicate", expect=2)
        self.assertIn("unknown command", r.stderr)

        self.assertIn("deleted (config version 6)", cp.cli("sandbox", "delete", "feat-x").stdout)
        self.assertIn("deleted (config version 7)", cp.cli("release", "delete", "reviews").stdout)
        self.assertIn("deleted (config version 8)", cp.cli("service", "delete", "reviews").stdout)
        self.assertEqual(cp.version(), 8)

    def test_cli_without_server(self):
        # A port nothing listens on (the server is stopped): exit 1 and a clear error.
        url = self.cp.url
        self.cp.stop()
        r = subprocess.run([TURNOUT_CP, "service", "list", "--server", url], capture_output=True, text=True,
                           timeout=15)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("cannot reach turnout-cp at " + url, r.stderr)


class ServeFlagsTest(unittest.TestCase):
    def run_cp(self, *args):
        return subprocess.run([TURNOUT_CP] + list(args), capture_output=True, text=True, timeout=10)

    def test_bad_store_flags(self):
        r = self.run_cp("serve", "--store", "etcd://127.0.0.1:2379", "--data-dir", "/tmp/x",
                        "--http-address", "127.0.0.1:0")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--store and --data-dir are mutually exclusive", r.stderr)
        for url, why in (("etcd://127.0.0.1", "no port"), ("etcd://:2379", "no host"),
                         ("etcd://127.0.0.1:0", "1-65535"), ("etcd://127.0.0.1:99999", "1-65535"),
                         ("etcd://127.0.0.1:2379/", "prefix is empty"),
                         ("etcd://127.0.0.1:2379/a b", "prefix may hold only"),
                         ("etcd://u@127.0.0.1:2379", "user information")):
            r = self.run_cp("serve", "--store", url)
            self.assertEqual(r.returncode, 2, url)
            self.assertIn("--store '%s': %s" % (url, ""), r.stderr)
            self.assertIn(why, r.stderr, url)
        r = self.run_cp("serve", "--store", "sqlite:///tmp/x")
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown store", r.stderr)

    def test_bad_flags(self):
        r = self.run_cp("serve", "--http-address", "localhost")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--http-address", r.stderr)
        r = self.run_cp("serve", "--frob", "1")
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown flag --frob", r.stderr)

    def test_help_and_version(self):
        r = self.run_cp("serve", "--help")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("--http-address-path", r.stdout)
        r = self.run_cp("--version")
        self.assertEqual((r.returncode, r.stdout), (0, "turnout-cp 0.1.0\n"))
        r = self.run_cp()
        self.assertEqual(r.returncode, 2)
        self.assertIn("usage: turnout-cp", r.stderr)

    def test_busy_port(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen()
            tmp = tempfile.mkdtemp(prefix="turnout_cp_busy_")
            try:
                r = self.run_cp("serve", "--data-dir", tmp, "--http-address", "127.0.0.1:%d" % s.getsockname()[1])
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot listen", r.stderr)


class BootstrapTest(unittest.TestCase):
    def test_bootstrap_validates(self):
        r = subprocess.run([TURNOUT_CP, "bootstrap", "--node", "sidecar-1", "--xds-host", "127.0.0.1",
                            "--xds-port", "18000", "--admin-port", "15000"],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 0, r.stderr)
        yaml = r.stdout
        for needle in ("id: \"sidecar-1\"", "ads_config:", "cluster_name: xds_cluster", "http2_protocol_options",
                       "route_config_name: outbound", "port_value: 15001", "routing_key.v3.RoutingKey",
                       "port_value: 18000", "port_value: 15000"):
            self.assertIn(needle, yaml)
        tmp = tempfile.mkdtemp(prefix="turnout_cp_bootstrap_")
        try:
            path = os.path.join(tmp, "bootstrap.yaml")
            with open(path, "w") as f:
                f.write(yaml)
            v = subprocess.run([TURNOUT, "--mode", "validate", "-c", path], capture_output=True, text=True,
                               timeout=20)
            self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
            self.assertIn("OK", v.stdout + v.stderr)
            # The check can fail: a broken bootstrap is refused.
            with open(path, "w") as f:
                f.write(yaml.replace("route_config_name: outbound", "route_config_name: outbound\n"
                                     "            bogus_field: 1"))
            v = subprocess.run([TURNOUT, "--mode", "validate", "-c", path], capture_output=True, text=True,
                               timeout=20)
            self.assertNotEqual(v.returncode, 0)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def test_bootstrap_ads_protocol(self):
        """--ads picks the ADS api_type; anything else is a usage error naming the flag."""
        for ads, api_type in (("delta", "api_type: DELTA_GRPC"), ("sotw", "api_type: GRPC")):
            r = subprocess.run([TURNOUT_CP, "bootstrap", "--node", "n", "--ads", ads],
                               capture_output=True, text=True, timeout=10)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn(api_type + "\n", r.stdout)
        r = subprocess.run([TURNOUT_CP, "bootstrap", "--node", "n", "--ads", "incremental"],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--ads 'incremental' must be delta or sotw", r.stderr)

    def test_bootstrap_ip_families(self):
        """--ip-families: ipv4 is the bootstrap without the flag, byte for byte;
        ipv6 and dual put ip_families in the node metadata (a bootstrap turnout
        loads); anything else, or the flag without --mode capture, is a usage
        error naming the flag."""
        base = [TURNOUT_CP, "bootstrap", "--node", "n", "--mode", "capture", "--service", "s"]
        plain = subprocess.run(base, capture_output=True, text=True, timeout=10)
        self.assertEqual(plain.returncode, 0, plain.stderr)
        ipv4 = subprocess.run(base + ["--ip-families", "ipv4"], capture_output=True, text=True, timeout=10)
        self.assertEqual(ipv4.returncode, 0, ipv4.stderr)
        self.assertEqual(ipv4.stdout, plain.stdout)
        self.assertNotIn("ip_families", plain.stdout)
        for families in ("ipv6", "dual"):
            r = subprocess.run(base + ["--ip-families", families], capture_output=True, text=True, timeout=10)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn(", ip_families: %s}\n" % families, r.stdout)
            v = subprocess.run([TURNOUT, "--mode", "validate", "--config-yaml", r.stdout],
                               capture_output=True, text=True, timeout=20)
            self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        bad = subprocess.run(base + ["--ip-families", "both"], capture_output=True, text=True, timeout=10)
        self.assertEqual(bad.returncode, 2)
        self.assertIn("--ip-families 'both' must be ipv4, ipv6 or dual", bad.stderr)
        explicit = subprocess.run([TURNOUT_CP, "bootstrap", "--node", "n", "--ip-families", "dual"],
                                  capture_output=True, text=True, timeout=10)
        self.assertEqual(explicit.returncode, 2)
        self.assertIn("--ip-families", explicit.stderr)

    def test_bootstrap_needs_node(self):
        r = subprocess.run([TURNOUT_CP, "bootstrap"], capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--node", r.stderr)


def main():
    global TURNOUT, TURNOUT_CP
    if len(sys.argv) < 3:
        print("usage: control_plane_api_test.py <turnout-binary> <turnout-cp-binary> [unittest args]",
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
    print("control_plane_api_test: %.1fs" % (time.monotonic() - start), file=sys.stderr)
    return 0 if prog.result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
