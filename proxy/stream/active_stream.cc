#include "proxy/stream/active_stream.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "proxy/codec/http1_server_codec.h"
#include "proxy/common/log.h"
#include "proxy/common/spawn.h"
#include "proxy/common/xx_hash.h"
#include "proxy/connection/downstream_stream.h"
#include "proxy/router/router_filter.h"
#include "proxy/server/worker.h"
#include "proxy/stream/local_reply.h"
#include "routing/cors.h"
#include "routing/path_normalizer.h"

namespace turnout::proxy {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

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

std::string toDecimal(uint64_t v) {
  char buf[24];
  int n = std::snprintf(buf, sizeof(buf), "%llu", static_cast<unsigned long long>(v));
  return std::string(buf, static_cast<size_t>(n));
}

}  // namespace

ActiveStream::ActiveStream(DownstreamStream& conn, RequestHead& head)
    : conn_(conn),
      config_(conn.streamConfig()),
      hcm_(*conn.filterChain(*config_).hcm),
      head_(head),
      start_(Clock::now()),
      start_wall_(std::chrono::system_clock::now()),
      entries_(conn.entriesBuffer()) {
  stats::Shard& shard = conn_.worker().shard();
  shard.inc(hcm_.stats.downstream_rq_total);
  shard.add(hcm_.stats.downstream_rq_active, 1);
}

ActiveStream::~ActiveStream() {
  conn_.worker().shard().sub(hcm_.stats.downstream_rq_active, 1);
}

Awaitable<void> ActiveStream::sendLocalReply(uint16_t status, std::string_view body,
                                             std::string_view location,
                                             std::string_view content_type,
                                             std::string_view details, int grpc_status) {
  LocalReply reply;
  // A gRPC request gets its reply as a gRPC status (Envoy: is_grpc local replies).
  reply.grpc = isGrpcContentType(head_.headers.get("content-type"));
  if (grpc_web_) {
    reply.grpc_content_type = grpc_web_->contentType();
    reply.grpc_keep_status = grpc_web_rejected_;
  }
  final_status_ = reply.grpc && !reply.grpc_keep_status ? 200 : status;
  details_ = details;
  response_body_bytes_ = reply.grpc ? 0 : body.size();
  reply.status = status;
  reply.grpc_status = grpc_status;
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
  conn_.discardUnflushed();
  ResponseHead& head = localHead();
  encodeLocalReply(conn_, reply, conn_.worker().httpDate(), hcm_.config->server_name, head);
  response_headers_ = &head.headers;
  if (grpc_stats_) grpc_stats_->onResponseHeaders(head.status, head.headers, true);
  if (grpc_web_ && grpc_web_->stats) {
    grpc_web_->stats->onResponseHeaders(head.status, head.headers, true);
  }
  const bool flushed = co_await conn_.flush(hcm_.config->stream_idle_timeout);
  if (!flushed) close_connection_ = true;
}

stats::Shard& ActiveStream::shard() { return conn_.worker().shard(); }

bool ActiveStream::healthCheckFailed() { return conn_.worker().healthCheckFailed(); }

void ActiveStream::localReply(uint16_t status, std::string_view body, std::string_view details) {
  Rare& r = rare();
  r.filter_reply_status = status;
  r.filter_reply_body = body;
  r.filter_reply_details = details;
}

ResponseHead& ActiveStream::localHead() {
  if (!local_head_) local_head_ = std::make_unique<ResponseHead>();
  return *local_head_;
}

ActiveStream::Rare& ActiveStream::rare() {
  if (!rare_) rare_ = std::make_unique<Rare>();
  return *rare_;
}

Awaitable<void> ActiveStream::run() {
  // Envoy answers Expect: 100-continue itself and does not forward it.
  if (head_.expect_continue) {
    head_.headers.remove("expect");
    conn_.encode100Continue();
    const bool flushed = co_await conn_.flush(hcm_.config->stream_idle_timeout);
    if (!flushed) {
      close_connection_ = true;
      co_return;
    }
  }
  // One co_await of each kind: GCC gives every co_await's temporaries and
  // every local their own slot in the coroutine's frame, and this frame is
  // allocated per request (the local replies' arguments, one set per
  // answer, made it 1.7 KB).
  Answer answer;
  // Built in the frame by the route table (no copy).
  const routing::RouteDecision d = matchRoute(answer);
  if (!answer.answered && admit(d, answer)) {
    // The router's attempts (router_filter.h), awaited here: the request's
    // one coroutine frame. Each awaited value is assigned to a local
    // before it is used (GCC 12: upstream_request.cc).
    using Result = RouterFilter::AttemptResult;
    RouterFilter router(*this, d);
    RouterFilter::Outcome o = router.begin();
    for (uint32_t attempt = 0; o.result == Result::Send || o.result == Result::Retry; ++attempt) {
      if (o.result == Result::Retry) co_await router.backOff();
      o = router.startAttempt(attempt);
      if (o.result == Result::Wait) {
        co_await router.waitForStream(o);
      } else if (o.result == Result::Tcp) {
        co_await router.attemptTcp(o);
      }
      if (o.result != Result::Exchange) continue;
      // UpstreamRequest::run()'s steps.
      UpstreamRequest& upstream = router.upstream();
      std::optional<bool> sent = upstream.sendStart();
      if (!sent) sent = co_await upstream.stream().send();
      upstream.onStartSent(*sent);
      while (upstream.receiving()) {
        UpstreamStream& s = upstream.stream();
        std::optional<UpstreamStream::ReceiveResult> got = s.tryReceive();
        if (!got && s.waitsInPlace()) {
          while (!got) {
            co_await s.receiveWait();
            got = s.tryReceive();
          }
        }
        if (!got) got = co_await s.receive();
        if (upstream.onReceived(*got)) {
          const bool flushed = co_await router.flushResponse();
          upstream.onFlushed(flushed);
        }
      }
      if (upstream.pumpRunning()) co_await upstream.stopPump();
      o = router.endAttempt();
      if (o.result == Result::Tunnel || o.result == Result::TunnelInStream) {
        co_await router.tunnel(o);
      }
    }
    if (o.result == Result::Reply) {
      answer.answered = true;
      answer.status = o.status;
      answer.body = o.body;
      answer.details = o.details;
      answer.grpc_status = o.grpc_status;
    }
  }
  if (answer.answered) {
    co_await sendAnswer(answer);
  }
  complete();
}

Awaitable<void> ActiveStream::sendAnswer(const Answer& answer) {
  return sendLocalReply(answer.status, answer.body, answer.location, {}, answer.details,
                        answer.grpc_status);
}

routing::RouteDecision ActiveStream::matchRoute(Answer& answer) {
  Worker& worker = conn_.worker();
  stats::Shard& shard = worker.shard();
  auto reply = [&answer](uint16_t status, std::string_view details) {
    answer.answered = true;
    answer.status = status;
    answer.details = details;
    return routing::RouteDecision();
  };

  // The connection manager's path and host normalisation, before any filter.
  const auto& hc = *hcm_.config;
  if (hc.normalize_path || hc.merge_slashes) {
    auto normalized = routing::normalizePath(head_.path, hc.normalize_path, hc.merge_slashes);
    if (!normalized) {
      close_connection_ = true;
      return reply(400, "path_normalization_failed");
    }
    head_.path = *std::move(normalized);
  }
  // Envoy's stripPortFromHost leaves a CONNECT's target alone: its port is
  // part of it (RFC 9110 §9.3.6).
  if (hc.strip_port_mode != config::HttpConnectionManagerConfig::StripPortMode::None &&
      head_.method != "CONNECT") {
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
      const Rare& r = rare();
      answer.body = r.filter_reply_body;
      return reply(r.filter_reply_status, r.filter_reply_details);
    }
  }

  if (!hcm_.route_table) {
    flags_.set(access_log::ResponseFlag::NoRouteFound);
    shard.inc(hcm_.stats.no_route);
    return reply(404, "route_not_found");
  }
  return hcm_.route_table->match(head_.view(entries_), worker.random());
}

bool ActiveStream::admit(const routing::RouteDecision& d, Answer& answer) {
  stats::Shard& shard = conn_.worker().shard();
  auto reply = [&answer](uint16_t status, std::string_view details) {
    answer.answered = true;
    answer.status = status;
    answer.details = details;
    return false;
  };
  decision_ = &d;
  using Kind = routing::RouteDecision::Kind;
  // Envoy (FilterManager::createFilterChain): an upgrade or a CONNECT that
  // neither the matched route nor the connection manager enables is
  // answered 403 before anything else, whether a route matched or not; so
  // is one this connection cannot tunnel.
  if (tunnelRequested() && (!upgradeAllowed(d) || !conn_.canTunnel())) {
    close_connection_ = true;
    return reply(403, "upgrade_failed");
  }
  // On HTTP/1.1 the bytes after a CONNECT are the tunnel's: unless one
  // opens, whatever answers it (a local reply, a direct response, the
  // upstream's refusal), the connection cannot go on.
  if (head_.method == "CONNECT" && conn_.http1() != nullptr) close_connection_ = true;
  switch (d.kind) {
    case Kind::NoRoute:
      flags_.set(access_log::ResponseFlag::NoRouteFound);
      shard.inc(hcm_.stats.no_route);
      return reply(404, "route_not_found");
    case Kind::DirectResponse:
      shard.inc(hcm_.stats.rq_direct_response);
      answer.location = routing::redirectLocation(head_.view(entries_), d);
      // Into the route table, which config_ keeps for the whole stream.
      answer.body = d.body;
      return reply(static_cast<uint16_t>(d.status), "direct_response");
    case Kind::Redirect:
      shard.inc(hcm_.stats.rq_redirect);
      answer.location = routing::redirectLocation(head_.view(entries_), d);
      return reply(static_cast<uint16_t>(d.status), "redirect");
    case Kind::ClusterHeaderMissing:
      flags_.set(access_log::ResponseFlag::NoClusterFound);
      shard.inc(hcm_.stats.no_cluster);
      return reply(static_cast<uint16_t>(d.cluster_not_found_status), "cluster_not_found");
    case Kind::Route:
      // Envoy's CORS filter acts on a route entry only (not a redirect or
      // a direct response): a preflight is answered here.
      if (hcm_.cors.has_value() && applyCors(d)) return reply(200, "cors_response");
      return true;
  }
  return reply(404, "route_not_found");
}

bool ActiveStream::upgradeAllowed(const routing::RouteDecision& d) const {
  // Envoy treats a CONNECT as an upgrade of type "CONNECT".
  std::string type(head_.method == "CONNECT" ? std::string_view("connect")
                                             : head_.upgradeProtocol());
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

std::chrono::milliseconds ActiveStream::streamIdle() const {
  // A route's idle_timeout replaces the HCM's stream_idle_timeout; 0 disables.
  const milliseconds t = decision_ != nullptr && decision_->idle_timeout
                             ? *decision_->idle_timeout
                             : hcm_.config->stream_idle_timeout;
  return t.count() > 0 ? t : kForever;
}

void ActiveStream::formatHeaderCommand(std::string_view cmd, std::string& out) const {
  if (cmd == "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT") {
    out += conn_.remote().address().to_string();
  } else if (cmd == "PROTOCOL") {
    out += conn_.protocol();
  } else if (cmd == "ROUTING_KEY") {
    out += key_;
  } else if (cmd == "UPSTREAM_REMOTE_ADDRESS") {
    out += upstream_host_;
  } else if (cmd == "RESPONSE_CODE" && final_status_ != 0) {
    out += toDecimal(final_status_);
  }
}

void ActiveStream::applyHeaderMutations(const routing::HeaderMutationLevels& levels,
                                        HeaderMap& headers) {
  if (levels.empty()) return;
  HeaderMapTarget target(headers);
  routing::applyHeaderMutations(
      levels, target,
      [this](std::string_view cmd, std::string& out) { formatHeaderCommand(cmd, out); });
}

void ActiveStream::applyResponseHeaderMutations(HeaderMap& headers) {
  if (decision_ == nullptr || !hcm_.route_table ||
      decision_->kind == routing::RouteDecision::Kind::NoRoute) {
    return;
  }
  applyHeaderMutations(hcm_.route_table->responseHeaderMutations(*decision_), headers);
  // The CORS filter's response headers (a preflight's, or a simple
  // request's access-control-allow-origin and company): set, as Envoy's
  // encodeHeaders does, on upstream responses and local replies alike.
  if (rare_) {
    for (const auto& [name, value] : rare_->cors_headers) headers.set(name, value);
  }
}

bool ActiveStream::applyCors(const routing::RouteDecision& d) {
  // Most specific first: the route's policy, then the virtual host's.
  std::array<const routing::CompiledCorsPolicy*, 2> policies{};
  size_t n = 0;
  if (d.route_cors != nullptr) policies[n++] = d.route_cors;
  if (d.vhost_cors != nullptr) policies[n++] = d.vhost_cors;
  if (n == 0) return false;
  routing::CorsResult r = routing::evaluateCors(std::span(policies.data(), n), head_.view(entries_),
                                                conn_.worker().random());
  if (r.origin != routing::CorsResult::Origin::None) {
    conn_.worker().shard().inc(r.origin == routing::CorsResult::Origin::Valid
                                   ? hcm_.cors->origin_valid
                                   : hcm_.cors->origin_invalid);
  }
  if (!r.headers.empty() || rare_) rare().cors_headers = std::move(r.headers);
  return r.preflight;
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
  TURNOUT_CONN_LOG(debug, "router", conn_.connectionId(), "{} {} -> {} {} flags={} upstream={}",
                   head_.method, head_.path, final_status_,
                   cluster_runtime_ ? cluster_runtime_->config->name : std::string("-"),
                   flags_.toShortString(), upstream_host_);
  if (hcm_.access_logs.empty()) return;
  access_log::StreamInfo info;
  info.start_time = start_wall_;
  info.duration = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start_);
  info.method = head_.method;
  const std::string_view original_path = rare_ ? rare_->original_path : std::string_view();
  info.path = original_path.empty() ? std::string_view(head_.path) : original_path;
  info.original_path = original_path;
  info.authority = head_.authority;
  info.scheme = head_.scheme;
  info.protocol = conn_.protocol();
  if (final_status_ != 0) info.response_code = final_status_;
  info.response_flags = flags_;
  info.response_code_details = details_;
  info.bytes_received = request_body_bytes_;
  info.bytes_sent = response_body_bytes_;
  info.request_headers = &head_.headers;
  info.response_headers = response_headers_;
  info.upstream_host = upstream_host_;
  if (cluster_runtime_ != nullptr) info.upstream_cluster = cluster_runtime_->config->name;
  // Envoy's Address::asString(): an IPv6 address in brackets.
  auto addressString = [](const asio::ip::tcp::endpoint& e) {
    return e.address().is_v6()
               ? absl::StrCat("[", e.address().to_string(), "]:", e.port())
               : absl::StrCat(e.address().to_string(), ":", e.port());
  };
  info.downstream_remote_address = addressString(conn_.remote());
  info.downstream_local_address = addressString(conn_.local());
  info.connection_id = conn_.connectionId();
  info.routing_key = key_;
  for (const auto& log : hcm_.access_logs) log->log(info, conn_.worker().index());
}

}  // namespace turnout::proxy
