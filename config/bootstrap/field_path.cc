#include "config/bootstrap/field_path.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/escaping.h"

namespace turnout::config {

std::string fieldPath(absl::string_view parent, absl::string_view field) {
  if (parent.empty()) return std::string(field);
  return absl::StrCat(parent, ".", field);
}

std::string indexPath(absl::string_view parent, size_t index) {
  return absl::StrCat(parent, "[", index, "]");
}

std::string keyPath(absl::string_view parent, absl::string_view key) {
  return absl::StrCat(parent, "[\"", absl::CEscape(key), "\"]");
}

std::string atPath(absl::string_view path, absl::string_view message) {
  if (path.empty()) return std::string(message);
  return absl::StrCat(path, ": ", message);
}

}  // namespace turnout::config
