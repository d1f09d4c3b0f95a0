#pragma once

#include "config/snapshot/routing_key_config.h"
#include "proxy/stream/filter.h"

namespace turnout::proxy {

// turnout.filters.http.routing_key: extracts the routing key once
// (routing::extractRoutingKey: baggage, tracestate, plain headers in the
// configured order) and normalises it into the output header, replacing
// whatever the client sent there; with no key the header is removed, so a
// client cannot forge a sandbox the propagated context does not name.
// Counts http.<prefix>.routing_key.{found,missing,error.*}.
class RoutingKeyFilter : public StreamFilter {
 public:
  explicit RoutingKeyFilter(config::RoutingKeyFilterConfig config) : config_(std::move(config)) {}
  const config::RoutingKeyFilterConfig& config() const { return config_; }

  // StreamFilter
  FilterHeadersStatus decodeHeaders(StreamDecoderFilterCallbacks& callbacks) const override;

 private:
  const config::RoutingKeyFilterConfig config_;
};

}  // namespace turnout::proxy
