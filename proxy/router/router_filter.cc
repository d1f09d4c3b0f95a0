#include "proxy/router/router_filter.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <string>
#include <vector>

#include "proxy/codec/http1_server_codec.h"
#include "proxy/common/log.h"
#include "proxy/common/resume.h"
#include "proxy/common/xx_hash.h"
#include "proxy/connection/byte_relay.h"
#include "proxy/connection/downstream_connection.h"
#include "proxy/connection/stream_tunnel.h"
#include "proxy/router/request_mirror.h"
#include "proxy/server/worker.h"
#include "proxy/stream/active_stream.h"
#include "proxy/stream/local_reply.h"
#include "proxy/upstream/cluster_manager.h"

namespace turnout::proxy {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// The most a tunnel's pump reads at once (one buffer per direction).
constexpr size_t kTunnelChunk = 16 * 1024;

milliseconds until(Clock::time_point deadline) {
  auto d = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
  return d.count() < 1 ? milliseconds(1) : d;
}

// Calls fn(part) for each `sep`-separated part of `s` (std::string_view;
// Debian's abseil splits into absl::string_view). fn returns false to stop.
template <typename Fn>
void forEachPart(std::string_view s, char sep, Fn&& fn) {
  for (;;) {
    size_t pos = s.find(sep);
    if (!fn(s.substr(0, pos)) || pos == std::string_view::npos) return;
    s.remove_prefix(pos + 1);
  }
}

// A tunnel's byte counts (the stream's body bytes each way, as the access
// log reports them) and its idle timeout.
class TunnelObserver final : public RelayObserver {
 public:
  TunnelObserver(uint64_t& to_upstream, uint64_t& to_downstream, access_log::ResponseFlags& flags,
                 stats::Shard& shard, stats::StatId idle_timeouts)
      : to_upstream_(to_upstream),
        to_downstream_(to_downstream),
        flags_(flags),
        shard_(shard),
        idle_timeouts_(idle_timeouts) {}
  void onRead(RelayDirection, uint64_t) override {}
  void onWritten(RelayDirection dir, uint64_t n, bool delivered, bool) override {
    if (delivered) (dir == kToUpstream ? to_upstream_ : to_downstream_) += n;
  }
  void onSourceEnded(RelayDirection dir, bool reset) override {
    if (reset) {
      flags_.set(dir == kToUpstream ? access_log::ResponseFlag::DownstreamRemoteReset
                                    : access_log::ResponseFlag::UpstreamRemoteReset);
    }
  }
  void onFlush(bool) override {}
  void onIdleTimeout() override {
    flags_.set(access_log::ResponseFlag::StreamIdleTimeout);
    shard_.inc(idle_timeouts_);
  }

 private:
  uint64_t& to_upstream_;
  uint64_t& to_downstream_;
  access_log::ResponseFlags& flags_;
  stats::Shard& shard_;
  stats::StatId idle_timeouts_;
};

}  // namespace

RouterFilter::RouterFilter(ActiveStream& stream, const routing::RouteDecision& decision)
    : stream_(stream),
      conn_(stream.conn_),
      d_(decision),
      request_body_bytes_(stream.request_body_bytes_),
      wants_tunnel_(stream.tunnelRequested()),
      stream_idle_(stream.streamIdle()) {}

milliseconds RouterFilter::streamIdle() const {
  return stream_idle_ == ActiveStream::kForever ? milliseconds(0) : stream_idle_;
}

void RouterFilter::prepareUpstreamHeaders() {
  RequestHead& head = stream_.head_;
  Worker& worker = conn_.worker();
  http1::stripHopByHopHeaders(head.headers, head.upgrade);
  if (d_.rewritten_path) {
    std::string& original = stream_.rare().original_path;
    original = head.path;
    head.headers.set("x-envoy-original-path", original);
    head.path = *d_.rewritten_path;
  }
  if (!d_.host_rewrite.empty()) head.authority.assign(d_.host_rewrite);
  const auto& c = *stream_.hcm_.config;
  if (c.use_remote_address) {
    std::string remote = conn_.remote().address().to_string();
    std::string_view xff = head.headers.get("x-forwarded-for");
    if (xff.data() != nullptr) {
      std::string v = std::string(xff) + "," + remote;
      head.headers.set("x-forwarded-for", v);
    } else {
      head.headers.addLowercase("x-forwarded-for", remote);
    }
    head.headers.set("x-forwarded-proto", conn_.secure() ? "https" : "http");
  } else if (!head.headers.has("x-forwarded-proto")) {
    head.headers.addLowercase("x-forwarded-proto", conn_.secure() ? "https" : "http");
  }
  if (c.generate_request_id && !head.headers.has("x-request-id")) {
    std::array<char, 36> id;
    head.headers.addLowercase("x-request-id", uuid4(worker.random(), worker.random(), id));
  }
  if (d_.timeout.count() > 0) {
    char ms[24];
    const auto end = std::to_chars(ms, ms + sizeof(ms), d_.timeout.count()).ptr;
    head.headers.set("x-envoy-expected-rq-timeout-ms", std::string_view(ms, end - ms));
  }
  stream_.applyHeaderMutations(stream_.hcm_.route_table->requestHeaderMutations(d_), head.headers);
}

std::optional<uint64_t> RouterFilter::hashFor() const {
  const RequestHead& head = stream_.head_;
  std::optional<uint64_t> hash;
  for (const auto& p : d_.hash_policy) {
    std::optional<uint64_t> h;
    if (p.header) {
      const std::string& name = p.header->header_name;
      if (name == ":authority") {
        h = xxHash64(head.authority);
      } else if (head.headers.count(name) > 1) {
        // Envoy hashes every value, sorted, as one string.
        std::vector<std::string_view> values;
        head.headers.forEach([&](std::string_view n, std::string_view v) {
          if (n == name) values.push_back(v);
        });
        std::sort(values.begin(), values.end());
        std::string joined;
        for (std::string_view v : values) joined.append(v);
        h = xxHash64(joined);
      } else if (std::string_view v = head.headers.get(name); v.data() != nullptr) {
        h = xxHash64(v);
      }
    } else if (p.connection_properties && p.connection_properties->source_ip) {
      h = xxHash64(conn_.remote().address().to_string());
    } else if (p.query_parameter) {
      std::string_view path = head.path;
      size_t q = path.find('?');
      if (q != std::string_view::npos) {
        forEachPart(path.substr(q + 1), '&', [&](std::string_view kv) {
          size_t eq = kv.find('=');
          if (kv.substr(0, eq) != p.query_parameter->name) return true;
          h = xxHash64(eq == std::string_view::npos ? std::string_view() : kv.substr(eq + 1));
          return false;
        });
      }
    } else if (p.cookie) {
      std::string_view cookies = head.headers.get("cookie");
      if (cookies.data() != nullptr) {
        forEachPart(cookies, ';', [&](std::string_view c) {
          while (!c.empty() && c.front() == ' ') c.remove_prefix(1);
          size_t eq = c.find('=');
          if (eq == std::string_view::npos || c.substr(0, eq) != p.cookie->name) return true;
          h = xxHash64(c.substr(eq + 1));
          return false;
        });
      }
    }
    if (h) {
      hash = hash ? ((*hash << 1) | (*hash >> 63)) ^ *h : *h;
      if (p.terminal) break;
    }
  }
  return hash;
}

RouterFilter::Outcome RouterFilter::replyOverflow() {
  // Envoy's router: a circuit-breaker overflow is "dropped" and says so.
  stream_.flags_.set(access_log::ResponseFlag::UpstreamOverflow);
  stream_.overloaded_ = true;
  return reply(503, kBodyOverflow, "upstream_reset_before_response_started{overflow}");
}

RouterFilter::Outcome RouterFilter::replyUpstreamTimeout() {
  if (Clock::now() >= duration_deadline_) {
    // Envoy's onStreamMaxDurationReached: 408, or DEADLINE_EXCEEDED to gRPC.
    stream_.flags_.set(access_log::ResponseFlag::DurationTimeout);
    return reply(408, kBodyDurationTimeout, "max_duration_timeout", /*grpc_status=*/4);
  }
  stats::Shard& shard = conn_.worker().shard();
  shard.inc(cluster_->runtime().stats.upstream_rq_timeout());
  shard.inc(stream_.hcm_.stats.downstream_rq_timeout);
  stream_.flags_.set(access_log::ResponseFlag::UpstreamRequestTimeout);
  return reply(504, kBodyUpstreamTimeout, "upstream_response_timeout");
}

// Not in begin()'s caller: the name buffers would sit in every request's coroutine
// frame.
void RouterFilter::startGrpcStats(Worker& worker, stats::Shard& shard) {
  const auto& hcm = stream_.hcm_;
  if (hcm.grpc_stats && isGrpcContentType(stream_.head_.headers.get("content-type")) &&
      isGrpcServicePath(stream_.head_.path)) {
    GrpcMethodStatsSharedPtr method;
    GrpcStatsFilterConfig::MethodNameBuffer buffer;
    if (auto name = hcm.grpc_stats->methodStatName(stream_.head_.path, buffer)) {
      method = cluster_->grpcMethodStats("grpc", *name, worker.store(), worker.mailbox());
    }
    stream_.grpc_stats_ = std::make_unique<GrpcStatsTracker>(
        cluster_->runtime().stats.grpc(), shard, *hcm.grpc_stats, std::move(method));
  }
  // The grpc_web filter's own stats, as Envoy's: every gRPC-Web call's
  // status under its service and method (GrpcWebStream::stats).
  if (stream_.grpc_web_) {
    GrpcStatsFilterConfig::MethodNameBuffer buffer;
    const GrpcStatsFilterConfig& every = GrpcWebStream::statsConfig();
    if (auto name = every.methodStatName(stream_.head_.path, buffer)) {
      if (GrpcMethodStatsSharedPtr method =
              cluster_->grpcMethodStats("grpc-web", *name, worker.store(), worker.mailbox())) {
        stream_.grpc_web_->stats.emplace(stats::GrpcClusterStats{}, shard, every,
                                         std::move(method));
      }
    }
  }
}

RouterFilter::Outcome RouterFilter::begin() {
  Worker& worker = conn_.worker();
  stats::Shard& shard = worker.shard();
  const auto& hcm = stream_.hcm_;
  cluster_ = worker.clusters().get(d_.cluster);
  if (!cluster_) {
    stream_.flags_.set(access_log::ResponseFlag::NoClusterFound);
    shard.inc(hcm.stats.no_cluster);
    return reply(static_cast<uint16_t>(d_.cluster_not_found_status), "", "cluster_not_found");
  }
  shard.inc(hcm.stats.rq_total);
  stream_.cluster_runtime_ = &cluster_->runtime();
  startGrpcStats(worker, shard);
  // A CONNECT whose route says connect_config is terminated here, over
  // TCP, whatever the cluster's HTTP protocol.
  if (stream_.head_.method == "CONNECT" && d_.route != nullptr && d_.route->route) {
    for (const auto& u : d_.route->route->upgrade_configs) {
      if (u.upgrade_type == "connect") connect_terminate_ = u.enabled && u.connect_config;
    }
  }
  // A gRPC-Web text body that came with the headers is decoded before any
  // upstream is chosen, so a bad one is answered without connecting.
  if (!decodeGrpcWebBody()) return replyGrpcWebRejected();
  if (d_.max_stream_duration) {
    duration_deadline_ = stream_.start_ + *d_.max_stream_duration;
    deadline_ = std::min(deadline_, duration_deadline_);
  }
  retry_.emplace(d_.retry, stream_.head_.view(stream_.entries_), wantsTunnel());
  keep_body_ = (retry_->enabled() && retry_->config()->num_retries > 0) ||
               !d_.mirror_policies.empty();
  prepareUpstreamHeaders();
  // A tunnel's end depends on the upstream stream it gets (startUpstream()).
  if (!wantsTunnel() && requestComplete()) onRequestComplete();
  return Outcome(AttemptResult::Send);
}

Awaitable<void> RouterFilter::backOff() {
  // endAttempt() returns Retry only when canRetry() said yes.
  Worker& worker = conn_.worker();
  retry_->onRetry();
  worker.shard().inc(cluster_->runtime().stats.upstream_rq_retry());
  cluster_->startRetry();
  const milliseconds wait = std::min(retry_->backOff(worker.random()), until(deadline_));
  SteadyTimer timer(worker.io(), wait);
  boost::system::error_code ec;
  co_await waitOn(timer, &ec);
  cluster_->endRetry();
  stream_.flags_ = access_log::ResponseFlags();
}

bool RouterFilter::canRetry() {
  return retry_->canRetry(*cluster_, conn_.worker().shard(), bodyReplayable(), deadline_,
                          stream_.flags_);
}

void RouterFilter::onRequestComplete() {
  if (route_clock_started_) return;
  route_clock_started_ = true;
  if (d_.timeout.count() > 0) deadline_ = std::min(deadline_, Clock::now() + d_.timeout);
}

bool RouterFilter::requestComplete() const { return tunnel_in_stream_ || conn_.requestComplete(); }

bool RouterFilter::downstreamFailed() const { return stream_.downstream_failed_; }

void RouterFilter::encodeRequestStart(UpstreamStream& stream) {
  body_stopped_ = false;
  const RequestHead& head = stream_.head_;
  if (tunnel_in_stream_ || (conn_.requestComplete() && request_body_bytes_ == 0 &&
                            conn_.pendingBody().empty() && conn_.requestTrailers() == nullptr)) {
    stream.encodeHeaders(head, true);  // a request without a body
    return;
  }
  stream.encodeHeaders(head, false);
  if (keep_body_ && !body_kept_.empty()) {
    stream.encodeData(std::span<const char>(body_kept_.data(), body_kept_.size()), false);
  }
  encodeRequestBody(stream);
}

void RouterFilter::encodeRequestBody(UpstreamStream& stream) {
  std::string& body = conn_.pendingBody();
  request_body_bytes_ += body.size();
  if (keep_body_ && !body_overflow_) {
    // Envoy's router keeps the body for retries up to the decoder buffer
    // limit; past it the request is no longer retried.
    if (body_kept_.size() + body.size() <= stream_.hcm_.buffer_limit_bytes) {
      body_kept_.append(body);
    } else {
      body_overflow_ = true;
      std::string().swap(body_kept_);
    }
  }
  if (stream_.grpc_stats_ && !body.empty()) {
    stream_.grpc_stats_->onRequestData(std::span<const char>(body.data(), body.size()));
  }
  const bool last = conn_.requestComplete();
  const HeaderMap* trailers = conn_.requestTrailers();
  if (!body.empty() || (last && trailers == nullptr)) {
    stream.encodeData(std::span<const char>(body.data(), body.size()), last && trailers == nullptr);
  }
  if (last && trailers != nullptr) stream.encodeTrailers(*trailers);
  body.clear();
}

Awaitable<bool> RouterFilter::encodeMoreRequest(UpstreamStream* stream) {
  // A tunnel over an HTTP/2 upstream: nothing of the payload goes before
  // the upstream accepted it (Envoy's router holds a CONNECT's data until
  // the 2xx, and a WebSocket's until its switch).
  while (tunnel_over_h2_ && !tunnel_open_ && !body_stopped_) {
    if (!tunnel_open_signal_) {
      tunnel_open_signal_ = std::make_unique<Signal>(conn_.worker().io().get_executor());
    }
    boost::system::error_code ec;
    co_await waitOn(*tunnel_open_signal_, &ec);
  }
  if (body_stopped_) co_return false;
  const bool read = co_await conn_.readBody(stream_idle_);
  if (!read) {
    if (body_stopped_) co_return false;
    // The client went away or sent a malformed body mid-request.
    stream_.downstream_failed_ = true;
    stream_.close_connection_ = true;
    stream_.flags_.set(conn_.codecError() != CodecErrorCode::kNone
                           ? access_log::ResponseFlag::DownstreamProtocolError
                           : access_log::ResponseFlag::DownstreamConnectionTermination);
    co_return false;
  }
  if (!decodeGrpcWebBody()) {
    // Not base64: the request ends here (endAttempt() answers it).
    stream_.downstream_failed_ = true;
    stream_.close_connection_ = true;
    co_return false;
  }
  if (conn_.requestComplete()) onRequestComplete();
  encodeRequestBody(*stream);
  co_return true;
}

bool RouterFilter::decodeGrpcWebBody() {
  if (!stream_.grpc_web_) return true;
  if (stream_.grpc_web_->decodeRequestBody(conn_.pendingBody(), conn_.requestComplete())) {
    return true;
  }
  stream_.grpc_web_rejected_ = true;
  return false;
}

RouterFilter::Outcome RouterFilter::replyGrpcWebRejected() {
  stream_.close_connection_ = true;
  return reply(400, GrpcWebStream::kBadRequestBody, stream_.grpc_web_->details());
}

void RouterFilter::stopRequestBody() {
  body_stopped_ = true;
  if (tunnel_open_signal_) tunnel_open_signal_->notify();
  conn_.stopReading();
}

void RouterFilter::onRequestSent() {
  onRequestComplete();
  // Mirrors get a copy of the request as sent here, once; a body too big
  // to keep for retries is too big to copy for mirrors as well.
  if (!mirrors_started_ && !d_.mirror_policies.empty() && bodyReplayable()) {
    mirrors_started_ = true;
    startRequestMirrors(conn_.worker(), d_.mirror_policies, stream_.head_, body_kept_,
                        conn_.worker().random(),
                        d_.timeout.count() > 0 ? d_.timeout : milliseconds(15000));
  }
}

bool RouterFilter::onUpstreamHeaders(ResponseHead& head, bool end_stream) {
  // A retriable status with retries possible: drop this response. Only
  // while the request is complete: a retry cannot overtake its own upload.
  if (retry_->enabled() && conn_.requestComplete()) {
    head.headers.fillEntries(stream_.entries_);
    routing::RequestView view({}, {}, {}, stream_.entries_);
    if (retry_->wouldRetryResponse(head.status, view) && canRetry()) return true;
  }
  if (tunnel_over_h2_ && tunnelAccepted(head.status)) {
    tunnel_open_ = true;  // the payload may go now (encodeMoreRequest())
    if (tunnel_open_signal_) tunnel_open_signal_->notify();
  }
  // A 101 keeps its Upgrade field; the codec writes "connection: upgrade".
  // Over HTTP/2 the switch is a 200 whose stream goes on (Envoy's
  // transformUpgradeResponseFromH1toH2), and the upgrade fields go.
  const bool h2_client_tunnel = wantsTunnel() && conn_.http1() == nullptr;
  if (h2_client_tunnel && head.status == 101) {
    head.status = 200;
    head.reason.clear();
    end_stream = false;
  } else if (h2_client_tunnel && tunnelAccepted(head.status)) {
    end_stream = false;  // a CONNECT's 2xx: the stream goes on as the tunnel
  }
  stream_.final_status_ = head.status;
  stream_.response_headers_ = &head.headers;
  stream_.details_ = "via_upstream";
  http1::stripHopByHopHeaders(head.headers, head.status == 101 && stream_.head_.upgrade);
  const auto elapsed =
      std::chrono::duration_cast<milliseconds>(Clock::now() - upstream_->startTime());
  char service_time[24];
  const auto [end, ec] =
      std::to_chars(service_time, service_time + sizeof(service_time), elapsed.count());
  head.headers.set("x-envoy-upstream-service-time",
                   std::string_view(service_time, ec == std::errc() ? end - service_time : 0));
  head.headers.set("server", stream_.hcm_.config->server_name);
  stream_.applyResponseHeaderMutations(head.headers);
  head.close_connection = conn_.draining() || !conn_.requestComplete();
  if (head.close_connection) stream_.close_connection_ = true;
  if (stream_.grpc_stats_) stream_.grpc_stats_->onResponseHeaders(head.status, head.headers, end_stream);
  if (stream_.grpc_web_ && stream_.grpc_web_->stats) {
    stream_.grpc_web_->stats->onResponseHeaders(head.status, head.headers, end_stream);
  }
  // gRPC-Web after grpc_stats, as Envoy's encoder filters run in reverse:
  // a response that is not gRPC waits for its body (encodeHeldGrpcWeb()).
  if (stream_.grpc_web_ && !stream_.grpc_web_->onResponseHeaders(head, end_stream)) return false;
  conn_.encodeHeaders(head, end_stream);
  return false;
}

void RouterFilter::encodeHeldGrpcWeb() {
  ResponseHead& head = stream_.grpc_web_->finishHeld();
  stream_.response_headers_ = &head.headers;
  conn_.encodeHeaders(head, true);
}

void RouterFilter::onUpstreamData(std::span<const char> data, bool end_stream) {
  if (stream_.grpc_stats_) stream_.grpc_stats_->onResponseData(data);
  if (stream_.grpc_web_) {
    if (stream_.grpc_web_->holding()) {
      stream_.grpc_web_->holdData(data);
      if (end_stream) encodeHeldGrpcWeb();
      return;
    }
    data = stream_.grpc_web_->encodeData(data);
  }
  stream_.response_body_bytes_ += data.size();
  conn_.encodeData(data, end_stream);
}

void RouterFilter::onUpstreamTrailers(HeaderMap& trailers) {
  if (stream_.grpc_stats_) stream_.grpc_stats_->onResponseTrailers(trailers);
  if (stream_.grpc_web_) {
    if (stream_.grpc_web_->stats) stream_.grpc_web_->stats->onResponseTrailers(trailers);
    if (stream_.grpc_web_->holding()) {
      encodeHeldGrpcWeb();
      return;
    }
    // gRPC-Web carries the trailers as the body's last message.
    const std::span<const char> frame = stream_.grpc_web_->encodeTrailers(trailers);
    stream_.response_body_bytes_ += frame.size();
    conn_.encodeData(frame, true);
    return;
  }
  conn_.encodeTrailers(trailers);
}

bool RouterFilter::tryFlushResponse() { return conn_.tryFlush(); }

Awaitable<bool> RouterFilter::flushResponse() {
  const bool written = co_await conn_.flush(stream_idle_);
  if (written) co_return true;
  stream_.downstream_failed_ = true;
  co_return false;
}

// In its own frame: most requests get a stream at once (tryNewStream()),
// and this wait's locals would sit in every request's frame.
Awaitable<void> RouterFilter::waitForStream(Outcome& out) {
  Worker& worker = conn_.worker();
  stats::Shard& shard = worker.shard();
  const auto& hcm = stream_.hcm_;
  using Status = ConnPool::NewStreamResult::Status;
  // Waiting for a connection is bounded by the route timeout and, as for
  // any stream in Envoy, by the stream idle timeout.
  Clock::time_point wait_deadline = deadline_;
  if (streamIdle().count() > 0) {
    wait_deadline = std::min(wait_deadline, Clock::now() + streamIdle());
  }
  PendingRequest pending(worker.io().get_executor());
  conn_.watchForClose(pending);
  ConnPool::NewStreamResult acquired = co_await pool().newStream(&pending, wait_deadline);
  co_await conn_.stopWatching();
  switch (acquired.status) {
    case Status::Ready:
      out = startUpstream(std::move(acquired.stream));
      co_return;
    case Status::Overflow:
      out = replyOverflow();
      co_return;
    case Status::Cancelled:
      // The client went away while the request waited: nothing to answer.
      stream_.downstream_failed_ = true;
      stream_.close_connection_ = true;
      stream_.flags_.set(access_log::ResponseFlag::DownstreamConnectionTermination);
      out = AttemptResult::Failed;
      co_return;
    case Status::Timeout:
      if (Clock::now() >= deadline_) {
        out = replyUpstreamTimeout();
        co_return;
      }
      shard.inc(hcm.stats.downstream_rq_idle_timeout);
      stream_.flags_.set(access_log::ResponseFlag::StreamIdleTimeout);
      out = reply(408, kBodyStreamTimeout, "stream_idle_timeout");
      co_return;
    case Status::ConnectFailure:
      out = connectFailed(*host_, acquired.connect_timed_out);
      co_return;
  }
  out = AttemptResult::Failed;
  co_return;  // (every status returned above)
}

HostState* RouterFilter::chooseHost(uint32_t attempt_number) {
  Worker& worker = conn_.worker();
  WorkerCluster& cluster = *cluster_;
  LoadBalancerContext lb;
  lb.random = worker.random();
  lb.hash = hashFor();
  lb.avoid = attempt_number > 0 ? host_ : nullptr;
  std::optional<asio::ip::tcp::endpoint> listener_address;
  if (cluster.config().type == config::ClusterConfig::Type::OriginalDst) {
    const auto& hcm = stream_.hcm_;
    lb.downstream_local = &conn_.local();
    lb.request_headers = &stream_.head_.headers;
    if (hcm.listener != nullptr) listener_address = worker.boundAddress(hcm.listener->name);
    if (listener_address) lb.listener_address = &*listener_address;
  }
  return cluster.chooseHost(lb);
}

// The attempt's steps are plain functions and the stream's coroutine awaits
// them (router_filter.h): no frame of the router's per request. What waits
// rarely (the pool's queue, a terminated CONNECT, a tunnel, the back-off)
// is a coroutine of its own, so that its locals are not slots of every
// request's frame.
RouterFilter::Outcome RouterFilter::startAttempt(uint32_t attempt_number) {
  attempt_number_ = attempt_number;
  upstream_.reset();
  const Outcome out = pickHost(attempt_number);
  if (out.result != AttemptResult::Send) return out;
  if (connect_terminate_) return AttemptResult::Tcp;
  // A stream: at once from an idle connection, else through the pool's
  // pending queue.
  UpstreamStreamPtr stream = pool().tryNewStream();
  if (!stream) return AttemptResult::Wait;
  return startUpstream(std::move(stream));
}

ConnPool& RouterFilter::pool() { return cluster_->connPool(*host_, conn_.http1() == nullptr); }

RouterFilter::Outcome RouterFilter::startUpstream(UpstreamStreamPtr stream) {
  const Outcome out = prepareTunnel(*stream);
  if (out.result != AttemptResult::Send) return out;
  Worker& worker = conn_.worker();
  upstream_.emplace(*this, *cluster_, *host_, worker.shard(), std::move(stream), retry_->config(),
                    worker.io().get_executor(), worker.deadlines());
  if (!upstream_->start()) {
    upstream_.reset();
    return replyOverflow();
  }
  reused_ = prepareUpstream(*upstream_, attempt_number_);
  return AttemptResult::Exchange;
}

RouterFilter::Outcome RouterFilter::endAttempt() {
  const Outcome out = afterUpstream(*upstream_, reused_, attempt_number_);
  if (out.result != AttemptResult::Tunnel && out.result != AttemptResult::TunnelInStream) {
    upstream_.reset();
  }
  return out;
}

Awaitable<void> RouterFilter::tunnel(Outcome& out) {
  UpstreamConnection* up = upstream_->stream().http1Connection();
  if (out.result == AttemptResult::Tunnel) {
    DownstreamConnection* down = conn_.http1();
    if (up != nullptr && down != nullptr) co_await relay(*down, *up);
  } else if (up != nullptr) {
    co_await tunnelInStream(*up);
  }
  upstream_.reset();  // finish(false): the connection was the tunnel's
  out = AttemptResult::Done;
}

RouterFilter::Outcome RouterFilter::connectFailed(HostState& host, bool timed_out) {
  cluster_->recordOutcome(host, true);
  stream_.flags_.set(access_log::ResponseFlag::UpstreamConnectionFailure);
  if (retry_->wouldRetryReset(true) && canRetry()) return AttemptResult::Retry;
  return reply(503, timed_out ? kBodyConnectTimeout : kBodyConnectFailure,
               "upstream_reset_before_response_started{connection_failure}");
}

RouterFilter::Outcome RouterFilter::pickHost(uint32_t attempt_number) {
  HostState* host = chooseHost(attempt_number);
  if (host == nullptr) {
    stream_.flags_.set(access_log::ResponseFlag::NoHealthyUpstream);
    return reply(503, kBodyNoHealthyUpstream, "no_healthy_upstream");
  }
  host_ = host;
  stream_.upstream_host_ = host->description->address;
  return AttemptResult::Send;
}

RouterFilter::Outcome RouterFilter::prepareTunnel(UpstreamStream& stream) {
  if (!wantsTunnel()) return AttemptResult::Send;
  // HTTP/1.1 upstream: the head alone, then the connection is the tunnel
  // (tunnel() or, for an HTTP/2 client, tunnelInStream()). HTTP/2
  // upstream: an (extended) CONNECT stream whose DATA are the tunnel's,
  // relayed by the UpstreamRequest like any body.
  const bool h2_upstream = stream.http1Connection() == nullptr;
  if (tunnel_over_h2_ && !h2_upstream) {
    // An earlier attempt made the client's bytes the body of an HTTP/2
    // stream (beginTunnelBody); an HTTP/1.1 connection cannot take them
    // now (an auto_config host that changed its ALPN between attempts).
    return reply(503, kBodyConnectFailure,
                 "upstream_reset_before_response_started{protocol_changed}");
  }
  tunnel_over_h2_ = h2_upstream;
  tunnel_in_stream_ = !h2_upstream && conn_.http1() == nullptr;
  if (tunnel_over_h2_) conn_.beginTunnelBody();
  return AttemptResult::Send;
}

bool RouterFilter::prepareUpstream(UpstreamRequest& upstream, uint32_t attempt_number) {
  const bool reused = upstream.stream().reused();
  // A pooled connection may have been closed by the upstream while idle: the
  // request is then sent again once, so its body must be replayable.
  // A multiplexed (HTTP/2) stream may be refused unprocessed, and is then
  // sent again: its body must be replayable too.
  const bool multiplexed = upstream.stream().http1Connection() == nullptr;
  if ((reused || multiplexed) && attempt_number == 0 && request_body_bytes_ == 0 &&
      !tunnel_over_h2_) {
    keep_body_ = true;
  }

  // auto_host_rewrite: the chosen host's hostname (DNS clusters, or an
  // endpoint's hostname), per attempt since each attempt may pick another.
  RequestHead& head = stream_.head_;
  const HostState& host = *host_;
  if (d_.auto_host_rewrite && !host.description->hostname.empty()) {
    if (d_.route != nullptr && d_.route->route && d_.route->route->append_x_forwarded_host &&
        head.authority != host.description->hostname) {
      std::string_view xfh = head.headers.get("x-forwarded-host");
      head.headers.set("x-forwarded-host", xfh.data() != nullptr
                                               ? std::string(xfh) + "," + head.authority
                                               : head.authority);
    }
    head.authority = host.description->hostname;
  }
  return reused;
}

RouterFilter::Outcome RouterFilter::afterUpstream(UpstreamRequest& upstream, bool reused,
                                                  uint32_t attempt_number) {
  const UpstreamRequest::Result r = upstream.result();
  WorkerCluster& cluster = *cluster_;
  HostState& host = *host_;
  stats::Shard& shard = conn_.worker().shard();
  const auto& stats = cluster.runtime().stats;
  const auto& hcm = stream_.hcm_;
  // A response that ended before the request did (an early 413, say): the
  // rest of the request is not read, so neither connection can be reused.
  if (!r.request_sent) stream_.close_connection_ = true;

  using State = UpstreamRequest::State;
  using Timeout = UpstreamRequest::Timeout;
  // Outlier detection: an upstream 5xx, a reset or a timeout counts against
  // the host; a response below 500 clears it. A client that went away says
  // nothing about the host.
  if (r.status != 0) {
    cluster.recordOutcome(host, r.status >= 500);
  } else if (!stream_.downstream_failed_) {
    cluster.recordOutcome(host, true);
  }
  const bool complete = r.state == State::Complete || r.state == State::CompleteEarly;
  if (complete && upstream.stream().upgraded() && conn_.upgraded()) {
    shard.inc(stats.upstream_rq_completed());
    stats.countResponse(shard, r.status);
    return AttemptResult::Tunnel;
  }
  if (complete && tunnel_in_stream_ && tunnelAccepted(r.status) && upstream.stream().upgraded()) {
    shard.inc(stats.upstream_rq_completed());
    stats.countResponse(shard, r.status);
    return AttemptResult::TunnelInStream;
  }
  if (complete) {
    const auto elapsed =
        std::chrono::duration_cast<milliseconds>(Clock::now() - upstream.startTime());
    shard.record(stats.upstream_rq_time(), static_cast<uint64_t>(elapsed.count()));
    if (stream_.grpc_stats_) stream_.grpc_stats_->onUpstreamComplete(elapsed);
    shard.inc(stats.upstream_rq_completed());
    stats.countResponse(shard, r.status);
    upstream.finish(!r.eof && r.request_sent && conn_.requestComplete());
    if (conn_.closeAfterResponse()) stream_.close_connection_ = true;
    return AttemptResult::Done;
  }
  if (r.state == State::Discarding) {
    stats.countRetriedResponse(shard, r.status);
    upstream.finish(false);
    return AttemptResult::Retry;
  }
  upstream.finish(false);
  auto& flags = stream_.flags_;
  if (stream_.grpc_web_rejected_) {
    // The gRPC-Web text body turned out not to be base64.
    if (!r.response_started) return replyGrpcWebRejected();
    return AttemptResult::Failed;
  }
  if (stream_.downstream_failed_) {
    flags.set(access_log::ResponseFlag::DownstreamConnectionTermination);
    stream_.close_connection_ = true;
    if (conn_.codecError() != CodecErrorCode::kNone && !r.response_started) {
      const CodecErrorInfo info = codecErrorInfo(conn_.codecError());
      // The codec's details as the body, as Envoy's local reply to it.
      return reply(info.downstream_status, info.details, {});
    }
    return AttemptResult::Failed;
  }
  if (r.response_started) {
    // Headers already went to the client: all we can do is cut it off.
    const bool duration = r.timeout == Timeout::Global && Clock::now() >= duration_deadline_;
    const bool upstream_timeout =
        !duration && (r.timeout == Timeout::Global || r.timeout == Timeout::PerTryIdle);
    if (duration) {
      flags.set(access_log::ResponseFlag::DurationTimeout);
    } else if (r.timeout == Timeout::StreamIdle) {
      flags.set(access_log::ResponseFlag::StreamIdleTimeout);
      shard.inc(hcm.stats.downstream_rq_idle_timeout);
    } else {
      flags.set(upstream_timeout ? access_log::ResponseFlag::UpstreamRequestTimeout
                                 : access_log::ResponseFlag::UpstreamConnectionTermination);
    }
    if (upstream_timeout) shard.inc(stats.upstream_rq_timeout());
    shard.inc(hcm.stats.rq_reset_after_downstream_response_started);
    stream_.close_connection_ = true;
    return AttemptResult::Failed;
  }
  // Nothing was sent to the client yet.
  switch (r.timeout) {
    case Timeout::None: break;
    case Timeout::PerTry:
    case Timeout::PerTryIdle:
      shard.inc(r.timeout == Timeout::PerTry ? stats.upstream_rq_per_try_timeout()
                                             : stats.upstream_rq_per_try_idle_timeout());
      if (retry_->wouldRetryReset(false) && canRetry()) return AttemptResult::Retry;
      return replyUpstreamTimeout();
    case Timeout::Global:
      return replyUpstreamTimeout();
    case Timeout::StreamIdle:
      shard.inc(hcm.stats.downstream_rq_idle_timeout);
      flags.set(access_log::ResponseFlag::StreamIdleTimeout);
      stream_.close_connection_ = true;
      return reply(408, kBodyStreamTimeout, "stream_idle_timeout");
  }
  if (r.reset_reason == StreamResetReason::kProtocolError && !r.upstream_write_failed) {
    flags.set(access_log::ResponseFlag::UpstreamProtocolError);
    return reply(502, kBodyProtocolError, "upstream_reset_before_response_started{protocol_error}");
  }
  // Reset or EOF before a response: a stale pooled connection is retried once
  // transparently (when the body can be replayed); otherwise per policy.
  shard.inc(stats.upstream_rq_rx_reset());
  if (reused && attempt_number == 0 && r.status == 0 && bodyReplayable() &&
      Clock::now() < deadline_) {
    return AttemptResult::Send;  // at once, without a back-off (the caller's loop)
  }
  // A refused stream (REFUSED_STREAM, above a GOAWAY's last stream id, or
  // never sent) was not processed: it is sent again whatever the retry
  // policy, a bounded number of times (Envoy retries refused streams too).
  if (isRefusedStream(r.reset_reason) && r.status == 0 && bodyReplayable() &&
      refused_retries_ < kMaxRefusedRetries && Clock::now() < deadline_) {
    ++refused_retries_;
    return AttemptResult::Send;  // at once, without a back-off (the caller's loop)
  }
  flags.set(access_log::ResponseFlag::UpstreamConnectionTermination);
  if (retry_->wouldRetryReset(false) && canRetry()) return AttemptResult::Retry;
  return reply(503, kBodyUpstreamReset,
               "upstream_reset_before_response_started{connection_termination}");
}

bool RouterFilter::tunnelAccepted(uint16_t status) const {
  if (stream_.head_.method == "CONNECT") return status >= 200 && status < 300;
  return status == 101;
}

Awaitable<void> RouterFilter::attemptTcp(Outcome& out) {
  HostState& host = *host_;
  Worker& worker = conn_.worker();
  stats::Shard& shard = worker.shard();
  WorkerCluster& cluster = *cluster_;
  const auto& stats = cluster.runtime().stats;
  // The connection breaker, connect_timeout and the cluster's TLS, as for
  // the TCP proxy.
  WorkerCluster::TcpConnectResult c =
      co_await cluster.connectTcp(worker.io().get_executor(), &host);
  using Status = WorkerCluster::TcpConnectResult::Status;
  if (c.status == Status::Overflow) {
    out = replyOverflow();
    co_return;
  }
  if (c.status == Status::ConnectFailure) {
    out = connectFailed(host, c.timed_out);
    co_return;
  }
  cluster.recordOutcome(host, false);
  UpstreamConnection& up = *c.conn;
  // Counted as the request it stands for (Envoy's router counts a
  // terminated CONNECT like any upstream request, its synthesized 200 too).
  ++host.active_requests;
  ++host.rq_total;
  shard.inc(stats.upstream_rq_total());
  shard.add(stats.upstream_rq_active(), 1);
  const Clock::time_point started = Clock::now();

  // Envoy's TcpUpstream::encodeHeaders: a 200 as soon as the connection is
  // up. HTTP/1.1: a 2xx to a CONNECT switches the codec to the tunnel (no
  // body, no framing fields); HTTP/2: the stream goes on.
  ResponseHead& head = stream_.localHead();
  head.clear();
  head.status = 200;
  head.headers.set("server", stream_.hcm_.config->server_name);
  stream_.applyResponseHeaderMutations(head.headers);
  stream_.final_status_ = 200;
  stream_.response_headers_ = &head.headers;
  stream_.details_ = "via_upstream";
  DownstreamConnection* down = conn_.http1();
  conn_.encodeHeaders(head, /*end_stream=*/down != nullptr);
  const bool flushed = co_await flushResponse();
  if (flushed) {
    shard.inc(stats.upstream_rq_completed());
    stats.countResponse(shard, 200);
    if (down != nullptr) {
      co_await relay(*down, up);
    } else {
      co_await tunnelInStream(up);
    }
  }
  const auto elapsed = std::chrono::duration_cast<milliseconds>(Clock::now() - started);
  shard.record(stats.upstream_rq_time(), static_cast<uint64_t>(elapsed.count()));
  --host.active_requests;
  shard.sub(stats.upstream_rq_active(), 1);
  cluster.closeTcp(host, std::move(c.conn));
  out = AttemptResult::Done;
  co_return;
}

namespace {

// Hands an upgraded upstream connection to a relay: returns the bytes that
// arrived behind its 101 (they go to the client first); its own buffers are
// freed (the relay reads into its thread's scratch) and no stream deadline
// may cancel the relay halfway (it has its own idle timeout).
std::string handOverUpstream(UpstreamConnection& up) {
  auto up_data = up.read_buffer.data();
  std::string to_down(static_cast<const char*>(up_data.data()), up_data.size());
  up.read_buffer.consume(up_data.size());
  up.read_buffer.shrink_to_fit();
  std::string().swap(up.tls_plaintext);
  up.stream.expires_never();
  return to_down;
}

}  // namespace

Awaitable<void> RouterFilter::tunnelInStream(UpstreamConnection& up) {
  std::string to_down = handOverUpstream(up);
  RelayEnd up_end{&up.stream.socket(), up.tls.get(), {}};
  Worker& worker = conn_.worker();
  TunnelObserver observer(request_body_bytes_, stream_.response_body_bytes_, stream_.flags_,
                          worker.shard(), stream_.hcm_.stats.downstream_rq_idle_timeout);
  StreamTunnel tunnel(worker.io(), conn_, up_end, kTunnelChunk, streamIdle(), observer,
                      conn_.connectionId());
  co_await tunnel.run(std::move(to_down));
  boost::system::error_code ec;
  up.stream.socket().close(ec);
}

Awaitable<void> RouterFilter::relay(DownstreamConnection& down, UpstreamConnection& up) {
  // Bytes that arrived behind the heads start each direction (plaintext:
  // both connections decrypt before they parse).
  std::string_view early_down = down.buffered();
  std::string to_up(early_down);
  down.consumeBuffered(early_down.size());
  std::string to_down = handOverUpstream(up);
  // Neither connection reads through its own buffers again: an idle tunnel
  // holds only ByteRelay's two small wait buffers (it reads the rest into
  // its thread's scratch). The relay reads and writes the sockets itself,
  // with its own idle timeout: no stream deadline may cancel it halfway.
  down.releaseReadBuffer();
  down.stream().expires_never();
  RelayEnd down_end{&down.stream().socket(), down.tlsTransport(), {}};
  RelayEnd up_end{&up.stream.socket(), up.tls.get(), {}};
  Worker& worker = conn_.worker();
  TunnelObserver observer(request_body_bytes_, stream_.response_body_bytes_, stream_.flags_,
                          worker.shard(), stream_.hcm_.stats.downstream_rq_idle_timeout);
  ByteRelay relay(worker.io(), down_end, up_end, kTunnelChunk, streamIdle(), observer,
                  conn_.connectionId());
  co_await relay.run(std::move(to_up), std::move(to_down));
  boost::system::error_code ec;
  up.stream.socket().close(ec);
  stream_.close_connection_ = true;
}

}  // namespace turnout::proxy
