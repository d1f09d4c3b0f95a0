#include "routing/retry_policy.h"

#include <algorithm>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace turnout::routing {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

struct Condition {
  std::string_view name;
  uint32_t bit;
};

constexpr Condition kConditions[] = {
    {"5xx", kRetryOn5xx},
    {"gateway-error", kRetryOnGatewayError},
    {"reset", kRetryOnReset},
    {"connect-failure", kRetryOnConnectFailure},
    {"retriable-4xx", kRetryOnRetriable4xx},
    {"refused-stream", kRetryOnRefusedStream},
    {"retriable-status-codes", kRetryOnRetriableStatusCodes},
    {"retriable-headers", kRetryOnRetriableHeaders},
    {"envoy-ratelimited", kRetryOnEnvoyRateLimited},
    {"http3-post-connect-failure", kRetryOnHttp3PostConnectFailure},
    {"reset-before-request", kRetryOnResetBeforeRequest},
    {"cancelled", kRetryOnGrpcCancelled},
    {"deadline-exceeded", kRetryOnGrpcDeadlineExceeded},
    {"resource-exhausted", kRetryOnGrpcResourceExhausted},
    {"unavailable", kRetryOnGrpcUnavailable},
    {"internal", kRetryOnGrpcInternal},
};

constexpr uint32_t kGrpcConditions = kRetryOnGrpcCancelled | kRetryOnGrpcDeadlineExceeded |
                                    kRetryOnGrpcResourceExhausted | kRetryOnGrpcUnavailable |
                                    kRetryOnGrpcInternal;

bool anyMatches(const std::vector<CompiledHeaderMatcher>& matchers, const RequestView& view) {
  std::string scratch;
  MatchInput in;
  in.view = &view;
  in.scratch = &scratch;
  for (const auto& m : matchers) {
    if (m.matches(in)) return true;
  }
  return false;
}

}  // namespace

uint32_t parseRetryOn(std::string_view retry_on, std::vector<std::string_view>* unknown) {
  uint32_t bits = 0;
  for (;;) {
    const size_t comma = retry_on.find(',');
    const std::string_view part = trim(retry_on.substr(0, comma));
    if (!part.empty()) {
      bool known = false;
      for (const Condition& c : kConditions) {
        if (c.name == part) {
          bits |= c.bit;
          known = true;
        }
      }
      if (!known && unknown != nullptr) unknown->push_back(part);
    }
    if (comma == std::string_view::npos) break;
    retry_on.remove_prefix(comma + 1);
  }
  return bits;
}

absl::StatusOr<CompiledRetryPolicy> CompiledRetryPolicy::compile(const RetryPolicy& config,
                                                                 std::string_view field) {
  CompiledRetryPolicy p;
  p.config = &config;
  p.retry_on = parseRetryOn(config.retry_on);
  for (size_t i = 0; i < config.retriable_headers.size(); ++i) {
    auto h = CompiledHeaderMatcher::compile(
        config.retriable_headers[i],
        absl::StrCat(std::string(field), ".retriable_headers[", i, "]"));
    if (!h.ok()) return h.status();
    p.retriable_headers.push_back(*std::move(h));
  }
  for (size_t i = 0; i < config.retriable_request_headers.size(); ++i) {
    auto h = CompiledHeaderMatcher::compile(
        config.retriable_request_headers[i],
        absl::StrCat(std::string(field), ".retriable_request_headers[", i, "]"));
    if (!h.ok()) return h.status();
    p.retriable_request_headers.push_back(*std::move(h));
  }
  return p;
}

bool CompiledRetryPolicy::retriableResponse(uint32_t status, const RequestView& response) const {
  if (on(kRetryOn5xx) && status >= 500) return true;
  if (on(kRetryOnGatewayError) && (status == 502 || status == 503 || status == 504)) return true;
  if (on(kRetryOnRetriable4xx) && status == 409) return true;
  if (on(kRetryOnRetriableStatusCodes)) {
    const auto& codes = config->retriable_status_codes;
    if (std::find(codes.begin(), codes.end(), status) != codes.end()) return true;
  }
  if (on(kRetryOnEnvoyRateLimited) && response.has("x-envoy-ratelimited")) return true;
  if (on(kRetryOnRetriableHeaders) && anyMatches(retriable_headers, response)) return true;
  if (on(kGrpcConditions)) {
    // Envoy's RetryStateImpl: the grpc-status in the response headers (a
    // trailers-only response); a status only in trailers comes too late.
    const std::string_view status = response.first("grpc-status");
    uint32_t code = 0;
    if (absl::SimpleAtoi(absl::string_view(status.data(), status.size()), &code)) {
      if ((code == 1 && on(kRetryOnGrpcCancelled)) ||
          (code == 4 && on(kRetryOnGrpcDeadlineExceeded)) ||
          (code == 8 && on(kRetryOnGrpcResourceExhausted)) ||
          (code == 14 && on(kRetryOnGrpcUnavailable)) ||
          (code == 13 && on(kRetryOnGrpcInternal))) {
        return true;
      }
    }
  }
  return false;
}

bool CompiledRetryPolicy::requestAllowsRetry(const RequestView& request) const {
  return retriable_request_headers.empty() || anyMatches(retriable_request_headers, request);
}

bool CompiledRetryPolicy::retriableReset(bool connect_failure) const {
  if (on(kRetryOn5xx | kRetryOnGatewayError | kRetryOnReset)) return true;
  return connect_failure && on(kRetryOnConnectFailure | kRetryOnResetBeforeRequest);
}

std::chrono::milliseconds CompiledRetryPolicy::backOff(uint32_t retry, uint64_t random) const {
  std::chrono::milliseconds base(25);
  std::chrono::milliseconds cap(250);
  if (config != nullptr && config->retry_back_off) {
    base = config->retry_back_off->base_interval;
    cap = config->retry_back_off->max_interval.value_or(base * 10);
  }
  const int64_t shifted = base.count() << std::min<uint32_t>(retry, 20);
  const uint64_t ceiling = static_cast<uint64_t>(std::min<int64_t>(cap.count(), shifted));
  return std::chrono::milliseconds(ceiling == 0 ? 0 : static_cast<int64_t>(random % ceiling));
}

}  // namespace turnout::routing
