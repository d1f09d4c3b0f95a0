#include "proxy/router/retry_state.h"

#include "proxy/upstream/cluster_manager.h"

namespace turnout::proxy {

RetryState::RetryState(const routing::CompiledRetryPolicy* policy,
                       const routing::RequestView& request, bool upgrade)
    : policy_(policy) {
  if (policy_ != nullptr && (upgrade || !policy_->requestAllowsRetry(request))) policy_ = nullptr;
}

bool RetryState::wouldRetryReset(bool connect_failure) const {
  return policy_ != nullptr && policy_->retriableReset(connect_failure);
}

bool RetryState::wouldRetryResponse(uint32_t status, const routing::RequestView& response) const {
  return policy_ != nullptr && policy_->retriableResponse(status, response);
}

bool RetryState::canRetry(WorkerCluster& cluster, stats::Shard& shard, bool body_replayable,
                          std::chrono::steady_clock::time_point deadline,
                          access_log::ResponseFlags& flags) const {
  if (policy_ == nullptr) return false;
  const auto& stats = cluster.runtime().stats;
  if (retries_done_ >= policy_->config->num_retries) {
    shard.inc(stats.upstream_rq_retry_limit_exceeded());
    flags.set(access_log::ResponseFlag::UpstreamRetryLimitExceeded);
    return false;
  }
  // A retry sends exactly the bytes the client sent, or does not happen.
  if (!body_replayable) return false;
  if (std::chrono::steady_clock::now() >= deadline) return false;
  if (!cluster.resources().retries.canCreate(cluster.thresholds().max_retries)) {
    shard.inc(stats.upstream_rq_retry_overflow());
    return false;
  }
  return true;
}

}  // namespace turnout::proxy
