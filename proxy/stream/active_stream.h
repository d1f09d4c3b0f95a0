#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "proxy/common/asio.h"

#include "proxy/access_log/stream_info.h"
#include "proxy/codec/codec.h"
#include "proxy/server/data_plane_config.h"
#include "proxy/upstream/cluster_manager.h"
#include "routing/route_table.h"

namespace turnout::proxy {

class DownstreamConnection;

// One request/response exchange on a downstream connection (stages 4-10 of
// docs/life_of_a_request.md): pins the connection's config snapshot, runs the
// RoutingKey and health_check filters, routes, forwards upstream with
// retries and timeouts, relays the response, then records stats. Lives in the
// connection coroutine's frame for the duration of one request.
class ActiveStream : public ResponseDecoderCallbacks {
 public:
  ActiveStream(DownstreamConnection& conn, RequestHead& head, bool end_stream);
  ~ActiveStream() override;

  asio::awaitable<void> run();
  // The downstream connection must be closed after this exchange.
  bool closeConnection() const { return close_connection_; }

  // ResponseDecoderCallbacks (upstream response events).
  void onMessageBegin() override;
  void onHeaders(ResponseHead& head, bool end_stream) override;
  void onData(std::span<const char> data, bool end_stream) override;
  void onTrailers(HeaderMap& trailers) override;
  void onMessageComplete() override;
  void onInformational(ResponseHead& head) override;

 private:
  enum class AttemptResult { Done, Retry, Failed };

  asio::awaitable<void> sendLocalReply(uint16_t status, std::string_view body,
                                       std::string_view location = {},
                                       std::string_view content_type = {},
                                       std::string_view details = {});
  // 503 UO with x-envoy-overloaded (a circuit breaker overflowed).
  asio::awaitable<void> replyOverflow();
  // 504 UT: the route timeout expired before a response started.
  asio::awaitable<void> replyUpstreamTimeout(const stats::ClusterStats& stats);
  void prepareUpstreamHeaders(const routing::RouteDecision& d);
  asio::awaitable<void> forward(const routing::RouteDecision& d);
  asio::awaitable<AttemptResult> attempt(const routing::RouteDecision& d, WorkerCluster& cluster,
                                         uint32_t attempt_number,
                                         std::chrono::steady_clock::time_point deadline);
  bool retriable(uint32_t status) const;
  // Whether this upgrade request may be proxied (HCM upgrade_configs,
  // overridden per route).
  bool upgradeAllowed(const routing::RouteDecision& d) const;
  // After a 101 both ways: raw bytes until either side closes or goes idle.
  asio::awaitable<void> tunnel(UpstreamConnection& up);
  // Another attempt is allowed: policy budget, retry breaker, deadline and a
  // replayable body. Counts retry_limit_exceeded / retry_overflow when not.
  bool canRetry();
  bool retryOn(std::string_view condition) const;
  // Envoy's request hash (HashPolicyImpl::generateHash): xxHash64 of each
  // hash_policy's value, rotated and xored together; nullopt when none applies.
  std::optional<uint64_t> hashFor(const routing::RouteDecision& d);
  void complete();

  DownstreamConnection& conn_;
  DataPlaneConfigConstSharedPtr config_;  // pinned for the whole exchange
  const HttpConnectionManagerRuntime& hcm_;
  RequestHead& head_;
  bool end_stream_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::system_clock::time_point start_wall_;

  std::string key_;
  // Buffers owned by the connection and reused by every request on it.
  std::vector<routing::HeaderEntry>& entries_;
  std::string original_path_;
  std::string& down_out_;  // bytes for the client
  std::string& up_out_;    // bytes for the upstream
  // The request body kept for retries and mirrors, while it fits the
  // listener's per_connection_buffer_limit_bytes.
  std::string retry_body_;
  bool body_retriable_ = true;
  uint64_t request_body_bytes_ = 0;
  bool request_body_sent_ = false;

  // Current attempt's response state.
  const routing::RetryPolicy* retry_policy_ = nullptr;
  std::vector<std::string_view> retry_on_;
  uint32_t response_status_ = 0;
  bool response_started_ = false;   // headers encoded downstream
  bool response_complete_ = false;
  bool discard_response_ = false;   // a retriable response being dropped
  std::chrono::steady_clock::time_point upstream_start_;
  const ClusterRuntime* cluster_runtime_ = nullptr;
  WorkerCluster* cluster_ = nullptr;
  std::chrono::steady_clock::time_point deadline_;
  uint32_t retries_done_ = 0;
  HostState* host_ = nullptr;
  std::string upstream_host_;
  uint64_t response_body_bytes_ = 0;

  uint16_t final_status_ = 0;
  access_log::ResponseFlags flags_;
  std::string details_;  // response code details for the access log
  ResponseHead local_head_;  // a local reply's head (kept for the access log)
  const HeaderMap* response_headers_ = nullptr;
  bool close_connection_ = false;
  bool downstream_failed_ = false;
  bool overloaded_ = false;  // the local reply gets x-envoy-overloaded: true
};

}  // namespace turnout::proxy
