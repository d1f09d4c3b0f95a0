// Route matching, as Envoy's RouteEntryImplBase::matchRoute and the
// Prefix/Path/Regex/PathSeparatedPrefix route entries.

#include <catch2/catch.hpp>

#include "tests/unit/routing/route_test_support.h"

namespace turnout::routing::test {
namespace {

enum class P { Prefix, Path, Regex, Sep };

Route pathRoute(P kind, std::string value, bool case_sensitive = true) {
  Route r;
  switch (kind) {
    case P::Prefix:
      r.match.prefix = value;
      break;
    case P::Path:
      r.match.path = value;
      break;
    case P::Regex:
      r.match.safe_regex = RegexMatcher{value};
      break;
    case P::Sep:
      r.match.path_separated_prefix = value;
      break;
  }
  r.match.case_sensitive = case_sensitive;
  r.route.emplace();
  r.route->cluster = "hit";
  return r;
}

TEST_CASE("path matchers see the path without query and fragment", "[routing]") {
  auto [kind, value, cs, path, hit] = GENERATE(table<P, std::string, bool, std::string, bool>({
      {P::Prefix, "/api", true, "/api/v1", true},
      {P::Prefix, "/api", true, "/apix", true},
      {P::Prefix, "/api", true, "/ap?i", false},  // query is not part of the path
      {P::Prefix, "/api", true, "/API", false},
      {P::Prefix, "/api", false, "/API/x", true},
      {P::Prefix, "", true, "/anything", true},
      {P::Path, "/exact", true, "/exact", true},
      {P::Path, "/exact", true, "/exact?x=1", true},
      {P::Path, "/exact", true, "/exact#frag", true},
      {P::Path, "/exact", true, "/exact/", false},
      {P::Path, "/exact", true, "/EXACT", false},
      {P::Path, "/exact", false, "/EXACT", true},
      {P::Regex, "/v[0-9]+/.*", true, "/v12/users", true},
      {P::Regex, "/v[0-9]+", true, "/v12/users", false},  // full match, not partial
      {P::Regex, "/v[0-9]+", true, "/v12?q=/x", true},
      {P::Regex, "/v[0-9]+", false, "/V12", false},  // case_sensitive ignored by regex
      {P::Sep, "/api/dev", true, "/api/dev", true},
      {P::Sep, "/api/dev", true, "/api/dev/v1", true},
      {P::Sep, "/api/dev", true, "/api/dev?x", true},
      {P::Sep, "/api/dev", true, "/api/dev#f", true},
      {P::Sep, "/api/dev", true, "/api/developer", false},
      {P::Sep, "/api/dev", true, "/api/de", false},
      {P::Sep, "/api/dev", false, "/API/Dev/x", true},
  }));
  auto t = mustCreate(singleVhost({pathRoute(kind, value, cs)}));
  CAPTURE(value, path, cs);
  CHECK((clusterFor(*t, TestRequest().at(path)) == "hit") == hit);
}

TEST_CASE("a request without :path matches no route", "[routing]") {
  auto t = mustCreate(singleVhost({prefixRoute("", "c")}));
  TestRequest r;
  r.has_path = false;
  CHECK(clusterFor(*t, r) == "<none>");
}

Route connectRoute(std::string cluster) {
  Route r;
  r.match.connect_matcher = true;
  r.route.emplace();
  r.route->cluster = std::move(cluster);
  return r;
}

TEST_CASE("connect_matcher takes CONNECT requests, and nothing else takes them", "[routing]") {
  // Envoy: a request without :path skips every route but a ConnectRouteEntryImpl,
  // which matches CONNECT (and only CONNECT) whatever its path.
  auto t = mustCreate(singleVhost({prefixRoute("", "any-path"), connectRoute("tunnel")}));
  TestRequest connect;
  connect.method = "CONNECT";
  connect.authority = "db.internal:5432";
  connect.has_path = false;
  CHECK(clusterFor(*t, connect) == "tunnel");
  connect.has_path = true;
  connect.path = "";  // HTTP/1.1's authority-form CONNECT: an empty path
  CHECK(clusterFor(*t, connect) == "tunnel");
  CHECK(clusterFor(*t, TestRequest().at("/x")) == "any-path");
  // A GET has nothing for connect_matcher, even with no path route before it.
  auto only_connect = mustCreate(singleVhost({connectRoute("tunnel")}));
  CHECK(clusterFor(*only_connect, TestRequest().at("/")) == "<none>");
  CHECK(clusterFor(*only_connect, connect) == "tunnel");
  // No prefix (not even "") matches a CONNECT.
  auto only_prefix = mustCreate(singleVhost({prefixRoute("", "any-path")}));
  CHECK(clusterFor(*only_prefix, connect) == "<none>");
}

TEST_CASE("connect_matcher is one of the path specifiers", "[routing]") {
  Route r = connectRoute("c");
  r.match.prefix = "/";
  CHECK(createError(singleVhost({r}))
            .find("exactly one of prefix, path, safe_regex, "
                  "path_separated_prefix, connect_matcher must be set") != std::string::npos);
}

TEST_CASE("the first matching route wins", "[routing]") {
  auto t = mustCreate(singleVhost({prefixRoute("/a/b", "ab"), prefixRoute("/a", "a"),
                                   prefixRoute("/", "root"), prefixRoute("/a/b/c", "never")}));
  CHECK(clusterFor(*t, TestRequest().at("/a/b/c")) == "ab");
  CHECK(clusterFor(*t, TestRequest().at("/a/x")) == "a");
  CHECK(clusterFor(*t, TestRequest().at("/z")) == "root");
}

struct HeaderCase {
  std::string name;
  HeaderMatcher matcher;
  std::vector<std::pair<std::string, std::string>> headers;
  bool hit;
};

HeaderMatcher hm(std::function<void(HeaderMatcher&)> f, std::string name = "x-h") {
  HeaderMatcher h;
  h.name = std::move(name);
  f(h);
  return h;
}

StringMatcher sm(std::function<void(StringMatcher&)> f) {
  StringMatcher s;
  f(s);
  return s;
}

TEST_CASE("header matchers follow Envoy's HeaderUtility::matchHeaders", "[routing]") {
  using H = std::vector<std::pair<std::string, std::string>>;
  auto c = GENERATE_COPY(values<HeaderCase>({
      {"string exact", hm([](auto& h) { h.string_match = sm([](auto& s) { s.exact = "v"; }); }),
       H{{"x-h", "v"}}, true},
      {"string exact is case-sensitive",
       hm([](auto& h) { h.string_match = sm([](auto& s) { s.exact = "v"; }); }), H{{"x-h", "V"}},
       false},
      {"string exact ignore_case", hm([](auto& h) {
         h.string_match = sm([](auto& s) {
           s.exact = "v";
           s.ignore_case = true;
         });
       }),
       H{{"x-h", "V"}}, true},
      {"string exact empty matches only empty",
       hm([](auto& h) { h.string_match = sm([](auto& s) { s.exact = ""; }); }), H{{"x-h", "v"}},
       false},
      {"deprecated exact_match", hm([](auto& h) { h.exact_match = "v"; }), H{{"x-h", "v"}}, true},
      {"deprecated empty exact_match matches any value", hm([](auto& h) { h.exact_match = ""; }),
       H{{"x-h", "anything"}}, true},
      {"prefix", hm([](auto& h) { h.string_match = sm([](auto& s) { s.prefix = "ab"; }); }),
       H{{"x-h", "abc"}}, true},
      {"prefix ignore_case", hm([](auto& h) {
         h.string_match = sm([](auto& s) {
           s.prefix = "ab";
           s.ignore_case = true;
         });
       }),
       H{{"x-h", "ABc"}}, true},
      {"deprecated prefix_match", hm([](auto& h) { h.prefix_match = "ab"; }), H{{"x-h", "xab"}},
       false},
      {"suffix", hm([](auto& h) { h.string_match = sm([](auto& s) { s.suffix = "bc"; }); }),
       H{{"x-h", "abc"}}, true},
      {"deprecated suffix_match", hm([](auto& h) { h.suffix_match = "bc"; }), H{{"x-h", "abc"}},
       true},
      {"contains", hm([](auto& h) { h.string_match = sm([](auto& s) { s.contains = "b"; }); }),
       H{{"x-h", "abc"}}, true},
      {"contains ignore_case", hm([](auto& h) {
         h.string_match = sm([](auto& s) {
           s.contains = "Bc";
           s.ignore_case = true;
         });
       }),
       H{{"x-h", "aBC"}}, true},
      {"deprecated contains_match", hm([](auto& h) { h.contains_match = "z"; }), H{{"x-h", "abc"}},
       false},
      {"safe_regex full match", hm([](auto& h) {
         h.string_match = sm([](auto& s) { s.safe_regex = RegexMatcher{"a.c"}; });
       }),
       H{{"x-h", "abc"}}, true},
      {"safe_regex is not a partial match",
       hm([](auto& h) { h.string_match = sm([](auto& s) { s.safe_regex = RegexMatcher{"b"}; }); }),
       H{{"x-h", "abc"}}, false},
      {"deprecated safe_regex_match",
       hm([](auto& h) { h.safe_regex_match = RegexMatcher{"[0-9]+"}; }), H{{"x-h", "123"}}, true},
      {"present_match true", hm([](auto& h) { h.present_match = true; }), H{{"x-h", ""}}, true},
      {"present_match true, absent", hm([](auto& h) { h.present_match = true; }), H{}, false},
      {"present_match false, absent", hm([](auto& h) { h.present_match = false; }), H{}, true},
      {"present_match false, present", hm([](auto& h) { h.present_match = false; }),
       H{{"x-h", "v"}}, false},
      {"no specifier means present", hm([](auto&) {}), H{{"x-h", "v"}}, true},
      {"no specifier, absent", hm([](auto&) {}), H{}, false},
      {"range inside", hm([](auto& h) {
         h.range_match = Int64Range{-10, 10};
       }),
       H{{"x-h", "-10"}}, true},
      {"range end is exclusive", hm([](auto& h) {
         h.range_match = Int64Range{-10, 10};
       }),
       H{{"x-h", "10"}}, false},
      {"range non-integer does not match", hm([](auto& h) {
         h.range_match = Int64Range{0, 10};
       }),
       H{{"x-h", "5.0"}}, false},
      {"range accepts SimpleAtoi's '+'", hm([](auto& h) {
         h.range_match = Int64Range{0, 10};
       }),
       H{{"x-h", "+5"}}, true},
      {"range int64 overflow does not match", hm([](auto& h) {
         h.range_match = Int64Range{0, 10};
       }),
       H{{"x-h", "99999999999999999999"}}, false},
      {"invert exact", hm([](auto& h) {
         h.exact_match = "v";
         h.invert_match = true;
       }),
       H{{"x-h", "w"}}, true},
      {"invert never matches an absent header", hm([](auto& h) {
         h.exact_match = "v";
         h.invert_match = true;
       }),
       H{}, false},
      {"invert present_match true, absent", hm([](auto& h) {
         h.present_match = true;
         h.invert_match = true;
       }),
       H{}, true},
      {"invert present_match false, absent", hm([](auto& h) {
         h.present_match = false;
         h.invert_match = true;
       }),
       H{}, false},
      {"treat_missing_header_as_empty matches \"\"", hm([](auto& h) {
         h.string_match = sm([](auto& s) { s.exact = ""; });
         h.treat_missing_header_as_empty = true;
       }),
       H{}, true},
      {"treat_missing_header_as_empty with invert", hm([](auto& h) {
         h.string_match = sm([](auto& s) { s.exact = "v"; });
         h.treat_missing_header_as_empty = true;
         h.invert_match = true;
       }),
       H{}, true},
      {"repeated values are joined with ','",
       hm([](auto& h) { h.string_match = sm([](auto& s) { s.exact = "a,b"; }); }),
       H{{"x-h", "a"}, {"x-h", "b"}}, true},
      {"repeated values: exact on one value fails",
       hm([](auto& h) { h.string_match = sm([](auto& s) { s.exact = "a"; }); }),
       H{{"x-h", "a"}, {"x-h", "b"}}, false},
      {"names are case-insensitive", hm([](auto& h) { h.exact_match = "v"; }, "X-H"),
       H{{"x-h", "v"}}, true},
      {":method pseudo-header", hm([](auto& h) { h.exact_match = "GET"; }, ":method"), H{}, true},
      {":authority pseudo-header", hm([](auto& h) { h.exact_match = "example.com"; }, ":authority"),
       H{}, true},
  }));
  Route r = prefixRoute("/", "hit");
  r.match.headers = {c.matcher};
  auto t = mustCreate(singleVhost({r}));
  TestRequest req;
  req.header_list = c.headers;
  CAPTURE(c.name);
  CHECK((clusterFor(*t, req) == "hit") == c.hit);
}

TEST_CASE("all header matchers of a route must match", "[routing]") {
  Route r = prefixRoute("/", "hit");
  r.match.headers = {exactHeader("a", "1"), exactHeader("b", "2")};
  auto t = mustCreate(singleVhost({r}));
  CHECK(clusterFor(*t, TestRequest().header("a", "1").header("b", "2")) == "hit");
  CHECK(clusterFor(*t, TestRequest().header("a", "1")) == "<none>");
}

TEST_CASE("query parameter matchers use the first raw value", "[routing]") {
  struct Q {
    std::string name;
    QueryParameterMatcher m;
    std::string path;
    bool hit;
  };
  auto qm = [](std::function<void(QueryParameterMatcher&)> f) {
    QueryParameterMatcher q;
    q.name = "k";
    f(q);
    return q;
  };
  auto exact = [&](std::string v) {
    return qm([v](auto& q) { q.string_match = sm([v](auto& s) { s.exact = v; }); });
  };
  auto c = GENERATE_COPY(values<Q>({
      {"exact", exact("v"), "/p?k=v", true},
      {"exact, other value", exact("v"), "/p?k=w", false},
      {"only the first value counts", exact("v"), "/p?k=w&k=v", false},
      {"first value wins", exact("v"), "/p?a=1&k=v&k=w", true},
      {"values are not percent-decoded", exact("a b"), "/p?k=a%20b", false},
      {"raw percent value", exact("a%20b"), "/p?k=a%20b", true},
      {"key without '=' has an empty value", exact(""), "/p?k", true},
      {"fragment stays in the last value (Envoy parses the raw :path)", exact("v"), "/p?k=v#f",
       false},
      {"absent", exact("v"), "/p", false},
      {"no specifier means present", qm([](auto&) {}), "/p?k=", true},
      {"no specifier, absent", qm([](auto&) {}), "/p?kk=1", false},
      {"present_match true", qm([](auto& q) { q.present_match = true; }), "/p?k=1", true},
      {"present_match false, absent", qm([](auto& q) { q.present_match = false; }), "/p?x=1", true},
      {"present_match false, present", qm([](auto& q) { q.present_match = false; }), "/p?k=1",
       false},
      {"ignore_case string match", qm([](auto& q) {
         q.string_match = sm([](auto& s) {
           s.prefix = "AB";
           s.ignore_case = true;
         });
       }),
       "/p?k=abc", true},
  }));
  Route r = prefixRoute("/", "hit");
  r.match.query_parameters = {c.m};
  auto t = mustCreate(singleVhost({r}));
  CAPTURE(c.name, c.path);
  CHECK((clusterFor(*t, TestRequest().at(c.path)) == "hit") == c.hit);
}

TEST_CASE("runtime_fraction matches when random % denominator < numerator", "[routing]") {
  using D = FractionalPercent::DenominatorType;
  auto [num, den, random, hit] = GENERATE(table<uint32_t, D, uint64_t, bool>({
      {50, D::HUNDRED, 49, true},
      {50, D::HUNDRED, 50, false},  // strictly less (the docs' "<=" is not what the code does)
      {50, D::HUNDRED, 149, true},
      {0, D::HUNDRED, 0, false},
      {100, D::HUNDRED, 99, true},
      {1, D::TEN_THOUSAND, 10000, true},
      {1, D::TEN_THOUSAND, 10001, false},
      {500000, D::MILLION, 499999, true},
      {500000, D::MILLION, 500000, false},
  }));
  Route r = prefixRoute("/", "hit");
  r.match.runtime_fraction = RuntimeFractionalPercent{FractionalPercent{num, den}, "some.key"};
  auto t = mustCreate(singleVhost({r, prefixRoute("/", "fallback")}));
  CAPTURE(num, random);
  CHECK(clusterFor(*t, TestRequest(), random) == (hit ? "hit" : "fallback"));
}

TEST_CASE("grpc match requires an application/grpc content-type", "[routing]") {
  auto [ct, hit] = GENERATE(table<std::string, bool>({
      {"application/grpc", true},
      {"application/grpc+proto", true},
      {"application/grpc-web", false},
      {"application/json", false},
      {"", false},
  }));
  Route r = prefixRoute("/", "hit");
  r.match.grpc.emplace();
  auto t = mustCreate(singleVhost({r}));
  TestRequest req;
  if (!ct.empty()) req.header("content-type", ct);
  CAPTURE(ct);
  CHECK((clusterFor(*t, req) == "hit") == hit);
}

}  // namespace
}  // namespace turnout::routing::test
