#include "proxy/server/worker.h"

#include <ctime>
#include <exception>

#include "proxy/common/log.h"
#include "proxy/connection/downstream_connection.h"

namespace turnout::proxy {

std::atomic<uint64_t> Worker::next_connection_id_{0};

Worker::Worker(size_t index, stats::Store& store)
    : index_(index),
      store_(store),
      shard_(store.shard(index)),
      clusters_(index),
      rng_(std::random_device{}()) {}

Worker::~Worker() { stop(); }

void Worker::addListener(WorkerListener listener) { listeners_.push_back(std::move(listener)); }

void Worker::installConfig(
    DataPlaneConfigConstSharedPtr config,
    const absl::flat_hash_map<std::string, std::shared_ptr<ClusterResources>>& resources) {
  clusters_.update(config, resources, shard_);
  config_ = std::move(config);
}

void Worker::start(DataPlaneConfigConstSharedPtr config,
                   absl::flat_hash_map<std::string, std::shared_ptr<ClusterResources>> resources) {
  installConfig(std::move(config), resources);
  for (auto& l : listeners_) {
    asio::co_spawn(io_, acceptLoop(l), [name = l.name](std::exception_ptr e) {
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        TURNOUT_LOG(err, "main", "listener '{}' accept loop failed: {}", name, ex.what());
      }
    });
  }
  thread_ = std::thread([this] {
    auto guard = asio::make_work_guard(io_);
    io_.run();
  });
}

void Worker::postConfig(
    DataPlaneConfigConstSharedPtr config,
    absl::flat_hash_map<std::string, std::shared_ptr<ClusterResources>> resources) {
  asio::post(io_, [this, config = std::move(config), resources = std::move(resources)]() mutable {
    installConfig(std::move(config), resources);
  });
}

void Worker::postHosts(DataPlaneConfigConstSharedPtr config, size_t cluster,
                       HostSetConstSharedPtr hosts) {
  asio::post(io_, [this, config = std::move(config), cluster, hosts = std::move(hosts)]() mutable {
    if (config != config_ || cluster >= config->clusters.size()) return;
    clusters_.updateHosts(config->clusters[cluster], std::move(hosts), shard_);
  });
}

void Worker::drain() {
  asio::post(io_, [this] {
    draining_ = true;
    for (auto& l : listeners_) {
      boost::system::error_code ec;
      if (l.acceptor) l.acceptor->close(ec);
    }
    for (DownstreamConnection* c : connections_) c->drain();
  });
}

void Worker::stop() {
  if (!thread_.joinable()) return;
  asio::post(io_, [this] {
    for (auto& l : listeners_) {
      boost::system::error_code ec;
      if (l.acceptor) l.acceptor->close(ec);
    }
    for (DownstreamConnection* c : connections_) c->close();
    io_.stop();
  });
  thread_.join();
}

std::list<DownstreamConnection*>::iterator Worker::registerConnection(DownstreamConnection* c) {
  return connections_.insert(connections_.end(), c);
}

void Worker::unregisterConnection(std::list<DownstreamConnection*>::iterator it) {
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

asio::awaitable<void> Worker::acceptLoop(WorkerListener& listener) {
  for (;;) {
    boost::system::error_code ec;
    asio::ip::tcp::socket socket(io_);
    co_await listener.acceptor->async_accept(socket, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (ec == asio::error::operation_aborted || !listener.acceptor->is_open()) co_return;
      // EMFILE and friends: back off briefly instead of spinning.
      TURNOUT_LOG(warn, "main", "listener '{}' accept failed: {}", listener.name, ec.message());
      asio::steady_timer t(io_, std::chrono::milliseconds(10));
      co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    if (!config_ || listener.index >= config_->listeners.size()) continue;
    socket.set_option(asio::ip::tcp::no_delay(true), ec);
    const ListenerRuntime& lr = config_->listeners[listener.index];
    asio::co_spawn(io_, DownstreamConnection::run(*this, config_, listener.index, std::move(socket)),
                   [](std::exception_ptr e) {
                     if (!e) return;
                     try {
                       std::rethrow_exception(e);
                     } catch (const std::exception& ex) {
                       TURNOUT_LOG(err, "conn", "connection failed: {}", ex.what());
                     }
                   });
    (void)lr;
  }
}

}  // namespace turnout::proxy
