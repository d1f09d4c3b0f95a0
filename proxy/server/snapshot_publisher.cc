#include "proxy/server/snapshot_publisher.h"

#include <sys/socket.h>

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "proxy/common/log.h"
#include "proxy/common/memory_release.h"
#include "proxy/listener/original_dst.h"

namespace turnout::proxy {
namespace {

bool needsServices(const ClusterRuntime& c) {
  return c.health_checked || !c.dns_targets.empty() || c.config->outlier_detection.has_value();
}

}  // namespace

SnapshotPublisher::SnapshotPublisher(asio::io_context& main, stats::Store& store,
                                     std::vector<std::unique_ptr<Worker>>& workers)
    : main_(main), store_(store), workers_(workers), heap_release_timer_(main) {
  cluster_added_ = store.counter("cluster_manager.cluster_added");
  cluster_modified_ = store.counter("cluster_manager.cluster_modified");
  cluster_removed_ = store.counter("cluster_manager.cluster_removed");
  active_clusters_ = store.gauge("cluster_manager.active_clusters");
  listener_added_ = store.counter("listener_manager.listener_added");
  listener_modified_ = store.counter("listener_manager.listener_modified");
  listener_removed_ = store.counter("listener_manager.listener_removed");
  listeners_active_ = store.gauge("listener_manager.total_listeners_active");
}

SnapshotPublisher::~SnapshotPublisher() { stop(); }

void SnapshotPublisher::stop() {
  stopped_ = true;
  heap_release_timer_.cancel();
  for (auto& [name, s] : services_) {
    if (s->health_checker) s->health_checker->stop();
    if (s->dns_refresher) s->dns_refresher->stop();
    if (s->outlier_detector) s->outlier_detector->stop();
  }
}

void SnapshotPublisher::startServices(const ClusterRuntimeConstSharedPtr& rt) {
  services_.erase(rt->config->name);
  if (!needsServices(*rt)) return;
  auto s = std::make_unique<ClusterServices>();
  s->runtime = rt;
  // The services take a DataPlaneConfig; this one has only the cluster.
  auto one = std::make_shared<DataPlaneConfig>();
  one->snapshot = current_ ? current_->snapshot : rt->owner;
  one->clusters.insert_or_assign(rt->config->name, rt);
  DataPlaneConfigConstSharedPtr view = one;
  stats::Shard& main_shard = store_.mainShard();
  s->health_checker = HealthChecker::create(main_, view, main_shard, nullptr);
  s->outlier_detector = OutlierDetector::create(
      main_, view, store_,
      [this, rt](const ClusterRuntime& c, OutlierEjectionsConstSharedPtr ejections) {
        for (auto& w : workers_) {
          Worker* worker = w.get();
          worker->mailbox().post([worker, rt, c = &c, ejections] {
            worker->clusters().updateEjections(*c, ejections);
          });
        }
      });
  s->dns_refresher = DnsRefresher::create(
      main_, view, main_shard, [this, rt](const ClusterRuntime&, HostSetConstSharedPtr hosts) {
        publishHosts(rt, std::move(hosts));
      });
  if (!stopped_) {
    s->health_checker->start();
    s->outlier_detector->start();
    s->dns_refresher->start();
  }
  services_[rt->config->name] = std::move(s);
}

HostSetConstSharedPtr SnapshotPublisher::hosts(const ClusterRuntime& cluster) const {
  auto it = published_hosts_.find(cluster.config->name);
  if (it == published_hosts_.end() || it->second.runtime != &cluster) return cluster.hosts;
  return it->second.hosts;
}

void SnapshotPublisher::publishHosts(const ClusterRuntimeConstSharedPtr& rt,
                                     HostSetConstSharedPtr hosts) {
  const std::string& name = rt->config->name;
  if (!current_ || current_->cluster(name) != rt) return;
  auto s = services_.find(name);
  if (s != services_.end() && s->second->runtime == rt) {
    s->second->health_checker->updateHosts(*rt, *hosts);
    s->second->outlier_detector->updateHosts(*rt, *hosts);  // before the hosts reach a worker
  }
  published_hosts_[name] = PublishedHosts{rt.get(), hosts};
  for (auto& w : workers_) w->postHosts(rt, hosts);
}

std::vector<SnapshotPublisher::BoundListener> SnapshotPublisher::boundListeners() const {
  std::vector<BoundListener> out;
  if (!current_) return out;
  for (const auto& l : current_->listeners) {
    auto it = bound_.find(l->config->name);
    if (it != bound_.end()) out.push_back(it->second);
  }
  return out;
}

absl::StatusOr<std::vector<WorkerListener>> SnapshotPublisher::bind(const ListenerRuntime& lr,
                                                                    uint16_t& port) {
  const config::ListenerConfig& l = *lr.config;
  std::vector<WorkerListener> out;
  if (l.address.kind != config::Address::Kind::Socket) {
    return absl::InvalidArgumentError(
        absl::StrCat("listener '", l.name, "': only socket addresses can be bound"));
  }
  boost::system::error_code ec;
  auto ip = asio::ip::make_address(l.address.address, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("listener '", l.name, "': invalid address '", l.address.address, "'"));
  }
  port = static_cast<uint16_t>(l.address.port);
  for (size_t i = 0; i < workers_.size(); ++i) {
    // Bound here, on the main thread's io_context: a worker's reactor has no
    // per-socket locks, so only the worker registers its sockets
    // (Worker::acceptLoop moves the acceptor over on its own thread).
    auto acceptor = std::make_unique<TcpAcceptor>(main_);
    asio::ip::tcp::endpoint ep(ip, port);
    acceptor->open(ep.protocol(), ec);
    if (!ec) acceptor->set_option(asio::socket_base::reuse_address(true), ec);
    // An IPv6 listener takes IPv6 only unless ipv4_compat (as Envoy): without
    // it "::" and "0.0.0.0" on one port are two listeners.
    if (!ec && ip.is_v6()) acceptor->set_option(asio::ip::v6_only(!l.address.ipv4_compat), ec);
    if (!ec && l.transparent) {
      ec = setTransparent(*acceptor, ip.is_v6());
      if (ec) {
        return absl::UnavailableError(absl::StrCat(
            "listener '", l.name, "': cannot make '", l.address.toString(),
            "' transparent (IP_TRANSPARENT needs CAP_NET_ADMIN): ", ec.message()));
      }
    }
    if (!ec) {
      int one = 1;
      if (::setsockopt(acceptor->native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) !=
          0) {
        ec = boost::system::error_code(errno, boost::system::system_category());
      }
    }
    if (!ec) acceptor->bind(ep, ec);
    if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return absl::UnavailableError(absl::StrCat("listener '", l.name, "': cannot bind '",
                                                 l.address.toString(), "': ", ec.message()));
    }
    // Port 0: the first worker's socket picks the port, the others share it.
    if (port == 0) port = acceptor->local_endpoint().port();
    out.push_back(WorkerListener{l.name, std::move(acceptor)});
  }
  return out;
}

absl::Status SnapshotPublisher::start(DataPlaneConfigConstSharedPtr config) {
  current_ = std::move(config);
  for (const auto& [name, rt] : current_->clusters) {
    (*resources_)[name] = std::make_shared<ClusterResources>();
    startServices(rt);
  }
  for (const auto& l : current_->listeners) {
    if (!l->config->bind_to_port) continue;
    uint16_t port = 0;
    auto acceptors = bind(*l, port);
    if (!acceptors.ok()) return acceptors.status();
    for (size_t i = 0; i < workers_.size(); ++i) workers_[i]->addListener(std::move((*acceptors)[i]));
    bound_[l->config->name] = BoundListener{l->config->name, l->config->address.address, port};
    TURNOUT_LOG(info, "main", "listener '{}' on {}:{} ({} workers)", l->config->name,
                l->config->address.address, port, workers_.size());
  }
  stats::Shard& shard = store_.mainShard();
  shard.set(active_clusters_, static_cast<int64_t>(current_->clusters.size()));
  shard.set(listeners_active_, static_cast<int64_t>(bound_.size()));
  for (auto& w : workers_) w->start(current_, resources_);
  scheduleHeapRelease();
  return absl::OkStatus();
}

void SnapshotPublisher::scheduleHeapRelease() {
  if (stopped_) return;
  heap_release_timer_.expires_after(std::chrono::seconds(1));  // cancels a pending wait
  heap_release_timer_.async_wait([](const boost::system::error_code& ec) {
    if (!ec) releaseFreeHeap();
  });
}

absl::Status SnapshotPublisher::publish(DataPlaneConfigConstSharedPtr next) {
  stats::Shard& shard = store_.mainShard();
  // Listeners first: a bind error rejects the generation with nothing changed.
  struct NewListener {
    const ListenerRuntime* runtime;
    std::vector<WorkerListener> acceptors;
    uint16_t port;
    bool replaces;
  };
  std::vector<NewListener> new_listeners;
  std::vector<std::string> removed_listeners;
  std::vector<std::string> unbound_listeners;  // changed to bind_to_port: false
  for (const auto& l : next->listeners) {
    const ListenerRuntimeConstSharedPtr* old = current_->findListener(l->config->name);
    if (old != nullptr && (*old)->config == l->config) continue;  // same listener config
    if (!l->config->bind_to_port) {
      // Now only a use_original_dst target: a socket it had closes.
      if (old != nullptr && bound_.contains(l->config->name)) {
        unbound_listeners.push_back(l->config->name);
      }
      continue;
    }
    uint16_t port = 0;
    auto acceptors = bind(*l, port);
    if (!acceptors.ok()) return acceptors.status();
    new_listeners.push_back(NewListener{l.get(), *std::move(acceptors), port, old != nullptr});
  }
  for (const auto& l : current_->listeners) {
    if (next->findListener(l->config->name) == nullptr) removed_listeners.push_back(l->config->name);
  }

  // Clusters: services and breakers of the added and changed ones. Only the
  // shards the generation changed are looked at.
  auto fresh = std::make_shared<ClusterResourcesMap>();
  next->clusters.diff(
      &current_->clusters,
      [&](const std::string& name, const ClusterRuntimeConstSharedPtr* old,
          const ClusterRuntimeConstSharedPtr& rt) {
        shard.inc(old == nullptr ? cluster_added_ : cluster_modified_);
        published_hosts_.erase(name);  // the new runtime starts with its own hosts
        (*fresh)[name] = std::make_shared<ClusterResources>();
        startServices(rt);
      },
      [&](const std::string& name, const ClusterRuntimeConstSharedPtr&) {
        shard.inc(cluster_removed_);
        published_hosts_.erase(name);
        if (auto it = services_.find(name); it != services_.end()) {
          it->second->health_checker->stop();
          it->second->dns_refresher->stop();
          it->second->outlier_detector->stop();
          services_.erase(it);
        }
        // The removed cluster's stats scope is freed with its last
        // ClusterStats copy (when every worker has dropped this config and
        // its requests have ended); Store::reclaim on this thread returns
        // the slots.
      });
  current_ = next;
  for (auto& w : workers_) w->postConfig(next, fresh);

  for (auto& nl : new_listeners) {
    const std::string& name = nl.runtime->config->name;
    for (size_t i = 0; i < workers_.size(); ++i) {
      if (nl.replaces) {
        workers_[i]->removeListener(name, std::move(nl.acceptors[i]));
      } else {
        workers_[i]->addListener(std::move(nl.acceptors[i]));
      }
    }
    shard.inc(nl.replaces ? listener_modified_ : listener_added_);
    bound_[name] = BoundListener{name, nl.runtime->config->address.address, nl.port};
    TURNOUT_LOG(info, "main", "listener '{}' {} on {}:{}", name,
                nl.replaces ? "replaced" : "added", nl.runtime->config->address.address, nl.port);
  }
  for (const auto& name : unbound_listeners) {
    for (auto& w : workers_) w->removeListener(name);
    bound_.erase(name);
    shard.inc(listener_modified_);
    TURNOUT_LOG(info, "main", "listener '{}' no longer binds its port", name);
  }
  for (const auto& name : removed_listeners) {
    for (auto& w : workers_) w->removeListener(name);
    bound_.erase(name);
    shard.inc(listener_removed_);
    TURNOUT_LOG(info, "main", "listener '{}' removed; its connections drain", name);
  }
  shard.set(active_clusters_, static_cast<int64_t>(next->clusters.size()));
  shard.set(listeners_active_, static_cast<int64_t>(bound_.size()));
  scheduleHeapRelease();
  return absl::OkStatus();
}

DataPlaneConfigConstSharedPtr SnapshotPublisher::withClusters(
    const DataPlaneConfig& base, std::vector<ClusterRuntimeConstSharedPtr> upserts,
    const std::vector<std::string>& removed) {
  auto next = std::make_shared<DataPlaneConfig>(base);
  ++next->generation;
  for (const auto& name : removed) next->clusters.erase(name);
  for (auto& rt : upserts) {
    const std::string& name = rt->config->name;  // owned by the runtime's snapshot
    next->clusters.insert_or_assign(name, std::move(rt));
  }
  return next;
}

DataPlaneConfigConstSharedPtr SnapshotPublisher::withRoute(const DataPlaneConfig& base,
                                                           const std::string& name,
                                                           RouteTableConstSharedPtr table) {
  auto next = std::make_shared<DataPlaneConfig>(base);
  ++next->generation;
  next->routes[name] = table;
  auto names = [&name](const FilterChainRuntime& c) {
    return c.hcm &&
           c.hcm->config->route_source == config::HttpConnectionManagerConfig::RouteSource::Rds &&
           c.hcm->config->route_config_name == name;
  };
  for (auto& l : next->listeners) {
    if (std::none_of(l->filter_chains.begin(), l->filter_chains.end(), names)) continue;
    auto copy = std::make_shared<ListenerRuntime>(*l);
    for (auto& c : copy->filter_chains) {
      if (names(c)) c.hcm->route_table = table;
    }
    l = std::move(copy);
  }
  return next;
}

DataPlaneConfigConstSharedPtr SnapshotPublisher::withListeners(
    const DataPlaneConfig& base, std::vector<ListenerRuntimeConstSharedPtr> upserts,
    const std::vector<std::string>& removed) {
  auto next = std::make_shared<DataPlaneConfig>(base);
  ++next->generation;
  absl::flat_hash_set<std::string> gone(removed.begin(), removed.end());
  std::erase_if(next->listeners,
                [&](const ListenerRuntimeConstSharedPtr& l) { return gone.contains(l->config->name); });
  for (auto& u : upserts) {
    auto it = std::find_if(next->listeners.begin(), next->listeners.end(),
                           [&](const auto& l) { return l->config->name == u->config->name; });
    if (it != next->listeners.end()) {
      *it = std::move(u);
    } else {
      next->listeners.push_back(std::move(u));
    }
  }
  return next;
}

}  // namespace turnout::proxy
