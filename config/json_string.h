#pragma once

#include <string>
#include <string_view>

#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace turnout::config {

// Appends `s` to `out` as a JSON string literal (quotes included), escaping
// what RFC 8259 requires. Used wherever turnout writes JSON by hand (YAML ->
// JSON in the loader, admin /stats?format=json).
inline void appendJsonString(std::string& out, std::string_view s) {
  out.push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          out += absl::StrFormat("\\u%04x", c);
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out.push_back('"');
}

// Debian's abseil has its own string_view type, so both views (and the
// types that convert to either) get an unambiguous overload.
inline void appendJsonString(std::string& out, absl::string_view s) {
  appendJsonString(out, std::string_view(s.data(), s.size()));
}
inline void appendJsonString(std::string& out, const std::string& s) {
  appendJsonString(out, std::string_view(s));
}
inline void appendJsonString(std::string& out, const char* s) {
  appendJsonString(out, std::string_view(s));
}

}  // namespace turnout::config
