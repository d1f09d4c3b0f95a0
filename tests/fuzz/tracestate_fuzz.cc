// Feeds arbitrary bytes to the tracestate parser and to extractRoutingKey.
// The input is split on '\n' into `tracestate` header lines. Invariants:
// - nothing crashes, throws or reads out of bounds (ASan/UBSan);
// - a returned key matches [A-Za-z0-9._-]{1,max};
// - a key taken from tracestate is the value of the one `turnout` member,
//   re-checked by a naive parser, and the header has at most 32 members;
// - parseTracestate and findTracestateMember agree.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "routing/routing_key.h"
#include "routing/tracestate.h"

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

void checkIsRealMember(const std::vector<std::string_view>& lines, std::string_view name,
                       std::string_view value) {
  std::size_t members = 0;
  std::size_t matches = 0;
  for (std::string_view line : lines) {
    for (std::string_view item : split(line, ',')) {
      item = trim(item);
      if (item.empty()) continue;
      ++members;
      const std::size_t eq = item.find('=');
      check(eq != std::string_view::npos);
      check(item.find('=', eq + 1) == std::string_view::npos);
      if (item.substr(0, eq) != name) continue;
      ++matches;
      check(item.substr(eq + 1) == value);
    }
  }
  check(matches == 1);
  check(members <= kMaxTracestateMembers);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const std::vector<std::string_view> lines = split(input, '\n');

  std::vector<TracestateMember> members;
  const TracestateError parse_error = parseTracestate(lines, members);
  check(parse_error != TracestateError::kNone || members.size() <= kMaxTracestateMembers);

  for (std::string_view name : {"turnout", "acme@turnout", "k"}) {
    const TracestateLookup r = findTracestateMember(lines, name);
    check(r.error == parse_error);
    if (parse_error != TracestateError::kNone) {
      check(!r.found);
      continue;
    }
    std::size_t matches = 0;
    for (const TracestateMember& m : members) {
      check(isValidTracestateKey(m.key));
      if (m.key == name) {
        ++matches;
        check(r.found && r.value == m.value);
      }
    }
    check(matches <= 1);
    check(r.found == (matches == 1));
    if (r.found) checkIsRealMember(lines, name, r.value);
  }

  std::vector<HeaderEntry> headers;
  for (std::string_view line : lines) headers.push_back({"tracestate", line});
  headers.push_back({"sd-routing-key", "fallback"});
  const RequestView view("GET", "a", "/", headers);
  const RoutingKeyConfig config = RoutingKeyConfig::defaults();
  std::string scratch;
  const KeyExtraction k = extractRoutingKey(view, config, scratch);
  check(k.found());
  check(isValidRoutingKey(k.key, config.max_key_length));
  // The tracestate sources of the defaults, in precedence order ("turnout",
  // then Signadot's "sd-routing-key"): the key comes from the first that
  // holds a valid one, else from the fallback header.
  if (k.source->kind == KeySourceKind::kTracestate) {
    checkIsRealMember(lines, k.source->name, k.key);
    if (k.source->name != "turnout") {
      const TracestateLookup r = findTracestateMember(lines, "turnout");
      check(!r.found || !isValidRoutingKey(r.value, config.max_key_length));
    }
  } else {
    check(k.source->kind == KeySourceKind::kHeader && k.key == "fallback");
    for (const char* name : {"turnout", "sd-routing-key"}) {
      const TracestateLookup r = findTracestateMember(lines, name);
      check(!r.found || !isValidRoutingKey(r.value, config.max_key_length));
    }
  }
  return 0;
}
