#include "routing/baggage.h"

#include <string>
#include <string_view>
#include <vector>

#include <catch2/catch.hpp>

namespace turnout::routing {
namespace {

struct LookupCase {
  std::vector<std::string> lines;
  std::string key;
  BaggageError error;
  bool found;
  std::string value;
};

BaggageLookup lookup(const std::vector<std::string>& lines, std::string_view key,
                     std::string& scratch) {
  std::vector<std::string_view> views(lines.begin(), lines.end());
  return findBaggageMember(views, key, scratch);
}

std::string members(int n, std::string_view last) {
  std::string out;
  for (int i = 0; i < n - 1; ++i) out += "k" + std::to_string(i) + "=v,";
  out += last;
  return out;
}

constexpr BaggageError kOk = BaggageError::kNone;
constexpr BaggageError kMalformed = BaggageError::kMalformed;

TEST_CASE("baggage lookup returns the exact member value or the reason it cannot", "[routing]") {
  const LookupCase c = GENERATE(values<LookupCase>({
      // Plain members.
      {{"turnout-routing-key=abc"}, "turnout-routing-key", kOk, true, "abc"},
      {{"a=1,turnout-routing-key=abc,b=2"}, "turnout-routing-key", kOk, true, "abc"},
      {{"a=1,b=2"}, "turnout-routing-key", kOk, false, ""},
      {{"key1=value1;property1;property2, key2 = value2, key3=value3; propertyKey=propertyValue"},
       "key2", kOk, true, "value2"},
      {{"key1=value1;property1;property2, key2 = value2, key3=value3; propertyKey=propertyValue"},
       "key3", kOk, true, "value3"},
      // Properties are not part of the value.
      {{"k=v;p"}, "k", kOk, true, "v"},
      {{"k=v ; p = q ; r"}, "k", kOk, true, "v"},
      {{"k=v;p="}, "k", kOk, true, "v"},
      {{"k=v;p"}, "p", kOk, false, ""},
      {{"k=v;"}, "k", kMalformed, false, ""},
      {{"k=v;;p"}, "k", kMalformed, false, ""},
      {{"k=v;p q"}, "k", kMalformed, false, ""},
      {{"k=v;=q"}, "k", kMalformed, false, ""},
      // OWS: spaces and tabs around members, "=" and ";".
      {{"  k  =  v  "}, "k", kOk, true, "v"},
      {{"\tk\t=\tv\t,\tj=w"}, "k", kOk, true, "v"},
      {{"a=1 ,\t k=v"}, "k", kOk, true, "v"},
      // Values may contain "=" and other baggage-octets.
      {{"k=a=b"}, "k", kOk, true, "a=b"},
      {{"k=!#$&'()*+-./:<>?@[]^_`{|}~"}, "k", kOk, true, "!#$&'()*+-./:<>?@[]^_`{|}~"},
      // Percent-decoding.
      {{"k=DF%2028"}, "k", kOk, true, "DF 28"},
      {{"k=%41%62c"}, "k", kOk, true, "Abc"},
      {{"k=%e2%82%AC"}, "k", kOk, true, "\xE2\x82\xAC"},
      {{"k=a+b"}, "k", kOk, true, "a+b"},
      {{"k=%"}, "k", BaggageError::kBadPercentEncoding, false, ""},
      {{"k=%4"}, "k", BaggageError::kBadPercentEncoding, false, ""},
      {{"k=%4g"}, "k", BaggageError::kBadPercentEncoding, false, ""},
      {{"k=%%41"}, "k", BaggageError::kBadPercentEncoding, false, ""},
      // A bad escape elsewhere only spoils that member.
      {{"other=%zz,k=v"}, "k", kOk, true, "v"},
      // Empty values are valid baggage.
      {{"k="}, "k", kOk, true, ""},
      {{"k= ;p"}, "k", kOk, true, ""},
      // Bytes outside baggage-octet make the header malformed.
      {{"k=a b"}, "k", kMalformed, false, ""},
      {{"k=a\"b"}, "k", kMalformed, false, ""},
      {{"k=a\\b"}, "k", kMalformed, false, ""},
      {{"k=\x7f"}, "k", kMalformed, false, ""},
      {{"k=\xc3\xa9"}, "k", kMalformed, false, ""},
      {{"k=v,bad=x y"}, "k", kMalformed, false, ""},
      // Bad keys.
      {{"=v"}, "k", kMalformed, false, ""},
      {{"k"}, "k", kMalformed, false, ""},
      {{"k v=1"}, "k", kMalformed, false, ""},
      {{"k(=1"}, "k", kMalformed, false, ""},
      {{"k=v,{x}=1"}, "k", kMalformed, false, ""},
      {{"k=v, =1"}, "k", kMalformed, false, ""},
      // Keys are case-sensitive.
      {{"K=v"}, "k", kOk, false, ""},
      // Empty members are skipped.
      {{",,k=v,,"}, "k", kOk, true, "v"},
      {{" , \t ,k=v"}, "k", kOk, true, "v"},
      {{""}, "k", kOk, false, ""},
      {{"", "k=v", ""}, "k", kOk, true, "v"},
      // Several lines form one list.
      {{"a=1", "k=v"}, "k", kOk, true, "v"},
      {{"a=1,b=2", "c=3, k = v ;p"}, "k", kOk, true, "v"},
      {{"k=v", "a=b c"}, "k", kMalformed, false, ""},
      // Duplicates: equal values are fine, different ones are a conflict.
      {{"k=v,k=v"}, "k", kOk, true, "v"},
      {{"k=v", "k=%76"}, "k", kOk, true, "v"},
      {{"k=v,k=w"}, "k", BaggageError::kConflictingMembers, false, ""},
      {{"k=v", "k=w"}, "k", BaggageError::kConflictingMembers, false, ""},
      {{"k=v,k=vv"}, "k", BaggageError::kConflictingMembers, false, ""},
      {{"k=v,k="}, "k", BaggageError::kConflictingMembers, false, ""},
      {{"k=v,k=%zz"}, "k", BaggageError::kBadPercentEncoding, false, ""},
      {{"k=%zz,k=v"}, "k", BaggageError::kBadPercentEncoding, false, ""},
      // Substring traps.
      {{"xturnout-routing-key=a"}, "turnout-routing-key", kOk, false, ""},
      {{"turnout-routing-key-x=b"}, "turnout-routing-key", kOk, false, ""},
      {{"other=turnout-routing-key=c"}, "turnout-routing-key", kOk, false, ""},
      {{"other=x;turnout-routing-key=d"}, "turnout-routing-key", kOk, false, ""},
      {{"xturnout-routing-key=a,turnout-routing-key=b,turnout-routing-key-x=c"},
       "turnout-routing-key", kOk, true, "b"},
      // Member limit.
      {{members(64, "k=v")}, "k", kOk, true, "v"},
      {{members(65, "k=v")}, "k", BaggageError::kTooManyMembers, false, ""},
      {{members(32, "a=b"), members(32, "k=v")}, "k", kOk, true, "v"},
      {{members(32, "a=b"), members(33, "k=v")}, "k", BaggageError::kTooManyMembers, false, ""},
      {{members(64, "k=v") + ",,,"}, "k", kOk, true, "v"},
      {{"k=v," + members(65, "a=b")}, "k", BaggageError::kTooManyMembers, false, ""},
      // Byte limit (lines count as joined with ",").
      {{"k=" + std::string(8190, 'x')}, "k", kOk, true, std::string(8190, 'x')},
      {{"k=" + std::string(8191, 'x')}, "k", BaggageError::kTooLarge, false, ""},
      {{"k=v", std::string(8188, ' ')}, "k", kOk, true, "v"},
      {{"k=v", std::string(8189, ' ')}, "k", BaggageError::kTooLarge, false, ""},
  }));
  CAPTURE(c.lines, c.key);
  std::string scratch;
  const BaggageLookup r = lookup(c.lines, c.key, scratch);
  CHECK(baggageErrorName(r.error) == baggageErrorName(c.error));
  CHECK(r.found == c.found);
  CHECK(std::string(r.value) == c.value);
}

TEST_CASE("baggage lookup points into the header unless it had to decode", "[routing]") {
  const std::string plain = "a=1,k=v";
  const std::vector<std::string_view> lines{plain};
  std::string scratch;
  BaggageLookup r = findBaggageMember(lines, "k", scratch);
  REQUIRE(r.found);
  CHECK(r.value.data() == plain.data() + 6);
  CHECK(scratch.empty());

  const std::string encoded = "k=a%20b";
  const std::vector<std::string_view> encoded_lines{encoded};
  r = findBaggageMember(encoded_lines, "k", scratch);
  REQUIRE(r.found);
  CHECK(r.value == "a b");
  CHECK(r.value.data() == scratch.data());
}

TEST_CASE("baggage with no lines has no members and no error", "[routing]") {
  std::string scratch;
  const BaggageLookup r = findBaggageMember({}, "k", scratch);
  CHECK(r.error == BaggageError::kNone);
  CHECK_FALSE(r.found);
}

TEST_CASE("baggage parse lists members with raw values and properties in order", "[routing]") {
  const std::vector<std::string_view> lines{"a = 1 ; p ; q=r ,,b=%20", "\tc=x=y"};
  std::vector<BaggageMember> out;
  REQUIRE(parseBaggage(lines, out) == BaggageError::kNone);
  REQUIRE(out.size() == 3);
  CHECK(out[0].key == "a");
  CHECK(out[0].raw_value == "1");
  CHECK(out[0].properties == "p ; q=r");
  CHECK(out[1].key == "b");
  CHECK(out[1].raw_value == "%20");
  CHECK(out[1].properties.empty());
  CHECK(out[2].key == "c");
  CHECK(out[2].raw_value == "x=y");
}

TEST_CASE("baggage parse rejects what the lookup rejects", "[routing]") {
  const std::string line = GENERATE(as<std::string>{}, "k=a b", "k", "=v", "k=v;", "k=v;p q");
  const std::vector<std::string_view> lines{line};
  std::vector<BaggageMember> out;
  CHECK(parseBaggage(lines, out) == BaggageError::kMalformed);
}

TEST_CASE("baggage value decoding accepts only two-hex-digit escapes", "[routing]") {
  struct Case {
    std::string raw;
    bool ok;
    std::string decoded;
  };
  const Case c = GENERATE(values<Case>({
      {"", true, ""},
      {"abc", true, "abc"},
      {"%00", true, std::string(1, '\0')},
      {"%ff%FF", true, "\xff\xff"},
      {"a%2Cb", true, "a,b"},
      {"%", false, ""},
      {"%a", false, ""},
      {"a%", false, ""},
      {"%-1", false, ""},
      {"%+1", false, ""},
      {"% 1", false, ""},
  }));
  CAPTURE(c.raw);
  std::string out;
  REQUIRE(decodeBaggageValue(c.raw, out) == c.ok);
  if (c.ok) CHECK(out == c.decoded);
}

TEST_CASE("baggage error names are stable for stats", "[routing]") {
  CHECK(baggageErrorName(BaggageError::kNone) == "none");
  CHECK(baggageErrorName(BaggageError::kMalformed) == "malformed");
  CHECK(baggageErrorName(BaggageError::kTooLarge) == "too_large");
  CHECK(baggageErrorName(BaggageError::kTooManyMembers) == "too_many_members");
  CHECK(baggageErrorName(BaggageError::kBadPercentEncoding) == "bad_percent_encoding");
  CHECK(baggageErrorName(BaggageError::kConflictingMembers) == "conflicting_members");
}

struct AppendCase {
  std::vector<std::string> lines;
  BaggageAppend result;
  std::string out;
};

TEST_CASE("baggage append adds one member within the W3C limits or leaves the header alone",
          "[routing]") {
  constexpr auto kAppended = BaggageAppend::kAppended;
  const std::string k = "turnout-routing-key";
  // 8192 bytes once ",turnout-routing-key=feat-x" (27 bytes) is appended.
  const std::string filler_at_limit = "f=" + std::string(8192 - 27 - 2, 'v');
  const AppendCase c = GENERATE_COPY(values<AppendCase>({
      {{}, kAppended, "turnout-routing-key=feat-x"},
      {{"userId=7"}, kAppended, "userId=7,turnout-routing-key=feat-x"},
      {{" userId=7 ;p=1 "}, kAppended, "userId=7 ;p=1,turnout-routing-key=feat-x"},
      {{"a=1", "", " \t", "b=2,,"}, kAppended, "a=1,b=2,,,turnout-routing-key=feat-x"},
      {{""}, kAppended, "turnout-routing-key=feat-x"},
      // Present already, valid or not: never a second, conflicting member.
      {{"turnout-routing-key=other"}, BaggageAppend::kAlreadyPresent, ""},
      {{"turnout-routing-key=bad%zz"}, BaggageAppend::kAlreadyPresent, ""},
      {{"turnout-routing-key=a,turnout-routing-key=b"}, BaggageAppend::kAlreadyPresent, ""},
      // Another member with a similar name is not it (keys are case-sensitive).
      {{"Turnout-Routing-Key=x"}, kAppended, "Turnout-Routing-Key=x,turnout-routing-key=feat-x"},
      // Malformed or already over a limit: left alone.
      {{"no-equals"}, BaggageAppend::kMalformed, ""},
      {{"a=\"q\""}, BaggageAppend::kMalformed, ""},
      {{members(65, "z=1")}, BaggageAppend::kTooManyMembers, ""},
      {{"f=" + std::string(8191, 'v')}, BaggageAppend::kTooLarge, ""},
      // At the limits after appending.
      {{members(63, "z=1")}, kAppended, members(63, "z=1") + ",turnout-routing-key=feat-x"},
      {{members(64, "z=1")}, BaggageAppend::kTooManyMembers, ""},
      {{filler_at_limit}, kAppended, filler_at_limit + ",turnout-routing-key=feat-x"},
      {{filler_at_limit + "v"}, BaggageAppend::kTooLarge, ""},
  }));
  CAPTURE(c.lines);
  std::vector<std::string_view> views(c.lines.begin(), c.lines.end());
  std::string out = "stale";
  REQUIRE(appendBaggageMember(views, k, "feat-x", out) == c.result);
  if (c.result != kAppended) return;
  CHECK(out == c.out);
  CHECK(out.size() <= kMaxBaggageBytes);
  // The result is well-formed and names the key exactly once.
  std::string scratch;
  const std::vector<std::string_view> result{out};
  const BaggageLookup r = findBaggageMember(result, k, scratch);
  CHECK(r.error == BaggageError::kNone);
  CHECK(r.found);
  CHECK(r.value == "feat-x");
}

}  // namespace
}  // namespace turnout::routing
