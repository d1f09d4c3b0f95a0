#include "proxy/connection/tcp_proxy_connection.h"

#include <sys/socket.h>

#include <algorithm>
#include <exception>
#include <functional>

#include "proxy/common/log.h"
#include "proxy/common/spawn.h"
#include "proxy/server/worker.h"

namespace turnout::proxy {
namespace {

// The most one pump reads at once (its buffer), below the listener's
// per_connection_buffer_limit_bytes when that is smaller.
constexpr size_t kMaxChunk = 64 * 1024;

std::string endpointString(const asio::ip::tcp::endpoint& e) {
  return hostPort(e.address().to_string(), e.port());
}

}  // namespace

TcpProxyConnection::TcpProxyConnection(Worker& worker, DataPlaneConfigConstSharedPtr config,
                                       size_t listener_index, size_t chain_index, TcpSocket socket,
                                       asio::ip::tcp::endpoint remote,
                                       asio::ip::tcp::endpoint local, std::string initial,
                                       std::unique_ptr<tls::TlsTransport> tls)
    : worker_(worker),
      config_(std::move(config)),
      listener_index_(listener_index),
      chain_index_(chain_index),
      socket_(std::move(socket)),
      remote_(remote),
      local_(local),
      initial_(std::move(initial)),
      tls_(std::move(tls)),
      id_(Worker::next_connection_id_.fetch_add(1)),
      started_(std::chrono::steady_clock::now()),
      started_wall_(std::chrono::system_clock::now()) {
  registration_ = worker_.registerConnection(this);
}

TcpProxyConnection::~TcpProxyConnection() { worker_.unregisterConnection(registration_); }

void TcpProxyConnection::closeSockets() {
  boost::system::error_code ec;
  socket_.shutdown(TcpSocket::shutdown_both, ec);
  socket_.close(ec);
  if (upstream_) {
    upstream_->stream.socket().shutdown(TcpSocket::shutdown_both, ec);
    upstream_->stream.socket().close(ec);
  }
}

void TcpProxyConnection::close() {
  closed_ = true;
  if (relay_ != nullptr) relay_->close();
  closeSockets();
}

Awaitable<void> TcpProxyConnection::run(Worker& worker, DataPlaneConfigConstSharedPtr config,
                                        size_t listener_index, size_t chain_index, TcpSocket socket,
                                        asio::ip::tcp::endpoint remote,
                                        asio::ip::tcp::endpoint local, std::string initial,
                                        std::unique_ptr<tls::TlsTransport> tls) {
  TcpProxyConnection conn(worker, std::move(config), listener_index, chain_index,
                          std::move(socket), remote, local, std::move(initial), std::move(tls));
  const ListenerRuntime& l = conn.listener();
  const TcpProxyRuntime& tcp = conn.tcp();
  stats::Shard& shard = worker.shard();
  shard.inc(l.stats.downstream_cx_total);
  shard.add(l.stats.downstream_cx_active, 1);
  shard.inc(tcp.stats.downstream_cx_total);
  if (co_await conn.connectUpstream()) {
    co_await conn.relay();
    conn.host_->active_requests--;
    if (conn.upstream_closed_first_)
      shard.inc(conn.cluster_->runtime().stats.upstream_cx_destroy_remote());
    conn.cluster_->closeTcp(*conn.host_, std::move(conn.upstream_));
  }
  conn.closeSockets();
  conn.logAccess();
  shard.sub(l.stats.downstream_cx_active, 1);
  shard.inc(l.stats.downstream_cx_destroy);
  shard.record(l.stats.downstream_cx_length_ms,
               static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                         std::chrono::steady_clock::now() - conn.started_)
                                         .count()));
}

Awaitable<bool> TcpProxyConnection::connectUpstream() {
  using access_log::ResponseFlag;
  const TcpProxyRuntime& tcp = this->tcp();
  const config::TcpProxyConfig& cfg = *tcp.config;
  stats::Shard& shard = worker_.shard();
  // The cluster: `cluster`, or a weighted pick (Envoy's WeightedClusterUtil:
  // random % total over the cumulative weights).
  std::string_view name = cfg.cluster;
  if (!cfg.weighted_clusters.empty()) {
    uint64_t pick = cfg.total_weight > 0 ? worker_.random() % cfg.total_weight : 0;
    name = cfg.weighted_clusters.back().name;
    for (const auto& w : cfg.weighted_clusters) {
      if (pick < w.weight) {
        name = w.name;
        break;
      }
      pick -= w.weight;
    }
  }
  upstream_cluster_ = std::string(name);
  cluster_ = worker_.clusters().get(name);
  if (!cluster_) {
    shard.inc(tcp.stats.downstream_cx_no_route);
    flags_.set(ResponseFlag::NoRouteFound);
    TURNOUT_CONN_LOG(debug, "conn", id_, "tcp proxy: no cluster '{}'", name);
    co_return false;
  }
  const auto& cstats = cluster_->runtime().stats;
  std::optional<asio::ip::tcp::endpoint> listener_address;
  if (cluster_->config().type == config::ClusterConfig::Type::OriginalDst) {
    listener_address = worker_.boundAddress(listener().config->name);
  }
  for (uint32_t attempt = 0; attempt < cfg.max_connect_attempts; ++attempt) {
    if (closed_) co_return false;
    LoadBalancerContext lb;
    lb.random = worker_.random();
    lb.avoid = host_;  // another host for a new attempt, when there is one
    lb.downstream_local = &local_;
    if (listener_address) lb.listener_address = &*listener_address;
    HostState* host = cluster_->chooseHost(lb);
    if (host == nullptr) {
      shard.inc(cstats.upstream_cx_none_healthy());
      flags_.set(ResponseFlag::NoHealthyUpstream);
      co_return false;
    }
    host_ = host;
    WorkerCluster::TcpConnectResult r =
        co_await cluster_->connectTcp(worker_.io().get_executor(), host);
    using Status = WorkerCluster::TcpConnectResult::Status;
    if (r.status == Status::Overflow) {
      flags_.set(ResponseFlag::UpstreamOverflow);
      co_return false;
    }
    if (r.status == Status::Ready) {
      cluster_->recordOutcome(*host, false);
      upstream_ = std::move(r.conn);
      host->active_requests++;
      co_return true;
    }
    cluster_->recordOutcome(*host, true);
    flags_.set(ResponseFlag::UpstreamConnectionFailure);
    TURNOUT_CONN_LOG(debug, "conn", id_, "tcp proxy: connect to {} {}", host->description->address,
                     r.timed_out ? "timed out" : "failed");
  }
  // Envoy counts running out of attempts even when only one was allowed.
  shard.inc(cstats.upstream_cx_connect_attempts_exceeded());
  flags_.set(ResponseFlag::UpstreamRetryLimitExceeded);
  co_return false;
}

Awaitable<void> TcpProxyConnection::relay() {
  if (closed_) co_return;
  const TcpProxyRuntime& tcp = this->tcp();
  down_.socket = &socket_;
  down_.tls = tls_.get();
  up_.socket = &upstream_->stream.socket();
  up_.tls = upstream_->tls.get();
  const size_t chunk = tcp.buffer_limit_bytes == 0
                           ? kMaxChunk
                           : std::min<size_t>(tcp.buffer_limit_bytes, kMaxChunk);
  ByteRelay relay(worker_.io(), down_, up_, chunk, tcp.config->idle_timeout, *this, id_);
  relay_ = &relay;
  // What the listener read to choose the filter chain goes first.
  co_await relay.run(std::move(initial_), {});
  relay_ = nullptr;
}

void TcpProxyConnection::onRead(RelayDirection dir, uint64_t n) {
  const TcpProxyRuntime& tcp = this->tcp();
  stats::Shard& shard = worker_.shard();
  if (dir == kToUpstream) {
    bytes_received_ += n;
    shard.inc(tcp.stats.downstream_cx_rx_bytes_total, n);
    shard.add(tcp.stats.downstream_cx_rx_bytes_buffered, static_cast<int64_t>(n));
  } else {
    shard.inc(cluster_->runtime().stats.upstream_cx_rx_bytes_total(), n);
    shard.add(tcp.stats.downstream_cx_tx_bytes_buffered, static_cast<int64_t>(n));
  }
}

void TcpProxyConnection::onWritten(RelayDirection dir, uint64_t n, bool delivered, bool waited) {
  const stats::TcpProxyStats& ts = tcp().stats;
  const stats::ClusterStats& cs = cluster_->runtime().stats;
  stats::Shard& shard = worker_.shard();
  const bool to_upstream = dir == kToUpstream;
  shard.sub(to_upstream ? ts.downstream_cx_rx_bytes_buffered : ts.downstream_cx_tx_bytes_buffered,
            static_cast<int64_t>(n));
  if (waited) {
    shard.inc(to_upstream ? ts.downstream_flow_control_paused_reading_total
                          : cs.upstream_flow_control_paused_reading_total());
    shard.inc(to_upstream ? ts.downstream_flow_control_resumed_reading_total
                          : cs.upstream_flow_control_resumed_reading_total());
  }
  if (!delivered) return;
  if (!to_upstream) bytes_sent_ += n;
  shard.inc(to_upstream ? cs.upstream_cx_tx_bytes_total() : ts.downstream_cx_tx_bytes_total, n);
}

void TcpProxyConnection::onSourceEnded(RelayDirection dir, bool reset) {
  if (dir == kToDownstream) upstream_closed_first_ = true;
  if (reset) {
    flags_.set(dir == kToUpstream ? access_log::ResponseFlag::DownstreamRemoteReset
                                  : access_log::ResponseFlag::UpstreamRemoteReset);
  }
}

void TcpProxyConnection::onFlush(bool active) {
  const stats::TcpProxyStats& ts = tcp().stats;
  stats::Shard& shard = worker_.shard();
  if (active) {
    shard.inc(ts.upstream_flush_total);
    shard.add(ts.upstream_flush_active, 1);
  } else {
    shard.sub(ts.upstream_flush_active, 1);
  }
}

void TcpProxyConnection::onIdleTimeout() {
  TURNOUT_CONN_LOG(debug, "conn", id_, "tcp proxy: idle timeout");
  worker_.shard().inc(tcp().stats.idle_timeout);
}

void TcpProxyConnection::logAccess() {
  const TcpProxyRuntime& tcp = this->tcp();
  if (tcp.access_logs.empty()) return;
  access_log::StreamInfo info;
  info.start_time = started_wall_;
  info.duration = std::chrono::duration_cast<std::chrono::nanoseconds>(
      std::chrono::steady_clock::now() - started_);
  info.protocol.clear();  // "-": no HTTP
  info.response_flags = flags_;
  info.bytes_received = bytes_received_;
  info.bytes_sent = bytes_sent_;
  if (host_ != nullptr) info.upstream_host = host_->description->address;
  info.upstream_cluster = upstream_cluster_;
  info.downstream_remote_address = endpointString(remote_);
  info.downstream_local_address = endpointString(local_);
  info.connection_id = id_;
  for (const auto& log : tcp.access_logs) log->log(info, worker_.index());
}

}  // namespace turnout::proxy
