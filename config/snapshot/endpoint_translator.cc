#include "config/snapshot/endpoint_translator.h"

#include <arpa/inet.h>

#include "absl/strings/str_cat.h"
#include "config/bootstrap/field_path.h"

namespace turnout::config {
namespace {

namespace core = envoy::config::core::v3;

absl::Status invalid(absl::string_view path, absl::string_view msg) {
  return absl::InvalidArgumentError(atPath(path, msg));
}

}  // namespace

bool isIpLiteral(const std::string& s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

absl::StatusOr<Address> toAddress(const core::Address& a, const std::string& path,
                                  AddressUse use) {
  Address out;
  switch (a.address_case()) {
    case core::Address::kSocketAddress: {
      const auto& s = a.socket_address();
      out.kind = Address::Kind::Socket;
      out.protocol = s.protocol() == core::SocketAddress::UDP ? Address::Protocol::Udp
                                                              : Address::Protocol::Tcp;
      out.address = s.address();
      out.ipv4_compat = s.ipv4_compat();
      if (out.ipv4_compat) {
        const std::string field = fieldPath(fieldPath(path, "socket_address"), "ipv4_compat");
        if (use != AddressUse::Listener) {
          return invalid(field, "ipv4_compat is supported on listener addresses only");
        }
        unsigned char v4[4];
        if (inet_pton(AF_INET, out.address.c_str(), v4) == 1) {
          return invalid(field, absl::StrCat("ipv4_compat applies to IPv6 addresses; '",
                                             out.address, "' is IPv4"));
        }
      }
      if (s.port_specifier_case() == core::SocketAddress::kNamedPort) {
        return invalid(fieldPath(fieldPath(path, "socket_address"), "named_port"),
                       "named ports are not supported; use port_value");
      }
      if (!s.resolver_name().empty()) {
        return invalid(fieldPath(fieldPath(path, "socket_address"), "resolver_name"),
                       "custom resolvers are not supported");
      }
      out.port = s.port_value();
      return out;
    }
    case core::Address::kPipe:
      out.kind = Address::Kind::Pipe;
      out.address = a.pipe().path();
      return out;
    case core::Address::kEnvoyInternalAddress:
      out.kind = Address::Kind::Internal;
      out.address = a.envoy_internal_address().server_listener_name();
      return out;
    default:
      return invalid(path, "an address is required (socket_address or pipe)");
  }
}

absl::StatusOr<std::vector<LocalityEndpointsConfig>> translateLoadAssignment(
    const envoy::config::endpoint::v3::ClusterLoadAssignment& assignment, const std::string& path,
    ClusterConfig::Type type, size_t* endpoint_count) {
  std::vector<LocalityEndpointsConfig> out;
  size_t count = 0;
  const bool ip_only = type == ClusterConfig::Type::Static || type == ClusterConfig::Type::Eds;
  for (int l = 0; l < assignment.endpoints_size(); ++l) {
    const auto& lle = assignment.endpoints(l);
    const std::string lpath = indexPath(fieldPath(path, "endpoints"), l);
    LocalityEndpointsConfig loc;
    if (const auto& l = lle.locality();
        !l.region().empty() || !l.zone().empty() || !l.sub_zone().empty()) {
      loc.locality = Locality{l.region(), l.zone(), l.sub_zone()};
    }
    loc.priority = lle.priority();
    if (lle.has_load_balancing_weight()) loc.weight = lle.load_balancing_weight().value();
    for (int e = 0; e < lle.lb_endpoints_size(); ++e) {
      const auto& lbe = lle.lb_endpoints(e);
      const std::string epath = indexPath(fieldPath(lpath, "lb_endpoints"), e);
      if (lbe.host_identifier_case() == envoy::config::endpoint::v3::LbEndpoint::kEndpointName) {
        return invalid(fieldPath(epath, "endpoint_name"),
                       "named endpoints are not supported by turnout");
      }
      const std::string apath = fieldPath(fieldPath(epath, "endpoint"), "address");
      auto addr = toAddress(lbe.endpoint().address(), apath);
      if (!addr.ok()) return addr.status();
      if (ip_only && addr->kind == Address::Kind::Socket && !isIpLiteral(addr->address)) {
        return invalid(
            fieldPath(fieldPath(apath, "socket_address"), "address"),
            absl::StrCat("malformed IP address: ", addr->address,
                         type == ClusterConfig::Type::Eds
                             ? " (EDS endpoints take IP addresses)"
                             : " (STATIC clusters take IP addresses; use STRICT_DNS or "
                               "LOGICAL_DNS for host names)"));
      }
      EndpointConfig ep;
      ep.address = *std::move(addr);
      ep.hostname = lbe.endpoint().hostname();
      ep.health_status = static_cast<EndpointConfig::HealthStatus>(lbe.health_status());
      if (lbe.has_load_balancing_weight()) ep.weight = lbe.load_balancing_weight().value();
      loc.endpoints.push_back(std::move(ep));
      ++count;
    }
    out.push_back(std::move(loc));
  }
  if (endpoint_count != nullptr) *endpoint_count = count;
  return out;
}

}  // namespace turnout::config
