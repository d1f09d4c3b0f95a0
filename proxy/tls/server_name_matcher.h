#pragma once

// Filter chain selection by SNI (filter_chain_match.server_names), with
// Envoy's most-specific-match rule (ListenerImpl/FilterChainManagerImpl
// findFilterChainForServerName): an exact name first, then the longest
// wildcard suffix ("*.b.example.com" before "*.example.com"; a wildcard may
// cover several labels, as in Envoy), then a chain with no server_names.
// Names compare case-insensitively. Built once per listener on the main
// thread; select() is pure and safe from any thread.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"

namespace turnout::proxy::tls {

class ServerNameMatcher {
 public:
  // `server_names[i]` is filter_chains[i].filter_chain_match.server_names;
  // `field_path` names filter_chains. Rejects a malformed name ("*" alone,
  // "a.*.com", "*foo.com") and a name two chains claim, or two chains without
  // server names.
  static absl::StatusOr<ServerNameMatcher> create(
      const std::vector<std::vector<std::string>>& server_names, std::string_view field_path);

  // The chain index for the ClientHello's SNI ("" when the client sent none).
  std::optional<size_t> select(std::string_view sni) const;

 private:
  absl::flat_hash_map<std::string, size_t> exact_;
  absl::flat_hash_map<std::string, size_t> wildcard_;  // key: ".example.com"
  std::optional<size_t> catch_all_;
};

}  // namespace turnout::proxy::tls
