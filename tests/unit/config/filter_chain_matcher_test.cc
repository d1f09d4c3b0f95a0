#include "config/snapshot/filter_chain_matcher.h"

#include <catch2/catch.hpp>

#include "absl/strings/str_cat.h"
#include "config/snapshot/snapshot.h"

// The tables leave out the rules a chain does not set.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace turnout::config {
namespace {

struct Match {
  std::vector<std::string> server_names;
  std::string transport_protocol;
  std::vector<std::string> application_protocols;
};

std::vector<FilterChainConfig> chains(const std::vector<Match>& matches) {
  std::vector<FilterChainConfig> out;
  for (size_t i = 0; i < matches.size(); ++i) {
    FilterChainConfig c;
    c.path = absl::StrCat("listener.filter_chains[", i, "]");
    c.server_names = matches[i].server_names;
    c.transport_protocol = matches[i].transport_protocol;
    c.application_protocols = matches[i].application_protocols;
    out.push_back(std::move(c));
  }
  return out;
}

FilterChainMatcher build(const std::vector<Match>& matches) {
  auto m = FilterChainMatcher::create(chains(matches));
  REQUIRE(m.status().ToString() == "OK");
  return *std::move(m);
}

std::string error(const std::vector<Match>& matches) {
  return std::string(FilterChainMatcher::create(chains(matches)).status().message());
}

std::optional<size_t> tls(const FilterChainMatcher& m, std::string_view sni,
                          std::vector<std::string_view> alpn = {}) {
  return m.select({sni, "tls", alpn});
}

TEST_CASE("SNI picks the exact name, then the longest wildcard, then the catch-all chain",
          "[config][sni]") {
  auto m = build({{{"*.example.com"}},
                  {{"api.example.com", "API2.example.com"}},
                  {{"*.svc.example.com"}},
                  {}});
  CHECK(tls(m, "api.example.com") == 1u);
  CHECK(tls(m, "Api2.Example.COM") == 1u);
  CHECK(tls(m, "www.example.com") == 0u);
  CHECK(tls(m, "a.b.example.com") == 0u);  // a wildcard covers several labels, as in Envoy
  CHECK(tls(m, "db.svc.example.com") == 2u);
  CHECK(tls(m, "x.db.svc.example.com") == 2u);
  CHECK(tls(m, "example.com") == 3u);  // "*.example.com" needs a label before it
  CHECK(tls(m, "other.org") == 3u);
  CHECK(tls(m, "") == 3u);
  CHECK(m.select({"", "raw_buffer", {}}) == 3u);
}

TEST_CASE("without a catch-all chain an unmatched SNI selects nothing", "[config][sni]") {
  auto m = build({{{"a.example.com"}}, {{"*.b.example.com"}}});
  CHECK(tls(m, "a.example.com") == 0u);
  CHECK(tls(m, "x.b.example.com") == 1u);
  CHECK_FALSE(tls(m, "b.example.com").has_value());
  CHECK_FALSE(tls(m, "").has_value());
  CHECK_FALSE(tls(m, "example.com.").has_value());
  CHECK_FALSE(m.select({"", "raw_buffer", {}}).has_value());
}

TEST_CASE("transport_protocol splits TLS from plaintext connections", "[config][sni]") {
  auto m = build({{{}, "tls", {}}, {{}, "raw_buffer", {}}});
  CHECK(tls(m, "anything.example") == 0u);
  CHECK(m.select({"", "raw_buffer", {}}) == 1u);
  // A chain without transport_protocol takes what the specific ones leave.
  auto n = build({{{}, "tls", {}}, {}});
  CHECK(tls(n, "") == 0u);
  CHECK(n.select({"", "raw_buffer", {}}) == 1u);
}

TEST_CASE("application_protocols takes the client's first offered protocol a chain names",
          "[config][sni]") {
  auto m = build({{{}, "", {"h2"}}, {{}, "", {"http/1.1"}}, {}});
  CHECK(tls(m, "", {"h2", "http/1.1"}) == 0u);
  CHECK(tls(m, "", {"http/1.1", "h2"}) == 1u);
  CHECK(tls(m, "", {"spdy/3"}) == 2u);
  CHECK(tls(m, "") == 2u);
}

TEST_CASE("a more specific server name never falls back to a less specific one",
          "[config][sni]") {
  // As Envoy: the exact name's chains are the only candidates, even when
  // their other rules do not match.
  auto m = build({{{"a.example.com"}, "", {"h2"}}, {{"*.example.com"}}, {}});
  CHECK(tls(m, "a.example.com", {"h2"}) == 0u);
  CHECK_FALSE(tls(m, "a.example.com", {"http/1.1"}).has_value());
  CHECK(tls(m, "b.example.com", {"http/1.1"}) == 1u);
}

TEST_CASE("chains with the same matching rules are refused with the path of the second",
          "[config][sni]") {
  CHECK(error({{{"a.example.com"}}, {{"A.example.com"}}}) ==
        "listener.filter_chains[1].filter_chain_match.server_names[0]: multiple filter chains "
        "with the same matching rules are defined: listener.filter_chains[0] matches the same "
        "connections");
  CHECK(error({{}, {{"x"}}, {}}) ==
        "listener.filter_chains[2].filter_chain_match: multiple filter chains with the same "
        "matching rules are defined: listener.filter_chains[0] matches the same connections");
  CHECK(error({{{}, "tls", {}}, {{}, "tls", {}}}) ==
        "listener.filter_chains[1].filter_chain_match.transport_protocol: multiple filter chains "
        "with the same matching rules are defined: listener.filter_chains[0] matches the same "
        "connections");
  CHECK(error({{{}, "", {"h2", "http/1.1"}}, {{}, "", {"http/1.1"}}}) ==
        "listener.filter_chains[1].filter_chain_match.application_protocols[0]: multiple filter "
        "chains with the same matching rules are defined: listener.filter_chains[0] matches the "
        "same connections");
  // The same name with different ALPN, or transport, is no duplicate.
  CHECK(error({{{"a.example.com"}, "", {"h2"}}, {{"a.example.com"}}}).empty());
  CHECK(error({{{}, "tls", {}}, {{}, "raw_buffer", {}}, {}}).empty());
}

TEST_CASE("malformed server names and unknown transport protocols are refused", "[config][sni]") {
  CHECK(error({{{"a.*.com"}}}) ==
        "listener.filter_chains[0].filter_chain_match.server_names[0]: 'a.*.com' is not a "
        "server name or a '*.suffix' wildcard (Envoy: partial wildcards are not supported)");
  CHECK_FALSE(error({{{"*"}}}).empty());
  CHECK_FALSE(error({{{"*foo.com"}}}).empty());
  CHECK_FALSE(error({{{"*."}}}).empty());
  CHECK_FALSE(error({{{""}}}).empty());
  CHECK(error({{{}, "quic", {}}}) ==
        "listener.filter_chains[0].filter_chain_match.transport_protocol: 'quic' is never "
        "detected by turnout; use 'tls' or 'raw_buffer' (the tls_inspector's values)");
  CHECK(error({{{}, "", {""}}}) ==
        "listener.filter_chains[0].filter_chain_match.application_protocols[0]: an application "
        "protocol cannot be empty");
}

}  // namespace
}  // namespace turnout::config
