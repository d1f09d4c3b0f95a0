#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "routing/request_view.h"

namespace turnout::routing {

// Routing-key extraction: the first configured source that carries a valid
// key wins. Called by RoutingKeyFilter on the worker thread, once per request
// (stage 5 of life_of_a_request); pure, allocation-free on the common path,
// and safe to call concurrently with one scratch string per caller.
//
// Contract:
// - Sources are tried in config order. A source yields a key only if it is
//   well-formed as a whole and its value is a valid key (isValidRoutingKey).
// - A source that is absent, malformed, or carries an invalid key yields
//   nothing and the next source is tried: `baggage`, `tracestate` and a plain
//   header are independent headers, often written by different components,
//   and a broken one (say, baggage from an unrelated tracer over the size
//   limit) must not disable routing carried by another. A malformed source is
//   never partially used, so this cannot produce a key the sender did not put
//   in a source we trust; the first failure is kept in `error` for stats.
// - A repeated plain header yields a key only if all its lines are equal;
//   otherwise kConflictingMembers (the same rule as duplicate baggage keys).

// The largest max_key_length a config may set.
inline constexpr std::size_t kMaxRoutingKeyLength = 1024;

enum class KeySourceKind : std::uint8_t { kBaggage, kTracestate, kHeader };

std::string_view keySourceKindName(KeySourceKind kind);

struct KeySource {
  KeySourceKind kind;
  // Baggage member key (case-sensitive token), tracestate key, or a lowercase
  // header name.
  std::string name;
};

struct RoutingKeyConfig {
  // The defaults, in order: baggage `turnout-routing-key`, baggage
  // `sd-routing-key`, tracestate `turnout`, tracestate `sd-routing-key`,
  // header `x-turnout-routing-key`, header `sd-routing-key`, header
  // `ot-baggage-sd-routing-key`, header `uberctx-sd-routing-key` (Signadot's
  // four forms are all read).
  static RoutingKeyConfig defaults();

  // OK if every name is valid for its kind, there is at least one source, and
  // max_key_length is in [1, kMaxRoutingKeyLength]. Messages name the field,
  // e.g. "sources[2].name: ...". Called once when a snapshot is built.
  absl::Status validate() const;

  std::vector<KeySource> sources;
  std::size_t max_key_length = 128;
};

// Why no key was taken from a source. kNone only means nothing was malformed.
enum class KeyError : std::uint8_t {
  kNone,
  kMalformedBaggage,      // baggage fails the ABNF, or the value has a bad %XX escape
  kBaggageTooLarge,       // baggage over kMaxBaggageBytes
  kTooManyMembers,        // baggage over 64 or tracestate over 32 members
  kMalformedTracestate,   // tracestate fails the ABNF or repeats a key
  kConflictingMembers,    // the key appears more than once with different values
  kInvalidKey,            // empty, or a character outside [A-Za-z0-9._-]
  kKeyTooLong,            // longer than max_key_length
};

// A stable snake_case name for stats, e.g. "malformed_baggage".
std::string_view keyErrorName(KeyError error);

// True if `key` is 1..max_length characters from [A-Za-z0-9._-], safe to use
// in cluster names and header values.
bool isValidRoutingKey(std::string_view key, std::size_t max_length);

struct KeyExtraction {
  bool found() const { return source != nullptr; }

  // The key; empty when none. Valid while the request's storage and the
  // scratch string passed to extractRoutingKey are unchanged.
  std::string_view key;
  // The source that gave the key; null when none. Points into the config.
  const KeySource* source = nullptr;
  // The first failure among the sources tried (those before the winner, or
  // all of them when none won); kNone if every one was simply absent.
  KeyError error = KeyError::kNone;
  // The source that produced `error`; null when error is kNone.
  const KeySource* error_source = nullptr;
};

// Extracts the routing key of `request` under `config`.
// @param scratch reused buffer for percent-decoded baggage values; keep one
//   per worker to avoid allocating. Its contents are overwritten.
// @return the key and its source, or why none was found. Never throws on any
//   header content.
KeyExtraction extractRoutingKey(const RequestView& request, const RoutingKeyConfig& config,
                                std::string& scratch);

// What the RoutingKey filter does to the request once the key is extracted,
// for callers that hold the request as HeaderEntry views (turnout-route-check,
// tests): removes every `output_header` entry the client sent and, if
// `extraction` found a key, appends one entry {output_header, key}. The proxy
// does the same on its own header map (ActiveStream). RouteTable::match()
// then sees the key as an ordinary header.
// @param output_header lowercase; must outlive `headers`.
// @param extraction its `key` must outlive `headers` (copy it first if it
//   points into a scratch string that will be reused).
void applyRoutingKey(std::vector<HeaderEntry>& headers, std::string_view output_header,
                     const KeyExtraction& extraction);

}  // namespace turnout::routing
