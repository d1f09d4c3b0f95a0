#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace turnout::routing {

// W3C Baggage (https://www.w3.org/TR/baggage/) as received in one or more
// `baggage` header lines. Pure functions over views: nothing here allocates
// except where a caller-provided std::string or vector is written. Safe to call
// concurrently. Nothing a peer sends can throw or crash these functions.
//
// Decisions where the spec leaves room (each one covered by a test):
// - Several header lines are one list, in arrival order (RFC 7230 §3.2.2); a
//   list-member never spans two lines.
// - Empty and whitespace-only list members (",,", a leading or trailing comma,
//   an empty line) are skipped and not counted. The baggage ABNF has no empty
//   members, but RFC 7230 §7 requires recipients of comma lists to accept
//   them, and trace-context's `tracestate` allows them for the same reason
//   (joining several lines). Skipping one can never change which value a key
//   has.
// - Any other list-member that does not match the ABNF (bad key token, no "=",
//   a byte outside baggage-octet, an empty or bad property) makes the whole
//   header malformed: a parser that skipped it could disagree with another
//   implementation about which members exist.
// - Limits (the spec's minimums, used here as maximums): at most
//   kMaxBaggageMembers non-empty members and kMaxBaggageBytes bytes, counted
//   as the lines joined with "," (sum of line sizes + one per extra line).
//   Over either limit, nothing is looked up.
// - Keys are compared case-sensitively (a token has no case folding in the
//   spec).
// - Percent-escapes are checked only when a value is decoded: "%" is itself a
//   baggage-octet, so an invalid escape makes that member malformed, not the
//   header (the spec lets a system drop a bad entry and keep the rest).
// - Duplicate keys are allowed by the spec ("uniqueness ... is not
//   guaranteed") and implementations disagree on which one wins (first, last,
//   concatenation). A lookup therefore succeeds only if every member with the
//   key decodes to the same value; otherwise it reports kConflictingMembers.

inline constexpr std::size_t kMaxBaggageMembers = 64;
inline constexpr std::size_t kMaxBaggageBytes = 8192;

enum class BaggageError {
  kNone,
  kMalformed,           // a list-member or property does not match the ABNF
  kTooLarge,            // more than kMaxBaggageBytes
  kTooManyMembers,      // more than kMaxBaggageMembers
  kBadPercentEncoding,  // the looked-up value has an invalid %XX escape
  kConflictingMembers,  // the looked-up key appears with different values
};

std::string_view baggageErrorName(BaggageError error);

// One list-member as sent. Views point into the header lines; OWS is trimmed.
struct BaggageMember {
  std::string_view key;
  std::string_view raw_value;   // still percent-encoded
  std::string_view properties;  // text after the first ";" (validated, unparsed); empty if none
};

// Parses every line and appends each non-empty list-member to `members` in
// order. On error `members` holds an unspecified prefix and must not be used.
// Percent-escapes are not checked (see decodeBaggageValue).
// @param lines the raw values of every `baggage` header line, in order.
BaggageError parseBaggage(std::span<const std::string_view> lines,
                          std::vector<BaggageMember>& members);

// Percent-decodes a raw baggage value into `out` (overwritten). Returns false,
// leaving `out` unspecified, if a "%" is not followed by two hex digits.
bool decodeBaggageValue(std::string_view raw, std::string& out);

struct BaggageLookup {
  BaggageError error = BaggageError::kNone;
  bool found = false;
  // The decoded value when found. Points into the header lines if the value
  // needed no decoding, otherwise into the caller's scratch string.
  std::string_view value;
};

// Validates the whole header (ABNF and limits) and returns the value of
// member `key`. found is false when the key is absent or on any error. Does
// not allocate unless the value must be decoded and `scratch` lacks capacity.
// The returned view is valid while the lines' storage and `scratch` are
// unchanged.
BaggageLookup findBaggageMember(std::span<const std::string_view> lines, std::string_view key,
                                std::string& scratch);

enum class BaggageAppend {
  kAppended,
  kMalformed,       // the existing header fails the ABNF: left alone
  kTooLarge,        // the result would exceed kMaxBaggageBytes
  kTooManyMembers,  // the result would exceed kMaxBaggageMembers
  kAlreadyPresent,  // the header already has a member `key` (whatever its value)
};

// Builds into `out` (overwritten; its capacity is reused) the baggage header
// value that is `lines` joined with "," (whitespace-only lines dropped)
// followed by the member `key=value`, if the existing header is well-formed,
// has no member `key`, and the result keeps within the W3C limits. Otherwise
// `out` is unspecified and the reason is returned; the caller then leaves the
// header as it was.
// @param key an RFC 7230 token.
// @param value baggage-octets only (no escaping is done); a routing key is.
BaggageAppend appendBaggageMember(std::span<const std::string_view> lines, std::string_view key,
                                  std::string_view value, std::string& out);

}  // namespace turnout::routing
