#pragma once

#include <vector>

#include "proxy/stream/filter.h"
#include "routing/route_matcher.h"

namespace turnout::proxy {

// envoy.filters.http.health_check, non-pass-through mode: a request whose
// headers all match is answered here, 200 (or 503 with flag LH while
// /healthcheck/fail is in effect); other requests continue.
class HealthCheckFilter : public StreamFilter {
 public:
  explicit HealthCheckFilter(std::vector<routing::CompiledHeaderMatcher> headers)
      : headers_(std::move(headers)) {}

  // StreamFilter
  FilterHeadersStatus decodeHeaders(StreamDecoderFilterCallbacks& callbacks) const override;

 private:
  const std::vector<routing::CompiledHeaderMatcher> headers_;  // all must match
};

}  // namespace turnout::proxy
