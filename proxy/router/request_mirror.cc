#include "proxy/router/request_mirror.h"

#include <exception>
#include <memory>

#include "proxy/common/log.h"
#include "proxy/common/spawn.h"
#include "proxy/server/worker.h"
#include "proxy/router/upstream_request.h"
#include "proxy/upstream/cluster_manager.h"

namespace turnout::proxy {
namespace {

using std::chrono::milliseconds;

uint64_t denominatorOf(routing::FractionalPercent::DenominatorType d) {
  switch (d) {
    case routing::FractionalPercent::DenominatorType::HUNDRED: return 100;
    case routing::FractionalPercent::DenominatorType::TEN_THOUSAND: return 10000;
    case routing::FractionalPercent::DenominatorType::MILLION: return 1000000;
  }
  return 100;
}

// A mirror's copy of the request: a complete head and body, sent on an
// UpstreamRequest like the primary's; the response is read and dropped.
class MirrorRequest : public UpstreamRequestParent {
 public:
  MirrorRequest(RequestHead head, std::string body, milliseconds timeout)
      : head_(std::move(head)), body_(std::move(body)), timeout_(timeout) {}

  // UpstreamRequestParent
  void encodeRequestStart(UpstreamStream& stream) override {
    stream.encodeHeaders(head_, body_.empty());
    if (!body_.empty()) stream.encodeData(std::span<const char>(body_.data(), body_.size()), true);
  }
  bool requestComplete() const override { return true; }
  Awaitable<bool> encodeMoreRequest(UpstreamStream*) override { co_return false; }
  void stopRequestBody() override {}
  void onRequestSent() override {}
  bool downstreamFailed() const override { return false; }
  std::chrono::steady_clock::time_point routeDeadline() const override { return deadline_; }
  milliseconds streamIdle() const override { return milliseconds(0); }
  bool onUpstreamHeaders(ResponseHead&, bool) override { return false; }
  void onUpstreamData(std::span<const char>, bool) override {}
  void onUpstreamTrailers(HeaderMap&) override {}
  Awaitable<bool> flushResponse() override { co_return true; }
  bool tryFlushResponse() override { return true; }

  void startClock() { deadline_ = std::chrono::steady_clock::now() + timeout_; }
  std::chrono::steady_clock::time_point deadline() const { return deadline_; }

 private:
  RequestHead head_;
  std::string body_;
  milliseconds timeout_;
  std::chrono::steady_clock::time_point deadline_ = std::chrono::steady_clock::time_point::max();
};

Awaitable<void> mirrorOne(Worker* worker, std::shared_ptr<WorkerCluster> cluster, RequestHead head,
                          std::string body, milliseconds timeout) {
  stats::Shard& shard = worker->shard();
  const auto& stats = cluster->runtime().stats;
  LoadBalancerContext lb;
  lb.random = worker->random();
  HostState* host = cluster->chooseHost(lb);
  if (host == nullptr) co_return;
  MirrorRequest mirror(std::move(head), std::move(body), timeout);
  mirror.startClock();
  ConnPool& pool = cluster->connPool(*host);
  UpstreamStreamPtr stream = pool.tryNewStream();
  if (!stream) {
    PendingRequest pending(worker->io().get_executor());
    ConnPool::NewStreamResult r = co_await pool.newStream(&pending, mirror.deadline());
    stream = std::move(r.stream);
  }
  if (!stream) co_return;
  UpstreamRequest upstream(mirror, *cluster, *host, shard, std::move(stream), nullptr,
                           worker->io().get_executor(), worker->deadlines());
  if (!upstream.start()) co_return;
  const UpstreamRequest::Result r = co_await upstream.run();
  const bool complete = r.state == UpstreamRequest::State::Complete;
  if (complete) {
    shard.inc(stats.upstream_rq_completed());
    stats.countResponse(shard, r.status);
  } else if (r.timeout == UpstreamRequest::Timeout::Global) {
    shard.inc(stats.upstream_rq_timeout());
  }
  upstream.finish(complete && !r.eof);
}

}  // namespace

std::string shadowHost(std::string_view host) {
  const size_t colon = host.rfind(':');
  const size_t bracket = host.rfind(']');
  if (colon != std::string_view::npos && (bracket == std::string_view::npos || colon > bracket)) {
    return std::string(host.substr(0, colon)) + "-shadow" + std::string(host.substr(colon));
  }
  return std::string(host) + "-shadow";
}

void startRequestMirrors(Worker& worker, std::span<const routing::RequestMirrorPolicy> policies,
                         const RequestHead& head, std::string_view body, uint64_t random,
                         milliseconds timeout) {
  for (const auto& p : policies) {
    if (p.runtime_fraction) {
      const auto& f = p.runtime_fraction->default_value;
      if (random % denominatorOf(f.denominator) >= f.numerator) continue;
    }
    std::string name = p.cluster;
    if (name.empty() && !p.cluster_header.empty()) {
      std::string_view v = head.headers.get(p.cluster_header);
      if (v.data() == nullptr || v.empty()) continue;
      name.assign(v);
    }
    std::shared_ptr<WorkerCluster> cluster = worker.clusters().get(name);
    if (!cluster) continue;  // Envoy skips a mirror whose cluster is unknown
    RequestHead copy = head;
    if (!p.disable_shadow_host_suffix_append) copy.authority = shadowHost(head.authority);
    copy.expect_continue = false;
    copy.close_connection = false;
    asio::co_spawn(worker.io(),
                   mirrorOne(&worker, std::move(cluster), std::move(copy), std::string(body),
                             timeout),
                   LogEscapedException{"router", "request mirror"});
  }
}

}  // namespace turnout::proxy
