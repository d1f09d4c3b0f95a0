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
#include "proxy/connection/byte_relay.h"
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
// The relay is a ByteRelay (proxy/connection/byte_relay.h) with chunks of
// per_connection_buffer_limit_bytes, at most 64 KiB, and the TCP proxy's
// idle_timeout; this class counts what it reports.
//
// Lives in its run() coroutine's frame on one worker; registered with the
// worker, which closes it at shutdown. Draining leaves it alone: a TCP
// connection has no request boundary to stop at, and Envoy keeps it open
// through the drain as well.
class TcpProxyConnection : public ConnectionHandle, private RelayObserver {
 public:
  // The connection coroutine for a socket whose filter chain `chain_index`
  // has a TCP proxy. `initial`: plaintext bytes already read from the client
  // (filter-chain inspection); `tls`: the terminated TLS session when the
  // chain has a DownstreamTlsContext (its handshake done). Parameters by
  // value (STYLE.md R8c).
  static Awaitable<void> run(Worker& worker, DataPlaneConfigConstSharedPtr config,
                             size_t listener_index, size_t chain_index, TcpSocket socket,
                             asio::ip::tcp::endpoint remote, asio::ip::tcp::endpoint local,
                             std::string initial, std::unique_ptr<tls::TlsTransport> tls);

  TcpProxyConnection(Worker& worker, DataPlaneConfigConstSharedPtr config, size_t listener_index,
                     size_t chain_index, TcpSocket socket, asio::ip::tcp::endpoint remote,
                     asio::ip::tcp::endpoint local, std::string initial,
                     std::unique_ptr<tls::TlsTransport> tls);
  ~TcpProxyConnection() override;
  TcpProxyConnection(const TcpProxyConnection&) = delete;
  TcpProxyConnection& operator=(const TcpProxyConnection&) = delete;

  // ConnectionHandle (worker thread).
  const ListenerRuntime& listener() const override { return *config_->listeners[listener_index_]; }
  void drain() override {}
  void close() override;

 private:
  const TcpProxyRuntime& tcp() const { return *listener().filter_chains[chain_index_].tcp_proxy; }
  // Cluster, host, connect (with attempts); false when the connection ends
  // without an upstream (flags and stats set).
  Awaitable<bool> connectUpstream();
  Awaitable<void> relay();
  // RelayObserver: the TCP proxy's and the cluster's byte, flow-control
  // and flush stats, and the access log's flags.
  void onRead(RelayDirection dir, uint64_t n) override;
  void onWritten(RelayDirection dir, uint64_t n, bool delivered, bool waited) override;
  void onSourceEnded(RelayDirection dir, bool reset) override;
  void onFlush(bool active) override;
  void onIdleTimeout() override;
  void closeSockets();
  void logAccess();
  struct SpawnedDone;

  Worker& worker_;
  DataPlaneConfigConstSharedPtr config_;
  size_t listener_index_;
  size_t chain_index_;
  TcpSocket socket_;
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
  RelayEnd down_;
  RelayEnd up_;
  ByteRelay* relay_ = nullptr;  // while relay() runs

  bool closed_ = false;                // close() closed the sockets
  bool upstream_closed_first_ = false; // the upstream ended its side (EOF or reset)

  uint64_t bytes_received_ = 0;  // from the client
  uint64_t bytes_sent_ = 0;      // to the client
  access_log::ResponseFlags flags_;
  std::string upstream_cluster_;
};

}  // namespace turnout::proxy
