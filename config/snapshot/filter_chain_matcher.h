#pragma once

// A listener's filter chain selection (Envoy's FilterChainManagerImpl with
// the fields turnout supports: filter_chain_match.server_names,
// transport_protocol and application_protocols). Like Envoy, it narrows one
// field at a time, the most specific candidate first, and never backtracks:
//   1. server_names: the exact SNI, then the longest wildcard suffix
//      ("*.b.example.com" before "*.example.com"; a wildcard may cover several
//      labels, as in Envoy), then the chains without server_names;
//   2. transport_protocol: the detected one ("tls" or "raw_buffer"), then the
//      chains without one;
//   3. application_protocols: the first ALPN protocol the client offers that
//      a chain names, then the chains without any.
// Nothing left means no chain: the listener's default_filter_chain, if any,
// serves the connection (the caller's part).
//
// Built once per listener by SnapshotBuilder (config errors name the field
// path); immutable, select() is safe from any thread.

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"

namespace turnout::config {

struct FilterChainConfig;

// What a connection shows before its filter chain is chosen.
struct FilterChainMatchInput {
  std::string_view server_name;         // the ClientHello's SNI; empty when none
  std::string_view transport_protocol;  // "tls" or "raw_buffer"
  // The ClientHello's ALPN list, in the client's order (a view: valid for
  // the select() call).
  std::span<const std::string_view> application_protocols;
};

class FilterChainMatcher {
 public:
  FilterChainMatcher() = default;

  // `chains` are a listener's filter_chains (each FilterChainConfig::path
  // names its chain for errors). Rejects a malformed server name ("*" alone,
  // "a.*.com", "*foo.com"), a transport_protocol other than "tls" or
  // "raw_buffer", an empty application protocol, and two chains with the
  // same matching rules (Envoy: "multiple filter chains with the same
  // matching rules are defined").
  static absl::StatusOr<FilterChainMatcher> create(const std::vector<FilterChainConfig>& chains);

  // The index into filter_chains of the chain for `input`; none when no
  // chain matches.
  std::optional<size_t> select(const FilterChainMatchInput& input) const;

 private:
  // application protocol ("" = any) -> chain
  using AlpnMap = absl::flat_hash_map<std::string, size_t>;
  // transport protocol ("" = any) -> ...
  using TransportMap = absl::flat_hash_map<std::string, AlpnMap>;

  std::optional<size_t> selectTransport(const TransportMap& m,
                                        const FilterChainMatchInput& input) const;

  // Lowercase exact names, "" for the chains without server_names.
  absl::flat_hash_map<std::string, TransportMap> exact_;
  // Key: the wildcard without its '*' (".example.com").
  absl::flat_hash_map<std::string, TransportMap> wildcard_;
};

}  // namespace turnout::config
