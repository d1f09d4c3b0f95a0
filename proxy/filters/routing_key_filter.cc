#include "proxy/filters/routing_key_filter.h"

#include <string>

#include "proxy/stats/store.h"
#include "routing/routing_key.h"

namespace turnout::proxy {

FilterHeadersStatus RoutingKeyFilter::decodeHeaders(StreamDecoderFilterCallbacks& cb) const {
  const stats::HttpConnManagerStats& stats = cb.hcmStats();
  stats::Shard& shard = cb.shard();
  std::string scratch;
  routing::RequestView view = cb.requestView();
  auto k = routing::extractRoutingKey(view, config_.extraction, scratch);
  if (k.error != routing::KeyError::kNone) {
    shard.inc(stats.routing_key_error[static_cast<size_t>(k.error)]);
  }
  RequestHead& head = cb.requestHead();
  if (k.found()) {
    // `k.key` may view the header about to be replaced: copy it first.
    const std::string key(k.key);
    shard.inc(stats.routing_key_found);
    head.headers.set(config_.output_header, key);
    cb.setRoutingKey(key);
  } else {
    shard.inc(stats.routing_key_missing);
    head.headers.remove(config_.output_header);
    cb.setRoutingKey({});
  }
  return FilterHeadersStatus::Continue;
}

}  // namespace turnout::proxy
