#pragma once

#include "absl/strings/string_view.h"
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"

namespace turnout::config {

// The extensions turnout implements, chosen by `typed_config` type URL whatever the
// extension's `name` says (Envoy >= 1.22 behaviour). Every Any in a config is checked
// against the allowlist of its position; anything else is rejected with the field path
// and the type URL, never ignored.
//
// Stateless; safe to call from any thread.

inline constexpr absl::string_view kTypeUrlPrefix = "type.googleapis.com/";

// Message full names of the supported extensions.
inline constexpr absl::string_view kHttpConnectionManagerType =
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
inline constexpr absl::string_view kTcpProxyType =
    "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy";
inline constexpr absl::string_view kRouterType = "envoy.extensions.filters.http.router.v3.Router";
inline constexpr absl::string_view kHealthCheckType =
    "envoy.extensions.filters.http.health_check.v3.HealthCheck";
inline constexpr absl::string_view kGrpcStatsType =
    "envoy.extensions.filters.http.grpc_stats.v3.FilterConfig";
inline constexpr absl::string_view kGrpcWebType =
    "envoy.extensions.filters.http.grpc_web.v3.GrpcWeb";
inline constexpr absl::string_view kCorsType = "envoy.extensions.filters.http.cors.v3.Cors";
// The CORS filter's per-route policy (typed_per_filter_config).
inline constexpr absl::string_view kCorsPolicyType =
    "envoy.extensions.filters.http.cors.v3.CorsPolicy";
inline constexpr absl::string_view kRoutingKeyType =
    "turnout.extensions.filters.http.routing_key.v3.RoutingKey";
inline constexpr absl::string_view kUpstreamTlsContextType =
    "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext";
inline constexpr absl::string_view kDownstreamTlsContextType =
    "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext";
inline constexpr absl::string_view kRawBufferType =
    "envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer";
inline constexpr absl::string_view kHttpProtocolOptionsType =
    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

// Where an Any sits. `any_field` is the Any (or map<string, Any>) field itself;
// `holder_field` is the field through which the message containing `any_field` was
// reached (null at the root); `map_key` is the entry key for map<string, Any> fields.
struct ExtensionSite {
  const google::protobuf::FieldDescriptor* any_field = nullptr;
  const google::protobuf::FieldDescriptor* holder_field = nullptr;
  absl::string_view map_key;
};

// Message full names accepted at `site` (empty: no extension is supported there).
std::vector<absl::string_view> supportedExtensionTypes(const ExtensionSite& site);

// OK when `type_url` may appear at `site`; otherwise
// `<path>: unsupported extension type '<url>' (turnout supports: ...)`.
// `path` names the Any field (or map entry).
absl::Status checkExtensionType(const ExtensionSite& site, absl::string_view type_url,
                                absl::string_view path);

// Walks a parsed message (any input format) and checks every set Any against its
// position's allowlist, that filters carry a typed_config, and that each HTTP filter
// chain ends with the router and has it nowhere else. Recurses into Any payloads.
absl::Status validateExtensions(const google::protobuf::Message& message,
                                absl::string_view path = "");

// The Envoy factory name of a supported extension type (e.g. `envoy.filters.http.router`),
// used in messages; the type name itself if unknown.
absl::string_view extensionFactoryName(absl::string_view type_name);

}  // namespace turnout::config
