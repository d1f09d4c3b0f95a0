#include "proxy/upstream/health_checker.h"

#include <algorithm>
#include <chrono>
#include <exception>
#include <optional>
#include <utility>
#include <vector>

#include "proxy/common/log.h"
#include "proxy/common/spawn.h"
#include "proxy/upstream/upstream_tls.h"

namespace turnout::proxy {

bool HostHealthState::onResult(HealthCheckResult result, uint32_t healthy_threshold,
                               uint32_t unhealthy_threshold) {
  healthy_threshold = std::max<uint32_t>(healthy_threshold, 1);
  unhealthy_threshold = std::max<uint32_t>(unhealthy_threshold, 1);
  bool changed = false;
  if (result == HealthCheckResult::Success) {
    num_unhealthy = 0;
    // Envoy: the first result ever marks the host healthy on one success,
    // "to make startup faster".
    if (!healthy && (first_check || ++num_healthy >= healthy_threshold)) {
      healthy = true;
      num_healthy = 0;
      changed = true;
    }
  } else {
    num_healthy = 0;
    // Envoy: a non-expected status fails the host at once; only network
    // failures count towards unhealthy_threshold.
    if (healthy && (result == HealthCheckResult::ActiveFailure ||
                    ++num_unhealthy >= unhealthy_threshold)) {
      healthy = false;
      num_unhealthy = 0;
      changed = true;
    }
  }
  first_check = false;
  return changed;
}

namespace {

constexpr const char* kLogComponent = "upstream";
constexpr size_t kMaxResponseHeaderBytes = 16 * 1024;

// One health-checked host: its fixed inputs and its mutable session state.
// Shared by State and its check coroutine; touched only on the main thread.
struct HostSession {
  HostSession(Executor ex, const ClusterRuntime& c) : cluster(&c), timer(std::move(ex)) {}

  const ClusterRuntime* cluster;
  const config::HealthCheckConfig* check = nullptr;
  HostDescription host;  // its shared state is where flips are written
  std::optional<asio::ip::tcp::endpoint> endpoint;  // nullopt: unparsable ip, always fails
  std::string request;
  HostHealthState health;
  SteadyTimer timer;                         // waits out the interval
  std::optional<TcpStream> stream;           // engaged while a check is in flight
  bool removed = false;                      // the host left the cluster
};
using HostSessionPtr = std::shared_ptr<HostSession>;

// A health-checked cluster: its check and the request every check sends.
struct CheckedCluster {
  const ClusterRuntime* cluster;
  const config::HealthCheckConfig* check;
  std::string request;
};

}  // namespace

struct HealthChecker::State {
  State(asio::io_context& io_context, DataPlaneConfigConstSharedPtr cfg, stats::Shard& shard,
        Callback callback)
      : io(io_context), config(std::move(cfg)), main_shard(shard), on_change(std::move(callback)) {}

  asio::io_context& io;
  DataPlaneConfigConstSharedPtr config;
  stats::Shard& main_shard;
  Callback on_change;
  bool started = false;
  bool stopped = false;
  std::vector<CheckedCluster> clusters;
  std::vector<HostSessionPtr> sessions;
};

namespace {

using State = HealthChecker::State;

std::string buildRequest(const config::HealthCheckConfig& hc, const std::string& cluster_name) {
  const std::string& path = hc.http_path.empty() ? std::string("/") : hc.http_path;
  const std::string& host = hc.http_host.empty() ? cluster_name : hc.http_host;
  std::string req;
  req.reserve(path.size() + host.size() + 96);
  req.append("GET ").append(path).append(" HTTP/1.1\r\nHost: ").append(host);
  req.append("\r\nUser-Agent: Envoy/HC\r\nConnection: close\r\n\r\n");
  return req;
}

// Points `s` at `host` (its address may be new).
void setHost(HostSession& s, const HostDescription& host) {
  s.host = host;
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(host.ip, ec);
  if (ec) {
    s.endpoint.reset();
    TURNOUT_LOG(warn, kLogComponent,
                "health check: cluster {} host {} has no usable IP address; it will stay "
                "unhealthy",
                s.cluster->config->name, host.address);
  } else {
    s.endpoint.emplace(address, host.port);
  }
}

// One check against one host. Every await is bounded by the stream's expiry.
Awaitable<HealthCheckResult> probe(std::shared_ptr<State> state, HostSessionPtr s) {
  if (!s->endpoint) co_return HealthCheckResult::NetworkFailure;
  boost::system::error_code ec;
  s->stream.emplace(state->io.get_executor());
  TcpStream& stream = *s->stream;
  // One deadline for the whole exchange, like Envoy's timeout timer: once it
  // fires, the pending operation and every later one fail with timeout.
  stream.expires_after(s->check->timeout);

  co_await stream.async_connect(*s->endpoint, asio::redirect_error(use_awaitable, ec));
  if (ec || state->stopped || s->removed) co_return HealthCheckResult::NetworkFailure;

  beast::http::response_parser<beast::http::empty_body> parser;
  parser.header_limit(static_cast<std::uint32_t>(kMaxResponseHeaderBytes));
  if (s->cluster->tls) {
    // A TLS cluster is checked over TLS, as Envoy's health checkers use the
    // cluster's transport socket; the handshake counts in its ssl.* stats.
    // No session cache: checks are rare and each has its own deadline.
    std::unique_ptr<tls::TlsTransport> t =
        makeUpstreamTransport(*s->cluster, *s->endpoint, {}, nullptr);
    if (!t) co_return HealthCheckResult::NetworkFailure;
    ec =
        co_await runTlsHandshake(stream, *t, s->cluster->ssl_stats.toOptional(), state->main_shard);
    if (ec || state->stopped || s->removed) co_return HealthCheckResult::NetworkFailure;
    ec = co_await writeTls(stream, *t, s->request);
    if (ec || state->stopped || s->removed) co_return HealthCheckResult::NetworkFailure;
    std::string plain;
    size_t parsed = 0;
    while (!parser.is_header_done()) {
      // What was decrypted is parsed before a read error is looked at: a
      // server may answer and close (close_notify) in one flight.
      const boost::system::error_code read_error = co_await readTls(stream, *t, plain);
      if (state->stopped || s->removed || plain.size() > kMaxResponseHeaderBytes) {
        co_return HealthCheckResult::NetworkFailure;
      }
      while (parsed < plain.size() && !parser.is_header_done()) {
        const size_t n = parser.put(asio::buffer(plain.data() + parsed, plain.size() - parsed), ec);
        parsed += n;
        if (ec == beast::http::error::need_more) break;
        if (ec) co_return HealthCheckResult::NetworkFailure;
        if (n == 0) break;
      }
      if (read_error && !parser.is_header_done()) co_return HealthCheckResult::NetworkFailure;
    }
  } else {
    co_await asio::async_write(stream, asio::buffer(s->request),
                               asio::redirect_error(use_awaitable, ec));
    if (ec || state->stopped || s->removed) co_return HealthCheckResult::NetworkFailure;

    beast::flat_buffer buffer(kMaxResponseHeaderBytes);
    co_await beast::http::async_read_header(stream, buffer, parser,
                                            asio::redirect_error(use_awaitable, ec));
    if (ec || state->stopped || s->removed) co_return HealthCheckResult::NetworkFailure;
  }

  const unsigned status = parser.get().result_int();
  co_return status == 200 ? HealthCheckResult::Success : HealthCheckResult::ActiveFailure;
}

Awaitable<void> runSession(std::shared_ptr<State> state, HostSessionPtr s) {
  const std::string& cluster_name = s->cluster->config->name;
  while (!state->stopped && !s->removed) {
    state->main_shard.inc(s->cluster->stats.health_check_attempt());
    const HealthCheckResult result = co_await probe(state, s);
    if (s->stream) {
      boost::system::error_code ignored;
      s->stream->socket().shutdown(TcpSocket::shutdown_both, ignored);
      s->stream->close();
      s->stream.reset();
    }
    if (state->stopped || s->removed) co_return;

    if (result == HealthCheckResult::Success) {
      state->main_shard.inc(s->cluster->stats.health_check_success());
    } else {
      state->main_shard.inc(s->cluster->stats.health_check_failure());
    }
    const bool changed =
        s->health.onResult(result, s->check->healthy_threshold, s->check->unhealthy_threshold);
    if (changed) {
      s->host.state->failed_active_hc.store(!s->health.healthy, std::memory_order_relaxed);
      if (s->health.healthy) {
        TURNOUT_LOG(info, kLogComponent, "health check: cluster {} host {} is now healthy",
                    cluster_name, s->host.address);
      } else {
        TURNOUT_LOG(warn, kLogComponent, "health check: cluster {} host {} is now unhealthy ({})",
                    cluster_name, s->host.address,
                    result == HealthCheckResult::ActiveFailure ? "unexpected status"
                                                               : "network failure");
      }
      if (state->on_change) state->on_change(cluster_name, s->host, s->health.healthy);
      if (state->stopped || s->removed) co_return;  // the callback may stop the checker
    }

    boost::system::error_code ec;
    s->timer.expires_after(s->check->interval);
    co_await s->timer.async_wait(asio::redirect_error(use_awaitable, ec));
  }
}

void spawn(const std::shared_ptr<State>& state, const HostSessionPtr& session) {
  asio::co_spawn(state->io, runSession(state, session),
                 LogEscapedException{kLogComponent, "health check session"});
}

HostSessionPtr makeSession(State& state, const CheckedCluster& c, const HostDescription& host) {
  auto s = std::make_shared<HostSession>(state.io.get_executor(), *c.cluster);
  s->check = c.check;
  s->request = c.request;
  setHost(*s, host);
  return s;
}

// Ends `s`'s loop: its coroutine sees `removed` when it resumes.
void retire(HostSession& s) {
  s.removed = true;
  s.timer.cancel();
  if (s.stream) s.stream->close();
}

}  // namespace

std::unique_ptr<HealthChecker> HealthChecker::create(asio::io_context& main,
                                                     const DataPlaneConfigConstSharedPtr& config,
                                                     stats::Shard& main_shard,
                                                     Callback on_change) {
  auto state = std::make_shared<State>(main, config, main_shard, std::move(on_change));
  if (config) {
    for (const auto& [cluster_name, cluster_ptr] : config->clusters) {
      const ClusterRuntime& cluster = *cluster_ptr;
      if (cluster.config == nullptr) continue;
      const config::HealthCheckConfig* http = nullptr;
      for (const auto& hc : cluster.config->health_checks) {
        if (hc.kind != config::HealthCheckConfig::Kind::Http) continue;
        if (http == nullptr) {
          http = &hc;
        } else {
          TURNOUT_LOG(warn, kLogComponent,
                      "health check: cluster {} has several HTTP health checks; only the first "
                      "one runs",
                      cluster.config->name);
          break;
        }
      }
      if (http == nullptr) continue;
      state->clusters.push_back(
          CheckedCluster{&cluster, http, buildRequest(*http, cluster.config->name)});
      if (!cluster.hosts) continue;
      for (const HostDescription& host : cluster.hosts->hosts) {
        state->sessions.push_back(makeSession(*state, state->clusters.back(), host));
      }
    }
  }
  return std::unique_ptr<HealthChecker>(new HealthChecker(std::move(state)));
}

HealthChecker::HealthChecker(std::shared_ptr<State> state) : state_(std::move(state)) {}

HealthChecker::~HealthChecker() { stop(); }

void HealthChecker::start() {
  if (state_->started || state_->stopped) return;
  state_->started = true;
  for (auto& session : state_->sessions) spawn(state_, session);
}

void HealthChecker::stop() {
  if (state_->stopped) return;
  state_->stopped = true;
  // Closing cancels the pending operation; each session's coroutine owns
  // its stream and resets it when it resumes.
  for (auto& session : state_->sessions) retire(*session);
}

void HealthChecker::updateHosts(const ClusterRuntime& cluster, const HostSet& hosts) {
  if (state_->stopped) return;
  auto c = std::find_if(state_->clusters.begin(), state_->clusters.end(),
                        [&](const CheckedCluster& cc) { return cc.cluster == &cluster; });
  if (c == state_->clusters.end()) return;
  auto& sessions = state_->sessions;
  auto sameHost = [](const HostDescription& a, const HostDescription& b) {
    return a.state == b.state;
  };
  std::erase_if(sessions, [&](const HostSessionPtr& s) {
    if (s->cluster != &cluster) return false;
    const bool kept = std::any_of(hosts.hosts.begin(), hosts.hosts.end(),
                                  [&](const HostDescription& h) { return sameHost(h, s->host); });
    if (!kept) retire(*s);
    return !kept;
  });
  for (const HostDescription& h : hosts.hosts) {
    auto s = std::find_if(sessions.begin(), sessions.end(), [&](const HostSessionPtr& x) {
      return x->cluster == &cluster && sameHost(x->host, h);
    });
    if (s != sessions.end()) {
      if ((*s)->host.address != h.address) setHost(**s, h);
      continue;
    }
    sessions.push_back(makeSession(*state_, *c, h));
    if (state_->started) spawn(state_, sessions.back());
  }
}

bool HealthChecker::isHealthy(const std::string& cluster, const std::string& address) const {
  for (const auto& session : state_->sessions) {
    if (session->host.address == address && session->cluster->config->name == cluster) {
      return session->health.healthy;
    }
  }
  return false;
}

size_t HealthChecker::checkedHostCount() const { return state_->sessions.size(); }

}  // namespace turnout::proxy
