#include "routing/tracestate.h"

#include <array>

namespace turnout::routing {
namespace {

bool isOws(char c) { return c == ' ' || c == '\t'; }

std::string_view trimOws(std::string_view s) {
  while (!s.empty() && isOws(s.front())) s.remove_prefix(1);
  while (!s.empty() && isOws(s.back())) s.remove_suffix(1);
  return s;
}

bool isLcalpha(char c) { return c >= 'a' && c <= 'z'; }
bool isDigit(char c) { return c >= '0' && c <= '9'; }
bool isKeyChar(char c) {
  return isLcalpha(c) || isDigit(c) || c == '_' || c == '-' || c == '*' || c == '/';
}

// `first` then 0..max_rest keychars.
bool matchesKeyPart(std::string_view s, bool digit_first, std::size_t max_rest) {
  if (s.empty() || s.size() > max_rest + 1) return false;
  if (!isLcalpha(s[0]) && !(digit_first && isDigit(s[0]))) return false;
  for (std::size_t i = 1; i < s.size(); ++i) {
    if (!isKeyChar(s[i])) return false;
  }
  return true;
}

// value = 0*255(chr) nblk-chr; chr = %x20 / nblk-chr;
// nblk-chr = %x21-2B / %x2D-3C / %x3E-7E
bool isValidValue(std::string_view v) {
  if (v.empty() || v.size() > 256 || v.back() == ' ') return false;
  for (char ch : v) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c > 0x7E || c == ',' || c == '=') return false;
  }
  return true;
}

// Checks every line, calling fn(member) for each non-empty member in order.
// Stops at the first error.
template <typename Fn>
TracestateError forEachMember(std::span<const std::string_view> lines, Fn&& fn) {
  std::array<std::string_view, kMaxTracestateMembers> seen;
  std::size_t count = 0;
  for (std::string_view line : lines) {
    while (true) {
      const std::size_t comma = line.find(',');
      const std::string_view item = trimOws(line.substr(0, comma));
      if (!item.empty()) {
        if (count == kMaxTracestateMembers) return TracestateError::kTooManyMembers;
        const std::size_t eq = item.find('=');
        if (eq == std::string_view::npos) return TracestateError::kMalformed;
        const TracestateMember member{item.substr(0, eq), item.substr(eq + 1)};
        if (!isValidTracestateKey(member.key) || !isValidValue(member.value)) {
          return TracestateError::kMalformed;
        }
        for (std::size_t i = 0; i < count; ++i) {
          if (seen[i] == member.key) return TracestateError::kDuplicateKey;
        }
        seen[count++] = member.key;
        fn(member);
      }
      if (comma == std::string_view::npos) break;
      line.remove_prefix(comma + 1);
    }
  }
  return TracestateError::kNone;
}

}  // namespace

std::string_view tracestateErrorName(TracestateError error) {
  switch (error) {
    case TracestateError::kNone: return "none";
    case TracestateError::kMalformed: return "malformed";
    case TracestateError::kTooManyMembers: return "too_many_members";
    case TracestateError::kDuplicateKey: return "duplicate_key";
  }
  return "unknown";
}

bool isValidTracestateKey(std::string_view key) {
  const std::size_t at = key.find('@');
  if (at == std::string_view::npos) return matchesKeyPart(key, /*digit_first=*/false, 255);
  return matchesKeyPart(key.substr(0, at), /*digit_first=*/true, 240) &&
         matchesKeyPart(key.substr(at + 1), /*digit_first=*/false, 13);
}

TracestateError parseTracestate(std::span<const std::string_view> lines,
                                std::vector<TracestateMember>& members) {
  return forEachMember(lines, [&](const TracestateMember& m) { members.push_back(m); });
}

TracestateLookup findTracestateMember(std::span<const std::string_view> lines,
                                      std::string_view key) {
  TracestateLookup result;
  result.error = forEachMember(lines, [&](const TracestateMember& m) {
    if (m.key == key) {
      result.found = true;
      result.value = m.value;
    }
  });
  if (result.error != TracestateError::kNone) {
    result.found = false;
    result.value = {};
  }
  return result;
}

}  // namespace turnout::routing
