#include "routing/routing_key.h"

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "routing/baggage.h"
#include "routing/tracestate.h"

namespace turnout::routing {
namespace {

// Header lines of one request; four inline covers every real request.
using Lines = absl::InlinedVector<std::string_view, 4>;

void collectLines(const RequestView& request, std::string_view name, Lines& out) {
  out.clear();
  request.forEachValue(name, [&](std::string_view v) { out.push_back(v); });
}

KeyError fromBaggage(BaggageError e) {
  switch (e) {
    case BaggageError::kNone: return KeyError::kNone;
    case BaggageError::kTooLarge: return KeyError::kBaggageTooLarge;
    case BaggageError::kTooManyMembers: return KeyError::kTooManyMembers;
    case BaggageError::kConflictingMembers: return KeyError::kConflictingMembers;
    case BaggageError::kMalformed:
    case BaggageError::kBadPercentEncoding: return KeyError::kMalformedBaggage;
  }
  return KeyError::kMalformedBaggage;
}

KeyError fromTracestate(TracestateError e) {
  switch (e) {
    case TracestateError::kNone: return KeyError::kNone;
    case TracestateError::kTooManyMembers: return KeyError::kTooManyMembers;
    case TracestateError::kMalformed:
    case TracestateError::kDuplicateKey: return KeyError::kMalformedTracestate;
  }
  return KeyError::kMalformedTracestate;
}

KeyError validateKey(std::string_view key, std::size_t max_length) {
  if (key.size() > max_length) return KeyError::kKeyTooLong;
  return isValidRoutingKey(key, max_length) ? KeyError::kNone : KeyError::kInvalidKey;
}

bool isToken(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum && std::string_view("!#$%&'*+-.^_`|~").find(c) == std::string_view::npos) {
      return false;
    }
  }
  return true;
}

bool isLowercaseToken(std::string_view s) {
  if (!isToken(s)) return false;
  for (char c : s) {
    if (c >= 'A' && c <= 'Z') return false;
  }
  return true;
}

}  // namespace

std::string_view keySourceKindName(KeySourceKind kind) {
  switch (kind) {
    case KeySourceKind::kBaggage: return "baggage";
    case KeySourceKind::kTracestate: return "tracestate";
    case KeySourceKind::kHeader: return "header";
  }
  return "unknown";
}

std::string_view keyErrorName(KeyError error) {
  switch (error) {
    case KeyError::kNone: return "none";
    case KeyError::kMalformedBaggage: return "malformed_baggage";
    case KeyError::kBaggageTooLarge: return "baggage_too_large";
    case KeyError::kTooManyMembers: return "too_many_members";
    case KeyError::kMalformedTracestate: return "malformed_tracestate";
    case KeyError::kConflictingMembers: return "conflicting_members";
    case KeyError::kInvalidKey: return "invalid_key";
    case KeyError::kKeyTooLong: return "key_too_long";
  }
  return "unknown";
}

RoutingKeyConfig RoutingKeyConfig::defaults() {
  RoutingKeyConfig config;
  config.sources = {
      {KeySourceKind::kBaggage, "turnout-routing-key"},
      {KeySourceKind::kBaggage, "sd-routing-key"},
      {KeySourceKind::kTracestate, "turnout"},
      // Signadot's forms (its browser extension sets all four), so a team
      // can switch without touching its apps.
      {KeySourceKind::kTracestate, "sd-routing-key"},
      {KeySourceKind::kHeader, "x-turnout-routing-key"},
      {KeySourceKind::kHeader, "sd-routing-key"},
      {KeySourceKind::kHeader, "ot-baggage-sd-routing-key"},
      {KeySourceKind::kHeader, "uberctx-sd-routing-key"},
  };
  return config;
}

absl::Status RoutingKeyConfig::validate() const {
  if (sources.empty()) return absl::InvalidArgumentError("sources: must not be empty");
  if (max_key_length == 0 || max_key_length > kMaxRoutingKeyLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_key_length: must be in [1, ", kMaxRoutingKeyLength, "], got ",
                     max_key_length));
  }
  for (std::size_t i = 0; i < sources.size(); ++i) {
    const KeySource& s = sources[i];
    bool ok = false;
    const char* want = "";
    switch (s.kind) {
      case KeySourceKind::kBaggage:
        ok = isToken(s.name);
        want = "an RFC 7230 token";
        break;
      case KeySourceKind::kTracestate:
        ok = isValidTracestateKey(s.name);
        want = "a W3C tracestate key";
        break;
      case KeySourceKind::kHeader:
        ok = isLowercaseToken(s.name);
        want = "a lowercase header name";
        break;
    }
    if (!ok) {
      return absl::InvalidArgumentError(
          absl::StrCat("sources[", i, "].name: '", s.name, "' is not ", want));
    }
  }
  return absl::OkStatus();
}

bool isValidRoutingKey(std::string_view key, std::size_t max_length) {
  if (key.empty() || key.size() > max_length) return false;
  for (char c : key) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

KeyExtraction extractRoutingKey(const RequestView& request, const RoutingKeyConfig& config,
                                std::string& scratch) {
  KeyExtraction out;
  Lines baggage;
  Lines tracestate;
  bool have_baggage = false;
  bool have_tracestate = false;

  for (const KeySource& source : config.sources) {
    bool found = false;
    std::string_view value;
    KeyError error = KeyError::kNone;
    switch (source.kind) {
      case KeySourceKind::kBaggage: {
        if (!have_baggage) {
          collectLines(request, "baggage", baggage);
          have_baggage = true;
        }
        if (baggage.empty()) break;
        const BaggageLookup r = findBaggageMember(baggage, source.name, scratch);
        found = r.found;
        value = r.value;
        error = fromBaggage(r.error);
        break;
      }
      case KeySourceKind::kTracestate: {
        if (!have_tracestate) {
          collectLines(request, "tracestate", tracestate);
          have_tracestate = true;
        }
        if (tracestate.empty()) break;
        const TracestateLookup r = findTracestateMember(tracestate, source.name);
        found = r.found;
        value = r.value;
        error = fromTracestate(r.error);
        break;
      }
      case KeySourceKind::kHeader: {
        int count = 0;
        request.forEachValue(source.name, [&](std::string_view v) {
          if (count++ == 0) {
            value = v;
          } else if (v != value) {
            error = KeyError::kConflictingMembers;
          }
        });
        found = count > 0 && error == KeyError::kNone;
        break;
      }
    }
    if (found) error = validateKey(value, config.max_key_length);
    if (error != KeyError::kNone) {
      if (out.error == KeyError::kNone) {
        out.error = error;
        out.error_source = &source;
      }
      continue;
    }
    if (found) {
      out.key = value;
      out.source = &source;
      return out;
    }
  }
  return out;
}

void applyRoutingKey(std::vector<HeaderEntry>& headers, std::string_view output_header,
                     const KeyExtraction& extraction) {
  std::erase_if(headers, [&](const HeaderEntry& h) { return h.name == output_header; });
  if (extraction.found()) headers.push_back(HeaderEntry{output_header, extraction.key});
}

}  // namespace turnout::routing
