#pragma once

// The HTTP filter chain's interface (Envoy's StreamDecoderFilter, header
// phase). Stage 5 of docs/life_of_a_request.md.
//
// Who calls it: ActiveStream, on its worker thread, once per request, in the
// order of the HCM's http_filters; the router is the chain's terminal stage
// and is not a StreamFilter here. A filter is immutable and shared by every
// stream of its HttpConnectionManagerRuntime (the filters turnout runs keep
// no per-stream state, so the config object is the filter and a request
// allocates nothing for its chain). References passed to a filter are valid
// for the duration of the call only.

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "proxy/access_log/stream_info.h"
#include "proxy/codec/codec.h"
#include "proxy/stats/well_known_stats.h"
#include "routing/request_view.h"

namespace turnout::proxy {

namespace stats {
class Shard;
}

enum class FilterHeadersStatus {
  Continue,       // the next filter (and then the router) runs
  StopIteration,  // the filter answered the request (localReply() was called)
};

// What a filter may see and do on its stream.
class StreamDecoderFilterCallbacks {
 public:
  virtual ~StreamDecoderFilterCallbacks() = default;
  virtual RequestHead& requestHead() = 0;
  // A routing view of the request head as it is now.
  virtual routing::RequestView requestView() = 0;
  // The routing key for this request (empty: none); the router matches the
  // request's headers, so a filter that sets the key also sets its header.
  virtual void setRoutingKey(std::string_view key) = 0;
  virtual stats::Shard& shard() = 0;
  virtual const stats::HttpConnManagerStats& hcmStats() = 0;
  // /healthcheck/fail is in effect.
  virtual bool healthCheckFailed() = 0;
  // Answers the request locally once the filter returns StopIteration.
  virtual void localReply(uint16_t status, std::string_view body, std::string_view details) = 0;
  virtual void setResponseFlag(access_log::ResponseFlag flag) = 0;
  // The gRPC-Web filter took this request: the stream translates its body
  // and response (proxy/filters/grpc_web_filter.h).
  virtual void startGrpcWeb(bool text_request, bool text_response) = 0;
};

class StreamFilter {
 public:
  virtual ~StreamFilter() = default;
  virtual FilterHeadersStatus decodeHeaders(StreamDecoderFilterCallbacks& callbacks) const = 0;
};

using StreamFilterConstSharedPtr = std::shared_ptr<const StreamFilter>;
// The HCM's http_filters before the router, in config order.
using FilterChain = std::vector<StreamFilterConstSharedPtr>;

}  // namespace turnout::proxy
