#include "config/control_plane/server/ads_server.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "config/snapshot/discovery_response.h"
#include "envoy/service/discovery/v3/discovery.pb.h"
#include "proxy/common/log.h"

namespace turnout::control_plane {
namespace {

using envoy::service::discovery::v3::DiscoveryRequest;
using envoy::service::discovery::v3::DiscoveryResponse;

constexpr const char* kLog = "ads";

const std::vector<std::string>& typesInOrder() {
  static const auto* types = new std::vector<std::string>{
      config::kClusterTypeUrl, config::kClusterLoadAssignmentTypeUrl, config::kListenerTypeUrl,
      config::kRouteConfigurationTypeUrl};
  return *types;
}

bool isWildcardType(const std::string& type_url) {
  return type_url == config::kClusterTypeUrl || type_url == config::kListenerTypeUrl;
}

std::string shortName(const std::string& type_url) {
  if (type_url == config::kClusterTypeUrl) return "clusters";
  if (type_url == config::kClusterLoadAssignmentTypeUrl) return "endpoints";
  if (type_url == config::kListenerTypeUrl) return "listeners";
  if (type_url == config::kRouteConfigurationTypeUrl) return "routes";
  return type_url;
}

// FNV-1a 64 over the names and content versions: the type's version for one client.
std::string setVersion(const std::vector<const std::pair<const std::string, VersionedResource>*>& rs) {
  uint64_t h = 1469598103934665603ULL;
  auto mix = [&](std::string_view s) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 1099511628211ULL;
    }
    h ^= 0xff;
    h *= 1099511628211ULL;
  };
  for (const auto* r : rs) {
    mix(r->first);
    mix(r->second.version);
  }
  return absl::StrFormat("%016x", h);
}

}  // namespace

// One ADS stream (a GrpcCallHandler).
class AdsStream final : public GrpcCallHandler {
 public:
  AdsStream(AdsServer& server, GrpcCall& call) : server_(server), call_(call) {
    status_.peer = call.peer();
    status_.connected_at = absl::Now();
    server_.streams_.insert(this);
  }
  ~AdsStream() override { server_.streams_.erase(this); }

  void onMessage(std::string_view message) override;
  void onClose() override { closed_ = true; }

  // The model changed: pushes the types whose version changed.
  void push();
  const ProxyStatus& status() const { return status_; }

 private:
  struct TypeState {
    std::set<std::string> names;
    bool wildcard = false;
    std::string sent_version;
    std::string sent_nonce;
    bool subscribed = false;
  };
  void send(const std::string& type_url, TypeState& t, bool force);

  AdsServer& server_;
  GrpcCall& call_;
  bool node_seen_ = false;
  bool closed_ = false;
  Dialect dialect_ = Dialect::kEnvoy;
  uint64_t nonce_ = 0;
  std::map<std::string, TypeState> types_;
  ProxyStatus status_;
};

void AdsStream::send(const std::string& type_url, TypeState& t, bool force) {
  const AdsServer::Prepared& p = server_.prepared(dialect_, type_url, t.wildcard, t.names);
  if (!force && p.version == t.sent_version) return;
  DiscoveryResponse nonce;
  nonce.set_nonce(std::to_string(++nonce_));
  t.sent_version = p.version;
  t.sent_nonce = nonce.nonce();
  ProxyTypeStatus& ps = status_.types[shortName(type_url)];
  ps.sent_version = p.version;
  ps.pending = true;
  call_.send(p.bytes + nonce.SerializeAsString());
}

void AdsStream::onMessage(std::string_view message) {
  DiscoveryRequest req;
  if (!req.ParseFromArray(message.data(), static_cast<int>(message.size()))) {
    call_.finish(GrpcStatus::kInvalidArgument, "cannot parse a DiscoveryRequest");
    return;
  }
  if (!node_seen_) {
    if (!req.has_node() || req.node().id().empty()) {
      call_.finish(GrpcStatus::kInvalidArgument, "the first request of a stream must carry node.id");
      return;
    }
    node_seen_ = true;
    dialect_ = dialectFor(req.node());
    status_.node_id = req.node().id();
    status_.node_cluster = req.node().cluster();
    status_.user_agent =
        absl::StrCat(req.node().user_agent_name(), "/", req.node().user_agent_version());
    status_.dialect = std::string(dialectName(dialect_));
    TURNOUT_LOG(info, kLog, "ADS stream from node '{}' ({}, {} dialect)", status_.node_id,
                status_.peer, status_.dialect);
  }
  if (req.type_url().empty()) {
    call_.finish(GrpcStatus::kInvalidArgument, "a DiscoveryRequest needs a type_url");
    return;
  }
  if (std::find(typesInOrder().begin(), typesInOrder().end(), req.type_url()) ==
      typesInOrder().end()) {
    TURNOUT_LOG(debug, kLog, "node '{}' asks for type '{}' that turnout-cp does not serve",
                status_.node_id, req.type_url());
    return;
  }
  TypeState& t = types_[req.type_url()];
  const bool first = !t.subscribed;
  std::set<std::string> names(req.resource_names().begin(), req.resource_names().end());
  names.erase("*");
  const bool wildcard = isWildcardType(req.type_url()) &&
                        (req.resource_names().empty() ||
                         std::find(req.resource_names().begin(), req.resource_names().end(), "*") !=
                             req.resource_names().end());
  const bool names_changed = first || names != t.names || wildcard != t.wildcard;
  t.subscribed = true;
  t.names = std::move(names);
  t.wildcard = wildcard;

  ProxyTypeStatus& ps = status_.types[shortName(req.type_url())];
  if (!req.response_nonce().empty()) {
    if (req.response_nonce() != t.sent_nonce) return;  // stale: a newer response is on its way
    ps.pending = false;
    if (req.has_error_detail()) {
      ps.nack_error = req.error_detail().message();
      TURNOUT_LOG(warn, kLog, "node '{}' rejected {} version '{}': {}", status_.node_id,
                  shortName(req.type_url()), t.sent_version, ps.nack_error);
    } else {
      ps.acked_version = req.version_info();
      ps.nack_error.clear();
    }
    if (!names_changed) return;
  }
  if (first) {
    // A client that already holds this version (a reconnect) gets nothing.
    t.sent_version = req.version_info();
    ps.acked_version = req.version_info();
  }
  send(req.type_url(), t, /*force=*/!first && names_changed);
}

void AdsStream::push() {
  if (closed_ || !node_seen_) return;
  for (const auto& type : typesInOrder()) {
    auto it = types_.find(type);
    if (it != types_.end() && it->second.subscribed) send(type, it->second, false);
  }
}

absl::StatusOr<std::unique_ptr<AdsServer>> AdsServer::create(asio::io_context& ioc,
                                                             Options options, const Model& model) {
  std::unique_ptr<AdsServer> s(new AdsServer());
  s->model_ = model;
  AdsServer* raw = s.get();
  GrpcServer::Options g;
  g.address = options.address;
  g.port = options.port;
  auto grpc = GrpcServer::create(
      ioc, g, [raw](const std::string& path, GrpcCall& call) -> std::unique_ptr<GrpcCallHandler> {
        if (path != kAdsMethod) return nullptr;
        return std::make_unique<AdsStream>(*raw, call);
      });
  if (!grpc.ok()) return grpc.status();
  s->grpc_ = *std::move(grpc);
  return s;
}

AdsServer::~AdsServer() { stop(); }

void AdsServer::start() { grpc_->start(); }

void AdsServer::stop() {
  if (grpc_) grpc_->stop();
}

const ResourcesByType& AdsServer::resources(Dialect dialect) {
  auto it = cache_.find(dialect);
  if (it == cache_.end()) it = cache_.emplace(dialect, generateByType(model_, dialect)).first;
  return it->second;
}

const AdsServer::Prepared& AdsServer::prepared(Dialect dialect, const std::string& type_url,
                                               bool wildcard, const std::set<std::string>& names) {
  std::string key = absl::StrCat(std::string(dialectName(dialect)), "\n", type_url, "\n");
  if (wildcard) {
    key += "*";
  } else {
    for (const auto& n : names) absl::StrAppend(&key, n, ",");
  }
  auto found = prepared_.find(key);
  if (found != prepared_.end()) return found->second;
  std::vector<const std::pair<const std::string, VersionedResource>*> rs;
  const ResourcesByType& all = resources(dialect);
  if (auto it = all.find(type_url); it != all.end()) {  // listeners: none yet
    for (const auto& entry : it->second) {
      if (wildcard || names.contains(entry.first)) rs.push_back(&entry);
    }
  }
  DiscoveryResponse r;
  r.set_type_url(type_url);
  r.set_version_info(setVersion(rs));
  r.mutable_control_plane()->set_identifier("turnout-cp");
  for (const auto* e : rs) *r.add_resources() = e->second.resource;
  Prepared p{r.version_info(), r.SerializeAsString()};
  return prepared_.emplace(std::move(key), std::move(p)).first->second;
}

void AdsServer::update(const Model& model) {
  model_ = model;
  cache_.clear();
  prepared_.clear();
  for (AdsStream* s : streams_) s->push();
}

std::vector<ProxyStatus> AdsServer::proxies() const {
  std::vector<ProxyStatus> out;
  for (const AdsStream* s : streams_) {
    if (!s->status().node_id.empty()) out.push_back(s->status());
  }
  std::sort(out.begin(), out.end(), [](const ProxyStatus& a, const ProxyStatus& b) {
    return std::tie(a.node_id, a.peer) < std::tie(b.node_id, b.peer);
  });
  return out;
}

}  // namespace turnout::control_plane
