// Feeds arbitrary bytes to the traceparent parser, and what it accepts to the
// trace-key table. Invariants:
// - nothing crashes, throws or reads out of bounds (ASan/UBSan);
// - an accepted value is OWS, then the fields re-printed in lowercase hex
//   exactly as they were sent, then (for a version other than 00 only) the
//   end or "-" and anything, then OWS; the version is not ff and neither id
//   is zero; a naive check of every character agrees;
// - the re-printed version-00 form of an accepted value parses to the same
//   fields;
// - a key remembered for an accepted trace id is recalled unchanged, and not
//   for another trace id.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "routing/trace_key_table.h"
#include "routing/traceparent.h"

namespace {

using namespace turnout::routing;

void check(bool ok) {
  if (!ok) std::abort();
}

std::string hex(std::uint64_t v, int digits) {
  std::string out(static_cast<std::size_t>(digits), '0');
  for (int i = digits - 1; i >= 0; --i) {
    out[static_cast<std::size_t>(i)] = "0123456789abcdef"[v & 0xf];
    v >>= 4;
  }
  return out;
}

std::string print(const Traceparent& t, std::uint8_t version) {
  return hex(version, 2) + "-" + hex(t.trace_id.hi, 16) + hex(t.trace_id.lo, 16) + "-" +
         hex(t.parent_id, 16) + "-" + hex(t.flags, 2);
}

bool isOws(char c) { return c == ' ' || c == '\t'; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const TraceparentParse p = parseTraceparent(input);
  if (!p.ok()) {
    check(p.error != TraceparentError::kMissing && p.error != TraceparentError::kRepeated);
    return 0;
  }
  const Traceparent& t = p.value;
  check(t.version != 0xff);
  check(!t.trace_id.isZero());
  check(t.parent_id != 0);

  std::string_view s = input;
  while (!s.empty() && isOws(s.front())) s.remove_prefix(1);
  while (!s.empty() && isOws(s.back())) s.remove_suffix(1);
  const std::string printed = print(t, t.version);
  check(s.size() >= printed.size());
  check(s.substr(0, printed.size()) == printed);
  if (t.version == 0) {
    check(s.size() == printed.size());
  } else {
    check(s.size() == printed.size() || s[printed.size()] == '-');
  }

  const TraceparentParse again = parseTraceparent(print(t, 0));
  check(again.ok());
  check(again.value.trace_id == t.trace_id);
  check(again.value.parent_id == t.parent_id);
  check(again.value.flags == t.flags);

  // The table round-trips a key derived from the input for this trace only.
  static TraceKeyTable table(16);
  std::string key(s.substr(0, std::min<std::size_t>(s.size(), kMaxRememberedKeyLength)));
  const RememberResult r = table.remember(t.trace_id, key, 0, 100);
  check(r != RememberResult::kKeyTooLong && r != RememberResult::kInvalid &&
        r != RememberResult::kBusy);
  RememberedKey out;
  check(table.recall(t.trace_id, 1, 0, out));
  check(out.view() == key);
  check(!table.recall(t.trace_id, 100, 0, out));
  TraceId other = t.trace_id;
  other.lo ^= 1;
  if (table.recall(other, 1, 0, out)) {
    // Only a key an earlier input stored for `other` itself can be there, and
    // every stored key is an accepted value naming its own trace id.
    check(out.view().size() >= 55);
    check(out.view().substr(3, 32) == hex(other.hi, 16) + hex(other.lo, 16));
  }
  return 0;
}
