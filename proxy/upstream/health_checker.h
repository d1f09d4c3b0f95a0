#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "proxy/common/asio.h"

#include "proxy/server/data_plane_config.h"
#include "proxy/stats/store.h"

namespace turnout::proxy {

// The outcome of one active health check.
enum class HealthCheckResult {
  Success,
  ActiveFailure,   // the host answered, but not with an expected status
  NetworkFailure,  // connect error, timeout, reset or malformed response
};

// One host's active-HC state machine (Envoy's ActiveHealthCheckSession
// handleSuccess / handleFailure), kept apart from the I/O so it can be tested
// on its own. Starts unhealthy with the first check pending.
struct HostHealthState {
  bool healthy = false;
  bool first_check = true;
  uint32_t num_healthy = 0;    // consecutive successes while unhealthy
  uint32_t num_unhealthy = 0;  // consecutive network failures while healthy

  // Applies one result; true when `healthy` flipped. Thresholds of 0 act as 1.
  bool onResult(HealthCheckResult result, uint32_t healthy_threshold,
                uint32_t unhealthy_threshold);
};

// Envoy's active HTTP health checking (envoy.config.core.v3.HealthCheck with
// http_health_check) for every host of every cluster in one DataPlaneConfig.
//
// Threading: everything (create, start, stop, updateHosts, isHealthy, the
// destructor and every callback) runs on the MAIN thread's io_context. Each
// flip is written into the host's shared state (HostSharedState::
// failed_active_hc), which workers read with relaxed loads (R8g).
//
// Semantics, as in Envoy's HealthCheckerImplBase / HttpHealthCheckerImpl:
// - Only the cluster's first health check of kind Http is run; other kinds
//   are ignored here (the config layer decides what to reject).
// - Hosts start UNHEALTHY (Envoy sets FAILED_ACTIVE_HC on hosts of a cluster
//   with a health checker). The first check result ever is special: one
//   success marks the host healthy at once, regardless of healthy_threshold.
// - Afterwards an unhealthy host becomes healthy after healthy_threshold
//   consecutive successes. A healthy host becomes unhealthy after
//   unhealthy_threshold consecutive *network* failures (connect error,
//   timeout, reset, malformed response), or immediately on a response whose
//   status is not expected (anything but 200, Envoy's default
//   expected_statuses [200, 201)). A threshold of 0 is treated as 1.
// - The first check runs at start(); the next one `interval` after the
//   previous one completed (no jitter; no no_traffic_interval). A host never
//   has two checks in flight; `timeout` bounds connect + write + response.
// - Each check uses a fresh connection with `Connection: close` (Envoy keeps
//   the connection alive by default, reuse_connection = true); the request is
//   `GET <path> HTTP/1.1`, Host: <http_host or cluster name>,
//   User-Agent: Envoy/HC.
// - Hosts are told apart by their shared state, so a host that survives a
//   host-set update (updateHosts) keeps its health and its check loop.
// - Stats on the main shard: cluster.<name>.health_check.{attempt,success,failure}.
//
// The config (and its ClusterConfig pointers) is kept alive by the checker.
class HealthChecker {
 public:
  // A host's active-health state flipped (after it was written into the
  // host's shared state). Never called after stop() or destruction.
  using Callback =
      std::function<void(const std::string& cluster, const HostDescription& host, bool healthy)>;

  // `main` and `main_shard` must outlive the checker; the io_context must
  // also outlive any check still in flight when the checker is destroyed
  // (destroy the checker before the io_context).
  static std::unique_ptr<HealthChecker> create(asio::io_context& main,
                                               const DataPlaneConfigConstSharedPtr& config,
                                               stats::Shard& main_shard, Callback on_change);

  ~HealthChecker();
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  // Starts one check loop per health-checked host (first check immediately).
  // Calling it twice, or after stop(), does nothing.
  void start();
  // Cancels timers and closes sockets; pending checks finish as aborted
  // without touching stats or the callback. Idempotent.
  void stop();

  // Follows `cluster`'s new host set (DNS): starts checking its new hosts
  // (they start unhealthy), stops checking the removed ones, and keeps the
  // state and loop of the survivors; a LOGICAL_DNS host whose address changed
  // is checked at the new address from its next check on. Does nothing for a
  // cluster without an HTTP health check.
  void updateHosts(const ClusterRuntime& cluster, const HostSet& hosts);

  // The current active-HC state of the host at `address` ("ip:port"); false
  // for hosts not yet checked and for unknown cluster/host pairs.
  bool isHealthy(const std::string& cluster, const std::string& address) const;
  // How many hosts are health checked.
  size_t checkedHostCount() const;

  struct State;  // shared with the check coroutines

 private:
  explicit HealthChecker(std::shared_ptr<State> state);

  std::shared_ptr<State> state_;
};

using HealthCheckerPtr = std::unique_ptr<HealthChecker>;

}  // namespace turnout::proxy
