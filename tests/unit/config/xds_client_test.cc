#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "config/snapshot/discovery_response.h"
#include "config/xds/xds_client.h"
#include "envoy/config/cluster/v3/cluster.pb.h"
#include "envoy/config/endpoint/v3/endpoint.pb.h"

namespace turnout::config::xds {
namespace {

envoy::config::core::v3::Node node() {
  envoy::config::core::v3::Node n;
  n.set_id("sidecar-1");
  n.set_cluster("reviews");
  return n;
}

google::protobuf::Any cluster(const std::string& name) {
  envoy::config::cluster::v3::Cluster c;
  c.set_name(name);
  google::protobuf::Any any;
  any.PackFrom(c);
  return any;
}

DiscoveryResponse response(const std::string& type, const std::string& version,
                           const std::string& nonce, std::vector<google::protobuf::Any> res = {}) {
  DiscoveryResponse r;
  r.set_type_url(type);
  r.set_version_info(version);
  r.set_nonce(nonce);
  for (auto& a : res) *r.add_resources() = a;
  return r;
}

std::vector<std::string> names(const DiscoveryRequest& r) {
  return {r.resource_names().begin(), r.resource_names().end()};
}

struct Recorder {
  std::vector<std::string> versions;
  int resources = 0;
  absl::Status answer = absl::OkStatus();
  ResourceHandler handler() {
    return [this](const std::string& v, const google::protobuf::RepeatedPtrField<google::protobuf::Any>& r) {
      versions.push_back(v);
      resources = r.size();
      return answer;
    };
  }
};

TEST_CASE("a new stream asks for every type in Envoy's order, the node on the first request only",
          "[config][xds]") {
  XdsClient client(node());
  Recorder cds, lds, eds, rds;
  client.subscribe(kRouteConfigurationTypeUrl, false, {"outbound"}, rds.handler());
  client.subscribe(kListenerTypeUrl, true, {}, lds.handler());
  client.subscribe(kClusterLoadAssignmentTypeUrl, false, {"svc"}, eds.handler());
  client.subscribe(kClusterTypeUrl, true, {}, cds.handler());
  CHECK(client.takeRequests().empty());  // no stream yet

  client.onStreamOpen();
  auto reqs = client.takeRequests();
  REQUIRE(reqs.size() == 4);
  CHECK(reqs[0].type_url() == kClusterTypeUrl);
  CHECK(reqs[1].type_url() == kClusterLoadAssignmentTypeUrl);
  CHECK(reqs[2].type_url() == kListenerTypeUrl);
  CHECK(reqs[3].type_url() == kRouteConfigurationTypeUrl);
  CHECK(reqs[0].node().id() == "sidecar-1");
  CHECK(reqs[0].node().cluster() == "reviews");
  for (size_t i = 1; i < reqs.size(); ++i) CHECK_FALSE(reqs[i].has_node());
  CHECK(reqs[0].resource_names().empty());  // wildcard
  CHECK(names(reqs[1]) == std::vector<std::string>{"svc"});
  CHECK(names(reqs[3]) == std::vector<std::string>{"outbound"});
  for (const auto& r : reqs) {
    CHECK(r.version_info().empty());
    CHECK(r.response_nonce().empty());
  }
}

TEST_CASE("a response is ACKed with its version and nonce, a rejected one NACKed with the last "
          "good version", "[config][xds]") {
  XdsClient client(node());
  Recorder cds;
  client.subscribe(kClusterTypeUrl, true, {}, cds.handler());
  client.onStreamOpen();
  client.takeRequests();

  CHECK(client.onResponse(response(kClusterTypeUrl, "v1", "n1", {cluster("a"), cluster("b")})) ==
        XdsClient::Outcome::kAccepted);
  CHECK(cds.versions == std::vector<std::string>{"v1"});
  CHECK(cds.resources == 2);
  auto ack = client.takeRequests();
  REQUIRE(ack.size() == 1);
  CHECK(ack[0].version_info() == "v1");
  CHECK(ack[0].response_nonce() == "n1");
  CHECK_FALSE(ack[0].has_error_detail());
  CHECK_FALSE(ack[0].has_node());

  cds.answer = absl::InvalidArgumentError("resources[0].connect_timeout: bad");
  CHECK(client.onResponse(response(kClusterTypeUrl, "v2", "n2", {cluster("a")})) ==
        XdsClient::Outcome::kRejected);
  auto nack = client.takeRequests();
  REQUIRE(nack.size() == 1);
  CHECK(nack[0].version_info() == "v1");
  CHECK(nack[0].response_nonce() == "n2");
  REQUIRE(nack[0].has_error_detail());
  CHECK(nack[0].error_detail().code() == 3);
  CHECK(nack[0].error_detail().message() == "resources[0].connect_timeout: bad");
  CHECK(client.state(kClusterTypeUrl)->last_error == "resources[0].connect_timeout: bad");

  // The next good one clears the error.
  cds.answer = absl::OkStatus();
  client.onResponse(response(kClusterTypeUrl, "v3", "n3", {cluster("a")}));
  CHECK(client.state(kClusterTypeUrl)->last_error.empty());
  CHECK(client.takeRequests()[0].version_info() == "v3");
}

TEST_CASE("a resource of another type is NACKed before the handler sees it", "[config][xds]") {
  XdsClient client(node());
  Recorder cds;
  client.subscribe(kClusterTypeUrl, true, {}, cds.handler());
  client.onStreamOpen();
  client.takeRequests();
  envoy::config::endpoint::v3::ClusterLoadAssignment cla;
  google::protobuf::Any any;
  any.PackFrom(cla);
  CHECK(client.onResponse(response(kClusterTypeUrl, "v1", "n1", {cluster("a"), any})) ==
        XdsClient::Outcome::kRejected);
  CHECK(cds.versions.empty());
  auto nack = client.takeRequests();
  REQUIRE(nack.size() == 1);
  CHECK(nack[0].error_detail().message().find("resources[1]: type") == 0);
  CHECK(nack[0].version_info().empty());
}

TEST_CASE("resources wrapped in envoy.service.discovery.v3.Resource are unwrapped",
          "[config][xds]") {
  XdsClient client(node());
  Recorder cds;
  client.subscribe(kClusterTypeUrl, true, {}, cds.handler());
  client.onStreamOpen();
  envoy::service::discovery::v3::Resource wrapper;
  wrapper.set_name("a");
  *wrapper.mutable_resource() = cluster("a");
  google::protobuf::Any any;
  any.PackFrom(wrapper);
  CHECK(client.onResponse(response(kClusterTypeUrl, "v1", "n1", {any})) ==
        XdsClient::Outcome::kAccepted);
  CHECK(cds.resources == 1);
}

TEST_CASE("a type nobody subscribed to is ignored, unanswered", "[config][xds]") {
  XdsClient client(node());
  client.onStreamOpen();
  CHECK(client.onResponse(response(kListenerTypeUrl, "v1", "n1")) == XdsClient::Outcome::kIgnored);
  CHECK(client.takeRequests().empty());
}

TEST_CASE("names changed by a handler are asked for after that response's ACK",
          "[config][xds]") {
  XdsClient client(node());
  Recorder eds;
  client.subscribe(kClusterLoadAssignmentTypeUrl, false, {}, eds.handler());
  client.subscribe(kClusterTypeUrl, true, {},
                   [&](const std::string&, const google::protobuf::RepeatedPtrField<google::protobuf::Any>&) {
                     client.setNames(kClusterLoadAssignmentTypeUrl, {"a", "b"});
                     return absl::OkStatus();
                   });
  client.onStreamOpen();
  auto first = client.takeRequests();
  REQUIRE(first.size() == 1);  // EDS names nothing yet: not asked for
  CHECK(first[0].type_url() == kClusterTypeUrl);

  client.onResponse(response(kClusterTypeUrl, "c1", "n1", {cluster("a"), cluster("b")}));
  auto reqs = client.takeRequests();
  REQUIRE(reqs.size() == 2);
  CHECK(reqs[0].type_url() == kClusterTypeUrl);  // the ACK first
  CHECK(reqs[0].response_nonce() == "n1");
  CHECK(reqs[1].type_url() == kClusterLoadAssignmentTypeUrl);
  CHECK(names(reqs[1]) == std::vector<std::string>{"a", "b"});

  // The same names again: nothing to send.
  client.setNames(kClusterLoadAssignmentTypeUrl, {"a", "b"});
  CHECK(client.takeRequests().empty());
  // All names gone: one unsubscribing request with no names.
  client.setNames(kClusterLoadAssignmentTypeUrl, {});
  auto unsub = client.takeRequests();
  REQUIRE(unsub.size() == 1);
  CHECK(unsub[0].resource_names().empty());
  CHECK(unsub[0].type_url() == kClusterLoadAssignmentTypeUrl);
}

TEST_CASE("versions survive a reconnect, nonces do not, the node is sent again",
          "[config][xds]") {
  XdsClient client(node());
  Recorder cds, eds;
  client.subscribe(kClusterTypeUrl, true, {}, cds.handler());
  client.subscribe(kClusterLoadAssignmentTypeUrl, false, {"a"}, eds.handler());
  client.onStreamOpen();
  client.takeRequests();
  client.onResponse(response(kClusterTypeUrl, "c7", "n1", {cluster("a")}));
  client.onResponse(response(kClusterLoadAssignmentTypeUrl, "e3", "n2"));
  client.takeRequests();

  client.onStreamClosed();
  CHECK(client.onResponse(response(kClusterTypeUrl, "c8", "n3")) == XdsClient::Outcome::kIgnored);
  client.setNames(kClusterLoadAssignmentTypeUrl, {"a", "b"});
  CHECK(client.takeRequests().empty());  // nothing is sent while closed

  client.onStreamOpen();
  auto reqs = client.takeRequests();
  REQUIRE(reqs.size() == 2);
  CHECK(reqs[0].has_node());
  CHECK(reqs[0].version_info() == "c7");
  CHECK(reqs[0].response_nonce().empty());
  CHECK(reqs[1].version_info() == "e3");
  CHECK(names(reqs[1]) == std::vector<std::string>{"a", "b"});
}

}  // namespace
}  // namespace turnout::config::xds

namespace turnout::config::xds {
namespace {

TEST_CASE("a cached response restores its version without a stream", "[config][xds]") {
  XdsClient client(node());
  Recorder cds;
  client.subscribe(kClusterTypeUrl, true, {}, cds.handler());
  CHECK(client.restore(response(kClusterTypeUrl, "c5", "", {cluster("a")})).ok());
  CHECK(cds.versions == std::vector<std::string>{"c5"});
  CHECK(client.takeRequests().empty());
  cds.answer = absl::InvalidArgumentError("bad");
  CHECK_FALSE(client.restore(response(kClusterTypeUrl, "c6", "")).ok());
  CHECK(client.restore(response(kListenerTypeUrl, "l1", "")).code() == absl::StatusCode::kNotFound);
  client.onStreamOpen();
  auto reqs = client.takeRequests();
  REQUIRE(reqs.size() == 1);
  CHECK(reqs[0].version_info() == "c5");  // the accepted cached one, not the refused one
}

}  // namespace
}  // namespace turnout::config::xds

namespace turnout::config::xds {
namespace {

envoy::service::discovery::v3::DeltaDiscoveryResponse delta(
    const std::string& type, const std::string& version, const std::string& nonce,
    std::vector<std::pair<std::string, google::protobuf::Any>> res,
    std::vector<std::string> removed = {}) {
  envoy::service::discovery::v3::DeltaDiscoveryResponse r;
  r.set_type_url(type);
  r.set_system_version_info(version);
  r.set_nonce(nonce);
  for (auto& [name, any] : res) {
    auto* x = r.add_resources();
    x->set_name(name);
    x->set_version(name + "@" + version);
    *x->mutable_resource() = any;
  }
  for (auto& n : removed) r.add_removed_resources(n);
  return r;
}

TEST_CASE("delta: wildcard types see the whole held set, named types the changes, ACK by nonce",
          "[config][xds]") {
  XdsClient client(node(), XdsProtocol::kDelta);
  Recorder cds, eds;
  client.subscribe(kClusterTypeUrl, true, {}, cds.handler());
  client.subscribe(kClusterLoadAssignmentTypeUrl, false, {"a"}, eds.handler());
  client.onStreamOpen();
  auto first = client.takeDeltaRequests();
  REQUIRE(first.size() == 2);
  CHECK(first[0].has_node());
  CHECK(first[0].resource_names_subscribe().empty());  // wildcard
  CHECK(first[1].resource_names_subscribe_size() == 1);
  CHECK(client.takeRequests().empty());

  CHECK(client.onDeltaResponse(delta(kClusterTypeUrl, "1", "n1", {{"a", cluster("a")}, {"b", cluster("b")}})) ==
        XdsClient::Outcome::kAccepted);
  CHECK(cds.resources == 2);
  CHECK(client.onDeltaResponse(delta(kClusterTypeUrl, "2", "n2", {{"c", cluster("c")}}, {"a"})) ==
        XdsClient::Outcome::kAccepted);
  CHECK(cds.resources == 2);  // b and c
  auto acks = client.takeDeltaRequests();
  REQUIRE(acks.size() == 2);
  CHECK(acks[1].response_nonce() == "n2");
  CHECK_FALSE(acks[1].has_error_detail());

  // A NACK leaves the held set as it was.
  cds.answer = absl::InvalidArgumentError("no");
  CHECK(client.onDeltaResponse(delta(kClusterTypeUrl, "3", "n3", {}, {"b", "c"})) ==
        XdsClient::Outcome::kRejected);
  auto nack = client.takeDeltaRequests();
  REQUIRE(nack.size() == 1);
  CHECK(nack[0].error_detail().message() == "no");
  CHECK(client.state(kClusterTypeUrl)->held.size() == 2);

  // Names: subscribe and unsubscribe by difference.
  client.setNames(kClusterLoadAssignmentTypeUrl, {"b"});
  auto sub = client.takeDeltaRequests();
  REQUIRE(sub.size() == 1);
  CHECK(sub[0].resource_names_subscribe(0) == "b");
  CHECK(sub[0].resource_names_unsubscribe(0) == "a");

  // A new stream announces what is held.
  client.onStreamClosed();
  client.onStreamOpen();
  auto again = client.takeDeltaRequests();
  REQUIRE(again.size() == 2);
  CHECK(again[0].initial_resource_versions().size() == 2);
  CHECK(again[0].initial_resource_versions().at("b") == "b@1");
  CHECK(again[0].initial_resource_versions().at("c") == "c@2");
}

}  // namespace
}  // namespace turnout::config::xds
