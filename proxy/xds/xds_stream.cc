#include "proxy/xds/xds_stream.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "proxy/common/log.h"

namespace turnout::proxy {
namespace {
constexpr const char* kLog = "xds";
}  // namespace

XdsStream::XdsStream(asio::io_context& main, stats::Store& store, Options options,
                     envoy::config::core::v3::Node node, EndpointSource endpoints)
    : main_(main),
      store_(store),
      options_(std::move(options)),
      client_(std::move(node), options_.protocol),
      endpoints_(std::move(endpoints)),
      retry_timer_(main),
      backoff_(options_.backoff_base) {
  connected_state_ = store_.gauge("control_plane.connected_state");
  stream_closed_ = store_.counter("control_plane.stream_closed");
}

XdsStream::~XdsStream() {
  *alive_ = false;
  stop();
}

void XdsStream::start() {
  stopped_ = false;
  connect();
}

void XdsStream::stop() {
  stopped_ = true;
  retry_timer_.cancel();
  if (stream_) {
    stream_->close();
    stream_.reset();
  }
  client_.onStreamClosed();
  setConnected(false);
}

void XdsStream::setConnected(bool connected) {
  connected_ = connected;
  store_.mainShard().set(connected_state_, connected ? 1 : 0);
}

void XdsStream::connect() {
  if (stopped_) return;
  const std::vector<asio::ip::tcp::endpoint> eps = endpoints_();
  if (eps.empty()) {
    last_error_ = absl::StrCat("cluster '", options_.cluster_name, "' has no endpoint");
    TURNOUT_LOG(warn, kLog, "xDS: {}; retrying", last_error_);
    scheduleRetry();
    return;
  }
  const asio::ip::tcp::endpoint ep = eps[next_endpoint_++ % eps.size()];
  received_ = false;
  GrpcStream::Options o;
  o.endpoint = ep;
  o.authority = options_.authority.empty() ? options_.cluster_name : options_.authority;
  o.max_message_bytes = options_.max_message_bytes;
  o.path = options_.method_path;
  o.connect_timeout = options_.connect_timeout;
  if (options_.make_tls) {
    o.tls = options_.make_tls(ep);
    if (!o.tls) {
      last_error_ = absl::StrCat("cluster '", options_.cluster_name, "': no TLS transport");
      TURNOUT_LOG(warn, kLog, "xDS: {}; retrying", last_error_);
      scheduleRetry();
      return;
    }
    o.ssl_stats = options_.ssl_stats;
    o.tls_shard = &store_.mainShard();
  }
  stream_ = GrpcStream::start(main_.get_executor(), std::move(o), *this);
}

void XdsStream::scheduleRetry() {
  if (stopped_) return;
  // Envoy's JitteredExponentialBackOffStrategy: a random wait in [0, backoff),
  // the backoff doubling up to the maximum.
  std::uniform_int_distribution<int64_t> pick(0, std::max<int64_t>(backoff_.count() - 1, 0));
  const std::chrono::milliseconds wait(pick(random_));
  backoff_ = std::min(backoff_ * 2, options_.backoff_max);
  retry_timer_.expires_after(wait);
  retry_timer_.async_wait([this, alive = alive_](const boost::system::error_code& ec) {
    if (!*alive || ec) return;
    connect();
  });
}

void XdsStream::flush() {
  if (!stream_ || !client_.streamOpen()) {
    client_.takeRequests();  // sent on the next stream's first requests anyway
    client_.takeDeltaRequests();
    return;
  }
  for (const auto& r : client_.takeDeltaRequests()) {
    TURNOUT_LOG(debug, kLog, "xDS: delta request {} nonce '{}' +{} -{}{}", r.type_url(),
                r.response_nonce(), r.resource_names_subscribe_size(),
                r.resource_names_unsubscribe_size(), r.has_error_detail() ? " (NACK)" : "");
    stream_->send(r.SerializeAsString());
  }
  for (const auto& r : client_.takeRequests()) {
    TURNOUT_LOG(debug, kLog, "xDS: request {} version '{}' nonce '{}'{}", r.type_url(),
                r.version_info(), r.response_nonce(), r.has_error_detail() ? " (NACK)" : "");
    stream_->send(r.SerializeAsString());
  }
}

void XdsStream::onGrpcReady() {
  setConnected(true);
  last_error_.clear();
  TURNOUT_LOG(info, kLog, "xDS: stream to cluster '{}' open", options_.cluster_name);
  client_.onStreamOpen();
  flush();
}

void XdsStream::onGrpcMessage(std::string_view message) {
  if (options_.protocol == config::xds::XdsProtocol::kDelta) {
    envoy::service::discovery::v3::DeltaDiscoveryResponse delta;
    if (!delta.ParseFromArray(message.data(), static_cast<int>(message.size()))) {
      TURNOUT_LOG(warn, kLog, "xDS: cannot parse a DeltaDiscoveryResponse ({} bytes); reconnecting",
                  message.size());
      onGrpcClose(GrpcStatus::kInternal, "cannot parse a DeltaDiscoveryResponse");
      return;
    }
    if (!received_) {
      received_ = true;
      backoff_ = options_.backoff_base;
    }
    const auto outcome = client_.onDeltaResponse(delta);
    if (outcome == config::xds::XdsClient::Outcome::kRejected) {
      TURNOUT_LOG(warn, kLog, "xDS: delta {} version '{}' rejected: {}", delta.type_url(),
                  delta.system_version_info(), client_.state(delta.type_url())->last_error);
    }
    flush();
    return;
  }
  envoy::service::discovery::v3::DiscoveryResponse response;
  if (!response.ParseFromArray(message.data(), static_cast<int>(message.size()))) {
    // Not a DiscoveryResponse: the stream cannot be trusted; start over.
    TURNOUT_LOG(warn, kLog, "xDS: cannot parse a DiscoveryResponse ({} bytes); reconnecting",
                message.size());
    onGrpcClose(GrpcStatus::kInternal, "cannot parse a DiscoveryResponse");
    return;
  }
  if (!received_) {
    received_ = true;
    backoff_ = options_.backoff_base;  // the server answered: back-off starts over
  }
  const auto outcome = client_.onResponse(response);
  if (outcome == config::xds::XdsClient::Outcome::kIgnored) {
    TURNOUT_LOG(warn, kLog, "xDS: ignoring a response of type '{}': nothing subscribes to it",
                response.type_url());
  } else if (outcome == config::xds::XdsClient::Outcome::kRejected) {
    TURNOUT_LOG(warn, kLog, "xDS: {} version '{}' rejected: {}", response.type_url(),
                response.version_info(), client_.state(response.type_url())->last_error);
  }
  flush();
}

void XdsStream::onGrpcClose(GrpcStatus status, const std::string& message) {
  if (stream_) {
    stream_->close();
    stream_.reset();
  }
  client_.onStreamClosed();
  setConnected(false);
  store_.mainShard().inc(stream_closed_);
  last_error_ = absl::StrCat("gRPC status ", static_cast<int>(status), ": ", message);
  if (stopped_) return;
  TURNOUT_LOG(warn, kLog, "xDS: stream to cluster '{}' closed ({}); the last accepted config "
              "keeps serving, reconnecting", options_.cluster_name, last_error_);
  scheduleRetry();
}

}  // namespace turnout::proxy
