// Feeds arbitrary bytes to the baggage parser and to extractRoutingKey. The
// input is split on '\n' into `baggage` header lines. Invariants:
// - nothing crashes, throws or reads out of bounds (ASan/UBSan);
// - a returned key matches [A-Za-z0-9._-]{1,max};
// - a key taken from baggage is a real member, re-checked by a naive parser,
//   and the header is within the limits;
// - parseBaggage and findBaggageMember agree;
// - appendBaggageMember appends only to a well-formed header without the
//   member, and its result is well-formed, within the limits, and has the
//   old members in order followed by the new one.
#include <cstddef>
#include <cstdint>
#include <cctype>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "routing/baggage.h"
#include "routing/routing_key.h"

namespace {

using namespace turnout::routing;

void check(bool ok) {
  if (!ok) std::abort();
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  while (true) {
    const std::size_t i = s.find(sep);
    out.push_back(s.substr(0, i));
    if (i == std::string_view::npos) return out;
    s.remove_prefix(i + 1);
  }
}

bool naiveDecode(std::string_view raw, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] != '%') {
      out += raw[i];
      continue;
    }
    if (i + 2 >= raw.size()) return false;
    const std::string hex(raw.substr(i + 1, 2));
    if (!std::isxdigit(static_cast<unsigned char>(hex[0])) ||
        !std::isxdigit(static_cast<unsigned char>(hex[1]))) {
      return false;
    }
    out += static_cast<char>(std::strtol(hex.c_str(), nullptr, 16));
    i += 2;
  }
  return true;
}

// Independent of baggage.cc: join, split on ",", ";" and the first "=".
void checkIsRealMember(const std::vector<std::string_view>& lines, std::string_view name,
                       std::string_view value) {
  std::string joined;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) joined += ',';
    joined += lines[i];
  }
  check(joined.size() <= kMaxBaggageBytes);
  std::size_t members = 0;
  std::size_t matches = 0;
  std::string decoded;
  for (std::string_view item : split(joined, ',')) {
    if (trim(item).empty()) continue;
    ++members;
    const std::string_view head = split(item, ';')[0];
    const std::size_t eq = head.find('=');
    check(eq != std::string_view::npos);
    if (trim(head.substr(0, eq)) != name) continue;
    ++matches;
    check(naiveDecode(trim(head.substr(eq + 1)), decoded));
    check(decoded == value);
  }
  check(matches >= 1);
  check(members <= kMaxBaggageMembers);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const std::vector<std::string_view> lines = split(input, '\n');

  std::vector<BaggageMember> members;
  const BaggageError parse_error = parseBaggage(lines, members);

  std::string scratch;
  for (std::string_view name : {"turnout-routing-key", "sd-routing-key", "k"}) {
    const BaggageLookup r = findBaggageMember(lines, name, scratch);
    if (r.error != BaggageError::kNone) check(!r.found && r.value.empty());
    if (parse_error != BaggageError::kNone) {
      check(!r.found);
      check(r.error == parse_error);
      continue;
    }
    bool any = false;
    for (const BaggageMember& m : members) any = any || m.key == name;
    check(r.found || r.error != BaggageError::kNone || !any);
    if (r.found) {
      const std::string value(r.value);
      checkIsRealMember(lines, name, value);
      std::string decoded;
      for (const BaggageMember& m : members) {
        if (m.key != name) continue;
        check(decodeBaggageValue(m.raw_value, decoded));
        check(decoded == value);
      }
    }
  }

  // Through the routing API, with a tracestate fallback behind baggage.
  std::vector<HeaderEntry> headers;
  for (std::string_view line : lines) headers.push_back({"baggage", line});
  headers.push_back({"tracestate", "turnout=fallback"});
  const RequestView view("GET", "a", "/", headers);
  const RoutingKeyConfig config = RoutingKeyConfig::defaults();
  const KeyExtraction k = extractRoutingKey(view, config, scratch);
  check(k.found());
  check(isValidRoutingKey(k.key, config.max_key_length));
  if (k.source->kind == KeySourceKind::kBaggage) {
    checkIsRealMember(lines, k.source->name, k.key);
  } else {
    check(k.source->kind == KeySourceKind::kTracestate && k.key == "fallback");
    std::string s2;
    for (std::string_view name : {"turnout-routing-key", "sd-routing-key"}) {
      const BaggageLookup r = findBaggageMember(lines, name, s2);
      check(!r.found || !isValidRoutingKey(r.value, config.max_key_length));
    }
  }
  // Appending the key a recovered request gets.
  std::string appended;
  const BaggageAppend a = appendBaggageMember(lines, "turnout-routing-key", "feat-x", appended);
  const BaggageLookup before = findBaggageMember(lines, "turnout-routing-key", scratch);
  if (a == BaggageAppend::kAppended) {
    check(parse_error == BaggageError::kNone);
    check(!before.found);
    check(appended.size() <= kMaxBaggageBytes);
    const std::vector<std::string_view> after_lines{appended};
    std::vector<BaggageMember> after;
    check(parseBaggage(after_lines, after) == BaggageError::kNone);
    check(after.size() == members.size() + 1);
    for (std::size_t i = 0; i < members.size(); ++i) {
      check(after[i].key == members[i].key);
      check(after[i].raw_value == members[i].raw_value);
      check(after[i].properties == members[i].properties);
    }
    check(after.back().key == "turnout-routing-key" && after.back().raw_value == "feat-x");
  } else if (a == BaggageAppend::kMalformed) {
    check(parse_error == BaggageError::kMalformed || parse_error == BaggageError::kBadPercentEncoding);
  } else if (a == BaggageAppend::kAlreadyPresent) {
    check(parse_error == BaggageError::kNone);
  }
  return 0;
}
