#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "proxy/common/asio.h"

#include "absl/container/flat_hash_map.h"
#include "proxy/common/mailbox.h"
#include "proxy/common/random.h"
#include "proxy/listener/listener_address_map.h"
#include "proxy/server/data_plane_config.h"
#include "proxy/stats/store.h"
#include "proxy/upstream/cluster_manager.h"

namespace turnout::proxy {

class ConnectionHandle;
class DeadlineQueue;

// The listening socket of one listener on one worker (one SO_REUSEPORT
// acceptor per worker, so the kernel spreads connections and a connection
// never moves between threads).
struct WorkerListener {
  std::string name;  // in DataPlaneConfig::listeners
  std::unique_ptr<TcpAcceptor> acceptor;
};

// One worker: a thread running its own io_context with its own listeners,
// upstream pools and stats shard. Everything here is touched only by the
// worker thread, except what the main thread posts (setConfig, drain, stop).
class Worker {
 public:
  Worker(size_t index, stats::Store& store);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  size_t index() const { return index_; }
  asio::io_context& io() { return io_; }
  // The io_context's DeadlineQueue, looked up once (DeadlineQueue::of takes
  // Asio's service registry lock): connections and requests take it here.
  DeadlineQueue& deadlines() { return *deadlines_; }
  stats::Shard& shard() { return shard_; }
  // The one way another thread hands this worker work (io_ has no lock).
  Mailbox& mailbox() { return mailbox_; }
  // For Store::runOnMainThread only: registration is the main thread's.
  stats::Store& store() { return store_; }
  ClusterManager& clusters() { return clusters_; }
  const DataPlaneConfigConstSharedPtr& config() const { return config_; }

  // Main thread, before start(): the acceptors this worker serves. After
  // start(), the same posted to the worker (a listener added by LDS; its
  // config must have been posted first).
  void addListener(WorkerListener listener);
  // Posts: stop accepting on listener `name`; its connections finish their
  // current request with `Connection: close` (LDS removal or change). With
  // `replacement`, the new acceptor starts in the same step.
  void removeListener(std::string name, std::optional<WorkerListener> replacement = {});
  // Starts the thread. `config` is installed before the first accept.
  void start(DataPlaneConfigConstSharedPtr config, ClusterResourcesMapConstSharedPtr resources);
  // Posts a new config to the worker (any thread). `done`, if set, runs on
  // the worker after the install with what ClusterManager::update did.
  using ConfigInstalled = std::function<void(const ClusterManager::UpdateResult&)>;
  void postConfig(DataPlaneConfigConstSharedPtr config, ClusterResourcesMapConstSharedPtr resources,
                  ConfigInstalled done = nullptr);
  // Posts a new host set for `cluster` (any thread). The worker applies it
  // only while `cluster` is still its runtime of that name.
  void postHosts(ClusterRuntimeConstSharedPtr cluster, HostSetConstSharedPtr hosts);
  // Stops accepting; open connections get `Connection: close` on their next
  // response and are closed once idle (any thread).
  void drain();
  // Stops the io_context and joins the thread (main thread).
  void stop();

  // Worker-thread helpers.
  uint64_t random() { return rng_(); }
  uint64_t nextConnectionId() { return next_connection_id_.fetch_add(1); }
  bool draining() const { return draining_; }
  // /healthcheck/fail state, owned by the server (health_check filter).
  void setHealthCheckFlag(const std::atomic<bool>* flag) { health_check_failed_ = flag; }
  bool healthCheckFailed() const {
    return health_check_failed_ != nullptr && health_check_failed_->load(std::memory_order_relaxed);
  }
  // The HTTP Date for now, refreshed at most once a second.
  const std::string& httpDate();

  // The address listener `listener_name`'s acceptor is bound to on this
  // worker, as the kernel reports it (port 0 resolved); none for a listener
  // this worker does not accept on (bind_to_port false, or removed). A
  // syscall: ORIGINAL_DST clusters ask, to refuse a destination that is the
  // listener itself. Worker thread.
  std::optional<asio::ip::tcp::endpoint> boundAddress(std::string_view listener_name) const;

  // Connection registry (worker thread): for drain and shutdown.
  std::list<ConnectionHandle*>::iterator registerConnection(ConnectionHandle* c);
  void unregisterConnection(std::list<ConnectionHandle*>::iterator it);

  // Process-wide connection ids (Envoy's %CONNECTION_ID% is unique per process).
  static std::atomic<uint64_t> next_connection_id_;

 private:
  Awaitable<void> acceptLoop(std::shared_ptr<WorkerListener> listener);
  void spawnAccept(const std::shared_ptr<WorkerListener>& listener);
  ClusterManager::UpdateResult installConfig(DataPlaneConfigConstSharedPtr config,
                                             const ClusterResourcesMap& resources);

  size_t index_;
  stats::Store& store_;
  stats::Shard& shard_;
  // Declared before io_: destroying io_ destroys suspended connection
  // coroutines, whose destructors unregister themselves from this list.
  std::list<ConnectionHandle*> connections_;
  // One thread runs io_ and every socket and timer of it is used on that
  // thread alone; other threads hand it work through mailbox_ only. So io_
  // takes no lock at all: not the reactor's per-descriptor ones (two mutex
  // round trips per I/O operation on the request path) nor the scheduler's
  // (one per turn of the run loop).
  asio::io_context io_{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE};
  Mailbox mailbox_{io_};      // after io_: its descriptor goes first
  DeadlineQueue* deadlines_;  // io_'s
  std::thread thread_;
  std::vector<std::shared_ptr<WorkerListener>> listeners_;
  DataPlaneConfigConstSharedPtr config_;
  // config_'s listeners by address, for use_original_dst hand-offs (empty
  // unless a listener has use_original_dst).
  ListenerAddressMap listeners_by_address_;
  ClusterManager clusters_;
  Random rng_;
  bool draining_ = false;
  const std::atomic<bool>* health_check_failed_ = nullptr;
  std::string date_;
  std::chrono::system_clock::time_point date_at_{};
};

}  // namespace turnout::proxy
