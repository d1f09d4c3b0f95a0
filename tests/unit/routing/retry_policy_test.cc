// routing::CompiledRetryPolicy: retry_on parsed once, Envoy's retry decisions
// from response status and headers, retriable_request_headers.

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "routing/retry_policy.h"

namespace turnout::routing::test {
namespace {

CompiledRetryPolicy compiled(const RetryPolicy& p) {
  auto c = CompiledRetryPolicy::compile(p, "retry_policy");
  REQUIRE(c.ok());
  return *std::move(c);
}

HeaderMatcher exact(std::string name, std::string value) {
  HeaderMatcher m;
  m.name = std::move(name);
  m.string_match.emplace();
  m.string_match->exact = std::move(value);
  return m;
}

TEST_CASE("retry_on is parsed into bits, spaces and unknown names tolerated", "[routing]") {
  std::vector<std::string_view> unknown;
  const uint32_t bits = parseRetryOn(" 5xx , reset,connect-failure,,bogus,unavailable", &unknown);
  CHECK(bits == (kRetryOn5xx | kRetryOnReset | kRetryOnConnectFailure | kRetryOnGrpcUnavailable));
  CHECK(unknown == std::vector<std::string_view>{"bogus"});
  CHECK(parseRetryOn("") == 0);
}

TEST_CASE("response statuses retried per condition", "[routing]") {
  auto [retry_on, status, want] = GENERATE(table<std::string, uint32_t, bool>({
      {"5xx", 500, true},
      {"5xx", 503, true},
      {"5xx", 404, false},
      {"gateway-error", 500, false},
      {"gateway-error", 502, true},
      {"gateway-error", 504, true},
      {"retriable-4xx", 409, true},
      {"retriable-4xx", 400, false},
      {"reset", 503, false},
      {"connect-failure", 503, false},
  }));
  RetryPolicy p;
  p.retry_on = retry_on;
  const auto c = compiled(p);
  CAPTURE(retry_on, status);
  CHECK(c.retriableResponse(status, RequestView()) == want);
}

TEST_CASE("retriable-status-codes retries only the listed codes", "[routing]") {
  RetryPolicy p;
  p.retry_on = "retriable-status-codes";
  p.retriable_status_codes = {418, 429};
  const auto c = compiled(p);
  CHECK(c.retriableResponse(429, RequestView()));
  CHECK_FALSE(c.retriableResponse(500, RequestView()));
}

TEST_CASE("retriable-headers retries a response whose headers match", "[routing]") {
  RetryPolicy p;
  p.retry_on = "retriable-headers";
  p.retriable_headers = {exact("x-try-again", "yes")};
  const auto c = compiled(p);
  std::vector<HeaderEntry> yes{{"x-try-again", "yes"}};
  std::vector<HeaderEntry> no{{"x-try-again", "no"}};
  CHECK(c.retriableResponse(200, RequestView({}, {}, {}, yes)));
  CHECK_FALSE(c.retriableResponse(200, RequestView({}, {}, {}, no)));
  CHECK_FALSE(c.retriableResponse(200, RequestView()));
}

TEST_CASE("retriable-headers listed without the condition does nothing", "[routing]") {
  RetryPolicy p;
  p.retry_on = "5xx";
  p.retriable_headers = {exact("x-try-again", "yes")};
  const auto c = compiled(p);
  std::vector<HeaderEntry> yes{{"x-try-again", "yes"}};
  CHECK_FALSE(c.retriableResponse(200, RequestView({}, {}, {}, yes)));
}

TEST_CASE("retriable_request_headers gate retries on the request", "[routing]") {
  RetryPolicy p;
  p.retry_on = "5xx";
  p.retriable_request_headers = {exact("x-idempotent", "true")};
  const auto c = compiled(p);
  std::vector<HeaderEntry> idem{{"x-idempotent", "true"}};
  CHECK(c.requestAllowsRetry(RequestView("POST", "svc", "/", idem)));
  CHECK_FALSE(c.requestAllowsRetry(RequestView("POST", "svc", "/", {})));
  RetryPolicy open;
  open.retry_on = "5xx";
  CHECK(compiled(open).requestAllowsRetry(RequestView()));
}

TEST_CASE("resets are retried by 5xx, gateway-error and reset, connect failures also by connect-failure",
          "[routing]") {
  auto [retry_on, connect_failure, want] = GENERATE(table<std::string, bool, bool>({
      {"5xx", false, true},
      {"gateway-error", false, true},
      {"reset", false, true},
      {"connect-failure", false, false},
      {"connect-failure", true, true},
      {"retriable-4xx", true, false},
  }));
  RetryPolicy p;
  p.retry_on = retry_on;
  CAPTURE(retry_on, connect_failure);
  CHECK(compiled(p).retriableReset(connect_failure) == want);
}

TEST_CASE("a bad retriable header matcher is an error naming its field", "[routing]") {
  RetryPolicy p;
  HeaderMatcher m;
  m.name = "x";
  m.safe_regex_match = RegexMatcher{"(unclosed"};
  p.retriable_headers = {m};
  auto c = CompiledRetryPolicy::compile(p, "routes[0].route.retry_policy");
  REQUIRE_FALSE(c.ok());
  CHECK_THAT(std::string(c.status().message()),
             Catch::Contains("routes[0].route.retry_policy.retriable_headers[0]"));
}

}  // namespace
TEST_CASE("back-off is fully jittered below min(max_interval, base * 2^retry)", "[routing]") {
  RetryPolicy config;
  CompiledRetryPolicy p;
  p.config = &config;
  // Defaults: base 25 ms, max 250 ms.
  CHECK(p.backOff(1, 49).count() == 49);   // ceiling 50
  CHECK(p.backOff(1, 50).count() == 0);
  CHECK(p.backOff(2, 99).count() == 99);   // ceiling 100
  CHECK(p.backOff(4, 399).count() == 399 % 250);  // 400 capped at 250
  CHECK(p.backOff(30, ~0ULL).count() < 250);      // no overflow for a large retry count
  config.retry_back_off = RetryPolicy::RetryBackOff{};
  config.retry_back_off->base_interval = std::chrono::milliseconds(10);
  CHECK(p.backOff(1, 19).count() == 19);   // ceiling 20
  CHECK(p.backOff(5, 1000).count() == 1000 % 100);  // default max 10 x base
  config.retry_back_off->max_interval = std::chrono::milliseconds(30);
  CHECK(p.backOff(3, 29).count() == 29);   // 80 capped at 30
  CHECK(p.backOff(3, 30).count() == 0);
  for (uint64_t r = 0; r < 1000; ++r) CHECK(p.backOff(2, r * 7919).count() < 30);
}

TEST_CASE("gRPC retry_on conditions retry the grpc-status of the response headers", "[routing]") {
  // Envoy's RetryStateImpl::wouldRetryFromHeaders: the status of a
  // trailers-only response (HTTP 200) decides, each code only by its condition.
  auto [retry_on, grpc_status, want] = GENERATE(table<std::string, std::string, bool>({
      {"cancelled", "1", true},
      {"deadline-exceeded", "4", true},
      {"resource-exhausted", "8", true},
      {"unavailable", "14", true},
      {"internal", "13", true},
      {"unavailable", "13", false},
      {"internal", "14", false},
      {"cancelled,unavailable", "14", true},
      {"unavailable", "0", false},
      {"unavailable", "x14", false},
      {"unavailable", "", false},
      {"5xx", "14", false},
  }));
  RetryPolicy p;
  p.retry_on = retry_on;
  const auto c = compiled(p);
  std::vector<HeaderEntry> headers{{"content-type", "application/grpc"}};
  if (!grpc_status.empty()) headers.push_back({"grpc-status", grpc_status});
  CAPTURE(retry_on, grpc_status);
  CHECK(c.retriableResponse(200, RequestView({}, {}, {}, headers)) == want);
}

TEST_CASE("gRPC retry_on conditions ignore a response without grpc-status", "[routing]") {
  RetryPolicy p;
  p.retry_on = "cancelled,deadline-exceeded,resource-exhausted,unavailable,internal";
  const auto c = compiled(p);
  CHECK_FALSE(c.retriableResponse(503, RequestView()));
  CHECK_FALSE(c.retriableResponse(200, RequestView()));
}

}  // namespace turnout::routing::test
