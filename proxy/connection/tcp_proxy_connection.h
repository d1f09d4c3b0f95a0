#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <list>
#include <memory>
#include <span>
#include <string>

#include "proxy/common/asio.h"

#include "proxy/access_log/stream_info.h"
#include "proxy/connection/downstream_stream.h"
#include "proxy/server/data_plane_config.h"
#include "proxy/tls/tls_transport.h"
#include "proxy/upstream/cluster_manager.h"

namespace turnout::proxy {

class Worker;

// One downstream connection whose filter chain is a TCP proxy (Envoy's
// envoy.filters.network.tcp_proxy; docs/tcp_proxy.md): it picks the cluster
// (`cluster`, or one of `weighted_clusters` by weight), a host by the
// cluster's load balancer (an ORIGINAL_DST cluster: the connection's local
// address, its original destination), connects within the cluster's
// connect_timeout and max_connections, up to max_connect_attempts times, and
// then relays bytes both ways until both directions have ended.
//
// The relay is two pumps, one per direction, each reading at most one chunk
// (per_connection_buffer_limit_bytes, at most 64 KiB) and writing it whole
// before reading again: what turnout holds per direction is bounded, and a
// slow reader on one side stops reading on the other (counted as
// flow-control pauses). A FIN on one side becomes a shutdown(SHUT_WR) (TLS:
// close_notify first) towards the other once its bytes are written; a reset
// read from one side resets the other; a side that can no longer be written
// ends its direction, and the other side's bytes in flight are still
// written (upstream_flush_total). The idle timeout (no byte either way)
// closes both.
//
// Lives in its run() coroutine's frame on one worker; registered with the
// worker, which closes it at shutdown. Draining leaves it alone: a TCP
// connection has no request boundary to stop at, and Envoy keeps it open
// through the drain as well.
class TcpProxyConnection : public ConnectionHandle {
 public:
  // The connection coroutine for a socket whose filter chain `chain_index`
  // has a TCP proxy. `initial`: plaintext bytes already read from the client
  // (filter-chain inspection); `tls`: the terminated TLS session when the
  // chain has a DownstreamTlsContext (its handshake done). Parameters by
  // value (STYLE.md R8c).
  static asio::awaitable<void> run(Worker& worker, DataPlaneConfigConstSharedPtr config,
                                   size_t listener_index, size_t chain_index,
                                   asio::ip::tcp::socket socket, asio::ip::tcp::endpoint remote,
                                   asio::ip::tcp::endpoint local, std::string initial,
                                   std::unique_ptr<tls::TlsTransport> tls);

  TcpProxyConnection(Worker& worker, DataPlaneConfigConstSharedPtr config, size_t listener_index,
                     size_t chain_index, asio::ip::tcp::socket socket,
                     asio::ip::tcp::endpoint remote, asio::ip::tcp::endpoint local,
                     std::string initial, std::unique_ptr<tls::TlsTransport> tls);
  ~TcpProxyConnection() override;
  TcpProxyConnection(const TcpProxyConnection&) = delete;
  TcpProxyConnection& operator=(const TcpProxyConnection&) = delete;

  // ConnectionHandle (worker thread).
  const ListenerRuntime& listener() const override { return *config_->listeners[listener_index_]; }
  void drain() override {}
  void close() override;

 private:
  // One end of the relay: its socket and, for TLS, its transport with the
  // ciphertext scratch of its reader and of its writer (the two pumps use a
  // side at the same time, one reading, one writing).
  struct Side {
    asio::ip::tcp::socket* socket = nullptr;
    tls::TlsTransport* tls = nullptr;
    std::string tls_in;
    std::string tls_out;
  };
  // kToUpstream reads the client and writes the upstream; kToDownstream the
  // reverse.
  enum Direction : uint8_t { kToUpstream = 0, kToDownstream = 1 };

  const TcpProxyRuntime& tcp() const { return *listener().filter_chains[chain_index_].tcp_proxy; }
  // Cluster, host, connect (with attempts); false when the connection ends
  // without an upstream (flags and stats set).
  asio::awaitable<bool> connectUpstream();
  asio::awaitable<void> relay();
  asio::awaitable<void> pump(Direction dir);
  asio::awaitable<void> idleWatch();
  // One read from `from` into the pump's buffers; `out` views the bytes.
  asio::awaitable<boost::system::error_code> receive(Side& from, char* buf, size_t size,
                                                     std::string& plain,
                                                     std::span<const char>& out);
  // Writes all of `data` to `to` (encrypted for TLS). `waited`: it could not
  // all go at once, so the pump stopped reading meanwhile.
  asio::awaitable<boost::system::error_code> send(Side& to, std::span<const char> data,
                                                  bool& waited);
  // No more bytes for `to`: close_notify (TLS), then shutdown(SHUT_WR).
  asio::awaitable<void> shutdownWrite(Side& to);
  // A reset read from one side: the other is reset too (SO_LINGER 0), and
  // both are closed.
  void resetBoth();
  void closeSockets();
  void touch() { last_activity_ = std::chrono::steady_clock::now(); }
  void logAccess();
  struct SpawnedDone;

  Worker& worker_;
  DataPlaneConfigConstSharedPtr config_;
  size_t listener_index_;
  size_t chain_index_;
  asio::ip::tcp::socket socket_;
  asio::ip::tcp::endpoint remote_;
  asio::ip::tcp::endpoint local_;
  std::string initial_;
  std::unique_ptr<tls::TlsTransport> tls_;
  uint64_t id_;
  std::list<ConnectionHandle*>::iterator registration_;
  std::chrono::steady_clock::time_point started_;
  std::chrono::system_clock::time_point started_wall_;

  std::shared_ptr<WorkerCluster> cluster_;  // keeps `host_` alive
  HostState* host_ = nullptr;
  UpstreamConnectionPtr upstream_;
  Side down_;
  Side up_;
  size_t chunk_ = 0;

  bool closed_ = false;      // close(), an idle timeout or a reset closed the sockets
  bool relay_done_ = false;  // both pumps ended
  std::array<bool, 2> writing_{};        // a pump's write is in flight
  std::array<bool, 2> stop_reading_{};   // its destination is gone: no more reads
  bool flushing_ = false;                // upstream_flush_active counts this connection
  bool upstream_closed_first_ = false;   // the upstream ended its side (EOF or reset)
  bool pump_running_ = false;            // the co_spawned kToDownstream pump
  bool idle_running_ = false;            // the co_spawned idle watch
  asio::steady_timer joined_;            // cancelled when one of them ends
  asio::steady_timer idle_timer_;
  std::chrono::steady_clock::time_point last_activity_;

  uint64_t bytes_received_ = 0;  // from the client
  uint64_t bytes_sent_ = 0;      // to the client
  access_log::ResponseFlags flags_;
  std::string upstream_cluster_;
};

}  // namespace turnout::proxy
