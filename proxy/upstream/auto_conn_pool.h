#pragma once

#include "proxy/upstream/cluster_manager.h"
#include "proxy/upstream/conn_pool.h"
#include "proxy/upstream/http1_conn_pool.h"
#include "proxy/upstream/http2_conn_pool.h"

namespace turnout::proxy {

// The ConnPool of one host of an auto_config cluster with TLS, on one worker
// (Envoy's HttpProtocolOptions.auto_config and its mixed pool;
// docs/upstream.md "auto_config"). Until the host's protocol is known its
// requests go to the HTTP/2 side, whose connections offer ALPN h2 and
// http/1.1; the first handshake records the server's choice in
// HostState::alpn_protocol. h2: the HTTP/2 side serves the host from then
// on. http/1.1 (or no ALPN): that connection is closed, the waiting requests
// come back here and go to the HTTP/1 side, which serves the host from then
// on. Without TLS the cluster uses Http1ConnPool (WorkerCluster::connPool()).
//
// Worker thread only; owned by the HostState, like the pools it holds.
class AutoConnPool final : public ConnPool {
 public:
  AutoConnPool(WorkerCluster& cluster, HostState& host)
      : host_(host), http1_(cluster, host), http2_(cluster, host, /*alpn_auto=*/true) {}

  // ConnPool
  UpstreamStreamPtr tryNewStream() override { return chosen().tryNewStream(); }
  Awaitable<NewStreamResult> newStream(PendingRequest* pending,
                                       std::chrono::steady_clock::time_point deadline) override;

 private:
  ConnPool& chosen() {
    if (host_.alpn_protocol == HostState::AlpnProtocol::Http1) return http1_;
    return http2_;
  }

  HostState& host_;
  Http1ConnPool http1_;
  Http2ConnPool http2_;
};

// The ConnPool of one host of a use_downstream_protocol_config cluster, on
// one worker (Envoy's HttpProtocolOptions.use_downstream_protocol_config:
// ClusterInfoImpl::upstreamHttpProtocol): a request from an HTTP/2 client
// goes over HTTP/2 (h2c, or TLS with ALPN h2), one from an HTTP/1.1 client
// over HTTP/1.1. WorkerCluster::connPool() hands out the side; as a
// ConnPool of its own (a caller that does not know the downstream
// protocol) it is the HTTP/1.1 side.
class DownstreamProtocolConnPool final : public ConnPool {
 public:
  DownstreamProtocolConnPool(WorkerCluster& cluster, HostState& host)
      : http1_(cluster, host), http2_(cluster, host, /*alpn_auto=*/false) {}

  ConnPool& side(bool downstream_http2) {
    return downstream_http2 ? static_cast<ConnPool&>(http2_) : http1_;
  }

  // ConnPool
  UpstreamStreamPtr tryNewStream() override { return http1_.tryNewStream(); }
  Awaitable<NewStreamResult> newStream(PendingRequest* pending,
                                       std::chrono::steady_clock::time_point deadline) override {
    return http1_.newStream(pending, deadline);
  }

 private:
  Http1ConnPool http1_;
  Http2ConnPool http2_;
};

}  // namespace turnout::proxy
