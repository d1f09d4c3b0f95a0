#include <catch2/catch.hpp>

#include <string>

#include "config/bootstrap/bootstrap_loader.h"
#include "config/snapshot/discovery_response.h"
#include "config/snapshot/snapshot_builder.h"

namespace turnout::config {
namespace {

const char* kEndpoints = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";

std::string response(const std::string& resources) {
  return std::string(R"({"version_info": "v1", "resources": [)") + resources + "]}";
}

std::string assignment(const std::string& name, const std::string& endpoints) {
  return std::string(R"({"@type": ")") + kEndpoints + R"(", "cluster_name": ")" + name +
         R"(", "endpoints": [)" + endpoints + "]}";
}

TEST_CASE("an EDS assignment is translated like a static cluster's load_assignment",
          "[config][eds]") {
  const std::string endpoints =
      R"({"priority": 1, "locality": {"zone": "z1"}, "load_balancing_weight": 7, "lb_endpoints": [
           {"endpoint": {"address": {"socket_address": {"address": "10.0.0.1", "port_value": 80}},
                         "hostname": "h1"},
            "health_status": "DRAINING", "load_balancing_weight": 3}]})";
  auto eds = parseEndpointResponse(response(assignment("svc", endpoints)));
  REQUIRE(eds.ok());
  CHECK(eds->version_info == "v1");
  const DiscoveryEndpoints::Assignment* a = eds->find("svc");
  REQUIRE(a != nullptr);
  CHECK(eds->find("other") == nullptr);

  BootstrapLoadOptions options;
  options.config_yaml = std::string(R"({"static_resources": {"clusters": [{"name": "s",
      "connect_timeout": "1s", "load_assignment": {"cluster_name": "s", "endpoints": [)") +
                        endpoints + "]}}]}}";
  auto loaded = SnapshotBuilder::load(options);
  REQUIRE(loaded.ok());
  const auto& inline_localities = loaded->snapshot->clusters[0].localities;

  for (const auto* localities : {&a->localities, &inline_localities}) {
    REQUIRE(localities->size() == 1);
    const LocalityEndpointsConfig& l = (*localities)[0];
    CHECK(l.priority == 1);
    REQUIRE(l.locality);
    CHECK(l.locality->zone == "z1");
    CHECK(l.weight == 7u);
    REQUIRE(l.endpoints.size() == 1);
    CHECK(l.endpoints[0].address.address == "10.0.0.1");
    CHECK(l.endpoints[0].address.port == 80);
    CHECK(l.endpoints[0].hostname == "h1");
    CHECK(l.endpoints[0].weight == 3);
    CHECK(l.endpoints[0].health_status == EndpointConfig::HealthStatus::Draining);
  }
}

TEST_CASE("a bad EDS file is rejected with the path inside the file", "[config][eds]") {
  const std::string ok_endpoint =
      R"({"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "10.0.0.1", "port_value": 80}}}}]})";
  struct Case {
    std::string what;
    std::string text;
    std::string want;
  };
  auto [what, text, want] = GENERATE_COPY(values<Case>({
      {"a host name", response(assignment("svc",
           R"({"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "localhost", "port_value": 80}}}}]})")),
       "resources[0].endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address: "
       "malformed IP address: localhost"},
      {"a policy", response(std::string(R"({"@type": ")") + kEndpoints +
                             R"(", "cluster_name": "svc", "policy": {"overprovisioning_factor": 100}})"),
       "resources[0].policy: field 'envoy.config.endpoint.v3.ClusterLoadAssignment.policy' is not "
       "supported by turnout"},
      {"an endpoint health check config", response(assignment("svc",
           R"({"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "10.0.0.1", "port_value": 80}}, "health_check_config": {"port_value": 9}}}]})")),
       "resources[0].endpoints[0].lb_endpoints[0].endpoint.health_check_config: field"},
      {"named endpoints", response(assignment("svc", R"({"lb_endpoints": [{"endpoint_name": "x"}]})")),
       "resources[0].endpoints[0].lb_endpoints[0].endpoint_name: named endpoints are not supported"},
      {"an unknown field", response(assignment("svc", R"({"lb_endpoints": [], "bogus": 1})")),
       "resources[0].endpoints[0]"},
      {"a duplicate name", response(assignment("svc", ok_endpoint) + "," + assignment("svc", ok_endpoint)),
       "resources[1].cluster_name: duplicate ClusterLoadAssignment 'svc'"},
      {"another type", response(R"({"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": "x"})"),
       "resources[0].@type: expected 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment'"},
      {"no cluster_name", response(std::string(R"({"@type": ")") + kEndpoints + R"("})"),
       "resources[0].cluster_name"},
  }));
  INFO(what);
  auto eds = parseEndpointResponse(text);
  REQUIRE_FALSE(eds.ok());
  INFO(eds.status().message());
  CHECK(std::string(eds.status().message()).rfind(want, 0) == 0);
}

TEST_CASE("an EDS cluster takes its file, service name and initial_fetch_timeout",
          "[config][eds]") {
  BootstrapLoadOptions options;
  options.config_yaml = R"(
static_resources:
  clusters:
  - name: a
    type: EDS
    eds_cluster_config:
      service_name: svc-a
      eds_config:
        path_config_source: {path: /run/eds/a.json, watched_directory: {path: /run/eds}}
        initial_fetch_timeout: 2s
  - name: b
    type: EDS
    eds_cluster_config: {eds_config: {path: /run/eds/b.json}}
)";
  auto loaded = SnapshotBuilder::load(options);
  REQUIRE(loaded.ok());
  const ClusterConfig& a = loaded->snapshot->clusters[0];
  REQUIRE(a.eds.has_value());
  CHECK(a.eds_service_name == "svc-a");
  CHECK(a.eds->path == "/run/eds/a.json");
  CHECK(a.eds->watched_directory == "/run/eds");
  CHECK(a.eds->initial_fetch_timeout == std::chrono::seconds(2));
  const ClusterConfig& b = loaded->snapshot->clusters[1];
  REQUIRE(b.eds.has_value());
  CHECK(b.eds_service_name == "b");
  CHECK(b.eds->path == "/run/eds/b.json");
  CHECK(b.eds->watched_directory.empty());
  CHECK(b.eds->initial_fetch_timeout == std::chrono::seconds(15));
}

}  // namespace
}  // namespace turnout::config
