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

XdsClient::XdsClient(envoy::config::core::v3::Node node) : node_(std::move(node)) {}

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
  if (!t.wildcard && t.names.empty() && !t.sent_on_stream) return;
  queueRequest(type_url, t, nullptr);
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

  // Checked here, before the handler: each resource's type, and the
  // Resource wrapper some servers use (its payload is the resource).
  google::protobuf::RepeatedPtrField<google::protobuf::Any> resources;
  absl::Status status;
  for (int i = 0; i < response.resources_size() && status.ok(); ++i) {
    const google::protobuf::Any& any = response.resources(i);
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
    if (status.ok() && resources.Get(resources.size() - 1).type_url() != response.type_url()) {
      status = absl::InvalidArgumentError(absl::StrCat(
          "resources[", i, "]: type '", resources.Get(resources.size() - 1).type_url(),
          "' in a response of type '", response.type_url(), "'"));
    }
  }
  handling_ = true;
  if (status.ok() && t.handler) status = t.handler(response.version_info(), resources);
  handling_ = false;
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
  std::vector<std::string> deferred;
  deferred.swap(deferred_);
  std::stable_sort(deferred.begin(), deferred.end(), [](const std::string& a, const std::string& b) {
    return typeOrder(a) < typeOrder(b);
  });
  for (const auto& url : deferred) maybeQueueNames(url, types_[url]);
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

std::vector<DiscoveryRequest> XdsClient::takeRequests() {
  std::vector<DiscoveryRequest> out;
  out.swap(queue_);
  return out;
}

}  // namespace turnout::config::xds
