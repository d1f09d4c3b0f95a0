#include "proxy/router/request_mirror.h"

#include <exception>
#include <memory>

#include "proxy/common/log.h"
#include "proxy/common/spawn.h"
#include "proxy/server/worker.h"
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

// Swallows the mirror's response; only completion matters.
class DiscardResponse : public ResponseDecoderCallbacks {
 public:
  void onMessageBegin() override {}
  void onHeaders(ResponseHead& head, bool end_stream) override {
    status = head.status;
    if (end_stream) complete = true;
  }
  void onData(std::span<const char>, bool end_stream) override {
    if (end_stream) complete = true;
  }
  void onTrailers(HeaderMap&) override { complete = true; }
  void onMessageComplete() override { complete = true; }
  void onInformational(ResponseHead&) override {}
  uint32_t status = 0;
  bool complete = false;
};

asio::awaitable<void> mirrorOne(Worker* worker, std::shared_ptr<WorkerCluster> cluster,
                                RequestHead head, std::string body, milliseconds timeout) {
  stats::Shard& shard = worker->shard();
  const auto& stats = cluster->runtime().stats;
  LoadBalancerContext lb;
  lb.random = worker->random();
  HostState* host = cluster->chooseHost(lb);
  if (host == nullptr) co_return;
  PendingRequest pending(worker->io().get_executor());
  auto acquired =
      co_await cluster->acquire(host, &pending, std::chrono::steady_clock::now() + timeout);
  UpstreamConnectionPtr up = std::move(acquired.conn);
  if (!up) co_return;
  if (!cluster->tryStartRequest()) {
    shard.inc(stats.upstream_rq_pending_overflow);
    cluster->release(*host, std::move(up), true);
    co_return;
  }
  ++host->active_requests;
  shard.inc(stats.upstream_rq_total);
  shard.add(stats.upstream_rq_active, 1);
  DiscardResponse sink;
  up->forwarder.target = &sink;
  std::string out;
  up->codec.encodeHeaders(head, body.empty(), out);
  if (!body.empty()) up->codec.encodeData(std::span<const char>(body.data(), body.size()), true, out);
  boost::system::error_code ec;
  up->stream.expires_after(timeout);
  co_await asio::async_write(up->stream, asio::buffer(out),
                             asio::redirect_error(asio::use_awaitable, ec));
  bool ok = !ec;
  while (ok && !sink.complete) {
    auto data = up->read_buffer.data();
    if (data.size() > 0) {
      auto consumed = up->codec.decode(
          std::span<const char>(static_cast<const char*>(data.data()), data.size()));
      if (!consumed.ok()) break;
      up->read_buffer.consume(*consumed);
      if (sink.complete) break;
      if (*consumed > 0) continue;
    }
    size_t n = co_await up->stream.async_read_some(up->read_buffer.prepare(16 * 1024),
                                                   asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (ec == asio::error::eof) ok = up->codec.onEof().ok() && sink.complete;
      break;
    }
    up->read_buffer.commit(n);
  }
  if (sink.complete) {
    shard.inc(stats.upstream_rq_completed);
    stats.countResponse(shard, sink.status);
  } else if (ec == beast::error::timeout) {
    shard.inc(stats.upstream_rq_timeout);
  }
  --host->active_requests;
  cluster->endRequest();
  shard.sub(stats.upstream_rq_active, 1);
  up->forwarder.target = nullptr;
  const bool reuse = sink.complete && up->codec.canReuse();
  cluster->release(*host, std::move(up), reuse);
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
