#pragma once

// CORS (Envoy's envoy.filters.http.cors, cors_filter.cc): what the filter
// does with a request, given the matched route's and virtual host's
// CorsPolicy. Pure: the proxy answers a preflight with the headers this
// gives, and sets the simple-request headers on the response.
//
// Envoy's rules, kept exactly:
// - Policies are read most specific first (the route's, then the virtual
//   host's): a field is taken from the first policy that sets it;
//   filter_enabled and shadow_enabled from the first policy only.
// - Nothing happens without an Origin, or when neither filter_enabled nor
//   shadow_enabled is on. In shadow mode (shadow on, filter off) origins are
//   only counted.
// - An origin is allowed when a matcher of allow_origin_string_match
//   matches it or matches "*".
// - A preflight (OPTIONS with Origin and Access-Control-Request-Method) is
//   answered here with 200, unless its origin is not allowed and
//   forward_not_matching_preflights (default true) sends it upstream.
//   allow_methods / allow_headers "*" echo the request's
//   Access-Control-Request-Method / -Headers.
// - Any other request with an allowed origin gets
//   access-control-allow-origin (the origin), -allow-credentials and
//   -expose-headers on its response.

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "routing/request_view.h"
#include "routing/route_config.h"
#include "routing/route_matcher.h"

namespace turnout::routing {

class CompiledCorsPolicy {
 public:
  static absl::StatusOr<std::unique_ptr<CompiledCorsPolicy>> compile(const CorsPolicy& config,
                                                                     std::string_view field);
  const CorsPolicy& config() const { return config_; }
  const std::vector<StringMatch>& origins() const { return origins_; }

 private:
  CorsPolicy config_;
  std::vector<StringMatch> origins_;
};

struct CorsResult {
  enum class Origin : uint8_t { None, Valid, Invalid };
  // The filter looked at an Origin (for the cors.origin_valid/_invalid stats).
  Origin origin = Origin::None;
  // Answer locally: 200 with `headers` (a preflight).
  bool preflight = false;
  // Headers for the preflight answer, or to set on the response.
  std::vector<std::pair<std::string, std::string>> headers;
};

// `policies`: non-null, most specific first (empty: nothing happens).
// `random` draws filter_enabled and shadow_enabled.
CorsResult evaluateCors(std::span<const CompiledCorsPolicy* const> policies,
                        const RequestView& request, uint64_t random);

}  // namespace turnout::routing
