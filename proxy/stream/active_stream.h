#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "proxy/common/asio.h"

#include "proxy/access_log/stream_info.h"
#include "proxy/codec/codec.h"
#include "proxy/filters/grpc_stats_filter.h"
#include "proxy/filters/grpc_web_filter.h"
#include "proxy/server/data_plane_config.h"
#include "proxy/stream/filter.h"
#include "proxy/upstream/cluster_manager.h"
#include "routing/route_table.h"

namespace turnout::proxy {

class DownstreamStream;

// One request/response exchange on a downstream connection, in the
// connection-manager role (stages 4-5 and 10 of docs/life_of_a_request.md):
// pins the config snapshot for the stream, normalises the path and host, runs
// the HTTP filters, matches the route, answers locally or hands the request to
// its RouterFilter (stages 6-9), then records stats and the access log. Lives
// in the connection coroutine's frame for the duration of one request.
class ActiveStream : public StreamDecoderFilterCallbacks {
 public:
  // No stream idle timeout (conn write/read deadlines need a duration).
  static constexpr std::chrono::milliseconds kForever{std::chrono::hours(24 * 365)};

  ActiveStream(DownstreamStream& conn, RequestHead& head);
  ~ActiveStream() override;

  Awaitable<void> run();
  // The downstream connection must be closed after this exchange.
  bool closeConnection() const { return close_connection_; }

  // StreamDecoderFilterCallbacks (the HTTP filters before the router).
  RequestHead& requestHead() override { return head_; }
  routing::RequestView requestView() override { return head_.view(entries_); }
  void setRoutingKey(std::string_view key) override { key_.assign(key); }
  stats::Shard& shard() override;
  const stats::HttpConnManagerStats& hcmStats() override { return hcm_.stats; }
  bool healthCheckFailed() override;
  void localReply(uint16_t status, std::string_view body, std::string_view details) override;
  void setResponseFlag(access_log::ResponseFlag flag) override { flags_.set(flag); }
  void startGrpcWeb(bool text_request, bool text_response) override {
    grpc_web_ = std::make_unique<GrpcWebStream>(text_request, text_response);
  }

 private:
  // The router is this stream's terminal stage: it reads the request and
  // writes the response, local replies and access-log fields through the
  // members below.
  friend class RouterFilter;

  // What the stream answers itself instead of routing the request: a
  // local reply's status, body (a literal or the route table's), Location
  // and details.
  struct Answer {
    bool answered = false;
    uint16_t status = 0;
    std::string_view body;
    std::string location;
    std::string_view details;
    int grpc_status = -1;
  };
  // Normalises the request, runs the filters and matches the route; or
  // answers (the decision is then a NoRoute, unused).
  routing::RouteDecision matchRoute(Answer& answer);
  // After the match: true when the router forwards the request, else
  // `answer` says what to reply. Sets decision_.
  bool admit(const routing::RouteDecision& d, Answer& answer);
  // sendLocalReply() with `answer`: a plain function, so that the
  // arguments' temporaries are not slots in run()'s frame.
  Awaitable<void> sendAnswer(const Answer& answer);

  Awaitable<void> sendLocalReply(uint16_t status, std::string_view body,
                                 std::string_view location = {}, std::string_view content_type = {},
                                 std::string_view details = {}, int grpc_status = -1);
  // The stream idle timeout in force: the route's idle_timeout, else the
  // HCM's stream_idle_timeout; kForever when disabled.
  std::chrono::milliseconds streamIdle() const;
  // Whether this upgrade request may be proxied (HCM upgrade_configs,
  // overridden per route).
  bool upgradeAllowed(const routing::RouteDecision& d) const;
  // Envoy's CORS filter on the matched route (HCM with
  // envoy.filters.http.cors): counts the origin, keeps the response headers
  // to set (cors_headers_); true when the request is a preflight to answer
  // here with 200.
  bool applyCors(const routing::RouteDecision& d);
  // An upgrade (WebSocket) or a CONNECT: a tunnel if it is allowed and
  // answered.
  bool tunnelRequested() const { return head_.upgrade || head_.method == "CONNECT"; }
  // Applies header mutation `levels` to `headers`, expanding %COMMAND%s.
  void applyHeaderMutations(const routing::HeaderMutationLevels& levels, HeaderMap& headers);
  // The matched route's response_headers_to_add/remove (also on local replies).
  void applyResponseHeaderMutations(HeaderMap& headers);
  // Expands a header value's %COMMAND% (request and response mutations).
  void formatHeaderCommand(std::string_view cmd, std::string& out) const;
  void complete();

  // A local reply's head (kept for the access log), made on first use.
  ResponseHead& localHead();

  // The fields every proxied request reads or writes come first, packed
  // into four 64-byte lines: with 400 requests in flight on a worker
  // (HTTP/2, 4 x 100 streams) a stream's state is no longer in the core's
  // cache when its response comes, and each line it spans is a miss
  // (docs/http2_codec.md, "Where the CPU goes at 100 streams per
  // connection"). What only some requests need is boxed behind a pointer.
  DownstreamStream& conn_;
  DataPlaneConfigConstSharedPtr config_;  // pinned per stream (streamConfig()) for the whole exchange
  const HttpConnectionManagerRuntime& hcm_;
  RequestHead& head_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::system_clock::time_point start_wall_;
  // Owned by the connection and reused by every request on it.
  std::vector<routing::HeaderEntry>& entries_;
  const routing::RouteDecision* decision_ = nullptr;
  const ClusterRuntime* cluster_runtime_ = nullptr;
  const HeaderMap* response_headers_ = nullptr;
  uint64_t request_body_bytes_ = 0;  // body bytes taken from the client
  uint64_t response_body_bytes_ = 0;
  // Response code details for the access log: always a literal (Envoy's
  // fixed strings), so a view.
  std::string_view details_;
  uint16_t final_status_ = 0;
  access_log::ResponseFlags flags_;
  bool close_connection_ = false;
  bool downstream_failed_ = false;
  bool overloaded_ = false;  // the local reply gets x-envoy-overloaded: true
  // The gRPC-Web text body was not base64: the 400 keeps its HTTP status,
  // as Envoy's filter answers it (a gRPC status in the headers, no body).
  bool grpc_web_rejected_ = false;
  std::string upstream_host_;
  // The grpc_stats filter's state for a gRPC call routed to a cluster
  // (RouterFilter makes it; local replies pass through it).
  std::unique_ptr<GrpcStatsTracker> grpc_stats_;
  // The grpc_web filter's translation of this call (GrpcWebFilter starts it;
  // the router feeds it; local replies take its content-type).
  std::unique_ptr<GrpcWebStream> grpc_web_;
  std::string key_;
  std::unique_ptr<ResponseHead> local_head_;  // localHead()
  // What few requests use, made on first use (rare()).
  struct Rare {
    // A filter's local reply (localReply()), sent once the chain stops.
    uint16_t filter_reply_status = 0;
    std::string_view filter_reply_body;
    std::string_view filter_reply_details;
    // CORS response headers (applyCors), set on whatever response goes out.
    std::vector<std::pair<std::string, std::string>> cors_headers;
    // The :path before a prefix or regex rewrite (the access log's).
    std::string original_path;
  };
  Rare& rare();
  std::unique_ptr<Rare> rare_;
};

}  // namespace turnout::proxy
