#include "routing/routing_key.h"

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

namespace turnout::routing {
namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;

// Owns the storage a RequestView points into.
class TestRequest {
 public:
  explicit TestRequest(Headers headers) : headers_(std::move(headers)) {
    for (const auto& [name, value] : headers_) entries_.push_back({name, value});
  }
  RequestView view() const { return RequestView("GET", "svc", "/", entries_); }

 private:
  Headers headers_;
  std::vector<HeaderEntry> entries_;
};

struct Expected {
  std::string key;                  // empty: no key
  std::string source;               // "kind:name" of the winner, empty when none
  KeyError error = KeyError::kNone;
};

std::string describe(const KeySource* s) {
  if (s == nullptr) return "";
  return std::string(keySourceKindName(s->kind)) + ":" + s->name;
}

void checkExtraction(const Headers& headers, const RoutingKeyConfig& config, const Expected& want) {
  TestRequest request(headers);
  std::string scratch;
  const KeyExtraction got = extractRoutingKey(request.view(), config, scratch);
  CHECK(std::string(got.key) == want.key);
  CHECK(describe(got.source) == want.source);
  CHECK(got.found() == !want.key.empty());
  CHECK(keyErrorName(got.error) == keyErrorName(want.error));
  CHECK((got.error_source == nullptr) == (got.error == KeyError::kNone));
}

struct Case {
  Headers headers;
  Expected want;
};

TEST_CASE("default sources yield the first valid key in order", "[routing]") {
  const Case c = GENERATE(values<Case>({
      {{}, {"", "", KeyError::kNone}},
      {{{"user-agent", "curl"}}, {"", "", KeyError::kNone}},
      // Each source alone.
      {{{"baggage", "turnout-routing-key=sb1"}}, {"sb1", "baggage:turnout-routing-key"}},
      {{{"baggage", "sd-routing-key=sb2"}}, {"sb2", "baggage:sd-routing-key"}},
      {{{"tracestate", "turnout=sb3"}}, {"sb3", "tracestate:turnout"}},
      {{{"x-turnout-routing-key", "sb4"}}, {"sb4", "header:x-turnout-routing-key"}},
      {{{"sd-routing-key", "sb5"}}, {"sb5", "header:sd-routing-key"}},
      // Precedence.
      {{{"tracestate", "turnout=ts"}, {"baggage", "turnout-routing-key=bg"}},
       {"bg", "baggage:turnout-routing-key"}},
      {{{"baggage", "sd-routing-key=sd,turnout-routing-key=tr"}},
       {"tr", "baggage:turnout-routing-key"}},
      {{{"baggage", "sd-routing-key=sd"}, {"tracestate", "turnout=ts"}},
       {"sd", "baggage:sd-routing-key"}},
      {{{"x-turnout-routing-key", "h"}, {"tracestate", "turnout=ts"}},
       {"ts", "tracestate:turnout"}},
      {{{"sd-routing-key", "h2"}, {"x-turnout-routing-key", "h1"}},
       {"h1", "header:x-turnout-routing-key"}},
      // A baggage line without our key does not stop later sources.
      {{{"baggage", "other=1"}, {"tracestate", "turnout=ts"}}, {"ts", "tracestate:turnout"}},
      // Malformed sources yield nothing, later sources are still tried, and
      // the first failure is reported.
      {{{"baggage", "turnout-routing-key=a b"}, {"tracestate", "turnout=ts"}},
       {"ts", "tracestate:turnout", KeyError::kMalformedBaggage}},
      {{{"baggage", "turnout-routing-key=bg,junk"}}, {"", "", KeyError::kMalformedBaggage}},
      {{{"baggage", "turnout-routing-key=%zz"}}, {"", "", KeyError::kMalformedBaggage}},
      {{{"baggage", "turnout-routing-key=" + std::string(8200, 'a')}},
       {"", "", KeyError::kBaggageTooLarge}},
      {{{"tracestate", "turnout=ts,turnout=ts"}, {"sd-routing-key", "h"}},
       {"h", "header:sd-routing-key", KeyError::kMalformedTracestate}},
      {{{"tracestate", "Turnout=ts"}}, {"", "", KeyError::kMalformedTracestate}},
      // Limits surface as too_many_members.
      {{{"baggage", [] {
           std::string s;
           for (int i = 0; i < 64; ++i) s += "m" + std::to_string(i) + "=v,";
           return s + "turnout-routing-key=late";
         }()}},
       {"", "", KeyError::kTooManyMembers}},
      {{{"tracestate", [] {
           std::string s;
           for (int i = 0; i < 32; ++i) s += "m" + std::to_string(i) + "=v,";
           return s + "turnout=late";
         }()}},
       {"", "", KeyError::kTooManyMembers}},
      // Invalid keys: first failure wins the report, later sources still tried.
      {{{"baggage", "turnout-routing-key=a/b"}}, {"", "", KeyError::kInvalidKey}},
      {{{"baggage", "turnout-routing-key="}}, {"", "", KeyError::kInvalidKey}},
      {{{"baggage", "turnout-routing-key=%2F"}}, {"", "", KeyError::kInvalidKey}},
      {{{"baggage", "turnout-routing-key=a%2Cb"}}, {"", "", KeyError::kInvalidKey}},
      {{{"baggage", "turnout-routing-key=a+b"}}, {"", "", KeyError::kInvalidKey}},
      {{{"baggage", "turnout-routing-key=bad:key,sd-routing-key=ok"}},
       {"ok", "baggage:sd-routing-key", KeyError::kInvalidKey}},
      {{{"tracestate", "turnout= ts"}}, {"", "", KeyError::kInvalidKey}},
      {{{"x-turnout-routing-key", "a b"}}, {"", "", KeyError::kInvalidKey}},
      {{{"x-turnout-routing-key", ""}}, {"", "", KeyError::kInvalidKey}},
      {{{"x-turnout-routing-key", "a,b"}}, {"", "", KeyError::kInvalidKey}},
      {{{"x-turnout-routing-key", "caf\xc3\xa9"}}, {"", "", KeyError::kInvalidKey}},
      {{{"x-turnout-routing-key", std::string(129, 'k')}}, {"", "", KeyError::kKeyTooLong}},
      {{{"x-turnout-routing-key", std::string(128, 'k')}},
       {std::string(128, 'k'), "header:x-turnout-routing-key"}},
      // Signadot's forms, read by default.
      {{{"tracestate", "congo=t61,sd-routing-key=sd1"}}, {"sd1", "tracestate:sd-routing-key"}},
      {{{"ot-baggage-sd-routing-key", "sd2"}}, {"sd2", "header:ot-baggage-sd-routing-key"}},
      {{{"uberctx-sd-routing-key", "sd3"}}, {"sd3", "header:uberctx-sd-routing-key"}},
      {{{"tracestate", "turnout=mine,sd-routing-key=theirs"}}, {"mine", "tracestate:turnout"}},
      // Decoded keys.
      {{{"baggage", "turnout-routing-key=%73b-1.x_Y"}},
       {"sb-1.x_Y", "baggage:turnout-routing-key"}},
      // Repeated sources.
      {{{"baggage", "a=1"}, {"baggage", "turnout-routing-key=two"}},
       {"two", "baggage:turnout-routing-key"}},
      {{{"baggage", "turnout-routing-key=x"}, {"baggage", "turnout-routing-key=y"}},
       {"", "", KeyError::kConflictingMembers}},
      {{{"x-turnout-routing-key", "same"}, {"x-turnout-routing-key", "same"}},
       {"same", "header:x-turnout-routing-key"}},
      {{{"x-turnout-routing-key", "one"}, {"x-turnout-routing-key", "two"}},
       {"", "", KeyError::kConflictingMembers}},
      // Substring traps.
      {{{"baggage", "xturnout-routing-key=a,turnout-routing-key-x=b,o=turnout-routing-key=c"}},
       {"", "", KeyError::kNone}},
      {{{"baggage", "o=x;turnout-routing-key=p"}}, {"", "", KeyError::kNone}},
      {{{"tracestate", "xturnout=a,turnout-x=b,acme@turnout=c"}}, {"", "", KeyError::kNone}},
      {{{"x-turnout-routing-key-x", "a"}, {"xsd-routing-key", "b"}}, {"", "", KeyError::kNone}},
  }));
  CAPTURE(c.headers);
  checkExtraction(c.headers, RoutingKeyConfig::defaults(), c.want);
}

TEST_CASE("baggage key wins over tracestate", "[routing]") {
  checkExtraction({{"tracestate", "turnout=from-ts"}, {"baggage", "turnout-routing-key=from-bg"}},
                  RoutingKeyConfig::defaults(), {"from-bg", "baggage:turnout-routing-key"});
}

TEST_CASE("sd-routing-key is an alias in baggage and as a header", "[routing]") {
  checkExtraction({{"baggage", "sd-routing-key=sd1"}}, RoutingKeyConfig::defaults(),
                  {"sd1", "baggage:sd-routing-key"});
  checkExtraction({{"sd-routing-key", "sd2"}}, RoutingKeyConfig::defaults(),
                  {"sd2", "header:sd-routing-key"});
}

TEST_CASE("a custom config sets sources, order and key length", "[routing]") {
  RoutingKeyConfig config;
  config.sources = {{KeySourceKind::kHeader, "x-key"},
                    {KeySourceKind::kTracestate, "acme@route"},
                    {KeySourceKind::kBaggage, "Route"}};
  config.max_key_length = 4;
  REQUIRE(config.validate().ok());

  const Case c = GENERATE(values<Case>({
      {{{"baggage", "turnout-routing-key=ignored"}}, {"", "", KeyError::kNone}},
      {{{"baggage", "Route=bg"}, {"x-key", "hdr"}}, {"hdr", "header:x-key"}},
      {{{"baggage", "Route=bg"}, {"tracestate", "acme@route=ts"}},
       {"ts", "tracestate:acme@route"}},
      {{{"baggage", "Route=bg"}}, {"bg", "baggage:Route"}},
      {{{"baggage", "route=bg"}}, {"", "", KeyError::kNone}},
      {{{"x-key", "12345"}, {"baggage", "Route=1234"}},
       {"1234", "baggage:Route", KeyError::kKeyTooLong}},
  }));
  CAPTURE(c.headers);
  checkExtraction(c.headers, config, c.want);
}

TEST_CASE("the key views the header when no decoding is needed", "[routing]") {
  const std::string value = "turnout-routing-key=abc";
  const std::vector<HeaderEntry> headers{{"baggage", value}};
  const RequestView view("GET", "svc", "/", headers);
  std::string scratch;
  const KeyExtraction r = extractRoutingKey(view, RoutingKeyConfig::defaults(), scratch);
  REQUIRE(r.key == "abc");
  CHECK(r.key.data() == value.data() + 20);
}

TEST_CASE("routing key validation allows only [A-Za-z0-9._-] up to the limit", "[routing]") {
  CHECK(isValidRoutingKey("aZ09._-", 128));
  CHECK(isValidRoutingKey("abcd", 4));
  CHECK_FALSE(isValidRoutingKey("abcde", 4));
  CHECK_FALSE(isValidRoutingKey("", 128));
  const char bad = GENERATE(' ', '/', ':', ',', ';', '=', '%', '+', '@', '\t', '\0', '\x7f',
                            '\x80', '\xff');
  CAPTURE(static_cast<int>(bad));
  CHECK_FALSE(isValidRoutingKey(std::string("ab") + bad + "c", 128));
}

TEST_CASE("defaults list the eight sources in precedence order", "[routing]") {
  const RoutingKeyConfig c = RoutingKeyConfig::defaults();
  REQUIRE(c.sources.size() == 8);
  CHECK(describe(&c.sources[0]) == "baggage:turnout-routing-key");
  CHECK(describe(&c.sources[1]) == "baggage:sd-routing-key");
  CHECK(describe(&c.sources[2]) == "tracestate:turnout");
  CHECK(describe(&c.sources[3]) == "tracestate:sd-routing-key");
  CHECK(describe(&c.sources[4]) == "header:x-turnout-routing-key");
  CHECK(describe(&c.sources[5]) == "header:sd-routing-key");
  CHECK(describe(&c.sources[6]) == "header:ot-baggage-sd-routing-key");
  CHECK(describe(&c.sources[7]) == "header:uberctx-sd-routing-key");
  CHECK(c.max_key_length == 128);
  CHECK(c.validate().ok());
}

TEST_CASE("config validation names the offending field", "[routing]") {
  struct BadConfig {
    std::vector<KeySource> sources;
    std::size_t max_key_length;
    std::string message;
  };
  const BadConfig b = GENERATE(values<BadConfig>({
      {{}, 128, "sources: must not be empty"},
      {{{KeySourceKind::kHeader, "x"}}, 0, "max_key_length: must be in [1, 1024], got 0"},
      {{{KeySourceKind::kHeader, "x"}}, 1025, "max_key_length: must be in [1, 1024], got 1025"},
      {{{KeySourceKind::kHeader, "x"}, {KeySourceKind::kHeader, "X-Key"}}, 8,
       "sources[1].name: 'X-Key' is not a lowercase header name"},
      {{{KeySourceKind::kBaggage, "a b"}}, 8, "sources[0].name: 'a b' is not an RFC 7230 token"},
      {{{KeySourceKind::kBaggage, ""}}, 8, "sources[0].name: '' is not an RFC 7230 token"},
      {{{KeySourceKind::kTracestate, "Turnout"}}, 8,
       "sources[0].name: 'Turnout' is not a W3C tracestate key"},
  }));
  RoutingKeyConfig config;
  config.sources = b.sources;
  config.max_key_length = b.max_key_length;
  const absl::Status s = config.validate();
  CHECK(s.code() == absl::StatusCode::kInvalidArgument);
  CHECK(std::string(s.message()) == b.message);
}

TEST_CASE("key error names are stable for stats", "[routing]") {
  CHECK(keyErrorName(KeyError::kNone) == "none");
  CHECK(keyErrorName(KeyError::kMalformedBaggage) == "malformed_baggage");
  CHECK(keyErrorName(KeyError::kBaggageTooLarge) == "baggage_too_large");
  CHECK(keyErrorName(KeyError::kTooManyMembers) == "too_many_members");
  CHECK(keyErrorName(KeyError::kMalformedTracestate) == "malformed_tracestate");
  CHECK(keyErrorName(KeyError::kConflictingMembers) == "conflicting_members");
  CHECK(keyErrorName(KeyError::kInvalidKey) == "invalid_key");
  CHECK(keyErrorName(KeyError::kKeyTooLong) == "key_too_long");
}

}  // namespace
}  // namespace turnout::routing
