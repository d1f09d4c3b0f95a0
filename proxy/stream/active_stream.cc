#include "proxy/stream/active_stream.h"

#include <algorithm>
#include <cctype>
#include <cstdio>

#include "proxy/codec/http1_server_codec.h"
#include "proxy/common/log.h"
#include "proxy/common/spawn.h"
#include "proxy/common/xx_hash.h"
#include "proxy/connection/downstream_connection.h"
#include "proxy/router/request_mirror.h"
#include "proxy/server/worker.h"
#include "proxy/stream/local_reply.h"
#include "routing/path_normalizer.h"

namespace turnout::proxy {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kForever = std::chrono::hours(24 * 365);

milliseconds until(Clock::time_point deadline) {
  auto d = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
  return d.count() < 1 ? milliseconds(1) : d;
}

// routing::HeaderMutationTarget over the request's HeaderMap.
class HeaderMapTarget : public routing::HeaderMutationTarget {
 public:
  explicit HeaderMapTarget(HeaderMap& map) : map_(map) {}
  bool has(std::string_view name) const override { return map_.has(name); }
  void add(std::string_view name, std::string_view value) override {
    map_.addLowercase(name, value);
  }
  void set(std::string_view name, std::string_view value) override { map_.set(name, value); }
  void remove(std::string_view name) override { map_.remove(name); }

 private:
  HeaderMap& map_;
};

void appendHex(std::string& out, uint64_t v, int digits) {
  static const char* kHex = "0123456789abcdef";
  for (int i = digits - 1; i >= 0; --i) out.push_back(kHex[(v >> (i * 4)) & 0xf]);
}

// An RFC 4122 version-4 UUID from the worker's generator (x-request-id).
std::string uuid4(Worker& w) {
  uint64_t a = w.random(), b = w.random();
  a = (a & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;
  b = (b & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;
  std::string s;
  s.reserve(36);
  appendHex(s, a >> 32, 8);
  s.push_back('-');
  appendHex(s, (a >> 16) & 0xffff, 4);
  s.push_back('-');
  appendHex(s, a & 0xffff, 4);
  s.push_back('-');
  appendHex(s, b >> 48, 4);
  s.push_back('-');
  appendHex(s, b & 0xffffffffffffULL, 12);
  return s;
}

std::string toDecimal(uint64_t v) {
  char buf[24];
  int n = std::snprintf(buf, sizeof(buf), "%llu", static_cast<unsigned long long>(v));
  return std::string(buf, static_cast<size_t>(n));
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

// Copies bytes from `from` to `to` until EOF, an error or `idle` without
// traffic; then closes `to` so that the other direction ends too. Pointers,
// not references: the caller keeps both streams alive until `done` fires.
asio::awaitable<void> pump(beast::tcp_stream* from, beast::tcp_stream* to, std::string pending,
                           milliseconds idle, asio::steady_timer* done, bool* finished,
                           uint64_t* bytes) {
  std::vector<char> buf(16 * 1024);
  boost::system::error_code ec;
  for (;;) {
    if (!pending.empty()) {
      to->expires_after(idle);
      co_await asio::async_write(*to, asio::buffer(pending),
                                 asio::redirect_error(asio::use_awaitable, ec));
      if (ec) break;
      *bytes += pending.size();
      pending.clear();
    }
    from->expires_after(idle);
    size_t n = co_await from->async_read_some(asio::buffer(buf),
                                              asio::redirect_error(asio::use_awaitable, ec));
    if (ec) break;
    pending.assign(buf.data(), n);
  }
  to->socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  from->socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  if (finished != nullptr) *finished = true;
  if (done != nullptr) done->cancel();
}

}  // namespace

ActiveStream::ActiveStream(DownstreamConnection& conn, RequestHead& head)
    : conn_(conn),
      config_(conn.streamConfig()),
      hcm_(*conn.listener(*config_).hcm),
      head_(head),
      start_(Clock::now()),
      start_wall_(std::chrono::system_clock::now()),
      entries_(conn.entriesBuffer()),
      down_out_(conn.downstreamOutBuffer()),
      up_out_(conn.upstreamOutBuffer()) {
  down_out_.clear();
  up_out_.clear();
  stats::Shard& shard = conn_.worker().shard();
  shard.inc(hcm_.stats.downstream_rq_total);
  shard.add(hcm_.stats.downstream_rq_active, 1);
}

ActiveStream::~ActiveStream() {
  conn_.worker().shard().sub(hcm_.stats.downstream_rq_active, 1);
}

asio::awaitable<void> ActiveStream::sendLocalReply(uint16_t status, std::string_view body,
                                                   std::string_view location,
                                                   std::string_view content_type,
                                                   std::string_view details) {
  final_status_ = status;
  details_.assign(details);
  response_body_bytes_ = body.size();
  LocalReply reply;
  reply.status = status;
  reply.body = body;
  reply.location = location;
  reply.content_type = content_type;
  reply.head_request = head_.method == "HEAD";
  reply.overloaded = overloaded_;
  const std::function<void(HeaderMap&)> modify = [this](HeaderMap& h) {
    applyResponseHeaderMutations(h);
  };
  if (decision_ != nullptr) reply.modify_headers = &modify;
  // A request whose body was not read cannot leave the connection reusable.
  reply.close_connection = close_connection_ || !conn_.requestComplete() || conn_.draining();
  close_connection_ = reply.close_connection;
  down_out_.clear();
  encodeLocalReply(conn_.codec(), reply, conn_.worker().httpDate(), hcm_.config->server_name,
                   local_head_, down_out_);
  response_headers_ = &local_head_.headers;
  if (!co_await conn_.write(down_out_, hcm_.config->stream_idle_timeout)) {
    close_connection_ = true;
  }
}

stats::Shard& ActiveStream::shard() { return conn_.worker().shard(); }

bool ActiveStream::healthCheckFailed() { return conn_.worker().healthCheckFailed(); }

void ActiveStream::localReply(uint16_t status, std::string_view body, std::string_view details) {
  filter_reply_status_ = status;
  filter_reply_body_ = body;
  filter_reply_details_ = details;
}

asio::awaitable<void> ActiveStream::replyOverflow() {
  // Envoy's router: a circuit-breaker overflow is "dropped" and says so.
  flags_.set(access_log::ResponseFlag::UpstreamOverflow);
  overloaded_ = true;
  co_await sendLocalReply(503, kBodyOverflow, {}, {},
                          "upstream_reset_before_response_started{overflow}");
}

asio::awaitable<void> ActiveStream::replyUpstreamTimeout(const stats::ClusterStats& stats) {
  stats::Shard& shard = conn_.worker().shard();
  shard.inc(stats.upstream_rq_timeout);
  shard.inc(hcm_.stats.downstream_rq_timeout);
  flags_.set(access_log::ResponseFlag::UpstreamRequestTimeout);
  co_await sendLocalReply(504, kBodyUpstreamTimeout, {}, {}, "upstream_response_timeout");
}

asio::awaitable<void> ActiveStream::run() {
  Worker& worker = conn_.worker();
  stats::Shard& shard = worker.shard();

  // Envoy answers Expect: 100-continue itself and does not forward it.
  if (head_.expect_continue) {
    head_.headers.remove("expect");
    std::string cont = "HTTP/1.1 100 Continue\r\n\r\n";
    if (!co_await conn_.write(cont, hcm_.config->stream_idle_timeout)) {
      close_connection_ = true;
      co_return;
    }
  }

  // The connection manager's path and host normalisation, before any filter.
  const auto& hc = *hcm_.config;
  if (hc.normalize_path || hc.merge_slashes) {
    auto normalized = routing::normalizePath(head_.path, hc.normalize_path, hc.merge_slashes);
    if (!normalized) {
      close_connection_ = true;
      co_await sendLocalReply(400, "", {}, {}, "path_normalization_failed");
      complete();
      co_return;
    }
    head_.path = *std::move(normalized);
  }
  if (hc.strip_port_mode != config::HttpConnectionManagerConfig::StripPortMode::None) {
    std::string_view a = head_.authority;
    const size_t colon = a.rfind(':');
    const size_t bracket = a.rfind(']');
    if (colon != std::string_view::npos && (bracket == std::string_view::npos || colon > bracket)) {
      const std::string port(a.substr(colon + 1));
      const bool any = hc.strip_port_mode ==
                       config::HttpConnectionManagerConfig::StripPortMode::AnyHost;
      if (any || port == std::to_string(conn_.local().port())) head_.authority.resize(colon);
    }
  }

  // The HTTP filters, in config order; the router is the terminal stage.
  for (const StreamFilterConstSharedPtr& filter : hcm_.filters) {
    if (filter->decodeHeaders(*this) == FilterHeadersStatus::StopIteration) {
      co_await sendLocalReply(filter_reply_status_, filter_reply_body_, {}, {},
                              filter_reply_details_);
      complete();
      co_return;
    }
  }

  if (!hcm_.route_table) {
    flags_.set(access_log::ResponseFlag::NoRouteFound);
    shard.inc(hcm_.stats.no_route);
    co_await sendLocalReply(404, "", {}, {}, "route_not_found");
    complete();
    co_return;
  }
  routing::RequestView view = head_.view(entries_);
  routing::RouteDecision d = hcm_.route_table->match(view, worker.random());
  decision_ = &d;
  using Kind = routing::RouteDecision::Kind;
  switch (d.kind) {
    case Kind::NoRoute:
      flags_.set(access_log::ResponseFlag::NoRouteFound);
      shard.inc(hcm_.stats.no_route);
      co_await sendLocalReply(404, "", {}, {}, "route_not_found");
      break;
    case Kind::DirectResponse: {
      shard.inc(hcm_.stats.rq_direct_response);
      std::string location = routing::redirectLocation(view, d);
      std::string body(d.body);
      co_await sendLocalReply(static_cast<uint16_t>(d.status), body, location, {}, "direct_response");
      break;
    }
    case Kind::Redirect: {
      shard.inc(hcm_.stats.rq_redirect);
      std::string location = routing::redirectLocation(view, d);
      co_await sendLocalReply(static_cast<uint16_t>(d.status), "", location, {}, "redirect");
      break;
    }
    case Kind::ClusterHeaderMissing:
      flags_.set(access_log::ResponseFlag::NoClusterFound);
      shard.inc(hcm_.stats.no_cluster);
      co_await sendLocalReply(static_cast<uint16_t>(d.cluster_not_found_status), "", {}, {},
                            "cluster_not_found");
      break;
    case Kind::Route:
      if (head_.upgrade && !upgradeAllowed(d)) {
        // Envoy answers an upgrade nobody configured with 403.
        close_connection_ = true;
        co_await sendLocalReply(403, "", {}, {}, "upgrade_failed");
        break;
      }
      co_await forward(d);
      break;
  }
  complete();
}

void ActiveStream::prepareUpstreamHeaders(const routing::RouteDecision& d) {
  Worker& worker = conn_.worker();
  const bool upgrade = head_.upgrade;
  http1::stripHopByHopHeaders(head_.headers, upgrade);
  if (d.rewritten_path) {
    original_path_ = head_.path;
    head_.headers.set("x-envoy-original-path", original_path_);
    head_.path = *d.rewritten_path;
  }
  if (!d.host_rewrite.empty()) {
    std::string host(d.host_rewrite);
    head_.authority = host;
  }
  const auto& c = *hcm_.config;
  if (c.use_remote_address) {
    std::string remote = conn_.remote().address().to_string();
    std::string_view xff = head_.headers.get("x-forwarded-for");
    if (xff.data() != nullptr) {
      std::string v = std::string(xff) + "," + remote;
      head_.headers.set("x-forwarded-for", v);
    } else {
      head_.headers.addLowercase("x-forwarded-for", remote);
    }
    head_.headers.set("x-forwarded-proto", head_.scheme);
  } else if (!head_.headers.has("x-forwarded-proto")) {
    head_.headers.addLowercase("x-forwarded-proto", head_.scheme);
  }
  if (c.generate_request_id && !head_.headers.has("x-request-id")) {
    head_.headers.addLowercase("x-request-id", uuid4(worker));
  }
  if (d.timeout.count() > 0) {
    head_.headers.set("x-envoy-expected-rq-timeout-ms", toDecimal(static_cast<uint64_t>(
                                                            d.timeout.count())));
  }
  HeaderMapTarget target(head_.headers);
  routing::applyHeaderMutations(
      hcm_.route_table->requestHeaderMutations(d), target,
      [this](std::string_view cmd, std::string& out) { formatHeaderCommand(cmd, out); });
}

bool ActiveStream::upgradeAllowed(const routing::RouteDecision& d) const {
  std::string type(head_.upgradeProtocol());
  for (char& c : type) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const auto& hcm_types = hcm_.config->upgrade_types;
  bool allowed = std::find(hcm_types.begin(), hcm_types.end(), type) != hcm_types.end();
  if (d.route != nullptr && d.route->route) {
    for (const auto& u : d.route->route->upgrade_configs) {
      if (u.upgrade_type == type) allowed = u.enabled;
    }
  }
  return allowed;
}

asio::awaitable<void> ActiveStream::tunnel(UpstreamConnection& up) {
  // Bytes that arrived behind the heads start each direction.
  std::string_view early_down = conn_.buffered();
  std::string to_up(early_down);
  conn_.consumeBuffered(early_down.size());
  auto up_data = up.read_buffer.data();
  std::string to_down(static_cast<const char*>(up_data.data()), up_data.size());
  up.read_buffer.consume(up_data.size());
  const milliseconds idle = hcm_.config->stream_idle_timeout.count() > 0
                                ? hcm_.config->stream_idle_timeout
                                : kForever;
  auto& down_stream = conn_.stream();
  auto& up_stream = up.stream;
  asio::steady_timer done(conn_.worker().io(), Clock::time_point::max());
  bool other_finished = false;
  // upstream -> downstream runs beside this coroutine; both end when either
  // side closes, and this frame outlives it (we wait on `done`).
  asio::co_spawn(
      conn_.worker().io(),
      pump(&up_stream, &down_stream, std::move(to_down), idle, &done, &other_finished,
           &response_body_bytes_),
      [](std::exception_ptr) {});
  co_await pump(&down_stream, &up_stream, std::move(to_up), idle, nullptr, nullptr,
                &request_body_bytes_);
  boost::system::error_code ec;
  up_stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  up_stream.socket().close(ec);
  down_stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  if (!other_finished) co_await done.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  close_connection_ = true;
}

std::optional<uint64_t> ActiveStream::hashFor(const routing::RouteDecision& d) {
  std::optional<uint64_t> hash;
  for (const auto& p : d.hash_policy) {
    std::optional<uint64_t> h;
    if (p.header) {
      const std::string& name = p.header->header_name;
      if (name == ":authority") {
        h = xxHash64(head_.authority);
      } else if (head_.headers.count(name) > 1) {
        // Envoy hashes every value, sorted, as one string.
        std::vector<std::string_view> values;
        head_.headers.forEach([&](std::string_view n, std::string_view v) {
          if (n == name) values.push_back(v);
        });
        std::sort(values.begin(), values.end());
        std::string joined;
        for (std::string_view v : values) joined.append(v);
        h = xxHash64(joined);
      } else if (std::string_view v = head_.headers.get(name); v.data() != nullptr) {
        h = xxHash64(v);
      }
    } else if (p.connection_properties && p.connection_properties->source_ip) {
      h = xxHash64(conn_.remote().address().to_string());
    } else if (p.query_parameter) {
      std::string_view path = head_.path;
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
      std::string_view cookies = head_.headers.get("cookie");
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

std::chrono::milliseconds ActiveStream::streamIdle() const {
  // A route's idle_timeout replaces the HCM's stream_idle_timeout; 0 disables.
  const milliseconds t = decision_ != nullptr && decision_->idle_timeout
                             ? *decision_->idle_timeout
                             : hcm_.config->stream_idle_timeout;
  return t.count() > 0 ? t : kForever;
}

asio::awaitable<void> ActiveStream::forward(const routing::RouteDecision& d) {
  Worker& worker = conn_.worker();
  stats::Shard& shard = worker.shard();
  std::shared_ptr<WorkerCluster> cluster = worker.clusters().get(d.cluster);
  if (!cluster) {
    flags_.set(access_log::ResponseFlag::NoClusterFound);
    shard.inc(hcm_.stats.no_cluster);
    co_await sendLocalReply(static_cast<uint16_t>(d.cluster_not_found_status), "", {}, {},
                            "cluster_not_found");
    co_return;
  }
  shard.inc(hcm_.stats.rq_total);
  decision_ = &d;
  cluster_runtime_ = &cluster->runtime();
  retry_ = d.retry;
  if (retry_ != nullptr) {
    routing::RequestView view = head_.view(entries_);
    if (!retry_->requestAllowsRetry(view)) retry_ = nullptr;
  }
  keep_body_ = (retry_ != nullptr && retry_->config->num_retries > 0) || !d.mirror_policies.empty();
  prepareUpstreamHeaders(d);
  if (conn_.requestComplete()) onRequestComplete();
  cluster_ = cluster.get();
  for (uint32_t attempt_number = 0;; ++attempt_number) {
    AttemptResult r = co_await attempt(d, *cluster, attempt_number);
    if (r != AttemptResult::Retry) break;
    // attempt() returns Retry only when canRetry() said yes.
    ++retries_done_;
    shard.inc(cluster_runtime_->stats.upstream_rq_retry);
    cluster->startRetry();
    // Fully jittered exponential back-off: base 25 ms, at most 10x base.
    milliseconds base(25), cap(250);
    if (retry_->config->retry_back_off) {
      base = retry_->config->retry_back_off->base_interval;
      cap = retry_->config->retry_back_off->max_interval.value_or(base * 10);
    }
    uint64_t ceiling = static_cast<uint64_t>(std::min<int64_t>(
        cap.count(), base.count() << std::min<uint32_t>(attempt_number + 1, 20)));
    milliseconds wait(ceiling == 0 ? 0 : static_cast<int64_t>(worker.random() % ceiling));
    wait = std::min(wait, until(deadline_));
    asio::steady_timer timer(worker.io(), wait);
    boost::system::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    cluster->endRetry();
    flags_ = access_log::ResponseFlags();
  }
}

bool ActiveStream::canRetry() {
  if (retry_ == nullptr || cluster_ == nullptr || head_.upgrade) return false;
  stats::Shard& shard = conn_.worker().shard();
  if (retries_done_ >= retry_->config->num_retries) {
    shard.inc(cluster_runtime_->stats.upstream_rq_retry_limit_exceeded);
    flags_.set(access_log::ResponseFlag::UpstreamRetryLimitExceeded);
    return false;
  }
  // A retry sends exactly the bytes the client sent, or does not happen.
  if (!bodyReplayable()) return false;
  if (Clock::now() >= deadline_) return false;
  if (!cluster_->resources().retries.canCreate(cluster_->thresholds().max_retries)) {
    shard.inc(cluster_runtime_->stats.upstream_rq_retry_overflow);
    return false;
  }
  return true;
}

void ActiveStream::onRequestComplete() {
  if (deadline_ != Clock::time_point::max() || decision_ == nullptr) return;
  if (decision_->timeout.count() > 0) deadline_ = Clock::now() + decision_->timeout;
}

void ActiveStream::encodeRequestBody(UpstreamConnection& up, std::string& out) {
  std::string& body = conn_.pendingBody();
  request_body_bytes_ += body.size();
  if (keep_body_ && !body_overflow_) {
    // Envoy's router keeps the body for retries up to the decoder buffer
    // limit; past it the request is no longer retried.
    if (body_kept_.size() + body.size() <= hcm_.buffer_limit_bytes) {
      body_kept_.append(body);
    } else {
      body_overflow_ = true;
      std::string().swap(body_kept_);
    }
  }
  const bool last = conn_.requestComplete();
  const HeaderMap* trailers = conn_.requestTrailers();
  if (!body.empty() || (last && trailers == nullptr)) {
    up.codec.encodeData(std::span<const char>(body.data(), body.size()),
                        last && trailers == nullptr, out);
  }
  if (last && trailers != nullptr) up.codec.encodeTrailers(*trailers, out);
  body.clear();
}

void ActiveStream::onRequestSent(Exchange& x) {
  x.request_sent = true;
  onRequestComplete();
  const auto& policy = retry_ != nullptr ? retry_->config : nullptr;
  if (policy != nullptr && policy->per_try_timeout && policy->per_try_timeout->count() > 0) {
    x.try_deadline = Clock::now() + *policy->per_try_timeout;
  }
  armWatchdog(x);
  // Mirrors get a copy of the request as sent here, once; a body too big
  // to keep for retries is too big to copy for mirrors as well.
  if (!mirrors_started_ && !decision_->mirror_policies.empty() && bodyReplayable()) {
    mirrors_started_ = true;
    startRequestMirrors(conn_.worker(), decision_->mirror_policies, head_, body_kept_,
                        conn_.worker().random(),
                        decision_->timeout.count() > 0 ? decision_->timeout : milliseconds(15000));
  }
}

void ActiveStream::armWatchdog(Exchange& x) {
  Clock::time_point at = deadline_;
  // Envoy ignores the per-try timeout once the response has started.
  if (!response_started_) at = std::min(at, x.try_deadline);
  const auto* policy = retry_ != nullptr ? retry_->config : nullptr;
  if (x.request_sent && policy != nullptr && policy->per_try_idle_timeout &&
      policy->per_try_idle_timeout->count() > 0) {
    at = std::min(at, x.last_activity + *policy->per_try_idle_timeout);
  }
  const milliseconds idle = streamIdle();
  if (idle != kForever) at = std::min(at, x.last_activity + idle);
  ++x.watch_gen;  // supersedes any outstanding wait
  if (at == Clock::time_point::max()) {
    if (x.watch_waits > 0) x.watchdog.cancel();
    return;
  }
  x.watchdog.expires_at(at);  // cancels an outstanding wait
  ++x.watch_waits;
  x.watchdog.async_wait([this, &x, gen = x.watch_gen](const boost::system::error_code& ec) {
    --x.watch_waits;
    if (!ec && gen == x.watch_gen) onWatchdog(x);
  });
}

void ActiveStream::onWatchdog(Exchange& x) {
  if (x.fired != Timeout::None) return;
  const Clock::time_point now = Clock::now();
  const auto* policy = retry_ != nullptr ? retry_->config : nullptr;
  if (now >= deadline_) {
    x.fired = Timeout::Global;
  } else if (!response_started_ && now >= x.try_deadline) {
    x.fired = Timeout::PerTry;
  } else if (x.request_sent && policy != nullptr && policy->per_try_idle_timeout &&
             policy->per_try_idle_timeout->count() > 0 &&
             now >= x.last_activity + *policy->per_try_idle_timeout) {
    x.fired = Timeout::PerTryIdle;
  } else if (streamIdle() != kForever && now >= x.last_activity + streamIdle()) {
    x.fired = Timeout::StreamIdle;
  } else {
    armWatchdog(x);  // activity since it was armed: not idle yet
    return;
  }
  // Wakes the reader (and the pump's upstream write); both see `fired`.
  boost::system::error_code ignored;
  x.up->stream.socket().cancel(ignored);
}

asio::awaitable<void> ActiveStream::pumpRequestBody(Exchange* x) {
  UpstreamConnection& up = *x->up;
  std::string& out = up_out_;
  boost::system::error_code ec;
  while (!x->stop_pump) {
    if (!co_await conn_.readBody(streamIdle())) {
      if (x->stop_pump) break;
      // The client went away or sent a malformed body mid-request: the
      // reader stops too.
      downstream_failed_ = true;
      close_connection_ = true;
      if (conn_.codecError() != CodecErrorCode::kNone) {
        flags_.set(access_log::ResponseFlag::DownstreamProtocolError);
      } else {
        flags_.set(access_log::ResponseFlag::DownstreamConnectionTermination);
      }
      up.stream.socket().cancel(ec);
      break;
    }
    const bool complete = conn_.requestComplete();
    if (complete) onRequestComplete();
    out.clear();
    encodeRequestBody(up, out);
    if (!out.empty()) {
      up.stream.expires_never();
      co_await asio::async_write(up.stream, asio::buffer(out),
                                 asio::redirect_error(asio::use_awaitable, ec));
      out.clear();
      if (ec) {
        x->upstream_write_failed = true;
        break;
      }
      x->last_activity = Clock::now();
    }
    if (complete) {
      onRequestSent(*x);
      break;
    }
  }
  x->pump_running = false;
  x->pump_done.cancel();
}

asio::awaitable<void> ActiveStream::endExchange(Exchange& x) {
  boost::system::error_code ec;
  if (x.pump_running) {
    x.stop_pump = true;
    // Nothing else is outstanding on either socket now: the reader is done.
    conn_.stream().socket().cancel(ec);
    x.up->stream.socket().cancel(ec);
    while (x.pump_running) {
      co_await x.pump_done.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
  }
  ++x.watch_gen;
  x.watchdog.cancel();
  // The cancelled wait's handler is queued ahead of this continuation.
  for (int i = 0; x.watch_waits > 0 && i < 64; ++i) {
    co_await asio::post(conn_.worker().io().get_executor(), asio::use_awaitable);
  }
  exchange_ = nullptr;
}

asio::awaitable<ActiveStream::AttemptResult> ActiveStream::attempt(
    const routing::RouteDecision& d, WorkerCluster& cluster, uint32_t attempt_number) {
  Worker& worker = conn_.worker();
  stats::Shard& shard = worker.shard();
  const auto& stats = cluster.runtime().stats;
  LoadBalancerContext lb;
  lb.random = worker.random();
  lb.hash = hashFor(d);
  lb.avoid = attempt_number > 0 ? host_ : nullptr;
  HostState* host = cluster.chooseHost(lb);
  if (host == nullptr) {
    flags_.set(access_log::ResponseFlag::NoHealthyUpstream);
    co_await sendLocalReply(503, kBodyNoHealthyUpstream, {}, {}, "no_healthy_upstream");
    co_return AttemptResult::Failed;
  }
  host_ = host;
  upstream_host_ = host->description->address;

  // A connection: an idle one, else through the pool's pending queue.
  UpstreamConnectionPtr up = cluster.takeIdle(*host);
  if (!up) {
    using Status = WorkerCluster::AcquireResult::Status;
    // Waiting for a connection is bounded by the route timeout and, as for
    // any stream in Envoy, by the stream idle timeout.
    Clock::time_point wait_deadline = deadline_;
    if (streamIdle() != kForever) {
      wait_deadline = std::min(wait_deadline, Clock::now() + streamIdle());
    }
    PendingRequest pending(worker.io().get_executor());
    conn_.watchForClose(pending);
    auto acquired = co_await cluster.acquire(host, &pending, wait_deadline);
    co_await conn_.stopWatching();
    switch (acquired.status) {
      case Status::Ready:
        up = std::move(acquired.conn);
        break;
      case Status::Overflow:
        co_await replyOverflow();
        co_return AttemptResult::Failed;
      case Status::Cancelled:
        // The client went away while the request waited: nothing to answer.
        downstream_failed_ = true;
        close_connection_ = true;
        flags_.set(access_log::ResponseFlag::DownstreamConnectionTermination);
        co_return AttemptResult::Failed;
      case Status::Timeout:
        if (Clock::now() >= deadline_) {
          co_await replyUpstreamTimeout(stats);
        } else {
          shard.inc(hcm_.stats.downstream_rq_idle_timeout);
          flags_.set(access_log::ResponseFlag::StreamIdleTimeout);
          co_await sendLocalReply(408, kBodyStreamTimeout, {}, {}, "stream_idle_timeout");
        }
        co_return AttemptResult::Failed;
      case Status::ConnectFailure:
        cluster.recordOutcome(*host, true);
        flags_.set(access_log::ResponseFlag::UpstreamConnectionFailure);
        if (retry_ != nullptr && retry_->retriableReset(true) && canRetry()) {
          co_return AttemptResult::Retry;
        }
        co_await sendLocalReply(
            503, acquired.connect_timed_out ? kBodyConnectTimeout : kBodyConnectFailure, {}, {},
            "upstream_reset_before_response_started{connection_failure}");
        co_return AttemptResult::Failed;
    }
  }
  // Envoy checks max_requests when the request is attached to a connection.
  if (!cluster.tryStartRequest()) {
    shard.inc(stats.upstream_rq_pending_overflow);
    cluster.release(*host, std::move(up), true);
    co_await replyOverflow();
    co_return AttemptResult::Failed;
  }

  ++host->active_requests;
  ++host->rq_total;
  shard.inc(stats.upstream_rq_total);
  shard.add(stats.upstream_rq_active, 1);
  upstream_start_ = Clock::now();
  response_status_ = 0;
  response_started_ = false;
  response_complete_ = false;
  discard_response_ = false;
  up->forwarder.target = this;
  ++up->requests;
  const bool reused = up->reused;
  // A pooled connection may have been closed by the upstream while idle: the
  // request is then sent again once, so its body must be replayable.
  if (reused && attempt_number == 0 && request_body_bytes_ == 0) keep_body_ = true;

  // auto_host_rewrite: the chosen host's hostname (DNS clusters, or an
  // endpoint's hostname), per attempt since each attempt may pick another.
  if (d.auto_host_rewrite && !host->description->hostname.empty()) {
    if (d.route != nullptr && d.route->route && d.route->route->append_x_forwarded_host &&
        head_.authority != host->description->hostname) {
      std::string_view xfh = head_.headers.get("x-forwarded-host");
      head_.headers.set("x-forwarded-host", xfh.data() != nullptr
                                                ? std::string(xfh) + "," + head_.authority
                                                : head_.authority);
    }
    head_.authority = host->description->hostname;
  }

  Exchange x(worker.io().get_executor());
  x.up = up.get();
  x.last_activity = upstream_start_;
  exchange_ = &x;

  auto finish = [&](bool reusable) {
    --host->active_requests;
    cluster.endRequest();
    shard.sub(stats.upstream_rq_active, 1);
    up->forwarder.target = nullptr;
    const bool reuse = reusable && up->codec.canReuse();
    cluster.release(*host, std::move(up), reuse);
  };

  // The head and every body byte received so far (a retry replays what an
  // earlier attempt sent); then the pump streams the rest beside the reader.
  up_out_.clear();
  boost::system::error_code ec;
  if (conn_.requestComplete() && request_body_bytes_ == 0 && conn_.pendingBody().empty() &&
      conn_.requestTrailers() == nullptr) {
    up->codec.encodeHeaders(head_, true, up_out_);  // a request without a body
  } else {
    up->codec.encodeHeaders(head_, false, up_out_);
    if (keep_body_ && !body_kept_.empty()) {
      up->codec.encodeData(std::span<const char>(body_kept_.data(), body_kept_.size()), false,
                           up_out_);
    }
    encodeRequestBody(*up, up_out_);
  }
  up->stream.expires_never();
  co_await asio::async_write(up->stream, asio::buffer(up_out_),
                             asio::redirect_error(asio::use_awaitable, ec));
  up_out_.clear();
  if (ec) {
    x.upstream_write_failed = true;
  } else if (conn_.requestComplete()) {
    onRequestSent(x);
  } else {
    x.pump_running = true;
    asio::co_spawn(worker.io(), pumpRequestBody(&x), [id = conn_.id()](std::exception_ptr e) {
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        TURNOUT_CONN_LOG(err, "router", id, "request body pump failed: {}", ex.what());
      }
    });
    armWatchdog(x);
  }

  // Response, read while the pump may still be sending the request.
  bool got_eof = false;
  bool read_failed = false;
  while (!response_complete_ && !downstream_failed_ && x.fired == Timeout::None) {
    auto data = up->read_buffer.data();
    if (data.size() > 0) {
      auto consumed = up->codec.decode(
          std::span<const char>(static_cast<const char*>(data.data()), data.size()));
      if (!consumed.ok()) break;
      up->read_buffer.consume(*consumed);
      if (!down_out_.empty()) {
        if (!co_await conn_.write(down_out_, streamIdle())) {
          downstream_failed_ = true;
          break;
        }
      }
      if (response_complete_ || discard_response_) break;
      if (*consumed > 0) continue;
    }
    if (x.fired != Timeout::None || downstream_failed_) break;
    up->stream.expires_never();
    size_t n = co_await up->stream.async_read_some(up->read_buffer.prepare(16 * 1024),
                                                   asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (ec == asio::error::eof) {
        got_eof = true;
        if (up->codec.onEof().ok()) {
          if (!down_out_.empty()) co_await conn_.write(down_out_, streamIdle());
        }
      }
      read_failed = true;
      break;
    }
    x.last_activity = Clock::now();
    up->read_buffer.commit(n);
  }
  const bool request_was_sent = x.request_sent;
  co_await endExchange(x);
  // A response that ended before the request did (an early 413, say): the
  // rest of the request is not read, so neither connection can be reused.
  if (!request_was_sent) close_connection_ = true;

  const Timeout timed_out = x.fired;
  // Outlier detection: an upstream 5xx, a reset or a timeout counts against
  // the host; a response below 500 clears it. A client that went away says
  // nothing about the host.
  if (response_status_ != 0) {
    cluster.recordOutcome(*host, response_status_ >= 500);
  } else if (!downstream_failed_) {
    cluster.recordOutcome(*host, true);
  }
  if (response_complete_ && !discard_response_ && up->codec.upgraded() &&
      conn_.codec().upgraded()) {
    shard.inc(stats.upstream_rq_completed);
    stats.countResponse(shard, response_status_);
    co_await tunnel(*up);
    finish(false);
    co_return AttemptResult::Done;
  }
  if (response_complete_ && !discard_response_) {
    shard.record(stats.upstream_rq_time,
                 static_cast<uint64_t>(std::chrono::duration_cast<milliseconds>(
                                           Clock::now() - upstream_start_)
                                           .count()));
    shard.inc(stats.upstream_rq_completed);
    stats.countResponse(shard, response_status_);
    finish(!got_eof && request_was_sent && conn_.requestComplete());
    if (conn_.codec().shouldClose()) close_connection_ = true;
    co_return AttemptResult::Done;
  }
  if (discard_response_) {
    stats.countRetriedResponse(shard, response_status_);
    finish(false);
    co_return AttemptResult::Retry;
  }
  finish(false);
  if (downstream_failed_) {
    flags_.set(access_log::ResponseFlag::DownstreamConnectionTermination);
    close_connection_ = true;
    if (conn_.codecError() != CodecErrorCode::kNone && !response_started_) {
      const CodecErrorInfo info = codecErrorInfo(conn_.codecError());
      co_await sendLocalReply(info.downstream_status, info.details);
    }
    co_return AttemptResult::Failed;
  }
  if (response_started_) {
    // Headers already went to the client: all we can do is cut it off.
    const bool upstream_timeout = timed_out == Timeout::Global || timed_out == Timeout::PerTryIdle;
    if (timed_out == Timeout::StreamIdle) {
      flags_.set(access_log::ResponseFlag::StreamIdleTimeout);
      shard.inc(hcm_.stats.downstream_rq_idle_timeout);
    } else {
      flags_.set(upstream_timeout ? access_log::ResponseFlag::UpstreamRequestTimeout
                                  : access_log::ResponseFlag::UpstreamConnectionTermination);
    }
    if (upstream_timeout) shard.inc(stats.upstream_rq_timeout);
    shard.inc(hcm_.stats.rq_reset_after_downstream_response_started);
    close_connection_ = true;
    co_return AttemptResult::Failed;
  }
  // Nothing was sent to the client yet.
  switch (timed_out) {
    case Timeout::None: break;
    case Timeout::PerTry:
    case Timeout::PerTryIdle:
      shard.inc(timed_out == Timeout::PerTry ? stats.upstream_rq_per_try_timeout
                                             : stats.upstream_rq_per_try_idle_timeout);
      if (retry_ != nullptr && retry_->retriableReset(false) && canRetry()) {
        co_return AttemptResult::Retry;
      }
      co_await replyUpstreamTimeout(stats);
      co_return AttemptResult::Failed;
    case Timeout::Global:
      co_await replyUpstreamTimeout(stats);
      co_return AttemptResult::Failed;
    case Timeout::StreamIdle:
      shard.inc(hcm_.stats.downstream_rq_idle_timeout);
      flags_.set(access_log::ResponseFlag::StreamIdleTimeout);
      close_connection_ = true;
      co_await sendLocalReply(408, kBodyStreamTimeout, {}, {}, "stream_idle_timeout");
      co_return AttemptResult::Failed;
  }
  const bool protocol_error = !read_failed && !x.upstream_write_failed;
  if (protocol_error) {
    flags_.set(access_log::ResponseFlag::UpstreamProtocolError);
    co_await sendLocalReply(502, kBodyProtocolError, {}, {},
                            "upstream_reset_before_response_started{protocol_error}");
    co_return AttemptResult::Failed;
  }
  // Reset or EOF before a response: a stale pooled connection is retried once
  // transparently (when the body can be replayed); otherwise per policy.
  shard.inc(stats.upstream_rq_rx_reset);
  if (reused && attempt_number == 0 && response_status_ == 0 && bodyReplayable() &&
      Clock::now() < deadline_) {
    co_return co_await attempt(d, cluster, attempt_number + 1);
  }
  flags_.set(access_log::ResponseFlag::UpstreamConnectionTermination);
  if (retry_ != nullptr && retry_->retriableReset(false) && canRetry()) {
    co_return AttemptResult::Retry;
  }
  co_await sendLocalReply(503, kBodyUpstreamReset, {}, {},
                          "upstream_reset_before_response_started{connection_termination}");
  co_return AttemptResult::Failed;
}

void ActiveStream::onMessageBegin() {}

void ActiveStream::onInformational(ResponseHead&) {
  // 100 Continue was already answered locally; other 1xx are not forwarded.
}

void ActiveStream::formatHeaderCommand(std::string_view cmd, std::string& out) const {
  if (cmd == "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT") {
    out += conn_.remote().address().to_string();
  } else if (cmd == "PROTOCOL") {
    out += head_.version_minor == 0 ? "HTTP/1.0" : "HTTP/1.1";
  } else if (cmd == "ROUTING_KEY") {
    out += key_;
  } else if (cmd == "UPSTREAM_REMOTE_ADDRESS") {
    out += upstream_host_;
  } else if (cmd == "RESPONSE_CODE" && final_status_ != 0) {
    out += toDecimal(final_status_);
  }
}

void ActiveStream::applyResponseHeaderMutations(HeaderMap& headers) {
  if (decision_ == nullptr || !hcm_.route_table ||
      decision_->kind == routing::RouteDecision::Kind::NoRoute) {
    return;
  }
  routing::HeaderMutationLevels levels = hcm_.route_table->responseHeaderMutations(*decision_);
  if (levels.empty()) return;
  HeaderMapTarget target(headers);
  routing::applyHeaderMutations(
      levels, target,
      [this](std::string_view cmd, std::string& out) { formatHeaderCommand(cmd, out); });
}

void ActiveStream::onHeaders(ResponseHead& head, bool end_stream) {
  response_status_ = head.status;
  // A retriable status with retries possible: drop this response. Only
  // while the request is complete: a retry cannot overtake its own upload.
  if (!response_started_ && retry_ != nullptr && conn_.requestComplete()) {
    head.headers.fillEntries(entries_);
    routing::RequestView view({}, {}, {}, entries_);
    if (retry_->retriableResponse(head.status, view) && canRetry()) {
      discard_response_ = true;
      return;
    }
  }
  response_started_ = true;
  if (exchange_ != nullptr) armWatchdog(*exchange_);  // the per-try timeout no longer applies
  final_status_ = head.status;
  response_headers_ = &head.headers;
  details_ = "via_upstream";
  // A 101 keeps its Upgrade field; the codec writes "connection: upgrade".
  http1::stripHopByHopHeaders(head.headers, head.status == 101 && head_.upgrade);
  const auto elapsed = std::chrono::duration_cast<milliseconds>(Clock::now() - upstream_start_);
  head.headers.set("x-envoy-upstream-service-time",
                   toDecimal(static_cast<uint64_t>(elapsed.count())));
  head.headers.set("server", hcm_.config->server_name);
  applyResponseHeaderMutations(head.headers);
  head.close_connection = conn_.draining() || !conn_.requestComplete();
  if (head.close_connection) close_connection_ = true;
  conn_.codec().encodeHeaders(head, end_stream, down_out_);
  if (end_stream) response_complete_ = true;
}

void ActiveStream::onData(std::span<const char> data, bool end_stream) {
  if (discard_response_) return;
  response_body_bytes_ += data.size();
  conn_.codec().encodeData(data, end_stream, down_out_);
  if (end_stream) response_complete_ = true;
}

void ActiveStream::onTrailers(HeaderMap& trailers) {
  if (discard_response_) return;
  conn_.codec().encodeTrailers(trailers, down_out_);
  response_complete_ = true;
}

void ActiveStream::onMessageComplete() {
  if (!discard_response_) response_complete_ = true;
}

void ActiveStream::complete() {
  stats::Shard& shard = conn_.worker().shard();
  shard.inc(hcm_.stats.downstream_rq_completed);
  if (final_status_ != 0) {
    hcm_.stats.countResponse(shard, final_status_);
    hcm_.listener_http_stats.countResponse(shard, final_status_);
  }
  shard.record(hcm_.stats.downstream_rq_time,
               static_cast<uint64_t>(
                   std::chrono::duration_cast<milliseconds>(Clock::now() - start_).count()));
  if (!conn_.requestComplete()) close_connection_ = true;
  TURNOUT_CONN_LOG(debug, "router", conn_.id(), "{} {} -> {} {} flags={} upstream={}",
                   head_.method, head_.path, final_status_,
                   cluster_runtime_ ? cluster_runtime_->config->name : std::string("-"),
                   flags_.toShortString(), upstream_host_);
  if (hcm_.access_logs.empty()) return;
  access_log::StreamInfo info;
  info.start_time = start_wall_;
  info.duration = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start_);
  info.method = head_.method;
  info.path = original_path_.empty() ? head_.path : original_path_;
  info.original_path = original_path_;
  info.authority = head_.authority;
  info.scheme = head_.scheme;
  info.protocol = head_.version_minor == 0 ? "HTTP/1.0" : "HTTP/1.1";
  if (final_status_ != 0) info.response_code = final_status_;
  info.response_flags = flags_;
  info.response_code_details = details_;
  info.bytes_received = request_body_bytes_;
  info.bytes_sent = response_body_bytes_;
  info.request_headers = &head_.headers;
  info.response_headers = response_headers_;
  info.upstream_host = upstream_host_;
  if (cluster_runtime_ != nullptr) info.upstream_cluster = cluster_runtime_->config->name;
  info.downstream_remote_address =
      conn_.remote().address().to_string() + ":" + std::to_string(conn_.remote().port());
  info.downstream_local_address =
      conn_.local().address().to_string() + ":" + std::to_string(conn_.local().port());
  info.connection_id = conn_.id();
  info.routing_key = key_;
  for (const auto& log : hcm_.access_logs) log->log(info, conn_.worker().index());
}

}  // namespace turnout::proxy
