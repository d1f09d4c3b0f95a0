#include "proxy/upstream/health_checker.h"

#include <algorithm>
#include <chrono>
#include <exception>
#include <optional>
#include <utility>
#include <vector>

#include "proxy/common/log.h"

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
// Owned by State (stable address); touched only on the main thread.
struct HostSession {
  HostSession(asio::any_io_executor ex, const ClusterRuntime& c, size_t index)
      : cluster(&c), host_index(index), timer(std::move(ex)) {}

  const ClusterRuntime* cluster;
  size_t host_index;
  const config::HealthCheckConfig* check = nullptr;
  std::optional<asio::ip::tcp::endpoint> endpoint;  // nullopt: unparsable ip, always fails
  std::string request;
  HostHealthState health;
  asio::steady_timer timer;                  // waits out the interval
  std::optional<beast::tcp_stream> stream;   // engaged while a check is in flight
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
  std::vector<std::unique_ptr<HostSession>> sessions;
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

// One check against one host. Every await is bounded by the stream's expiry.
// Caller guarantees `s` lives as long as `state` (State owns the sessions).
asio::awaitable<HealthCheckResult> probe(std::shared_ptr<State> state, HostSession* s) {
  if (!s->endpoint) co_return HealthCheckResult::NetworkFailure;
  boost::system::error_code ec;
  s->stream.emplace(state->io.get_executor());
  beast::tcp_stream& stream = *s->stream;
  // One deadline for the whole exchange, like Envoy's timeout timer: once it
  // fires, the pending operation and every later one fail with timeout.
  stream.expires_after(s->check->timeout);

  co_await stream.async_connect(*s->endpoint, asio::redirect_error(asio::use_awaitable, ec));
  if (ec || state->stopped) co_return HealthCheckResult::NetworkFailure;

  co_await asio::async_write(stream, asio::buffer(s->request),
                             asio::redirect_error(asio::use_awaitable, ec));
  if (ec || state->stopped) co_return HealthCheckResult::NetworkFailure;

  beast::flat_buffer buffer(kMaxResponseHeaderBytes);
  beast::http::response_parser<beast::http::empty_body> parser;
  parser.header_limit(static_cast<std::uint32_t>(kMaxResponseHeaderBytes));
  co_await beast::http::async_read_header(stream, buffer, parser,
                                          asio::redirect_error(asio::use_awaitable, ec));
  if (ec || state->stopped) co_return HealthCheckResult::NetworkFailure;

  const unsigned status = parser.get().result_int();
  co_return status == 200 ? HealthCheckResult::Success : HealthCheckResult::ActiveFailure;
}

asio::awaitable<void> runSession(std::shared_ptr<State> state, HostSession* s) {
  const std::string& cluster_name = s->cluster->config->name;
  const auto& host = s->cluster->hosts[s->host_index];
  while (!state->stopped) {
    state->main_shard.inc(s->cluster->stats.health_check_attempt);
    const HealthCheckResult result = co_await probe(state, s);
    if (s->stream) {
      boost::system::error_code ignored;
      s->stream->socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
      s->stream->close();
      s->stream.reset();
    }
    if (state->stopped) co_return;

    if (result == HealthCheckResult::Success) {
      state->main_shard.inc(s->cluster->stats.health_check_success);
    } else {
      state->main_shard.inc(s->cluster->stats.health_check_failure);
    }
    const bool changed =
        s->health.onResult(result, s->check->healthy_threshold, s->check->unhealthy_threshold);
    if (changed) {
      if (s->health.healthy) {
        TURNOUT_LOG(info, kLogComponent, "health check: cluster {} host {} is now healthy",
                    cluster_name, host.address);
      } else {
        TURNOUT_LOG(warn, kLogComponent, "health check: cluster {} host {} is now unhealthy ({})",
                    cluster_name, host.address,
                    result == HealthCheckResult::ActiveFailure ? "unexpected status"
                                                               : "network failure");
      }
      if (state->on_change) state->on_change(cluster_name, s->host_index, s->health.healthy);
      if (state->stopped) co_return;  // the callback may stop the checker
    }

    boost::system::error_code ec;
    s->timer.expires_after(s->check->interval);
    co_await s->timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

}  // namespace

std::unique_ptr<HealthChecker> HealthChecker::create(asio::io_context& main,
                                                     const DataPlaneConfigConstSharedPtr& config,
                                                     stats::Shard& main_shard,
                                                     Callback on_change) {
  auto state = std::make_shared<State>(main, config, main_shard, std::move(on_change));
  if (config) {
    for (const ClusterRuntime& cluster : config->clusters) {
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
      const std::string request = buildRequest(*http, cluster.config->name);
      for (size_t i = 0; i < cluster.hosts.size(); ++i) {
        auto session = std::make_unique<HostSession>(main.get_executor(), cluster, i);
        session->check = http;
        session->request = request;
        boost::system::error_code ec;
        const auto address = asio::ip::make_address(cluster.hosts[i].ip, ec);
        if (ec) {
          TURNOUT_LOG(warn, kLogComponent,
                      "health check: cluster {} host {} has no usable IP address; it will "
                      "stay unhealthy",
                      cluster.config->name, cluster.hosts[i].address);
        } else {
          session->endpoint.emplace(address, cluster.hosts[i].port);
        }
        state->sessions.push_back(std::move(session));
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
  for (auto& session : state_->sessions) {
    asio::co_spawn(state_->io, runSession(state_, session.get()), [](std::exception_ptr e) {
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        TURNOUT_LOG(err, kLogComponent, "health check session failed: {}", ex.what());
      } catch (...) {
        TURNOUT_LOG(err, kLogComponent, "health check session failed: unknown exception");
      }
    });
  }
}

void HealthChecker::stop() {
  if (state_->stopped) return;
  state_->stopped = true;
  for (auto& session : state_->sessions) {
    session->timer.cancel();
    if (session->stream) {
      // Closing cancels the pending operation; the session's coroutine owns
      // the stream and resets it when it resumes.
      session->stream->close();
    }
  }
}

bool HealthChecker::isHealthy(const std::string& cluster, size_t host_index) const {
  for (const auto& session : state_->sessions) {
    if (session->host_index == host_index && session->cluster->config->name == cluster) {
      return session->health.healthy;
    }
  }
  return false;
}

size_t HealthChecker::checkedHostCount() const { return state_->sessions.size(); }

}  // namespace turnout::proxy
