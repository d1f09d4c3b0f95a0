#pragma once

#include <cstddef>
#include <span>
#include <string_view>
#include <vector>

namespace turnout::routing {

// W3C Trace Context `tracestate` (https://www.w3.org/TR/trace-context/,
// Level 1 Recommendation) as received in one or more header lines. Pure
// functions over views; nothing here allocates except where a caller-provided
// vector is written. Safe to call concurrently; peer input never throws.
//
// Decisions where the spec leaves room (each one covered by a test):
// - Several header lines are one list, in arrival order (RFC 7230 §3.2.2).
// - Empty and whitespace-only list members are skipped and not counted, as
//   the spec requires ("Empty and whitespace-only list members are allowed").
// - OWS (SP / HTAB) around a list-member is ignored; none is allowed around
//   "=" (the ABNF is `key "=" value`), so `k = v` is malformed, and leading
//   spaces of a value are part of it (`k= v` has value " v").
// - Keys follow the Level 1 grammar: simple-key `lcalpha 0*255(keychar)` or
//   multi-tenant `tenant@system` with tenant `(lcalpha/DIGIT) 0*240(keychar)`
//   and system `lcalpha 0*13(keychar)`, keychar = lcalpha/DIGIT/"_"/"-"/"*"/"/".
// - Values are `0*255(chr) nblk-chr`: 1 to 256 printable ASCII characters
//   other than "," and "=", not ending in a space. An empty value is malformed.
// - "Only one entry per key is allowed": a duplicate key makes the whole
//   header invalid (the trace-context test suite expects such a header to be
//   discarded), as do more than kMaxTracestateMembers members and any
//   malformed member. A header is used all or nothing.
// - The header is read whether or not `traceparent` is present or valid: the
//   router reads a routing hint, it does not continue the trace.

inline constexpr std::size_t kMaxTracestateMembers = 32;

enum class TracestateError {
  kNone,
  kMalformed,       // a list-member does not match the ABNF
  kTooManyMembers,  // more than kMaxTracestateMembers non-empty members
  kDuplicateKey,    // a key appears twice
};

std::string_view tracestateErrorName(TracestateError error);

// One list-member; views point into the header lines.
struct TracestateMember {
  std::string_view key;
  std::string_view value;
};

// True if `key` matches the Level 1 key grammar (simple or multi-tenant).
bool isValidTracestateKey(std::string_view key);

// Parses every line and appends each non-empty list-member to `members` in
// order. On error `members` holds an unspecified prefix and must not be used.
// @param lines the raw values of every `tracestate` header line, in order.
TracestateError parseTracestate(std::span<const std::string_view> lines,
                                std::vector<TracestateMember>& members);

struct TracestateLookup {
  TracestateError error = TracestateError::kNone;
  bool found = false;
  std::string_view value;  // into the header lines; valid while they are
};

// Validates the whole header and returns the value of member `key`. found is
// false when the key is absent or on any error. Never allocates.
TracestateLookup findTracestateMember(std::span<const std::string_view> lines,
                                      std::string_view key);

}  // namespace turnout::routing
