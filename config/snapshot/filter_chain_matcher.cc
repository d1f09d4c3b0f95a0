#include "config/snapshot/filter_chain_matcher.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "config/bootstrap/field_path.h"
#include "config/snapshot/snapshot.h"

namespace turnout::config {
namespace {

absl::string_view view(std::string_view s) { return absl::string_view(s.data(), s.size()); }

absl::Status invalid(absl::string_view path, absl::string_view what) {
  return absl::InvalidArgumentError(atPath(path, what));
}

}  // namespace

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

    // Each (server name, transport, ALPN) this chain claims; the path names
    // its most specific part for a duplicate.
    struct Key {
      std::string server;  // exact name, ".suffix" for a wildcard, "" for any
      bool wildcard;
      std::string path;
    };
    std::vector<Key> servers;
    if (c.server_names.empty()) servers.push_back({"", false, match_path});
    for (size_t j = 0; j < c.server_names.size(); ++j) {
      const std::string path = indexPath(names_path, j);
      const std::string name = absl::AsciiStrToLower(c.server_names[j]);
      const bool wildcard = name.size() > 2 && name[0] == '*' && name[1] == '.';
      const absl::string_view rest =
          wildcard ? absl::string_view(name).substr(1) : absl::string_view(name);
      if (name.empty() || rest.find('*') != absl::string_view::npos || rest == ".") {
        return invalid(path, absl::StrCat("'", c.server_names[j],
                                          "' is not a server name or a '*.suffix' wildcard "
                                          "(Envoy: partial wildcards are not supported)"));
      }
      servers.push_back({std::string(rest), wildcard, path});
    }
    std::vector<std::string> alpns(c.application_protocols.begin(), c.application_protocols.end());
    if (alpns.empty()) alpns.emplace_back();
    for (const Key& s : servers) {
      TransportMap& transports = (s.wildcard ? m.wildcard_ : m.exact_)[s.server];
      AlpnMap& by_alpn = transports[c.transport_protocol];
      for (size_t k = 0; k < alpns.size(); ++k) {
        auto [it, inserted] = by_alpn.try_emplace(alpns[k], i);
        if (inserted || it->second == i) continue;
        std::string path = s.path;
        if (c.server_names.empty() && !c.transport_protocol.empty()) path = transport_path;
        if (c.server_names.empty() && !c.application_protocols.empty()) {
          path = indexPath(alpn_path, k);
        }
        return invalid(path,
                       absl::StrCat("multiple filter chains with the same matching rules are "
                                    "defined: ",
                                    chains[it->second].path, " matches the same connections"));
      }
    }
  }
  return m;
}

std::optional<size_t> FilterChainMatcher::selectTransport(
    const TransportMap& m, const FilterChainMatchInput& input) const {
  auto t = m.find(view(input.transport_protocol));
  if (t == m.end()) t = m.find(absl::string_view());
  if (t == m.end()) return std::nullopt;
  const AlpnMap& alpn = t->second;
  for (std::string_view p : input.application_protocols) {
    if (p.empty()) continue;
    if (auto it = alpn.find(view(p)); it != alpn.end()) return it->second;
  }
  if (auto it = alpn.find(absl::string_view()); it != alpn.end()) return it->second;
  return std::nullopt;
}

std::optional<size_t> FilterChainMatcher::select(const FilterChainMatchInput& input) const {
  if (!input.server_name.empty()) {
    const std::string name = absl::AsciiStrToLower(view(input.server_name));
    if (auto it = exact_.find(name); it != exact_.end()) return selectTransport(it->second, input);
    // ".b.example.com", then ".example.com", then ".com": longest first.
    for (size_t pos = name.find('.', 1); pos != std::string::npos && pos + 1 < name.size();
         pos = name.find('.', pos + 1)) {
      if (auto it = wildcard_.find(absl::string_view(name).substr(pos)); it != wildcard_.end()) {
        return selectTransport(it->second, input);
      }
    }
  }
  if (auto it = exact_.find(absl::string_view()); it != exact_.end()) {
    return selectTransport(it->second, input);
  }
  return std::nullopt;
}

}  // namespace turnout::config
