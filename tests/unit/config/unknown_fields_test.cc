#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "config/bootstrap/message_loader.h"
#include "config/snapshot/discovery_response.h"
#include "envoy/config/cluster/v3/cluster.pb.h"
#include "envoy/config/listener/v3/listener.pb.h"
#include "envoy/config/route/v3/route.pb.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb.h"
#include "google/protobuf/unknown_field_set.h"

// Unknown fields in dynamic resources (Envoy's --reject-unknown-dynamic-fields):
// refused with their path, or taken without them and listed with their path.

namespace turnout::config {
namespace {

using envoy::config::cluster::v3::Cluster;
using envoy::config::route::v3::RouteConfiguration;

// Field 999 set on `m`, as a newer API's field arrives.
template <typename M>
void addUnknown(M& m, int number = 999) {
  m.GetReflection()->MutableUnknownFields(&m)->AddVarint(number, 1);
}

Cluster cluster(const std::string& name) {
  Cluster c;
  c.set_name(name);
  c.mutable_connect_timeout()->set_seconds(1);
  auto* ep = c.mutable_load_assignment();
  ep->set_cluster_name(name);
  auto* sa = ep->add_endpoints()
                 ->add_lb_endpoints()
                 ->mutable_endpoint()
                 ->mutable_address()
                 ->mutable_socket_address();
  sa->set_address("127.0.0.1");
  sa->set_port_value(8080);
  return c;
}

template <typename M>
AnyList anys(const std::vector<M>& messages) {
  AnyList list;
  for (const auto& m : messages) list.Add()->PackFrom(m);
  return list;
}

TEST_CASE("an xDS resource's unknown fields are refused or listed with their path",
          "[config][xds][unknown_fields]") {
  Cluster b = cluster("b");
  addUnknown(*b.mutable_load_assignment()->mutable_endpoints(0));
  const AnyList list = anys<Cluster>({cluster("a"), b});

  auto refused = parseClusterResources("1", list, UnknownFields::kReject);
  REQUIRE_FALSE(refused.ok());
  CHECK_THAT(std::string(refused.status().message()),
             Catch::StartsWith("resources[1].load_assignment.endpoints[0]: unknown field "
                               "number(s) 999 in envoy.config.endpoint.v3.LocalityLbEndpoints"));
  // The default is to refuse (turnout-cp's checks and the tests rely on it).
  CHECK_FALSE(parseClusterResources("1", list).ok());

  auto taken = parseClusterResources("1", list, UnknownFields::kReport);
  REQUIRE(taken.ok());
  CHECK(taken->snapshot->clusters.size() == 2);
  CHECK(taken->unknown_fields ==
        std::vector<std::string>{"resources[1].load_assignment.endpoints[0]: unknown field "
                                 "number(s) 999 in envoy.config.endpoint.v3.LocalityLbEndpoints"});
  // Ignored: taken, and not listed.
  auto ignored = parseClusterResources("1", list, UnknownFields::kIgnore);
  REQUIRE(ignored.ok());
  CHECK(ignored->snapshot->clusters.size() == 2);
  CHECK(ignored->unknown_fields.empty());
  // Nothing to report, nothing listed.
  auto clean = parseClusterResources("1", anys<Cluster>({cluster("a")}), UnknownFields::kReport);
  REQUIRE(clean.ok());
  CHECK(clean->unknown_fields.empty());
}

TEST_CASE("unknown fields inside an Any's payload are found", "[config][xds][unknown_fields]") {
  envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager hcm;
  hcm.set_stat_prefix("in");
  auto* rc = hcm.mutable_route_config();
  rc->set_name("local");
  auto* vh = rc->add_virtual_hosts();
  vh->set_name("all");
  vh->add_domains("*");
  auto* r = vh->add_routes();
  r->mutable_match()->set_prefix("/");
  r->mutable_direct_response()->set_status(200);
  addUnknown(*r, 4242);
  auto* filter = hcm.add_http_filters();
  filter->set_name("envoy.filters.http.router");
  filter->mutable_typed_config()->set_type_url(
      "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router");
  envoy::config::listener::v3::Listener l;
  l.set_name("l");
  auto* sa = l.mutable_address()->mutable_socket_address();
  sa->set_address("127.0.0.1");
  sa->set_port_value(10000);
  auto* f = l.add_filter_chains()->add_filters();
  f->set_name("envoy.filters.network.http_connection_manager");
  f->mutable_typed_config()->PackFrom(hcm);

  const std::string where =
      "resources[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0]."
      "routes[0]: unknown field number(s) 4242 in envoy.config.route.v3.Route";
  auto refused = parseListenerResources("1", anys<envoy::config::listener::v3::Listener>({l}),
                                        UnknownFields::kReject);
  REQUIRE_FALSE(refused.ok());
  CHECK_THAT(std::string(refused.status().message()), Catch::StartsWith(where));
  auto taken = parseListenerResources("1", anys<envoy::config::listener::v3::Listener>({l}),
                                      UnknownFields::kReport);
  INFO((taken.ok() ? "" : taken.status().ToString()));
  REQUIRE(taken.ok());
  CHECK(taken->unknown_fields == std::vector<std::string>{where});
}

TEST_CASE("a file resource's unknown field names are refused or listed with their path",
          "[config][unknown_fields]") {
  const std::string text = R"({"version_info": "v1", "resources": [
      {"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": "a",
       "connect_timeout": "1s"},
      {"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": "b",
       "connect_timeout": "1s", "fancy_new_field": {"x": 1}}]})";
  auto refused = parseClusterResponse(text);
  REQUIRE_FALSE(refused.ok());
  CHECK_THAT(std::string(refused.status().message()),
             Catch::StartsWith("resources[1].fancy_new_field: unknown field"));
  auto taken = parseClusterResponse(text, UnknownFields::kReport);
  INFO((taken.ok() ? "" : taken.status().ToString()));
  REQUIRE(taken.ok());
  CHECK(taken->snapshot->clusters.size() == 2);
  REQUIRE(taken->unknown_fields.size() == 1);
  CHECK_THAT(taken->unknown_fields[0],
             Catch::StartsWith("resources[1].fancy_new_field: unknown field ignored"));
  CHECK(taken->warnings.empty());
  auto ignored = parseClusterResponse(text, UnknownFields::kIgnore);
  REQUIRE(ignored.ok());
  CHECK(ignored->unknown_fields.empty());
  CHECK(ignored->warnings.empty());

  const std::string eds = R"({"resources": [
      {"@type": "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
       "cluster_name": "a", "endpoints": [{"lb_endpoints": [], "newer": true}]}]})";
  CHECK_FALSE(parseEndpointResponse(eds).ok());
  auto e = parseEndpointResponse(eds, UnknownFields::kReport);
  REQUIRE(e.ok());
  REQUIRE(e->unknown_fields.size() == 1);
  CHECK_THAT(e->unknown_fields[0], Catch::StartsWith("resources[0].endpoints[0].newer: "));
}

RouteConfiguration routes(int hosts, int routes_each) {
  RouteConfiguration rc;
  rc.set_name("services");
  for (int h = 0; h < hosts; ++h) {
    auto* vh = rc.add_virtual_hosts();
    vh->set_name("host" + std::to_string(h));
    vh->add_domains("host" + std::to_string(h));
    for (int r = 0; r < routes_each; ++r) {
      auto* route = vh->add_routes();
      route->mutable_match()->set_prefix("/r" + std::to_string(r));
      route->mutable_route()->set_cluster("c" + std::to_string(r));
    }
  }
  return rc;
}

TEST_CASE("an xDS route update that reuses virtual hosts still finds new unknown fields",
          "[config][xds][unknown_fields]") {
  RouteConfiguration rc = routes(2, 3);
  CompiledVirtualHosts first;
  auto a = parseRouteResourcesReusing("1", anys<RouteConfiguration>({rc}), VhdsSource::kNone, {},
                                      first, UnknownFields::kReport);
  REQUIRE(a.ok());
  CHECK(a->unknown_fields.empty());

  // host1 changes: a route is added at the end, and route 1 gains an
  // unknown field. Only those two are parsed again (the others are
  // shared); the path still names this version's index.
  auto* added = rc.mutable_virtual_hosts(1)->add_routes();
  added->mutable_match()->set_prefix("/new");
  added->mutable_route()->set_cluster("c9");
  addUnknown(*rc.mutable_virtual_hosts(1)->mutable_routes(1));
  const std::string where =
      "resources[0].virtual_hosts[1].routes[1]: unknown field number(s) 999 in "
      "envoy.config.route.v3.Route";
  CompiledVirtualHosts second;
  auto b = parseRouteResourcesReusing("2", anys<RouteConfiguration>({rc}), VhdsSource::kNone, first,
                                      second, UnknownFields::kReport);
  REQUIRE(b.ok());
  CHECK(b->unknown_fields == std::vector<std::string>{where});
  CHECK_FALSE(second.empty());

  CompiledVirtualHosts refused_held;
  auto c = parseRouteResourcesReusing("2", anys<RouteConfiguration>({rc}), VhdsSource::kNone, first,
                                      refused_held, UnknownFields::kReject);
  REQUIRE_FALSE(c.ok());
  CHECK_THAT(std::string(c.status().message()), Catch::StartsWith(where));

  // Unknown fields in the route configuration's own fields, too.
  RouteConfiguration head = routes(2, 3);
  addUnknown(head, 777);
  CompiledVirtualHosts third;
  auto d = parseRouteResourcesReusing("3", anys<RouteConfiguration>({head}), VhdsSource::kNone,
                                      first, third, UnknownFields::kReport);
  REQUIRE(d.ok());
  REQUIRE(d->unknown_fields.size() == 1);
  CHECK_THAT(d->unknown_fields[0], Catch::StartsWith("resources[0]: unknown field number(s) 777"));
}

TEST_CASE("a VHDS virtual host with unknown fields in a new route names it",
          "[config][xds][unknown_fields][vhds]") {
  RouteConfiguration rc = routes(1, 3);
  envoy::config::route::v3::VirtualHost v1 = rc.virtual_hosts(0);
  RouteKeys k1;
  auto c1 = checkVirtualHost(v1.SerializeAsString(), "resources[0]", nullptr, {}, k1);
  REQUIRE(c1.ok());
  envoy::config::route::v3::VirtualHost v2 = v1;
  auto* r = v2.mutable_routes()->Add();
  r->mutable_match()->set_prefix("/later");
  r->mutable_route()->set_cluster("c7");
  v2.mutable_routes()->SwapElements(0, 3);  // the new route first
  addUnknown(*v2.mutable_routes(0));
  RouteKeys k2;
  auto refused = checkVirtualHost(v2.SerializeAsString(), "resources[4]", c1->get(), k1, k2);
  REQUIRE_FALSE(refused.ok());
  CHECK_THAT(std::string(refused.status().message()),
             Catch::StartsWith("resources[4].routes[0]: unknown field number(s) 999"));
  std::vector<std::string> listed;
  RouteKeys k3;
  auto taken = checkVirtualHost(v2.SerializeAsString(), "resources[4]", c1->get(), k1, k3, &listed);
  REQUIRE(taken.ok());
  REQUIRE(listed.size() == 1);
  CHECK_THAT(listed[0], Catch::StartsWith("resources[4].routes[0]: unknown field number(s) 999"));
}

TEST_CASE("collectUnknownFields walks submessages and Any payloads", "[config][unknown_fields]") {
  Cluster c = cluster("x");
  std::vector<std::string> out;
  collectUnknownFields(c, "c", out);
  CHECK(out.empty());
  addUnknown(c, 501);
  addUnknown(c, 502);
  collectUnknownFields(c, "c", out);
  CHECK(out == std::vector<std::string>{
                   "c: unknown field number(s) 501, 502 in envoy.config.cluster.v3.Cluster"});
  // An Any whose type is not linked in is not unpacked (the extension
  // checks name it); no crash, nothing listed.
  google::protobuf::Any any;
  any.set_type_url("type.googleapis.com/no.such.Type");
  any.set_value("\x08\x01");
  out.clear();
  collectUnknownFields(any, "a", out);
  CHECK(out.empty());
}

}  // namespace
}  // namespace turnout::config
