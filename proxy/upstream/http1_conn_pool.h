#pragma once

#include "proxy/upstream/cluster_manager.h"
#include "proxy/upstream/conn_pool.h"

namespace turnout::proxy {

// The HTTP/1.1 ConnPool of one host on one worker: each stream is a whole
// connection (UpstreamConnection), taken idle or made within the cluster's
// breakers by WorkerCluster::acquire(), and given back by
// UpstreamStreamPtr::finish(). The pool's state (idle list, pending FIFO,
// connection count) lives in the HostState, which owns this object.
class Http1ConnPool final : public ConnPool {
 public:
  Http1ConnPool(WorkerCluster& cluster, HostState& host) : cluster_(cluster), host_(host) {}

  // ConnPool
  UpstreamStreamPtr tryNewStream() override;
  Awaitable<NewStreamResult> newStream(PendingRequest* pending,
                                       std::chrono::steady_clock::time_point deadline) override;

 private:
  UpstreamStreamPtr attach(UpstreamConnectionPtr conn);

  WorkerCluster& cluster_;
  HostState& host_;
};

}  // namespace turnout::proxy
