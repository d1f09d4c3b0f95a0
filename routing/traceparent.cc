#include "routing/traceparent.h"

#include <cstddef>

namespace turnout::routing {
namespace {

// "00-" + 32 + "-" + 16 + "-" + 2.
constexpr std::size_t kVersion00Size = 55;
constexpr std::size_t kTraceIdAt = 3;
constexpr std::size_t kParentIdAt = 36;
constexpr std::size_t kFlagsAt = 53;

// Lowercase hex digit value, or -1.
int hexLc(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// Reads `n` (<= 16) lowercase hex digits at s[at]; false if any is not one.
bool readHex(std::string_view s, std::size_t at, std::size_t n, std::uint64_t& out) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const int d = hexLc(s[at + i]);
    if (d < 0) return false;
    v = (v << 4) | static_cast<std::uint64_t>(d);
  }
  out = v;
  return true;
}

std::string_view trimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

std::string_view traceparentErrorName(TraceparentError error) {
  switch (error) {
    case TraceparentError::kNone: return "none";
    case TraceparentError::kMissing: return "missing";
    case TraceparentError::kRepeated: return "repeated";
    case TraceparentError::kMalformed: return "malformed";
    case TraceparentError::kInvalidVersion: return "invalid_version";
    case TraceparentError::kZeroTraceId: return "zero_trace_id";
    case TraceparentError::kZeroParentId: return "zero_parent_id";
  }
  return "unknown";
}

TraceparentParse parseTraceparent(std::string_view value) {
  TraceparentParse out;
  out.error = TraceparentError::kMalformed;
  const std::string_view s = trimOws(value);
  if (s.size() < kVersion00Size) return out;
  std::uint64_t version = 0;
  if (!readHex(s, 0, 2, version)) return out;
  if (version == 0xff) {
    out.error = TraceparentError::kInvalidVersion;
    return out;
  }
  // Version 00 is exactly its fields; a later version may append "-..." and
  // we read only the fields version 00 defines (§3.2.4).
  if (version == 0 ? s.size() != kVersion00Size
                   : (s.size() > kVersion00Size && s[kVersion00Size] != '-')) {
    return out;
  }
  if (s[2] != '-' || s[kParentIdAt - 1] != '-' || s[kFlagsAt - 1] != '-') return out;
  Traceparent tp;
  std::uint64_t flags = 0;
  if (!readHex(s, kTraceIdAt, 16, tp.trace_id.hi) ||
      !readHex(s, kTraceIdAt + 16, 16, tp.trace_id.lo) ||
      !readHex(s, kParentIdAt, 16, tp.parent_id) || !readHex(s, kFlagsAt, 2, flags)) {
    return out;
  }
  if (tp.trace_id.isZero()) {
    out.error = TraceparentError::kZeroTraceId;
    return out;
  }
  if (tp.parent_id == 0) {
    out.error = TraceparentError::kZeroParentId;
    return out;
  }
  tp.version = static_cast<std::uint8_t>(version);
  tp.flags = static_cast<std::uint8_t>(flags);
  out.value = tp;
  out.error = TraceparentError::kNone;
  return out;
}

TraceparentParse parseTraceparentHeader(const RequestView& request) {
  int count = 0;
  std::string_view line;
  request.forEachValue("traceparent", [&](std::string_view v) {
    if (count++ == 0) line = v;
  });
  if (count == 0) return TraceparentParse{};
  if (count > 1) return TraceparentParse{TraceparentError::kRepeated, {}};
  return parseTraceparent(line);
}

}  // namespace turnout::routing
