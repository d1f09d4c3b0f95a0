#include "proxy/upstream/dns_refresher.h"

#include <exception>
#include <utility>
#include <vector>

#include "proxy/common/log.h"
#include "proxy/common/spawn.h"

namespace turnout::proxy {
namespace {

constexpr const char* kLogComponent = "upstream";

// One resolve target's loop state. Owned by State (stable address), touched
// only on the main thread.
struct TargetLoop {
  TargetLoop(asio::io_context& io, size_t cluster_index, const ResolveTarget& t)
      : cluster(cluster_index), target(&t), timer(io), resolver(io) {}

  size_t cluster;  // into State::clusters
  const ResolveTarget* target;
  SteadyTimer timer;  // the refresh interval, then the resolve deadline
  TcpResolver resolver;
  uint64_t generation = 0;   // of the resolution the loop waits for
  bool in_flight = false;    // the resolver's thread still works on one
  bool answered = false;     // the awaited resolution has ended
  bool failing = false;      // the last resolution failed (logged once)
  boost::system::error_code ec;
  std::vector<asio::ip::address> resolved;
};

struct DnsCluster {
  const ClusterRuntime* runtime;
  HostSetConstSharedPtr current;
};

}  // namespace

struct DnsRefresher::State {
  State(asio::io_context& io_context, DataPlaneConfigConstSharedPtr cfg, stats::Shard& shard,
        Publish callback)
      : io(io_context), config(std::move(cfg)), main_shard(shard), publish(std::move(callback)) {}

  asio::io_context& io;
  DataPlaneConfigConstSharedPtr config;
  stats::Shard& main_shard;
  Publish publish;
  bool started = false;
  bool stopped = false;
  std::vector<DnsCluster> clusters;
  std::vector<std::unique_ptr<TargetLoop>> loops;
};

namespace {

using State = DnsRefresher::State;

// Starts one resolution of `t`; its answer wakes the loop (if it still waits
// for this one when it arrives).
void startResolve(const std::shared_ptr<State>& state, TargetLoop* t) {
  const uint64_t generation = ++t->generation;
  t->in_flight = true;
  t->answered = false;
  t->resolver.async_resolve(t->target->dns_name, "",
                            [state, t, generation](const boost::system::error_code& ec,
                                                   const TcpResolver::results_type& results) {
                              t->in_flight = false;
                              if (state->stopped || generation != t->generation || t->answered)
                                return;
                              t->answered = true;
                              t->ec = ec;
                              t->resolved.clear();
                              for (const auto& r : results)
                                t->resolved.push_back(r.endpoint().address());
                              t->timer.cancel();
                            });
}

Awaitable<void> refreshLoop(std::shared_ptr<State> state, TargetLoop* t) {
  DnsCluster& cluster = state->clusters[t->cluster];
  const ClusterRuntime& runtime = *cluster.runtime;
  for (;;) {
    boost::system::error_code ec;
    t->timer.expires_after(runtime.config->dns_refresh_rate);
    co_await t->timer.async_wait(asio::redirect_error(use_awaitable, ec));
    if (state->stopped) co_return;
    if (t->in_flight) {
      // A resolution that ran past its deadline still occupies the
      // resolver's thread: count this round as failed, start no other.
      state->main_shard.inc(runtime.stats.update_attempt());
      state->main_shard.inc(runtime.stats.update_failure());
      continue;
    }
    startResolve(state, t);
    const auto deadline = std::chrono::steady_clock::now() + DnsRefresher::kResolveTimeout;
    t->timer.expires_at(deadline);
    while (!t->answered && !state->stopped && std::chrono::steady_clock::now() < deadline) {
      co_await t->timer.async_wait(asio::redirect_error(use_awaitable, ec));
    }
    if (state->stopped) co_return;
    if (!t->answered) {
      t->answered = true;  // the late answer is dropped
      t->ec = asio::error::timed_out;
      t->resolved.clear();
    }
    ResolutionApplied r = applyResolution(runtime, *t->target, t->ec, t->resolved,
                                          *cluster.current, state->main_shard);
    if (r.ok != !t->failing) {
      // Only the changes between resolving and failing are logged.
      t->failing = !r.ok;
      if (t->failing) {
        TURNOUT_LOG(warn, kLogComponent, "cluster '{}': cannot resolve '{}' ({}); keeping its "
                    "{} hosts",
                    runtime.config->name, t->target->dns_name,
                    t->ec ? t->ec.message() : std::string("no address of the configured family"),
                    cluster.current->hosts.size());
      } else {
        TURNOUT_LOG(info, kLogComponent, "cluster '{}': '{}' resolves again",
                    runtime.config->name, t->target->dns_name);
      }
    }
    if (r.changed) {
      cluster.current = r.changed;
      if (state->publish) state->publish(runtime, std::move(r.changed));
    }
  }
}

}  // namespace

std::unique_ptr<DnsRefresher> DnsRefresher::create(asio::io_context& main,
                                                   DataPlaneConfigConstSharedPtr config,
                                                   stats::Shard& main_shard, Publish publish) {
  auto state = std::make_shared<State>(main, std::move(config), main_shard, std::move(publish));
  if (state->config) {
    for (const auto& [cluster_name, cluster_ptr] : state->config->clusters) {
      const ClusterRuntime& c = *cluster_ptr;
      if (c.dns_targets.empty()) continue;
      if (c.config->respect_dns_ttl) {
        TURNOUT_LOG(warn, kLogComponent,
                    "cluster '{}': respect_dns_ttl is not supported (the system resolver gives "
                    "no TTL); it is re-resolved every dns_refresh_rate",
                    c.config->name);
      }
      if (c.config->has_dns_failure_refresh_rate) {
        TURNOUT_LOG(warn, kLogComponent,
                    "cluster '{}': dns_failure_refresh_rate is not supported; failed resolutions "
                    "are retried every dns_refresh_rate",
                    c.config->name);
      }
      const size_t index = state->clusters.size();
      state->clusters.push_back(DnsCluster{&c, c.hosts});
      for (const ResolveTarget& t : c.dns_targets) {
        state->loops.push_back(std::make_unique<TargetLoop>(main, index, t));
      }
    }
  }
  return std::unique_ptr<DnsRefresher>(new DnsRefresher(std::move(state)));
}

DnsRefresher::DnsRefresher(std::shared_ptr<State> state) : state_(std::move(state)) {}

DnsRefresher::~DnsRefresher() { stop(); }

void DnsRefresher::start() {
  if (state_->started || state_->stopped) return;
  state_->started = true;
  for (auto& loop : state_->loops) {
    asio::co_spawn(state_->io, refreshLoop(state_, loop.get()),
                   LogEscapedException{kLogComponent, "DNS refresh loop"});
  }
}

void DnsRefresher::stop() {
  if (state_->stopped) return;
  state_->stopped = true;
  for (auto& loop : state_->loops) {
    loop->timer.cancel();
    loop->resolver.cancel();
  }
}

HostSetConstSharedPtr DnsRefresher::hosts(const ClusterRuntime& cluster) const {
  for (const auto& c : state_->clusters) {
    if (c.runtime == &cluster) return c.current;
  }
  return cluster.hosts;
}

}  // namespace turnout::proxy
