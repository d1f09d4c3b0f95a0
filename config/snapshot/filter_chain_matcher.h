#pragma once

// A listener's filter chain selection: Envoy's FilterChainManagerImpl over
// filter_chain_match. Like Envoy, it narrows one field at a time, in this
// order, keeping the most specific value that matches and never
// backtracking:
//   1. destination_port: the connection's local port (the original
//      destination on a capture listener), then the chains without one. A
//      port that some chain names keeps the connection on those chains even
//      when their other rules fail (Envoy returns the default chain then);
//   2. prefix_ranges: the longest range holding the local address, then the
//      chains without ranges;
//   3. server_names: the exact SNI, then the longest wildcard suffix
//      ("*.b.example.com" before "*.example.com"; a wildcard may cover several
//      labels, as in Envoy), then the chains without server_names;
//   4. transport_protocol: the detected one ("tls" or "raw_buffer"), then the
//      chains without one;
//   5. application_protocols: the first protocol the client offers (TLS ALPN,
//      or http_inspector's "http/1.1", "http/1.0", "h2c") that a chain names,
//      then the chains without any;
//   6. direct_source_prefix_ranges: the longest range holding the peer's
//      address (turnout reads no PROXY protocol, so the direct source is the
//      source), then the chains without ranges;
//   7. source_type: SAME_IP_OR_LOOPBACK or EXTERNAL as the connection is,
//      then ANY;
//   8. source_prefix_ranges: the longest range holding the peer's address,
//      then the chains without ranges;
//   9. source_ports: the peer's port, then the chains without source_ports.
// Nothing left means no chain: the listener's default_filter_chain, if any,
// serves the connection (the caller's part).
//
// Built once per listener by SnapshotBuilder (config errors name the field
// path); immutable, select() is safe from any thread and allocates only to
// lowercase an SNI.

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"

namespace turnout::config {

struct FilterChainConfig;

// An IP address and port as filter_chain_match sees them (no Asio here).
struct MatchAddress {
  enum class Family : uint8_t { None, V4, V6 };
  Family family = Family::None;
  std::array<uint8_t, 16> bytes{};  // network order; IPv4 uses the first 4
  uint16_t port = 0;

  static MatchAddress v4(std::array<uint8_t, 4> b, uint16_t port);
  static MatchAddress v6(const std::array<uint8_t, 16>& b, uint16_t port);
  // An IP literal ("10.0.0.1", "::1"); none if it is not one.
  static std::optional<MatchAddress> parse(std::string_view ip, uint16_t port = 0);
  bool isLoopback() const;
  bool sameIp(const MatchAddress& o) const;
};

// What a connection shows before its filter chain is chosen.
struct FilterChainMatchInput {
  std::string_view server_name;         // the ClientHello's SNI; empty when none
  std::string_view transport_protocol;  // "tls" or "raw_buffer"
  // The offered application protocols, in the client's order: a TLS
  // ClientHello's ALPN list, or http_inspector's detected protocol (a view:
  // valid for the select() call).
  std::span<const std::string_view> application_protocols;
  MatchAddress local;   // the connection's local address (restored by original_dst)
  MatchAddress remote;  // the peer's address
};

class FilterChainMatcher {
 public:
  FilterChainMatcher() = default;

  // `chains` are a listener's filter_chains (each FilterChainConfig::path
  // names its chain for errors). Rejects a malformed server name ("*" alone,
  // "a.*.com", "*foo.com"), a transport_protocol other than "tls" or
  // "raw_buffer", an empty application protocol, a malformed CIDR range,
  // and two chains that would match the same connection (Envoy: "multiple
  // filter chains with the same matching rules are defined").
  static absl::StatusOr<FilterChainMatcher> create(const std::vector<FilterChainConfig>& chains);

  // The index into filter_chains of the chain for `input`; none when no
  // chain matches.
  std::optional<size_t> select(const FilterChainMatchInput& input) const;

  // Whether the choice can depend on what the client sends first (a chain
  // matches server_names, transport_protocol or application_protocols).
  // Otherwise select() needs the addresses only and the connection is not
  // read before its chain is chosen.
  bool needsFirstBytes() const { return needs_first_bytes_; }
  // Whether a chain matches application_protocols (what http_inspector
  // detects on plaintext connections).
  bool matchesApplicationProtocols() const { return matches_alpn_; }

 private:
  // A CIDR range (prefix_ranges and friends), its host bits cleared.
  struct Cidr {
    MatchAddress::Family family = MatchAddress::Family::None;  // None: the catch-all
    uint8_t length = 0;
    std::array<uint8_t, 16> bytes{};  // masked to `length` bits

    bool operator==(const Cidr&) const = default;
    template <typename H>
    friend H AbslHashValue(H h, const Cidr& c) {
      return H::combine(std::move(h), c.family, c.length, c.bytes);
    }
  };

  // The levels (see the file comment), outermost first; each maps a value
  // of its field to the next level, with a catch-all entry for the chains
  // that do not set the field.
  template <class Next>
  struct PortLevel {
    absl::flat_hash_map<uint32_t, Next> by_port;  // 0: no port rule
    const Next* find(uint32_t port) const;
  };
  template <class Next>
  struct IpLevel {
    absl::flat_hash_map<Cidr, Next> by_range;  // Cidr{}: no range rule
    std::vector<uint8_t> v4_lengths, v6_lengths;  // present prefix lengths, longest first
    const Next* find(const MatchAddress& a) const;
  };
  template <class Next>
  struct ServerNameLevel {
    absl::flat_hash_map<std::string, Next> exact;     // lowercase; "": no server_names
    absl::flat_hash_map<std::string, Next> wildcard;  // ".example.com" for "*.example.com"
    const Next* find(std::string_view sni) const;
  };
  template <class Next>
  struct StringLevel {
    absl::flat_hash_map<std::string, Next> by_value;  // "": no rule
    const Next* find(std::string_view value) const;
    const Next* findFirst(std::span<const std::string_view> offered) const;
  };
  template <class Next>
  struct SourceTypeLevel {
    // ANY, SAME_IP_OR_LOOPBACK, EXTERNAL (FilterChainMatch.ConnectionSourceType).
    std::array<std::optional<Next>, 3> by_type;
    const Next* find(const MatchAddress& local, const MatchAddress& remote) const;
  };

  using SourcePorts = PortLevel<size_t>;
  using SourceIps = IpLevel<SourcePorts>;
  using SourceTypes = SourceTypeLevel<SourceIps>;
  using DirectSourceIps = IpLevel<SourceTypes>;
  using Alpns = StringLevel<DirectSourceIps>;
  using Transports = StringLevel<Alpns>;
  using ServerNames = ServerNameLevel<Transports>;
  using DestinationIps = IpLevel<ServerNames>;
  using DestinationPorts = PortLevel<DestinationIps>;

  DestinationPorts root_;
  // A listener's one chain without rules: it takes every connection.
  std::optional<size_t> only_;
  bool needs_first_bytes_ = false;
  bool matches_alpn_ = false;
};

}  // namespace turnout::config
