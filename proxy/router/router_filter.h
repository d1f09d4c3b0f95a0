#pragma once

// RouterFilter: the filter chain's terminal stage (stage 6-9 of
// docs/life_of_a_request.md; Envoy's router/router.cc). For a request the
// route table sent to a cluster it prepares the upstream headers, picks a host
// per attempt, takes a stream from the host's ConnPool, runs an
// UpstreamRequest, retries per the route's RetryState, and relays the
// response to the client or decides the local reply (503/504/502 with
// Envoy's details) that the stream sends.
//
// Who calls it: ActiveStream::run() on its worker thread, once per routed
// request. Lives in the stream's coroutine frame (no heap); the
// ActiveStream outlives it.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "proxy/common/asio.h"
#include "proxy/common/signal.h"

#include "proxy/router/retry_state.h"
#include "proxy/router/upstream_request.h"
#include "routing/route_table.h"

namespace turnout::proxy {

class ActiveStream;
class DownstreamConnection;
class DownstreamStream;
class Worker;
class WorkerCluster;
struct HostState;
struct UpstreamConnection;

class RouterFilter : public UpstreamRequestParent {
 public:
  RouterFilter(ActiveStream& stream, const routing::RouteDecision& decision);

  // The stream (ActiveStream::run()) forwards the request by
  //   Outcome o = begin();
  //   for (n = 0; o.result is Send or Retry; ++n) {
  //     if (o.result == Retry) co_await backOff();
  //     o = startAttempt(n);
  //     if (o.result == Wait) co_await waitForStream(o);
  //     else if (o.result == Tcp) co_await attemptTcp(o);
  //     if (o.result != Exchange) continue;
  //     the exchange: UpstreamRequest::run()'s steps on upstream();
  //     o = endAttempt();
  //     if (o.result is Tunnel or TunnelInStream) co_await tunnel(o);
  //   }
  // until a response went to the client, or o is a local reply to send.
  // All in the stream's coroutine, none in one of the router's: one frame
  // per request (each frame is cache lines made on the way up and read,
  // cold, on the way back; this was three).
  // Send: (begin()) go on with the first attempt; (endAttempt()) attempt
  // again at once, without a back-off (a stale pooled connection, a refused
  // stream). Reply: answer locally with the Outcome's reply. Wait: no idle
  // stream, wait in the pool's queue. Tcp: a CONNECT terminated here.
  // Exchange: upstream() is ready to send. Tunnel, TunnelInStream: the
  // upgraded connection becomes the client's tunnel (tunnel()).
  enum class AttemptResult {
    Send,
    Done,
    Retry,
    Failed,
    Reply,
    Tunnel,
    TunnelInStream,
    Wait,
    Tcp,
    Exchange
  };
  // How a stage ended. Every local reply the router decides on comes back
  // as one, and the stream sends it: one co_await for all of them (each
  // was a slot in the attempt's coroutine frame, which is allocated per
  // request). The views are literals or the route table's.
  struct Outcome {
    Outcome(AttemptResult r = AttemptResult::Done) : result(r) {}  // NOLINT: implicit
    Outcome(uint16_t s, std::string_view b, std::string_view d, int g)
        : result(AttemptResult::Reply), status(s), grpc_status(g), body(b), details(d) {}
    AttemptResult result;
    uint16_t status = 0;
    int grpc_status = -1;
    std::string_view body;
    std::string_view details;
  };
  static Outcome reply(uint16_t status, std::string_view body, std::string_view details,
                       int grpc_status = -1) {
    return Outcome(status, body, details, grpc_status);
  }

  // Before the first attempt: the cluster, the gRPC stats, the timeouts,
  // the retry state and the upstream headers.
  Outcome begin();
  // The back-off before a retry.
  Awaitable<void> backOff();
  // An attempt's steps (above). The awaited ones say how they ended in
  // `out` (an out-parameter: an awaited result is a slot in the caller's
  // frame, which is allocated per request).
  // A host and, where one is idle, a stream from its pool.
  Outcome startAttempt(uint32_t attempt_number);
  // Waits for a stream from the host's pool's pending queue; Exchange, or
  // how it failed.
  Awaitable<void> waitForStream(Outcome& out);
  // A CONNECT this route terminates (connect_config; Envoy's TcpUpstream):
  // a TCP connection to the host, a 200 to the client once it is up, then
  // the payload both ways.
  Awaitable<void> attemptTcp(Outcome& out);
  // The attempt's exchange, between startAttempt() (or waitForStream())
  // and endAttempt().
  UpstreamRequest& upstream() { return *upstream_; }
  // After the exchange: records how it ended and decides what follows.
  Outcome endAttempt();
  // After endAttempt()'s Tunnel or TunnelInStream: the tunnel, until it
  // closes; then Done.
  Awaitable<void> tunnel(Outcome& out);

  // UpstreamRequestParent
  void encodeRequestStart(UpstreamStream& stream) override;
  bool requestComplete() const override;
  Awaitable<bool> encodeMoreRequest(UpstreamStream* stream) override;
  void stopRequestBody() override;
  void onRequestSent() override;
  bool downstreamFailed() const override;
  std::chrono::steady_clock::time_point routeDeadline() const override { return deadline_; }
  std::chrono::milliseconds streamIdle() const override;
  bool onUpstreamHeaders(ResponseHead& head, bool end_stream) override;
  void onUpstreamData(std::span<const char> data, bool end_stream) override;
  void onUpstreamTrailers(HeaderMap& trailers) override;
  Awaitable<bool> flushResponse() override;
  bool tryFlushResponse() override;

 private:
  // The attempt's host's pool (use_downstream_protocol_config: the
  // client's protocol).
  ConnPool& pool();
  // The attempt's UpstreamRequest on `stream`: Exchange, or the reply.
  Outcome startUpstream(UpstreamStreamPtr stream);
  // The load balancer's pick for an attempt (null: no healthy host).
  HostState* chooseHost(uint32_t attempt_number);
  // The steps within startAttempt(), startUpstream() and endAttempt().
  // Send: go on. pickHost() sets host_; prepareTunnel() sets the tunnel's
  // shape for `stream`; prepareUpstream() returns whether the stream's
  // connection served an earlier request; afterUpstream() records the
  // attempt's end and decides what follows it.
  Outcome pickHost(uint32_t attempt_number);
  // A connection to `host` failed (for a stream or a terminated CONNECT):
  // counted against the host and flagged UF; Retry where the policy
  // retries it, else the 503 (`timed_out`: the connect_timeout's body).
  Outcome connectFailed(HostState& host, bool timed_out);
  Outcome prepareTunnel(UpstreamStream& stream);
  bool prepareUpstream(UpstreamRequest& upstream, uint32_t attempt_number);
  Outcome afterUpstream(UpstreamRequest& upstream, bool reused, uint32_t attempt_number);
  // The grpc_stats filter's tracker, and the grpc_web filter's stats, for a
  // request routed to cluster_.
  void startGrpcStats(Worker& worker, stats::Shard& shard);
  void prepareUpstreamHeaders();
  // Envoy's request hash (HashPolicyImpl::generateHash): xxHash64 of each
  // hash_policy's value, rotated and xored together; nullopt when none applies.
  std::optional<uint64_t> hashFor() const;
  // After a 101 both ways: raw bytes until either side closes or goes idle.
  Awaitable<void> relay(DownstreamConnection& down, UpstreamConnection& up);
  // After an HTTP/1.1 upstream's 101 to an HTTP/2 extended CONNECT: the
  // stream's DATA both ways (StreamTunnel).
  Awaitable<void> tunnelInStream(UpstreamConnection& up);
  // The request is an upgrade or a CONNECT: a tunnel if it is answered.
  bool wantsTunnel() const { return wants_tunnel_; }
  // The upstream's answer opened the tunnel: a 101 to an upgrade, a 2xx to
  // a CONNECT.
  bool tunnelAccepted(uint16_t status) const;
  // 503 UO with x-envoy-overloaded (a circuit breaker overflowed).
  Outcome replyOverflow();
  // 504 UT: the route timeout expired before a response started.
  Outcome replyUpstreamTimeout();
  // The client's request is complete: the route timeout starts (Envoy starts
  // it at the end of the request, not at its headers).
  void onRequestComplete();
  // Takes the body bytes the downstream codec decoded, keeps them for
  // retries and mirrors while they fit, and encodes them (and the end of the
  // request, or its trailers, once complete) into `stream`.
  void encodeRequestBody(UpstreamStream& stream);
  // Every request body byte received so far can be sent again.
  bool bodyReplayable() const {
    return request_body_bytes_ == 0 || (keep_body_ && !body_overflow_);
  }
  bool canRetry();
  // Decodes a gRPC-Web text body's new bytes in place; false (and
  // grpc_web_rejected_ on the stream) when they are not base64.
  bool decodeGrpcWebBody();
  // Envoy's 400 to a gRPC-Web body that is not base64.
  Outcome replyGrpcWebRejected();
  // Sends a held non-gRPC response to a gRPC-Web call as its gRPC status.
  void encodeHeldGrpcWeb();

  // Laid out as ActiveStream's fields are: what every request touches in
  // the first three 64-byte lines, no signal or buffer it does not use.
  ActiveStream& stream_;
  DownstreamStream& conn_;
  const routing::RouteDecision& d_;
  std::shared_ptr<WorkerCluster> cluster_;
  HostState* host_ = nullptr;  // the last attempt's host (a retry avoids it)
  std::optional<RetryState> retry_;
  // The route timeout: from the end of the request; max until then / none.
  // Also no later than duration_deadline_.
  std::chrono::steady_clock::time_point deadline_ = std::chrono::steady_clock::time_point::max();
  // The stream's max duration (a gRPC request's grpc-timeout on a route with
  // grpc_timeout_header_max): from the stream's start; max = none.
  std::chrono::steady_clock::time_point duration_deadline_ =
      std::chrono::steady_clock::time_point::max();
  uint64_t& request_body_bytes_;  // body bytes taken from the client (the stream's count)
  // Attempts sent again because the upstream refused the stream unprocessed.
  static constexpr uint32_t kMaxRefusedRetries = 3;
  uint32_t refused_retries_ = 0;
  uint32_t attempt_number_ = 0;  // the current attempt's, from 0
  bool reused_ = false;          // its stream's connection served an earlier request
  bool route_clock_started_ = false;
  bool keep_body_ = false;
  bool body_overflow_ = false;  // a received byte is not in body_kept_
  bool body_stopped_ = false;   // stopRequestBody() on the current attempt
  bool mirrors_started_ = false;
  // An upgrade or a CONNECT on an HTTP/2 stream (extended CONNECT, RFC
  // 8441, or RFC 9113 §8.5) to an HTTP/1.1 upstream: the upstream gets the
  // head alone, and a 101 (a 2xx to a CONNECT) opens a StreamTunnel.
  bool tunnel_in_stream_ = false;
  // An upgrade or a CONNECT to an HTTP/2 upstream (an extended CONNECT or a
  // CONNECT stream; docs/connect.md): the client's payload is the request
  // body (DownstreamStream::beginTunnelBody), sent only once tunnel_open_
  // (the upstream's 2xx, a 101 from the codec for an upgrade).
  bool tunnel_over_h2_ = false;
  bool tunnel_open_ = false;
  // A CONNECT terminated here (attemptTcp()).
  bool connect_terminate_ = false;
  // The stream's, copied when the router starts: the response path reads
  // them, and the request head and the route decision are out of the
  // cache by then.
  const bool wants_tunnel_;
  const std::chrono::milliseconds stream_idle_;  // ActiveStream::streamIdle()
  // The request body as received, kept for retries and mirrors (only when
  // a retry policy, a mirror or a reused upstream connection may need it)
  // while it fits the listener's per_connection_buffer_limit_bytes.
  std::string body_kept_;
  // tunnel_open_ or body_stopped_ changed; made by the first wait for the
  // tunnel to open (a notify() with no waiter does nothing).
  std::unique_ptr<Signal> tunnel_open_signal_;
  // The current attempt's exchange, in the router (which lives in the
  // stream's coroutine frame): from startUpstream() to endAttempt() or
  // tunnel(). Last, so that it goes first (it refers to cluster_).
  std::optional<UpstreamRequest> upstream_;
};

}  // namespace turnout::proxy
