#include "proxy/upstream/cluster_manager.h"

#include "proxy/upstream/upstream_tls.h"

#include <algorithm>
#include <functional>

#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "proxy/common/inq_read.h"
#include "proxy/upstream/auto_conn_pool.h"
#include "proxy/upstream/http1_conn_pool.h"
#include "proxy/upstream/http2_conn_pool.h"
#include "proxy/upstream/source_address.h"

namespace turnout::proxy {
namespace {

// Ring hash: Envoy's default minimum ring size.
constexpr size_t kMinRingSize = 1024;

uint64_t mix(uint64_t x) {
  // splitmix64 finaliser: a stable, well-spread hash of ring points.
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t hashString(std::string_view s) {
  uint64_t h = 1469598103934665603ULL;  // FNV-1a, stable across processes
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return mix(h);
}

std::chrono::milliseconds until(std::chrono::steady_clock::time_point deadline) {
  auto d = std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
                                                                 std::chrono::steady_clock::now());
  return d.count() < 1 ? std::chrono::milliseconds(1) : d;
}

}  // namespace

bool BreakerResource::tryInc(uint32_t max, stats::Shard& shard, stats::StatId open) {
  uint32_t current = count_.load(std::memory_order_relaxed);
  do {
    if (current >= max) return false;
  } while (!count_.compare_exchange_weak(current, current + 1, std::memory_order_relaxed));
  if (current + 1 == max) shard.add(open, 1);
  return true;
}

bool BreakerResource::tryAcquire(uint32_t max, uint32_t& credit, stats::Shard& shard,
                                 stats::StatId open) {
  if (credit > 0) {
    --credit;
    return true;
  }
  const uint32_t batch = creditBatch(max);
  uint32_t current = count_.load(std::memory_order_relaxed);
  uint32_t take = 1;
  do {
    if (current >= max) return false;
    take = batch > 1 && current + batch <= max / 2 ? batch : 1;
  } while (!count_.compare_exchange_weak(current, current + take, std::memory_order_relaxed));
  credit = take - 1;
  if (current + take == max) shard.add(open, 1);  // take is 1 near the limit
  return true;
}

void BreakerResource::release(uint32_t max, uint32_t& credit, stats::Shard& shard,
                              stats::StatId open) {
  ++credit;
  // Kept while few and far below the limit (a shared read, no write); a
  // limit under 512 has batches of one, and is never held back.
  const uint32_t batch = creditBatch(max);
  if (batch > 1 && credit <= batch && count_.load(std::memory_order_relaxed) + batch <= max / 2) {
    return;
  }
  returnCredit(max, credit, shard, open);
}

void BreakerResource::returnCredit(uint32_t max, uint32_t& credit, stats::Shard& shard,
                                   stats::StatId open) {
  if (credit == 0) return;
  const uint32_t n = credit;
  credit = 0;
  const uint32_t before = count_.fetch_sub(n, std::memory_order_relaxed);
  if (max > 0 && before >= max && before - n < max) shard.add(open, -1);
}

std::optional<asio::ip::tcp::endpoint> parseOriginalDstHost(std::string_view value) {
  std::string_view ip, port;
  if (!value.empty() && value.front() == '[') {
    const size_t close = value.find(']');
    if (close == std::string_view::npos || close + 1 >= value.size() || value[close + 1] != ':') {
      return std::nullopt;
    }
    ip = value.substr(1, close - 1);
    port = value.substr(close + 2);
  } else {
    const size_t colon = value.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    ip = value.substr(0, colon);
    port = value.substr(colon + 1);
    if (ip.find(':') != std::string_view::npos) return std::nullopt;  // v6 needs brackets
  }
  if (port.empty() || port.size() > 5) return std::nullopt;
  uint32_t p = 0;
  for (char c : port) {
    if (c < '0' || c > '9') return std::nullopt;
    p = p * 10 + static_cast<uint32_t>(c - '0');
  }
  if (p > 65535) return std::nullopt;
  boost::system::error_code ec;
  const bool bracketed = !value.empty() && value.front() == '[';
  asio::ip::address addr;
  if (bracketed) {
    addr = asio::ip::make_address_v6(std::string(ip), ec);
  } else {
    addr = asio::ip::make_address_v4(std::string(ip), ec);
  }
  if (ec) return std::nullopt;
  return asio::ip::tcp::endpoint(addr, static_cast<uint16_t>(p));
}

bool isListenerAddress(const asio::ip::tcp::endpoint& bound, const asio::ip::tcp::endpoint& dst) {
  if (dst.port() != bound.port()) return false;
  if (bound.address().is_unspecified()) return true;
  auto v4 = [](asio::ip::address a) {
    if (a.is_v6() && a.to_v6().is_v4_mapped()) {
      return asio::ip::address(asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6()));
    }
    return a;
  };
  return v4(dst.address()) == v4(bound.address());
}

PendingRequest::~PendingRequest() {
  if (host_ != nullptr) {
    (prev_ != nullptr ? prev_->next_ : host_->pending_head) = next_;
    (next_ != nullptr ? next_->prev_ : host_->pending_tail) = prev_;
  }
}

UpstreamConnection::~UpstreamConnection() {
  leaveSharedOut(false);
  if (watch) watch->conn = nullptr;
  if (idle_list != nullptr) idle_list->remove(*this);
}

void IdleConnections::add(UpstreamConnection& c, WorkerCluster& owner, HostState& host,
                          std::chrono::milliseconds idle_timeout) {
  if (c.idle_list != nullptr) c.idle_list->remove(c);
  c.idle_list = this;
  c.idle_owner = &owner;
  c.idle_host = &host;
  c.idle_since = std::chrono::steady_clock::now();
  if (slots_.size() >= 2 * size_ + 64) compact();
  c.idle_slot = slots_.size();
  slots_.push_back(&c);
  ++size_;
  added_since_tick_ = true;
  if (idle_timeout.count() > 0 && idle_timeout < period_) {
    period_ = std::max(idle_timeout, std::chrono::milliseconds(1));
  }
  if (!timer_running_) startTimer(c.stream.get_executor());
}

void IdleConnections::remove(UpstreamConnection& c) {
  if (c.idle_list != this) return;
  slots_[c.idle_slot] = nullptr;
  while (!slots_.empty() && slots_.back() == nullptr) slots_.pop_back();
  c.idle_list = nullptr;
  c.idle_owner = nullptr;
  c.idle_host = nullptr;
  --size_;
  if (c.watching) {
    // The pending wait completes with operation_aborted; the new generation
    // also voids a completion that was already queued.
    c.watching = false;
    ++c.watch->generation;
    boost::system::error_code ec;
    c.stream.socket().cancel(ec);
  }
}

void IdleConnections::watch(UpstreamConnection& c) {
  if (!c.watch) c.watch = std::make_shared<IdleWatch>(IdleWatch{&c, 0});
  const uint64_t generation = ++c.watch->generation;
  c.watching = true;
  c.stream.socket().async_wait(
      asio::socket_base::wait_read,
      [w = c.watch, generation](const boost::system::error_code& ec) {
        UpstreamConnection* conn = w->conn;
        if (conn == nullptr || w->generation != generation) return;
        conn->watching = false;
        if (ec == asio::error::operation_aborted) return;
        // Readable while idle: the peer closed it, reset it, or sent bytes
        // nobody asked for. Either way it cannot carry a request.
        if (conn->idle_owner != nullptr && conn->idle_host != nullptr) {
          conn->idle_owner->closeIdle(*conn->idle_host, *conn, true);
        }
      });
}

void IdleConnections::sweep(std::chrono::steady_clock::time_point now) {
  // Closing a connection empties its slot and may drop the ones at the
  // end: the bound is read again each time.
  for (size_t i = 0; i < slots_.size(); ++i) {
    UpstreamConnection* c = slots_[i];
    if (c == nullptr) continue;
    const std::chrono::milliseconds timeout = c->idle_owner->idleTimeout();
    if (timeout.count() > 0 && now - c->idle_since >= timeout) {
      c->idle_owner->closeIdle(*c->idle_host, *c, false);
    } else if (!c->watching && c->stream.socket().is_open()) {
      watch(*c);
    }
  }
  compact();
}

void IdleConnections::compact() {
  size_t n = 0;
  for (UpstreamConnection* c : slots_) {
    if (c == nullptr) continue;
    c->idle_slot = n;
    slots_[n++] = c;
  }
  slots_.resize(n);
  if (slots_.capacity() > 2 * n + 64) slots_.shrink_to_fit();
}

void IdleConnections::startTimer(const Executor& ex) {
  if (!timer_) timer_.emplace(ex);
  timer_running_ = true;
  added_since_tick_ = false;
  timer_->expires_after(period_);
  timer_->async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
    if (ec) return;
    if (std::shared_ptr<IdleConnections> self = weak.lock()) self->onTick();
  });
}

void IdleConnections::onTick() {
  timer_running_ = false;
  sweep(std::chrono::steady_clock::now());
  if (size_ > 0 || added_since_tick_) startTimer(timer_->get_executor());
}

WorkerCluster::WorkerCluster(const ClusterRuntime& runtime, HostSetConstSharedPtr hosts,
                             std::shared_ptr<ClusterResources> resources, stats::Shard& shard,
                             size_t worker_index, IdleConnectionsSharedPtr idle)
    : runtime_(&runtime),
      host_set_(std::move(hosts)),
      idle_(std::move(idle)),
      resources_(std::move(resources)),
      shard_(&shard) {
  if (runtime.tls) tls_sessions_ = std::make_shared<tls::ClientSessionCache>();
  for (const auto& t : runtime.config->circuit_breakers) {
    if (t.priority == config::CircuitBreakerThresholds::Priority::Default) thresholds_ = t;
  }
  hosts_.reserve(host_set_->hosts.size());
  for (const auto& h : host_set_->hosts) {
    HostState s;
    s.description = &h;
    s.index = hosts_.size();
    boost::system::error_code ec;
    auto ip = asio::ip::make_address(h.ip, ec);
    if (!ec) s.endpoint = asio::ip::tcp::endpoint(ip, h.port);
    if (h.state->outlier) s.outlier = &h.state->outlier->worker(worker_index);
    hosts_.push_back(std::move(s));
    if (h.weight != 1) weighted_ = true;
  }
  wrr_current_.assign(hosts_.size(), 0);
  using Lb = config::ClusterConfig::LbPolicy;
  if (runtime.config->lb_policy == Lb::RingHash) {
    uint64_t total_weight = 0;
    for (const auto& h : hosts_) total_weight += h.description->weight;
    if (total_weight > 0) {
      for (uint32_t i = 0; i < hosts_.size(); ++i) {
        const auto& d = *hosts_[i].description;
        const size_t replicas =
            std::max<size_t>(1, (kMinRingSize * d.weight + total_weight - 1) / total_weight);
        for (size_t r = 0; r < replicas; ++r) {
          ring_.emplace_back(hashString(absl::StrCat(d.address, "_", r)), i);
        }
      }
      std::sort(ring_.begin(), ring_.end());
    }
  }
}

WorkerCluster::~WorkerCluster() {
  if (alive_) *alive_ = nullptr;
  resources_->requests.returnCredit(thresholds_.max_requests, request_credit_, *shard_,
                                    runtime_->stats.breakers_default().rq_open);
  for (auto& [key, h] : original_dst_hosts_) dropOriginalDstHost(*h);
  original_dst_hosts_.clear();
  for (auto& h : hosts_) {
    while (!h.idle.empty()) {
      UpstreamConnectionPtr c = std::move(h.idle.back());
      h.idle.pop_back();
      destroy(h, std::move(c));
    }
  }
}

GrpcMethodStatsSharedPtr WorkerCluster::grpcMethodStats(std::string_view protocol,
                                                        std::string_view method,
                                                        stats::Store& store, Mailbox& worker) {
  // "<protocol>.<service>.<method>", built on the stack: a lookup allocates
  // nothing.
  std::array<char, 16 + sizeof(GrpcStatsFilterConfig::MethodNameBuffer)> buffer;
  if (protocol.size() + 1 + method.size() > buffer.size()) return nullptr;
  std::copy(protocol.begin(), protocol.end(), buffer.begin());
  buffer[protocol.size()] = '.';
  std::copy(method.begin(), method.end(), buffer.begin() + protocol.size() + 1);
  const absl::string_view key(buffer.data(), protocol.size() + 1 + method.size());
  if (auto it = grpc_methods_.find(key); it != grpc_methods_.end()) return it->second;
  if (grpc_methods_.size() >= kMaxGrpcMethods) return nullptr;
  const config::ClusterConfig& c = *runtime_->config;
  std::string prefix = stats::clusterStatPrefix(c.name, c.alt_stat_name);
  prefix.append(key.data(), key.size()).append(1, '.');
  GrpcMethodStatsSharedPtr entry = requestGrpcMethodStats(store, worker, std::move(prefix));
  grpc_methods_.emplace(std::string(key.data(), key.size()), entry);
  return entry;
}

void WorkerCluster::succeed(WorkerCluster& old, const std::shared_ptr<WorkerCluster>& self) {
  if (old.runtime_->stats.scope() == runtime_->stats.scope()) {
    grpc_methods_ = std::move(old.grpc_methods_);
  }
  if (old.runtime_->tls != runtime_->tls) {
    // Another transport: its connections (and sessions) are not this config's.
    old.retire();
    if (old.ejections_) updateEjections(old.ejections_);
    return;
  }
  if (old.tls_sessions_) tls_sessions_ = old.tls_sessions_;
  for (auto& oh : old.hosts_) {
    HostState* h = oh.idle.empty() ? nullptr : find(*oh.description);
    if (h == nullptr) continue;
    const auto moved = static_cast<uint32_t>(oh.idle.size());
    for (auto& c : oh.idle) {
      c->idle_owner = this;
      c->idle_host = h;
      h->idle.push_back(std::move(c));
    }
    oh.idle.clear();
    h->cx_active += moved;
    oh.cx_active -= moved;
  }
  old.retired_ = true;
  old.successor_ = self;
  if (old.ejections_) updateEjections(old.ejections_);
}

void WorkerCluster::retire() {
  retired_ = true;
  successor_.reset();
  auto closeIdle = [this](HostState& h) {
    while (!h.idle.empty()) {
      UpstreamConnectionPtr c = std::move(h.idle.back());
      h.idle.pop_back();
      destroy(h, std::move(c));
    }
  };
  for (auto& h : hosts_) closeIdle(h);
  for (auto& [key, h] : original_dst_hosts_) closeIdle(h->state);
}

HostState* WorkerCluster::find(const HostDescription& d) {
  for (auto& h : hosts_) {
    if (h.description->state == d.state) return &h;
  }
  for (auto& h : hosts_) {
    if (h.description->address == d.address) return &h;
  }
  return nullptr;
}

bool WorkerCluster::failedActiveHealthCheck(const HostState& host) const {
  return host.description->state->failed_active_hc.load(std::memory_order_relaxed);
}

void WorkerCluster::recordOutcome(HostState& host, bool failure) {
  if (host.outlier == nullptr) return;
  host.outlier->record(!failure);
  const OutlierHostMonitorSharedPtr& monitor = host.description->state->outlier;
  if (monitor->recordConsecutive(failure)) OutlierHostMonitor::notifyConsecutive5xx(monitor);
}

void WorkerCluster::updateEjections(OutlierEjectionsConstSharedPtr ejections) {
  ejections_ = std::move(ejections);
  for (auto& h : hosts_) {
    h.ejected = ejections_ != nullptr && ejections_->contains(h.description->state.get());
  }
}

ConnPool& WorkerCluster::connPool(HostState& host, bool downstream_http2) {
  using Protocol = config::ClusterConfig::UpstreamProtocol;
  const Protocol protocol = config().upstream_protocol;
  if (!host.pool) {
    if (protocol == Protocol::Http2) {
      host.pool = std::make_unique<Http2ConnPool>(*this, host);
    } else if (protocol == Protocol::Auto && runtime().tls) {
      host.pool = std::make_unique<AutoConnPool>(*this, host);
    } else if (protocol == Protocol::UseDownstream) {
      host.pool = std::make_unique<DownstreamProtocolConnPool>(*this, host);
    } else {  // HTTP/1.1, and auto_config without TLS (Envoy's rule)
      host.pool = std::make_unique<Http1ConnPool>(*this, host);
    }
  }
  if (protocol == Protocol::UseDownstream) {
    return static_cast<DownstreamProtocolConnPool&>(*host.pool).side(downstream_http2);
  }
  return *host.pool;
}

std::chrono::milliseconds WorkerCluster::idleTimeout() const {
  return runtime_->config->upstream_idle_timeout;
}

HostState* WorkerCluster::chooseHost(const LoadBalancerContext& ctx) {
  if (runtime_->config->type == config::ClusterConfig::Type::OriginalDst) {
    return chooseOriginalDst(ctx);
  }
  // The lowest priority level with a healthy host (no overprovisioning spill).
  // Ejected hosts count as unhealthy, unless fewer than half of the level's
  // hosts would be left (Envoy's 50 % panic threshold: then use them all).
  scratch_.clear();
  auto healthy = [this](const HostState& h) {
    return h.description->healthy && !failedActiveHealthCheck(h);
  };
  uint32_t best_priority = UINT32_MAX;
  for (auto& h : hosts_) {
    if (!healthy(h)) continue;
    best_priority = std::min(best_priority, h.description->priority);
  }
  if (best_priority == UINT32_MAX) return nullptr;
  size_t level = 0;
  for (auto& h : hosts_) {
    if (healthy(h) && h.description->priority == best_priority) {
      ++level;
      if (!h.ejected) scratch_.push_back(&h);
    }
  }
  if (scratch_.size() * 2 < level) {
    scratch_.clear();
    for (auto& h : hosts_) {
      if (healthy(h) && h.description->priority == best_priority) scratch_.push_back(&h);
    }
  }
  // A retry prefers another host when there is one (previous_hosts).
  if (ctx.avoid != nullptr && scratch_.size() > 1) {
    scratch_.erase(std::remove(scratch_.begin(), scratch_.end(), ctx.avoid), scratch_.end());
  }
  using Lb = config::ClusterConfig::LbPolicy;
  switch (runtime_->config->lb_policy) {
    case Lb::LeastRequest: return leastRequest(scratch_, ctx.random);
    case Lb::Random: return scratch_[ctx.random % scratch_.size()];
    case Lb::RingHash:
      if (ctx.hash) return ringHash(scratch_, *ctx.hash);
      return scratch_[ctx.random % scratch_.size()];
    case Lb::Maglev:
      if (ctx.hash) return maglev(scratch_, *ctx.hash);
      return scratch_[ctx.random % scratch_.size()];
    default: return roundRobin(scratch_);
  }
}

HostState* WorkerCluster::roundRobin(std::vector<HostState*>& candidates) {
  if (!weighted_) return candidates[rr_next_++ % candidates.size()];
  // Smooth weighted round robin over the candidates.
  int64_t total = 0;
  HostState* best = nullptr;
  int64_t best_weight = 0;
  for (HostState* h : candidates) {
    const size_t i = static_cast<size_t>(h - hosts_.data());
    wrr_current_[i] += h->description->weight;
    total += h->description->weight;
    if (best == nullptr || wrr_current_[i] > best_weight) {
      best = h;
      best_weight = wrr_current_[i];
    }
  }
  wrr_current_[static_cast<size_t>(best - hosts_.data())] -= total;
  return best;
}

HostState* WorkerCluster::leastRequest(std::vector<HostState*>& candidates, uint64_t random) {
  // Envoy's default: power of two choices.
  if (candidates.size() == 1) return candidates[0];
  HostState* a = candidates[random % candidates.size()];
  HostState* b = candidates[mix(random) % candidates.size()];
  return b->active_requests < a->active_requests ? b : a;
}

HostState* WorkerCluster::ringHash(std::vector<HostState*>& candidates, uint64_t hash) {
  if (ring_.empty()) return candidates[hash % candidates.size()];
  const uint64_t point = mix(hash);
  auto it = std::lower_bound(ring_.begin(), ring_.end(), std::make_pair(point, uint32_t{0}));
  // Walk clockwise to the first host that is a candidate.
  for (size_t step = 0; step < ring_.size(); ++step, ++it) {
    if (it == ring_.end()) it = ring_.begin();
    HostState* h = &hosts_[it->second];
    if (std::find(candidates.begin(), candidates.end(), h) != candidates.end()) return h;
  }
  return candidates[0];
}

HostState* WorkerCluster::maglev(std::vector<HostState*>& candidates, uint64_t hash) {
  const MaglevLevel* level = host_set_->maglevLevel(candidates.front()->description->priority);
  if (level == nullptr || level->table.empty()) return candidates[hash % candidates.size()];
  // Usually every host of the level is a candidate and the table decides.
  // Otherwise (unhealthy, ejected, or the host a retry avoids) the hash is
  // mixed again, as Envoy does for a retry's next attempt, until it lands on a
  // candidate: only the keys of the missing hosts move.
  const bool all = candidates.size() == level->members.size();
  for (uint32_t attempt = 0; attempt < kMaglevAttempts; ++attempt) {
    HostState* h = &hosts_[level->members[level->table.pick(hash, attempt)]];
    if (all || std::find(candidates.begin(), candidates.end(), h) != candidates.end()) return h;
  }
  return candidates[hash % candidates.size()];
}

HostState* WorkerCluster::chooseOriginalDst(const LoadBalancerContext& ctx) {
  static const config::OriginalDstConfig kDefaults;
  const config::OriginalDstConfig& c =
      runtime_->config->original_dst ? *runtime_->config->original_dst : kDefaults;
  const auto& stats = runtime_->stats;
  std::optional<asio::ip::tcp::endpoint> dst;
  if (c.use_http_header && ctx.request_headers != nullptr) {
    // Only the first value counts (the header is untrusted).
    const std::string_view value = ctx.request_headers->get(c.http_header);
    if (value.data() != nullptr) {
      dst = parseOriginalDstHost(value);
      if (!dst) shard_->inc(stats.original_dst_host_invalid());
    }
  }
  if (!dst && ctx.downstream_local != nullptr) dst = *ctx.downstream_local;
  if (!dst) return nullptr;
  if (c.port_override) dst->port(static_cast<uint16_t>(*c.port_override));
  if (ctx.listener_address != nullptr && isListenerAddress(*ctx.listener_address, *dst)) {
    // No original destination (the connection was not redirected), or one
    // that leads back into this listener: connecting would loop.
    shard_->inc(stats.original_dst_loop_refused());
    return nullptr;
  }
  OriginalDstKey key;
  key.port = dst->port();
  if (dst->address().is_v4()) {
    const auto b = dst->address().to_v4().to_bytes();
    std::copy(b.begin(), b.end(), key.bytes.begin());
  } else {
    key.v6 = true;
    const auto b = dst->address().to_v6().to_bytes();
    std::copy(b.begin(), b.end(), key.bytes.begin());
  }
  const auto now = std::chrono::steady_clock::now();
  if (now - original_dst_cleaned_ >= c.cleanup_interval) {
    cleanupOriginalDstHosts(now);  // also without the timer: an update, a test
  }
  if (auto it = original_dst_hosts_.find(key); it != original_dst_hosts_.end()) {
    it->second->used = true;
    return &it->second->state;
  }
  if (original_dst_hosts_.size() >= kMaxOriginalDstHosts) {
    // Drop every host nothing uses, recent or not, before refusing.
    for (auto& [k, h] : original_dst_hosts_) h->used = false;
    cleanupOriginalDstHosts(now);
    if (original_dst_hosts_.size() >= kMaxOriginalDstHosts) {
      shard_->inc(stats.original_dst_host_overflow());
      return nullptr;
    }
  }
  auto h = std::make_unique<OriginalDstHost>();
  h->description.ip = dst->address().to_string();
  h->description.port = dst->port();
  h->description.address = hostPort(h->description.ip, dst->port());
  h->state.description = &h->description;
  h->state.endpoint = *dst;
  HostState* out = &h->state;
  original_dst_hosts_.emplace(key, std::move(h));
  return out;
}

std::chrono::milliseconds WorkerCluster::originalDstCleanupInterval() const {
  const auto& od = runtime_->config->original_dst;
  return od ? od->cleanup_interval : config::OriginalDstConfig{}.cleanup_interval;
}

void WorkerCluster::dropOriginalDstHost(OriginalDstHost& h) {
  HostState& host = h.state;
  while (!host.idle.empty()) {
    UpstreamConnectionPtr conn = std::move(host.idle.back());
    host.idle.pop_back();
    destroy(host, std::move(conn));
  }
  host.pool.reset();
}

void WorkerCluster::cleanupOriginalDstHosts(std::chrono::steady_clock::time_point now) {
  original_dst_cleaned_ = now;
  for (auto it = original_dst_hosts_.begin(); it != original_dst_hosts_.end();) {
    OriginalDstHost& h = *it->second;
    const HostState& host = h.state;
    const bool busy = host.pending_head != nullptr || host.active_requests > 0 ||
                      host.cx_active > host.idle.size();
    if (h.used || busy) {
      h.used = false;
      ++it;
      continue;
    }
    dropOriginalDstHost(h);
    original_dst_hosts_.erase(it++);
  }
}

void WorkerCluster::startOriginalDstCleanup(const Executor& ex) {
  if (runtime_->config->type != config::ClusterConfig::Type::OriginalDst || original_dst_timer_) {
    return;
  }
  original_dst_timer_.emplace(ex);
  alive_ = std::make_shared<WorkerCluster*>(this);
  struct Tick {
    std::shared_ptr<WorkerCluster*> alive;
    void operator()(const boost::system::error_code& ec) const {
      WorkerCluster* self = *alive;
      if (ec || self == nullptr) return;
      self->cleanupOriginalDstHosts(std::chrono::steady_clock::now());
      self->original_dst_timer_->expires_after(self->originalDstCleanupInterval());
      self->original_dst_timer_->async_wait(Tick{alive});
    }
  };
  original_dst_timer_->expires_after(originalDstCleanupInterval());
  original_dst_timer_->async_wait(Tick{alive_});
}

Awaitable<WorkerCluster::TcpConnectResult> WorkerCluster::connectTcp(Executor ex, HostState* host) {
  TcpConnectResult r;
  // Envoy's TCP proxy checks the breaker before asking the pool, which would
  // otherwise queue the connection for one that is never released.
  if (!resources_->connections.canCreate(thresholds_.max_connections)) {
    shard_->inc(runtime_->stats.upstream_cx_overflow());
    r.status = TcpConnectResult::Status::Overflow;
    co_return r;
  }
  ConnectResult c = co_await connect(ex, host, runtime_->config->connect_timeout, /*http1=*/false);
  if (!c.conn) {
    r.status = TcpConnectResult::Status::ConnectFailure;
    r.timed_out = c.timed_out;
    co_return r;
  }
  r.conn = std::move(c.conn);
  co_return r;
}

void WorkerCluster::closeTcp(HostState& host, UpstreamConnectionPtr conn) {
  destroy(host, std::move(conn));
}

Awaitable<WorkerCluster::ConnectResult> WorkerCluster::connect(Executor ex, HostState* host,
                                                               std::chrono::milliseconds timeout,
                                                               bool http1) {
  const auto& stats = runtime_->stats;
  ConnectResult r;
  r.conn = std::make_unique<UpstreamConnection>(ex);
  resources_->connections.inc(thresholds_.max_connections, *shard_,
                              stats.breakers_default().cx_open);
  ++host->cx_active;
  shard_->inc(stats.upstream_cx_total());
  if (http1) shard_->inc(stats.upstream_cx_http1_total());
  shard_->add(stats.upstream_cx_active(), 1);
  startOriginalDstCleanup(ex);
  r.conn->stream.expires_after(std::min(runtime_->config->connect_timeout, timeout));
  boost::system::error_code ec =
      bindSourceAddress(r.conn->stream.socket(), *runtime_->config, host->endpoint);
  if (!ec) {
    co_await r.conn->stream.async_connect(host->endpoint, asio::redirect_error(use_awaitable, ec));
  }
  if (ec) {
    r.timed_out = ec == beast::error::timeout;
    shard_->inc(r.timed_out ? stats.upstream_cx_connect_timeout()
                            : stats.upstream_cx_connect_fail());
    destroy(*host, std::move(r.conn));
    r.conn = nullptr;
    co_return r;
  }
  r.conn->stream.socket().set_option(asio::ip::tcp::no_delay(true), ec);
  enableInq(r.conn->stream.socket());  // see proxy/common/inq_read.h
  if (runtime_->tls) {
    // The handshake is part of the connect (Envoy: a TLS failure is a
    // connect failure), within what is left of the same timeout.
    r.conn->tls_sessions = tls_sessions_;
    r.conn->tls = makeUpstreamTransport(*runtime_, host->endpoint, {}, tls_sessions_.get());
    if (r.conn->tls) {
      ec = co_await runTlsHandshake(r.conn->stream, *r.conn->tls, runtime_->ssl_stats.toOptional(),
                                    *shard_);
    } else {
      ec = asio::error::invalid_argument;
    }
    if (ec) {
      r.timed_out = ec == beast::error::timeout;
      shard_->inc(r.timed_out ? stats.upstream_cx_connect_timeout()
                              : stats.upstream_cx_connect_fail());
      destroy(*host, std::move(r.conn));
      r.conn = nullptr;
      co_return r;
    }
  }
  co_return r;
}

Awaitable<WorkerCluster::AcquireResult> WorkerCluster::acquire(
    HostState* host, PendingRequest* pending, std::chrono::steady_clock::time_point deadline) {
  using Status = AcquireResult::Status;
  using Wake = PendingRequest::Wake;
  const auto& stats = runtime_->stats;
  AcquireResult r;
  if ((r.conn = takeIdle(*host))) co_return r;

  // A pending request from here on (Envoy's newPendingRequest).
  if (!resources_->pending.tryInc(thresholds_.max_pending_requests, *shard_,
                                  stats.breakers_default().rq_pending_open)) {
    shard_->inc(stats.upstream_rq_pending_overflow());
    r.status = Status::Overflow;
    co_return r;
  }
  shard_->inc(stats.upstream_rq_pending_total());
  shard_->add(stats.upstream_rq_pending_active(), 1);
  bool requeue_at_front = false;
  for (;;) {
    if (pending->cancelled_) {
      r.status = Status::Cancelled;
      break;
    }
    const bool can_create = resources_->connections.canCreate(thresholds_.max_connections);
    if (!can_create) shard_->inc(stats.upstream_cx_overflow());
    if (can_create || host->cx_active == 0) {
      ConnectResult c = co_await connect(pending->timer_.get_executor(), host, until(deadline));
      if (!c.conn) {
        wakeAll(*host, Wake::ConnectFailure);
        r.status = Status::ConnectFailure;
        r.connect_timed_out = c.timed_out;
        break;
      }
      if (pending->cancelled_) {
        release(*host, std::move(c.conn), true);
        r.status = Status::Cancelled;
        break;
      }
      r.conn = std::move(c.conn);
      break;
    }
    enqueue(*host, *pending, requeue_at_front);
    pending->timer_.expires_at(deadline);
    while (pending->wake_ == Wake::None && !pending->cancelled_ &&
           std::chrono::steady_clock::now() < deadline) {
      boost::system::error_code ec;
      co_await pending->timer_.async_wait(asio::redirect_error(use_awaitable, ec));
    }
    dequeue(*pending);
    const Wake why = std::exchange(pending->wake_, Wake::None);
    if (pending->cancelled_) {
      if (pending->conn_) release(*host, std::move(pending->conn_), true);
      r.status = Status::Cancelled;
      break;
    }
    if (why == Wake::Connection) {
      r.conn = std::move(pending->conn_);
      break;
    }
    if (why == Wake::ConnectFailure) {
      shard_->inc(stats.upstream_rq_pending_failure_eject());
      r.status = Status::ConnectFailure;
      break;
    }
    if (why == Wake::None) {
      r.status = Status::Timeout;
      break;
    }
    requeue_at_front = true;  // Wake::Slot: a connection closed, try to connect
  }
  if (r.status == Status::Cancelled || r.status == Status::Timeout) {
    shard_->inc(stats.upstream_rq_cancelled());
  }
  resources_->pending.dec(thresholds_.max_pending_requests, *shard_,
                          stats.breakers_default().rq_pending_open);
  shard_->sub(stats.upstream_rq_pending_active(), 1);
  co_return r;
}

void WorkerCluster::enqueue(HostState& host, PendingRequest& pending, bool at_front) {
  pending.host_ = &host;
  if (at_front) {
    pending.prev_ = nullptr;
    pending.next_ = host.pending_head;
    (host.pending_head != nullptr ? host.pending_head->prev_ : host.pending_tail) = &pending;
    host.pending_head = &pending;
  } else {
    pending.next_ = nullptr;
    pending.prev_ = host.pending_tail;
    (host.pending_tail != nullptr ? host.pending_tail->next_ : host.pending_head) = &pending;
    host.pending_tail = &pending;
  }
}

void WorkerCluster::dequeue(PendingRequest& pending) {
  HostState* host = pending.host_;
  if (host == nullptr) return;
  (pending.prev_ != nullptr ? pending.prev_->next_ : host->pending_head) = pending.next_;
  (pending.next_ != nullptr ? pending.next_->prev_ : host->pending_tail) = pending.prev_;
  pending.host_ = nullptr;
  pending.prev_ = pending.next_ = nullptr;
}

void WorkerCluster::wakeAll(HostState& host, PendingRequest::Wake why) {
  while (PendingRequest* p = host.pending_head) {
    dequeue(*p);
    p->wake(why);
  }
}

UpstreamConnectionPtr WorkerCluster::takeIdle(HostState& host) {
  while (!host.idle.empty()) {
    UpstreamConnectionPtr c = std::move(host.idle.back());
    host.idle.pop_back();
    if (c->idle_list != nullptr) c->idle_list->remove(*c);
    if (c->stream.socket().is_open()) {
      c->from_pool = true;
      return c;
    }
    destroy(host, std::move(c));
  }
  return nullptr;
}

void WorkerCluster::release(HostState& host, UpstreamConnectionPtr conn, bool reusable) {
  const uint32_t max_requests = runtime_->config->max_requests_per_connection;
  if (reusable && max_requests > 0 && conn->requests >= max_requests) {
    shard_->inc(runtime_->stats.upstream_cx_max_requests());
    reusable = false;
  }
  if (reusable && conn->stream.socket().is_open() && conn->read_buffer.size() == 0) {
    if (PendingRequest* p = host.pending_head) {
      dequeue(*p);
      conn->from_pool = true;
      p->conn_ = std::move(conn);
      p->wake(PendingRequest::Wake::Connection);
      return;
    }
    if (retired_) {
      // A newer host set took over: the connection goes to the same host there.
      std::shared_ptr<WorkerCluster> next = successor_.lock();
      if (HostState* h = next ? next->find(*host.description) : nullptr) {
        --host.cx_active;
        ++h->cx_active;
        next->release(*h, std::move(conn), true);
        return;
      }
      destroy(host, std::move(conn));
      return;
    }
    conn->from_pool = false;
    if (idle_) idle_->add(*conn, *this, host, idleTimeout());
    host.idle.push_back(std::move(conn));
    return;
  }
  destroy(host, std::move(conn));
  if (PendingRequest* p = host.pending_head) {
    dequeue(*p);
    p->wake(PendingRequest::Wake::Slot);
  }
}

void WorkerCluster::closeIdle(HostState& host, UpstreamConnection& conn, bool remote) {
  auto it = std::find_if(host.idle.begin(), host.idle.end(),
                         [&](const UpstreamConnectionPtr& c) { return c.get() == &conn; });
  if (it == host.idle.end()) return;
  UpstreamConnectionPtr c = std::move(*it);
  host.idle.erase(it);
  shard_->inc(remote ? runtime_->stats.upstream_cx_destroy_remote()
                     : runtime_->stats.upstream_cx_idle_timeout());
  destroy(host, std::move(c));
  if (PendingRequest* p = host.pending_head) {
    dequeue(*p);
    p->wake(PendingRequest::Wake::Slot);
  }
}

void WorkerCluster::destroy(HostState& host, UpstreamConnectionPtr conn) {
  if (conn->idle_list != nullptr) conn->idle_list->remove(*conn);
  boost::system::error_code ec;
  conn->stream.socket().shutdown(TcpSocket::shutdown_both, ec);
  conn->stream.socket().close(ec);
  --host.cx_active;
  resources_->connections.dec(thresholds_.max_connections, *shard_,
                              runtime_->stats.breakers_default().cx_open);
  shard_->sub(runtime_->stats.upstream_cx_active(), 1);
  shard_->inc(runtime_->stats.upstream_cx_destroy());
}

bool WorkerCluster::tryStartRequest() {
  return resources_->requests.tryAcquire(thresholds_.max_requests, request_credit_, *shard_,
                                         runtime_->stats.breakers_default().rq_open);
}

void WorkerCluster::endRequest() {
  resources_->requests.release(thresholds_.max_requests, request_credit_, *shard_,
                               runtime_->stats.breakers_default().rq_open);
}

void WorkerCluster::startRetry() {
  resources_->retries.inc(thresholds_.max_retries, *shard_,
                          runtime_->stats.breakers_default().rq_retry_open);
}

void WorkerCluster::endRetry() {
  resources_->retries.dec(thresholds_.max_retries, *shard_,
                          runtime_->stats.breakers_default().rq_retry_open);
}

ClusterManager::ClusterManager(size_t worker_index)
    : worker_index_(worker_index), idle_(std::make_shared<IdleConnections>()) {}

ClusterManager::UpdateResult ClusterManager::update(
    const DataPlaneConfigConstSharedPtr& config,
    const absl::flat_hash_map<std::string, std::shared_ptr<ClusterResources>>& resources,
    stats::Shard& shard) {
  shard_ = &shard;
  UpdateResult r;
  // In place: an unchanged cluster (the same runtime object) keeps its
  // entries as they are, and only the shards this generation changed are
  // looked at (cluster_map.h): a route-only generation, or one new cluster
  // of 20,000, looks at a few hundred (rebuilding the maps at each
  // generation was most of a worker's update at 20,000 clusters).
  r.reused = config->clusters.diff(
      config_ != nullptr ? &config_->clusters : nullptr,
      [&](const std::string& name, const ClusterRuntimeConstSharedPtr* prev,
          const ClusterRuntimeConstSharedPtr& rt) {
        auto res = resources.find(name);
        // What was kept for the runtime it replaces goes.
        if (prev != nullptr) {
          deferred_resources_.erase(prev->get());
          deferred_.erase(prev->get());
        }
        if (auto old = by_name_.find(name); old != by_name_.end()) {
          // Changed, and used here: the successor takes over its idle
          // connections now.
          auto wc = std::make_shared<WorkerCluster>(
              *rt, rt->hosts,
              res != resources.end() ? res->second : std::make_shared<ClusterResources>(), shard,
              worker_index_, idle_);
          wc->keepAlive(rt);
          wc->succeed(*old->second, wc);
          old->second = std::move(wc);
          ++r.created;
          return;
        }
        // New, or not used here yet: it starts from the posted breakers at
        // its first use.
        if (res != resources.end()) deferred_resources_.insert_or_assign(rt.get(), res->second);
        ++r.deferred;
      },
      [&](const std::string& name, const ClusterRuntimeConstSharedPtr& rt) {
        ++r.removed;
        if (auto it = by_name_.find(name); it != by_name_.end()) {
          it->second->retire();
          by_name_.erase(it);
        }
        deferred_resources_.erase(rt.get());
        deferred_.erase(rt.get());
      });
  config_ = config;
  return r;
}

bool ClusterManager::current(const ClusterRuntime& cluster) const {
  return config_ != nullptr && config_->findCluster(cluster.config->name) == &cluster;
}

void ClusterManager::updateHosts(const ClusterRuntime& cluster, HostSetConstSharedPtr hosts,
                                 stats::Shard& shard) {
  if (!current(cluster)) return;
  auto it = by_name_.find(cluster.config->name);
  if (it == by_name_.end()) {
    deferred_[&cluster].hosts = std::move(hosts);
    return;
  }
  std::shared_ptr<WorkerCluster> old = it->second;
  auto wc = std::make_shared<WorkerCluster>(cluster, std::move(hosts), old->sharedResources(),
                                            shard, worker_index_, idle_);
  wc->keepAlive(old->runtimeOwner());
  wc->succeed(*old, wc);
  it->second = std::move(wc);
}

void ClusterManager::updateEjections(const ClusterRuntime& cluster,
                                     OutlierEjectionsConstSharedPtr ejections) {
  if (!current(cluster)) return;
  auto it = by_name_.find(cluster.config->name);
  if (it == by_name_.end()) {
    deferred_[&cluster].ejections = std::move(ejections);
    return;
  }
  it->second->updateEjections(std::move(ejections));
}

std::shared_ptr<WorkerCluster> ClusterManager::get(std::string_view name) {
  const absl::string_view key(name.data(), name.size());
  if (auto it = by_name_.find(key); it != by_name_.end()) return it->second;
  if (config_ == nullptr) return nullptr;
  auto rt = config_->clusters.find(name);
  if (rt == config_->clusters.end()) return nullptr;
  const ClusterRuntime* runtime = rt->second.get();
  std::shared_ptr<ClusterResources> resources;
  if (auto r = deferred_resources_.find(runtime); r != deferred_resources_.end()) {
    resources = std::move(r->second);
    deferred_resources_.erase(r);
  } else {
    resources = std::make_shared<ClusterResources>();
  }
  Deferred state;
  if (auto d = deferred_.find(runtime); d != deferred_.end()) {
    state = std::move(d->second);
    deferred_.erase(d);
  }
  auto wc = std::make_shared<WorkerCluster>(*runtime, state.hosts ? state.hosts : runtime->hosts,
                                            std::move(resources), *shard_, worker_index_, idle_);
  wc->keepAlive(rt->second);
  if (state.ejections) wc->updateEjections(std::move(state.ejections));
  by_name_.emplace(rt->first, wc);
  return wc;
}

size_t ClusterManager::size() const { return config_ != nullptr ? config_->clusters.size() : 0; }

}  // namespace turnout::proxy
