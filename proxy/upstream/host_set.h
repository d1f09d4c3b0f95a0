#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "proxy/common/asio.h"

#include "config/snapshot/snapshot.h"
#include "proxy/upstream/maglev_table.h"

namespace turnout::proxy {

class OutlierHostMonitor;

// The mutable state of one host that every worker and the main thread share:
// the active health-check verdict (written by the main thread's
// HealthChecker, read by workers; relaxed atomics) and, for a cluster with
// outlier_detection, the host's outlier monitor (per-worker counters; see
// outlier_detector.h). A host keeps its state across host-set updates for as
// long as it survives them.
struct HostSharedState {
  std::atomic<bool> failed_active_hc{false};
  // Set by the main thread's OutlierDetector before the host's first host set
  // is published to the workers; never changed afterwards. Null when the
  // cluster has no outlier detection.
  std::shared_ptr<OutlierHostMonitor> outlier;
};

// One upstream endpoint as the data plane sees it: an address it can connect
// to (DNS already resolved), its weight, its static health and its shared
// state (never null).
struct HostDescription {
  std::string ip;
  uint16_t port = 0;
  std::string address;   // "ip:port" ("[ip]:port" for IPv6), for logs, stats and /clusters
  std::string hostname;  // endpoint.hostname, or the DNS name it came from
  uint32_t weight = 1;
  uint32_t priority = 0;
  bool healthy = true;   // false for UNHEALTHY / DRAINING / TIMEOUT endpoints
  size_t endpoint = 0;   // which lb_endpoint of the cluster it came from
  std::shared_ptr<HostSharedState> state = std::make_shared<HostSharedState>();
};

// A MAGLEV cluster's lookup table for one priority level: over the level's
// hosts whose EDS health status is healthy, as Envoy builds one per priority
// over its healthy hosts.
struct MaglevLevel {
  uint32_t priority = 0;
  std::vector<uint32_t> members;  // the table's hosts, as indices into HostSet::hosts
  MaglevTable table;
};

// The hosts of one cluster at one moment, with their Maglev tables. Immutable
// once built; the main thread publishes each new one to every worker
// (asio::post of a shared_ptr<const>), and requests in flight keep theirs
// alive.
struct HostSet {
  std::vector<HostDescription> hosts;
  std::vector<MaglevLevel> maglev;  // MAGLEV clusters: one per priority, lowest first

  const MaglevLevel* maglevLevel(uint32_t priority) const;
};
using HostSetConstSharedPtr = std::shared_ptr<const HostSet>;

// The host set of `hosts` for a cluster configured as `config`: builds its
// Maglev tables (table size, address or hostname as the key) when it uses
// MAGLEV. Main thread: a table of the default size takes about a millisecond.
HostSetConstSharedPtr makeHostSet(const config::ClusterConfig& config,
                                  std::vector<HostDescription> hosts);

// "ip:port", with brackets around an IPv6 address (Envoy's asString()).
std::string hostPort(const std::string& ip, uint16_t port);

// The addresses a STRICT_DNS/LOGICAL_DNS host name stands for, picked from
// what the resolver returned by dns_lookup_family: AUTO prefers IPv6 and falls
// back to IPv4, V4_PREFERRED the reverse, ALL keeps both (IPv4 first); each
// address once, in the resolver's order. Pure.
std::vector<std::string> selectAddresses(const std::vector<asio::ip::address>& resolved,
                                         config::ClusterConfig::DnsLookupFamily family);

// One lb_endpoint of a STRICT_DNS or LOGICAL_DNS cluster: the name to resolve
// and what every host it yields inherits (port, weight, priority, health,
// hostname, endpoint index).
struct ResolveTarget {
  std::string dns_name;
  HostDescription host;  // the template: ip, address and state are per host
};

// Envoy's STRICT_DNS / LOGICAL_DNS host-list update after `target` resolved
// to `addresses` (already through selectAddresses), applied to `current`, the
// cluster's whole host list. Pure; the main thread calls it.
//
// STRICT_DNS (updateDynamicHostList, matching by address): the target's hosts
// become one per address, in the resolver's order; a host whose address was
// there before is kept as it was (its shared state too, so outlier and
// health-check state survive); a new one starts failing active health checks
// when the cluster has them (`health_checked`), as Envoy's new hosts do. An
// empty list removes the target's hosts. Other targets' hosts are untouched.
// `changed` is false when the target's address set is the same (order aside),
// and then `hosts` is `current` unchanged (Envoy's update_no_rebuild).
//
// LOGICAL_DNS: one logical host whose address is the first resolved one; it
// keeps its shared state when the address changes (`changed`, but nothing is
// added or removed). An empty list changes nothing (Envoy counts it as a
// failed update). The priority is always 0, as Envoy forces.
struct HostListUpdate {
  std::vector<HostDescription> hosts;
  bool changed = false;
  size_t added = 0;
  size_t removed = 0;
};
HostListUpdate updateHostList(const std::vector<HostDescription>& current,
                              const ResolveTarget& target,
                              const std::vector<std::string>& addresses,
                              config::ClusterConfig::Type type, bool health_checked);

// Whether an endpoint's EDS health_status lets it take traffic (UNKNOWN,
// HEALTHY and DEGRADED do; UNHEALTHY, DRAINING and TIMEOUT do not).
bool endpointHealthy(config::EndpointConfig::HealthStatus status);

// The hosts of a cluster's localities (a STATIC cluster's load_assignment or
// an EDS ClusterLoadAssignment, both translated by config::
// translateLoadAssignment), one per socket-address lb_endpoint in order, with
// weight, priority, static health and hostname; applied to `current`, the
// cluster's host list now (Envoy's EDS updateDynamicHostList, matching by
// address): a host whose address is in `current` keeps its shared state, so
// its health-check verdict and outlier monitor survive and the workers keep
// its pools; a new one starts failing active health checks when the cluster
// has them (`health_checked`). `changed` is false when nothing a worker uses
// differs (then `hosts` is `current`: Envoy's update_no_rebuild). Pure.
HostListUpdate updateEndpointHosts(const std::vector<config::LocalityEndpointsConfig>& localities,
                                   const std::vector<HostDescription>& current,
                                   bool health_checked);

}  // namespace turnout::proxy
