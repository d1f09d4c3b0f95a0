#include <catch2/catch.hpp>

#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "config/snapshot/discovery_response.h"
#include "config/xds/xds_client.h"
#include "envoy/config/cluster/v3/cluster.pb.h"
#include "envoy/config/endpoint/v3/endpoint.pb.h"
#include "envoy/config/route/v3/route.pb.h"
#include "absl/strings/match.h"

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
  // Interleaved changes: each request carries exactly the difference from
  // what this stream was last told, and nothing when there is none.
  auto names = [](const auto& field) { return std::vector<std::string>(field.begin(), field.end()); };
  using V = std::vector<std::string>;
  const std::vector<std::tuple<std::set<std::string>, V, V>> steps = {
      {{"a", "c", "e"}, {"a", "c", "e"}, {"b"}},
      {{"b", "c", "d", "f"}, {"b", "d", "f"}, {"a", "e"}},
      {{"c"}, {}, {"b", "d", "f"}},
      {{"a", "c", "z"}, {"a", "z"}, {}},
  };
  for (const auto& [set, subscribed, unsubscribed] : steps) {
    client.setNames(kClusterLoadAssignmentTypeUrl, set);
    auto step = client.takeDeltaRequests();
    REQUIRE(step.size() == 1);
    CHECK(names(step[0].resource_names_subscribe()) == subscribed);
    CHECK(names(step[0].resource_names_unsubscribe()) == unsubscribed);
  }
  client.setNames(kClusterLoadAssignmentTypeUrl, {"a", "c", "z"});
  CHECK(client.takeDeltaRequests().empty());
  client.setNames(kClusterLoadAssignmentTypeUrl, {"b"});
  (void)client.takeDeltaRequests();

  // A new stream announces what is held.
  client.onStreamClosed();
  client.onStreamOpen();
  auto again = client.takeDeltaRequests();
  REQUIRE(again.size() == 2);
  CHECK(again[0].initial_resource_versions().size() == 2);
  CHECK(again[0].initial_resource_versions().at("b") == "b@1");
  CHECK(again[0].initial_resource_versions().at("c") == "c@2");
}

google::protobuf::Any vhost(const std::string& name) {
  envoy::config::route::v3::VirtualHost v;
  v.set_name(name);
  v.add_domains(name);
  google::protobuf::Any any;
  any.PackFrom(v);
  return any;
}

// The incremental handler's view of each update.
struct DeltaRecorder {
  std::vector<std::vector<std::string>> changed, removed;
  std::vector<std::string> versions;
  absl::Status answer = absl::OkStatus();
  DeltaHandler handler() {
    return [this](const DeltaUpdate& u) {
      versions.push_back(u.version_info);
      auto& c = changed.emplace_back();
      for (const auto* r : u.changed) c.push_back(r->name());
      removed.push_back(u.removed);
      return answer;
    };
  }
};

std::vector<std::string> heldNames(const XdsClient& client, const std::string& type) {
  std::vector<std::string> out;
  for (const auto& [name, h] : client.state(type)->held) out.push_back(name);
  return out;
}

TEST_CASE("delta namespaces: a name subscribes every resource under it, and the held set is "
          "not pruned to the names",
          "[config][xds][vhds]") {
  XdsClient client(node(), XdsProtocol::kDelta);
  DeltaRecorder vhds;
  client.subscribeDelta(kVirtualHostTypeUrl, {.wildcard = false, .namespaces = true}, {},
                        vhds.handler());
  client.onStreamOpen();
  CHECK(client.takeDeltaRequests().empty());  // nothing named yet: silent
  client.setNames(kVirtualHostTypeUrl, {"outbound"});
  auto sub = client.takeDeltaRequests();
  REQUIRE(sub.size() == 1);
  CHECK(std::vector<std::string>(sub[0].resource_names_subscribe().begin(),
                                 sub[0].resource_names_subscribe().end()) ==
        std::vector<std::string>{"outbound"});

  REQUIRE(client.onDeltaResponse(delta(kVirtualHostTypeUrl, "1", "n1",
                                       {{"outbound/reviews", vhost("outbound/reviews")},
                                        {"outbound/ratings", vhost("outbound/ratings")}})) ==
          XdsClient::Outcome::kAccepted);
  CHECK(vhds.changed.back() == std::vector<std::string>{"outbound/reviews", "outbound/ratings"});
  CHECK(heldNames(client, kVirtualHostTypeUrl) ==
        std::vector<std::string>{"outbound/ratings", "outbound/reviews"});
  (void)client.takeDeltaRequests();  // the ACK

  // A second namespace: subscribing it keeps the first one's resources.
  client.setNames(kVirtualHostTypeUrl, {"outbound", "inbound"});
  auto more = client.takeDeltaRequests();
  REQUIRE(more.size() == 1);
  CHECK(more[0].resource_names_subscribe(0) == "inbound");
  CHECK(more[0].resource_names_unsubscribe().empty());
  REQUIRE(client.onDeltaResponse(delta(kVirtualHostTypeUrl, "2", "n2",
                                       {{"inbound/a", vhost("inbound/a")}})) ==
          XdsClient::Outcome::kAccepted);
  CHECK(heldNames(client, kVirtualHostTypeUrl).size() == 3);

  // A reconnect announces every held resource, not the namespaces.
  client.onStreamClosed();
  client.onStreamOpen();
  auto again = client.takeDeltaRequests();
  REQUIRE(again.size() == 1);
  CHECK(again[0].resource_names_subscribe_size() == 2);
  CHECK(again[0].initial_resource_versions().size() == 3);
  CHECK(again[0].initial_resource_versions().at("outbound/reviews") == "outbound/reviews@1");

  // Unsubscribing a namespace drops its resources only ("outbound/..." but
  // not a deeper namespace such as "outbound/x/...").
  REQUIRE(client.onDeltaResponse(delta(kVirtualHostTypeUrl, "3", "n3",
                                       {{"outbound/x/y", vhost("outbound/x/y")}})) ==
          XdsClient::Outcome::kAccepted);
  (void)client.takeDeltaRequests();
  client.setNames(kVirtualHostTypeUrl, {"inbound"});
  auto unsub = client.takeDeltaRequests();
  REQUIRE(unsub.size() == 1);
  CHECK(unsub[0].resource_names_unsubscribe(0) == "outbound");
  CHECK(heldNames(client, kVirtualHostTypeUrl) ==
        std::vector<std::string>{"inbound/a", "outbound/x/y"});
  CHECK(namespaceOf("outbound/reviews") == "outbound");
  CHECK(namespaceOf("outbound/x/y") == "outbound/x");
  CHECK(namespaceOf("reviews").empty());
}

TEST_CASE("delta incremental handler: the changed resources and the held names removed, a NACK "
          "keeps the held set",
          "[config][xds][vhds]") {
  XdsClient client(node(), XdsProtocol::kDelta);
  DeltaRecorder vhds;
  client.subscribeDelta(kVirtualHostTypeUrl, {.wildcard = false, .namespaces = true},
                        {"outbound"}, vhds.handler());
  client.onStreamOpen();
  (void)client.takeDeltaRequests();
  REQUIRE(client.onDeltaResponse(delta(kVirtualHostTypeUrl, "1", "n1",
                                       {{"outbound/a", vhost("outbound/a")},
                                        {"outbound/b", vhost("outbound/b")}})) ==
          XdsClient::Outcome::kAccepted);
  // One changed, one removed, one removed that was never held (not passed on).
  REQUIRE(client.onDeltaResponse(delta(kVirtualHostTypeUrl, "2", "n2",
                                       {{"outbound/c", vhost("outbound/c")}},
                                       {"outbound/a", "outbound/nope"})) ==
          XdsClient::Outcome::kAccepted);
  CHECK(vhds.changed.back() == std::vector<std::string>{"outbound/c"});
  CHECK(vhds.removed.back() == std::vector<std::string>{"outbound/a"});
  CHECK(vhds.versions.back() == "2");
  CHECK(heldNames(client, kVirtualHostTypeUrl) ==
        std::vector<std::string>{"outbound/b", "outbound/c"});
  (void)client.takeDeltaRequests();

  // Refused by the handler: NACKed, nothing committed.
  vhds.answer = absl::InvalidArgumentError("resources[0].domains: bad");
  CHECK(client.onDeltaResponse(delta(kVirtualHostTypeUrl, "3", "n3",
                                     {{"outbound/d", vhost("outbound/d")}}, {"outbound/b"})) ==
        XdsClient::Outcome::kRejected);
  auto nack = client.takeDeltaRequests();
  REQUIRE(nack.size() == 1);
  CHECK(nack[0].response_nonce() == "n3");
  CHECK(nack[0].error_detail().message() == "resources[0].domains: bad");
  CHECK(heldNames(client, kVirtualHostTypeUrl) ==
        std::vector<std::string>{"outbound/b", "outbound/c"});
  CHECK(client.state(kVirtualHostTypeUrl)->held.at("outbound/c").first == "outbound/c@2");
  CHECK(client.state(kVirtualHostTypeUrl)->version_info == "2");

  // Checked before the handler: a name twice, a body of another type.
  vhds.answer = absl::OkStatus();
  const size_t calls = vhds.changed.size();
  CHECK(client.onDeltaResponse(delta(kVirtualHostTypeUrl, "4", "n4",
                                     {{"outbound/e", vhost("outbound/e")},
                                      {"outbound/e", vhost("outbound/e")}})) ==
        XdsClient::Outcome::kRejected);
  CHECK(client.onDeltaResponse(delta(kVirtualHostTypeUrl, "5", "n5",
                                     {{"outbound/f", cluster("f")}})) ==
        XdsClient::Outcome::kRejected);
  CHECK(vhds.changed.size() == calls);
  auto nacks = client.takeDeltaRequests();
  REQUIRE(nacks.size() == 2);
  CHECK(nacks[0].error_detail().message() == "resources[1].name: 'outbound/e' twice in one response");
  CHECK(absl::StrContains(nacks[1].error_detail().message(), "resources[0]: type '"));
  CHECK(heldNames(client, kVirtualHostTypeUrl).size() == 2);
}

TEST_CASE("delta: a wildcard whole-set handler that NACKs leaves the held set exactly as it was",
          "[config][xds]") {
  XdsClient client(node(), XdsProtocol::kDelta);
  Recorder cds;
  std::vector<std::string> seen;
  client.subscribe(kClusterTypeUrl, true, {},
                   [&](const std::string&, const google::protobuf::RepeatedPtrField<google::protobuf::Any>& r) {
                     seen.clear();
                     for (const auto& a : r) {
                       envoy::config::cluster::v3::Cluster c;
                       a.UnpackTo(&c);
                       seen.push_back(c.name());
                     }
                     return cds.answer;
                   });
  client.onStreamOpen();
  REQUIRE(client.onDeltaResponse(delta(kClusterTypeUrl, "1", "n1",
                                       {{"a", cluster("a")}, {"b", cluster("b")}})) ==
          XdsClient::Outcome::kAccepted);
  cds.answer = absl::InvalidArgumentError("no");
  // Replaces a, adds c, removes b: the handler sees the set as it would be...
  CHECK(client.onDeltaResponse(delta(kClusterTypeUrl, "2", "n2",
                                     {{"a", cluster("a2")}, {"c", cluster("c")}}, {"b"})) ==
        XdsClient::Outcome::kRejected);
  CHECK(seen == std::vector<std::string>{"a2", "c"});
  // ...and the NACK puts everything back, versions included.
  const auto& held = client.state(kClusterTypeUrl)->held;
  REQUIRE(held.size() == 2);
  CHECK(held.at("a").first == "a@1");
  envoy::config::cluster::v3::Cluster a;
  REQUIRE(held.at("a").second.UnpackTo(&a));
  CHECK(a.name() == "a");
  CHECK(held.at("b").first == "b@1");
  cds.answer = absl::OkStatus();
  CHECK(client.onDeltaResponse(delta(kClusterTypeUrl, "3", "n3", {{"c", cluster("c")}}, {"b"})) ==
        XdsClient::Outcome::kAccepted);
  CHECK(seen == std::vector<std::string>{"a", "c"});
}

TEST_CASE("delta: a cache restores an incremental type's held set from Resource wrappers",
          "[config][xds][vhds]") {
  XdsClient client(node(), XdsProtocol::kDelta);
  DeltaRecorder vhds;
  client.subscribeDelta(kVirtualHostTypeUrl, {.wildcard = false, .namespaces = true},
                        {"outbound"}, vhds.handler());
  DiscoveryResponse cached;
  cached.set_type_url(kVirtualHostTypeUrl);
  cached.set_version_info("v7");
  envoy::service::discovery::v3::Resource r;
  r.set_name("outbound/a");
  r.set_version("h1");
  *r.mutable_resource() = vhost("outbound/a");
  cached.add_resources()->PackFrom(r);
  REQUIRE(client.restore(cached).ok());
  CHECK(vhds.changed.back() == std::vector<std::string>{"outbound/a"});
  client.onStreamOpen();
  auto first = client.takeDeltaRequests();
  REQUIRE(first.size() == 1);
  CHECK(first[0].initial_resource_versions().at("outbound/a") == "h1");

  // Unwrapped (no name): refused, nothing held changes.
  DiscoveryResponse bare = cached;
  bare.clear_resources();
  *bare.add_resources() = vhost("outbound/b");
  CHECK_FALSE(client.restore(bare).ok());
  CHECK(heldNames(client, kVirtualHostTypeUrl) == std::vector<std::string>{"outbound/a"});

  // A SotW client cannot take an incremental type: NACKed.
  XdsClient sotw(node());
  sotw.subscribeDelta(kVirtualHostTypeUrl, {.namespaces = true}, {"outbound"}, vhds.handler());
  sotw.onStreamOpen();
  (void)sotw.takeRequests();
  CHECK(sotw.onResponse(response(kVirtualHostTypeUrl, "1", "n1", {vhost("outbound/a")})) ==
        XdsClient::Outcome::kRejected);
}

}  // namespace
}  // namespace turnout::config::xds
