// turnout-cp's ADS server driven by turnout's own xDS client (XdsStream over
// GrpcStream, the same code the proxy runs), on loopback in one io_context.

#include <catch2/catch.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <string>

#include "config/control_plane/server/ads_server.h"
#include "config/control_plane/state.h"
#include "config/snapshot/discovery_response.h"
#include "envoy/config/cluster/v3/cluster.pb.h"
#include "envoy/config/route/v3/route.pb.h"
#include "proxy/stats/store.h"
#include "proxy/xds/xds_stream.h"

namespace turnout::control_plane {
namespace {

using google::protobuf::Any;
using google::protobuf::RepeatedPtrField;

// Runs `ioc` until `done()` or the deadline; true if done.
bool runUntil(asio::io_context& ioc, const std::function<bool()>& done,
              std::chrono::milliseconds deadline = std::chrono::seconds(5)) {
  const auto end = std::chrono::steady_clock::now() + deadline;
  while (!done() && std::chrono::steady_clock::now() < end) {
    ioc.restart();
    ioc.run_for(std::chrono::milliseconds(10));
  }
  return done();
}

struct Received {
  std::map<std::string, std::vector<std::string>> names;  // type -> resource names
  std::map<std::string, std::string> versions;
  std::map<std::string, int> responses;
  std::map<std::string, int> last_count;  // resources handed to the last handler call
};

std::string nameOf(const Any& a) {
  if (a.type_url() == config::kClusterTypeUrl) {
    envoy::config::cluster::v3::Cluster c;
    a.UnpackTo(&c);
    return c.name();
  }
  if (a.type_url() == config::kRouteConfigurationTypeUrl) {
    envoy::config::route::v3::RouteConfiguration r;
    a.UnpackTo(&r);
    return r.name();
  }
  envoy::config::endpoint::v3::ClusterLoadAssignment e;
  a.UnpackTo(&e);
  return e.cluster_name();
}

struct Client {
  Client(asio::io_context& ioc, proxy::stats::Store& store, uint16_t port, std::string user_agent,
         Received& got, bool delta = false) {
    envoy::config::core::v3::Node node;
    node.set_id("sidecar-" + user_agent);
    node.set_user_agent_name(user_agent);
    proxy::XdsStream::Options o;
    o.cluster_name = "xds";
    o.method_path = delta ? kDeltaAdsMethod : kAdsMethod;
    if (delta) o.protocol = config::xds::XdsProtocol::kDelta;
    o.backoff_base = std::chrono::milliseconds(50);
    stream = std::make_unique<proxy::XdsStream>(
        ioc, store, o, node, [port] {
          return std::vector<asio::ip::tcp::endpoint>{
              {asio::ip::make_address("127.0.0.1"), port}};
        });
    auto handler = [&got](const std::string& type) {
      return [&got, type](const std::string& v, const RepeatedPtrField<Any>& rs) {
        got.versions[type] = v;
        got.responses[type]++;
        got.last_count[type] = rs.size();
        auto& names = got.names[type];
        names.clear();
        for (const auto& r : rs) names.push_back(nameOf(r));
        return absl::OkStatus();
      };
    };
    stream->client().subscribe(config::kClusterTypeUrl, true, {}, handler(config::kClusterTypeUrl));
    stream->client().subscribe(config::kClusterLoadAssignmentTypeUrl, false, {"reviews"},
                               handler(config::kClusterLoadAssignmentTypeUrl));
    stream->client().subscribe(config::kRouteConfigurationTypeUrl, false, {"outbound"},
                               handler(config::kRouteConfigurationTypeUrl));
    stream->start();
  }
  std::unique_ptr<proxy::XdsStream> stream;
};

// A State with service `reviews` and an ADS server on port 0 serving it.
struct Fixture {
  asio::io_context ioc;
  proxy::stats::Store store{1};
  State state;
  absl::StatusOr<std::unique_ptr<AdsServer>> server;
  Fixture() {
    REQUIRE(state.putService("reviews", R"({"port": 9080, "endpoints": ["10.0.0.5:9080"]})").ok());
    server = AdsServer::create(ioc, {"127.0.0.1", 0}, state.model());
    REQUIRE(server.ok());
    (*server)->start();
  }
};

TEST_CASE("turnout's xDS client gets turnout-cp's resources, then only what changes",
          "[control_plane][ads]") {
  Fixture f;
  auto& [ioc, store, state, server] = f;

  Received got;
  Client client(ioc, store, (*server)->port(), "turnout", got);
  REQUIRE(runUntil(ioc, [&] { return got.responses.size() == 3; }));
  CHECK(got.names[config::kClusterTypeUrl] == std::vector<std::string>{"reviews"});
  CHECK(got.names[config::kClusterLoadAssignmentTypeUrl] == std::vector<std::string>{"reviews"});
  CHECK(got.names[config::kRouteConfigurationTypeUrl] == std::vector<std::string>{"outbound"});

  // /v1/proxies: the node, its dialect, every type ACKed.
  REQUIRE(runUntil(ioc, [&] {
    auto p = (*server)->proxies();
    return p.size() == 1 && p[0].types["routes"].acked_version == got.versions[config::kRouteConfigurationTypeUrl];
  }));
  ProxyStatus p = (*server)->proxies()[0];
  CHECK(p.node_id == "sidecar-turnout");
  CHECK(p.dialect == "turnout");
  for (const char* t : {"clusters", "endpoints", "routes"}) {
    CHECK_FALSE(p.types[t].pending);
    CHECK(p.types[t].nack_error.empty());
  }

  // A sandbox forks reviews: CDS, EDS names unchanged, RDS all change; a
  // push goes for the changed types only.
  const auto before = got.responses;
  REQUIRE(state.putSandbox("feat-x", R"({"forks": {"reviews": ["10.0.0.7:9080"]}})", absl::Now()).ok());
  (*server)->update(state.model());
  REQUIRE(runUntil(ioc, [&] {
    return got.responses[config::kClusterTypeUrl] == before.at(config::kClusterTypeUrl) + 1 &&
           got.responses[config::kRouteConfigurationTypeUrl] ==
               before.at(config::kRouteConfigurationTypeUrl) + 1;
  }));
  CHECK(got.names[config::kClusterTypeUrl] ==
        std::vector<std::string>{"reviews", "reviews--feat-x"});
  // reviews' own assignment did not change: no EDS push.
  runUntil(ioc, [] { return false; }, std::chrono::milliseconds(200));
  CHECK(got.responses[config::kClusterLoadAssignmentTypeUrl] ==
        before.at(config::kClusterLoadAssignmentTypeUrl));

  // An unchanged model pushes nothing.
  const auto settled = got.responses;
  (*server)->update(state.model());
  runUntil(ioc, [] { return false; }, std::chrono::milliseconds(200));
  CHECK(got.responses == settled);
}

TEST_CASE("a reconnecting client that holds the current versions is sent nothing again",
          "[control_plane][ads]") {
  Fixture f;
  auto& [ioc, store, state, server] = f;
  Received got;
  Client client(ioc, store, (*server)->port(), "envoy", got);
  REQUIRE(runUntil(ioc, [&] { return got.responses.size() == 3; }));
  CHECK((*server)->proxies()[0].dialect == "envoy");

  // The stream breaks (server side): the client reconnects with its versions.
  const uint16_t port = (*server)->port();
  (*server)->stop();
  server->reset();
  auto again = AdsServer::create(ioc, {"127.0.0.1", port}, state.model());
  REQUIRE(again.ok());
  (*again)->start();
  const auto before = got.responses;
  REQUIRE(runUntil(ioc, [&] { return (*again)->proxies().size() == 1; }));
  runUntil(ioc, [] { return false; }, std::chrono::milliseconds(300));
  CHECK(got.responses == before);
  // A change still arrives.
  REQUIRE(state.putService("ratings", R"({"port": 9080, "endpoints": ["10.0.0.9:9080"]})").ok());
  (*again)->update(state.model());
  REQUIRE(runUntil(ioc, [&] {
    return got.names[config::kClusterTypeUrl] == std::vector<std::string>{"ratings", "reviews"};
  }));
}

TEST_CASE("delta: only what changed is sent, removals by name, and a reconnect resumes",
          "[control_plane][ads]") {
  Fixture f;
  auto& [ioc, store, state, server] = f;
  Received got;
  Client client(ioc, store, (*server)->port(), "turnout", got, /*delta=*/true);
  REQUIRE(runUntil(ioc, [&] { return got.responses.size() == 3; }));
  CHECK(got.names[config::kClusterTypeUrl] == std::vector<std::string>{"reviews"});
  CHECK(got.names[config::kClusterLoadAssignmentTypeUrl] == std::vector<std::string>{"reviews"});

  // A sandbox: the CDS handler sees the whole held set (2 clusters) although
  // one cluster was sent; no EDS for `reviews` (unchanged).
  const auto before = got.responses;
  REQUIRE(state.putSandbox("feat-x", R"({"forks": {"reviews": ["10.0.0.7:9080"]}})", absl::Now()).ok());
  (*server)->update(state.model());
  REQUIRE(runUntil(ioc, [&] {
    return got.names[config::kClusterTypeUrl] == std::vector<std::string>{"reviews", "reviews--feat-x"} &&
           got.responses[config::kRouteConfigurationTypeUrl] > before.at(config::kRouteConfigurationTypeUrl);
  }));
  CHECK(got.responses[config::kClusterLoadAssignmentTypeUrl] ==
        before.at(config::kClusterLoadAssignmentTypeUrl));
  REQUIRE(runUntil(ioc, [&] {
    auto p = (*server)->proxies();
    return p.size() == 1 && !p[0].types["clusters"].pending && !p[0].types["routes"].pending;
  }));

  // Deleting it removes the cluster by name.
  REQUIRE(state.deleteSandbox("feat-x").ok());
  (*server)->update(state.model());
  REQUIRE(runUntil(ioc, [&] {
    return got.names[config::kClusterTypeUrl] == std::vector<std::string>{"reviews"};
  }));

  // The server restarts: the client announces what it holds; the answers to
  // its first requests carry no resource (EDS: the handler sees 0 changed).
  const uint16_t port = (*server)->port();
  (*server)->stop();
  server->reset();
  auto again = AdsServer::create(ioc, {"127.0.0.1", port}, state.model());
  REQUIRE(again.ok());
  (*again)->start();
  const auto settled = got.responses;
  REQUIRE(runUntil(ioc, [&] { return (*again)->proxies().size() == 1; }));
  REQUIRE(runUntil(ioc, [&] {
    return got.responses[config::kClusterLoadAssignmentTypeUrl] >
           settled.at(config::kClusterLoadAssignmentTypeUrl);
  }));
  CHECK(got.last_count[config::kClusterLoadAssignmentTypeUrl] == 0);
  CHECK(got.names[config::kClusterTypeUrl] == std::vector<std::string>{"reviews"});
}

}  // namespace
}  // namespace turnout::control_plane
