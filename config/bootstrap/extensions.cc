#include "config/bootstrap/extensions.h"

#include <memory>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "config/bootstrap/field_path.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb.h"
#include "google/protobuf/any.pb.h"
#include "google/protobuf/dynamic_message.h"

namespace turnout::config {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

constexpr absl::string_view kHttpFilterMsg =
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter";

// Message -> factory name, as Envoy names extensions in its messages.
const absl::flat_hash_map<absl::string_view, absl::string_view>& factoryNames() {
  static const auto* names = new absl::flat_hash_map<absl::string_view, absl::string_view>{
      {kHttpConnectionManagerType, "envoy.filters.network.http_connection_manager"},
      {kTcpProxyType, "envoy.filters.network.tcp_proxy"},
      {kRouterType, "envoy.filters.http.router"},
      {kHealthCheckType, "envoy.filters.http.health_check"},
      {kGrpcStatsType, "envoy.filters.http.grpc_stats"},
      {kGrpcWebType, "envoy.filters.http.grpc_web"},
      {kCorsType, "envoy.filters.http.cors"},
      {kRoutingKeyType, "turnout.filters.http.routing_key"},
      {kUpstreamTlsContextType, "envoy.transport_sockets.tls"},
      {kDownstreamTlsContextType, "envoy.transport_sockets.tls"},
      {kRawBufferType, "envoy.transport_sockets.raw_buffer"},
      {kHttpProtocolOptionsType, "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"},
      {"envoy.extensions.filters.listener.original_dst.v3.OriginalDst",
       "envoy.filters.listener.original_dst"},
      {"envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector",
       "envoy.filters.listener.tls_inspector"},
      {"envoy.extensions.filters.listener.http_inspector.v3.HttpInspector",
       "envoy.filters.listener.http_inspector"},
      {"envoy.extensions.access_loggers.file.v3.FileAccessLog", "envoy.access_loggers.file"},
      {"envoy.extensions.access_loggers.stream.v3.StdoutAccessLog", "envoy.access_loggers.stdout"},
      {"envoy.extensions.access_loggers.stream.v3.StderrAccessLog", "envoy.access_loggers.stderr"},
      {"envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate",
       "envoy.retry_host_predicates.previous_hosts"},
  };
  return *names;
}

// Any field (full name) -> accepted message types. TransportSocket depends on its holder.
const absl::flat_hash_map<absl::string_view, std::vector<absl::string_view>>& allowlist() {
  static const auto* table =
      new absl::flat_hash_map<absl::string_view, std::vector<absl::string_view>>{
          {"envoy.config.listener.v3.Filter.typed_config",
           {kHttpConnectionManagerType, kTcpProxyType}},
          {"envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter.typed_config",
           {kRouterType, kHealthCheckType, kGrpcStatsType, kGrpcWebType, kCorsType,
            kRoutingKeyType}},
          {"envoy.config.listener.v3.ListenerFilter.typed_config",
           {"envoy.extensions.filters.listener.original_dst.v3.OriginalDst",
            "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector",
            "envoy.extensions.filters.listener.http_inspector.v3.HttpInspector"}},
          {"envoy.config.accesslog.v3.AccessLog.typed_config",
           {"envoy.extensions.access_loggers.file.v3.FileAccessLog",
            "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
            "envoy.extensions.access_loggers.stream.v3.StderrAccessLog"}},
          {"envoy.config.cluster.v3.Cluster.typed_extension_protocol_options",
           {kHttpProtocolOptionsType}},
          {"envoy.config.route.v3.RetryPolicy.RetryHostPredicate.typed_config",
           {"envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"}},
          // Per-filter config is keyed by filter name (envoy#29461); only our own filter
          // takes one, directly or wrapped in the generic FilterConfig.
          {"envoy.config.route.v3.RouteConfiguration.typed_per_filter_config",
           {kRoutingKeyType, "envoy.config.route.v3.FilterConfig"}},
          {"envoy.config.route.v3.VirtualHost.typed_per_filter_config",
           {kRoutingKeyType, "envoy.config.route.v3.FilterConfig", kCorsPolicyType}},
          {"envoy.config.route.v3.Route.typed_per_filter_config",
           {kRoutingKeyType, "envoy.config.route.v3.FilterConfig", kCorsPolicyType}},
          {"envoy.config.route.v3.WeightedCluster.ClusterWeight.typed_per_filter_config",
           {kRoutingKeyType, "envoy.config.route.v3.FilterConfig"}},
          {"envoy.config.route.v3.FilterConfig.config", {kRoutingKeyType}},
          // xDS resources (path_config_source files, DiscoveryResponse).
          {"envoy.service.discovery.v3.DiscoveryResponse.resources",
           {"envoy.config.listener.v3.Listener", "envoy.config.route.v3.RouteConfiguration",
            "envoy.config.cluster.v3.Cluster", "envoy.config.endpoint.v3.ClusterLoadAssignment",
            "envoy.extensions.transport_sockets.tls.v3.Secret"}},
          {"envoy.service.discovery.v3.Resource.resource",
           {"envoy.config.listener.v3.Listener", "envoy.config.route.v3.RouteConfiguration",
            "envoy.config.cluster.v3.Cluster", "envoy.config.endpoint.v3.ClusterLoadAssignment",
            "envoy.extensions.transport_sockets.tls.v3.Secret"}},
      };
  return *table;
}

// Messages whose extension must be given by typed_config (their `config_type` oneof).
bool needsTypedConfig(absl::string_view full_name) {
  return full_name == kHttpFilterMsg || full_name == "envoy.config.listener.v3.Filter" ||
         full_name == "envoy.config.listener.v3.ListenerFilter" ||
         full_name == "envoy.config.accesslog.v3.AccessLog" ||
         full_name == "envoy.config.core.v3.TransportSocket";
}

absl::string_view typeNameOf(absl::string_view type_url) {
  size_t slash = type_url.rfind('/');
  return slash == absl::string_view::npos ? type_url : type_url.substr(slash + 1);
}

absl::Status checkFilterHasTypedConfig(const Message& msg, absl::string_view path) {
  const Descriptor* d = msg.GetDescriptor();
  const Reflection* r = msg.GetReflection();
  const FieldDescriptor* typed = d->FindFieldByName("typed_config");
  const FieldDescriptor* discovery = d->FindFieldByName("config_discovery");
  const FieldDescriptor* name = d->FindFieldByName("name");
  if (discovery != nullptr && r->HasField(msg, discovery)) {
    return absl::InvalidArgumentError(atPath(
        fieldPath(path, "config_discovery"),
        "extension config discovery (ECDS) is not supported by turnout; give typed_config"));
  }
  if (typed != nullptr && !r->HasField(msg, typed)) {
    std::string label = name != nullptr ? r->GetString(msg, name) : std::string();
    return absl::InvalidArgumentError(atPath(
        fieldPath(path, "typed_config"),
        absl::StrCat("extension '", label,
                     "' has no typed_config; extensions are chosen by type URL "
                     "(Envoy >= 1.22), so typed_config is required (type URL: '')")));
  }
  return absl::OkStatus();
}

absl::Status checkHttpFilterOrder(
    const envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager&
        hcm,
    absl::string_view path) {
  const auto& filters = hcm.http_filters();
  std::string filters_path = fieldPath(path, "http_filters");
  if (filters.empty()) {
    return absl::InvalidArgumentError(
        atPath(filters_path, absl::StrCat("the HTTP filter chain must end with the router (",
                                          kRouterType, "); it is empty")));
  }
  for (int i = 0; i < filters.size(); ++i) {
    const auto& f = filters[i];
    if (!f.has_typed_config()) continue;  // reported by checkFilterHasTypedConfig
    absl::string_view type = typeNameOf(f.typed_config().type_url());
    bool terminal = type == kRouterType;
    bool last = i + 1 == filters.size();
    if (terminal && !last) {
      return absl::InvalidArgumentError(
          atPath(indexPath(filters_path, i),
                 absl::StrCat("terminal filter named ", f.name(), " of type ",
                              extensionFactoryName(type),
                              " must be the last filter in a http filter chain.")));
    }
    if (!terminal && last) {
      return absl::InvalidArgumentError(
          atPath(indexPath(filters_path, i),
                 absl::StrCat("non-terminal filter named ", f.name(), " of type ",
                              extensionFactoryName(type),
                              " is the last filter in a http filter chain.")));
    }
  }
  return absl::OkStatus();
}

absl::Status walk(const Message& msg, const FieldDescriptor* holder, absl::string_view path);

absl::Status walkAny(const Message& any, const ExtensionSite& site, absl::string_view path) {
  const auto* d = any.GetDescriptor();
  const auto* r = any.GetReflection();
  std::string url = r->GetString(any, d->FindFieldByNumber(1));
  if (auto s = checkExtensionType(site, url, path); !s.ok()) return s;
  const Descriptor* payload_type =
      google::protobuf::DescriptorPool::generated_pool()->FindMessageTypeByName(
          std::string(typeNameOf(url)));
  if (payload_type == nullptr) {
    return absl::InvalidArgumentError(
        atPath(path, absl::StrCat("unknown type URL '", url, "'")));
  }
  std::unique_ptr<Message> payload(
      google::protobuf::MessageFactory::generated_factory()->GetPrototype(payload_type)->New());
  if (!payload->ParseFromString(r->GetString(any, d->FindFieldByNumber(2)))) {
    return absl::InvalidArgumentError(
        atPath(path, absl::StrCat("cannot decode the payload of type '", url, "'")));
  }
  if (payload_type->full_name() == kHttpConnectionManagerType) {
    const auto* hcm = dynamic_cast<const envoy::extensions::filters::network::
                                       http_connection_manager::v3::HttpConnectionManager*>(
        payload.get());
    if (hcm != nullptr) {
      if (auto s = checkHttpFilterOrder(*hcm, path); !s.ok()) return s;
    }
  }
  return walk(*payload, site.any_field, path);
}

bool isAny(const FieldDescriptor* f) {
  return f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE &&
         f->message_type()->full_name() == "google.protobuf.Any";
}

absl::Status walk(const Message& msg, const FieldDescriptor* holder, absl::string_view path) {
  const Descriptor* d = msg.GetDescriptor();
  if (needsTypedConfig(d->full_name())) {
    if (auto s = checkFilterHasTypedConfig(msg, path); !s.ok()) return s;
  }
  return forEachSubMessage(msg, path, [&](const SubMessage& sub) {
    if (!isAny(sub.value_field)) return walk(sub.value, sub.field, sub.path);
    ExtensionSite site{sub.field, holder, {}};
    if (sub.map_key != nullptr) site = ExtensionSite{sub.field, holder, *sub.map_key};
    return walkAny(sub.value, site, sub.path);
  });
}

}  // namespace

std::vector<absl::string_view> supportedExtensionTypes(const ExtensionSite& site) {
  if (site.any_field == nullptr) return {};
  const std::string& name = site.any_field->full_name();
  if (name == "envoy.config.core.v3.TransportSocket.typed_config") {
    bool downstream = site.holder_field != nullptr &&
                      site.holder_field->containing_type()->full_name() ==
                          "envoy.config.listener.v3.FilterChain";
    return {downstream ? kDownstreamTlsContextType : kUpstreamTlsContextType, kRawBufferType};
  }
  auto it = allowlist().find(name);
  if (it == allowlist().end()) return {};
  return it->second;
}

absl::Status checkExtensionType(const ExtensionSite& site, absl::string_view type_url,
                                absl::string_view path) {
  std::vector<absl::string_view> allowed = supportedExtensionTypes(site);
  absl::string_view type = typeNameOf(type_url);
  bool prefix_ok = absl::StartsWith(type_url, kTypeUrlPrefix) ||
                   type_url.find('/') != absl::string_view::npos;
  bool ok = prefix_ok && std::find(allowed.begin(), allowed.end(), type) != allowed.end();
  if (ok && site.any_field != nullptr &&
      site.any_field->full_name() ==
          "envoy.config.cluster.v3.Cluster.typed_extension_protocol_options" &&
      site.map_key != kHttpProtocolOptionsType) {
    return absl::InvalidArgumentError(
        atPath(path, absl::StrCat("unsupported protocol options key '", site.map_key,
                                  "' (turnout supports: ", kHttpProtocolOptionsType, ")")));
  }
  if (ok) return absl::OkStatus();
  std::string supported =
      allowed.empty()
          ? std::string("no extension at this position")
          : absl::StrJoin(allowed, ", ", [](std::string* out, absl::string_view t) {
              absl::StrAppend(out, kTypeUrlPrefix, t);
            });
  if (type_url.empty()) {
    return absl::InvalidArgumentError(
        atPath(path, absl::StrCat("missing '@type' (turnout supports: ", supported, ")")));
  }
  return absl::InvalidArgumentError(atPath(
      path, absl::StrCat("unsupported extension type '", type_url, "' (turnout supports: ",
                         supported, ")")));
}

absl::Status validateExtensions(const google::protobuf::Message& message, absl::string_view path) {
  return walk(message, nullptr, path);
}

absl::string_view extensionFactoryName(absl::string_view type_name) {
  auto it = factoryNames().find(type_name);
  return it == factoryNames().end() ? type_name : it->second;
}

}  // namespace turnout::config
