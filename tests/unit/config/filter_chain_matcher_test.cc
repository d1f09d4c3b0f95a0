#include "config/snapshot/filter_chain_matcher.h"

#include <catch2/catch.hpp>

#include <functional>

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

// --- addresses and ports (sidecar capture listeners) --------------------------------

using Cidr = FilterChainConfig::CidrRange;

// Chains built field by field: each `set` fills one chain's rules.
FilterChainMatcher buildChains(std::vector<std::function<void(FilterChainConfig&)>> sets) {
  std::vector<FilterChainConfig> out;
  for (size_t i = 0; i < sets.size(); ++i) {
    FilterChainConfig c;
    c.path = absl::StrCat("listener.filter_chains[", i, "]");
    sets[i](c);
    out.push_back(std::move(c));
  }
  auto m = FilterChainMatcher::create(out);
  REQUIRE(m.status().ToString() == "OK");
  return *std::move(m);
}

std::string chainsError(std::vector<std::function<void(FilterChainConfig&)>> sets) {
  std::vector<FilterChainConfig> out;
  for (size_t i = 0; i < sets.size(); ++i) {
    FilterChainConfig c;
    c.path = absl::StrCat("listener.filter_chains[", i, "]");
    sets[i](c);
    out.push_back(std::move(c));
  }
  return std::string(FilterChainMatcher::create(out).status().message());
}

MatchAddress addr(std::string_view ip, uint16_t port) {
  auto a = MatchAddress::parse(ip, port);
  REQUIRE(a.has_value());
  return *a;
}

// A plaintext connection from `from` to `to` (the restored original destination).
std::optional<size_t> conn(const FilterChainMatcher& m, MatchAddress to,
                           MatchAddress from = MatchAddress::parse("10.9.9.9", 40000).value()) {
  return m.select({{}, "raw_buffer", {}, to, from});
}

TEST_CASE("destination_port picks the chain for the original destination's port",
          "[config][capture]") {
  // Istio's virtualInbound (15006): one chain per application port.
  auto m = buildChains({[](auto& c) { c.destination_port = 8080; },
                        [](auto& c) { c.destination_port = 9090; },
                        [](auto&) {}});
  CHECK_FALSE(m.needsFirstBytes());
  CHECK(conn(m, addr("10.0.0.5", 8080)) == 0u);
  CHECK(conn(m, addr("10.0.0.5", 9090)) == 1u);
  CHECK(conn(m, addr("10.0.0.5", 7070)) == 2u);
  CHECK(conn(m, addr("fd00::5", 9090)) == 1u);
}

TEST_CASE("prefix_ranges takes the longest range holding the destination, then no range",
          "[config][capture]") {
  auto m = buildChains({[](auto& c) { c.prefix_ranges = {Cidr{"10.0.0.0", 8}}; },
                        [](auto& c) { c.prefix_ranges = {Cidr{"10.1.0.0", 16}, Cidr{"192.168.1.7", 32}}; },
                        [](auto& c) { c.prefix_ranges = {Cidr{"fd00::", 64}}; },
                        [](auto&) {}});
  CHECK(conn(m, addr("10.2.3.4", 80)) == 0u);
  CHECK(conn(m, addr("10.1.3.4", 80)) == 1u);
  CHECK(conn(m, addr("192.168.1.7", 80)) == 1u);
  CHECK(conn(m, addr("192.168.1.8", 80)) == 3u);
  CHECK(conn(m, addr("fd00::1:2", 80)) == 2u);
  CHECK(conn(m, addr("fd01::1", 80)) == 3u);
  // Host bits of a configured range do not matter (Envoy masks them).
  auto n = buildChains({[](auto& c) { c.prefix_ranges = {Cidr{"10.1.2.3", 16}}; }});
  CHECK(conn(n, addr("10.1.200.200", 80)) == 0u);
  CHECK_FALSE(conn(n, addr("10.2.0.1", 80)).has_value());
  // A prefix_len of 0 (or unset) holds every address of its family only.
  auto z = buildChains({[](auto& c) { c.prefix_ranges = {Cidr{"0.0.0.0", 0}}; }});
  CHECK(conn(z, addr("203.0.113.9", 80)) == 0u);
  CHECK_FALSE(conn(z, addr("2001:db8::1", 80)).has_value());
}

TEST_CASE("the destination port is matched before the destination address", "[config][capture]") {
  // Envoy's order: a chain for the port wins over a more specific address
  // without one, and a port that has chains never falls back to the others.
  auto m = buildChains({[](auto& c) { c.destination_port = 8080; },
                        [](auto& c) { c.prefix_ranges = {Cidr{"10.0.0.7", 32}}; },
                        [](auto& c) {
                          c.destination_port = 9090;
                          c.prefix_ranges = {Cidr{"10.0.0.0", 24}};
                        }});
  CHECK(conn(m, addr("10.0.0.7", 8080)) == 0u);
  CHECK(conn(m, addr("10.0.0.7", 7070)) == 1u);
  CHECK(conn(m, addr("10.0.0.8", 9090)) == 2u);
  // Port 9090 has a chain, whose range does not hold 10.0.1.1: no chain
  // (the default chain's), even though chain 1 has no port rule.
  CHECK_FALSE(conn(m, addr("10.0.1.1", 9090)).has_value());
  CHECK_FALSE(conn(m, addr("10.0.0.8", 7070)).has_value());
}

TEST_CASE("addresses narrow the chains before server names and protocols", "[config][capture]") {
  auto m = buildChains({[](auto& c) {
                          c.destination_port = 443;
                          c.server_names = {"a.example.com"};
                        },
                        [](auto& c) {
                          c.destination_port = 443;
                          c.transport_protocol = "raw_buffer";
                        },
                        [](auto& c) { c.server_names = {"b.example.com"}; }});
  CHECK(m.needsFirstBytes());
  const MatchAddress from = addr("10.9.9.9", 1234);
  CHECK(m.select({"a.example.com", "tls", {}, addr("10.0.0.1", 443), from}) == 0u);
  CHECK(m.select({"", "raw_buffer", {}, addr("10.0.0.1", 443), from}) == 1u);
  // Port 443's chains are the only candidates: b.example.com has none there.
  CHECK_FALSE(m.select({"b.example.com", "tls", {}, addr("10.0.0.1", 443), from}).has_value());
  CHECK(m.select({"b.example.com", "tls", {}, addr("10.0.0.1", 8443), from}) == 2u);
}

TEST_CASE("plaintext application protocols from http_inspector pick chains", "[config][capture]") {
  auto m = buildChains({[](auto& c) { c.application_protocols = {"http/1.1", "http/1.0"}; },
                        [](auto& c) { c.application_protocols = {"h2c"}; },
                        [](auto&) {}});
  CHECK(m.matchesApplicationProtocols());
  const std::vector<std::string_view> h1{"http/1.1"}, h2c{"h2c"};
  const MatchAddress to = addr("10.0.0.1", 80), from = addr("10.0.0.2", 5000);
  CHECK(m.select({{}, "raw_buffer", h1, to, from}) == 0u);
  CHECK(m.select({{}, "raw_buffer", h2c, to, from}) == 1u);
  CHECK(m.select({{}, "raw_buffer", {}, to, from}) == 2u);
}

TEST_CASE("source rules come last: direct source, source type, source range, source port",
          "[config][capture]") {
  using ST = FilterChainConfig::SourceType;
  auto m = buildChains({[](auto& c) { c.source_prefix_ranges = {Cidr{"10.0.0.0", 8}}; },
                        [](auto& c) {
                          c.source_prefix_ranges = {Cidr{"10.0.0.0", 8}};
                          c.source_ports = {5000, 5001};
                        },
                        [](auto& c) { c.source_type = ST::SameIpOrLoopback; },
                        [](auto&) {}});
  const MatchAddress to = addr("10.0.0.1", 80);
  CHECK(conn(m, to, addr("10.5.5.5", 4000)) == 0u);
  CHECK(conn(m, to, addr("10.5.5.5", 5001)) == 1u);
  CHECK(conn(m, to, addr("127.0.0.1", 5000)) == 2u);
  CHECK(conn(m, to, addr("10.0.0.1", 5000)) == 2u);  // the same IP as the destination
  CHECK(conn(m, to, addr("192.0.2.1", 5000)) == 3u);

  auto e = buildChains({[](auto& c) { c.source_type = ST::SameIpOrLoopback; },
                        [](auto& c) {
                          c.direct_source_prefix_ranges = {Cidr{"::1", 128}};
                          c.source_type = ST::External;
                        }});
  CHECK(conn(e, addr("fd00::1", 80), addr("fd00::1", 1)) == 0u);
  // The direct source is matched before the source type, and never given up.
  CHECK_FALSE(conn(e, addr("::1", 80), addr("::1", 1)).has_value());
  auto f = buildChains({[](auto& c) { c.source_type = ST::External; },
                        [](auto& c) { c.source_type = ST::SameIpOrLoopback; }});
  CHECK(conn(f, addr("::1", 80), addr("::1", 1)) == 1u);
  CHECK(conn(f, addr("fd00::1", 80), addr("fd00::2", 1)) == 0u);
}

TEST_CASE("chains whose address rules overlap are refused like duplicate server names",
          "[config][capture]") {
  CHECK(chainsError({[](auto& c) { c.destination_port = 8080; },
                     [](auto& c) { c.destination_port = 8080; }}) ==
        "listener.filter_chains[1].filter_chain_match.destination_port: multiple filter chains "
        "with the same matching rules are defined: listener.filter_chains[0] matches the same "
        "connections");
  CHECK(chainsError({[](auto& c) { c.prefix_ranges = {Cidr{"10.0.0.0", 8}}; },
                     [](auto& c) { c.prefix_ranges = {Cidr{"10.0.0.0", 16}, Cidr{"10.7.7.7", 8}}; }}) ==
        "listener.filter_chains[1].filter_chain_match.prefix_ranges[1]: multiple filter chains "
        "with the same matching rules are defined: listener.filter_chains[0] matches the same "
        "connections");
  CHECK(chainsError({[](auto& c) { c.source_ports = {1, 2}; },
                     [](auto& c) { c.source_ports = {3, 2}; }}) ==
        "listener.filter_chains[1].filter_chain_match.source_ports[1]: multiple filter chains "
        "with the same matching rules are defined: listener.filter_chains[0] matches the same "
        "connections");
  // Different ports, ranges of different lengths, or one range in each
  // family are no duplicates.
  CHECK(chainsError({[](auto& c) { c.destination_port = 1; },
                     [](auto& c) { c.destination_port = 2; },
                     [](auto& c) { c.prefix_ranges = {Cidr{"10.0.0.0", 8}}; },
                     [](auto& c) { c.prefix_ranges = {Cidr{"10.0.0.0", 9}}; },
                     [](auto& c) { c.prefix_ranges = {Cidr{"::", 0}}; },
                     [](auto&) {}})
            .empty());
}

TEST_CASE("malformed CIDR ranges are refused with their path", "[config][capture]") {
  CHECK(chainsError({[](auto& c) { c.prefix_ranges = {Cidr{"10.0.0.300", 8}}; }}) ==
        "listener.filter_chains[0].filter_chain_match.prefix_ranges[0].address_prefix: malformed "
        "IP address: 10.0.0.300");
  CHECK(chainsError({[](auto& c) { c.source_prefix_ranges = {Cidr{"10.0.0.0", 8}, Cidr{"10.0.0.0", 33}}; }}) ==
        "listener.filter_chains[0].filter_chain_match.source_prefix_ranges[1].prefix_len: 33 is "
        "longer than the 32 bits of 10.0.0.0");
  CHECK(chainsError({[](auto& c) { c.direct_source_prefix_ranges = {Cidr{"fd00::", 129}}; }}) ==
        "listener.filter_chains[0].filter_chain_match.direct_source_prefix_ranges[0].prefix_len: "
        "129 is longer than the 128 bits of fd00::");
  CHECK_FALSE(chainsError({[](auto& c) { c.prefix_ranges = {Cidr{"example.com", 8}}; }}).empty());
}

TEST_CASE("a lone chain without rules takes every connection", "[config][capture]") {
  auto m = buildChains({[](auto&) {}});
  CHECK_FALSE(m.needsFirstBytes());
  CHECK(conn(m, addr("10.0.0.1", 1)) == 0u);
  CHECK(m.select({"x.example.com", "tls", {}, {}, {}}) == 0u);
  auto none = buildChains({});
  CHECK_FALSE(conn(none, addr("10.0.0.1", 1)).has_value());
}

}  // namespace
}  // namespace turnout::config
