#pragma once

#include <memory>
#include <string>
#include <vector>

#include "proxy/common/asio.h"

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "proxy/server/data_plane_config.h"
#include "proxy/server/worker.h"
#include "proxy/stats/store.h"
#include "proxy/upstream/dns_refresher.h"
#include "proxy/upstream/health_checker.h"
#include "proxy/upstream/outlier_detector.h"

namespace turnout::proxy {

// Publishes config generations to the workers (main thread only).
//
// A generation is a DataPlaneConfig: maps from resource name to immutable
// shared objects. The with*() helpers make the next generation from the
// current one by copying the maps (pointers) and replacing only the changed
// entries, so an unchanged cluster, listener or route table is the same
// object in both. publish() then, in this order:
//  1. starts/stops the main-thread services of the clusters that were added,
//     changed or removed (health checker, DNS refresher, outlier detector:
//     one set per cluster that needs them, so an unchanged cluster keeps its
//     health state, DNS loop and ejections). OutlierDetector monitors exist
//     before the config reaches a worker;
//  2. binds the listeners that are new or changed (a bind error rejects the
//     whole generation before anything was posted);
//  3. posts the generation to every worker (asio::post of immutable data):
//     ClusterManager::update keeps the WorkerCluster of every cluster whose
//     runtime is the same object, and retires removed ones;
//  4. posts new acceptors, and stops the acceptors of removed or changed
//     listeners (their connections finish the current request with
//     `Connection: close`).
// Stats: cluster_manager.cluster_added / cluster_modified / cluster_removed,
// cluster_manager.active_clusters, listener_manager.listener_added /
// listener_modified / listener_removed, server.total_listeners_active.
class SnapshotPublisher {
 public:
  SnapshotPublisher(asio::io_context& main, stats::Store& store,
                    std::vector<std::unique_ptr<Worker>>& workers);
  ~SnapshotPublisher();
  SnapshotPublisher(const SnapshotPublisher&) = delete;
  SnapshotPublisher& operator=(const SnapshotPublisher&) = delete;

  // The first generation: services started, listeners bound, workers
  // started with it.
  absl::Status start(DataPlaneConfigConstSharedPtr config);
  // A later generation (see the class comment). On error nothing changed.
  absl::Status publish(DataPlaneConfigConstSharedPtr next);
  // Stops the services (shutdown).
  void stop();

  const DataPlaneConfigConstSharedPtr& current() const { return current_; }
  // A cluster's current host set (DNS or EDS), for /clusters.
  HostSetConstSharedPtr hosts(const ClusterRuntime& cluster) const;
  // Publishes a new host set of `cluster` (a cluster of the current
  // generation; ignored otherwise): the one path DNS resolutions and EDS
  // assignments take. Its health checker and outlier detector learn the
  // hosts first (monitors exist before a worker sees a host), then every
  // worker gets it (Worker::postHosts -> ClusterManager::updateHosts: only
  // this cluster's WorkerCluster is replaced, and the idle connections of
  // surviving hosts move over).
  void publishHosts(const ClusterRuntimeConstSharedPtr& cluster, HostSetConstSharedPtr hosts);

  struct BoundListener {
    std::string name;
    std::string address;
    uint16_t port = 0;
  };
  std::vector<BoundListener> boundListeners() const;

  // The next generation from `base`: `upserts` replace or add clusters,
  // `removed` names go. Copies the map of pointers; builds nothing.
  static DataPlaneConfigConstSharedPtr withClusters(
      const DataPlaneConfig& base, std::vector<ClusterRuntimeConstSharedPtr> upserts,
      const std::vector<std::string>& removed);
  // The next generation with RDS table `name` set to `table`: every listener
  // whose HCM names it is copied with the new table (same ListenerConfig, so
  // its open connections take it on their next request).
  static DataPlaneConfigConstSharedPtr withRoute(const DataPlaneConfig& base,
                                                 const std::string& name,
                                                 RouteTableConstSharedPtr table);
  // The next generation with listeners replaced, added and removed by name.
  static DataPlaneConfigConstSharedPtr withListeners(
      const DataPlaneConfig& base, std::vector<ListenerRuntimeConstSharedPtr> upserts,
      const std::vector<std::string>& removed);

 private:
  struct ClusterServices {
    ClusterRuntimeConstSharedPtr runtime;
    HealthCheckerPtr health_checker;
    DnsRefresherPtr dns_refresher;
    OutlierDetectorPtr outlier_detector;
  };
  void startServices(const ClusterRuntimeConstSharedPtr& rt);
  absl::StatusOr<std::vector<WorkerListener>> bind(const ListenerRuntime& l, uint16_t& port);
  void post(const DataPlaneConfigConstSharedPtr& config);
  // A second after the last generation (workers have dropped the one
  // before it by then, and the parse's temporaries are free), returns the
  // heap's free pages to the kernel (releaseFreeHeap). Updates in a burst
  // re-arm the timer: one release per burst.
  void scheduleHeapRelease();

  asio::io_context& main_;
  stats::Store& store_;
  std::vector<std::unique_ptr<Worker>>& workers_;
  DataPlaneConfigConstSharedPtr current_;
  std::shared_ptr<ClusterResourcesMap> resources_ = std::make_shared<ClusterResourcesMap>();
  absl::flat_hash_map<std::string, std::unique_ptr<ClusterServices>> services_;
  // The last host set published per cluster name, with the runtime it was for.
  struct PublishedHosts {
    const ClusterRuntime* runtime;
    HostSetConstSharedPtr hosts;
  };
  absl::flat_hash_map<std::string, PublishedHosts> published_hosts_;
  absl::flat_hash_map<std::string, BoundListener> bound_;
  bool stopped_ = false;
  SteadyTimer heap_release_timer_;
  stats::StatId cluster_added_, cluster_modified_, cluster_removed_, active_clusters_;
  stats::StatId listener_added_, listener_modified_, listener_removed_, listeners_active_;
};

}  // namespace turnout::proxy
