#include "proxy/tls/server_name_matcher.h"

#include <catch2/catch.hpp>

#include "proxy/tls/cert_validator.h"

namespace turnout::proxy::tls {
namespace {

ServerNameMatcher build(const std::vector<std::vector<std::string>>& names) {
  auto m = ServerNameMatcher::create(names, "filter_chains");
  REQUIRE(m.status().ToString() == "OK");
  return *std::move(m);
}

TEST_CASE("SNI picks the exact name, then the longest wildcard, then the catch-all chain",
          "[tls][sni]") {
  auto m = build(
      {{"*.example.com"}, {"api.example.com", "API2.example.com"}, {"*.svc.example.com"}, {}});
  CHECK(m.select("api.example.com") == 1u);
  CHECK(m.select("Api2.Example.COM") == 1u);
  CHECK(m.select("www.example.com") == 0u);
  CHECK(m.select("a.b.example.com") == 0u);  // a wildcard covers several labels, as in Envoy
  CHECK(m.select("db.svc.example.com") == 2u);
  CHECK(m.select("x.db.svc.example.com") == 2u);
  CHECK(m.select("example.com") == 3u);  // "*.example.com" needs a label before it
  CHECK(m.select("other.org") == 3u);
  CHECK(m.select("") == 3u);
}

TEST_CASE("without a catch-all chain an unmatched SNI selects nothing", "[tls][sni]") {
  auto m = build({{"a.example.com"}, {"*.b.example.com"}});
  CHECK(m.select("a.example.com") == 0u);
  CHECK(m.select("x.b.example.com") == 1u);
  CHECK_FALSE(m.select("b.example.com").has_value());
  CHECK_FALSE(m.select("").has_value());
  CHECK_FALSE(m.select("example.com.").has_value());
}

TEST_CASE("ambiguous or malformed server names are refused with their path", "[tls][sni]") {
  auto error = [](const std::vector<std::vector<std::string>>& names) {
    return std::string(
        ServerNameMatcher::create(names, "listener.filter_chains").status().message());
  };
  CHECK(error({{"a.example.com"}, {"A.example.com"}}) ==
        "listener.filter_chains[1].filter_chain_match.server_names[0]: 'A.example.com' is already "
        "matched by filter chain 0");
  CHECK(error({{}, {"x"}, {}}) ==
        "listener.filter_chains[2]: has the same (empty) server_names as filter chain 0");
  CHECK(error({{"a.*.com"}}) ==
        "listener.filter_chains[0].filter_chain_match.server_names[0]: 'a.*.com' is not a "
        "server name or a '*.suffix' wildcard");
  CHECK_FALSE(error({{"*"}}).empty());
  CHECK_FALSE(error({{"*foo.com"}}).empty());
  CHECK_FALSE(error({{""}}).empty());
}

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
