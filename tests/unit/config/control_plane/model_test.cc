#include "config/control_plane/model.h"
#include "config/json_limits.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <random>
#include <string>
#include <utility>

namespace turnout::control_plane {
namespace {

std::string errorOf(const absl::Status& s) {
  REQUIRE_FALSE(s.ok());
  CHECK(s.code() == absl::StatusCode::kInvalidArgument);
  return std::string(s.message());
}

template <typename T>
std::string errorOf(const absl::StatusOr<T>& r) {
  return errorOf(r.status());
}

TEST_CASE("error kinds map to the HTTP statuses the REST API answers with", "[control_plane]") {
  CHECK(httpStatusFor(absl::OkStatus()) == 200);
  CHECK(httpStatusFor(invalidArgument("port", "bad")) == 400);
  CHECK(httpStatusFor(notFoundError("x")) == 404);
  CHECK(httpStatusFor(conflictError("x")) == 409);
  CHECK(httpStatusFor(preconditionFailedError("x")) == 412);
  CHECK(httpStatusFor(absl::InternalError("x")) == 500);
  CHECK(httpStatusFor(absl::DataLossError("x")) == 500);
  CHECK(invalidArgument("forks.reviews[0]", "'x' is not host:port").message() ==
        "forks.reviews[0]: 'x' is not host:port");
}

// ---- services -------------------------------------------------------------------------

TEST_CASE("a service parses from the issue's JSON shape with the default namespace",
          "[control_plane]") {
  auto s = parseService("reviews", R"({"port": 9080, "endpoints": ["10.0.0.5:9080"]})");
  REQUIRE(s.ok());
  CHECK(s->name == "reviews");
  CHECK(s->port == 9080);
  CHECK(s->ns == "default");
  REQUIRE(s->endpoints.size() == 1);
  CHECK(s->endpoints[0] == Endpoint{"10.0.0.5", 9080});
}

TEST_CASE("a service with a namespace, several endpoints and no endpoints", "[control_plane]") {
  auto s = parseService("ratings", R"({"port": 80, "namespace": "shop", "name": "ratings",
      "endpoints": ["10.0.0.1:80", "[fd00::1]:8080", "ratings-0.shop.svc.cluster.local:80"]})");
  REQUIRE(s.ok());
  CHECK(s->ns == "shop");
  REQUIRE(s->endpoints.size() == 3);
  CHECK(s->endpoints[1] == Endpoint{"fd00::1", 8080});
  CHECK(s->endpoints[1].isIp());
  CHECK_FALSE(s->endpoints[2].isIp());
  CHECK(s->endpoints[1].toString() == "[fd00::1]:8080");

  auto empty = parseService("new-svc", R"({"port": 1})");
  REQUIRE(empty.ok());
  CHECK(empty->endpoints.empty());
}

TEST_CASE("service validation names the bad field", "[control_plane]") {
  using P = std::pair<const char*, const char*>;
  auto [json, want] = GENERATE(
      P{R"({})", "port: required"},
      P{R"({"port": 0})", "port: must be an integer in 1..65535, got 0"},
      P{R"({"port": 65536})", "port: must be an integer in 1..65535"},
      P{R"({"port": 80.5})", "port: must be an integer in 1..65535"},
      P{R"({"port": -1})", "port: must be an integer in 1..65535"},
      P{R"({"port": "80"})", "port: must be an integer, got a string"},
      P{R"({"port": 80, "namespace": "Shop"})", "namespace: 'Shop' is not a DNS label"},
      P{R"({"port": 80, "namespace": ""})", "namespace: '' is not a DNS label"},
      P{R"({"port": 80, "namespace": 3})", "namespace: must be a string, got a number"},
      P{R"({"port": 80, "endpoints": "10.0.0.1:80"})",
        "endpoints: must be a list of \"host:port\", got a string"},
      P{R"({"port": 80, "endpoints": [1]})", "endpoints[0]: must be a string, got a number"},
      P{R"({"port": 80, "endpoints": ["x"]})", "endpoints[0]: 'x' is not host:port"},
      P{R"({"port": 80, "endpoints": ["10.0.0.1:80", "10.0.0.1:80"]})",
        "endpoints[1]: '10.0.0.1:80' is listed twice (also [0])"},
      P{R"({"port": 80, "prot": 1})", "prot: unknown field (expected one of: name, port, "
                                       "namespace, endpoints, protocol)"},
      P{R"({"port": 80, "protocol": "h2c"})",
        "protocol: 'h2c' is not one of \"http\", \"http2\", \"grpc\""},
      P{R"({"port": 80, "protocol": 2})", "protocol: must be a string"},
      P{R"({"port": 80, "name": "other"})",
        "name: 'other' does not match the name in the request, 'reviews'"},
      P{R"([1])", "the body must be a JSON object, got a list"},
      P{R"({"port": 1, "port": 2})", "the body is not valid JSON"},
      P{R"({"port": 80, "namespace": "a\u0000\n"})", R"(namespace: 'a\x00\x0a' is not a DNS label)"},
      P{R"({"port": )", "the body is not valid JSON"});
  CAPTURE(json);
  CHECK_THAT(errorOf(parseService("reviews", json)), Catch::StartsWith(want));
}

TEST_CASE("deeply nested and non-UTF-8 bodies are refused at once, with a reason fit for JSON",
          "[control_plane]") {
  // protobuf's JSON parser takes minutes over 40 KB of balanced brackets (its
  // cost grows with the square of the depth): the depth is checked first.
  const std::string deep = "{\"port\": 80, \"x\": " + std::string(20000, '[') + std::string(20000, ']') + "}";
  CHECK_THAT(errorOf(parseService("reviews", deep)),
             Catch::Equals("the body nests arrays and objects deeper than 32"));
  const std::string at_limit = std::string(32, '[') + std::string(32, ']');
  CHECK_THAT(errorOf(parseService("reviews", at_limit)), Catch::StartsWith("the body must be a JSON object"));
  const std::string objects = [] {
    std::string s = "{\"port\": 80, \"x\": ";
    for (int i = 0; i < 31; ++i) s += "{\"a\": ";
    s += "1" + std::string(31, '}') + "}";
    return s;
  }();
  CHECK_THAT(errorOf(parseService("reviews", objects)), Catch::StartsWith("x: unknown field"));
  CHECK_THAT(errorOf(parseService("reviews", "{\"x\": " + at_limit + "}")),
             Catch::StartsWith("the body nests arrays and objects deeper than 32"));
  CHECK(config::jsonNestingWithin(R"({"a": "[[[[[[", "b": "\"{{{{"})", 1));
  CHECK_FALSE(config::jsonNestingWithin(R"({"a": [{}]})", 2));
  const std::string message = errorOf(parseService("reviews", "{\"port\": \"\xff\xfe\"}"));
  CHECK_THAT(message, Catch::StartsWith("the body is not valid JSON"));
  CHECK(std::all_of(message.begin(), message.end(), [](char c) { return c >= 0x20 && c <= 0x7e; }));
}

TEST_CASE("service names are DNS labels without the cluster-name separator", "[control_plane]") {
  for (const char* good : {"a", "reviews", "reviews-v2", "0abc", "a23456789012345678901234567890"
                                                                  "123456789012345678901234567890"
                                                                  "123"}) {
    CAPTURE(good);
    CHECK(parseService(good, R"({"port": 80})").ok());
  }
  for (const char* bad : {"", "Reviews", "-a", "a-", "a_b", "a.b", "a--b", "xn--abc", "é",
                          "a234567890123456789012345678901234567890123456789012345678901234"}) {
    CAPTURE(bad);
    CHECK_THAT(errorOf(parseService(bad, R"({"port": 80})")), Catch::StartsWith("name: '"));
  }
}

TEST_CASE("values in error messages are cut short", "[control_plane]") {
  const std::string longest(100000, 'x');
  const std::string msg = errorOf(parseEndpoint("e", longest));
  CHECK(msg == "e: '" + std::string(64, 'x') + "...(100000 bytes)' is not host:port");
}

TEST_CASE("endpoints are IPv4, bracketed IPv6 or DNS names with a port", "[control_plane]") {
  using P = std::pair<const char*, Endpoint>;
  auto [text, want] = GENERATE(P{"10.0.0.5:9080", {"10.0.0.5", 9080}},
                               P{"127.0.0.1:1", {"127.0.0.1", 1}},
                               P{"[::1]:65535", {"::1", 65535}},
                               P{"localhost:80", {"localhost", 80}},
                               P{"reviews-v2.shop.svc.cluster.local:9080",
                                 {"reviews-v2.shop.svc.cluster.local", 9080}});
  auto ep = parseEndpoint("e", text);
  REQUIRE(ep.ok());
  CHECK(*ep == want);
  CHECK(ep->toString() == text);
}

TEST_CASE("bad endpoints are rejected with the reason", "[control_plane]") {
  using P = std::pair<const char*, const char*>;
  auto [text, want] = GENERATE(
      P{"x", "e: 'x' is not host:port"},
      P{"", "e: '' is not host:port"},
      P{":80", "e: ':80' is not host:port"},
      P{"10.0.0.5", "e: '10.0.0.5' is not host:port"},
      P{"10.0.0.5:", "the port must be a number in 1..65535"},
      P{"10.0.0.5:0", "the port must be a number in 1..65535"},
      P{"10.0.0.5:65536", "the port must be a number in 1..65535"},
      P{"10.0.0.5:+80", "the port must be a number in 1..65535"},
      P{"10.0.0.5:080x", "the port must be a number in 1..65535"},
      P{"10.0.0.256:80", "not an IPv4 address"},
      P{"10.0.0:80", "not an IPv4 address"},
      P{"::1:80", "write IPv6 addresses as [addr]:port"},
      P{"[::1]80", "e: '[::1]80' is not host:port"},
      P{"[zz]:80", "not an IPv6 address in brackets"},
      P{"bad_host:80", "not a DNS name or IP address"},
      P{"-a.b:80", "not a DNS name or IP address"},
      P{"a..b:80", "not a DNS name or IP address"},
      P{"a b:80", "not a DNS name or IP address"});
  CAPTURE(text);
  CHECK_THAT(errorOf(parseEndpoint("e", text)), Catch::Contains(want));
}

TEST_CASE("a service round-trips through JSON", "[control_plane]") {
  auto s = parseService("reviews", R"({"port": 9080, "namespace": "shop",
                                       "endpoints": ["10.0.0.5:9080", "[fd00::2]:1"]})");
  REQUIRE(s.ok());
  const std::string json = toJson(*s);
  CHECK(json ==
        R"({"name":"reviews","port":9080,"namespace":"shop","endpoints":["10.0.0.5:9080","[fd00::2]:1"],"protocol":"http"})");
  auto again = parseService("reviews", json);
  REQUIRE(again.ok());
  CHECK(*again == *s);
}

// ---- sandboxes ------------------------------------------------------------------------

TEST_CASE("a sandbox parses from the issue's JSON shape", "[control_plane]") {
  auto s = parseSandbox("feat-x", R"({"forks": {"reviews": ["10.0.0.7:9080"]}, "ttl": "24h"})");
  REQUIRE(s.ok());
  CHECK(s->key == "feat-x");
  REQUIRE(s->forks.size() == 1);
  CHECK(s->forks.at("reviews") == Endpoints{{"10.0.0.7", 9080}});
  CHECK(s->ttl == "24h");
  CHECK(s->ttl_duration == absl::Hours(24));
  CHECK(s->expires_at == absl::InfiniteFuture());
}

TEST_CASE("sandbox validation names the bad field", "[control_plane]") {
  using P = std::pair<const char*, const char*>;
  auto [json, want] = GENERATE(
      P{R"({})", "forks: required"},
      P{R"({"forks": {}})", "forks: a sandbox forks at least one service"},
      P{R"({"forks": []})", "forks: must be an object, got a list"},
      P{R"({"forks": {"reviews": ["x"]}})", "forks.reviews[0]: 'x' is not host:port"},
      P{R"({"forks": {"reviews": ["10.0.0.1:1", "y:"]}})", "forks.reviews[1]: 'y:' is not "
                                                            "host:port"},
      P{R"({"forks": {"reviews": []}})", "forks.reviews: needs at least one endpoint"},
      P{R"({"forks": {"Reviews": ["10.0.0.1:1"]}})", "forks.Reviews: 'Reviews' is not a DNS "
                                                      "label"},
      P{R"({"forks": {"a.b": ["10.0.0.1:1"]}})", "forks[\"a.b\"]: 'a.b' is not a DNS label"},
      P{R"({"forks": {"a": ["10.0.0.1:1"]}, "ttl": "1y"})", "ttl: '1y' is not a TTL"},
      P{R"({"forks": {"a": ["10.0.0.1:1"]}, "ttl": 30})", "ttl: must be a string, got a number"},
      P{R"({"forks": {"a": ["10.0.0.1:1"]}, "ttl": "0m"})", "ttl: the TTL must be positive"},
      P{R"({"forks": {"a": ["10.0.0.1:1"]}, "ttl": "367d"})", "ttl: the TTL may be at most 366d"},
      P{R"({"forks": {"a": ["10.0.0.1:1"]}, "labels": []})",
        "labels: must be an object of strings, got a list"},
      P{R"({"forks": {"a": ["10.0.0.1:1"]}, "labels": {"team": 1}})",
        "labels.team: must be a string, got a number"},
      P{R"({"forks": {"a": ["10.0.0.1:1"]}, "labels": {"-x": "y"}})", "labels.-x: a label key"},
      P{R"({"forks": {"a": ["10.0.0.1:1"]}, "labels": {"x": "a b"}})",
        "labels.x: 'a b': a label value"},
      P{R"({"forks": {"a": ["10.0.0.1:1"]}, "expires_at": 5})",
        "expires_at: must be a string (it is output only and ignored), got a number"},
      P{R"({"forks": {"a": ["10.0.0.1:1"]}, "key": "other"})",
        "key: 'other' does not match the name in the request, 'feat-x'"},
      P{R"({"forks": {"a": ["10.0.0.1:1"]}, "fork": {}})", "fork: unknown field"});
  CAPTURE(json);
  CHECK_THAT(errorOf(parseSandbox("feat-x", json)), Catch::StartsWith(want));
}

TEST_CASE("routing keys are baggage-value-safe tokens of at most 40 characters",
          "[control_plane]") {
  const char* body = R"({"forks": {"a": ["10.0.0.1:1"]}})";
  for (const char* good : {"a", "feat-x", "Feat_X.2", "0", "a234567890123456789012345678901234567890"}) {
    CAPTURE(good);
    CHECK(parseSandbox(good, body).ok());
  }
  for (const char* bad : {"", "a b", "a,b", "a;b", "a=b", "a%20", "a/b", "\"a\"", "ü",
                          "a2345678901234567890123456789012345678901"}) {
    CAPTURE(bad);
    CHECK_THAT(errorOf(parseSandbox(bad, body)), Catch::StartsWith("key: '"));
  }
}

TEST_CASE("TTLs take s, m, h and d, alone or summed", "[control_plane]") {
  using P = std::pair<const char*, absl::Duration>;
  auto [text, want] = GENERATE(P{"30m", absl::Minutes(30)}, P{"24h", absl::Hours(24)},
                               P{"7d", absl::Hours(24 * 7)}, P{"90s", absl::Seconds(90)},
                               P{"1h30m", absl::Minutes(90)}, P{"1d12h", absl::Hours(36)},
                               P{"366d", absl::Hours(24 * 366)});
  auto d = parseTtl("ttl", text);
  REQUIRE(d.ok());
  CHECK(*d == want);
  for (const char* bad : {"", "h", "30", "30M", "1.5h", "-1h", "1h 30m", "1w", "9999999999s",
                          "30mm"}) {
    CAPTURE(bad);
    CHECK_FALSE(parseTtl("ttl", bad).ok());
  }
}

TEST_CASE("a sandbox round-trips through JSON, expires_at being output only", "[control_plane]") {
  auto s = parseSandbox("feat-x", R"({"forks": {"reviews": ["10.0.0.7:9080"],
      "ratings": ["10.0.0.8:80", "10.0.0.9:80"]}, "labels": {"team": "checkout",
      "app.kubernetes.io/name": "shop"}, "ttl": "1h30m"})");
  REQUIRE(s.ok());
  s->expires_at = absl::FromUnixSeconds(1700000000);
  const std::string json = toJson(*s);
  CHECK(json ==
        R"({"key":"feat-x","forks":{"ratings":["10.0.0.8:80","10.0.0.9:80"],"reviews":["10.0.0.7:9080"]},)"
        R"("labels":{"app.kubernetes.io/name":"shop","team":"checkout"},"ttl":"1h30m",)"
        R"("expires_at":"2023-11-14T22:13:20Z"})");
  auto again = parseSandbox("feat-x", json);
  REQUIRE(again.ok());
  again->expires_at = s->expires_at;
  CHECK(*again == *s);
}

// ---- releases -------------------------------------------------------------------------

const char* kRelease = R"({
  "versions": {"v1": ["10.0.1.1:9080"], "v2": ["10.0.2.1:9080", "10.0.2.2:9080"]},
  "weights": {"v1": 90, "v2": 10},
  "matches": [
    {"headers": {"x-canary": "always"}, "version": "v2"},
    {"headers": {"x-user": {"prefix": "beta-"}, "x-region": {"regex": "eu-[a-z]+"}},
     "version": "v2"},
    {"headers": {"x-pin-v1": {"present": true}}, "version": "v1"}
  ]
})";

TEST_CASE("a release parses weights, versions and header matches", "[control_plane]") {
  auto r = parseRelease("reviews", kRelease);
  REQUIRE(r.ok());
  CHECK(r->service == "reviews");
  CHECK(r->versions.size() == 2);
  CHECK(r->weights == std::map<std::string, uint32_t>{{"v1", 90}, {"v2", 10}});
  REQUIRE(r->matches.size() == 3);
  CHECK(r->matches[0].headers ==
        std::vector<HeaderMatch>{{"x-canary", HeaderMatch::Kind::kExact, "always"}});
  // Headers of one match are ANDed and kept in name order.
  CHECK(r->matches[1].headers ==
        std::vector<HeaderMatch>{{"x-region", HeaderMatch::Kind::kRegex, "eu-[a-z]+"},
                                 {"x-user", HeaderMatch::Kind::kPrefix, "beta-"}});
  CHECK(r->matches[2].headers ==
        std::vector<HeaderMatch>{{"x-pin-v1", HeaderMatch::Kind::kPresent, ""}});
  CHECK(r->matches[2].version == "v1");
}

TEST_CASE("blue/green is weights 100 and 0, matches alone need no weights", "[control_plane]") {
  auto bg = parseRelease("reviews", R"({"versions": {"blue": [], "green": ["10.0.0.1:1"]},
                                        "weights": {"blue": 100, "green": 0}})");
  REQUIRE(bg.ok());
  CHECK(bg->weights.at("green") == 0);
  auto only = parseRelease("reviews", R"({"versions": {"v2": ["10.0.0.1:1"]},
      "matches": [{"headers": {"x-canary": "1"}, "version": "v2"}]})");
  REQUIRE(only.ok());
  CHECK(only->weights.empty());
}

TEST_CASE("release validation names the bad field", "[control_plane]") {
  using P = std::pair<const char*, const char*>;
  auto [json, want] = GENERATE(
      P{R"({"weights": {"v1": 90, "v2": 10}})", "versions: required"},
      P{R"({"versions": {}, "weights": {}})", "versions: a release declares at least one version"},
      P{R"({"versions": {"v1": ["x"]}, "weights": {"v1": 100}})",
        "versions.v1[0]: 'x' is not host:port"},
      P{R"({"versions": {"V1": []}, "weights": {"V1": 100}})", "versions.V1: 'V1' is not a DNS "
                                                               "label"},
      P{R"({"versions": {"a--b": []}, "weights": {"a--b": 100}})",
        "versions.a--b: 'a--b' contains \"--\""},
      P{R"({"versions": {"v1": []}})", "a release needs weights or matches (or both)"},
      P{R"({"versions": {"v1": [], "v2": []}, "weights": {"v1": 90, "v2": 20}})",
        "weights: the weights sum to 110; they must sum to 100"},
      P{R"({"versions": {"v1": [], "v2": []}, "weights": {"v1": 90}})",
        "weights: the weights sum to 90; they must sum to 100"},
      P{R"({"versions": {"v1": []}, "weights": {}})", "weights: name at least one version"},
      P{R"({"versions": {"v1": []}, "weights": {"v1": 100, "v3": 0}})",
        "weights.v3: unknown version 'v3' (declare it in versions)"},
      P{R"({"versions": {"v1": []}, "weights": {"v1": 100.5}})",
        "weights.v1: must be an integer in 0..100"},
      P{R"({"versions": {"v1": []}, "weights": {"v1": 101}})",
        "weights.v1: must be an integer in 0..100"},
      P{R"({"versions": {"v1": []}, "weights": {"v1": "100"}})",
        "weights.v1: must be an integer, got a string"},
      P{R"({"versions": {"v1": []}, "weights": [100]})",
        "weights: must be an object of version: weight, got a list"},
      P{R"({"versions": {"v1": []}, "matches": {}})", "matches: must be a list, got an object"},
      P{R"({"versions": {"v1": []}, "matches": [1]})", "matches[0]: must be an object"},
      P{R"({"versions": {"v1": []}, "matches": [{"headers": {"a": "b"}}]})",
        "matches[0].version: required"},
      P{R"({"versions": {"v1": []}, "matches": [{"headers": {"a": "b"}, "version": "v2"}]})",
        "matches[0].version: unknown version 'v2'"},
      P{R"({"versions": {"v1": []}, "matches": [{"version": "v1"}]})",
        "matches[0].headers: required"},
      P{R"({"versions": {"v1": []}, "matches": [{"headers": {}, "version": "v1"}]})",
        "matches[0].headers: match at least one header"},
      P{R"({"versions": {"v1": []}, "matches": [{"headers": {"X-Canary": "1"}, "version": "v1"}]})",
        "matches[0].headers.X-Canary: a header name is a lowercase HTTP token"},
      P{R"({"versions": {"v1": []}, "matches": [{"headers": {":path": "/"}, "version": "v1"}]})",
        "matches[0].headers[\":path\"]: a header name is a lowercase HTTP token"},
      P{R"({"versions": {"v1": []}, "matches": [{"headers": {"a": 1}, "version": "v1"}]})",
        "matches[0].headers.a: must be a string (exact value) or an object"},
      P{R"({"versions": {"v1": []}, "matches": [{"headers": {"a": {}}, "version": "v1"}]})",
        "matches[0].headers.a: set exactly one of exact, prefix, regex, present"},
      P{R"({"versions": {"v1": []}, "matches": [{"headers": {"a": {"exact": "x", "prefix": "y"}},
          "version": "v1"}]})",
        "matches[0].headers.a: set exactly one of"},
      P{R"({"versions": {"v1": []}, "matches": [{"headers": {"a": {"suffix": "x"}},
          "version": "v1"}]})",
        "matches[0].headers.a.suffix: unknown field"},
      P{R"({"versions": {"v1": []}, "matches": [{"headers": {"a": {"prefix": ""}},
          "version": "v1"}]})",
        "matches[0].headers.a.prefix: must not be empty"},
      P{R"({"versions": {"v1": []}, "matches": [{"headers": {"a": {"present": false}},
          "version": "v1"}]})",
        "matches[0].headers.a.present: must be true"},
      P{R"({"versions": {"v1": []}, "matches": [{"headers": {"a": {"regex": "("}},
          "version": "v1"}]})",
        "matches[0].headers.a.regex: '(' is not an RE2 regex"},
      P{R"({"versions": {"v1": []}, "matches": [{"headers": {"a": {"regex": "(a)\\1"}},
          "version": "v1"}]})",
        "matches[0].headers.a.regex: '(a)\\1' is not an RE2 regex"},
      P{R"({"versions": {"v1": []}, "matches": [{"headers": {"a": {"regex": "a{1000}"}},
          "version": "v1"}]})",
        "matches[0].headers.a.regex: the regex's RE2 program size is"},
      P{R"({"versions": {"v1": []}, "weights": {"v1": 100}, "match": []})",
        "match: unknown field"},
      P{R"({"versions": {"v1": []}, "weights": {"v1": 100}, "service": "x"})",
        "service: 'x' does not match the name in the request, 'reviews'"});
  CAPTURE(json);
  CHECK_THAT(errorOf(parseRelease("reviews", json)), Catch::StartsWith(want));
}

TEST_CASE("a release round-trips through JSON", "[control_plane]") {
  auto r = parseRelease("reviews", kRelease);
  REQUIRE(r.ok());
  const std::string json = toJson(*r);
  auto again = parseRelease("reviews", json);
  REQUIRE(again.ok());
  CHECK(*again == *r);
  CHECK(json.find(R"("x-pin-v1":{"present":true})") != std::string::npos);
}

// ---- references -----------------------------------------------------------------------

TEST_CASE("a sandbox forking an unknown service is a conflict", "[control_plane]") {
  Model m;
  m.services["reviews"] = *parseService("reviews", R"({"port": 9080})");
  auto sb = *parseSandbox("feat-x", R"({"forks": {"reviews": ["10.0.0.7:1"],
                                                  "ratings": ["10.0.0.8:1"]}})");
  auto s = checkSandboxReferences(m, sb);
  CHECK(s.code() == absl::StatusCode::kAborted);
  CHECK(httpStatusFor(s) == 409);
  CHECK_THAT(std::string(s.message()), Catch::Contains("forks service 'ratings', which does not "
                                                       "exist"));
  m.sandboxes["feat-x"] = sb;
  CHECK(checkReferences(m).code() == absl::StatusCode::kAborted);
}

TEST_CASE("a sandbox key equal to a release version of a forked service is a conflict",
          "[control_plane]") {
  Model m;
  m.services["reviews"] = *parseService("reviews", R"({"port": 9080})");
  m.releases["reviews"] = *parseRelease("reviews", R"({"versions": {"v2": ["10.0.0.1:1"]},
                                                       "weights": {"v2": 100}})");
  auto sb = *parseSandbox("v2", R"({"forks": {"reviews": ["10.0.0.7:1"]}})");
  auto s = checkSandboxReferences(m, sb);
  CHECK(s.code() == absl::StatusCode::kAborted);
  CHECK_THAT(std::string(s.message()), Catch::Contains("cluster 'reviews--v2'"));
  // The same name on a service the sandbox does not fork is fine.
  m.services["ratings"] = *parseService("ratings", R"({"port": 80})");
  CHECK(checkSandboxReferences(m, *parseSandbox("v2", R"({"forks": {"ratings": ["10.0.0.7:1"]}})"))
            .ok());
  // And the other way round: a release whose version is a sandbox key.
  Model m2;
  m2.services = m.services;
  m2.sandboxes["v2"] = sb;
  auto r = *parseRelease("reviews", R"({"versions": {"v2": []}, "weights": {"v2": 100}})");
  CHECK(checkReleaseReferences(m2, r).code() == absl::StatusCode::kAborted);
  CHECK(checkReleaseReferences(m2, *parseRelease("ratings", R"({"versions": {"v2": []},
                                                             "weights": {"v2": 100}})"))
            .ok());
  CHECK(checkReleaseReferences(Model{}, r).code() == absl::StatusCode::kAborted);
}

}  // namespace
}  // namespace turnout::control_plane

namespace turnout::control_plane {
namespace {

// Seeded byte flips, cuts and splices of valid bodies: every result is a value
// or an InvalidArgument, never a crash or another kind of error.
TEST_CASE("mangled bodies are rejected cleanly", "[control_plane]") {
  const std::vector<std::string> bodies = {
      R"({"port": 9080, "namespace": "shop", "endpoints": ["10.0.0.5:9080", "[::1]:1"]})",
      R"({"forks": {"reviews": ["10.0.0.7:9080"]}, "labels": {"a": "b"}, "ttl": "1h30m"})",
      kRelease};
  std::mt19937 rng(20261204);
  const std::string alphabet = "{}[]\":,.-0123456789abcdefvxyz \\/\t\n\x01\xff";
  size_t parsed = 0;
  for (int i = 0; i < 3000; ++i) {
    const size_t which = static_cast<size_t>(i) % bodies.size();
    std::string body = bodies[which];
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits && !body.empty(); ++e) {
      const size_t at = rng() % body.size();
      switch (rng() % 3) {
        case 0: body[at] = alphabet[rng() % alphabet.size()]; break;
        case 1: body.erase(at, 1 + rng() % 8); break;
        case 2: body.insert(at, bodies[rng() % bodies.size()].substr(0, rng() % 20)); break;
      }
    }
    absl::Status s;
    switch (which) {
      case 0: s = parseService("reviews", body).status(); break;
      case 1: s = parseSandbox("feat-x", body).status(); break;
      default: s = parseRelease("reviews", body).status(); break;
    }
    CAPTURE(body);
    CHECK((s.ok() || s.code() == absl::StatusCode::kInvalidArgument));
    if (s.ok()) ++parsed;
  }
  // Some edits keep a body valid (inside a string, say); most do not.
  CHECK(parsed < 3000);
}

}  // namespace
}  // namespace turnout::control_plane
