#!/usr/bin/env python3
"""turnout as an xDS client: ADS (State of the World) over gRPC on turnout's own
HTTP/2 client, driven by a management server written with python3-grpcio
(support/ads_server.py, a control plane other than turnout's own). CDS, EDS,
LDS and RDS over one stream; ACK/NACK, versions across reconnects, the node,
a lost control plane. Real binary, loopback, port 0, bounded polls.

Usage: xds_test.py <turnout-binary>   (TURNOUT_PY_PROTOS set by CTest)
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))

from ads_server import CLUSTER, ENDPOINTS, LISTENER, ROUTES, VHOSTS, AdsServer, pack  # noqa: E402
from fake_backend import FakeBackend, free_closed_port, get_backend  # noqa: E402
from turnout_process import TurnoutProcess, _poll, run_suite  # noqa: E402

import tls_downstream_test as tls_certs  # noqa: E402  (make_certs)

TURNOUT = None
POLL_S = 5.0
HCM = ("type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
       "HttpConnectionManager")
ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"


def poll(predicate, deadline_s=POLL_S):
    return _poll(deadline_s, predicate)


def eds_cluster(name, service_name=None):
    c = {"name": name, "type": "EDS", "connect_timeout": "1s",
         "eds_cluster_config": {"eds_config": {"ads": {}, "resource_api_version": "V3"}}}
    if service_name:
        c["eds_cluster_config"]["service_name"] = service_name
    return c


def assignment(name, *ports):
    return {"cluster_name": name, "endpoints": [{"lb_endpoints": [
        {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": p}}}}
        for p in ports]}]}


def route_config(name, cluster, prefix="/"):
    return {"name": name, "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
        {"match": {"prefix": prefix}, "route": {"cluster": cluster, "timeout": "5s"}}]}]}


def hcm(stat_prefix, route_config_name):
    return {"name": "envoy.filters.network.http_connection_manager", "typed_config": {
        "@type": HCM, "stat_prefix": stat_prefix,
        "rds": {"route_config_name": route_config_name,
                "config_source": {"ads": {}, "resource_api_version": "V3"}},
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER}}]}}


def listener(name, port, route_config_name):
    return {"name": name,
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
            "filter_chains": [{"filters": [hcm(name, route_config_name)]}]}


def bootstrap(ads_port, node_id="sidecar-1", max_message=None):
    grpc_service = {"envoy_grpc": {"cluster_name": "xds_cluster"}}
    if max_message:
        grpc_service["envoy_grpc"]["max_receive_message_length"] = max_message
    return {
        "node": {"id": node_id, "cluster": "reviews"},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "dynamic_resources": {
            "ads_config": {"api_type": "GRPC", "transport_api_version": "V3",
                           "grpc_services": [grpc_service]},
            "cds_config": {"ads": {}, "resource_api_version": "V3"},
            "lds_config": {"ads": {}, "resource_api_version": "V3"},
        },
        "static_resources": {
            # The sidecar's outbound listener is static; its routes come over ADS.
            "listeners": [listener("outbound", 0, "outbound")],
            "clusters": [{
                "name": "xds_cluster", "type": "STATIC", "connect_timeout": "1s",
                "typed_extension_protocol_options": {
                    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3."
                                 "HttpProtocolOptions",
                        "explicit_http_config": {"http2_protocol_options": {}}}},
                "load_assignment": {"cluster_name": "xds_cluster", "endpoints": [{
                    "lb_endpoints": [{"endpoint": {"address": {"socket_address": {
                        "address": "127.0.0.1", "port_value": ads_port}}}}]}]}}],
        },
    }


def serve_initial_state(ads, backend_port):
    """Versions c1/e1/l1/r1: cluster `reviews` (EDS) at backend_port, no
    dynamic listener, route config `outbound` to `reviews`."""
    ads.set(CLUSTER, "c1", [eds_cluster("reviews")])
    ads.set(ENDPOINTS, "e1", [assignment("reviews", backend_port)])
    ads.set(LISTENER, "l1", [])
    ads.set(ROUTES, "r1", [route_config("outbound", "reviews")])


def get(port, path="/"):
    return get_backend(port, path)


class XdsTest(unittest.TestCase):
    def setUp(self):
        self.a = FakeBackend("a").start()
        self.b = FakeBackend("b").start()
        self.ads = AdsServer().start()
        serve_initial_state(self.ads, self.a.port)
        self.proxy = TurnoutProcess(TURNOUT, json.dumps(bootstrap(self.ads.port))).start()
        self.port = self.proxy.port("outbound")

    def tearDown(self):
        self.proxy.stop()
        self.ads.stop()
        self.a.stop()
        self.b.stop()

    def assertServed(self, backend, path="/"):
        got = poll(lambda: get(self.port, path)[1] == backend)
        self.assertIsNotNone(got, "never served by %s; last %r\n%s" % (
            backend, get(self.port, path), self.proxy.log()))

    def test_cds_eds_rds_over_ads_route_traffic(self):
        self.assertServed("a")
        first = self.ads.requests[0]
        # Envoy's order and the node on the first request only.
        self.assertEqual(first.type_url, CLUSTER)
        self.assertEqual(first.node.id, "sidecar-1")
        self.assertEqual(first.node.cluster, "reviews")
        self.assertEqual(first.node.user_agent_name, "turnout")
        self.assertTrue(all(not r.HasField("node") for r in self.ads.requests[1:]))
        self.assertEqual(list(first.resource_names), [])  # wildcard
        # EDS asks for the cluster's assignment, RDS for the HCM's route config.
        self.assertIsNotNone(self.ads.wait_for(
            lambda r: r.type_url == ENDPOINTS and list(r.resource_names) == ["reviews"]))
        self.assertIsNotNone(self.ads.wait_for(
            lambda r: r.type_url == ROUTES and list(r.resource_names) == ["outbound"]))
        # Each type ACKed with its version.
        for type_url, version in ((CLUSTER, "c1"), (ENDPOINTS, "e1"), (LISTENER, "l1"),
                                  (ROUTES, "r1")):
            ack = self.ads.wait_for(lambda r, t=type_url, v=version: r.type_url == t and
                                    r.version_info == v and r.response_nonce)
            self.assertIsNotNone(ack, type_url)
            self.assertFalse(ack.HasField("error_detail"))
        self.assertEqual(self.proxy.wait_stat("control_plane.connected_state", lambda v: v == 1), 1)
        self.assertGreaterEqual(self.proxy.counter("cluster_manager.cds.update_success"), 1)
        self.assertGreaterEqual(self.proxy.counter("http.outbound.rds.outbound.update_success"), 1)
        self.assertGreaterEqual(self.proxy.counter("cluster.reviews.update_success"), 1)

    def restart_logging_info(self):
        """The proxy again with info logs (what the SotW tests read), serving."""
        self.proxy.stop()
        self.proxy = TurnoutProcess(TURNOUT, json.dumps(bootstrap(self.ads.port)),
                                    extra_args=["-l", "info"]).start()
        self.port = self.proxy.port("outbound")
        self.assertServed("a")

    def test_sotw_cds_parses_only_the_clusters_whose_bytes_changed(self):
        self.restart_logging_info()
        self.assertIn("CDS (SotW): 1 of 1 clusters changed", self.proxy.log())
        # A new cluster beside an unchanged one: only the new one is parsed.
        self.ads.set(ENDPOINTS, "e2", [assignment("reviews", self.a.port),
                                       assignment("ratings", self.b.port)])
        self.ads.set(CLUSTER, "c2", [eds_cluster("reviews"), eds_cluster("ratings")])
        self.assertIsNotNone(poll(lambda: "CDS (SotW): 1 of 2 clusters changed"
                                  in self.proxy.log()), self.proxy.log())
        self.assertIsNotNone(poll(lambda: self.proxy.counter(
            "cluster.ratings.membership_healthy") == 1), self.proxy.log())
        # A changed one is parsed again; a missing one is removed.
        changed = eds_cluster("reviews")
        changed["connect_timeout"] = "2s"
        active = self.proxy.counter("cluster_manager.active_clusters")
        self.ads.set(CLUSTER, "c3", [changed])
        self.assertIsNotNone(poll(lambda: "CDS (SotW): 1 of 1 clusters changed"
                                  in self.proxy.log().split("1 of 2 clusters changed")[-1]),
                             self.proxy.log())
        self.assertIsNotNone(poll(lambda: self.proxy.counter("cluster_manager.active_clusters")
                                  == active - 1), self.proxy.log())
        self.assertServed("a")

    def test_sotw_rds_compiles_only_the_virtual_hosts_whose_bytes_changed(self):
        self.restart_logging_info()
        self.ads.set(CLUSTER, "c2", [eds_cluster("reviews"), eds_cluster("ratings")])
        self.ads.set(ENDPOINTS, "e2", [assignment("reviews", self.a.port),
                                       assignment("ratings", self.b.port)])

        def vhosts(ratings_routes):
            return [{"name": "outbound", "virtual_hosts": [
                {"name": "reviews", "domains": ["reviews"], "routes": [
                    {"match": {"prefix": "/"}, "route": {"cluster": "reviews"}}]},
                {"name": "ratings", "domains": ["*"], "routes": ratings_routes}]}]
        base = [{"match": {"prefix": "/"}, "route": {"cluster": "ratings"}}]
        self.ads.set(ROUTES, "r2", vhosts(base))
        self.assertIsNotNone(poll(lambda: get(self.port, "/")[1] == "b"), self.proxy.log())
        # A sandbox route in one virtual host: the other is reused as compiled.
        keyed = [{"match": {"prefix": "/", "headers": [{"name": "x-turnout-routing-key",
                                                        "string_match": {"exact": "feat-x"}}]},
                  "route": {"cluster": "reviews"}}] + base
        self.ads.set(ROUTES, "r3", vhosts(keyed))
        self.assertIsNotNone(poll(lambda: "RDS: 1 of 2 virtual hosts unchanged"
                                  in self.proxy.log()), self.proxy.log())
        self.assertIsNotNone(poll(lambda: get_backend(self.port, "/", {"x-turnout-routing-key": "feat-x"})[1]
                                  == "a"), self.proxy.log())
        self.assertEqual(get(self.port, "/")[1], "b")
        self.assertEqual(get_backend(self.port, "/", {"host": "reviews"})[1], "a")
        # A bad virtual host is NACKed with its path as a whole parse names it;
        # the last good table keeps serving.
        bad = [{"match": {"prefix": "/"}, "route": {"cluster": "ratings",
                                                    "hedge_policy": {"hedge_on_per_try_timeout": True}}}]
        self.ads.set(ROUTES, "r4", vhosts(bad))
        nack = self.ads.wait_for(lambda r: r.type_url == ROUTES and r.HasField("error_detail"))
        self.assertIsNotNone(nack)
        self.assertIn("resources[0].virtual_hosts[1].routes[0].route.hedge_policy",
                      nack.error_detail.message)
        self.assertEqual(get_backend(self.port, "/", {"x-turnout-routing-key": "feat-x"})[1], "a")

    def test_pushed_updates_move_traffic(self):
        self.assertServed("a")
        # EDS: the endpoint changes.
        self.ads.set(ENDPOINTS, "e2", [assignment("reviews", self.b.port)])
        self.assertServed("b")
        # CDS + EDS + RDS: a new cluster, then a route to it.
        self.ads.set(CLUSTER, "c2", [eds_cluster("reviews"), eds_cluster("ratings")])
        self.ads.set(ENDPOINTS, "e3", [assignment("reviews", self.b.port),
                                       assignment("ratings", self.a.port)])
        self.assertIsNotNone(self.ads.wait_for(
            lambda r: r.type_url == ENDPOINTS and list(r.resource_names) == ["ratings", "reviews"]))
        self.ads.set(ROUTES, "r2", [{"name": "outbound", "virtual_hosts": [{
            "name": "all", "domains": ["*"], "routes": [
                {"match": {"prefix": "/ratings"}, "route": {"cluster": "ratings"}},
                {"match": {"prefix": "/"}, "route": {"cluster": "reviews"}}]}]}])
        self.assertServed("a", "/ratings")
        self.assertServed("b", "/")
        # CDS without a cluster removes it; the route to it answers 503.
        self.ads.set(CLUSTER, "c3", [eds_cluster("reviews")])
        self.assertIsNotNone(poll(lambda: get(self.port, "/ratings")[0] == 503), self.proxy.log())
        self.assertIsNotNone(self.ads.wait_for(
            lambda r: r.type_url == ENDPOINTS and list(r.resource_names) == ["reviews"]))

    def test_lds_adds_a_listener(self):
        self.ads.set(ROUTES, "r2", [route_config("outbound", "reviews"),
                                    route_config("inbound", "reviews")])
        self.ads.set(LISTENER, "l2", [listener("inbound", 0, "inbound")])

        def dynamic_port():
            listeners = self.proxy._read_listeners()
            return listeners.get("inbound", (None, None))[1]
        port = poll(dynamic_port)
        self.assertIsNotNone(port, self.proxy.log())
        self.assertIsNotNone(poll(lambda: get(port)[1] == "a"), self.proxy.log())
        self.assertIsNotNone(self.ads.wait_for(
            lambda r: r.type_url == ROUTES and list(r.resource_names) == ["inbound", "outbound"]))

    def test_lds_listeners_on_one_address_are_nacked_and_the_old_listeners_keep_serving(self):
        self.ads.set(ROUTES, "r2", [route_config("outbound", "reviews"),
                                    route_config("inbound", "reviews")])
        taken = free_closed_port()
        self.ads.set(LISTENER, "l2", [listener("inbound", taken, "inbound")])
        self.assertIsNotNone(poll(lambda: "inbound" in self.proxy._read_listeners()),
                             self.proxy.log())
        self.assertIsNotNone(poll(lambda: get(taken)[1] == "a"), self.proxy.log())
        # A second listener on the same address (Envoy: "error adding listener
        # ... has duplicate address ... as existing listener").
        self.ads.set(LISTENER, "l3", [listener("inbound", taken, "inbound"),
                                      listener("again", taken, "inbound")])
        nack = self.ads.wait_for(lambda r: r.type_url == LISTENER and r.HasField("error_detail"))
        self.assertIsNotNone(nack, self.proxy.log())
        self.assertEqual(nack.version_info, "l2")
        self.assertIn("resources[1].address: error adding listener 'again': has duplicate "
                      "address '127.0.0.1:%d' as existing listener 'inbound'" % taken,
                      nack.error_detail.message)
        self.assertNotIn("again", self.proxy._read_listeners())
        self.assertEqual(get(taken)[1], "a")
        self.assertEqual(get(self.port)[1], "a")

    def test_a_listener_warms_until_its_route_configuration_arrives(self):
        self.ads.set(LISTENER, "l2", [listener("late", 0, "late")])
        # Asked for, not there yet: the listener is not bound (no 404 window).
        self.assertIsNotNone(self.ads.wait_for(
            lambda r: r.type_url == ROUTES and list(r.resource_names) == ["late", "outbound"]))
        self.assertEqual(self.proxy.wait_stat("listener_manager.total_listeners_warming",
                                              lambda v: v == 1), 1)
        self.assertNotIn("late", self.proxy._read_listeners())
        self.ads.set(ROUTES, "r2", [route_config("outbound", "reviews"),
                                    route_config("late", "reviews")])

        def late_port():
            return self.proxy._read_listeners().get("late", (None, None))[1]
        port = poll(late_port)
        self.assertIsNotNone(port, self.proxy.log())
        self.assertEqual(get(port)[1], "a")
        self.assertEqual(self.proxy.counter("listener_manager.total_listeners_warming"), 0)

    def test_bad_update_is_nacked_and_the_last_good_config_keeps_serving(self):
        self.assertServed("a")
        rejected_before = self.proxy.counter("cluster_manager.cds.update_rejected")
        bad = eds_cluster("reviews")
        bad["connect_timeout"] = "-1s"
        self.ads.set(CLUSTER, "c-bad", [bad])
        nack = self.ads.wait_for(lambda r: r.type_url == CLUSTER and r.HasField("error_detail"))
        self.assertIsNotNone(nack, self.proxy.log())
        self.assertEqual(nack.version_info, "c1")  # the last good one
        self.assertIn("resources[0].connect_timeout", nack.error_detail.message)
        self.assertEqual(nack.error_detail.code, 3)
        self.assertEqual(get(self.port)[1], "a")
        self.assertGreater(self.proxy.counter("cluster_manager.cds.update_rejected"),
                           rejected_before)
        # Behind an unchanged cluster (its bytes are the running one's: not
        # parsed again), a bad one is still named by its index in the response.
        self.ads.set(CLUSTER, "c-bad2", [eds_cluster("reviews"), dict(bad, name="extra")])
        nack = self.ads.wait_for(lambda r: r.type_url == CLUSTER and r.HasField("error_detail")
                                 and "resources[1]" in r.error_detail.message)
        self.assertIsNotNone(nack, self.proxy.log())
        self.assertIn("resources[1].connect_timeout", nack.error_detail.message)
        self.assertEqual(get(self.port)[1], "a")
        # A route to an unsupported feature: NACKed with its path, routes unchanged.
        self.ads.set(ROUTES, "r-bad", [{"name": "outbound", "virtual_hosts": [{
            "name": "all", "domains": ["*"], "routes": [{"match": {"prefix": "/"},
                                                         "route": {"cluster": "reviews"},
                                                         "typed_per_filter_config": {}}]}],
            "vhds": {"config_source": {"ads": {}}}}])
        nack = self.ads.wait_for(lambda r: r.type_url == ROUTES and r.HasField("error_detail"))
        self.assertIsNotNone(nack, self.proxy.log())
        self.assertEqual(nack.version_info, "r1")
        self.assertIn("resources[0].vhds", nack.error_detail.message)
        self.assertEqual(get(self.port)[1], "a")
        # A resource of another type in the response: NACKed, nothing applied.
        self.ads.set(CLUSTER, "c-mixed", [pack(ENDPOINTS, assignment("reviews", self.b.port))])
        nack = self.ads.wait_for(lambda r: r.type_url == CLUSTER and r.HasField("error_detail")
                                 and "c-mixed" not in r.version_info and r.response_nonce
                                 and "type" in r.error_detail.message)
        self.assertIsNotNone(nack, self.proxy.log())
        self.assertIn("resources[0]: type '%s'" % ENDPOINTS, nack.error_detail.message)
        self.assertEqual(get(self.port)[1], "a")
        # An empty CDS is valid: it removes the dynamic cluster.
        self.ads.set(CLUSTER, "c-empty", [])
        self.assertIsNotNone(poll(lambda: get(self.port)[0] == 503), self.proxy.log())
        # Config dump shows the dynamic route config with its version and last error.
        status, body, _ = self.proxy.admin("GET", "/config_dump")
        self.assertEqual(status, 200)
        self.assertIn("outbound", body.decode() if isinstance(body, bytes) else body)

    def test_vhds_over_sotw_ads_is_nacked_naming_the_field(self):
        self.assertServed("a")
        rc = route_config("outbound", "reviews")
        rc["vhds"] = {"config_source": {"ads": {}, "resource_api_version": "V3"}}
        self.ads.set(ROUTES, "r-vhds", [rc])
        nack = self.ads.wait_for(lambda r: r.type_url == ROUTES and r.HasField("error_detail"))
        self.assertIsNotNone(nack, self.proxy.log())
        self.assertEqual(nack.version_info, "r1")
        self.assertIn("resources[0].vhds.config_source.ads: only 'DELTA_GRPC' or 'ADS' (which "
                      "uses Delta xDS) is supported as a config source", nack.error_detail.message)
        self.assertIn("DELTA_GRPC", nack.error_detail.message)
        self.assertEqual(get(self.port)[1], "a")
        # Nothing subscribes to VirtualHosts on a SotW stream.
        self.assertEqual([r for r in self.ads.requests if r.type_url == VHOSTS], [])

    def test_config_dump_include_eds_shows_every_cluster_s_endpoints(self):
        self.assertServed("a")

        def endpoints_dump(path):
            status, body, _ = self.proxy.admin("GET", path)
            self.assertEqual(status, 200)
            return [c for c in json.loads(body)["configs"]
                    if c["@type"].endswith("EndpointsConfigDump")]
        self.assertEqual(endpoints_dump("/config_dump"), [])  # only with include_eds, as Envoy
        [dump] = endpoints_dump("/config_dump?include_eds")
        [dynamic] = dump["dynamic_endpoint_configs"]
        cla = dynamic["endpoint_config"]
        self.assertEqual(cla["cluster_name"], "reviews")
        [ep] = cla["endpoints"][0]["lb_endpoints"]
        self.assertEqual(ep["endpoint"]["address"]["socket_address"],
                         {"address": "127.0.0.1", "port_value": self.a.port})
        self.assertEqual(ep["health_status"], "HEALTHY")
        static = {s["endpoint_config"]["cluster_name"]: s for s in dump["static_endpoint_configs"]}
        self.assertEqual(list(static), ["xds_cluster"])
        self.assertEqual(static["xds_cluster"]["endpoint_config"]["endpoints"][0]["lb_endpoints"][0]
                         ["endpoint"]["address"]["socket_address"]["port_value"], self.ads.port)
        # A pushed assignment shows at once.
        self.ads.set(ENDPOINTS, "e2", [assignment("reviews", self.b.port)])
        self.assertServed("b")
        [dump] = endpoints_dump("/config_dump?include_eds")
        self.assertEqual(dump["dynamic_endpoint_configs"][0]["endpoint_config"]["endpoints"][0]
                         ["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]["port_value"],
                         self.b.port)

    def test_lost_control_plane_keeps_serving_and_reconnects_with_versions(self):
        self.assertServed("a")
        self.ads.wait_for(lambda r: r.type_url == ROUTES and r.version_info == "r1")
        port = self.ads.port
        self.ads.stop()
        self.assertEqual(self.proxy.wait_stat("control_plane.connected_state", lambda v: v == 0), 0)
        for _ in range(20):
            self.assertEqual(get(self.port)[1], "a")
        # The control plane comes back on the same port: turnout reconnects
        # (back-off under 1 s at first), sends the node again and the versions it
        # accepted, and takes the new state.
        self.ads = AdsServer().start(port)
        self.ads.set(CLUSTER, "c1", [eds_cluster("reviews")])
        self.ads.set(ENDPOINTS, "e9", [assignment("reviews", self.b.port)])
        self.ads.set(LISTENER, "l1", [])
        self.ads.set(ROUTES, "r1", [route_config("outbound", "reviews")])
        first = self.ads.wait_for(lambda r: r.HasField("node"), deadline_s=10)
        self.assertIsNotNone(first, self.proxy.log())
        self.assertEqual(first.type_url, CLUSTER)
        self.assertEqual(first.version_info, "c1")
        self.assertEqual(first.response_nonce, "")
        eds = self.ads.wait_for(lambda r: r.type_url == ENDPOINTS and not r.response_nonce)
        self.assertEqual(eds.version_info, "e1")
        self.assertServed("b")
        self.assertEqual(self.proxy.wait_stat("control_plane.connected_state", lambda v: v == 1), 1)


def api_source(cluster="xds_cluster"):
    return {"api_config_source": {"api_type": "GRPC", "transport_api_version": "V3",
                                  "grpc_services": [{"envoy_grpc": {"cluster_name": cluster}}]},
            "resource_api_version": "V3"}


def separate_sources_bootstrap(ads_port):
    """No ads_config: CDS, LDS, RDS (the static listener's) and EDS (the
    clusters CDS brings) each on their own api_config_source stream."""
    boot = bootstrap(ads_port)
    del boot["dynamic_resources"]["ads_config"]
    boot["dynamic_resources"]["cds_config"] = api_source()
    boot["dynamic_resources"]["lds_config"] = api_source()
    hcm_config = boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    hcm_config["typed_config"]["rds"]["config_source"] = api_source()
    return boot


class _OneBackendAndServer(unittest.TestCase):
    """Backend `a`, a test xDS server with nothing set, and a proxy the test starts."""

    def setUp(self):
        self.a = FakeBackend("a").start()
        self.ads = AdsServer().start()
        self.proxy = None

    def tearDown(self):
        if self.proxy is not None:
            self.proxy.stop()
        self.ads.stop()
        self.a.stop()


def with_unknown_field(type_url, resource, number=999):
    """`resource` packed, with field `number` (a varint) appended to its bytes: a
    field from an API newer than turnout's."""
    a = pack(type_url, resource)
    tag = number << 3
    varint = bytearray()
    while True:
        b, tag = tag & 0x7F, tag >> 7
        varint.append(b | (0x80 if tag else 0))
        if not tag:
            break
    a.value = a.value + bytes(varint) + b"\x01"
    return a


class XdsUnknownFieldsTest(_OneBackendAndServer):
    """Envoy's --reject-unknown-dynamic-fields / --ignore-unknown-dynamic-fields:
    by default a resource with unknown fields is taken without them, logged
    and counted in server.dynamic_unknown_fields; rejecting NACKs it with the
    field's path; ignoring takes it with neither a log nor a count."""

    def start(self, *flags, boot=None):
        serve_initial_state(self.ads, self.a.port)
        self.ads.set(CLUSTER, "c-new", [with_unknown_field(CLUSTER, eds_cluster("reviews"))])
        self.proxy = TurnoutProcess(TURNOUT, json.dumps(boot or bootstrap(self.ads.port)),
                                    extra_args=list(flags)).start()
        return self.proxy.port("outbound")

    def test_unknown_fields_are_warned_and_counted_by_default(self):
        port = self.start()
        self.assertIsNotNone(poll(lambda: get(port)[1] == "a"), self.proxy.log())
        self.assertEqual(self.proxy.wait_counter("server.dynamic_unknown_fields", 1), 1)
        self.assertEqual(self.proxy.counter("cluster_manager.cds.update_rejected"), 0)
        self.assertIn("CDS: unknown field ignored: resources[0]: unknown field number(s) 999 "
                      "in envoy.config.cluster.v3.Cluster", self.proxy.log())
        eds = with_unknown_field(ENDPOINTS, assignment("reviews", self.a.port), number=1234)
        self.ads.set(ENDPOINTS, "e2", [eds])
        self.proxy.wait_counter("server.dynamic_unknown_fields", 2)
        self.assertIn("EDS: unknown field ignored: resources[0]: unknown field number(s) 1234 ",
                      self.proxy.log())
        # The same field again is not counted again (Envoy counts each once).
        self.ads.set(ENDPOINTS, "e3", [eds])
        acked = self.ads.wait_for(lambda r: r.type_url == ENDPOINTS and r.version_info == "e3"
                                  and not r.HasField("error_detail"))
        self.assertIsNotNone(acked, self.proxy.log())
        self.assertEqual(self.proxy.counter("server.dynamic_unknown_fields"), 2)
        self.assertEqual(self.proxy.log().count("unknown field number(s) 1234"), 1)
        self.assertEqual(get(port)[1], "a")

    def test_rejecting_unknown_fields_nacks_with_the_path(self):
        port = self.start("--reject-unknown-dynamic-fields")
        nack = self.ads.wait_for(lambda r: r.type_url == CLUSTER and r.HasField("error_detail"))
        self.assertIsNotNone(nack, self.proxy.log())
        self.assertIn("resources[0]: unknown field number(s) 999 in "
                      "envoy.config.cluster.v3.Cluster", nack.error_detail.message)
        self.assertGreaterEqual(self.proxy.counter("cluster_manager.cds.update_rejected"), 1)
        self.assertEqual(self.proxy.counter("server.dynamic_unknown_fields"), 0)
        # The cluster never arrived: no route to it.
        self.assertEqual(get(port)[0], 503)
        # The same cluster without the field is taken.
        self.ads.set(CLUSTER, "c-plain", [eds_cluster("reviews")])
        self.assertIsNotNone(poll(lambda: get(port)[1] == "a"), self.proxy.log())
        _, body, _ = self.proxy.admin("GET", "/server_info")
        options = json.loads(body)["command_line_options"]
        self.assertTrue(options["reject_unknown_dynamic_fields"])

    def test_ignoring_unknown_fields_takes_them_with_no_warning_and_no_count(self):
        # And the bootstrap's own, allowed by --allow-unknown-static-fields.
        boot = bootstrap(self.ads.port)
        boot["node"]["field_of_tomorrow"] = 1
        port = self.start("--ignore-unknown-dynamic-fields", "--base-id", "7",
                          "--local-address-ip-version", "v6", "--allow-unknown-static-fields",
                          boot=boot)
        self.assertIsNotNone(poll(lambda: get(port)[1] == "a"), self.proxy.log())
        self.assertEqual(self.proxy.counter("server.dynamic_unknown_fields"), 0)
        self.assertNotIn("CDS: unknown field", self.proxy.log())
        self.assertIn("node.field_of_tomorrow: unknown field ignored", self.proxy.log())
        self.assertEqual(self.proxy.counter("server.static_unknown_fields"), 1)
        _, body, _ = self.proxy.admin("GET", "/server_info")
        options = json.loads(body)["command_line_options"]
        self.assertTrue(options["ignore_unknown_dynamic_fields"])
        self.assertFalse(options.get("reject_unknown_dynamic_fields", False))
        self.assertEqual(options["base_id"], "7")
        self.assertEqual(options["local_address_ip_version"], "v6")


class XdsSeparateSourcesTest(_OneBackendAndServer):

    def test_separate_api_config_sources_stream_each_type(self):
        cluster = eds_cluster("reviews")
        cluster["eds_cluster_config"]["eds_config"] = api_source()
        self.ads.set(CLUSTER, "c1", [cluster])
        self.ads.set(ENDPOINTS, "e1", [assignment("reviews", self.a.port)])
        self.ads.set(LISTENER, "l1", [])
        self.ads.set(ROUTES, "r1", [route_config("outbound", "reviews")])
        self.proxy = TurnoutProcess(TURNOUT, json.dumps(separate_sources_bootstrap(self.ads.port))).start()
        port = self.proxy.port("outbound")
        self.assertIsNotNone(poll(lambda: get(port)[1] == "a"), self.proxy.log())
        # Each type came on its own service's stream, none on ADS.
        methods = {}
        for method, type_url in self.ads.methods:
            methods.setdefault(type_url, set()).add(method)
        self.assertEqual(methods, {
            CLUSTER: {"/envoy.service.cluster.v3.ClusterDiscoveryService/StreamClusters"},
            LISTENER: {"/envoy.service.listener.v3.ListenerDiscoveryService/StreamListeners"},
            ROUTES: {"/envoy.service.route.v3.RouteDiscoveryService/StreamRoutes"},
            ENDPOINTS: {"/envoy.service.endpoint.v3.EndpointDiscoveryService/StreamEndpoints"}})
        # Every stream sends the node on its first request, and ACKs.
        self.assertEqual(sum(1 for r in self.ads.requests if r.HasField("node")), 4)
        for type_url, version in ((CLUSTER, "c1"), (ENDPOINTS, "e1"), (ROUTES, "r1")):
            self.assertIsNotNone(self.ads.wait_for(
                lambda r, t=type_url, v=version: r.type_url == t and r.version_info == v
                and r.response_nonce), type_url)
        # Pushes on each stream move traffic.
        self.b = FakeBackend("b").start()
        try:
            self.ads.set(ENDPOINTS, "e2", [assignment("reviews", self.b.port)])
            self.assertIsNotNone(poll(lambda: get(port)[1] == "b"), self.proxy.log())
        finally:
            self.b.stop()

    def test_an_update_naming_a_second_source_for_a_type_is_rejected(self):
        cluster = eds_cluster("reviews")
        cluster["eds_cluster_config"]["eds_config"] = api_source()
        other = eds_cluster("ratings")
        other["eds_cluster_config"]["eds_config"] = {"ads": {}, "resource_api_version": "V3"}
        self.ads.set(CLUSTER, "c1", [cluster])
        self.ads.set(ENDPOINTS, "e1", [assignment("reviews", self.a.port)])
        self.ads.set(LISTENER, "l1", [])
        self.ads.set(ROUTES, "r1", [route_config("outbound", "reviews")])
        self.proxy = TurnoutProcess(TURNOUT, json.dumps(separate_sources_bootstrap(self.ads.port))).start()
        port = self.proxy.port("outbound")
        self.assertIsNotNone(poll(lambda: get(port)[1] == "a"), self.proxy.log())
        # EDS is taken from its own stream: a cluster that wants it over ADS is
        # refused, with the path, and the last good config keeps serving.
        self.ads.set(CLUSTER, "c2", [cluster, other])
        nack = self.ads.wait_for(lambda r: r.type_url == CLUSTER and r.HasField("error_detail"))
        self.assertIsNotNone(nack, self.proxy.log())
        self.assertIn("resources[1].eds_cluster_config.eds_config.ads", nack.error_detail.message)
        self.assertEqual(get(port)[1], "a")


class XdsDeltaTest(unittest.TestCase):
    """api_type DELTA_GRPC against the python test server's Delta ADS: a
    server other than turnout-cp."""

    def setUp(self):
        self.a = FakeBackend("a").start()
        self.b = FakeBackend("b").start()
        self.ads = AdsServer().start()
        serve_initial_state(self.ads, self.a.port)
        boot = bootstrap(self.ads.port)
        boot["dynamic_resources"]["ads_config"]["api_type"] = "DELTA_GRPC"
        self.proxy = TurnoutProcess(TURNOUT, json.dumps(boot)).start()
        self.port = self.proxy.port("outbound")

    def tearDown(self):
        self.proxy.stop()
        self.ads.stop()
        self.a.stop()
        self.b.stop()

    def test_delta_against_a_foreign_server_routes_pushes_removes_nacks_and_resumes(self):
        self.assertIsNotNone(poll(lambda: get(self.port)[1] == "a"), self.proxy.log())
        self.assertEqual(self.ads.requests, [])  # no SotW request
        first = self.ads.delta_requests[0]
        self.assertTrue(first.HasField("node"))
        self.assertEqual(first.node.user_agent_name, "turnout")
        eds = [r for r in self.ads.delta_requests if r.type_url == ENDPOINTS]
        self.assertIn("reviews", [n for r in eds for n in r.resource_names_subscribe])

        # A push: only the changed assignment goes; traffic moves.
        self.ads.set(ENDPOINTS, "e2", [assignment("reviews", self.b.port)])
        self.assertIsNotNone(poll(lambda: get(self.port)[1] == "b"), self.proxy.log())

        # A bad cluster is NACKed with its path; the last good one serves.
        bad = eds_cluster("reviews")
        bad["connect_timeout"] = "-1s"
        self.ads.set(CLUSTER, "c-bad", [bad])
        nack = self.ads.wait_for_delta(lambda r: r.type_url == CLUSTER and r.HasField("error_detail"))
        self.assertIsNotNone(nack, self.proxy.log())
        self.assertIn("connect_timeout", nack.error_detail.message)
        self.assertEqual(get(self.port)[1], "b")

        # The server restarts: turnout resumes with the versions it holds.
        self.ads.set(CLUSTER, "c1", [eds_cluster("reviews")])
        held = self.ads.wait_for_delta(lambda r: r.type_url == CLUSTER and r.response_nonce
                                       and not r.HasField("error_detail"))
        self.assertIsNotNone(held, self.proxy.log())
        port = self.ads.port
        self.ads.stop()
        self.ads = AdsServer().start(port)
        serve_initial_state(self.ads, self.b.port)
        resumed = self.ads.wait_for_delta(lambda r: r.type_url == CLUSTER and r.HasField("node"),
                                          deadline_s=10)
        self.assertIsNotNone(resumed, self.proxy.log())
        self.assertIn("reviews", dict(resumed.initial_resource_versions))
        self.assertEqual(get(self.port)[1], "b")

        # A removal by name: the cluster goes, requests get 503.
        self.ads.set(CLUSTER, "c-empty", [])
        self.assertIsNotNone(poll(lambda: get(self.port)[0] == 503), self.proxy.log())

    def test_cds_updates_change_the_eds_subscription_by_difference(self):
        """A CDS update subscribes the EDS names of the clusters it adds and
        unsubscribes those no cluster asks for any more; a name two clusters
        share stays until both are gone (turnout applies the difference,
        not a walk over every cluster)."""
        self.assertIsNotNone(poll(lambda: get(self.port)[1] == "a"), self.proxy.log())

        def eds_since(n):
            return [r for r in self.ads.delta_requests[n:] if r.type_url == ENDPOINTS]

        def subscribed(n):
            return [x for r in eds_since(n) for x in r.resource_names_subscribe]

        def unsubscribed(n):
            return [x for r in eds_since(n) for x in r.resource_names_unsubscribe]

        n = len(self.ads.delta_requests)
        self.ads.set(ENDPOINTS, "e2", [assignment("reviews", self.a.port),
                                       assignment("shared", self.b.port)])
        self.ads.set(CLUSTER, "c2", [eds_cluster("reviews"), eds_cluster("x", "shared"),
                                     eds_cluster("y", "shared")])
        self.assertIsNotNone(poll(lambda: "shared" in subscribed(n)), self.proxy.log())
        self.assertEqual(subscribed(n), ["shared"])  # once, for both clusters
        self.assertIsNotNone(poll(lambda: self.proxy.counter(
            "cluster.y.membership_healthy") == 1), self.proxy.log())
        self.assertEqual(self.proxy.counter("cluster.x.membership_healthy"), 1)
        self.assertEqual(self.proxy.counter("cluster_manager.warming_clusters"), 0)
        # Envoy's update_duration histogram of the subscription has samples.
        duration = self.proxy.stats().get("cluster_manager.cds.update_duration", "")
        self.assertRegex(duration, r"^P0\(", duration)

        # x goes: y still asks for "shared".
        n = len(self.ads.delta_requests)
        active = self.proxy.counter("cluster_manager.active_clusters")
        self.ads.set(CLUSTER, "c3", [eds_cluster("reviews"), eds_cluster("y", "shared")])
        self.assertIsNotNone(poll(lambda: self.proxy.counter("cluster_manager.active_clusters")
                                  == active - 1), self.proxy.log())
        time.sleep(0.3)  # the EDS request goes in the same flush as the CDS ACK
        self.assertEqual(unsubscribed(n), [])

        # y goes too: "shared" is unsubscribed, "reviews" stays.
        n = len(self.ads.delta_requests)
        self.ads.set(CLUSTER, "c4", [eds_cluster("reviews")])
        self.assertIsNotNone(poll(lambda: "shared" in unsubscribed(n)), self.proxy.log())
        self.assertNotIn("reviews", unsubscribed(n))
        self.assertEqual(get(self.port)[1], "a")

        # A new cluster of a new name, while warming, then warmed by its assignment.
        n = len(self.ads.delta_requests)
        self.ads.set(CLUSTER, "c5", [eds_cluster("reviews"), eds_cluster("z")])
        self.assertIsNotNone(poll(lambda: "z" in subscribed(n)), self.proxy.log())
        self.assertIsNotNone(poll(lambda: self.proxy.counter(
            "cluster_manager.warming_clusters") == 1), self.proxy.log())
        self.ads.set(ENDPOINTS, "e3", [assignment("reviews", self.a.port),
                                       assignment("z", self.b.port)])
        self.assertIsNotNone(poll(lambda: self.proxy.counter(
            "cluster_manager.warming_clusters") == 0), self.proxy.log())
        self.assertEqual(self.proxy.counter("cluster.z.membership_healthy"), 1)


def vhds_route_config(name="outbound", inline=()):
    return {"name": name, "virtual_hosts": list(inline),
            "vhds": {"config_source": {"ads": {}, "resource_api_version": "V3"}}}


def vhost(name, domain, cluster):
    return {"name": name, "domains": [domain], "routes": [
        {"match": {"prefix": "/"}, "route": {"cluster": cluster, "timeout": "5s"}}]}


def delta_bootstrap(ads_port):
    boot = bootstrap(ads_port)
    boot["dynamic_resources"]["ads_config"]["api_type"] = "DELTA_GRPC"
    return boot


def serve_vhds_state(ads, reviews_port, ratings_port):
    """Clusters reviews and ratings (EDS); route config `outbound` with vhds
    and no inline virtual host; its services as VirtualHosts outbound/<svc>."""
    ads.set(CLUSTER, "c1", [eds_cluster("reviews"), eds_cluster("ratings")])
    ads.set(ENDPOINTS, "e1", [assignment("reviews", reviews_port),
                              assignment("ratings", ratings_port)])
    ads.set(LISTENER, "l1", [])
    ads.set(ROUTES, "r1", [vhds_route_config()])
    ads.set(VHOSTS, "v1", [vhost("outbound/reviews", "reviews", "reviews"),
                           vhost("outbound/ratings", "ratings", "ratings")])


class XdsVhdsTest(_OneBackendAndServer):
    """VHDS over Delta ADS (Envoy's semantics): the route configuration
    `outbound` names vhds; each service's virtual host is its own
    VirtualHost resource `outbound/<service>`, subscribed by namespace."""

    def setUp(self):
        super().setUp()
        self.b = FakeBackend("b").start()

    def tearDown(self):
        super().tearDown()
        self.b.stop()

    def host(self, host):
        return get_backend(self.port, "/", {"Host": host})

    def start_proxy(self, **kw):
        self.proxy = TurnoutProcess(TURNOUT, json.dumps(delta_bootstrap(self.ads.port)),
                                    **kw).start()
        self.port = self.proxy.port("outbound")

    def route_dump(self):
        status, body, _ = self.proxy.admin("GET", "/config_dump")
        self.assertEqual(status, 200)
        [routes] = [c for c in json.loads(body)["configs"]
                    if c["@type"].endswith("RoutesConfigDump")]
        return {d["route_config"]["name"]: d["route_config"]
                for d in routes.get("dynamic_route_configs", [])}

    def test_vhds_routes_pushes_removes_and_nacks_a_bad_virtual_host(self):
        serve_vhds_state(self.ads, self.a.port, self.b.port)
        self.start_proxy()
        self.assertIsNotNone(poll(lambda: self.host("reviews")[1] == "a"), self.proxy.log())
        self.assertEqual(self.host("ratings")[1], "b")
        self.assertEqual(self.host("details")[0], 404)  # no virtual host: no route
        sub = self.ads.wait_for_delta(lambda r: r.type_url == VHOSTS and r.HasField("node") is False
                                      and list(r.resource_names_subscribe) == ["outbound"])
        self.assertIsNotNone(sub, self.proxy.log())
        # /config_dump shows the route configuration with the VHDS hosts merged in.
        dumped = self.route_dump()["outbound"]
        self.assertEqual(sorted(v["name"] for v in dumped["virtual_hosts"]),
                         ["outbound/ratings", "outbound/reviews"])
        self.assertIn("vhds", dumped)
        reloads = self.proxy.counter("http.outbound.vhds.outbound.config_reload")
        self.assertGreaterEqual(reloads, 1)
        duration = self.proxy.stats().get("http.outbound.vhds.outbound.update_duration", "")
        self.assertRegex(duration, r"^P0\(", duration)

        # A changed virtual host moves its traffic; only it is sent.
        self.ads.set(VHOSTS, "v2", [vhost("outbound/reviews", "reviews", "ratings"),
                                    vhost("outbound/ratings", "ratings", "ratings")])
        self.assertIsNotNone(poll(lambda: self.host("reviews")[1] == "b"), self.proxy.log())
        self.assertGreater(self.proxy.counter("http.outbound.vhds.outbound.config_reload"),
                           reloads)

        # A removed one: 404, no route; the other keeps serving.
        self.ads.set(VHOSTS, "v3", [vhost("outbound/reviews", "reviews", "ratings")])
        self.assertIsNotNone(poll(lambda: self.host("ratings")[0] == 404), self.proxy.log())
        self.assertEqual(self.host("reviews")[1], "b")
        def dumped_hosts():
            return {v["name"]: v["routes"][0]["route"]["cluster"]
                    for v in self.route_dump()["outbound"]["virtual_hosts"]}
        self.assertEqual(dumped_hosts(), {"outbound/reviews": "ratings"})

        # A malformed one is NACKed with its field path; the last good table serves.
        bad = vhost("outbound/details", "details", "reviews")
        bad["routes"][0]["route"]["hedge_policy"] = {"hedge_on_per_try_timeout": True}
        self.ads.set(VHOSTS, "v4", [vhost("outbound/reviews", "reviews", "reviews"), bad])
        nack = self.ads.wait_for_delta(lambda r: r.type_url == VHOSTS
                                       and r.HasField("error_detail"))
        self.assertIsNotNone(nack, self.proxy.log())
        self.assertRegex(nack.error_detail.message,
                         r"resources\[[01]\]\.routes\[0\]\.route\.hedge_policy")
        self.assertEqual(self.host("reviews")[1], "b")  # v3's, not v4's change
        self.assertEqual(self.host("details")[0], 404)
        self.assertEqual(dumped_hosts(), {"outbound/reviews": "ratings"})  # v3's too
        # A domain another virtual host has: NACKed too, naming the resource.
        dup = vhost("outbound/reviews2", "reviews", "reviews")
        self.ads.set(VHOSTS, "v5", [vhost("outbound/reviews", "reviews", "ratings"), dup])
        nack = self.ads.wait_for_delta(lambda r: r.type_url == VHOSTS and r.HasField("error_detail")
                                       and "duplicate" in r.error_detail.message)
        self.assertIsNotNone(nack, self.proxy.log())
        self.assertRegex(nack.error_detail.message,
                         r'^resources\[[01]\]\.domains\[0\]: duplicate domain "reviews"')
        self.assertEqual(self.host("reviews")[1], "b")

        # The inline virtual hosts and the VHDS ones together: a new RDS
        # version with a catch-all keeps the VHDS hosts.
        self.ads.set(VHOSTS, "v6", [vhost("outbound/reviews", "reviews", "reviews")])
        self.assertIsNotNone(poll(lambda: self.host("reviews")[1] == "a"), self.proxy.log())
        self.ads.set(ROUTES, "r2", [vhds_route_config(inline=[vhost("all", "*", "ratings")])])
        self.assertIsNotNone(poll(lambda: self.host("details")[1] == "b"), self.proxy.log())
        self.assertEqual(self.host("reviews")[1], "a")

        # No vhds any more: the namespace is unsubscribed.
        self.ads.set(ROUTES, "r3", [route_config("outbound", "ratings")])
        unsub = self.ads.wait_for_delta(lambda r: r.type_url == VHOSTS
                                        and list(r.resource_names_unsubscribe) == ["outbound"])
        self.assertIsNotNone(unsub, self.proxy.log())
        self.assertIsNotNone(poll(lambda: self.host("reviews")[1] == "b"), self.proxy.log())

    def test_hcms_naming_one_route_configuration_share_its_subscription_and_stats(self):
        # Envoy keys RDS subscriptions by the Rds message: HCMs that name the
        # same route configuration share one, whose stats (and VHDS's) live
        # under the first HCM's stat_prefix. A sidecar's per-port outbound
        # listeners all name `outbound`: one set of stats, not one per port.
        serve_vhds_state(self.ads, self.a.port, self.b.port)
        second = free_closed_port()
        self.ads.set(LISTENER, "l2", [listener("outbound_9080", second, "outbound")])
        self.start_proxy()
        self.assertIsNotNone(poll(lambda: get_backend(second, "/", {"Host": "ratings"})[1] == "b"),
                             self.proxy.log())
        self.assertEqual(self.host("reviews")[1], "a")
        stats = self.proxy.stats()
        self.assertGreaterEqual(int(stats["http.outbound.rds.outbound.update_success"]), 1)
        self.assertGreaterEqual(int(stats["http.outbound.vhds.outbound.config_reload"]), 1)
        self.assertEqual([n for n in stats if n.startswith(("http.outbound_9080.rds.",
                                                            "http.outbound_9080.vhds."))], [])
        # The second HCM's own stats are its own.
        self.assertIn("http.outbound_9080.downstream_rq_total", stats)

    def test_the_server_is_initializing_until_the_first_vhds_response(self):
        self.ads.set(CLUSTER, "c1", [eds_cluster("reviews")])
        self.ads.set(ENDPOINTS, "e1", [assignment("reviews", self.a.port)])
        self.ads.set(LISTENER, "l1", [])
        self.ads.set(ROUTES, "r1", [vhds_route_config()])
        # VirtualHosts not set: the server holds the VHDS subscription unanswered.
        self.proxy = TurnoutProcess(TURNOUT, json.dumps(delta_bootstrap(self.ads.port))).start(
            wait_live=False)
        self.assertIsNotNone(self.ads.wait_for_delta(lambda r: r.type_url == VHOSTS),
                             self.proxy.log())
        self.assertIsNotNone(self.ads.wait_for_delta(lambda r: r.type_url == ROUTES
                                                     and r.response_nonce))
        status, body, _ = self.proxy.admin("GET", "/ready")
        self.assertEqual((status, body.strip().decode()), (503, "INITIALIZING"))
        self.ads.set(VHOSTS, "v1", [vhost("outbound/reviews", "reviews", "reviews")])
        self.assertIsNotNone(poll(lambda: self.proxy.admin("GET", "/ready")[0] == 200),
                             self.proxy.log())
        self.port = self.proxy._read_listeners()["outbound"][1]
        self.assertEqual(self.host("reviews")[1], "a")

    def test_vhds_initial_fetch_timeout_bounds_the_wait(self):
        self.ads.set(CLUSTER, "c1", [eds_cluster("reviews")])
        self.ads.set(ENDPOINTS, "e1", [assignment("reviews", self.a.port)])
        self.ads.set(LISTENER, "l1", [])
        rc = vhds_route_config(inline=[vhost("all", "*", "reviews")])
        rc["vhds"]["config_source"]["initial_fetch_timeout"] = "0.5s"
        self.ads.set(ROUTES, "r1", [rc])
        boot = delta_bootstrap(self.ads.port)
        # RDS itself waits for ever: only the VHDS bound can end the wait.
        boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0][
            "typed_config"]["rds"]["config_source"]["initial_fetch_timeout"] = "0s"
        self.proxy = TurnoutProcess(TURNOUT, json.dumps(boot)).start(wait_live=False)
        # VirtualHosts never set: the subscription stays unanswered.
        self.assertIsNotNone(self.ads.wait_for_delta(lambda r: r.type_url == VHOSTS),
                             self.proxy.log())
        self.assertIsNotNone(poll(lambda: self.proxy.admin("GET", "/ready")[0] == 200),
                             self.proxy.log())
        self.port = self.proxy._read_listeners()["outbound"][1]
        self.assertEqual(self.host("anything")[1], "a")  # the inline virtual host serves

    def test_xds_cache_restores_the_vhds_virtual_hosts(self):
        cache = tempfile.mkdtemp(prefix="turnout-xds-cache-")
        try:
            serve_vhds_state(self.ads, self.a.port, self.b.port)
            self.start_proxy(extra_args=["--xds-cache", cache])
            self.assertIsNotNone(poll(lambda: self.host("ratings")[1] == "b"), self.proxy.log())
            self.assertIsNotNone(self.ads.wait_for_delta(
                lambda r: r.type_url == VHOSTS and r.response_nonce
                and not r.HasField("error_detail")))
            self.assertIn("vhds.pb", os.listdir(cache))
            self.proxy.stop()
            ads_port = self.ads.port
            self.ads.stop()

            # No control plane: the cached VirtualHosts serve (fail closed
            # would otherwise mean a route table without its services).
            self.start_proxy(extra_args=["--xds-cache", cache])
            self.assertEqual(self.host("ratings")[1], "b", self.proxy.log())
            self.assertEqual(self.host("reviews")[1], "a")
            # It comes back: turnout announces the VirtualHosts it holds, and
            # one the server no longer has is removed.
            self.ads = AdsServer().start(ads_port)
            serve_vhds_state(self.ads, self.a.port, self.b.port)
            self.ads.set(VHOSTS, "v2", [vhost("outbound/reviews", "reviews", "reviews")])
            first = self.ads.wait_for_delta(lambda r: r.type_url == VHOSTS
                                            and not r.response_nonce, deadline_s=10)
            self.assertIsNotNone(first, self.proxy.log())
            self.assertEqual(sorted(first.initial_resource_versions),
                             ["outbound/ratings", "outbound/reviews"])
            self.assertIsNotNone(poll(lambda: self.host("ratings")[0] == 404), self.proxy.log())
        finally:
            shutil.rmtree(cache, ignore_errors=True)


class XdsTlsTest(unittest.TestCase):
    """xDS over mTLS: the xDS cluster's UpstreamTlsContext (server verified
    against a CA, SNI, a client certificate), ALPN h2."""

    @classmethod
    def setUpClass(cls):
        cls.certs = tempfile.mkdtemp(prefix="turnout-xds-tls-")
        tls_certs.CERTS = cls.certs
        tls_certs.make_certs()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.certs, ignore_errors=True)

    def setUp(self):
        self.a = FakeBackend("a").start()
        self.proxy = None
        self.ads = None

    def tearDown(self):
        if self.proxy is not None:
            self.proxy.stop()
        if self.ads is not None:
            self.ads.stop()
        self.a.stop()

    def pem(self, name):
        with open(os.path.join(self.certs, name), "rb") as f:
            return f.read()

    def tls_bootstrap(self, trusted_ca="ca.pem"):
        boot = bootstrap(self.ads.port)
        c = self.certs
        boot["static_resources"]["clusters"][0]["transport_socket"] = {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."
                         "UpstreamTlsContext",
                "sni": "svc.test",
                "common_tls_context": {
                    "tls_certificates": [{"certificate_chain": {"filename": c + "/client.pem"},
                                          "private_key": {"filename": c + "/client.key"}}],
                    "validation_context": {"trusted_ca": {"filename": c + "/" + trusted_ca}}}}}
        return boot

    def test_xds_over_mtls_routes_traffic(self):
        self.ads = AdsServer().start(tls=(self.pem("server.key"), self.pem("server.pem"),
                                          self.pem("ca.pem")))
        serve_initial_state(self.ads, self.a.port)
        self.proxy = TurnoutProcess(TURNOUT, json.dumps(self.tls_bootstrap())).start()
        port = self.proxy.port("outbound")
        self.assertIsNotNone(poll(lambda: get(port)[1] == "a"), self.proxy.log())
        self.assertGreaterEqual(self.proxy.counter("cluster.xds_cluster.ssl.handshake"), 1)
        self.assertEqual(self.proxy.wait_stat("control_plane.connected_state", lambda v: v == 1), 1)

    def test_an_untrusted_management_server_is_never_spoken_to(self):
        self.ads = AdsServer().start(tls=(self.pem("server.key"), self.pem("server.pem"), None))
        serve_initial_state(self.ads, self.a.port)
        # turnout trusts only other-ca: the server's certificate fails verification.
        boot = self.tls_bootstrap(trusted_ca="other-ca.pem")
        boot["dynamic_resources"]["cds_config"]["initial_fetch_timeout"] = "0.5s"
        boot["dynamic_resources"]["lds_config"]["initial_fetch_timeout"] = "0.5s"
        hcm_config = boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        hcm_config["typed_config"]["rds"]["config_source"]["initial_fetch_timeout"] = "0.5s"
        self.proxy = TurnoutProcess(TURNOUT, json.dumps(boot)).start()
        self.assertIsNotNone(poll(lambda: self.proxy.counter(
            "cluster.xds_cluster.ssl.fail_verify_error") >= 1), self.proxy.log())
        self.assertEqual(self.ads.requests, [])
        self.assertEqual(self.proxy.counter("control_plane.connected_state"), 0)


class XdsInitialisationTest(_OneBackendAndServer):
    """Envoy's initialisation: /ready says INITIALIZING (503) until the first
    CDS and LDS responses, the EDS clusters and the listeners' ADS routes are
    in, each wait bounded by its source's initial_fetch_timeout."""


    def ready(self):
        status, body, _ = self.proxy.admin("GET", "/ready")
        return status, body.strip().decode()

    def test_the_server_is_initializing_until_the_first_responses_are_in(self):
        # Nothing set yet: the server holds every type unanswered.
        self.proxy = TurnoutProcess(TURNOUT, json.dumps(bootstrap(self.ads.port))).start(
            wait_live=False)
        self.assertIsNotNone(self.ads.wait_for(lambda r: r.type_url == CLUSTER))
        self.assertEqual(self.ready(), (503, "INITIALIZING"))
        status, body, _ = self.proxy.admin("GET", "/server_info")
        self.assertEqual(json.loads(body)["state"], "INITIALIZING")
        self.ads.set(CLUSTER, "c1", [eds_cluster("reviews")])
        self.ads.set(LISTENER, "l1", [])
        # CDS and LDS are in, but the EDS cluster and the outbound routes are not.
        self.assertIsNotNone(self.ads.wait_for(lambda r: r.type_url == ENDPOINTS))
        self.assertEqual(self.proxy.wait_stat("cluster_manager.warming_clusters",
                                              lambda v: v == 1), 1)
        self.assertEqual(self.ready(), (503, "INITIALIZING"))
        self.ads.set(ENDPOINTS, "e1", [assignment("reviews", self.a.port)])
        time.sleep(0.3)
        self.assertEqual(self.ready(), (503, "INITIALIZING"))
        self.ads.set(ROUTES, "r1", [route_config("outbound", "reviews")])
        self.assertIsNotNone(poll(lambda: self.ready() == (200, "LIVE")), self.proxy.log())
        port = self.proxy._read_listeners()["outbound"][1]
        self.assertEqual(get(port)[1], "a")
        # Once LIVE, it stays LIVE whatever comes next.
        self.ads.set(LISTENER, "l2", [listener("late", 0, "late")])
        self.assertEqual(self.proxy.wait_stat("listener_manager.total_listeners_warming",
                                              lambda v: v == 1), 1)
        self.assertEqual(self.ready(), (200, "LIVE"))

    def test_initial_fetch_timeout_bounds_the_initialisation(self):
        boot = bootstrap(self.ads.port)
        boot["dynamic_resources"]["cds_config"]["initial_fetch_timeout"] = "0.5s"
        boot["dynamic_resources"]["lds_config"]["initial_fetch_timeout"] = "0.5s"
        hcm = boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        hcm["typed_config"]["rds"]["config_source"]["initial_fetch_timeout"] = "1s"
        t0 = time.monotonic()
        self.proxy = TurnoutProcess(TURNOUT, json.dumps(boot)).start(wait_live=False)
        self.assertEqual(self.ready(), (503, "INITIALIZING"))
        # The control plane never answers: LIVE after the longest bound (1 s).
        self.assertIsNotNone(poll(lambda: self.ready() == (200, "LIVE")), self.proxy.log())
        self.assertGreaterEqual(time.monotonic() - t0, 0.9)
        self.assertEqual(self.proxy.counter("cluster_manager.cds.init_fetch_timeout"), 1)
        self.assertEqual(self.proxy.counter("listener_manager.lds.init_fetch_timeout"), 1)
        # What arrives later still applies.
        serve_initial_state(self.ads, self.a.port)
        port = self.proxy._read_listeners()["outbound"][1]
        self.assertIsNotNone(poll(lambda: get(port)[1] == "a"), self.proxy.log())

    def test_a_zero_initial_fetch_timeout_waits_for_ever(self):
        boot = bootstrap(self.ads.port)
        boot["dynamic_resources"]["cds_config"]["initial_fetch_timeout"] = "0s"
        boot["dynamic_resources"]["lds_config"]["initial_fetch_timeout"] = "0.2s"
        hcm = boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        hcm["typed_config"]["rds"]["config_source"]["initial_fetch_timeout"] = "0.2s"
        self.proxy = TurnoutProcess(TURNOUT, json.dumps(boot)).start(wait_live=False)
        time.sleep(1.0)
        self.assertEqual(self.ready(), (503, "INITIALIZING"))
        self.ads.set(CLUSTER, "c1", [])
        self.assertIsNotNone(poll(lambda: self.ready() == (200, "LIVE")), self.proxy.log())


class XdsCacheTest(unittest.TestCase):
    def test_xds_cache_serves_the_last_config_after_a_restart_without_the_control_plane(self):
        a = FakeBackend("a").start()
        ads = AdsServer().start()
        cache = tempfile.mkdtemp(prefix="turnout-xds-cache-")
        proxy = None
        try:
            serve_initial_state(ads, a.port)
            config = json.dumps(bootstrap(ads.port))
            proxy = TurnoutProcess(TURNOUT, config, extra_args=["--xds-cache", cache]).start()
            port = proxy.port("outbound")
            self.assertIsNotNone(poll(lambda: get(port)[1] == "a"), proxy.log())
            self.assertIsNotNone(ads.wait_for(lambda r: r.type_url == ROUTES and
                                              r.version_info == "r1"))
            self.assertEqual(sorted(os.listdir(cache)), ["cds.pb", "eds.pb", "lds.pb", "rds.pb"])
            proxy.stop()
            ads_port = ads.port
            ads.stop()

            # The control plane is gone: the restarted turnout serves from the cache.
            proxy = TurnoutProcess(TURNOUT, config, extra_args=["--xds-cache", cache]).start()
            port = proxy.port("outbound")
            self.assertEqual(get(port)[1], "a", proxy.log())
            self.assertEqual(proxy.counter("control_plane.connected_state"), 0)
            # When it comes back, turnout asks from the cached versions.
            ads = AdsServer().start(ads_port)
            first = ads.wait_for(lambda r: r.HasField("node"), deadline_s=10)
            self.assertIsNotNone(first, proxy.log())
            self.assertEqual(first.version_info, "c1")
            rds = ads.wait_for(lambda r: r.type_url == ROUTES)
            self.assertEqual(rds.version_info, "r1")
            self.assertEqual(list(rds.resource_names), ["outbound"])
        finally:
            if proxy is not None:
                proxy.stop()
            ads.stop()
            a.stop()
            shutil.rmtree(cache, ignore_errors=True)

    def test_a_bad_cache_directory_is_a_startup_error(self):
        with tempfile.NamedTemporaryFile() as f:
            with self.assertRaises(Exception):
                TurnoutProcess(TURNOUT, json.dumps(bootstrap(1)),
                               extra_args=["--xds-cache", f.name]).start()


class XdsMessageLimitTest(unittest.TestCase):
    def test_a_response_above_max_receive_message_length_ends_the_stream(self):
        a = FakeBackend("a").start()
        ads = AdsServer().start()
        proxy = None
        try:
            serve_initial_state(ads, a.port)
            proxy = TurnoutProcess(TURNOUT, json.dumps(bootstrap(ads.port, max_message=4096))).start()
            port = proxy.port("outbound")
            self.assertIsNotNone(poll(lambda: get(port)[1] == "a"), proxy.log())
            closed = proxy.counter("control_plane.stream_closed")
            # 100 clusters: well above 4 KiB in one DiscoveryResponse.
            ads.set(CLUSTER, "c2", [eds_cluster("svc-%03d" % i) for i in range(100)])
            self.assertGreater(proxy.wait_stat("control_plane.stream_closed",
                                               lambda v: v > closed), closed)
            self.assertIn("above the limit of 4096", proxy.log())
            self.assertIsNone(ads.wait_for(lambda r: r.type_url == CLUSTER and
                                           r.version_info == "c2", deadline_s=0.5))
            self.assertEqual(get(port)[1], "a")  # the last good config serves
        finally:
            if proxy is not None:
                proxy.stop()
            ads.stop()
            a.stop()


class XdsValidateTest(unittest.TestCase):
    def validate(self, config):
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(config, f)
        try:
            p = subprocess.run([TURNOUT, "--mode", "validate", "-c", f.name],
                               capture_output=True, text=True, timeout=30)
        finally:
            os.unlink(f.name)
        return p.returncode, p.stdout + p.stderr

    def test_separate_sources_validate_and_their_errors_name_the_field(self):
        rc, out = self.validate(separate_sources_bootstrap(18000))
        self.assertEqual(rc, 0, out)
        boot = separate_sources_bootstrap(18000)
        boot["dynamic_resources"]["cds_config"]["api_config_source"]["api_type"] = "REST"
        rc, out = self.validate(boot)
        self.assertNotEqual(rc, 0)
        self.assertIn("dynamic_resources.cds_config.api_config_source.api_type", out)
        boot = separate_sources_bootstrap(18000)
        boot["dynamic_resources"]["lds_config"]["api_config_source"]["grpc_services"][0][
            "envoy_grpc"]["cluster_name"] = "nosuch"
        rc, out = self.validate(boot)
        self.assertNotEqual(rc, 0)
        self.assertIn("dynamic_resources.lds_config.api_config_source.grpc_services[0]."
                      "envoy_grpc.cluster_name", out)
        # A static listener's RDS over ADS, with no ads_config.
        boot = separate_sources_bootstrap(18000)
        boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"][
            "rds"]["config_source"] = {"ads": {}}
        rc, out = self.validate(boot)
        self.assertNotEqual(rc, 0)
        self.assertIn("rds.config_source.ads", out)
        self.assertIn("ads_config", out)
        # Two static listeners taking RDS from different sources.
        boot = separate_sources_bootstrap(18000)
        second = listener("second", 0, "second")
        second["filter_chains"][0]["filters"][0]["typed_config"]["rds"]["config_source"] = \
            api_source("other_xds")
        boot["static_resources"]["listeners"].append(second)
        other = json.loads(json.dumps(boot["static_resources"]["clusters"][0]))
        other["name"] = "other_xds"
        other["load_assignment"]["cluster_name"] = "other_xds"
        boot["static_resources"]["clusters"].append(other)
        rc, out = self.validate(boot)
        self.assertNotEqual(rc, 0)
        self.assertIn("differs from the RDS source", out)

    def test_good_ads_bootstrap_validates(self):
        rc, out = self.validate(bootstrap(18000))
        self.assertEqual(rc, 0, out)
        b = bootstrap(18000)
        b["dynamic_resources"]["ads_config"]["api_type"] = "DELTA_GRPC"
        rc, out = self.validate(b)
        self.assertEqual(rc, 0, out)

    def test_vhds_without_delta_ads_is_a_config_error_naming_the_path(self):
        # An inline route_config with vhds: refused whatever the ADS type.
        for api_type in ("GRPC", "DELTA_GRPC"):
            b = bootstrap(18000)
            b["dynamic_resources"]["ads_config"]["api_type"] = api_type
            typed = b["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0][
                "typed_config"]
            del typed["rds"]
            typed["route_config"] = vhds_route_config(inline=[vhost("all", "*", "xds_cluster")])
            rc, out = self.validate(b)
            self.assertNotEqual(rc, 0, out)
            self.assertIn("static_resources.listeners[0].filter_chains[0].filters[0]"
                          ".typed_config.route_config.vhds: only 'DELTA_GRPC' or 'ADS' (which "
                          "uses Delta xDS) is supported as a config source", out)

    def test_ads_config_errors_name_the_field(self):
        cases = []
        b = bootstrap(18000)
        b["dynamic_resources"]["ads_config"]["grpc_services"][0]["envoy_grpc"]["cluster_name"] = "nope"
        cases.append((b, "dynamic_resources.ads_config.grpc_services[0].envoy_grpc.cluster_name"))
        b = bootstrap(18000)
        b["dynamic_resources"]["ads_config"]["api_type"] = "REST"
        cases.append((b, "dynamic_resources.ads_config.api_type"))
        b = bootstrap(18000)
        del b["dynamic_resources"]["ads_config"]
        cases.append((b, "dynamic_resources.cds_config.ads"))
        b = bootstrap(18000)
        del b["dynamic_resources"]
        cases.append((b, "static_resources.listeners[0].filter_chains[0].filters[0]"
                         ".typed_config.rds.config_source.ads"))
        b = bootstrap(18000)
        b["dynamic_resources"]["ads_config"]["grpc_services"][0] = {
            "google_grpc": {"target_uri": "x", "stat_prefix": "x"}}
        cases.append((b, "dynamic_resources.ads_config.grpc_services[0].google_grpc"))
        b = bootstrap(18000)
        b["dynamic_resources"]["cds_config"] = {"api_config_source": {
            "api_type": "GRPC", "grpc_services": [{"envoy_grpc": {"cluster_name": "xds_cluster"}}]}}
        cases.append((b, "dynamic_resources.cds_config.api_config_source"))
        for config, path in cases:
            rc, out = self.validate(config)
            self.assertNotEqual(rc, 0, path)
            self.assertIn(path, out)


if __name__ == "__main__":
    def set_binary(path):
        global TURNOUT
        TURNOUT = path
    sys.exit(run_suite("xds_test", set_binary))
