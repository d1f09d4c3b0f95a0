#include "config/snapshot/filter_chain_matcher.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <functional>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "config/bootstrap/field_path.h"
#include "config/snapshot/snapshot.h"

namespace turnout::config {
namespace {

using Family = MatchAddress::Family;

absl::string_view view(std::string_view s) { return absl::string_view(s.data(), s.size()); }

absl::Status invalid(absl::string_view path, absl::string_view what) {
  return absl::InvalidArgumentError(atPath(path, what));
}

size_t byteCount(Family f) { return f == Family::V4 ? 4 : f == Family::V6 ? 16 : 0; }

// `bytes` with every bit after the first `length` cleared.
std::array<uint8_t, 16> masked(const std::array<uint8_t, 16>& bytes, Family f, uint8_t length) {
  std::array<uint8_t, 16> out{};
  const size_t n = byteCount(f);
  for (size_t i = 0; i < n; ++i) {
    const int bits = static_cast<int>(length) - static_cast<int>(i * 8);
    if (bits >= 8) {
      out[i] = bytes[i];
    } else if (bits > 0) {
      out[i] = static_cast<uint8_t>(bytes[i] & (0xff << (8 - bits)));
    }
  }
  return out;
}

// A chain's rules at one level: the values it names (none: the catch-all)
// and, while it is being inserted, which of them is current (for the path
// of a duplicate).
template <class T>
struct Rule {
  std::vector<T> values;
  size_t current = 0;
};

}  // namespace

// --- MatchAddress -----------------------------------------------------------------

MatchAddress MatchAddress::v4(std::array<uint8_t, 4> b, uint16_t port) {
  MatchAddress a;
  a.family = Family::V4;
  std::copy(b.begin(), b.end(), a.bytes.begin());
  a.port = port;
  return a;
}

MatchAddress MatchAddress::v6(const std::array<uint8_t, 16>& b, uint16_t port) {
  MatchAddress a;
  a.family = Family::V6;
  a.bytes = b;
  a.port = port;
  return a;
}

std::optional<MatchAddress> MatchAddress::parse(std::string_view ip, uint16_t port) {
  const std::string s(ip);
  MatchAddress a;
  a.port = port;
  if (inet_pton(AF_INET, s.c_str(), a.bytes.data()) == 1) {
    a.family = Family::V4;
    return a;
  }
  if (inet_pton(AF_INET6, s.c_str(), a.bytes.data()) == 1) {
    a.family = Family::V6;
    return a;
  }
  return std::nullopt;
}

bool MatchAddress::isLoopback() const {
  if (family == Family::V4) return bytes[0] == 127;
  if (family == Family::V6) {
    static constexpr std::array<uint8_t, 16> kLoopback{0, 0, 0, 0, 0, 0, 0, 0,
                                                       0, 0, 0, 0, 0, 0, 0, 1};
    return bytes == kLoopback;
  }
  return false;
}

bool MatchAddress::sameIp(const MatchAddress& o) const {
  return family == o.family && family != Family::None &&
         std::memcmp(bytes.data(), o.bytes.data(), byteCount(family)) == 0;
}

// --- the levels --------------------------------------------------------------------

template <class Next>
const Next* FilterChainMatcher::PortLevel<Next>::find(uint32_t port) const {
  if (auto it = by_port.find(port); it != by_port.end()) return &it->second;
  if (auto it = by_port.find(0); it != by_port.end()) return &it->second;
  return nullptr;
}

template <class Next>
const Next* FilterChainMatcher::IpLevel<Next>::find(const MatchAddress& a) const {
  if (a.family != Family::None) {
    const auto& lengths = a.family == Family::V4 ? v4_lengths : v6_lengths;
    for (uint8_t len : lengths) {
      Cidr key{a.family, len, masked(a.bytes, a.family, len)};
      if (auto it = by_range.find(key); it != by_range.end()) return &it->second;
    }
  }
  if (auto it = by_range.find(Cidr{}); it != by_range.end()) return &it->second;
  return nullptr;
}

template <class Next>
const Next* FilterChainMatcher::ServerNameLevel<Next>::find(std::string_view sni) const {
  const bool names_only_catch_all =
      wildcard.empty() && (exact.empty() || (exact.size() == 1 && exact.contains(absl::string_view())));
  if (!sni.empty() && !names_only_catch_all) {
    const std::string name = absl::AsciiStrToLower(view(sni));
    if (auto it = exact.find(name); it != exact.end()) return &it->second;
    // ".b.example.com", then ".example.com", then ".com": longest first.
    for (size_t pos = name.find('.', 1); pos != std::string::npos && pos + 1 < name.size();
         pos = name.find('.', pos + 1)) {
      if (auto it = wildcard.find(absl::string_view(name).substr(pos)); it != wildcard.end()) {
        return &it->second;
      }
    }
  }
  if (auto it = exact.find(absl::string_view()); it != exact.end()) return &it->second;
  return nullptr;
}

template <class Next>
const Next* FilterChainMatcher::StringLevel<Next>::find(std::string_view value) const {
  if (auto it = by_value.find(view(value)); it != by_value.end()) return &it->second;
  if (auto it = by_value.find(absl::string_view()); it != by_value.end()) return &it->second;
  return nullptr;
}

template <class Next>
const Next* FilterChainMatcher::StringLevel<Next>::findFirst(
    std::span<const std::string_view> offered) const {
  if (by_value.size() > 1 || !by_value.contains(absl::string_view())) {
    for (std::string_view p : offered) {
      if (p.empty()) continue;
      if (auto it = by_value.find(view(p)); it != by_value.end()) return &it->second;
    }
  }
  if (auto it = by_value.find(absl::string_view()); it != by_value.end()) return &it->second;
  return nullptr;
}

template <class Next>
const Next* FilterChainMatcher::SourceTypeLevel<Next>::find(const MatchAddress& local,
                                                            const MatchAddress& remote) const {
  const auto& any = by_type[0];
  const auto& same = by_type[1];
  const auto& external = by_type[2];
  if (same || external) {
    // Envoy's Utility::isSameIpOrLoopback.
    const bool is_local = remote.isLoopback() || remote.sameIp(local);
    if (is_local && same) return &*same;
    if (!is_local && external) return &*external;
  }
  return any ? &*any : nullptr;
}

// --- building ----------------------------------------------------------------------

absl::StatusOr<FilterChainMatcher> FilterChainMatcher::create(
    const std::vector<FilterChainConfig>& chains) {
  FilterChainMatcher m;
  for (size_t i = 0; i < chains.size(); ++i) {
    const FilterChainConfig& c = chains[i];
    const std::string match_path = fieldPath(c.path, "filter_chain_match");
    const std::string names_path = fieldPath(match_path, "server_names");
    const std::string alpn_path = fieldPath(match_path, "application_protocols");
    const std::string transport_path = fieldPath(match_path, "transport_protocol");

    if (!c.transport_protocol.empty() && c.transport_protocol != "tls" &&
        c.transport_protocol != "raw_buffer") {
      return invalid(transport_path,
                     absl::StrCat("'", c.transport_protocol,
                                  "' is never detected by turnout; use 'tls' or 'raw_buffer' (the "
                                  "tls_inspector's values)"));
    }
    for (size_t k = 0; k < c.application_protocols.size(); ++k) {
      if (c.application_protocols[k].empty()) {
        return invalid(indexPath(alpn_path, k), "an application protocol cannot be empty");
      }
    }
    m.needs_first_bytes_ |= !c.server_names.empty() || !c.transport_protocol.empty() ||
                            !c.application_protocols.empty();
    m.matches_alpn_ |= !c.application_protocols.empty();

    // Server names: exact names lowercase, wildcards as their ".suffix".
    struct Name {
      std::string key;
      bool wildcard;
    };
    Rule<Name> names;
    for (size_t j = 0; j < c.server_names.size(); ++j) {
      const std::string name = absl::AsciiStrToLower(c.server_names[j]);
      const bool wildcard = name.size() > 2 && name[0] == '*' && name[1] == '.';
      const absl::string_view rest =
          wildcard ? absl::string_view(name).substr(1) : absl::string_view(name);
      if (name.empty() || rest.find('*') != absl::string_view::npos || rest == ".") {
        return invalid(indexPath(names_path, j),
                       absl::StrCat("'", c.server_names[j],
                                    "' is not a server name or a '*.suffix' wildcard "
                                    "(Envoy: partial wildcards are not supported)"));
      }
      names.values.push_back({std::string(rest), wildcard});
    }

    auto ranges = [&](const std::vector<FilterChainConfig::CidrRange>& in,
                      absl::string_view field) -> absl::StatusOr<Rule<Cidr>> {
      Rule<Cidr> out;
      const std::string path = fieldPath(match_path, field);
      for (size_t k = 0; k < in.size(); ++k) {
        const std::string rpath = indexPath(path, k);
        auto a = MatchAddress::parse(in[k].address_prefix);
        if (!a) {
          return invalid(fieldPath(rpath, "address_prefix"),
                         absl::StrCat("malformed IP address: ", in[k].address_prefix));
        }
        const uint32_t max = a->family == Family::V4 ? 32 : 128;
        if (in[k].prefix_len > max) {
          return invalid(fieldPath(rpath, "prefix_len"),
                         absl::StrCat(in[k].prefix_len, " is longer than the ", max,
                                      " bits of ", in[k].address_prefix));
        }
        const auto len = static_cast<uint8_t>(in[k].prefix_len);
        out.values.push_back(Cidr{a->family, len, masked(a->bytes, a->family, len)});
      }
      return out;
    };
    auto dst_ranges = ranges(c.prefix_ranges, "prefix_ranges");
    if (!dst_ranges.ok()) return dst_ranges.status();
    auto direct_ranges = ranges(c.direct_source_prefix_ranges, "direct_source_prefix_ranges");
    if (!direct_ranges.ok()) return direct_ranges.status();
    auto src_ranges = ranges(c.source_prefix_ranges, "source_prefix_ranges");
    if (!src_ranges.ok()) return src_ranges.status();

    Rule<uint32_t> dst_ports;
    if (c.destination_port) dst_ports.values.push_back(*c.destination_port);
    Rule<std::string> transports;
    if (!c.transport_protocol.empty()) transports.values.push_back(c.transport_protocol);
    Rule<std::string> alpns{c.application_protocols};
    Rule<uint32_t> src_ports{c.source_ports};

    // The path of a duplicate: the second chain's most specific rule.
    auto duplicate = [&](size_t other) {
      std::string path = match_path;
      if (!names.values.empty()) {
        path = indexPath(names_path, names.current);
      } else if (!alpns.values.empty()) {
        path = indexPath(alpn_path, alpns.current);
      } else if (!transports.values.empty()) {
        path = transport_path;
      } else if (!dst_ranges->values.empty()) {
        path = indexPath(fieldPath(match_path, "prefix_ranges"), dst_ranges->current);
      } else if (!dst_ports.values.empty()) {
        path = fieldPath(match_path, "destination_port");
      } else if (!src_ranges->values.empty()) {
        path = indexPath(fieldPath(match_path, "source_prefix_ranges"), src_ranges->current);
      } else if (!src_ports.values.empty()) {
        path = indexPath(fieldPath(match_path, "source_ports"), src_ports.current);
      } else if (!direct_ranges->values.empty()) {
        path = indexPath(fieldPath(match_path, "direct_source_prefix_ranges"),
                         direct_ranges->current);
      } else if (c.source_type != FilterChainConfig::SourceType::Any) {
        path = fieldPath(match_path, "source_type");
      }
      return invalid(path,
                     absl::StrCat("multiple filter chains with the same matching rules are "
                                  "defined: ",
                                  chains[other].path, " matches the same connections"));
    };

    // Each level: every value the chain names, or the catch-all.
    auto eachPort = [](auto& level, Rule<uint32_t>& rule, auto&& next) -> absl::Status {
      if (rule.values.empty()) return next(level.by_port[0]);
      for (rule.current = 0; rule.current < rule.values.size(); ++rule.current) {
        if (auto s = next(level.by_port[rule.values[rule.current]]); !s.ok()) return s;
      }
      return absl::OkStatus();
    };
    auto eachRange = [](auto& level, Rule<Cidr>& rule, auto&& next) -> absl::Status {
      if (rule.values.empty()) return next(level.by_range[Cidr{}]);
      for (rule.current = 0; rule.current < rule.values.size(); ++rule.current) {
        const Cidr& r = rule.values[rule.current];
        auto& lengths = r.family == Family::V4 ? level.v4_lengths : level.v6_lengths;
        if (std::find(lengths.begin(), lengths.end(), r.length) == lengths.end()) {
          lengths.insert(std::upper_bound(lengths.begin(), lengths.end(), r.length,
                                          std::greater<uint8_t>()),
                         r.length);
        }
        if (auto s = next(level.by_range[r]); !s.ok()) return s;
      }
      return absl::OkStatus();
    };
    auto eachString = [](auto& level, Rule<std::string>& rule, auto&& next) -> absl::Status {
      if (rule.values.empty()) return next(level.by_value[std::string()]);
      for (rule.current = 0; rule.current < rule.values.size(); ++rule.current) {
        if (auto s = next(level.by_value[rule.values[rule.current]]); !s.ok()) return s;
      }
      return absl::OkStatus();
    };

    const size_t source_type = static_cast<size_t>(c.source_type);
    auto leaf = [&](SourcePorts& ports) -> absl::Status {
      return eachPort(ports, src_ports, [&](size_t& chain) -> absl::Status {
        // A fresh slot holds 0 (by_port[] value-initialises it): store i + 1.
        if (chain == 0 || chain == i + 1) {
          chain = i + 1;
          return absl::OkStatus();
        }
        return duplicate(chain - 1);
      });
    };
    auto status = eachPort(m.root_, dst_ports, [&](DestinationIps& dst_ips) {
      return eachRange(dst_ips, *dst_ranges, [&](ServerNames& server_names) -> absl::Status {
        auto transportsOf = [&](Transports& t) {
          return eachString(t, transports, [&](Alpns& a) {
            return eachString(a, alpns, [&](DirectSourceIps& direct) {
              return eachRange(direct, *direct_ranges, [&](SourceTypes& types) {
                auto& slot = types.by_type[source_type];
                if (!slot) slot.emplace();
                return eachRange(*slot, *src_ranges, leaf);
              });
            });
          });
        };
        if (names.values.empty()) return transportsOf(server_names.exact[std::string()]);
        for (names.current = 0; names.current < names.values.size(); ++names.current) {
          const Name& n = names.values[names.current];
          auto& map = n.wildcard ? server_names.wildcard : server_names.exact;
          if (auto s = transportsOf(map[n.key]); !s.ok()) return s;
        }
        return absl::OkStatus();
      });
    });
    if (!status.ok()) return status;
    const bool has_rules = c.destination_port || !c.prefix_ranges.empty() ||
                           !c.server_names.empty() || !c.transport_protocol.empty() ||
                           !c.application_protocols.empty() ||
                           !c.direct_source_prefix_ranges.empty() ||
                           c.source_type != FilterChainConfig::SourceType::Any ||
                           !c.source_prefix_ranges.empty() || !c.source_ports.empty();
    if (chains.size() == 1 && !has_rules) m.only_ = 0;
  }
  // select() never walks the levels for a lone catch-all chain: free them
  // (nine nested one-entry maps, ~1.8 KiB per listener; a sidecar has one
  // such listener per service port).
  if (m.only_) m.root_ = DestinationPorts{};
  return m;
}

// --- selecting ---------------------------------------------------------------------

std::optional<size_t> FilterChainMatcher::select(const FilterChainMatchInput& in) const {
  if (only_) return only_;
  const auto* dst_ips = root_.find(in.local.port);
  if (dst_ips == nullptr) return std::nullopt;
  const auto* names = dst_ips->find(in.local);
  if (names == nullptr) return std::nullopt;
  const auto* transports = names->find(in.server_name);
  if (transports == nullptr) return std::nullopt;
  const auto* alpns = transports->find(in.transport_protocol);
  if (alpns == nullptr) return std::nullopt;
  const auto* direct = alpns->findFirst(in.application_protocols);
  if (direct == nullptr) return std::nullopt;
  const auto* types = direct->find(in.remote);
  if (types == nullptr) return std::nullopt;
  const auto* src_ips = types->find(in.local, in.remote);
  if (src_ips == nullptr) return std::nullopt;
  const auto* src_ports = src_ips->find(in.remote);
  if (src_ports == nullptr) return std::nullopt;
  const size_t* chain = src_ports->find(in.remote.port);
  if (chain == nullptr) return std::nullopt;
  return *chain - 1;
}

}  // namespace turnout::config
