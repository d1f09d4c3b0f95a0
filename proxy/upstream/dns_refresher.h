#pragma once

#include <chrono>
#include <functional>
#include <memory>

#include "proxy/common/asio.h"

#include "proxy/server/data_plane_config.h"
#include "proxy/stats/store.h"

namespace turnout::proxy {

// Periodic DNS re-resolution of the STRICT_DNS and LOGICAL_DNS clusters of one
// DataPlaneConfig (Envoy's StrictDnsClusterImpl / LogicalDnsCluster
// ResolveTarget loop).
//
// Threading: everything (create, start, stop, hosts, the destructor and the
// publish callback) runs on the MAIN thread's io_context. Names are resolved
// with Asio's async resolver, whose getaddrinfo runs on Asio's own resolver
// thread, so neither the main thread nor any worker ever blocks on DNS.
//
// Each lb_endpoint of a DNS cluster is one resolve target with its own loop:
// wait dns_refresh_rate (counted from the end of the previous resolution, as
// Envoy arms its timer), resolve within kResolveTimeout, and apply the answer
// with applyResolution() (stats: update_attempt, update_success,
// update_no_rebuild, update_failure, membership_change). A failure keeps the
// previous hosts and the next attempt comes dns_refresh_rate later. When the
// host list changed, the new HostSet is published: `publish` gets it, and
// the caller posts it to every worker.
//
// Not supported: respect_dns_ttl (getaddrinfo reports no TTL) and
// dns_failure_refresh_rate (failures are retried at dns_refresh_rate); create()
// logs a warning for each cluster that sets them.
class DnsRefresher {
 public:
  using Publish = std::function<void(const ClusterRuntime& cluster, HostSetConstSharedPtr hosts)>;

  // How long one resolution may take before it counts as a failure.
  static constexpr std::chrono::seconds kResolveTimeout{5};

  // `main` and `main_shard` must outlive the refresher; destroy the refresher
  // before the io_context.
  static std::unique_ptr<DnsRefresher> create(asio::io_context& main,
                                              DataPlaneConfigConstSharedPtr config,
                                              stats::Shard& main_shard, Publish publish);
  ~DnsRefresher();
  DnsRefresher(const DnsRefresher&) = delete;
  DnsRefresher& operator=(const DnsRefresher&) = delete;

  // Starts every target's loop. A second call, or one after stop(), does nothing.
  void start();
  // Cancels the timers; resolutions still running are ignored when they end.
  // Idempotent; `publish` is never called afterwards.
  void stop();

  // The current host set of `cluster` (a cluster of the config given to
  // create()): the last one published, else the one it was built with.
  HostSetConstSharedPtr hosts(const ClusterRuntime& cluster) const;

  struct State;  // shared with the loops and resolver callbacks

 private:
  explicit DnsRefresher(std::shared_ptr<State> state);
  std::shared_ptr<State> state_;
};

using DnsRefresherPtr = std::unique_ptr<DnsRefresher>;

}  // namespace turnout::proxy
