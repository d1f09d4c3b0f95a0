#include "config/xds/xds_client.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "config/snapshot/discovery_response.h"

namespace turnout::config::xds {
namespace {

constexpr char kResourceWrapperTypeUrl[] = "type.googleapis.com/envoy.service.discovery.v3.Resource";
// google.rpc.Code INVALID_ARGUMENT, as Envoy NACKs.
constexpr int kInvalidArgument = 3;

}  // namespace

int typeOrder(const std::string& type_url) {
  if (type_url == kClusterTypeUrl) return 0;
  if (type_url == kClusterLoadAssignmentTypeUrl) return 1;
  if (type_url == kListenerTypeUrl) return 2;
  if (type_url == kRouteConfigurationTypeUrl) return 3;
  return 4;
}

std::string namespaceOf(const std::string& resource_name) {
  const size_t slash = resource_name.rfind('/');
  return slash == std::string::npos ? std::string() : resource_name.substr(0, slash);
}

void XdsClient::flushDeferred() {
  std::vector<std::string> deferred;
  deferred.swap(deferred_);
  std::stable_sort(deferred.begin(), deferred.end(), [](const std::string& a, const std::string& b) {
    return typeOrder(a) < typeOrder(b);
  });
  for (const auto& url : deferred) maybeQueueNames(url, types_[url]);
}

XdsClient::XdsClient(envoy::config::core::v3::Node node, XdsProtocol protocol)
    : node_(std::move(node)), protocol_(protocol) {}

const XdsClient::TypeState* XdsClient::state(const std::string& type_url) const {
  auto it = types_.find(type_url);
  return it == types_.end() ? nullptr : &it->second;
}

void XdsClient::subscribe(const std::string& type_url, bool wildcard, std::set<std::string> names,
                          ResourceHandler handler) {
  TypeState& t = types_[type_url];
  t.wildcard = wildcard;
  t.namespaces = false;
  t.handler = std::move(handler);
  t.delta_handler = nullptr;
  t.names = std::move(names);
  maybeQueueNames(type_url, t);
}

void XdsClient::subscribeDelta(const std::string& type_url, SubscribeOptions options,
                               std::set<std::string> names, DeltaHandler handler) {
  TypeState& t = types_[type_url];
  t.wildcard = options.wildcard;
  t.namespaces = options.namespaces;
  t.handler = nullptr;
  t.delta_handler = std::move(handler);
  t.names = std::move(names);
  maybeQueueNames(type_url, t);
}

void XdsClient::setNames(const std::string& type_url, std::set<std::string> names) {
  auto it = types_.find(type_url);
  if (it == types_.end()) return;
  it->second.names = std::move(names);
  maybeQueueNames(type_url, it->second);
}

void XdsClient::updateNames(const std::string& type_url, const std::vector<std::string>& add,
                            const std::vector<std::string>& remove) {
  auto it = types_.find(type_url);
  if (it == types_.end()) return;
  for (const auto& n : remove) it->second.names.erase(n);
  for (const auto& n : add) it->second.names.insert(n);
  maybeQueueNames(type_url, it->second);
}

void XdsClient::maybeQueueNames(const std::string& type_url, TypeState& t) {
  if (!open_) return;
  if (handling_) {
    if (std::find(deferred_.begin(), deferred_.end(), type_url) == deferred_.end()) {
      deferred_.push_back(type_url);
    }
    return;
  }
  if (t.sent_on_stream && t.names == t.names_sent) return;
  // Nothing wanted and nothing asked for on this stream: stay silent (an
  // empty first request would mean the wildcard).
  if (!t.wildcard && t.names.empty() && !t.sent_on_stream &&
      (protocol_ == XdsProtocol::kStateOfTheWorld || t.held.empty())) {
    return;
  }
  if (protocol_ == XdsProtocol::kDelta) {
    queueDelta(type_url, t, nullptr, /*ack=*/false);
  } else {
    queueRequest(type_url, t, nullptr);
  }
}

void XdsClient::queueDelta(const std::string& type_url, TypeState& t, const absl::Status* error,
                           bool ack) {
  DeltaDiscoveryRequest& r = delta_queue_.emplace_back();
  if (!node_sent_) {
    *r.mutable_node() = node_;
    node_sent_ = true;
  }
  r.set_type_url(type_url);
  if (ack) r.set_response_nonce(t.nonce);
  if (error != nullptr) {
    r.mutable_error_detail()->set_code(kInvalidArgument);
    r.mutable_error_detail()->set_message(std::string(error->message()));
  }
  if (!t.sent_on_stream) {
    // First on this stream: a wildcard type subscribes no name (the legacy
    // wildcard); what is held is announced so only changes come back.
    if (!t.wildcard) {
      for (const auto& n : t.names) r.add_resource_names_subscribe(n);
    }
    for (const auto& [name, held] : t.held) {
      (*r.mutable_initial_resource_versions())[name] = held.first;
    }
  } else if (!t.wildcard) {
    // One walk over both (ordered) sets; what changed is then applied to
    // names_sent rather than copying every name into it (20,000 EDS names
    // for one new cluster).
    std::vector<const std::string*> gone;
    auto want = t.names.begin();
    auto sent = t.names_sent.begin();
    while (want != t.names.end() || sent != t.names_sent.end()) {
      if (sent == t.names_sent.end() || (want != t.names.end() && *want < *sent)) {
        r.add_resource_names_subscribe(*want++);
      } else if (want == t.names.end() || *sent < *want) {
        gone.push_back(&*sent++);
      } else {
        ++want;
        ++sent;
      }
    }
    for (const std::string* gone_name : gone) {
      const std::string& n = *gone_name;
      r.add_resource_names_unsubscribe(n);
      t.held.erase(n);
      if (t.namespaces) {
        // The namespace's resources go with it ("<n>/..." only: a name
        // deeper down belongs to another namespace).
        const std::string prefix = n + "/";
        for (auto it = t.held.lower_bound(prefix);
             it != t.held.end() && it->first.starts_with(prefix);) {
          if (namespaceOf(it->first) == n) {
            it = t.held.erase(it);
          } else {
            ++it;
          }
        }
      }
    }
    for (const auto& n : r.resource_names_subscribe()) t.names_sent.insert(n);
    for (const auto& n : r.resource_names_unsubscribe()) t.names_sent.erase(n);
    t.sent_on_stream = true;
    return;
  }
  t.sent_on_stream = true;
  t.names_sent = t.names;
}

void XdsClient::onStreamOpen() {
  open_ = true;
  node_sent_ = false;
  std::vector<std::string> order;
  for (auto& [url, t] : types_) {
    t.nonce.clear();
    t.sent_on_stream = false;
    t.names_sent.clear();
    order.push_back(url);
  }
  std::stable_sort(order.begin(), order.end(), [](const std::string& a, const std::string& b) {
    return typeOrder(a) < typeOrder(b);
  });
  for (const auto& url : order) maybeQueueNames(url, types_[url]);
}

void XdsClient::onStreamClosed() {
  open_ = false;
  queue_.clear();
  delta_queue_.clear();
  deferred_.clear();
  for (auto& [url, t] : types_) {
    t.nonce.clear();
    t.sent_on_stream = false;
    t.names_sent.clear();
  }
}

void XdsClient::queueRequest(const std::string& type_url, TypeState& t, const absl::Status* error) {
  DiscoveryRequest& r = queue_.emplace_back();
  if (!node_sent_) {
    *r.mutable_node() = node_;
    node_sent_ = true;
  }
  r.set_type_url(type_url);
  r.set_version_info(t.version_info);
  r.set_response_nonce(t.nonce);
  if (!t.wildcard) {
    for (const auto& n : t.names) r.add_resource_names(n);
  }
  if (error != nullptr) {
    r.mutable_error_detail()->set_code(kInvalidArgument);
    r.mutable_error_detail()->set_message(std::string(error->message()));
  }
  t.sent_on_stream = true;
  t.names_sent = t.names;
}

XdsClient::Outcome XdsClient::onResponse(const DiscoveryResponse& response) {
  auto it = types_.find(response.type_url());
  if (it == types_.end() || !open_) return Outcome::kIgnored;
  TypeState& t = it->second;
  t.nonce = response.nonce();

  absl::Status status = handle(response.type_url(), t, response.version_info(), response.resources());
  // types_ may have changed in the handler only through subscribe/setNames
  // of existing or new keys; std::map keeps `t` valid.
  if (status.ok()) {
    t.version_info = response.version_info();
    t.last_error.clear();
    queueRequest(response.type_url(), t, nullptr);
  } else {
    t.last_error = std::string(status.message());
    queueRequest(response.type_url(), t, &status);
  }
  flushDeferred();
  return status.ok() ? Outcome::kAccepted : Outcome::kRejected;
}

absl::Status XdsClient::restore(const DiscoveryResponse& response) {
  auto it = types_.find(response.type_url());
  if (it == types_.end() || (!it->second.handler && !it->second.delta_handler)) {
    return absl::NotFoundError(absl::StrCat("nothing subscribes to ", response.type_url()));
  }
  TypeState& t = it->second;
  if (t.handler) {
    absl::Status st = t.handler(response.version_info(), response.resources());
    if (st.ok()) t.version_info = response.version_info();
    return st;
  }
  // The incremental handler: every cached resource is a change, and the
  // held set becomes exactly the cache.
  std::vector<envoy::service::discovery::v3::Resource> resources(
      static_cast<size_t>(response.resources_size()));
  DeltaUpdate update;
  update.version_info = response.version_info();
  absl::flat_hash_set<std::string> names;
  for (int i = 0; i < response.resources_size(); ++i) {
    envoy::service::discovery::v3::Resource& r = resources[static_cast<size_t>(i)];
    const google::protobuf::Any& any = response.resources(i);
    if (any.type_url() != kResourceWrapperTypeUrl || !any.UnpackTo(&r) || !r.has_resource() ||
        r.resource().type_url() != response.type_url() || r.name().empty() ||
        !names.insert(r.name()).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          "resources[", i, "]: not a named Resource of type ", response.type_url()));
    }
    update.changed.push_back(&r);
  }
  for (const auto& [name, held] : t.held) {
    if (!names.contains(name)) update.removed.push_back(name);
  }
  if (absl::Status st = t.delta_handler(update); !st.ok()) return st;
  t.held.clear();
  // An incremental handler keeps its own config: only names and versions are
  // held (initial_resource_versions), not a second copy of every resource.
  for (auto& r : resources) t.held[r.name()] = {r.version(), google::protobuf::Any()};
  t.version_info = response.version_info();
  return absl::OkStatus();
}

absl::Status XdsClient::handle(const std::string& type_url, TypeState& t,
                               const std::string& version,
                               const google::protobuf::RepeatedPtrField<google::protobuf::Any>& in) {
  // Checked here, before the handler: each resource's type, and the
  // Resource wrapper some servers use (its payload is the resource).
  google::protobuf::RepeatedPtrField<google::protobuf::Any> resources;
  absl::Status status;
  for (int i = 0; i < in.size() && status.ok(); ++i) {
    const google::protobuf::Any& any = in.Get(i);
    if (any.type_url() == kResourceWrapperTypeUrl) {
      envoy::service::discovery::v3::Resource wrapped;
      if (!any.UnpackTo(&wrapped)) {
        status = absl::InvalidArgumentError(
            absl::StrCat("resources[", i, "]: cannot parse the Resource wrapper"));
      } else if (!wrapped.has_resource()) {
        status = absl::InvalidArgumentError(absl::StrCat(
            "resources[", i, "]: a Resource wrapper without a resource is not supported"));
      } else {
        *resources.Add() = wrapped.resource();
      }
    } else {
      *resources.Add() = any;
    }
    if (status.ok() && resources.Get(resources.size() - 1).type_url() != type_url) {
      status = absl::InvalidArgumentError(
          absl::StrCat("resources[", i, "]: type '", resources.Get(resources.size() - 1).type_url(),
                       "' in a response of type '", type_url, "'"));
    }
  }
  if (status.ok() && !t.handler && t.delta_handler) {
    status = absl::InvalidArgumentError(
        absl::StrCat(type_url, " is taken over Delta xDS only (a State-of-the-World response)"));
  }
  handling_ = true;
  if (status.ok() && t.handler) status = t.handler(version, resources);
  handling_ = false;
  return status;
}

XdsClient::Outcome XdsClient::onDeltaResponse(const DeltaDiscoveryResponse& response) {
  auto it = types_.find(response.type_url());
  if (it == types_.end() || !open_) return Outcome::kIgnored;
  TypeState& t = it->second;
  t.nonce = response.nonce();
  absl::Status status = applyDelta(response.type_url(), t, response);
  if (status.ok()) {
    t.version_info = response.system_version_info();
    t.last_error.clear();
    queueDelta(response.type_url(), t, nullptr, /*ack=*/true);
  } else {
    t.last_error = std::string(status.message());
    queueDelta(response.type_url(), t, &status, /*ack=*/true);
  }
  flushDeferred();
  return status.ok() ? Outcome::kAccepted : Outcome::kRejected;
}

absl::Status XdsClient::applyDelta(const std::string& type_url, TypeState& t,
                                   const DeltaDiscoveryResponse& response) {
  // Checked first, nothing changed yet: bodies, types, a name twice.
  DeltaUpdate update;
  update.version_info = response.system_version_info();
  update.changed.reserve(static_cast<size_t>(response.resources_size()));
  absl::flat_hash_set<std::string_view> names;
  for (int i = 0; i < response.resources_size(); ++i) {
    const auto& r = response.resources(i);
    if (!r.has_resource()) {
      return absl::InvalidArgumentError(
          absl::StrCat("resources[", i, "]: resource '", r.name(), "' has no body"));
    }
    if (r.resource().type_url() != type_url) {
      return absl::InvalidArgumentError(absl::StrCat("resources[", i, "]: type '",
                                                     r.resource().type_url(),
                                                     "' in a response of type '", type_url, "'"));
    }
    if (!names.insert(r.name()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("resources[", i, "].name: '", r.name(), "' twice in one response"));
    }
    update.changed.push_back(&r);
  }
  for (const auto& name : response.removed_resources()) {
    if (t.held.contains(name) && !names.contains(name)) update.removed.push_back(name);
  }

  absl::Status status;
  if (t.delta_handler) {
    handling_ = true;
    status = t.delta_handler(update);
    handling_ = false;
  } else if (!t.wildcard) {
    // The whole-set handler of a named type: the changed resources.
    google::protobuf::RepeatedPtrField<google::protobuf::Any> changed;
    changed.Reserve(static_cast<int>(update.changed.size()));
    for (const auto* r : update.changed) *changed.Add() = r->resource();
    handling_ = true;
    if (t.handler) status = t.handler(update.version_info, changed);
    handling_ = false;
  } else {
    // The whole-set handler of a wildcard type sees the held set as it would
    // be: changed in place (an undo log restores it on a NACK), handed over
    // by pointer. O(held) pointers, no resource copied but the changed ones.
    struct Undo {
      std::string name;
      std::optional<std::pair<std::string, google::protobuf::Any>> before;
    };
    std::vector<Undo> undo;
    undo.reserve(update.changed.size() + update.removed.size());
    for (const auto* r : update.changed) {
      auto [h, inserted] = t.held.try_emplace(r->name());
      Undo& u = undo.emplace_back(Undo{r->name(), std::nullopt});
      if (!inserted) u.before = std::move(h->second);
      h->second = {r->version(), r->resource()};
    }
    for (const auto& name : update.removed) {
      auto h = t.held.find(name);
      undo.push_back(Undo{name, std::move(h->second)});
      t.held.erase(h);
    }
    google::protobuf::RepeatedPtrField<google::protobuf::Any> all;
    all.Reserve(static_cast<int>(t.held.size()));
    for (auto& [name, h] : t.held) all.AddAllocated(&h.second);
    handling_ = true;
    if (t.handler) status = t.handler(update.version_info, all);
    handling_ = false;
    // Borrowed, not owned: handed back without freeing.
    while (!all.empty()) (void)all.ReleaseLast();
    if (!status.ok()) {
      for (auto u = undo.rbegin(); u != undo.rend(); ++u) {
        if (u->before) {
          t.held[u->name] = std::move(*u->before);
        } else {
          t.held.erase(u->name);
        }
      }
    }
    return status;
  }
  if (!status.ok()) return status;
  // Names and versions only (above): the handler has applied the resources.
  for (const auto* r : update.changed) t.held[r->name()] = {r->version(), google::protobuf::Any()};
  for (const auto& name : update.removed) t.held.erase(name);
  return absl::OkStatus();
}

std::vector<DeltaDiscoveryRequest> XdsClient::takeDeltaRequests() {
  std::vector<DeltaDiscoveryRequest> out;
  out.swap(delta_queue_);
  return out;
}

std::vector<DiscoveryRequest> XdsClient::takeRequests() {
  std::vector<DiscoveryRequest> out;
  out.swap(queue_);
  return out;
}

}  // namespace turnout::config::xds
