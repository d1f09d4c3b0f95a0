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
#include "proxy/stream/filter.h"
#include "proxy/upstream/cluster_manager.h"
#include "routing/route_table.h"

namespace turnout::proxy {

class DownstreamConnection;

// One request/response exchange on a downstream connection (stages 4-10 of
// docs/life_of_a_request.md): pins the connection's config snapshot, runs the
// RoutingKey and health_check filters, routes, forwards upstream with
// retries and timeouts, relays the response, then records stats. Lives in the
// connection coroutine's frame for the duration of one request.
class ActiveStream : public ResponseDecoderCallbacks, public StreamDecoderFilterCallbacks {
 public:
  ActiveStream(DownstreamConnection& conn, RequestHead& head);
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

  // StreamDecoderFilterCallbacks (the HTTP filters before the router).
  RequestHead& requestHead() override { return head_; }
  routing::RequestView requestView() override { return head_.view(entries_); }
  void setRoutingKey(std::string_view key) override { key_.assign(key); }
  stats::Shard& shard() override;
  const stats::HttpConnManagerStats& hcmStats() override { return hcm_.stats; }
  bool healthCheckFailed() override;
  void localReply(uint16_t status, std::string_view body, std::string_view details) override;
  void setResponseFlag(access_log::ResponseFlag flag) override { flags_.set(flag); }

 private:
  enum class AttemptResult { Done, Retry, Failed };
  // Why an attempt's watchdog fired (or None).
  enum class Timeout : uint8_t { None, Global, PerTry, PerTryIdle, StreamIdle };

  // One attempt's exchange on one upstream connection: the request body pump
  // and the response reader run side by side (full duplex) and meet here.
  // Lives in attempt()'s frame; the pump coroutine and the watchdog handler
  // point at it, and attempt() waits for both before the frame goes.
  struct Exchange {
    explicit Exchange(const asio::any_io_executor& ex) : pump_done(ex), watchdog(ex) {}
    UpstreamConnection* up = nullptr;
    // Per-try timeout, from the end of the request on this attempt; max = none.
    std::chrono::steady_clock::time_point try_deadline = std::chrono::steady_clock::time_point::max();
    std::chrono::steady_clock::time_point last_activity;  // upstream bytes either way
    asio::steady_timer pump_done;  // cancelled when the pump ends
    asio::steady_timer watchdog;   // the earliest of the timeouts below
    bool pump_running = false;
    bool stop_pump = false;
    bool request_sent = false;     // the end of the request went upstream
    bool upstream_write_failed = false;
    uint32_t watch_waits = 0;      // waits whose handler has not run yet
    uint32_t watch_gen = 0;        // only the newest wait may fire
    Timeout fired = Timeout::None;
  };

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
                                         uint32_t attempt_number);
  // The request body pump of one attempt: reads the client's body as it
  // arrives and writes it upstream, until the request ends, either side
  // fails or the exchange asks it to stop.
  asio::awaitable<void> pumpRequestBody(Exchange* x);
  // Takes the body bytes the downstream codec decoded, keeps them for
  // retries and mirrors while they fit, and encodes them (and the end of the
  // request, or its trailers, once complete) for the upstream into `out`.
  void encodeRequestBody(UpstreamConnection& up, std::string& out);
  // The request has been fully written upstream on this attempt: starts the
  // per-try timeout and the mirrors.
  void onRequestSent(Exchange& x);
  // The client's request is complete: the route timeout starts (Envoy starts
  // it at the end of the request, not at its headers).
  void onRequestComplete();
  // (Re)arms the watchdog to the earliest pending timeout of `x`.
  void armWatchdog(Exchange& x);
  void onWatchdog(Exchange& x);
  // Stops the pump and the watchdog and waits until neither refers to `x`.
  asio::awaitable<void> endExchange(Exchange& x);
  std::chrono::milliseconds streamIdle() const;
  // Every request body byte received so far can be sent again.
  bool bodyReplayable() const {
    return request_body_bytes_ == 0 || (keep_body_ && !body_overflow_);
  }
  // Whether this upgrade request may be proxied (HCM upgrade_configs,
  // overridden per route).
  bool upgradeAllowed(const routing::RouteDecision& d) const;
  // After a 101 both ways: raw bytes until either side closes or goes idle.
  asio::awaitable<void> tunnel(UpstreamConnection& up);
  // Another attempt is allowed: policy budget, retry breaker, deadline and a
  // replayable body. Counts retry_limit_exceeded / retry_overflow when not.
  bool canRetry();
  // Envoy's request hash (HashPolicyImpl::generateHash): xxHash64 of each
  // hash_policy's value, rotated and xored together; nullopt when none applies.
  std::optional<uint64_t> hashFor(const routing::RouteDecision& d);
  void applyResponseHeaderMutations(HeaderMap& headers);
  // Expands a header value's %COMMAND% (request and response mutations).
  void formatHeaderCommand(std::string_view cmd, std::string& out) const;
  void complete();

  DownstreamConnection& conn_;
  DataPlaneConfigConstSharedPtr config_;  // pinned per stream (streamConfig()) for the whole exchange
  const HttpConnectionManagerRuntime& hcm_;
  RequestHead& head_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::system_clock::time_point start_wall_;

  std::string key_;
  // Buffers owned by the connection and reused by every request on it.
  std::vector<routing::HeaderEntry>& entries_;
  std::string original_path_;
  std::string& down_out_;  // bytes for the client
  std::string& up_out_;    // bytes for the upstream (the pump's, once it runs)

  // The request body as received, kept for retries and mirrors (only when
  // a retry policy, a mirror or a reused upstream connection may need it)
  // while it fits the listener's per_connection_buffer_limit_bytes.
  std::string body_kept_;
  bool keep_body_ = false;
  bool body_overflow_ = false;  // a received byte is not in body_kept_
  uint64_t request_body_bytes_ = 0;  // body bytes taken from the client
  bool mirrors_started_ = false;

  const routing::RouteDecision* decision_ = nullptr;
  // Current attempt's response state.
  const routing::CompiledRetryPolicy* retry_ = nullptr;
  uint32_t response_status_ = 0;
  bool response_started_ = false;   // headers encoded downstream
  bool response_complete_ = false;
  bool discard_response_ = false;   // a retriable response being dropped
  std::chrono::steady_clock::time_point upstream_start_;
  const ClusterRuntime* cluster_runtime_ = nullptr;
  WorkerCluster* cluster_ = nullptr;
  // The route timeout: from the end of the request; max until then / none.
  std::chrono::steady_clock::time_point deadline_ = std::chrono::steady_clock::time_point::max();
  Exchange* exchange_ = nullptr;  // the running attempt's, for the response callbacks
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
  // A filter's local reply, sent once the chain stops.
  uint16_t filter_reply_status_ = 0;
  std::string_view filter_reply_body_;
  std::string_view filter_reply_details_;
};

}  // namespace turnout::proxy
