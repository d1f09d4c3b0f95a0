#include "proxy/server/worker.h"

#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <exception>

#include "proxy/common/deadline_queue.h"
#include "proxy/common/inq_read.h"
#include "proxy/common/log.h"
#include "proxy/common/spawn.h"
#include "proxy/common/thread_cache.h"
#include "proxy/connection/downstream_connection.h"
#include "proxy/listener/original_dst.h"

namespace turnout::proxy {

std::atomic<uint64_t> Worker::next_connection_id_{0};

Worker::Worker(size_t index, stats::Store& store)
    : index_(index),
      store_(store),
      shard_(store.shard(index)),
      clusters_(index),
      rng_(Random::fromDevice()) {
  deadlines_ = &DeadlineQueue::of(io_);
}

Worker::~Worker() { stop(); }

void Worker::addListener(WorkerListener listener) {
  auto l = std::make_shared<WorkerListener>(std::move(listener));
  if (!thread_.joinable()) {
    listeners_.push_back(std::move(l));
    return;
  }
  mailbox_.post([this, l = std::move(l)] {
    listeners_.push_back(l);
    if (!draining_) spawnAccept(l);
  });
}

void Worker::removeListener(std::string name, std::optional<WorkerListener> replacement) {
  std::shared_ptr<WorkerListener> next =
      replacement ? std::make_shared<WorkerListener>(std::move(*replacement)) : nullptr;
  mailbox_.post([this, name = std::move(name), next = std::move(next)] {
    for (auto it = listeners_.begin(); it != listeners_.end();) {
      if ((*it)->name != name) {
        ++it;
        continue;
      }
      boost::system::error_code ec;
      if ((*it)->acceptor) (*it)->acceptor->close(ec);
      it = listeners_.erase(it);
    }
    // Connections accepted by the old listener drain (they keep the config
    // they were accepted with): HTTP/1 answers its current or next request
    // with `Connection: close`, HTTP/2 sends GOAWAY.
    for (ConnectionHandle* c : connections_) {
      if (c->listener().config->name == name) c->drain();
    }
    if (next) {
      listeners_.push_back(next);
      if (!draining_) spawnAccept(next);
    }
  });
}

ClusterManager::UpdateResult Worker::installConfig(DataPlaneConfigConstSharedPtr config,
                                                   const ClusterResourcesMap& resources) {
  ClusterManager::UpdateResult r = clusters_.update(config, resources, shard_);
  const bool hands_off = std::any_of(config->listeners.begin(), config->listeners.end(),
                                     [](const auto& l) { return l->config->use_original_dst; });
  listeners_by_address_ = hands_off ? ListenerAddressMap(*config) : ListenerAddressMap();
  config_ = std::move(config);
  return r;
}

void Worker::spawnAccept(const std::shared_ptr<WorkerListener>& l) {
  asio::co_spawn(io_, acceptLoop(l), LogEscapedException{"main", "accept loop of listener", l->name});
}

void Worker::start(DataPlaneConfigConstSharedPtr config,
                   ClusterResourcesMapConstSharedPtr resources) {
  installConfig(std::move(config), *resources);
  for (auto& l : listeners_) spawnAccept(l);
  thread_ = std::thread([this] {
    auto guard = asio::make_work_guard(io_);
    io_.run();
  });
}

void Worker::postConfig(DataPlaneConfigConstSharedPtr config,
                        ClusterResourcesMapConstSharedPtr resources, ConfigInstalled done) {
  mailbox_.post([this, config = std::move(config), resources = std::move(resources),
                 done = std::move(done)]() mutable {
    ClusterManager::UpdateResult r = installConfig(std::move(config), *resources);
    // What the previous generation freed on this thread (up to the cache's
    // 4 MiB) goes back to malloc, for the main thread's malloc_trim a
    // second later (SnapshotPublisher::scheduleHeapRelease): an idle
    // sidecar does not keep a worker's cache full of old config.
    thread_cache::flush();
    if (done) done(r);
  });
}

void Worker::postHosts(ClusterRuntimeConstSharedPtr cluster, HostSetConstSharedPtr hosts) {
  mailbox_.post([this, cluster = std::move(cluster), hosts = std::move(hosts)]() mutable {
    clusters_.updateHosts(*cluster, std::move(hosts), shard_);
  });
}

void Worker::drain() {
  mailbox_.post([this] {
    draining_ = true;
    for (auto& l : listeners_) {
      boost::system::error_code ec;
      if (l->acceptor) l->acceptor->close(ec);
    }
    for (ConnectionHandle* c : connections_) c->drain();
  });
}

void Worker::stop() {
  if (!thread_.joinable()) return;
  mailbox_.post([this] {
    for (auto& l : listeners_) {
      boost::system::error_code ec;
      if (l->acceptor) l->acceptor->close(ec);
    }
    for (ConnectionHandle* c : connections_) c->close();
    io_.stop();
  });
  thread_.join();
}

std::optional<asio::ip::tcp::endpoint> Worker::boundAddress(std::string_view listener_name) const {
  for (const auto& l : listeners_) {
    if (l->name != listener_name || !l->acceptor || !l->acceptor->is_open()) continue;
    boost::system::error_code ec;
    const asio::ip::tcp::endpoint bound = l->acceptor->local_endpoint(ec);
    if (!ec) return bound;
  }
  return std::nullopt;
}

std::list<ConnectionHandle*>::iterator Worker::registerConnection(ConnectionHandle* c) {
  return connections_.insert(connections_.end(), c);
}

void Worker::unregisterConnection(std::list<ConnectionHandle*>::iterator it) {
  connections_.erase(it);
}

const std::string& Worker::httpDate() {
  auto now = std::chrono::system_clock::now();
  if (date_.empty() || now - date_at_ >= std::chrono::seconds(1)) {
    std::time_t t = std::chrono::system_clock::to_time_t(now);
    std::tm tm;
    gmtime_r(&t, &tm);
    char buf[64];
    std::strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    date_ = buf;
    date_at_ = now;
  }
  return date_;
}

Awaitable<void> Worker::acceptLoop(std::shared_ptr<WorkerListener> listener) {
  // SnapshotPublisher binds on the main thread's io_context; this worker's
  // reactor runs without per-socket locks (worker.h), so the socket is
  // registered with it here, on its own thread.
  if (!listener->acceptor || !listener->acceptor->is_open()) co_return;  // closed before it started
  if (&listener->acceptor->get_executor().context() != &io_) {
    boost::system::error_code ec;
    const asio::ip::tcp::endpoint at = listener->acceptor->local_endpoint(ec);
    const auto fd = ec ? -1 : listener->acceptor->release(ec);
    auto mine = std::make_unique<TcpAcceptor>(io_);
    if (!ec) mine->assign(at.protocol(), fd, ec);
    if (ec) {
      TURNOUT_LOG(err, "main", "listener '{}': cannot hand the socket to worker {}: {}",
                  listener->name, index_, ec.message());
      if (fd >= 0) ::close(fd);
      co_return;
    }
    listener->acceptor = std::move(mine);
  }
  // A listener bound to one address gives every connection that local
  // address: ask the kernel (getsockname) only for wildcard listeners. The
  // peer comes from accept itself (no getpeername).
  boost::system::error_code bound_ec;
  const asio::ip::tcp::endpoint bound = listener->acceptor->local_endpoint(bound_ec);
  for (;;) {
    boost::system::error_code ec;
    TcpSocket socket(io_);
    asio::ip::tcp::endpoint peer;
    co_await listener->acceptor->async_accept(socket, peer,
                                              asio::redirect_error(use_awaitable, ec));
    if (ec) {
      if (ec == asio::error::operation_aborted || !listener->acceptor->is_open()) co_return;
      // EMFILE and friends: back off briefly instead of spinning.
      TURNOUT_LOG(warn, "main", "listener '{}' accept failed: {}", listener->name, ec.message());
      SteadyTimer t(io_, std::chrono::milliseconds(10));
      co_await t.async_wait(asio::redirect_error(use_awaitable, ec));
      continue;
    }
    if (!config_) continue;
    size_t index = config_->listeners.size();
    for (size_t i = 0; i < config_->listeners.size(); ++i) {
      if (config_->listeners[i]->config->name == listener->name) index = i;
    }
    if (index == config_->listeners.size()) continue;  // removed meanwhile
    socket.set_option(asio::ip::tcp::no_delay(true), ec);
    enableInq(socket);  // reads tell the reactor when they drained it (inq_read.h)
    const config::ListenerConfig& lc = *config_->listeners[index]->config;
    asio::ip::tcp::endpoint local = bound;
    // A transparent (TPROXY) listener's connections keep their original
    // destination as their local address.
    if (bound_ec || bound.address().is_unspecified() || lc.transparent) {
      local = socket.local_endpoint(ec);
    }
    if (lc.address.ipv4_compat) {  // an IPv4 peer on a dual-stack socket is IPv4, as in Envoy
      peer = unmappedV4(peer);
      local = unmappedV4(local);
    }
    if (lc.original_dst) {
      // The original_dst listener filter: the address before iptables
      // REDIRECT becomes the connection's local address. use_original_dst
      // then hands the connection to the listener on that address, on this
      // worker with this config; the target's own listener filters and
      // chains apply (its original_dst would read the same address), and
      // the connection counts on the target only, as in Envoy.
      if (auto original = originalDestination(socket, local)) {
        local = *original;
        if (lc.use_original_dst) {
          if (auto target = listeners_by_address_.find(local)) {
            TURNOUT_LOG(debug, "conn", "listener '{}' hands a connection to {}:{} to listener '{}'",
                        lc.name, local.address().to_string(), local.port(),
                        config_->listeners[*target]->config->name);
            index = *target;
          }
        }
      }
    }
    asio::co_spawn(io_,
                   DownstreamConnection::run(*this, config_, index, std::move(socket), peer, local),
                   LogEscapedException{"conn", "connection"});
  }
}

}  // namespace turnout::proxy
