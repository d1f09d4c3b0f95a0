#pragma once

// RetryState: one request's retry budget (Envoy's router/retry_state_impl).
// Made by the RouterFilter when a route with a retry policy forwards a
// request; asked after each failed attempt whether another may run.
//
// Who calls it: the RouterFilter, on its worker thread. Lives in the
// router's frame for one request.

#include <chrono>
#include <cstdint>

#include "proxy/access_log/stream_info.h"
#include "proxy/stats/store.h"
#include "routing/request_view.h"
#include "routing/retry_policy.h"

namespace turnout::proxy {

class WorkerCluster;

class RetryState {
 public:
  // `policy` is the route's compiled policy (null: no retries). A request
  // that retriable_request_headers do not admit, or an upgrade, gets none.
  RetryState(const routing::CompiledRetryPolicy* policy, const routing::RequestView& request,
             bool upgrade);

  bool enabled() const { return policy_ != nullptr; }
  // The policy in force (null when disabled): per-try timeouts come from it.
  const routing::RetryPolicy* config() const { return policy_ != nullptr ? policy_->config : nullptr; }
  uint32_t retriesDone() const { return retries_done_; }
  // The policy wants a retry after a reset (`connect_failure`: the
  // connection could not be made) or after this response.
  bool wouldRetryReset(bool connect_failure) const;
  bool wouldRetryResponse(uint32_t status, const routing::RequestView& response) const;

  // Another attempt is allowed: within num_retries (else
  // upstream_rq_retry_limit_exceeded and the URX flag), with a body that can
  // be replayed exactly, before `deadline` (the route timeout), and within
  // the cluster's max_retries breaker (else upstream_rq_retry_overflow).
  bool canRetry(WorkerCluster& cluster, stats::Shard& shard, bool body_replayable,
                std::chrono::steady_clock::time_point deadline,
                access_log::ResponseFlags& flags) const;

  // A retry is starting: counts it; the wait before it is backOff().
  void onRetry() { ++retries_done_; }
  // The jittered back-off before the retry onRetry() just counted.
  std::chrono::milliseconds backOff(uint64_t random) const {
    return policy_->backOff(retries_done_, random);
  }

 private:
  const routing::CompiledRetryPolicy* policy_;
  uint32_t retries_done_ = 0;
};

}  // namespace turnout::proxy
