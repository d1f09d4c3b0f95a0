#include "routing/tracestate.h"

#include <string>
#include <string_view>
#include <vector>

#include <catch2/catch.hpp>

namespace turnout::routing {
namespace {

struct LookupCase {
  std::vector<std::string> lines;
  std::string key;
  TracestateError error;
  bool found;
  std::string value;
};

// n members: n-1 fillers named <prefix><i>, then `last`.
std::string members(int n, std::string_view last, const std::string& prefix = "k") {
  std::string out;
  for (int i = 0; i < n - 1; ++i) out += prefix + std::to_string(i) + "=v,";
  out += last;
  return out;
}

constexpr TracestateError kOk = TracestateError::kNone;
constexpr TracestateError kMalformed = TracestateError::kMalformed;

TEST_CASE("tracestate lookup returns the exact member value or the reason it cannot",
          "[routing]") {
  const LookupCase c = GENERATE(values<LookupCase>({
      {{"turnout=abc"}, "turnout", kOk, true, "abc"},
      {{"rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"}, "congo", kOk, true, "t61rcWkgMzE"},
      {{"rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"}, "turnout", kOk, false, ""},
      // OWS around members, not around "=".
      {{" \t turnout=abc \t "}, "turnout", kOk, true, "abc"},
      {{"a=1 , turnout=abc"}, "turnout", kOk, true, "abc"},
      {{"turnout = abc"}, "turnout", kMalformed, false, ""},
      {{"turnout =abc"}, "turnout", kMalformed, false, ""},
      {{"turnout= abc"}, "turnout", kOk, true, " abc"},
      // Values.
      {{"turnout=a b"}, "turnout", kOk, true, "a b"},
      {{"turnout=!\"#$%&'()*+-./:;<>?@[\\]^_`{|}~"}, "turnout", kOk, true,
       "!\"#$%&'()*+-./:;<>?@[\\]^_`{|}~"},
      {{"turnout="}, "turnout", kMalformed, false, ""},
      {{"turnout=   "}, "turnout", kMalformed, false, ""},
      {{"turnout=a=b"}, "turnout", kMalformed, false, ""},
      {{"turnout=a\tb"}, "turnout", kMalformed, false, ""},
      {{"turnout=a\x7f"}, "turnout", kMalformed, false, ""},
      {{"turnout=\xc3\xa9"}, "turnout", kMalformed, false, ""},
      {{"turnout=" + std::string(256, 'v')}, "turnout", kOk, true, std::string(256, 'v')},
      {{"turnout=" + std::string(257, 'v')}, "turnout", kMalformed, false, ""},
      // Simple keys.
      {{"a=1"}, "a", kOk, true, "1"},
      {{"a0_-*/=1"}, "a0_-*/", kOk, true, "1"},
      {{"Turnout=1"}, "turnout", kMalformed, false, ""},
      {{"0abc=1"}, "0abc", kMalformed, false, ""},
      {{"_a=1"}, "_a", kMalformed, false, ""},
      {{"a.b=1"}, "a.b", kMalformed, false, ""},
      {{"=1"}, "turnout", kMalformed, false, ""},
      {{"turnout"}, "turnout", kMalformed, false, ""},
      {{std::string(256, 'k') + "=1"}, std::string(256, 'k'), kOk, true, "1"},
      {{std::string(257, 'k') + "=1"}, std::string(257, 'k'), kMalformed, false, ""},
      // Multi-tenant keys.
      {{"acme@turnout=t1"}, "acme@turnout", kOk, true, "t1"},
      {{"0acme@turnout=t1"}, "0acme@turnout", kOk, true, "t1"},
      {{"acme@turnout=t1"}, "turnout", kOk, false, ""},
      {{"acme@0sys=t1"}, "acme@0sys", kMalformed, false, ""},
      {{"acme@=t1"}, "acme@", kMalformed, false, ""},
      {{"@sys=t1"}, "@sys", kMalformed, false, ""},
      {{"a@b@c=t1"}, "a@b@c", kMalformed, false, ""},
      {{"a@" + std::string(14, 's') + "=1"}, "a@" + std::string(14, 's'), kOk, true, "1"},
      {{"a@" + std::string(15, 's') + "=1"}, "a@" + std::string(15, 's'), kMalformed, false, ""},
      {{std::string(241, 't') + "@s=1"}, std::string(241, 't') + "@s", kOk, true, "1"},
      {{std::string(242, 't') + "@s=1"}, std::string(242, 't') + "@s", kMalformed, false, ""},
      // Empty and whitespace-only members are allowed.
      {{""}, "turnout", kOk, false, ""},
      {{",,turnout=abc,, ,\t,"}, "turnout", kOk, true, "abc"},
      // Several lines form one list.
      {{"a=1", "turnout=abc"}, "turnout", kOk, true, "abc"},
      {{"", "turnout=abc", ""}, "turnout", kOk, true, "abc"},
      {{"turnout=abc", "bad key=1"}, "turnout", kMalformed, false, ""},
      // Duplicates invalidate the whole header.
      {{"turnout=a,turnout=a"}, "turnout", TracestateError::kDuplicateKey, false, ""},
      {{"turnout=a", "turnout=b"}, "turnout", TracestateError::kDuplicateKey, false, ""},
      {{"x=1,turnout=a,x=2"}, "turnout", TracestateError::kDuplicateKey, false, ""},
      // Substring traps.
      {{"xturnout=a"}, "turnout", kOk, false, ""},
      {{"turnout-x=a"}, "turnout", kOk, false, ""},
      {{"other=turnout"}, "turnout", kOk, false, ""},
      // Member limit.
      {{members(32, "turnout=abc")}, "turnout", kOk, true, "abc"},
      {{members(33, "turnout=abc")}, "turnout", TracestateError::kTooManyMembers, false, ""},
      {{"turnout=abc," + members(32, "z=1")}, "turnout", TracestateError::kTooManyMembers, false,
       ""},
      {{members(16, "a=1", "x"), members(16, "turnout=abc", "y")}, "turnout", kOk, true, "abc"},
      {{members(32, "turnout=abc") + ",,, ,"}, "turnout", kOk, true, "abc"},
  }));
  CAPTURE(c.lines, c.key);
  std::vector<std::string_view> views(c.lines.begin(), c.lines.end());
  const TracestateLookup r = findTracestateMember(views, c.key);
  CHECK(tracestateErrorName(r.error) == tracestateErrorName(c.error));
  CHECK(r.found == c.found);
  CHECK(std::string(r.value) == c.value);
}

TEST_CASE("tracestate parse lists members in order across lines", "[routing]") {
  const std::vector<std::string_view> lines{"rojo=00f067aa0ba902b7, ,congo=t61rcWkgMzE",
                                            "\tacme@sys= x"};
  std::vector<TracestateMember> out;
  REQUIRE(parseTracestate(lines, out) == TracestateError::kNone);
  REQUIRE(out.size() == 3);
  CHECK(out[0].key == "rojo");
  CHECK(out[0].value == "00f067aa0ba902b7");
  CHECK(out[1].key == "congo");
  CHECK(out[1].value == "t61rcWkgMzE");
  CHECK(out[2].key == "acme@sys");
  CHECK(out[2].value == " x");
}

TEST_CASE("tracestate key grammar accepts simple and multi-tenant keys only", "[routing]") {
  CHECK(isValidTracestateKey("turnout"));
  CHECK(isValidTracestateKey("t/u*r-n_0"));
  CHECK(isValidTracestateKey("9@z"));
  CHECK_FALSE(isValidTracestateKey(""));
  CHECK_FALSE(isValidTracestateKey("9"));
  CHECK_FALSE(isValidTracestateKey("a@"));
  CHECK_FALSE(isValidTracestateKey("a@9"));
  CHECK_FALSE(isValidTracestateKey("aB"));
  CHECK_FALSE(isValidTracestateKey("a b"));
}

TEST_CASE("tracestate error names are stable for stats", "[routing]") {
  CHECK(tracestateErrorName(TracestateError::kNone) == "none");
  CHECK(tracestateErrorName(TracestateError::kMalformed) == "malformed");
  CHECK(tracestateErrorName(TracestateError::kTooManyMembers) == "too_many_members");
  CHECK(tracestateErrorName(TracestateError::kDuplicateKey) == "duplicate_key");
}

}  // namespace
}  // namespace turnout::routing
