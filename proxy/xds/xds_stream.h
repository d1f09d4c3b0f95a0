#pragma once

// One xDS gRPC stream to a management server (docs/xds.md): the ADS stream
// (AggregatedDiscoveryService.StreamAggregatedResources) of
// dynamic_resources.ads_config. It runs config::xds::XdsClient (the
// protocol, sans-I/O) over a GrpcStream (the transport), reconnects with
// Envoy's jittered exponential back-off (500 ms doubling to 30 s, full
// jitter) and keeps Envoy's `control_plane.connected_state` gauge. The
// resources keep serving whatever happens to the stream: a lost control
// plane never takes traffic down. Main thread.

#include <chrono>
#include <functional>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "config/xds/xds_client.h"
#include "proxy/common/asio.h"
#include "proxy/stats/store.h"
#include "proxy/xds/grpc_stream.h"

namespace turnout::proxy {

class XdsStream final : public GrpcStream::Callbacks {
 public:
  // The server's address, asked for at every (re)connect: the xDS
  // cluster's hosts may change (DNS). Empty: none known yet, retried later.
  using EndpointSource = std::function<std::vector<asio::ip::tcp::endpoint>()>;

  struct Options {
    std::string cluster_name;  // the xDS cluster
    std::string authority;     // :authority (envoy_grpc.authority, else the cluster's name)
    std::string method_path;   // e.g. /envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources
    std::chrono::milliseconds connect_timeout{5000};
    std::size_t max_message_bytes = 64u << 20;
    // Delta: method_path must then be a Delta method (DeltaAggregatedResources).
    config::xds::XdsProtocol protocol = config::xds::XdsProtocol::kStateOfTheWorld;
    // TLS: a new client transport for each connection to the endpoint (the
    // xDS cluster's UpstreamTlsContext), counted in ssl_stats. Null: h2c.
    std::function<std::unique_ptr<tls::TlsTransport>(const asio::ip::tcp::endpoint&)> make_tls;
    std::optional<stats::SslStats> ssl_stats;
    std::chrono::milliseconds backoff_base{500};
    std::chrono::milliseconds backoff_max{30000};
  };

  XdsStream(asio::io_context& main, stats::Store& store, Options options,
            envoy::config::core::v3::Node node, EndpointSource endpoints);
  ~XdsStream() override;
  XdsStream(const XdsStream&) = delete;
  XdsStream& operator=(const XdsStream&) = delete;

  // The protocol state: subscribe types on it before start().
  config::xds::XdsClient& client() { return client_; }
  // Connects (and reconnects until stop()).
  void start();
  void stop();
  // Sends whatever the XdsClient queued (after subscribe/setNames outside a response).
  void flush();

  bool connected() const { return connected_; }
  const std::string& lastError() const { return last_error_; }

  // GrpcStream::Callbacks
  void onGrpcReady() override;
  void onGrpcMessage(std::string_view message) override;
  void onGrpcClose(GrpcStatus status, const std::string& message) override;

 private:
  void connect();
  void scheduleRetry();
  void setConnected(bool connected);

  asio::io_context& main_;
  stats::Store& store_;
  Options options_;
  config::xds::XdsClient client_;
  EndpointSource endpoints_;
  GrpcStreamSharedPtr stream_;
  SteadyTimer retry_timer_;
  std::mt19937_64 random_{std::random_device{}()};
  std::chrono::milliseconds backoff_;
  std::size_t next_endpoint_ = 0;
  bool connected_ = false;
  bool received_ = false;  // a response arrived on the current stream
  bool stopped_ = true;
  std::string last_error_;
  stats::StatId connected_state_;
  stats::StatId stream_closed_;  // turnout's: streams that ended
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace turnout::proxy
