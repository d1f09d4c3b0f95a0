#include "config/control_plane/server/ads_server.h"

#include <algorithm>
#include <chrono>
#include <optional>

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

// Every type turnout-cp serves, in Envoy's order for a new stream: CDS, EDS,
// LDS, RDS, then VHDS (Delta only).
const std::vector<std::string>& typesInOrder() {
  static const auto* types = new std::vector<std::string>{
      config::kClusterTypeUrl, config::kClusterLoadAssignmentTypeUrl, config::kListenerTypeUrl,
      config::kRouteConfigurationTypeUrl, kVirtualHostTypeUrl};
  return *types;
}

// A push in three phases, make before break (Envoy's "eventual consistency
// considerations" in xds_protocol.rst): new and changed clusters and their
// endpoints first, with no removal (kMake); then listeners, routes and
// virtual hosts, which may stop naming a cluster and start naming a new
// one; then the clusters and endpoints again, now with their removals
// (kBreak). An update that both adds and removes clusters thus never leaves
// a route naming a cluster the client does not have yet, nor one it has
// already dropped. A phase with nothing to say for a stream sends nothing.
enum class Phase { kMake, kAll, kBreak };
const std::vector<std::pair<std::string, Phase>>& pushSteps() {
  static const auto* steps = new std::vector<std::pair<std::string, Phase>>{
      {config::kClusterTypeUrl, Phase::kMake},
      {config::kClusterLoadAssignmentTypeUrl, Phase::kMake},
      {config::kListenerTypeUrl, Phase::kAll},
      {config::kRouteConfigurationTypeUrl, Phase::kAll},
      {kVirtualHostTypeUrl, Phase::kAll},
      {config::kClusterTypeUrl, Phase::kBreak},
      {config::kClusterLoadAssignmentTypeUrl, Phase::kBreak},
  };
  return *steps;
}

// VHDS resources are named `<namespace>/<name>`, and a client subscribes to
// the namespace (the route configuration's name), as Envoy's VHDS does with
// namespace matching.
bool isNamespacedType(const std::string& type_url) { return type_url == kVirtualHostTypeUrl; }

// Whether `name` is one of `names`, or, for a namespaced type, in a namespace
// among them.
bool subscribedTo(const std::string& type_url, const std::set<std::string>& names,
                  const std::string& name) {
  if (names.contains(name)) return true;
  if (!isNamespacedType(type_url)) return false;
  const size_t slash = name.rfind('/');
  return slash != std::string::npos && names.contains(name.substr(0, slash));
}

bool isWildcardType(const std::string& type_url) {
  return type_url == config::kClusterTypeUrl || type_url == config::kListenerTypeUrl;
}

std::string shortName(const std::string& type_url) {
  if (type_url == config::kClusterTypeUrl) return "clusters";
  if (type_url == config::kClusterLoadAssignmentTypeUrl) return "endpoints";
  if (type_url == config::kListenerTypeUrl) return "listeners";
  if (type_url == config::kRouteConfigurationTypeUrl) return "routes";
  if (type_url == kVirtualHostTypeUrl) return "virtual_hosts";
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

// What both ADS streams (SotW and Delta) share: the call, the node and its
// dialect, the ProxyStatus, and the checks every request passes first.
class AdsStreamBase : public GrpcCallHandler {
 public:
  // `delta`: a Delta stream, whose client may take VHDS.
  AdsStreamBase(AdsServer& server, GrpcCall& call, const char* protocol, bool delta)
      : server_(server), call_(call), protocol_(protocol), delta_(delta), wait_(*server.ioc_) {
    status_.peer = call.peer();
    status_.connected_at = absl::Now();
    server_.streams_.insert(this);
  }
  ~AdsStreamBase() override {
    *alive_ = false;
    server_.streams_.erase(this);
  }
  void onClose() override { closed_ = true; }

  // The model changed: pushes what changed for this client.
  void push() {
    if (!live()) return;
    wait_.cancel();
    const bool was_waiting = resume_ != kNotWaiting;
    resume_ = kNotWaiting;
    startPush(was_waiting);
    runSteps(0);
  }
  const ProxyStatus& status() const { return status_; }

 protected:
  static constexpr size_t kNotWaiting = static_cast<size_t>(-1);
  // How long routes wait for the client to ask for new clusters' endpoints.
  static constexpr std::chrono::milliseconds kEndpointWait{1000};

  // A push's steps from `from` on (pushSteps()). Before the routes (LDS), a
  // client that takes every cluster (wildcard CDS) and lacks the endpoints of
  // one it was just sent has not asked for them yet (it asks once it applied
  // the clusters): the rest of the push waits for that request, as Envoy's
  // eventual-consistency rules ask (EDS before the routes that name the new
  // clusters; else they route to a cluster still warming, 503), at most
  // kEndpointWait. A new push starts over.
  // `wait`: false once the wait ran out.
  void runSteps(size_t from, bool wait = true) {
    const auto& steps = pushSteps();
    for (size_t i = from; i < steps.size(); ++i) {
      if (wait && steps[i].first == config::kListenerTypeUrl && lacksEndpoints()) {
        resume_ = i;
        wait_.expires_after(kEndpointWait);
        wait_.async_wait([this, alive = alive_](const boost::system::error_code& ec) {
          if (!ec && *alive && resume_ != kNotWaiting) resumePush(/*wait=*/false);
        });
        return;
      }
      step(steps[i].first, steps[i].second);
    }
  }
  // After each request: the push goes on once the client asked for (and was
  // sent) the endpoints it lacked.
  // `cds_refused`: this request NACKed clusters; the client will not ask for
  // their endpoints, so the push goes on at once.
  void maybeResume(bool cds_refused = false) {
    if (resume_ == kNotWaiting || !live()) return;
    if (cds_refused) {
      resumePush(/*wait=*/false);
    } else if (!lacksEndpoints()) {
      resumePush();
    }
  }
  void resumePush(bool wait = true) {
    const size_t from = resume_;
    resume_ = kNotWaiting;
    wait_.cancel();
    runSteps(from, wait);
  }
  // The push is about to run its steps; `restarted`: it replaces one that
  // was waiting, whose later steps were never sent.
  virtual void startPush(bool restarted) = 0;
  virtual void step(const std::string& type_url, Phase phase) = 0;
  // Whether the client takes every cluster and does not ask for the
  // endpoints of one that has them.
  virtual bool lacksEndpoints() const = 0;
  // `types`: a stream's per-type state (subscribed, wildcard, names).
  template <typename Types>
  bool lacksEndpointsIn(const Types& types) const {
    auto cds = types.find(config::kClusterTypeUrl);
    auto eds = types.find(config::kClusterLoadAssignmentTypeUrl);
    if (cds == types.end() || eds == types.end()) return false;
    if (!cds->second.subscribed || !cds->second.wildcard || !eds->second.subscribed) return false;
    const std::set<std::string>& eds_names = eds->second.names;
    const ResourcesByType& all = server_.resources(profile_);
    auto it = all.find(config::kClusterLoadAssignmentTypeUrl);
    if (it == all.end()) return false;
    // Only an assignment this generation added can be one the client has not
    // asked for yet (it asked for the others before): the changed names, or
    // every name when there is no generation to diff against.
    const std::set<std::string>* changed =
        server_.changedNames(profile_, config::kClusterLoadAssignmentTypeUrl);
    if (changed != nullptr) {
      for (const auto& name : *changed) {
        if (it->second.contains(name) && !eds_names.contains(name)) return true;
      }
      return false;
    }
    for (const auto& [name, vr] : it->second) {
      if (!eds_names.contains(name)) return true;
    }
    return false;
  }

  // The node on a stream's first request, a type_url, a type turnout-cp
  // serves: true when the request goes on; else the call has ended (a bad
  // request) or the request is ignored (an unknown type).
  bool admit(const envoy::config::core::v3::Node* node, const std::string& type_url) {
    if (!node_seen_) {
      if (node == nullptr || node->id().empty()) {
        call_.finish(GrpcStatus::kInvalidArgument,
                     "the first request of a stream must carry node.id");
        return false;
      }
      node_seen_ = true;
      std::string unknown_families;
      profile_ = profileFor(*node, &unknown_families);
      if (!unknown_families.empty()) {
        // The bootstrap and the webhook refuse such a value; a node made
        // some other way still gets a working IPv4 sidecar.
        TURNOUT_LOG(warn, kLog,
                    "node '{}' asks for ip_families '{}', which is none of {}: it gets IPv4 "
                    "listeners",
                    node->id(), unknown_families, kIpFamiliesChoices);
      }
      // Envoy takes VHDS over ADS only when the ADS stream is Delta.
      if (delta_ && server_.options_.vhds) {
        profile_ = Profile(profile_.dialect, profile_.sidecar, true, profile_.ip_families);
      }
      if (profile_.sidecar) {
        own_service_ = sidecarServiceFor(*node);
        pod_ip_ = peerIp(status_.peer);
      }
      status_.node_id = node->id();
      status_.node_cluster = node->cluster();
      status_.user_agent = absl::StrCat(node->user_agent_name(), "/", node->user_agent_version());
      status_.dialect = profileName(profile_);
      TURNOUT_LOG(info, kLog, "{} stream from node '{}' ({}, {} dialect)", protocol_,
                  status_.node_id, status_.peer, status_.dialect);
    }
    if (type_url.empty()) {
      call_.finish(GrpcStatus::kInvalidArgument, "a request needs a type_url");
      return false;
    }
    if (std::find(typesInOrder().begin(), typesInOrder().end(), type_url) ==
            typesInOrder().end() ||
        (type_url == kVirtualHostTypeUrl && !profile_.vhds)) {
      TURNOUT_LOG(debug, kLog, "node '{}' asks for type '{}' that turnout-cp does not serve",
                  status_.node_id, type_url);
      return false;
    }
    return true;
  }
  bool live() const { return !closed_ && node_seen_; }
  // The node's own virtualInbound for a listener response (null: the
  // profile's, or not listeners).
  const AdsServer::Entry* ownInbound(const std::string& type_url) {
    if (type_url != config::kListenerTypeUrl || !profile_.sidecar) return nullptr;
    return server_.ownInbound(profile_, own_service_, pod_ip_);
  }

  AdsServer& server_;
  GrpcCall& call_;
  const char* protocol_;
  const bool delta_;
  size_t resume_ = kNotWaiting;  // the step a waiting push goes on at
  SteadyTimer wait_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  bool node_seen_ = false;
  bool closed_ = false;
  Profile profile_;
  SidecarService own_service_;  // a sidecar's (node metadata), else empty
  std::string pod_ip_;          // a sidecar's: the address its stream comes from
  uint64_t nonce_ = 0;
  ProxyStatus status_;
};

// One ADS stream, State of the World.
class AdsStream final : public AdsStreamBase {
 public:
  AdsStream(AdsServer& server, GrpcCall& call) : AdsStreamBase(server, call, "ADS", false) {}
  void onMessage(std::string_view message) override;

 private:
  struct TypeState {
    std::set<std::string> names;
    bool wildcard = false;
    std::string sent_version;
    std::string sent_nonce;
    bool subscribed = false;
  };
  // `keep_removed`: the make phase of a push (CDS): the resources the last
  // generation had and this one dropped are still listed.
  void send(const std::string& type_url, TypeState& t, bool force, bool keep_removed = false);
  void startPush(bool) override {}
  void step(const std::string& type_url, Phase phase) override;
  bool lacksEndpoints() const override;

  std::map<std::string, TypeState> types_;
};

bool AdsStream::lacksEndpoints() const { return lacksEndpointsIn(types_); }

void AdsStream::send(const std::string& type_url, TypeState& t, bool force, bool keep_removed) {
  const AdsServer::Prepared& p = server_.prepared(profile_, type_url, t.wildcard, t.names,
                                                  keep_removed, ownInbound(type_url));
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
  if (!admit(req.has_node() ? &req.node() : nullptr, req.type_url())) return;
  TypeState& t = types_[req.type_url()];
  const bool first = !t.subscribed;
  // A request that answers an older response than the last one sent for its
  // type is stale: ignored whole, names included, as go-control-plane does.
  // The client ACKs or NACKs the newer response with its whole current name
  // list, and a name change is answered then. (Recording a stale request's
  // names without answering would leave them unanswered: the ACK that follows
  // carries the same names, so it changes nothing. gRPC's clients subscribe
  // name by name in quick succession, each request with the nonce it last
  // processed.) A stream's first request may carry a nonce from an earlier
  // stream; it is never stale.
  if (!first && !req.response_nonce().empty() && req.response_nonce() != t.sent_nonce) return;
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
  if (!req.response_nonce().empty() && req.response_nonce() == t.sent_nonce) {
    ps.pending = false;
    if (req.has_error_detail()) {
      ps.nack_error = req.error_detail().message();
      TURNOUT_LOG(warn, kLog, "node '{}' rejected {} version '{}': {}", status_.node_id,
                  shortName(req.type_url()), t.sent_version, ps.nack_error);
    } else {
      ps.acked_version = req.version_info();
      ps.nack_error.clear();
    }
    if (!names_changed) {
      maybeResume(req.has_error_detail() && req.type_url() == config::kClusterTypeUrl);
      return;
    }
  }
  if (first) {
    // A client that already holds this version (a reconnect) gets nothing.
    t.sent_version = req.version_info();
    ps.acked_version = req.version_info();
  }
  send(req.type_url(), t, /*force=*/!first && names_changed);
  maybeResume(req.has_error_detail() && req.type_url() == config::kClusterTypeUrl);
}

void AdsStream::step(const std::string& type, Phase phase) {
  auto it = types_.find(type);
  if (it == types_.end() || !it->second.subscribed) return;
  // State of the World removes a wildcard resource by leaving it out; a
  // named one (EDS) is never removed by a response, only unsubscribed.
  send(type, it->second, false, phase == Phase::kMake && isWildcardType(type));
}

// One Delta ADS stream.
class DeltaAdsStream final : public AdsStreamBase {
 public:
  DeltaAdsStream(AdsServer& server, GrpcCall& call)
      : AdsStreamBase(server, call, "Delta ADS", true) {}
  void onMessage(std::string_view message) override;

 private:
  struct TypeState {
    bool subscribed = false;
    bool wildcard = false;
    std::set<std::string> names;
    std::map<std::string, std::string> has;  // what the client holds: name -> version
    // How to put `has` back as it was before the unanswered pushes, newest
    // last: name and its earlier version (none: it was not held). An undo log,
    // not a copy of `has`: copying every held name per push and stream was
    // most of a Delta update's CPU (1,100 clusters x 1,000 streams).
    std::vector<std::pair<std::string, std::optional<std::string>>> undo;
    // `has` was empty before the unanswered pushes (a new stream's first
    // answer, every resource at once): a NACK empties it, and no undo entry
    // is logged. Logging one per name made every client's initial sync free
    // millions of small strings, which the allocator paid for at the first
    // push after (45 ms of consolidation at 1,000 clients x 3,200 resources).
    bool undo_to_empty = false;
    std::string sent_nonce;
    bool pending = false;
    // A NACK put `has` back: the next push diffs every name, since what the
    // client refused changed in an earlier generation than the next one.
    bool diff_all = false;
    // A response of this push was NACKed: an ACK of a later one of the same
    // push (its removals) does not clear the error; the next push starts over.
    bool refused = false;
  };
  // Sends what changed for the client (always when `always`); `only`: the
  // names that can have changed (null: all).
  // What one response may carry: in a push's make phase only new and
  // changed resources, in its break phase only removals; else both.
  enum class Carry { kBoth, kAdditions, kRemovals };
  void send(const std::string& type_url, TypeState& t, bool always,
            const std::set<std::string>* only = nullptr, Carry carry = Carry::kBoth);

  void startPush(bool restarted) override;
  void step(const std::string& type_url, Phase phase) override;
  bool lacksEndpoints() const override;

  uint64_t pushes_ = 0;
  std::map<std::string, TypeState> types_;
  // The names each type may have changed in the push under way (null: diff all).
  std::map<std::string, const std::set<std::string>*> only_;
};

bool DeltaAdsStream::lacksEndpoints() const { return lacksEndpointsIn(types_); }

void DeltaAdsStream::send(const std::string& type_url, TypeState& t, bool always,
                          const std::set<std::string>* only, Carry carry) {
  const ResourcesByType& all = server_.resources(profile_);
  static const ResourceMap kNone;
  auto it = all.find(type_url);
  const ResourceMap& current = it == all.end() ? kNone : it->second;
  // The response's `resources` entries are serialized once per generation and
  // shared by every stream (AdsServer::deltaResourceEntry); the rest of the
  // message is this stream's and is appended (concatenated protobuf messages
  // merge).
  std::string body;
  std::vector<std::pair<const std::string*, const std::string*>> sent;  // name, version
  envoy::service::discovery::v3::DeltaDiscoveryResponse r;
  const AdsServer::Entry* own = ownInbound(type_url);
  auto consider = [&](const std::string& name) {
    const bool wanted = t.wildcard || subscribedTo(type_url, t.names, name);
    auto found = current.find(name);
    const AdsServer::Entry* c = found == current.end() ? nullptr : &*found;
    const bool is_own = c != nullptr && own != nullptr && name == own->first;
    if (is_own) c = own;
    auto h = t.has.find(name);
    if (wanted && c != nullptr) {
      if (carry == Carry::kRemovals || (h != t.has.end() && h->second == c->second.version)) return;
      body += server_.deltaResourceEntry(profile_, type_url, *c, is_own);
      sent.emplace_back(&c->first, &c->second.version);
    } else if (h != t.has.end() && carry != Carry::kAdditions) {
      r.add_removed_resources(name);
    }
  };
  if (only != nullptr) {
    for (const auto& name : *only) consider(name);
    // The node's own listener changes with its service, which the
    // profile's changed names do not follow.
    if (own != nullptr && !only->contains(own->first)) consider(own->first);
  } else {
    std::set<std::string> names;
    for (const auto& [name, vr] : current) names.insert(name);
    for (const auto& [name, version] : t.has) names.insert(name);
    for (const auto& name : names) consider(name);
  }
  // Every name was looked at for what this response may carry: a refused
  // resource is offered again (a removals-only response offers nothing).
  if (only == nullptr && carry != Carry::kRemovals) t.diff_all = false;
  if (!always && sent.empty() && r.removed_resources().empty()) return;
  if (!t.pending) {
    t.undo.clear();
    t.undo_to_empty = t.has.empty();
  }
  auto remember = [&t](const std::string& name) {
    if (t.undo_to_empty) return;
    auto h = t.has.find(name);
    t.undo.emplace_back(name, h == t.has.end() ? std::nullopt
                                               : std::optional<std::string>(h->second));
  };
  for (const auto& [name, version] : sent) {
    remember(*name);
    t.has[*name] = *version;
  }
  for (const auto& name : r.removed_resources()) {
    remember(name);
    t.has.erase(name);
  }
  r.set_type_url(type_url);
  r.set_system_version_info(std::to_string(++pushes_));
  r.set_nonce(std::to_string(++nonce_));
  r.mutable_control_plane()->set_identifier("turnout-cp");
  t.sent_nonce = r.nonce();
  t.pending = true;
  ProxyTypeStatus& ps = status_.types[shortName(type_url)];
  ps.sent_version = r.system_version_info();
  ps.pending = true;
  body += r.SerializeAsString();
  call_.send(body);
}

void DeltaAdsStream::onMessage(std::string_view message) {
  envoy::service::discovery::v3::DeltaDiscoveryRequest req;
  if (!req.ParseFromArray(message.data(), static_cast<int>(message.size()))) {
    call_.finish(GrpcStatus::kInvalidArgument, "cannot parse a DeltaDiscoveryRequest");
    return;
  }
  if (!admit(req.has_node() ? &req.node() : nullptr, req.type_url())) return;
  TypeState& t = types_[req.type_url()];
  const bool first = !t.subscribed;
  if (first) {
    t.subscribed = true;
    t.wildcard = isWildcardType(req.type_url()) && req.resource_names_subscribe().empty();
    for (const auto& [name, version] : req.initial_resource_versions()) t.has[name] = version;
  }
  bool names_changed = false;
  // The names newly asked for: all the answer needs to look at, unless the
  // wildcard or a namespace changed (then every name).
  std::set<std::string> asked;
  bool every_name = first;
  for (const auto& n : req.resource_names_subscribe()) {
    if (n == "*") {
      every_name |= !t.wildcard;
      t.wildcard = true;
    } else if (t.names.insert(n).second) {
      names_changed = true;
      asked.insert(n);
      every_name |= isNamespacedType(req.type_url());
    }
  }
  for (const auto& n : req.resource_names_unsubscribe()) {
    if (n == "*") {
      every_name |= t.wildcard;
      t.wildcard = false;
    } else if (t.names.erase(n) > 0) {
      t.has.erase(n);
      if (isNamespacedType(req.type_url())) {
        // What the client held in that namespace goes with it.
        std::erase_if(t.has, [&](const auto& h) {
          return h.first.size() > n.size() && h.first.starts_with(n) && h.first[n.size()] == '/' &&
                 h.first.find('/', n.size() + 1) == std::string::npos;
        });
      }
      names_changed = true;
    }
  }
  ProxyTypeStatus& ps = status_.types[shortName(req.type_url())];
  // The client kept what it had: `has` goes back to before the unanswered
  // pushes, and the next push diffs every name.
  auto refused = [&] {
    t.diff_all = true;
    if (t.undo_to_empty) {
      t.has.clear();
    } else {
      for (auto u = t.undo.rbegin(); u != t.undo.rend(); ++u) {
        if (u->second) {
          t.has[u->first] = *u->second;
        } else {
          t.has.erase(u->first);
        }
      }
    }
    t.undo.clear();
    t.undo_to_empty = false;
    t.refused = true;
    ps.nack_error = req.error_detail().message();
    TURNOUT_LOG(warn, kLog, "node '{}' rejected delta {}: {}", status_.node_id,
                shortName(req.type_url()), ps.nack_error);
  };
  if (!req.response_nonce().empty() && req.response_nonce() == t.sent_nonce && t.pending) {
    t.pending = false;
    ps.pending = false;
    if (req.has_error_detail()) {
      refused();
    } else if (!t.refused) {
      ps.acked_version = ps.sent_version;
      ps.nack_error.clear();
    }
    t.undo.clear();
    t.undo_to_empty = false;
  } else if (t.pending && req.has_error_detail() && !req.response_nonce().empty()) {
    // A NACK of an earlier response than the last one sent (a push sends a
    // type twice: new clusters first, removals after the routes). The later
    // response may well be ACKed, yet what this one carried was refused: it
    // is undone now, stays the error shown until an ACK with nothing refused
    // in between, and is sent again by the next push.
    refused();
  }
  if (first || names_changed) {
    // One new EDS name per new cluster on each of 1,000 streams: diffing
    // every held name for each was most of a push's CPU.
    send(req.type_url(), t, /*always=*/first, every_name || t.diff_all ? nullptr : &asked);
  }
  maybeResume(req.has_error_detail() && req.type_url() == config::kClusterTypeUrl);
}

void DeltaAdsStream::startPush(bool restarted) {
  // `has` is what the client holds once it took every push so far, so only
  // the names this generation changed can differ, also while a push is
  // unanswered; a type that was NACKed (has put back to an older generation)
  // or whose part of a waiting push was never sent is diffed in full.
  // Decided per type before the first step sends.
  only_.clear();
  for (auto& [type, t] : types_) {
    if (restarted) t.diff_all = true;
    t.refused = false;
    only_[type] = t.diff_all ? nullptr : server_.changedNames(profile_, type);
  }
}

void DeltaAdsStream::step(const std::string& type, Phase phase) {
  auto it = types_.find(type);
  if (it == types_.end() || !it->second.subscribed) return;
  auto only = only_.find(type);
  const Carry carry = phase == Phase::kMake    ? Carry::kAdditions
                      : phase == Phase::kBreak ? Carry::kRemovals
                                               : Carry::kBoth;
  send(type, it->second, false, only == only_.end() ? nullptr : only->second, carry);
}

absl::StatusOr<std::unique_ptr<AdsServer>> AdsServer::create(asio::io_context& ioc,
                                                             Options options, const Model& model) {
  std::unique_ptr<AdsServer> s(new AdsServer());
  s->ioc_ = &ioc;
  s->options_ = options;
  s->model_ = &model;
  AdsServer* raw = s.get();
  GrpcServer::Options g;
  g.address = options.address;
  g.port = options.port;
  auto grpc = GrpcServer::create(
      ioc, g, [raw](const std::string& path, GrpcCall& call) -> std::unique_ptr<GrpcCallHandler> {
        if (path == kAdsMethod) return std::make_unique<AdsStream>(*raw, call);
        if (path == kDeltaAdsMethod) return std::make_unique<DeltaAdsStream>(*raw, call);
        return nullptr;
      });
  if (!grpc.ok()) return grpc.status();
  s->grpc_ = *std::move(grpc);
  return s;
}

AdsServer::~AdsServer() {
  *alive_ = false;
  stop();
}

void AdsServer::start() { grpc_->start(); }

void AdsServer::stop() {
  if (grpc_) grpc_->stop();
}

AdsServer::Generation& AdsServer::generation(Profile profile) {
  auto it = generators_.find(profile);
  if (it == generators_.end()) {
    it = generators_.emplace(profile, profile).first;
    it->second.generator.update(*model_);
    // A fresh generation is never diffed against (changedNames, removed
    // resources): its every-name change set would only be freed during the
    // next change, ~8 ms at 20,000 clusters.
    it->second.generator.forgetChanges();
  }
  return it->second;
}

const ResourcesByType& AdsServer::resources(Profile profile) {
  return generation(profile).generator.resources();
}

const AdsServer::Prepared& AdsServer::prepared(Profile profile, const std::string& type_url,
                                               bool wildcard, const std::set<std::string>& names,
                                               bool keep_removed, const Entry* own_inbound) {
  if (type_url != config::kListenerTypeUrl) own_inbound = nullptr;
  const ResourceMap* removed = nullptr;  // what this generation took away, by name
  if (keep_removed) {
    const Generation& g = generation(profile);
    const ResourcesByType& gone = g.generator.removed();
    if (auto it = gone.find(type_url); !g.fresh && it != gone.end() && !it->second.empty()) {
      removed = &it->second;
    }
    if (removed == nullptr) keep_removed = false;
  }
  std::string key = absl::StrCat(profileKey(profile), "\n", type_url, keep_removed ? "+\n" : "\n");
  if (wildcard) {
    key += "*";
  } else {
    for (const auto& n : names) absl::StrAppend(&key, n, ",");
  }
  if (own_inbound != nullptr) absl::StrAppend(&key, "\ninbound ", own_inbound->second.version);
  auto found = prepared_.find(key);
  if (found != prepared_.end()) return found->second;
  std::vector<const std::pair<const std::string, VersionedResource>*> rs;
  const ResourcesByType& all = resources(profile);
  static const ResourceMap kNone;
  auto it = all.find(type_url);  // listeners: kGrpc and sidecars only
  const ResourceMap& current = it == all.end() ? kNone : it->second;
  for (const auto& entry : current) {
    if (!wildcard && !names.contains(entry.first)) continue;
    rs.push_back(own_inbound != nullptr && entry.first == own_inbound->first ? own_inbound : &entry);
  }
  if (keep_removed) {
    for (const auto& entry : *removed) {
      if (wildcard || names.contains(entry.first)) {
        rs.push_back(&entry);
      }
    }
    std::sort(rs.begin(), rs.end(), [](const auto* a, const auto* b) { return a->first < b->first; });
  }
  DiscoveryResponse r;
  r.set_type_url(type_url);
  r.set_version_info(setVersion(rs));
  r.mutable_control_plane()->set_identifier("turnout-cp");
  for (const auto* e : rs) *r.add_resources() = e->second.resource;
  Prepared p{r.version_info(), r.SerializeAsString()};
  return prepared_.emplace(std::move(key), std::move(p)).first->second;
}

std::string AdsServer::deltaEntryKey(Profile profile, const std::string& type_url,
                                     const std::string& name) {
  return absl::StrCat(profileKey(profile), "\n", type_url, "\n", name);
}

const std::string& AdsServer::deltaResourceEntry(
    Profile profile, const std::string& type_url,
    const std::pair<const std::string, VersionedResource>& resource, bool own) {
  auto serialize = [&resource] {
    envoy::service::discovery::v3::DeltaDiscoveryResponse one;
    auto* res = one.add_resources();
    res->set_name(resource.first);
    res->set_version(resource.second.version);
    *res->mutable_resource() = resource.second.resource;
    // Field 2 (resources): tag, length, the Resource; as its own message.
    return one.SerializeAsString();
  };
  std::string key = deltaEntryKey(profile, type_url, resource.first);
  if (own) {
    absl::StrAppend(&key, "\n", resource.second.version);
    auto found = own_delta_entries_.find(key);
    if (found != own_delta_entries_.end()) return found->second;
    return own_delta_entries_.emplace(std::move(key), serialize()).first->second;
  }
  DeltaEntry& e = delta_entries_[std::move(key)];
  if (e.bytes.empty() || e.version != resource.second.version) {
    e.version = resource.second.version;
    e.bytes = serialize();
  }
  return e.bytes;
}

const AdsServer::Entry* AdsServer::ownInbound(Profile profile, const SidecarService& service,
                                              const std::string& pod_ip) {
  if (!profile.sidecar) return nullptr;
  const std::set<uint32_t>* pod_ports = nullptr;
  if (!pod_ip.empty()) {
    if (!ports_by_ip_) ports_by_ip_ = endpointPortsByIp(*model_);
    auto it = ports_by_ip_->find(pod_ip);
    if (it != ports_by_ip_->end()) pod_ports = &it->second;
  }
  std::optional<std::set<uint32_t>> ports = sidecarInboundPorts(*model_, service, pod_ports);
  if (!ports) return nullptr;
  std::string key = profileKey(profile);
  for (uint32_t port : *ports) absl::StrAppend(&key, " ", port);
  auto found = own_inbound_.find(key);
  if (found != own_inbound_.end()) return &found->second;
  const auto listener = sidecarInboundListener(*ports, profile.dialect == Dialect::kTurnout,
                                               profile.ip_families);
  VersionedResource v;
  v.version = contentVersion(listener);
  v.resource.PackFrom(listener);
  return &own_inbound_
              .emplace(std::move(key), Entry(kVirtualInboundListener, std::move(v)))
              .first->second;
}

const std::set<std::string>* AdsServer::changedNames(Profile profile, const std::string& type_url) {
  static const std::set<std::string> kNone;
  const Generation& g = generation(profile);
  if (g.fresh) return nullptr;  // no generation to diff against
  const auto& changed = g.generator.changed();
  auto it = changed.find(type_url);
  return it == changed.end() ? &kNone : &it->second;
}

void AdsServer::update(const Model& model) {
  pending_ = &model;
  if (posted_) return;
  posted_ = true;
  asio::post(*ioc_, [this, alive = alive_] {
    if (*alive) flush();
  });
}

void AdsServer::flush() {
  posted_ = false;
  if (pending_ == nullptr) return;
  model_ = pending_;
  pending_ = nullptr;
  apply();
}

void AdsServer::apply() {
  // Every profile some stream used moves to the new model at the cost of what
  // changed; the Delta streams send those names, SotW ones the changed types.
  for (auto& [profile, g] : generators_) {
    g.generator.update(*model_);
    g.fresh = false;
    // The Delta entries of what changed or went; the rest stay as they are.
    for (const auto& [type_url, names] : g.generator.changed()) {
      for (const auto& name : names) delta_entries_.erase(deltaEntryKey(profile, type_url, name));
    }
  }
  prepared_.clear();
  own_delta_entries_.clear();
  own_inbound_.clear();
  ports_by_ip_.reset();
  for (AdsStreamBase* s : streams_) s->push();
}

std::vector<ProxyStatus> AdsServer::proxies() const {
  std::vector<ProxyStatus> out;
  for (const AdsStreamBase* s : streams_) {
    if (!s->status().node_id.empty()) out.push_back(s->status());
  }
  std::sort(out.begin(), out.end(), [](const ProxyStatus& a, const ProxyStatus& b) {
    return std::tie(a.node_id, a.peer) < std::tie(b.node_id, b.peer);
  });
  return out;
}

}  // namespace turnout::control_plane
