#!/usr/bin/env python3
"""Live config end to end: CDS, LDS and RDS files (Envoy's path_config_source)
replaced by rename while traffic flows. Real binary, real files, port 0,
bounded polls.

Usage: live_config_test.py <turnout-binary>
"""

import http.client
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))

from fake_backend import FakeBackend  # noqa: E402
from turnout_process import TurnoutProcess, run_suite  # noqa: E402

TURNOUT = None
POLL_S = 5.0  # every change must be applied well within this (the contract is 1 s)
CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
ROUTES = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
HCM = ("type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
       "HttpConnectionManager")
ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
ENDPOINTS = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
FILE_LOG = "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog"


def poll(predicate, deadline_s=POLL_S):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    return None


def cluster(name, port):
    return {"@type": CLUSTER, "name": name, "type": "STATIC", "connect_timeout": "1s",
            "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
                {"endpoint": {"address": {"socket_address": {
                    "address": "127.0.0.1", "port_value": port}}}}]}]}}


def route_config(name, cluster_name, typed=True):
    rc = {"name": name, "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
        {"match": {"prefix": "/"}, "route": {"cluster": cluster_name, "timeout": "10s"}}]}]}
    if typed:
        rc["@type"] = ROUTES
    return rc


def hcm(stat_prefix, route):
    config = {"@type": HCM, "stat_prefix": stat_prefix,
              "http_filters": [{"name": "envoy.filters.http.router",
                                "typed_config": {"@type": ROUTER}}]}
    config.update(route)
    return {"name": "envoy.filters.network.http_connection_manager", "typed_config": config}


def listener(name, port, route):
    return {"@type": LISTENER, "name": name,
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
            "filter_chains": [{"filters": [hcm(name, route)]}]}


def assignment(name, localities):
    """A ClusterLoadAssignment: `localities` is a list of lists of (port, extra) per
    lb_endpoint; a locality given as a dict {"priority": p, "endpoints": [...]} sets
    its priority."""
    out = []
    for loc in localities:
        priority = 0
        if isinstance(loc, dict):
            priority, loc = loc["priority"], loc["endpoints"]
        lbs = []
        for port, extra in loc:
            lb = {"endpoint": {"address": {"socket_address": {
                "address": "127.0.0.1", "port_value": port}}}}
            lb.update(extra)
            lbs.append(lb)
        entry = {"lb_endpoints": lbs}
        if priority:
            entry["priority"] = priority
        out.append(entry)
    return {"@type": ENDPOINTS, "cluster_name": name, "endpoints": out}


def get(port, path="/", conn=None):
    own = conn is None
    if own:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        backend = None
        try:
            backend = json.loads(body).get("backend")
        except ValueError:
            pass
        return resp.status, backend, resp
    finally:
        if own:
            conn.close()


class LiveConfigTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="turnout-live-")
        self.a = FakeBackend("a").start()
        self.b = FakeBackend("b").start()
        self.version = 0
        self.write("cds.json", CLUSTER, [cluster("a", self.a.port)])
        self.write("lds.json", LISTENER, [])
        self.write("rds.json", ROUTES, [route_config("main", "a")])
        rds = {"rds": {"route_config_name": "main", "config_source": {"path_config_source": {
            "path": self.path("rds.json"), "watched_directory": {"path": self.dir}}}}}
        ingress = listener("ingress", 0, rds)
        del ingress["@type"]
        bootstrap = {
            "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
            "dynamic_resources": {
                "cds_config": {"path_config_source": {
                    "path": self.path("cds.json"), "watched_directory": {"path": self.dir}}},
                # The deprecated form: a bare path, the file's directory watched.
                "lds_config": {"path": self.path("lds.json")},
            },
            "static_resources": {"listeners": [ingress]},
        }
        self.proxy = TurnoutProcess(TURNOUT, json.dumps(bootstrap)).start()
        self.port = self.proxy.port("ingress")
        # The first files are applied once the server runs.
        self.assertIsNotNone(poll(lambda: get(self.port)[1] == "a"), self.proxy.log())

    def tearDown(self):
        self.proxy.stop()
        self.a.stop()
        self.b.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.dir, name)

    def write(self, name, type_url, resources, raw=None):
        """Writes a DiscoveryResponse next to `name` and moves it into place."""
        self.version += 1
        tmp = self.path("." + name + ".tmp")
        with open(tmp, "w") as f:
            f.write(raw if raw is not None else json.dumps(
                {"version_info": "v%d" % self.version, "type_url": type_url,
                 "resources": resources}))
        os.rename(tmp, self.path(name))

    def test_cds_replaced_by_mv_serves_the_new_cluster_while_a_slow_request_completes(self):
        result = {}

        def slow():
            result["slow"] = get(self.port, "/delay/1500")[:2]

        t = threading.Thread(target=slow)
        t.start()
        self.assertIsNotNone(poll(lambda: any("/delay/" in r["path"] for r in self.a.requests)))
        before = self.proxy.counter("cluster_manager.cds.update_success")
        self.write("cds.json", CLUSTER, [cluster("b", self.b.port)])
        self.write("rds.json", ROUTES, [route_config("main", "b")])
        self.assertIsNotNone(poll(lambda: get(self.port)[1] == "b"), self.proxy.log())
        t.join(timeout=15)
        self.assertEqual(result.get("slow"), (200, "a"))  # the removed cluster's request finished
        self.assertGreater(self.proxy.counter("cluster_manager.cds.update_success"), before)
        self.assertGreaterEqual(self.proxy.counter("cluster_manager.cluster_removed"), 1)
        self.assertGreaterEqual(self.proxy.counter("cluster_manager.cluster_added"), 2)
        # The removed cluster's stats scope goes with its last user.
        self.assertIsNotNone(poll(lambda: self.proxy.counter("cluster.a.upstream_rq_total") is None),
                             "cluster.a.* still listed after its removal")
        self.assertIsNotNone(self.proxy.counter("cluster.b.upstream_rq_total"))

    def test_rds_file_switches_the_route_to_a_new_cluster(self):
        self.write("cds.json", CLUSTER, [cluster("a", self.a.port), cluster("b", self.b.port)])
        self.assertIsNotNone(poll(
            lambda: self.proxy.counter("cluster_manager.active_clusters") == 2))
        self.write("rds.json", ROUTES, [route_config("main", "b")])
        self.assertIsNotNone(poll(lambda: get(self.port)[1] == "b"), self.proxy.log())
        self.assertGreaterEqual(
            self.proxy.counter("http.ingress.rds.main.update_success"), 2)

    def test_broken_file_is_rejected_and_the_last_good_config_keeps_serving(self):
        rejected = self.proxy.counter("cluster_manager.cds.update_rejected")
        bad = cluster("a", self.a.port)
        bad["connect_timeout"] = "soon"
        self.write("cds.json", CLUSTER, [bad])
        self.assertIsNotNone(poll(lambda: self.proxy.counter(
            "cluster_manager.cds.update_rejected") == rejected + 1))
        self.assertIn("resources[0].connect_timeout", self.proxy.log())
        self.assertEqual(get(self.port)[:2], (200, "a"))
        # A field the policy refuses is rejected with its path inside the resource too.
        tls = cluster("a", self.a.port)
        tls["transport_socket"] = {"name": "tls", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."
                     "UpstreamTlsContext", "allow_renegotiation": True}}
        self.write("cds.json", CLUSTER, [tls])
        self.assertIsNotNone(poll(lambda: self.proxy.counter(
            "cluster_manager.cds.update_rejected") == rejected + 2))
        self.assertIn("resources[0].transport_socket.typed_config.allow_renegotiation",
                      self.proxy.log())
        self.assertEqual(get(self.port)[:2], (200, "a"))

    def test_an_unknown_field_in_a_file_resource_is_dropped_warned_and_counted(self):
        # Envoy's default for dynamic config (--reject-unknown-dynamic-fields
        # refuses instead: xds_test.XdsUnknownFieldsTest).
        self.assertEqual(self.proxy.counter("server.dynamic_unknown_fields"), 0)
        self.assertEqual(self.proxy.counter("server.static_unknown_fields"), 0)
        newer = cluster("b", self.b.port)
        newer["fancy_new_field"] = {"x": 1}
        self.write("cds.json", CLUSTER, [cluster("a", self.a.port), newer])
        self.write("rds.json", ROUTES, [route_config("main", "b")])
        self.assertIsNotNone(poll(lambda: get(self.port)[1] == "b"), self.proxy.log())
        self.assertEqual(self.proxy.counter("server.dynamic_unknown_fields"), 1)
        self.assertIn("CDS: unknown field ignored: resources[1].fancy_new_field: unknown field "
                      "ignored (envoy.config.cluster.v3.Cluster has no field named "
                      "'fancy_new_field')", self.proxy.log())

    def test_lds_adds_a_listener_then_removes_it(self):
        inline = {"route_config": route_config("inline", "a", typed=False)}
        extra = listener("extra", 0, inline)
        extra["stat_prefix"] = "extra"
        self.write("lds.json", LISTENER, [extra])

        def extra_port():
            listeners = self.proxy._read_listeners()
            return listeners.get("extra", (None, None))[1]

        port = poll(extra_port)
        self.assertIsNotNone(port, self.proxy.log())
        self.assertEqual(get(port)[:2], (200, "a"))
        self.assertEqual(self.proxy.counter("listener_manager.listener_added"), 1)
        self.assertEqual(self.proxy.counter("http.extra.downstream_rq_total"), 1)
        self.assertEqual(self.proxy.counter("listener.extra.downstream_cx_total"), 1)
        # A keep-alive connection on it finishes with Connection: close once removed.
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.assertEqual(get(port, conn=conn)[0], 200)
        self.write("lds.json", LISTENER, [])
        self.assertIsNotNone(poll(lambda: extra_port() is None))
        self.assertEqual(self.proxy.counter("listener_manager.listener_removed"), 1)
        status, _, resp = get(port, conn=conn)
        self.assertEqual(status, 200)
        self.assertEqual(resp.getheader("connection"), "close")
        conn.close()

        def refused():
            try:
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
                return False
            except OSError:
                return True

        self.assertIsNotNone(poll(refused))
        # Its listener.<addr>.* and http.<stat_prefix>.* stats go with it, as a
        # removed cluster's do.
        self.assertIsNotNone(poll(lambda: not [
            k for k in self.proxy.stats()
            if k.startswith(("http.extra.", "listener.extra."))]),
            [k for k in self.proxy.stats() if "extra" in k or str(port) in k])
        self.assertIsNotNone(self.proxy.counter("http.ingress.downstream_rq_total"))

    def test_lds_changing_a_listener_to_bind_to_port_false_closes_its_socket(self):
        inline = {"route_config": route_config("inline", "a", typed=False)}
        virt = listener("virt", 0, inline)
        self.write("lds.json", LISTENER, [virt])

        def virt_port():
            return self.proxy._read_listeners().get("virt", (None, None))[1]

        port = poll(virt_port)
        self.assertIsNotNone(port, self.proxy.log())
        self.assertEqual(get(port)[:2], (200, "a"))
        modified = self.proxy.counter("listener_manager.listener_modified") or 0
        # The same listener, now only a use_original_dst target: no socket.
        virt = listener("virt", port, inline)
        virt["bind_to_port"] = False
        self.write("lds.json", LISTENER, [virt])
        self.assertIsNotNone(poll(lambda: self.proxy.counter(
            "listener_manager.listener_modified") == modified + 1), self.proxy.log())

        def refused():
            try:
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
                return False
            except OSError:
                return True

        self.assertIsNotNone(poll(refused))
        # Still a listener (a hand-off target): /listeners shows its address.
        self.assertEqual(virt_port(), port)
        self.write("lds.json", LISTENER, [])

    def test_keep_alive_connection_sees_a_route_change_on_its_next_request(self):
        self.write("cds.json", CLUSTER, [cluster("a", self.a.port), cluster("b", self.b.port)])
        self.assertIsNotNone(poll(
            lambda: self.proxy.counter("cluster_manager.active_clusters") == 2))
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        self.assertEqual(get(self.port, conn=conn)[:2], (200, "a"))
        sock = conn.sock
        success = self.proxy.counter("http.ingress.rds.main.update_success")
        self.write("rds.json", ROUTES, [route_config("main", "b")])
        self.assertIsNotNone(poll(lambda: self.proxy.counter(
            "http.ingress.rds.main.update_success") == success + 1))
        # Same connection (no reconnect): the next request takes the new routes.
        self.assertEqual(get(self.port, conn=conn)[:2], (200, "b"))
        self.assertIs(conn.sock, sock)
        conn.close()

    def test_cds_eds_cluster_reads_its_assignment_by_cluster_name_from_a_bare_path(self):
        # An EDS cluster from CDS, with the deprecated `path` form and no
        # service_name: the assignment is matched by the cluster's name.
        eds = {"@type": CLUSTER, "name": "e", "type": "EDS", "connect_timeout": "1s",
               "eds_cluster_config": {"eds_config": {"path": self.path("eds.json")}}}
        self.write("eds.json", ENDPOINTS, [assignment("e", [[(self.b.port, {})]])])
        self.write("cds.json", CLUSTER, [cluster("a", self.a.port), eds])
        self.assertIsNotNone(poll(
            lambda: self.proxy.counter("cluster_manager.active_clusters") == 2))
        self.write("rds.json", ROUTES, [route_config("main", "e")])
        self.assertIsNotNone(poll(lambda: get(self.port)[1] == "b"), self.proxy.log())
        self.assertEqual(self.proxy.counter("cluster.e.update_success"), 1)
        # A CDS update that leaves "e" alone keeps its endpoints.
        self.write("cds.json", CLUSTER, [cluster("a", self.a.port), eds,
                                         cluster("c", self.a.port)])
        self.assertIsNotNone(poll(
            lambda: self.proxy.counter("cluster_manager.active_clusters") == 3))
        self.assertEqual(get(self.port)[:2], (200, "b"))
        # A CDS update that changes "e" starts it from the file's assignment.
        changed = dict(eds, connect_timeout="2s")
        self.write("cds.json", CLUSTER, [cluster("a", self.a.port), changed])
        self.assertIsNotNone(poll(
            lambda: self.proxy.counter("cluster_manager.active_clusters") == 2))
        for _ in range(4):
            self.assertEqual(get(self.port)[:2], (200, "b"))

    def config_dump(self):
        status, body, _ = self.proxy.admin("GET", "/config_dump")
        self.assertEqual(status, 200, body)
        dump = json.loads(body)
        return {c["@type"].rsplit(".", 1)[-1]: c for c in dump["configs"]}

    def test_config_dump_shows_dynamic_resources_versions_and_the_last_rejection(self):
        self.write("cds.json", CLUSTER, [cluster("a", self.a.port), cluster("b", self.b.port)])
        cds_version = "v%d" % self.version
        self.assertIsNotNone(poll(
            lambda: self.proxy.counter("cluster_manager.active_clusters") == 2))
        self.write("rds.json", ROUTES, [route_config("main", "b")])
        rds_version = "v%d" % self.version
        self.assertIsNotNone(poll(lambda: get(self.port)[1] == "b"), self.proxy.log())
        dump = self.config_dump()

        clusters = dump["ClustersConfigDump"]
        self.assertEqual(clusters["version_info"], cds_version)
        self.assertNotIn("static_clusters", clusters)
        active = {c["cluster"]["name"]: c for c in clusters["dynamic_active_clusters"]}
        self.assertEqual(sorted(active), ["a", "b"])
        self.assertEqual(active["b"]["version_info"], cds_version)
        self.assertEqual(active["b"]["cluster"]["@type"], CLUSTER)
        self.assertIn("last_updated", active["b"])
        # "a" is unchanged since the first file: it keeps that file's version.
        self.assertEqual(active["a"]["version_info"], "v1")
        self.assertNotIn("error_state", active["b"])

        listeners = dump["ListenersConfigDump"]
        self.assertEqual(listeners["version_info"], "v2")  # the first lds.json
        static = [l["listener"]["name"] for l in listeners["static_listeners"]]
        self.assertEqual(static, ["ingress"])
        self.assertIn("last_updated", listeners["static_listeners"][0])
        self.assertNotIn("dynamic_listeners", listeners)

        routes = dump["RoutesConfigDump"]
        self.assertNotIn("static_route_configs", routes)  # ingress uses RDS
        (main,) = routes["dynamic_route_configs"]
        self.assertEqual(main["version_info"], rds_version)
        self.assertEqual(main["route_config"]["@type"], ROUTES)
        self.assertEqual(main["route_config"]["name"], "main")
        self.assertEqual(
            main["route_config"]["virtual_hosts"][0]["routes"][0]["route"]["cluster"], "b")
        self.assertIn("last_updated", main)

        # A broken CDS file: the last good clusters stay, with the rejection.
        rejected = self.proxy.counter("cluster_manager.cds.update_rejected")
        bad = cluster("b", self.b.port)
        bad["connect_timeout"] = "soon"
        self.write("cds.json", CLUSTER, [cluster("a", self.a.port), bad])
        self.assertIsNotNone(poll(lambda: self.proxy.counter(
            "cluster_manager.cds.update_rejected") == rejected + 1))
        clusters = self.config_dump()["ClustersConfigDump"]
        self.assertEqual(clusters["version_info"], cds_version)
        active = {c["cluster"]["name"]: c for c in clusters["dynamic_active_clusters"]}
        self.assertEqual(active["b"]["version_info"], cds_version)
        error = active["b"]["error_state"]
        self.assertIn("resources[1].connect_timeout", error["details"])
        self.assertIn("last_update_attempt", error)

        # A broken RDS file: the route config keeps its version, with the error.
        rds_rejected = self.proxy.counter("http.ingress.rds.main.update_rejected")
        self.write("rds.json", ROUTES, None, raw="{not json")
        self.assertIsNotNone(poll(lambda: self.proxy.counter(
            "http.ingress.rds.main.update_rejected") == rds_rejected + 1))
        (main,) = self.config_dump()["RoutesConfigDump"]["dynamic_route_configs"]
        self.assertEqual(main["version_info"], rds_version)
        self.assertIn("rds.json", main["error_state"]["details"])
        self.assertIn("last_update_attempt", main["error_state"])

        # The next good CDS file clears the error.
        self.write("cds.json", CLUSTER, [cluster("a", self.a.port)])
        fixed = "v%d" % self.version
        self.assertIsNotNone(poll(
            lambda: self.config_dump()["ClustersConfigDump"]["version_info"] == fixed))
        clusters = self.config_dump()["ClustersConfigDump"]
        self.assertEqual([c["cluster"]["name"] for c in clusters["dynamic_active_clusters"]],
                         ["a"])
        self.assertNotIn("error_state", clusters["dynamic_active_clusters"][0])

    def test_config_dump_shows_lds_listeners_and_inline_route_configs(self):
        inline = {"route_config": route_config("inline", "a", typed=False)}
        self.write("lds.json", LISTENER, [listener("extra", 0, inline)])
        lds_version = "v%d" % self.version
        self.assertIsNotNone(poll(lambda: "extra" in self.proxy._read_listeners()),
                             self.proxy.log())
        dump = self.config_dump()
        listeners = dump["ListenersConfigDump"]
        self.assertEqual(listeners["version_info"], lds_version)
        (extra,) = listeners["dynamic_listeners"]
        self.assertEqual(extra["name"], "extra")
        self.assertEqual(extra["active_state"]["version_info"], lds_version)
        self.assertEqual(extra["active_state"]["listener"]["@type"], LISTENER)
        self.assertEqual(extra["active_state"]["listener"]["name"], "extra")
        self.assertIn("last_updated", extra["active_state"])
        (static,) = dump["RoutesConfigDump"]["static_route_configs"]
        self.assertEqual(static["route_config"]["name"], "inline")
        self.assertEqual(static["route_config"]["@type"], ROUTES)
        self.assertIn("last_updated", static)
        # A rejected LDS file shows on the listener it could not replace.
        self.write("lds.json", LISTENER, [{"@type": LISTENER, "name": "ingress"}])
        self.assertIsNotNone(poll(lambda: "error_state" in self.config_dump()[
            "ListenersConfigDump"]["dynamic_listeners"][0]))
        (extra,) = self.config_dump()["ListenersConfigDump"]["dynamic_listeners"]
        self.assertEqual(extra["active_state"]["version_info"], lds_version)
        self.assertIn("LDS", extra["error_state"]["details"])


class EdsTest(unittest.TestCase):
    """A static EDS cluster whose ClusterLoadAssignment comes from a watched file."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="turnout-eds-")
        self.a = FakeBackend("a").start()
        self.b = FakeBackend("b").start()
        self.version = 0
        self.access_log = self.path("access.log")

    def start(self, initial_fetch_timeout=None, service_name="backend-svc"):
        eds_config = {"path_config_source": {
            "path": self.path("eds.json"), "watched_directory": {"path": self.dir}}}
        if initial_fetch_timeout is not None:
            eds_config["initial_fetch_timeout"] = initial_fetch_timeout
        ingress = listener("ingress", 0, {"route_config": route_config("r", "svc", typed=False)})
        del ingress["@type"]
        ingress["filter_chains"][0]["filters"][0]["typed_config"]["access_log"] = [{
            "name": "file", "typed_config": {
                "@type": FILE_LOG, "path": self.access_log,
                "log_format": {"text_format_source": {
                    "inline_string": "%RESPONSE_CODE% %RESPONSE_FLAGS%\n"}}}}]
        svc = {"name": "svc", "type": "EDS", "connect_timeout": "1s",
               "eds_cluster_config": {"eds_config": eds_config, "service_name": service_name}}
        bootstrap = {
            "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
            "static_resources": {"listeners": [ingress], "clusters": [svc]},
        }
        self.proxy = TurnoutProcess(TURNOUT, json.dumps(bootstrap)).start()
        self.port = self.proxy.port("ingress")

    def tearDown(self):
        if hasattr(self, "proxy"):
            self.proxy.stop()
        self.a.stop()
        self.b.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.dir, name)

    def write(self, resources, raw=None):
        """Writes eds.json next to its place and moves it there (rename)."""
        self.version += 1
        tmp = self.path(".eds.json.tmp")
        with open(tmp, "w") as f:
            f.write(raw if raw is not None else json.dumps(
                {"version_info": "v%d" % self.version, "type_url": ENDPOINTS,
                 "resources": resources}))
        os.rename(tmp, self.path("eds.json"))

    def stat(self, name):
        return self.proxy.counter(name) or 0

    def log_lines(self):
        try:
            with open(self.access_log) as f:
                return f.read().splitlines()
        except OSError:
            return []

    def test_eds_cluster_warms_with_503_uh_until_its_file_appears(self):
        self.start()
        self.assertEqual(self.proxy.counter("cluster_manager.warming_clusters"), 1)
        status, backend, _ = get(self.port)
        self.assertEqual((status, backend), (503, None))
        self.assertIsNotNone(poll(lambda: "503 UH" in self.log_lines()), self.log_lines())
        self.write([assignment("backend-svc", [[(self.a.port, {})]])])
        self.assertIsNotNone(poll(lambda: get(self.port)[1] == "a"), self.proxy.log())
        self.assertEqual(self.stat("cluster.svc.update_success"), 1)
        self.assertEqual(self.proxy.counter("cluster_manager.warming_clusters"), 0)
        self.assertEqual(self.stat("cluster.svc.membership_total"), 1)

    def test_eds_initial_fetch_timeout_ends_the_warming_without_hosts(self):
        self.start(initial_fetch_timeout="0.2s")
        self.assertIsNotNone(poll(lambda: self.stat("cluster.svc.init_fetch_timeout") == 1),
                             self.proxy.log())
        self.assertEqual(self.proxy.counter("cluster_manager.warming_clusters"), 0)
        self.assertEqual(get(self.port)[0], 503)
        self.write([assignment("backend-svc", [[(self.b.port, {})]])])
        self.assertIsNotNone(poll(lambda: get(self.port)[1] == "b"), self.proxy.log())

    def test_eds_update_replaces_the_hosts_and_surviving_hosts_keep_their_connections(self):
        self.write([assignment("backend-svc", [[(self.a.port, {})]])])
        self.start()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        self.assertEqual(get(self.port, conn=conn)[:2], (200, "a"))
        a_connections = self.a.connections
        # Both hosts, weights 3:1 (smooth weighted round robin on this worker).
        self.write([assignment("backend-svc", [[
            (self.a.port, {"load_balancing_weight": 3}),
            (self.b.port, {"load_balancing_weight": 1})]])])
        self.assertIsNotNone(poll(lambda: self.stat("cluster.svc.membership_total") == 2))
        seen = [get(self.port, conn=conn)[1] for _ in range(8)]
        self.assertEqual(seen.count("a"), 6, seen)
        self.assertEqual(seen.count("b"), 2, seen)
        # The update did not close the idle connection to the surviving host.
        self.assertEqual(self.a.connections, a_connections)
        self.assertGreaterEqual(self.stat("cluster.svc.membership_change"), 1)
        # Only b is left.
        self.write([assignment("backend-svc", [[(self.b.port, {})]])])
        self.assertIsNotNone(poll(lambda: self.stat("cluster.svc.membership_total") == 1))
        self.assertEqual({get(self.port, conn=conn)[1] for _ in range(4)}, {"b"})
        conn.close()

    def test_eds_priorities_and_health_status_pick_the_serving_level(self):
        self.write([assignment("backend-svc", [
            [(self.a.port, {})], {"priority": 1, "endpoints": [(self.b.port, {})]}])])
        self.start()
        self.assertIsNotNone(poll(lambda: get(self.port)[1] == "a"), self.proxy.log())
        self.assertEqual({get(self.port)[1] for _ in range(4)}, {"a"})
        # Priority 0 unhealthy: priority 1 serves.
        self.write([assignment("backend-svc", [
            [(self.a.port, {"health_status": "UNHEALTHY"})],
            {"priority": 1, "endpoints": [(self.b.port, {})]}])])
        self.assertIsNotNone(poll(lambda: get(self.port)[1] == "b"), self.proxy.log())
        self.assertEqual({get(self.port)[1] for _ in range(4)}, {"b"})

    def test_bad_eds_file_is_rejected_with_its_path_and_the_last_endpoints_keep_serving(self):
        self.write([assignment("backend-svc", [[(self.a.port, {})]])])
        self.start()
        self.assertIsNotNone(poll(lambda: get(self.port)[1] == "a"), self.proxy.log())
        attempts = self.stat("cluster.svc.update_attempt")
        # A host name where EDS takes IP addresses.
        bad = assignment("backend-svc", [[(self.b.port, {})]])
        bad["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"][
            "address"] = "localhost"
        self.write([bad])
        self.assertIsNotNone(poll(lambda: self.stat("cluster.svc.update_rejected") == 1),
                             self.proxy.log())
        self.assertIn("resources[0].endpoints[0].lb_endpoints[0].endpoint.address."
                      "socket_address.address", self.proxy.log())
        self.assertEqual(get(self.port)[:2], (200, "a"))
        # A field turnout does not honour is rejected with its path.
        policy = assignment("backend-svc", [[(self.b.port, {})]])
        policy["policy"] = {"overprovisioning_factor": 100}
        self.write([policy])
        self.assertIsNotNone(poll(lambda: self.stat("cluster.svc.update_rejected") == 2))
        self.assertIn("resources[0].policy", self.proxy.log())
        # Not a DiscoveryResponse at all.
        self.write(None, raw="{not json")
        self.assertIsNotNone(poll(lambda: self.stat("cluster.svc.update_rejected") == 3))
        self.assertEqual(get(self.port)[:2], (200, "a"))
        # A file without this cluster's assignment keeps its hosts (Envoy's update_empty).
        self.write([assignment("other-svc", [[(self.b.port, {})]])])
        self.assertIsNotNone(poll(lambda: self.stat("cluster.svc.update_empty") == 1))
        self.assertEqual(get(self.port)[:2], (200, "a"))
        self.assertEqual(self.stat("cluster.svc.update_attempt"), attempts + 4)
        self.assertEqual(self.stat("cluster.svc.update_success"), 1)


def set_turnout(binary):
    global TURNOUT
    TURNOUT = binary


if __name__ == "__main__":
    sys.exit(run_suite("live_config_test", set_turnout))
