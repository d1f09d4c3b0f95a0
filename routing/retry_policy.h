#pragma once

// routing::CompiledRetryPolicy: a route's RetryPolicy compiled once per
// RouteTable, so that the router never parses `retry_on` or compiles a header
// matcher per request.
//
// Who calls it: RouteTable::create() compiles one per distinct RetryPolicy;
// the proxy's router reads it (through RouteDecision::retry) on worker threads.
// Immutable; lives as long as its RouteTable.

#include <chrono>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "routing/request_view.h"
#include "routing/route_config.h"
#include "routing/route_matcher.h"

namespace turnout::routing {

// Envoy's x-envoy-retry-on / retry_on conditions (router/retry_state_impl.cc).
enum RetryOn : uint32_t {
  kRetryOn5xx = 1u << 0,
  kRetryOnGatewayError = 1u << 1,
  kRetryOnReset = 1u << 2,
  kRetryOnConnectFailure = 1u << 3,
  kRetryOnRetriable4xx = 1u << 4,
  kRetryOnRefusedStream = 1u << 5,
  kRetryOnRetriableStatusCodes = 1u << 6,
  kRetryOnRetriableHeaders = 1u << 7,
  kRetryOnEnvoyRateLimited = 1u << 8,
  kRetryOnHttp3PostConnectFailure = 1u << 9,
  kRetryOnResetBeforeRequest = 1u << 10,
  // gRPC conditions: the grpc-status in the response headers (trailers-only).
  kRetryOnGrpcCancelled = 1u << 16,
  kRetryOnGrpcDeadlineExceeded = 1u << 17,
  kRetryOnGrpcResourceExhausted = 1u << 18,
  kRetryOnGrpcUnavailable = 1u << 19,
  kRetryOnGrpcInternal = 1u << 20,
};

// Parses a comma-separated retry_on list. Unknown conditions are ignored, as
// Envoy's parser does (it logs nothing either); `unknown` (if given) receives
// them so that config validation can warn.
uint32_t parseRetryOn(std::string_view retry_on, std::vector<std::string_view>* unknown = nullptr);

struct CompiledRetryPolicy {
  const RetryPolicy* config = nullptr;
  uint32_t retry_on = 0;  // RetryOn bits
  std::vector<CompiledHeaderMatcher> retriable_headers;
  std::vector<CompiledHeaderMatcher> retriable_request_headers;

  // Errors name `field` (e.g. `virtual_hosts[0].routes[2].route.retry_policy`).
  static absl::StatusOr<CompiledRetryPolicy> compile(const RetryPolicy& config,
                                                     std::string_view field);

  bool on(uint32_t bits) const { return (retry_on & bits) != 0; }
  // Envoy's RetryStateImpl::wouldRetryFromHeaders for a response status and
  // its headers (`response` views the response headers; its pseudo-headers
  // are unused).
  bool retriableResponse(uint32_t status, const RequestView& response) const;
  // retriable_request_headers: the request may be retried at all (true when
  // the list is empty).
  bool requestAllowsRetry(const RequestView& request) const;
  // The upstream was reset / the connection failed: whether the policy
  // retries that (`connect_failure` true for a connect failure).
  bool retriableReset(bool connect_failure) const;
  // Envoy's fully jittered exponential back-off (JitteredExponentialBackOff
  // Strategy): before retry number `retry` (1 for the first), a wait drawn
  // uniformly by `random` from [0, min(max_interval, base_interval * 2^retry)).
  // base_interval defaults to 25 ms and max_interval to 10 x base_interval.
  std::chrono::milliseconds backOff(uint32_t retry, uint64_t random) const;
};

}  // namespace turnout::routing
