#include "proxy/tls/server_name_matcher.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "proxy/tls/tls_field_path.h"

namespace turnout::proxy::tls {

absl::StatusOr<ServerNameMatcher> ServerNameMatcher::create(
    const std::vector<std::vector<std::string>>& server_names, std::string_view field_path) {
  ServerNameMatcher m;
  for (size_t i = 0; i < server_names.size(); ++i) {
    const std::string chain = indexPath(field_path, i);
    const std::string names_path =
        fieldPath(fieldPath(chain, "filter_chain_match"), "server_names");
    if (server_names[i].empty()) {
      if (m.catch_all_) {
        return absl::InvalidArgumentError(atPath(
            chain,
            absl::StrCat("has the same (empty) server_names as filter chain ", *m.catch_all_)));
      }
      m.catch_all_ = i;
      continue;
    }
    for (size_t j = 0; j < server_names[i].size(); ++j) {
      const std::string path = indexPath(names_path, j);
      std::string name = absl::AsciiStrToLower(server_names[i][j]);
      const bool wildcard = name.size() > 2 && name[0] == '*' && name[1] == '.';
      const std::string_view rest =
          wildcard ? std::string_view(name).substr(1) : std::string_view(name);
      if (name.empty() || rest.find('*') != std::string_view::npos || rest == ".") {
        return absl::InvalidArgumentError(
            atPath(path, absl::StrCat("'", server_names[i][j],
                                      "' is not a server name or a '*.suffix' wildcard")));
      }
      auto& map = wildcard ? m.wildcard_ : m.exact_;
      auto [it, inserted] = map.try_emplace(std::string(rest), i);
      if (!inserted && it->second != i) {
        return absl::InvalidArgumentError(
            atPath(path, absl::StrCat("'", server_names[i][j],
                                      "' is already matched by filter chain ", it->second)));
      }
    }
  }
  return m;
}

std::optional<size_t> ServerNameMatcher::select(std::string_view sni) const {
  if (!sni.empty()) {
    const std::string name = absl::AsciiStrToLower(asAbsl(sni));
    if (auto it = exact_.find(name); it != exact_.end()) return it->second;
    // ".b.example.com", then ".example.com", then ".com": longest first.
    for (size_t pos = name.find('.', 1); pos != std::string::npos && pos + 1 < name.size();
         pos = name.find('.', pos + 1)) {
      if (auto it = wildcard_.find(absl::string_view(name).substr(pos)); it != wildcard_.end()) {
        return it->second;
      }
    }
  }
  return catch_all_;
}

}  // namespace turnout::proxy::tls
