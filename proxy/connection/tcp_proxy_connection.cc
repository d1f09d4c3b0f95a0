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

bool closedLocally(const boost::system::error_code& ec) {
  return ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor;
}

std::string endpointString(const asio::ip::tcp::endpoint& e) {
  return hostPort(e.address().to_string(), e.port());
}

}  // namespace

// Completion of the relay's co_spawned coroutines: logs an escaped
// exception (LogEscapedException's job), clears the coroutine's running flag
// and wakes relay(), which waits for it.
struct TcpProxyConnection::SpawnedDone {
  TcpProxyConnection* conn;
  bool* running;
  void operator()(std::exception_ptr e) const {
    LogEscapedException{"conn", "tcp proxy relay"}(e);
    *running = false;
    conn->joined_.cancel();
  }
};

namespace {
}  // namespace

TcpProxyConnection::TcpProxyConnection(Worker& worker, DataPlaneConfigConstSharedPtr config,
                                       size_t listener_index, size_t chain_index,
                                       asio::ip::tcp::socket socket,
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
      started_wall_(std::chrono::system_clock::now()),
      joined_(worker.io(), std::chrono::steady_clock::time_point::max()),
      idle_timer_(worker.io()) {
  registration_ = worker_.registerConnection(this);
}

TcpProxyConnection::~TcpProxyConnection() { worker_.unregisterConnection(registration_); }

void TcpProxyConnection::closeSockets() {
  boost::system::error_code ec;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  socket_.close(ec);
  if (upstream_) {
    upstream_->stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
    upstream_->stream.socket().close(ec);
  }
}

void TcpProxyConnection::close() {
  closed_ = true;
  closeSockets();
}

void TcpProxyConnection::resetBoth() {
  closed_ = true;
  boost::system::error_code ec;
  // SO_LINGER {on, 0}: close() sends a reset instead of a FIN.
  const asio::socket_base::linger abort(true, 0);
  socket_.set_option(abort, ec);
  socket_.close(ec);
  if (upstream_) {
    upstream_->stream.socket().set_option(abort, ec);
    upstream_->stream.socket().close(ec);
  }
}

asio::awaitable<void> TcpProxyConnection::run(Worker& worker, DataPlaneConfigConstSharedPtr config,
                                              size_t listener_index, size_t chain_index,
                                              asio::ip::tcp::socket socket,
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
    if (conn.upstream_closed_first_) shard.inc(conn.cluster_->runtime().stats.upstream_cx_destroy_remote);
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

asio::awaitable<bool> TcpProxyConnection::connectUpstream() {
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
      shard.inc(cstats.upstream_cx_none_healthy);
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
  shard.inc(cstats.upstream_cx_connect_attempts_exceeded);
  flags_.set(ResponseFlag::UpstreamRetryLimitExceeded);
  co_return false;
}

asio::awaitable<void> TcpProxyConnection::relay() {
  const TcpProxyRuntime& tcp = this->tcp();
  stats::Shard& shard = worker_.shard();
  down_.socket = &socket_;
  down_.tls = tls_.get();
  up_.socket = &upstream_->stream.socket();
  up_.tls = upstream_->tls.get();
  chunk_ = tcp.buffer_limit_bytes == 0 ? kMaxChunk
                                       : std::min<size_t>(tcp.buffer_limit_bytes, kMaxChunk);
  // send() tries each write at once and only then waits (to tell a paused
  // reader); async operations are unaffected by this flag.
  boost::system::error_code ec;
  socket_.non_blocking(true, ec);
  up_.socket->non_blocking(true, ec);
  touch();
  if (!initial_.empty()) {
    // What the listener read to choose the filter chain goes first.
    bytes_received_ += initial_.size();
    shard.inc(tcp.stats.downstream_cx_rx_bytes_total, initial_.size());
    bool waited = false;
    ec = co_await send(up_, std::span<const char>(initial_.data(), initial_.size()), waited);
    if (ec) co_return;
    shard.inc(cluster_->runtime().stats.upstream_cx_tx_bytes_total, initial_.size());
    std::string().swap(initial_);
  }
  if (closed_) co_return;
  const bool idle = tcp.config->idle_timeout.count() > 0;
  pump_running_ = true;
  asio::co_spawn(worker_.io(), pump(kToDownstream), SpawnedDone{this, &pump_running_});
  if (idle) {
    idle_running_ = true;
    asio::co_spawn(worker_.io(), idleWatch(), SpawnedDone{this, &idle_running_});
  }
  co_await pump(kToUpstream);
  // The other direction, then the idle watch (stopped once both are done).
  while (pump_running_) {
    joined_.expires_at(std::chrono::steady_clock::time_point::max());
    co_await joined_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  relay_done_ = true;
  idle_timer_.cancel();
  while (idle_running_) {
    joined_.expires_at(std::chrono::steady_clock::time_point::max());
    co_await joined_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  if (flushing_) {
    shard.sub(tcp.stats.upstream_flush_active, 1);
    flushing_ = false;
  }
}

asio::awaitable<void> TcpProxyConnection::idleWatch() {
  const std::chrono::milliseconds idle = tcp().config->idle_timeout;
  boost::system::error_code ec;
  for (;;) {
    idle_timer_.expires_at(last_activity_ + idle);
    co_await idle_timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (relay_done_ || closed_) co_return;
    if (std::chrono::steady_clock::now() - last_activity_ >= idle) {
      TURNOUT_CONN_LOG(debug, "conn", id_, "tcp proxy: idle timeout");
      worker_.shard().inc(tcp().stats.idle_timeout);
      close();
      co_return;
    }
  }
}

asio::awaitable<boost::system::error_code> TcpProxyConnection::receive(
    Side& from, char* buf, size_t size, std::string& plain, std::span<const char>& out) {
  boost::system::error_code ec;
  if (from.tls == nullptr) {
    const size_t n = co_await from.socket->async_read_some(
        asio::buffer(buf, size), asio::redirect_error(asio::use_awaitable, ec));
    out = std::span<const char>(buf, ec ? 0 : n);
    co_return ec;
  }
  plain.clear();
  for (;;) {
    // Plaintext the transport holds already (records that came with the
    // handshake, or a read of several records), then more ciphertext. What
    // the transport must send back (a key update) waits for this side's
    // writer: a reader never writes.
    const tls::TlsTransport::Result r = from.tls->read(plain);
    if (!plain.empty()) {
      out = std::span<const char>(plain.data(), plain.size());
      co_return ec;
    }
    if (r == tls::TlsTransport::Result::kClosed) co_return asio::error::eof;
    if (r == tls::TlsTransport::Result::kError) co_return asio::error::connection_reset;
    from.tls_in.resize(size);
    const size_t n = co_await from.socket->async_read_some(
        asio::buffer(from.tls_in.data(), size), asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return ec;
    from.tls->feed(std::span<const char>(from.tls_in.data(), n));
  }
}

asio::awaitable<boost::system::error_code> TcpProxyConnection::send(Side& to,
                                                                    std::span<const char> data,
                                                                    bool& waited) {
  std::span<const char> bytes = data;
  if (to.tls != nullptr) {
    to.tls_out.clear();
    if (!to.tls->write(data)) co_return asio::error::connection_reset;
    to.tls->takeOutput(to.tls_out);
    bytes = std::span<const char>(to.tls_out.data(), to.tls_out.size());
  }
  boost::system::error_code ec;
  size_t n = to.socket->write_some(asio::buffer(bytes.data(), bytes.size()), ec);
  if (ec == asio::error::would_block || ec == asio::error::try_again) {
    ec = {};
    n = 0;
  }
  if (ec) co_return ec;
  if (n < bytes.size()) {
    waited = true;
    co_await asio::async_write(*to.socket, asio::buffer(bytes.data() + n, bytes.size() - n),
                               asio::redirect_error(asio::use_awaitable, ec));
  }
  co_return ec;
}

asio::awaitable<void> TcpProxyConnection::shutdownWrite(Side& to) {
  boost::system::error_code ec;
  if (to.tls != nullptr) {
    to.tls->shutdown();
    to.tls_out.clear();
    to.tls->takeOutput(to.tls_out);
    if (!to.tls_out.empty()) {
      co_await asio::async_write(*to.socket, asio::buffer(to.tls_out),
                                 asio::redirect_error(asio::use_awaitable, ec));
    }
  }
  to.socket->shutdown(asio::ip::tcp::socket::shutdown_send, ec);
}

asio::awaitable<void> TcpProxyConnection::pump(Direction dir) {
  const bool to_upstream = dir == kToUpstream;
  Side& from = to_upstream ? down_ : up_;
  Side& to = to_upstream ? up_ : down_;
  const TcpProxyRuntime& tcp = this->tcp();
  const stats::TcpProxyStats& ts = tcp.stats;
  const stats::ClusterStats& cs = cluster_->runtime().stats;
  stats::Shard& shard = worker_.shard();
  const stats::StatId rx = to_upstream ? ts.downstream_cx_rx_bytes_total : cs.upstream_cx_rx_bytes_total;
  const stats::StatId tx = to_upstream ? cs.upstream_cx_tx_bytes_total : ts.downstream_cx_tx_bytes_total;
  const stats::StatId buffered =
      to_upstream ? ts.downstream_cx_rx_bytes_buffered : ts.downstream_cx_tx_bytes_buffered;
  const stats::StatId paused = to_upstream ? ts.downstream_flow_control_paused_reading_total
                                           : cs.upstream_flow_control_paused_reading_total;
  const stats::StatId resumed = to_upstream ? ts.downstream_flow_control_resumed_reading_total
                                            : cs.upstream_flow_control_resumed_reading_total;
  std::unique_ptr<char[]> buf(new char[chunk_]);
  std::string plain;
  for (;;) {
    if (closed_) co_return;
    if (stop_reading_[dir]) {
      // The source is gone (its other direction could not be written): end
      // this direction cleanly after what was in flight.
      co_await shutdownWrite(to);
      co_return;
    }
    std::span<const char> data;
    boost::system::error_code ec = co_await receive(from, buf.get(), chunk_, plain, data);
    if (ec == asio::error::eof) {
      if (!to_upstream) upstream_closed_first_ = true;
      if (!closed_) co_await shutdownWrite(to);  // half-close: FIN for FIN
      co_return;
    }
    if (ec) {
      if (closed_ || closedLocally(ec)) co_return;
      // A reset (or a TLS failure) from `from`: the other side is reset too.
      TURNOUT_CONN_LOG(debug, "conn", id_, "tcp proxy: {} reset ({})",
                       to_upstream ? "downstream" : "upstream", ec.message());
      if (!to_upstream) upstream_closed_first_ = true;
      flags_.set(to_upstream ? access_log::ResponseFlag::DownstreamRemoteReset
                             : access_log::ResponseFlag::UpstreamRemoteReset);
      resetBoth();
      co_return;
    }
    const uint64_t n = data.size();
    if (to_upstream) bytes_received_ += n;
    shard.inc(rx, n);
    shard.add(buffered, static_cast<int64_t>(n));
    touch();
    bool waited = false;
    writing_[dir] = true;
    ec = co_await send(to, data, waited);
    writing_[dir] = false;
    shard.sub(buffered, static_cast<int64_t>(n));
    if (waited) {
      shard.inc(paused);
      shard.inc(resumed);
    }
    if (to_upstream && flushing_) {
      shard.sub(ts.upstream_flush_active, 1);
      flushing_ = false;
    }
    if (ec) {
      if (closed_ || closedLocally(ec)) co_return;
      // `to` cannot take bytes any more. Bytes read from it may still come
      // and go to `from` (its pump ends at its EOF or reset); this direction
      // ends here. When the client went away while bytes to the upstream were
      // being written, that write finishes first (Envoy's upstream flush).
      TURNOUT_CONN_LOG(debug, "conn", id_, "tcp proxy: write to {} failed ({})",
                       to_upstream ? "upstream" : "downstream", ec.message());
      const Direction other = to_upstream ? kToDownstream : kToUpstream;
      stop_reading_[other] = true;
      if (!to_upstream && writing_[kToUpstream] && !flushing_) {
        flushing_ = true;
        shard.inc(ts.upstream_flush_total);
        shard.add(ts.upstream_flush_active, 1);
      }
      co_return;
    }
    if (!to_upstream) bytes_sent_ += n;
    shard.inc(tx, n);
    touch();
  }
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
