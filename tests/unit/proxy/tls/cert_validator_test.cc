#include <catch2/catch.hpp>

#include "proxy/tls/cert_validator.h"

namespace turnout::proxy::tls {
namespace {

TEST_CASE("DNS SAN matching follows Envoy's wildcard rule", "[tls][san]") {
  CHECK(dnsNameMatch("api.example.com", "api.example.com"));
  CHECK(dnsNameMatch("API.example.com", "api.EXAMPLE.com"));
  CHECK(dnsNameMatch("api.example.com", "*.example.com"));
  CHECK_FALSE(dnsNameMatch("a.api.example.com", "*.example.com"));  // one label only
  CHECK_FALSE(dnsNameMatch("example.com", "*.example.com"));
  CHECK_FALSE(dnsNameMatch("api.example.com", "*.other.com"));
  CHECK_FALSE(dnsNameMatch("api.example.com", "api.example.co"));
}

}  // namespace
}  // namespace turnout::proxy::tls
