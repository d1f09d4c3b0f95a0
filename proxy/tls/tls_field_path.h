#pragma once

// config/bootstrap/field_path.h takes absl::string_view, which Debian's
// abseil does not alias to std::string_view; proxy/tls speaks std::string_view.

#include <string>
#include <string_view>

#include "absl/strings/string_view.h"
#include "config/bootstrap/field_path.h"

namespace turnout::proxy::tls {

inline absl::string_view asAbsl(std::string_view s) { return {s.data(), s.size()}; }

inline std::string fieldPath(std::string_view parent, std::string_view field) {
  return config::fieldPath(asAbsl(parent), asAbsl(field));
}
inline std::string indexPath(std::string_view parent, size_t index) {
  return config::indexPath(asAbsl(parent), index);
}
inline std::string atPath(std::string_view path, std::string_view message) {
  return config::atPath(asAbsl(path), asAbsl(message));
}

}  // namespace turnout::proxy::tls
