#pragma once

// turnout-cp's gRPC server: h2c on turnout's HTTP/2 server codec
// (http2::ServerCodec), one io_context (the main thread). Enough gRPC for
// long-lived bidirectional streams (xDS): a call is a POST with
// `content-type: application/grpc`; messages are length-prefixed
// (proxy/codec/grpc_framing.h); the call ends with trailers carrying
// grpc-status and grpc-message. An unknown method is answered
// trailers-only UNIMPLEMENTED, a request that is not gRPC with 415.
//
// Each connection has a reader coroutine and a writer started whenever the
// codec has output; both share the connection. A call's request bytes are
// acknowledged to the client once its messages were handed over, so a client
// cannot make the server buffer more than one message (max_message_bytes)
// plus a read.

#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "proxy/codec/http2_server_codec.h"
#include "proxy/common/asio.h"
#include "proxy/codec/grpc_framing.h"

namespace turnout::control_plane {

using proxy::GrpcStatus;

class GrpcServerConnection;
class GrpcServerCall;

// One call, as its handler sees it. Valid until the handler's onClose (or
// until the handler finishes it and returns).
class GrpcCall {
 public:
  virtual ~GrpcCall() = default;
  virtual void send(std::string_view message) = 0;
  // Ends the call with trailers; nothing more is delivered to the handler.
  virtual void finish(GrpcStatus status, std::string_view message = {}) = 0;
  virtual const std::string& peer() const = 0;
};

// What the server hands a call's events to.
class GrpcCallHandler {
 public:
  virtual ~GrpcCallHandler() = default;
  virtual void onMessage(std::string_view message) = 0;
  // The client half-closed (END_STREAM).
  virtual void onHalfClose() {}
  // The call is over (finished, reset, the connection gone). Last event; the
  // handler is destroyed after it.
  virtual void onClose() {}
};

class GrpcServer {
 public:
  // Opens a handler for a call to `path` ("/pkg.Service/Method"), or null
  // for an unknown method.
  using Router = std::function<std::unique_ptr<GrpcCallHandler>(const std::string& path,
                                                                GrpcCall& call)>;
  struct Options {
    std::string address = "127.0.0.1";
    uint16_t port = 18000;  // 0: any free port (see port())
    std::size_t max_message_bytes = 64u << 20;
  };

  // Binds and listens (errors name the address); start() accepts.
  static absl::StatusOr<std::unique_ptr<GrpcServer>> create(asio::io_context& ioc, Options options,
                                                            Router router);
  ~GrpcServer();
  void start();
  // Stops accepting and closes every connection (calls get onClose).
  void stop();
  uint16_t port() const { return port_; }
  // gRPC message bytes (5-byte prefixes included) sent on every call so far.
  uint64_t messageBytesSent() const { return message_bytes_sent_; }

 private:
  friend class GrpcServerConnection;
  friend class GrpcServerCall;
  GrpcServer(asio::io_context& ioc, Options options, Router router);
  Awaitable<void> acceptLoop();

  asio::io_context& ioc_;
  Options options_;
  Router router_;
  TcpAcceptor acceptor_;
  uint16_t port_ = 0;
  bool stopped_ = false;
  uint64_t message_bytes_sent_ = 0;
  // Cleared when the server goes away: the accept loop may resume after that.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::list<std::weak_ptr<GrpcServerConnection>> connections_;
};

}  // namespace turnout::control_plane
