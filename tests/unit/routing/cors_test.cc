// CORS as Envoy's envoy.filters.http.cors decides it (routing/cors.h):
// preflights answered, simple requests' response headers, policies read
// route first, shadow mode, forward_not_matching_preflights.

#include "routing/cors.h"

#include <catch2/catch.hpp>

#include "tests/unit/routing/route_test_support.h"

namespace turnout::routing::test {
namespace {

StringMatcher exactOrigin(std::string o) {
  StringMatcher m;
  m.exact = std::move(o);
  return m;
}

std::unique_ptr<CompiledCorsPolicy> compiled(const CorsPolicy& p) {
  auto c = CompiledCorsPolicy::compile(p, "cors");
  REQUIRE(c.ok());
  return *std::move(c);
}

CorsPolicy webPolicy() {
  CorsPolicy p;
  p.allow_origin_string_match = {exactOrigin("https://app.example")};
  p.allow_methods = "GET, POST";
  p.allow_headers = "content-type, x-grpc-web";
  p.expose_headers = "grpc-status, grpc-message";
  p.max_age = "600";
  return p;
}

std::string header(const CorsResult& r, std::string_view name) {
  for (const auto& [n, v] : r.headers) {
    if (n == name) return v;
  }
  return "<absent>";
}

CorsResult evaluate(std::vector<const CompiledCorsPolicy*> policies, TestRequest req,
                    uint64_t random = 0) {
  return evaluateCors(policies, req.view(), random);
}

TestRequest preflight(std::string origin) {
  TestRequest r;
  r.method = "OPTIONS";
  r.header("origin", std::move(origin))
      .header("access-control-request-method", "POST")
      .header("access-control-request-headers", "content-type");
  return r;
}

TEST_CASE("a preflight from an allowed origin is answered with the policy", "[routing][cors]") {
  auto p = compiled(webPolicy());
  const CorsResult r = evaluate({p.get()}, preflight("https://app.example"));
  CHECK(r.origin == CorsResult::Origin::Valid);
  CHECK(r.preflight);
  CHECK(header(r, "access-control-allow-origin") == "https://app.example");
  CHECK(header(r, "access-control-allow-methods") == "GET, POST");
  CHECK(header(r, "access-control-allow-headers") == "content-type, x-grpc-web");
  CHECK(header(r, "access-control-max-age") == "600");
  CHECK(header(r, "access-control-allow-credentials") == "<absent>");
  // expose_headers is for the actual response, not the preflight.
  CHECK(header(r, "access-control-expose-headers") == "<absent>");
}

TEST_CASE("a simple request from an allowed origin gets the response headers", "[routing][cors]") {
  CorsPolicy policy = webPolicy();
  policy.allow_credentials = true;
  auto p = compiled(policy);
  TestRequest get;
  get.header("origin", "https://app.example");
  const CorsResult r = evaluate({p.get()}, get);
  CHECK_FALSE(r.preflight);
  CHECK(r.origin == CorsResult::Origin::Valid);
  CHECK(header(r, "access-control-allow-origin") == "https://app.example");
  CHECK(header(r, "access-control-allow-credentials") == "true");
  CHECK(header(r, "access-control-expose-headers") == "grpc-status, grpc-message");
  // An OPTIONS without Access-Control-Request-Method is not a preflight.
  get.method = "OPTIONS";
  CHECK_FALSE(evaluate({p.get()}, get).preflight);
}

TEST_CASE("an origin not allowed gets nothing, and its preflight goes upstream by default",
          "[routing][cors]") {
  CorsPolicy policy = webPolicy();
  auto p = compiled(policy);
  TestRequest get;
  get.header("origin", "https://evil.example");
  const CorsResult simple = evaluate({p.get()}, get);
  CHECK(simple.origin == CorsResult::Origin::Invalid);
  CHECK(simple.headers.empty());
  const CorsResult forwarded = evaluate({p.get()}, preflight("https://evil.example"));
  CHECK_FALSE(forwarded.preflight);
  CHECK(forwarded.headers.empty());
  // forward_not_matching_preflights: false answers it here, without the origin.
  policy.forward_not_matching_preflights = false;
  auto strict = compiled(policy);
  const CorsResult answered = evaluate({strict.get()}, preflight("https://evil.example"));
  CHECK(answered.preflight);
  CHECK(header(answered, "access-control-allow-origin") == "<absent>");
  CHECK(header(answered, "access-control-allow-methods") == "GET, POST");
}

TEST_CASE("no Origin, no policy: nothing happens", "[routing][cors]") {
  auto p = compiled(webPolicy());
  const CorsResult r = evaluate({p.get()}, TestRequest());
  CHECK(r.origin == CorsResult::Origin::None);
  CHECK_FALSE(r.preflight);
  CHECK(r.headers.empty());
  CHECK(evaluate({}, preflight("https://app.example")).origin == CorsResult::Origin::None);
}

TEST_CASE("the route's policy comes first, field by field", "[routing][cors]") {
  CorsPolicy route;
  route.allow_origin_string_match = {exactOrigin("https://admin.example")};
  route.max_age = "5";
  auto r = compiled(route);
  auto vh = compiled(webPolicy());
  // Origins from the route's (the first that has any): the vhost's no longer count.
  CHECK(evaluate({r.get(), vh.get()}, preflight("https://app.example")).origin ==
        CorsResult::Origin::Invalid);
  const CorsResult admin = evaluate({r.get(), vh.get()}, preflight("https://admin.example"));
  CHECK(admin.preflight);
  CHECK(header(admin, "access-control-max-age") == "5");
  // What the route leaves unset comes from the virtual host.
  CHECK(header(admin, "access-control-allow-methods") == "GET, POST");
}

TEST_CASE("a star origin matches every origin and star methods and headers echo the request",
          "[routing][cors]") {
  CorsPolicy policy;
  policy.allow_origin_string_match = {exactOrigin("*")};
  policy.allow_methods = "*";
  policy.allow_headers = "*";
  auto p = compiled(policy);
  const CorsResult r = evaluate({p.get()}, preflight("https://anyone.example"));
  CHECK(r.preflight);
  CHECK(header(r, "access-control-allow-origin") == "https://anyone.example");
  CHECK(header(r, "access-control-allow-methods") == "POST");
  CHECK(header(r, "access-control-allow-headers") == "content-type");
}

TEST_CASE("filter_enabled off with shadow_enabled on only counts", "[routing][cors]") {
  CorsPolicy policy = webPolicy();
  policy.filter_enabled =
      RuntimeFractionalPercent{{0, FractionalPercent::DenominatorType::HUNDRED}, ""};
  policy.shadow_enabled =
      RuntimeFractionalPercent{{100, FractionalPercent::DenominatorType::HUNDRED}, ""};
  auto p = compiled(policy);
  const CorsResult r = evaluate({p.get()}, preflight("https://app.example"));
  CHECK(r.origin == CorsResult::Origin::Valid);
  CHECK_FALSE(r.preflight);
  CHECK(r.headers.empty());
  // Neither enabled nor shadow: not even counted.
  policy.shadow_enabled.reset();
  auto off = compiled(policy);
  CHECK(evaluate({off.get()}, preflight("https://app.example")).origin == CorsResult::Origin::None);
  // filter_enabled is drawn against its fraction with the request's random value.
  policy.filter_enabled =
      RuntimeFractionalPercent{{50, FractionalPercent::DenominatorType::HUNDRED}, ""};
  auto half = compiled(policy);
  CHECK(evaluate({half.get()}, preflight("https://app.example"), 10).preflight);
  CHECK_FALSE(evaluate({half.get()}, preflight("https://app.example"), 60).preflight);
}

TEST_CASE("private network access is granted only when asked and allowed", "[routing][cors]") {
  CorsPolicy policy = webPolicy();
  policy.allow_private_network_access = true;
  auto p = compiled(policy);
  TestRequest req = preflight("https://app.example");
  CHECK(header(evaluate({p.get()}, req), "access-control-allow-private-network") == "<absent>");
  req.header("access-control-request-private-network", "true");
  CHECK(header(evaluate({p.get()}, req), "access-control-allow-private-network") == "true");
}

TEST_CASE("a bad origin matcher is a config error with its path", "[routing][cors]") {
  CorsPolicy policy;
  StringMatcher bad;
  bad.safe_regex = RegexMatcher{"(unclosed"};
  policy.allow_origin_string_match = {bad};
  auto c = CompiledCorsPolicy::compile(policy, "virtual_hosts[0].cors");
  REQUIRE_FALSE(c.ok());
  CHECK(std::string(c.status().message())
            .rfind("virtual_hosts[0].cors.allow_origin_string_match[0]", 0) == 0);
}

}  // namespace
}  // namespace turnout::routing::test
