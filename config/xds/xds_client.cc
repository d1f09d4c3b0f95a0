#include "config/xds/xds_client.h"

#include <algorithm>
#include <utility>

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
  t.handler = std::move(handler);
  t.names = std::move(names);
  maybeQueueNames(type_url, t);
}

void XdsClient::setNames(const std::string& type_url, std::set<std::string> names) {
  auto it = types_.find(type_url);
  if (it == types_.end()) return;
  it->second.names = std::move(names);
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
    for (const auto& n : t.names) {
      if (!t.names_sent.contains(n)) r.add_resource_names_subscribe(n);
    }
    for (const auto& n : t.names_sent) {
      if (!t.names.contains(n)) {
        r.add_resource_names_unsubscribe(n);
        t.held.erase(n);
      }
    }
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
  if (it == types_.end() || !it->second.handler) {
    return absl::NotFoundError(absl::StrCat("nothing subscribes to ", response.type_url()));
  }
  absl::Status st = it->second.handler(response.version_info(), response.resources());
  if (st.ok()) it->second.version_info = response.version_info();
  return st;
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
  // The held set as it would be: changed resources replace, removed go.
  auto held = t.held;
  google::protobuf::RepeatedPtrField<google::protobuf::Any> changed;
  absl::Status status;
  for (int i = 0; i < response.resources_size() && status.ok(); ++i) {
    const auto& r = response.resources(i);
    if (!r.has_resource()) {
      status = absl::InvalidArgumentError(
          absl::StrCat("resources[", i, "]: resource '", r.name(), "' has no body"));
      break;
    }
    held[r.name()] = {r.version(), r.resource()};
    *changed.Add() = r.resource();
  }
  for (const auto& name : response.removed_resources()) held.erase(name);
  if (status.ok()) {
    if (t.wildcard) {
      google::protobuf::RepeatedPtrField<google::protobuf::Any> all;
      for (const auto& [name, h] : held) *all.Add() = h.second;
      status = handle(response.type_url(), t, response.system_version_info(), all);
    } else {
      status = handle(response.type_url(), t, response.system_version_info(), changed);
    }
  }
  if (status.ok()) {
    t.held = std::move(held);
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
