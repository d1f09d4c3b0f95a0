#include "routing/path_normalizer.h"

#include <vector>

namespace turnout::routing {
namespace {

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

// Percent-encoding normalisation; false on a malformed escape.
bool normalizeEscapes(std::string_view in, std::string& out) {
  static const char* kHex = "0123456789ABCDEF";
  out.clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out.push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) return false;
    const int hi = hexValue(in[i + 1]), lo = hexValue(in[i + 2]);
    if (hi < 0 || lo < 0) return false;
    const unsigned char c = static_cast<unsigned char>(hi * 16 + lo);
    if (unreserved(c)) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[hi]);
      out.push_back(kHex[lo]);
    }
    i += 2;
  }
  return true;
}

// RFC 3986 §5.2.4 on an absolute path; false if it climbs above the root.
bool removeDotSegments(std::string_view path, std::string& out) {
  std::vector<std::string_view> segments;
  size_t pos = 1;  // path starts with '/'
  bool trailing_slash = false;
  while (pos <= path.size()) {
    size_t next = path.find('/', pos);
    std::string_view seg =
        path.substr(pos, next == std::string_view::npos ? std::string_view::npos : next - pos);
    const bool last = next == std::string_view::npos;
    if (seg == ".") {
      trailing_slash = last;
    } else if (seg == "..") {
      if (segments.empty()) return false;
      segments.pop_back();
      trailing_slash = last;
    } else {
      segments.push_back(seg);
      trailing_slash = false;
    }
    if (last) break;
    pos = next + 1;
  }
  out = "";
  for (std::string_view s : segments) {
    out.push_back('/');
    out.append(s);
  }
  if (out.empty() || trailing_slash) out.push_back('/');
  return true;
}

}  // namespace

std::optional<std::string> normalizePath(std::string_view path, bool normalize,
                                         bool merge_slashes) {
  if (path.empty() || path.front() != '/') {
    if (normalize) return std::nullopt;
    return std::string(path);
  }
  const size_t q = path.find_first_of("?#");
  std::string_view p = path.substr(0, q);
  std::string_view rest = q == std::string_view::npos ? std::string_view() : path.substr(q);
  std::string cur(p);
  if (normalize) {
    std::string escaped;
    if (!normalizeEscapes(cur, escaped)) return std::nullopt;
    std::string dotted;
    if (!removeDotSegments(escaped, dotted)) return std::nullopt;
    cur = std::move(dotted);
  }
  if (merge_slashes) {
    std::string merged;
    merged.reserve(cur.size());
    for (char c : cur) {
      if (c == '/' && !merged.empty() && merged.back() == '/') continue;
      merged.push_back(c);
    }
    cur = std::move(merged);
  }
  cur.append(rest);
  return cur;
}

}  // namespace turnout::routing
