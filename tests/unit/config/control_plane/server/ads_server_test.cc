// turnout-cp's ADS server driven by turnout's own xDS client (XdsStream over
// GrpcStream, the same code the proxy runs), on loopback in one io_context.

#include <catch2/catch.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "config/control_plane/server/ads_server.h"
#include "config/control_plane/state.h"
#include "config/snapshot/discovery_response.h"
#include "envoy/config/cluster/v3/cluster.pb.h"
#include "envoy/config/route/v3/route.pb.h"
#include "proxy/stats/store.h"
#include "envoy/config/listener/v3/listener.pb.h"
#include "envoy/service/discovery/v3/discovery.pb.h"
#include "proxy/xds/grpc_stream.h"
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
  std::set<std::string> reject;  // types whose next responses the client NACKs
  // A resource name the client refuses in any response that holds it.
  std::string reject_name;
  std::map<std::string, std::vector<std::string>> names;  // type -> resource names
  std::map<std::string, std::string> versions;
  std::map<std::string, int> responses;
  std::map<std::string, int> last_count;  // resources handed to the last handler call
  std::vector<std::string> order;          // the type of every response, in arrival order
  std::map<std::string, std::vector<Any>> last;  // type -> the resources of the last handler call
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
  if (a.type_url() == config::kListenerTypeUrl) {
    envoy::config::listener::v3::Listener l;
    a.UnpackTo(&l);
    return l.name();
  }
  if (a.type_url() == kVirtualHostTypeUrl) {
    envoy::config::route::v3::VirtualHost v;
    a.UnpackTo(&v);
    return v.name();
  }
  envoy::config::endpoint::v3::ClusterLoadAssignment e;
  a.UnpackTo(&e);
  return e.cluster_name();
}

struct Client {
  // `sidecar`: a captured sidecar next to that service (node metadata
  // turnout: {mode: sidecar, service}; "" names none), which takes listeners.
  Client(asio::io_context& ioc, proxy::stats::Store& store, uint16_t port, std::string user_agent,
         Received& got, bool delta = false, std::optional<std::string> sidecar = std::nullopt) {
    envoy::config::core::v3::Node node;
    node.set_id("sidecar-" + user_agent + (sidecar ? "-" + *sidecar : ""));
    node.set_user_agent_name(user_agent);
    if (sidecar) {
      auto& meta = *(*node.mutable_metadata()->mutable_fields())["turnout"]
                        .mutable_struct_value()
                        ->mutable_fields();
      meta["mode"].set_string_value("sidecar");
      if (!sidecar->empty()) meta["service"].set_string_value(*sidecar);
    }
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
    auto handler = [this, &got](const std::string& type) {
      return [this, &got, type](const std::string& v, const RepeatedPtrField<Any>& rs) {
        bool refuse = got.reject.contains(type);
        for (const auto& r : rs) refuse = refuse || (!got.reject_name.empty() && nameOf(r) == got.reject_name);
        if (refuse) {
          got.responses[type]++;
          return absl::InvalidArgumentError("rejected by the test");
        }
        got.versions[type] = v;
        got.responses[type]++;
        got.order.push_back(type);
        got.last_count[type] = rs.size();
        auto& names = got.names[type];
        names.clear();
        for (const auto& r : rs) names.push_back(nameOf(r));
        got.last[type].assign(rs.begin(), rs.end());
        if (type == config::kClusterTypeUrl && eds_follows_cds) {
          // As turnout and Envoy do: ask for the endpoints of every EDS cluster held.
          std::set<std::string> eds;
          for (const auto& r : rs) {
            envoy::config::cluster::v3::Cluster c;
            if (r.UnpackTo(&c) && c.type() == envoy::config::cluster::v3::Cluster::EDS) {
              eds.insert(c.name());
            }
          }
          stream->client().setNames(config::kClusterLoadAssignmentTypeUrl, std::move(eds));
        }
        return absl::OkStatus();
      };
    };
    stream->client().subscribe(config::kClusterTypeUrl, true, {}, handler(config::kClusterTypeUrl));
    stream->client().subscribe(config::kClusterLoadAssignmentTypeUrl, false, {"reviews"},
                               handler(config::kClusterLoadAssignmentTypeUrl));
    stream->client().subscribe(config::kRouteConfigurationTypeUrl, false, {"outbound"},
                               handler(config::kRouteConfigurationTypeUrl));
    // Delta: the route configuration says vhds; its virtual hosts come in the
    // namespace `outbound`.
    if (delta) {
      stream->client().subscribe(kVirtualHostTypeUrl, false, {"outbound"},
                                 handler(kVirtualHostTypeUrl));
    }
    if (sidecar) {
      stream->client().subscribe(config::kListenerTypeUrl, true, {},
                                 handler(config::kListenerTypeUrl));
    }
    stream->start();
  }
  std::unique_ptr<proxy::XdsStream> stream;
  // Off: the client keeps asking for `reviews` only, and never for new clusters' endpoints.
  bool eds_follows_cds = true;
};

// The arrival order, the names of each type's last response and each type's
// status on the server: what a failed check shows.
std::string dump(const Received& got, std::vector<ProxyStatus> p) {
  std::string out;
  for (const auto& t : got.order) out += t.substr(t.rfind('.') + 1) + " ";
  out += "|";
  for (const auto& [k, v] : got.names) {
    out += " " + k.substr(k.rfind('.') + 1) + "=[";
    for (const auto& n : v) out += n + ",";
    out += "]";
  }
  if (!p.empty()) {
    for (auto& [k, v] : p[0].types) out += " " + k + (v.pending ? ":pending" : ":done") + ":" + v.nack_error;
  }
  return out;
}

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
  // One EDS response: the answer to the client asking for the new cluster's
  // assignment (the names it asks for), no push of reviews' unchanged one.
  runUntil(ioc, [] { return false; }, std::chrono::milliseconds(200));
  CHECK(got.responses[config::kClusterLoadAssignmentTypeUrl] ==
        before.at(config::kClusterLoadAssignmentTypeUrl) + 1);
  CHECK(got.names[config::kClusterLoadAssignmentTypeUrl] ==
        std::vector<std::string>{"reviews", "reviews--feat-x"});

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

TEST_CASE("make before break: new clusters before the routes, routes before removed clusters",
          "[control_plane][ads]") {
  for (const bool delta : {false, true}) {
    CAPTURE(delta);
    Fixture f;
    auto& [ioc, store, state, server] = f;
    Received got;
    Client client(ioc, store, (*server)->port(), "turnout", got, delta);
    REQUIRE(runUntil(ioc, [&] { return got.responses.size() == (delta ? 4u : 3u); }));
    auto settled = [&] {
      auto p = (*server)->proxies();
      return p.size() == 1 && !p[0].types["clusters"].pending && !p[0].types["routes"].pending &&
             !p[0].types["virtual_hosts"].pending;
    };
    REQUIRE(runUntil(ioc, settled));
    // Where the first response of `type` after `from` sits in the arrival order.
    auto firstAfter = [&](size_t from, const std::string& type) {
      for (size_t i = from; i < got.order.size(); ++i) {
        if (got.order[i] == type) return i;
      }
      return got.order.size();
    };
    // Delta clients get a service's routes as its VirtualHost (VHDS).
    const std::string cds = config::kClusterTypeUrl,
                      rds = delta ? kVirtualHostTypeUrl : config::kRouteConfigurationTypeUrl;

    size_t mark = got.order.size();
    REQUIRE(state.putSandbox("feat-x", R"({"forks": {"reviews": ["10.0.0.7:9080"]}})", absl::Now()).ok());
    (*server)->update(state.model());
    REQUIRE(runUntil(ioc, [&] { return firstAfter(mark, cds) < got.order.size() &&
                                       firstAfter(mark, rds) < got.order.size(); }));
    CHECK(firstAfter(mark, cds) < firstAfter(mark, rds));  // the cluster exists before a route names it
    // ... and has its endpoints: the routes waited for the client to ask for them.
    const std::string eds = config::kClusterLoadAssignmentTypeUrl;
    CHECK(firstAfter(mark, eds) < firstAfter(mark, rds));
    REQUIRE(runUntil(ioc, settled));

    mark = got.order.size();
    REQUIRE(state.deleteSandbox("feat-x").ok());
    (*server)->update(state.model());
    REQUIRE(runUntil(ioc, [&] { return firstAfter(mark, cds) < got.order.size() &&
                                       firstAfter(mark, rds) < got.order.size(); }));
    CHECK(firstAfter(mark, rds) < firstAfter(mark, cds));  // no route names it when it goes
    CHECK(got.names[cds] == std::vector<std::string>{"reviews"});
    REQUIRE(runUntil(ioc, settled));

    // One update that adds a sandbox and drops another: the new cluster
    // before the routes, the old one after them. Between the two CDS
    // responses the client holds both.
    REQUIRE(state.putSandbox("feat-x", R"({"forks": {"reviews": ["10.0.0.7:9080"]}})", absl::Now()).ok());
    (*server)->update(state.model());
    REQUIRE(runUntil(ioc, [&] { return got.names[cds].size() == 2; }));
    REQUIRE(runUntil(ioc, settled));
    mark = got.order.size();
    REQUIRE(state.deleteSandbox("feat-x").ok());
    REQUIRE(state.putSandbox("feat-y", R"({"forks": {"reviews": ["10.0.0.8:9080"]}})", absl::Now()).ok());
    (*server)->update(state.model());
    REQUIRE(runUntil(ioc, [&] {
      return got.names[cds] == std::vector<std::string>{"reviews", "reviews--feat-y"};
    }));
    const size_t make = firstAfter(mark, cds);
    const size_t routes = firstAfter(mark, rds);
    const size_t brk = firstAfter(make + 1, cds);
    CAPTURE(got.order.size(), make, routes, brk);
    CHECK(make < routes);
    CHECK(routes < brk);
    CHECK(brk < got.order.size());
  }
}

// A client that writes DiscoveryRequests by hand (SotW), as gRPC's clients
// behave: names added one request at a time, each with the nonce it last saw.
struct RawClient : proxy::GrpcStream::Callbacks {
  RawClient(asio::io_context& ioc, uint16_t port) {
    proxy::GrpcStream::Options o;
    o.endpoint = {asio::ip::make_address("127.0.0.1"), port};
    o.authority = "xds";
    o.path = kAdsMethod;
    stream = proxy::GrpcStream::start(ioc.get_executor(), std::move(o), *this);
  }
  ~RawClient() override { stream->close(); }
  void onGrpcReady() override { ready = true; }
  void onGrpcMessage(std::string_view m) override {
    envoy::service::discovery::v3::DiscoveryResponse r;
    REQUIRE(r.ParseFromArray(m.data(), static_cast<int>(m.size())));
    responses.push_back(std::move(r));
  }
  void onGrpcClose(proxy::GrpcStatus, const std::string&) override { closed = true; }
  void request(const std::string& type, std::vector<std::string> names, const std::string& nonce,
               const std::string& version = "") {
    envoy::service::discovery::v3::DiscoveryRequest r;
    if (first) {
      r.mutable_node()->set_id("grpc-raw");
      r.mutable_node()->set_user_agent_name("gRPC Node Pure JS");
      first = false;
    }
    r.set_type_url(type);
    for (auto& n : names) r.add_resource_names(std::move(n));
    r.set_response_nonce(nonce);
    r.set_version_info(version);
    stream->send(r.SerializeAsString());
  }
  std::vector<std::string> names(size_t i) const {
    std::vector<std::string> out;
    for (const auto& a : responses.at(i).resources()) {
      if (a.type_url() == config::kListenerTypeUrl) {
        envoy::config::listener::v3::Listener l;
        a.UnpackTo(&l);
        out.push_back(l.name());
      } else {
        out.push_back(nameOf(a));
      }
    }
    return out;
  }
  std::shared_ptr<proxy::GrpcStream> stream;
  std::vector<envoy::service::discovery::v3::DiscoveryResponse> responses;
  bool ready = false;
  bool closed = false;
  bool first = true;
};

TEST_CASE("a stale request is ignored whole, the name change it carried is answered at the ACK",
          "[control_plane][ads]") {
  Fixture f;
  auto& [ioc, store, state, server] = f;
  REQUIRE(state.putService("ratings", R"({"port": 9080, "endpoints": ["10.0.0.9:9080"]})").ok());
  REQUIRE(state.putSandbox("feat-x", R"({"forks": {"reviews": ["10.0.0.7:9080"]}})",
                           absl::Now()).ok());
  (*server)->update(state.model());
  RawClient c(ioc, (*server)->port());
  REQUIRE(runUntil(ioc, [&] { return c.ready; }));
  const std::string cds = config::kClusterTypeUrl;
  c.request(cds, {"reviews"}, "");
  REQUIRE(runUntil(ioc, [&] { return c.responses.size() == 1; }));
  CHECK(c.names(0) == std::vector<std::string>{"reviews"});
  const std::string n1 = c.responses[0].nonce();
  c.request(cds, {"reviews", "ratings"}, n1);
  // Sent before the client saw the response to the last one: stale.
  c.request(cds, {"reviews", "ratings", "reviews--feat-x"}, n1);
  REQUIRE(runUntil(ioc, [&] { return c.responses.size() == 2; }));
  runUntil(ioc, [] { return false; }, std::chrono::milliseconds(200));
  REQUIRE(c.responses.size() == 2);
  CHECK(c.names(1) == std::vector<std::string>{"ratings", "reviews"});
  // The ACK of the newer response carries every name the client wants.
  c.request(cds, {"reviews", "ratings", "reviews--feat-x"}, c.responses[1].nonce(),
            c.responses[1].version_info());
  REQUIRE(runUntil(ioc, [&] { return c.responses.size() == 3; }));
  CHECK(c.names(2) == std::vector<std::string>{"ratings", "reviews", "reviews--feat-x"});
  CHECK((*server)->proxies().at(0).dialect == "grpc");

  // LDS by name: the API listener of each service domain asked for; none for
  // a name that is no domain.
  c.request(config::kListenerTypeUrl, {"reviews", "nosuch", "ratings.default:9080"}, "");
  REQUIRE(runUntil(ioc, [&] { return c.responses.size() == 4; }));
  CHECK(c.responses[3].type_url() == config::kListenerTypeUrl);
  CHECK(c.names(3) == std::vector<std::string>{"ratings.default:9080", "reviews"});
  CHECK(!c.closed);
}

TEST_CASE("delta: after a NACK the server sends again what the client did not take",
          "[control_plane][ads]") {
  Fixture f;
  auto& [ioc, store, state, server] = f;
  Received got;
  Client client(ioc, store, (*server)->port(), "turnout", got, /*delta=*/true);
  REQUIRE(runUntil(ioc, [&] { return got.responses.size() == 4; }));
  const std::string cds = config::kClusterTypeUrl;
  auto settled = [&] {
    auto p = (*server)->proxies();
    return p.size() == 1 && !p[0].types["clusters"].pending;
  };

  got.reject.insert(cds);
  const int before = got.responses[cds];
  REQUIRE(state.putService("ratings", R"({"port": 9080, "endpoints": ["10.0.0.9:9080"]})").ok());
  (*server)->update(state.model());
  REQUIRE(runUntil(ioc, [&] { return got.responses[cds] > before && settled(); }));
  CHECK((*server)->proxies()[0].types["clusters"].nack_error.find("rejected by the test") !=
        std::string::npos);
  CHECK(got.names[cds] == std::vector<std::string>{"reviews"});

  // The next push carries `ratings` again with `details`: the server put back
  // what the client holds.
  got.reject.clear();
  REQUIRE(state.putService("details", R"({"port": 9080, "endpoints": ["10.0.0.8:9080"]})").ok());
  (*server)->update(state.model());
  REQUIRE(runUntil(ioc, [&] {
    return got.names[cds] == std::vector<std::string>{"details", "ratings", "reviews"};
  }));
  REQUIRE(runUntil(ioc, settled));
  CHECK((*server)->proxies()[0].types["clusters"].nack_error.empty());
}

TEST_CASE("delta: only what changed is sent, removals by name, and a reconnect resumes",
          "[control_plane][ads]") {
  Fixture f;
  auto& [ioc, store, state, server] = f;
  Received got;
  Client client(ioc, store, (*server)->port(), "turnout", got, /*delta=*/true);
  REQUIRE(runUntil(ioc, [&] { return got.responses.size() == 4; }));
  CHECK(got.names[config::kClusterTypeUrl] == std::vector<std::string>{"reviews"});
  CHECK(got.names[config::kClusterLoadAssignmentTypeUrl] == std::vector<std::string>{"reviews"});

  // A sandbox: the CDS handler sees the whole held set (2 clusters) although
  // one cluster was sent; no EDS for `reviews` (unchanged); the routes change
  // in the VirtualHost `outbound/reviews`, not in the RouteConfiguration.
  const auto before = got.responses;
  REQUIRE(state.putSandbox("feat-x", R"({"forks": {"reviews": ["10.0.0.7:9080"]}})", absl::Now()).ok());
  (*server)->update(state.model());
  REQUIRE(runUntil(ioc, [&] {
    return got.names[config::kClusterTypeUrl] == std::vector<std::string>{"reviews", "reviews--feat-x"} &&
           got.responses[kVirtualHostTypeUrl] > before.at(kVirtualHostTypeUrl);
  }));
  // EDS: only the new cluster's assignment (asked for), not reviews' again.
  CHECK(got.responses[config::kClusterLoadAssignmentTypeUrl] ==
        before.at(config::kClusterLoadAssignmentTypeUrl) + 1);
  CHECK(got.names[config::kClusterLoadAssignmentTypeUrl] ==
        std::vector<std::string>{"reviews--feat-x"});
  CHECK(got.responses[config::kRouteConfigurationTypeUrl] ==
        before.at(config::kRouteConfigurationTypeUrl));
  REQUIRE(runUntil(ioc, [&] {
    auto p = (*server)->proxies();
    return p.size() == 1 && !p[0].types["clusters"].pending &&
           !p[0].types["virtual_hosts"].pending;
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

TEST_CASE("delta: routes by VHDS, and a sandbox costs one virtual host, not the route table",
          "[control_plane][ads][vhds]") {
  Fixture f;
  auto& [ioc, store, state, server] = f;
  for (int i = 0; i < 200; ++i) {
    REQUIRE(state.putService(absl::StrCat("svc-", i),
                             absl::StrCat(R"({"port": 9080, "endpoints": ["10.0.1.)", i % 250 + 1,
                                          R"(:9080"]})")).ok());
  }
  (*server)->update(state.model());
  Received got;
  Client client(ioc, store, (*server)->port(), "turnout", got, /*delta=*/true);
  REQUIRE(runUntil(ioc, [&] { return got.responses.size() == 4; }));
  // The route configuration names VHDS over ADS and holds no virtual host.
  REQUIRE(got.last[config::kRouteConfigurationTypeUrl].size() == 1);
  envoy::config::route::v3::RouteConfiguration rc;
  REQUIRE(got.last[config::kRouteConfigurationTypeUrl][0].UnpackTo(&rc));
  CHECK(rc.name() == "outbound");
  CHECK(rc.vhds().config_source().has_ads());
  CHECK(rc.virtual_hosts_size() == 0);
  // Every service's virtual host, in the namespace `outbound`.
  CHECK(got.names[kVirtualHostTypeUrl].size() == 201);
  envoy::config::route::v3::VirtualHost vh;
  REQUIRE(got.last[kVirtualHostTypeUrl][0].UnpackTo(&vh));
  CHECK(vh.name() == "outbound/reviews");
  CHECK(vh.domains(0) == "reviews");
  auto settled = [&] {
    auto p = (*server)->proxies();
    return p.size() == 1 && !p[0].types["clusters"].pending &&
           !p[0].types["virtual_hosts"].pending && !p[0].types["endpoints"].pending;
  };
  REQUIRE(runUntil(ioc, settled));

  // A sandbox: one cluster, its endpoints and one virtual host; a few
  // hundred bytes, where the route table of 201 services is tens of KB.
  const uint64_t before = (*server)->bytesSent();
  const auto responses = got.responses;
  REQUIRE(state.putSandbox("feat-x", R"({"forks": {"svc-7": ["10.0.0.7:9080"]}})", absl::Now()).ok());
  (*server)->update(state.model());
  REQUIRE(runUntil(ioc, [&] {
    return got.responses[kVirtualHostTypeUrl] > responses.at(kVirtualHostTypeUrl) && settled();
  }));
  CHECK(got.names[kVirtualHostTypeUrl] == std::vector<std::string>{"outbound/svc-7"});
  CHECK(got.responses[config::kRouteConfigurationTypeUrl] ==
        responses.at(config::kRouteConfigurationTypeUrl));
  const uint64_t sent = (*server)->bytesSent() - before;
  CAPTURE(sent, rc.ByteSizeLong());
  CHECK(sent < 2000);

  // A service deleted: its virtual host is removed by name.
  REQUIRE(state.deleteService("svc-3").ok());
  (*server)->update(state.model());
  const auto* vhds = client.stream->client().state(kVirtualHostTypeUrl);
  REQUIRE(vhds != nullptr);
  REQUIRE(runUntil(ioc, [&] { return !vhds->held.contains("outbound/svc-3") && settled(); }));
  CHECK(vhds->held.size() == 200);
  CHECK(vhds->held.contains("outbound/svc-7"));
}

// The destination ports of a client's virtualInbound chains (empty: none held).
std::set<uint32_t> inboundPorts(const Received& got) {
  std::set<uint32_t> out;
  auto it = got.last.find(config::kListenerTypeUrl);
  if (it == got.last.end()) return out;
  for (const auto& a : it->second) {
    envoy::config::listener::v3::Listener l;
    REQUIRE(a.UnpackTo(&l));
    if (l.name() != "virtualInbound") continue;
    for (const auto& c : l.filter_chains()) out.insert(c.filter_chain_match().destination_port().value());
  }
  return out;
}

TEST_CASE("a sidecar's virtualInbound has its own service's ports, and other services leave it be",
          "[control_plane][ads][sidecar]") {
  Fixture f;
  auto& [ioc, store, state, server] = f;
  REQUIRE(state.putService("ratings", R"({"port": 9081, "endpoints": ["10.0.0.6:9081"]})").ok());
  (*server)->update(state.model());
  Received reviews, nobody, ratings;
  Client a(ioc, store, (*server)->port(), "turnout", reviews, /*delta=*/true, "reviews");
  // A node that names no service of the model gets a chain per service port.
  Client b(ioc, store, (*server)->port(), "turnout", nobody, /*delta=*/true, "");
  Client c(ioc, store, (*server)->port(), "envoy", ratings, /*delta=*/false, "ratings");
  REQUIRE(runUntil(ioc, [&] {
    return !inboundPorts(reviews).empty() && !inboundPorts(nobody).empty() &&
           !inboundPorts(ratings).empty();
  }));
  CHECK(inboundPorts(reviews) == std::set<uint32_t>{9080});
  CHECK(inboundPorts(nobody) == std::set<uint32_t>{9080, 9081});
  CHECK(inboundPorts(ratings) == std::set<uint32_t>{9081});
  // The outbound listeners are every service's, for all of them.
  auto names = [](Received& got) {
    auto& n = got.names[config::kListenerTypeUrl];
    return std::set<std::string>(n.begin(), n.end());
  };
  const std::set<std::string> two = {"0.0.0.0_9080", "0.0.0.0_9081", "virtualInbound",
                                     "virtualOutbound"};
  CHECK(names(reviews) == two);
  CHECK(names(ratings) == two);

  auto held = [&](const Client& client) {
    const auto* lds = client.stream->client().state(config::kListenerTypeUrl);
    REQUIRE(lds != nullptr);
    auto it = lds->held.find("virtualInbound");
    REQUIRE(it != lds->held.end());
    return it->second.first;
  };
  auto settled = [&] {
    for (const auto& p : (*server)->proxies()) {
      if (p.types.contains("listeners") && p.types.at("listeners").pending) return false;
    }
    return true;
  };
  REQUIRE(runUntil(ioc, settled));
  const std::string reviews_inbound = held(a);
  const std::string nobody_inbound = held(b);

  // A new service: a new outbound listener for every sidecar; the fallback
  // inbound listener gains its port; reviews' own is not sent again.
  REQUIRE(state.putService("details", R"({"port": 9082, "endpoints": ["10.0.0.8:9082"]})").ok());
  (*server)->update(state.model());
  REQUIRE(runUntil(ioc, [&] {
    return names(reviews).contains("0.0.0.0_9082") && names(ratings).contains("0.0.0.0_9082") &&
           inboundPorts(nobody).contains(9082) && settled();
  }));
  CHECK(held(a) == reviews_inbound);
  CHECK(held(b) != nobody_inbound);
  CHECK(inboundPorts(reviews) == std::set<uint32_t>{9080});
  CHECK(inboundPorts(ratings) == std::set<uint32_t>{9081});

  // reviews moves to another port: its sidecar's inbound chain follows,
  // where the set of service ports changes as well; then to a port another
  // back to a port another service has (the set of ports is unchanged).
  REQUIRE(state.putService("reviews", R"({"port": 9081, "endpoints": ["10.0.0.5:9081"]})").ok());
  (*server)->update(state.model());
  REQUIRE(runUntil(ioc, [&] { return inboundPorts(reviews) == std::set<uint32_t>{9081}; }));
  CHECK(inboundPorts(nobody) == std::set<uint32_t>{9081, 9082});
  REQUIRE(state.putService("reviews", R"({"port": 9082, "endpoints": ["10.0.0.5:9082"]})").ok());
  (*server)->update(state.model());
  REQUIRE(runUntil(ioc, [&] { return inboundPorts(reviews) == std::set<uint32_t>{9082}; }));
  REQUIRE(runUntil(ioc, settled));
  CHECK(inboundPorts(nobody) == std::set<uint32_t>{9081, 9082});
  CHECK(inboundPorts(ratings) == std::set<uint32_t>{9081});

  // A service with an endpoint at the address the streams come from (a
  // second app in each of these pods, all on 127.0.0.1): its endpoint's port
  // joins every node's own ports; the node that names no service now has
  // own ports too.
  REQUIRE(state.putService("local", R"({"port": 80, "endpoints": ["127.0.0.1:7070"]})").ok());
  (*server)->update(state.model());
  REQUIRE(runUntil(ioc, [&] {
    return inboundPorts(reviews) == std::set<uint32_t>{7070, 9082} &&
           inboundPorts(ratings) == std::set<uint32_t>{7070, 9081} &&
           inboundPorts(nobody) == std::set<uint32_t>{7070};
  }));
}

TEST_CASE("SotW clients, and Delta ones with vhds off, get the whole route table inline",
          "[control_plane][ads][vhds]") {
  for (const bool delta : {false, true}) {
    CAPTURE(delta);
    asio::io_context ioc;
    proxy::stats::Store store{1};
    State state;
    REQUIRE(state.putService("reviews", R"({"port": 9080, "endpoints": ["10.0.0.5:9080"]})").ok());
    AdsServer::Options o{"127.0.0.1", 0};
    o.vhds = !delta;  // SotW: never VHDS, whatever the option
    auto server = AdsServer::create(ioc, o, state.model());
    REQUIRE(server.ok());
    (*server)->start();
    Received got;
    Client client(ioc, store, (*server)->port(), "turnout", got, delta);
    REQUIRE(runUntil(ioc, [&] { return got.responses.size() == 3; }));
    envoy::config::route::v3::RouteConfiguration rc;
    REQUIRE(got.last[config::kRouteConfigurationTypeUrl].size() == 1);
    REQUIRE(got.last[config::kRouteConfigurationTypeUrl][0].UnpackTo(&rc));
    CHECK(!rc.has_vhds());
    REQUIRE(rc.virtual_hosts_size() == 1);
    CHECK(rc.virtual_hosts(0).name() == "reviews");
    runUntil(ioc, [] { return false; }, std::chrono::milliseconds(100));
    CHECK(!got.responses.contains(kVirtualHostTypeUrl));
  }
}

TEST_CASE("delta: a refused new cluster stays visible when the removals after it are taken",
          "[control_plane][ads]") {
  Fixture f;
  auto& [ioc, store, state, server] = f;
  REQUIRE(state.putSandbox("feat-x", R"({"forks": {"reviews": ["10.0.0.7:9080"]}})", absl::Now()).ok());
  (*server)->update(state.model());
  Received got;
  Client client(ioc, store, (*server)->port(), "turnout", got, /*delta=*/true);
  const std::string cds = config::kClusterTypeUrl;
  REQUIRE(runUntil(ioc, [&] { return got.names[cds].size() == 2; }));
  auto settled = [&] {
    auto p = (*server)->proxies();
    return p.size() == 1 && !p[0].types["clusters"].pending && !p[0].types["virtual_hosts"].pending;
  };
  REQUIRE(runUntil(ioc, settled));

  // One update: feat-y's cluster (refused by the client) in the first CDS
  // response, feat-x's removal (taken) in the second.
  got.reject_name = "reviews--feat-y";
  const int before = got.responses[cds];
  REQUIRE(state.deleteSandbox("feat-x").ok());
  REQUIRE(state.putSandbox("feat-y", R"({"forks": {"reviews": ["10.0.0.8:9080"]}})", absl::Now()).ok());
  (*server)->update(state.model());
  // Refused at once: the routes and the removal do not wait for endpoints
  // the client will never ask for.
  const bool took = runUntil(ioc, [&] {
    return got.names[cds] == std::vector<std::string>{"reviews"} && settled();
  }, std::chrono::milliseconds(900));
  INFO(dump(got, (*server)->proxies()));
  REQUIRE(took);
  CHECK(got.responses[cds] >= before + 2);
  CHECK((*server)->proxies()[0].types["clusters"].nack_error.find("rejected by the test") !=
        std::string::npos);

  // Taken on the next push: the server knew the client lacks it.
  got.reject_name.clear();
  REQUIRE(state.putService("ratings", R"({"port": 9080, "endpoints": ["10.0.0.9:9080"]})").ok());
  (*server)->update(state.model());
  REQUIRE(runUntil(ioc, [&] {
    return got.names[cds] == std::vector<std::string>{"ratings", "reviews", "reviews--feat-y"};
  }));
  REQUIRE(runUntil(ioc, settled));
  CHECK((*server)->proxies()[0].types["clusters"].nack_error.empty());
}

TEST_CASE("delta: a refused first answer leaves the client holding nothing, and the next push sends all",
          "[control_plane][ads]") {
  Fixture f;
  auto& [ioc, store, state, server] = f;
  REQUIRE(state.putService("ratings", R"({"port": 9080, "endpoints": ["10.0.0.9:9080"]})").ok());
  (*server)->update(state.model());
  Received got;
  const std::string cds = config::kClusterTypeUrl;
  got.reject.insert(cds);
  Client client(ioc, store, (*server)->port(), "turnout", got, /*delta=*/true);
  auto answered = [&] {
    auto p = (*server)->proxies();
    return p.size() == 1 && !p[0].types["clusters"].pending && !p[0].types["clusters"].nack_error.empty();
  };
  REQUIRE(runUntil(ioc, answered));
  CHECK(got.names[cds].empty());

  // Accepted from now on: the next push carries every cluster, not only the
  // one that changed, since the server knows the client holds none.
  got.reject.clear();
  REQUIRE(state.putService("details", R"({"port": 9080, "endpoints": ["10.0.0.8:9080"]})").ok());
  (*server)->update(state.model());
  REQUIRE(runUntil(ioc, [&] {
    return got.names[cds] == std::vector<std::string>{"details", "ratings", "reviews"};
  }));
  CHECK(got.last_count[cds] == 3);
}

}  // namespace
}  // namespace turnout::control_plane
