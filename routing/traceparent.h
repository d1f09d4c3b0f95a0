#pragma once

#include <cstdint>
#include <string_view>

#include "routing/request_view.h"

namespace turnout::routing {

// W3C Trace Context `traceparent` (https://www.w3.org/TR/trace-context/,
// Level 1, §3.2 and §3.2.4 "Versioning of traceparent"). A pure parser over a
// view: it does not allocate, never throws, and is safe to call concurrently.
//
// Grammar: `version "-" trace-id "-" parent-id "-" trace-flags`, every field
// lowercase hex (HEXDIGLC): version 2, trace-id 32, parent-id 16, flags 2.
// Decisions (each one covered by a test):
// - OWS (SP / HTAB) around the value is ignored; nothing else is trimmed.
// - Uppercase hex anywhere is invalid (the ABNF is HEXDIGLC; the spec's
//   test suite expects such a header to be rejected).
// - Version `ff` is invalid. Version `00` is exactly 55 characters.
// - A higher version is parsed as the spec says: at least 55 characters, the
//   version-00 fields in their places, then either the end of the value or a
//   "-" followed by anything (fields a later version may add, not checked).
// - An all-zero trace-id or parent-id is invalid. Flags are any two hex
//   digits (unknown flag bits are kept, not judged).
// - Several `traceparent` lines in one request are invalid as a whole (the
//   header is not a list; which line is meant cannot be known).

// A 128-bit trace-id, `hi` holding the first 16 hex digits. Never all zero
// once parsed.
struct TraceId {
  std::uint64_t hi = 0;
  std::uint64_t lo = 0;

  bool isZero() const { return (hi | lo) == 0; }
  friend bool operator==(const TraceId&, const TraceId&) = default;
};

enum class TraceparentError : std::uint8_t {
  kNone,
  kMissing,          // no traceparent header (parseTraceparentHeader only)
  kRepeated,         // more than one traceparent line
  kMalformed,        // wrong length, a missing "-", or a non-lowercase-hex field
  kInvalidVersion,   // version ff
  kZeroTraceId,      // trace-id all zeros
  kZeroParentId,     // parent-id all zeros
};

std::string_view traceparentErrorName(TraceparentError error);

struct Traceparent {
  std::uint8_t version = 0;
  TraceId trace_id;
  std::uint64_t parent_id = 0;
  std::uint8_t flags = 0;
};

struct TraceparentParse {
  bool ok() const { return error == TraceparentError::kNone; }

  TraceparentError error = TraceparentError::kMissing;
  // Meaningful only when ok().
  Traceparent value;
};

// Parses one header value.
TraceparentParse parseTraceparent(std::string_view value);

// Parses the request's `traceparent`: kMissing without one, kRepeated with
// several lines, else parseTraceparent of the one line.
TraceparentParse parseTraceparentHeader(const RequestView& request);

}  // namespace turnout::routing
