#pragma once

// One gRPC bidirectional-streaming call on its own HTTP/2 connection (h2c),
// on turnout's HTTP/2 client codec (http2::ClientCodec): the transport of the
// xDS client (docs/xds.md). Main thread.
//
// gRPC over HTTP/2 (grpc/doc/PROTOCOL-HTTP2.md): a POST with
// `content-type: application/grpc` and `te: trailers`; each message is a
// 5-byte prefix (compressed flag, 32-bit big-endian length) and the
// message; the call ends with trailers carrying grpc-status and
// grpc-message (or a trailers-only response). Compressed messages are
// refused (we never advertise grpc-accept-encoding), and a message above
// `max_message_bytes` ends the call with RESOURCE_EXHAUSTED.
//
// Flow control: the bytes of each read are acknowledged (WINDOW_UPDATE) once
// the messages they complete were handed to the callbacks; what is held
// meanwhile is at most one partial message (bounded by max_message_bytes)
// plus one read.
//
// Lifetime: start() returns a shared handle; the connection's coroutines
// hold it too. close() (or destroying the last handle the owner holds, which
// calls it) ends the call with no further callback.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/codec/http2_client_codec.h"
#include "proxy/common/asio.h"
#include "proxy/codec/grpc_framing.h"
#include "proxy/stats/store.h"
#include "proxy/stats/well_known_stats.h"
#include "proxy/tls/tls_transport.h"

namespace turnout::proxy {

class GrpcStream final : public http2::ConnectionCallbacks,
                         public ResponseDecoderCallbacks,
                         public std::enable_shared_from_this<GrpcStream> {
 public:
  class Callbacks {
   public:
    virtual ~Callbacks() = default;
    // Connected and the call's HEADERS are queued: messages may be sent.
    virtual void onGrpcReady() = 0;
    // One whole message (valid during the call only).
    virtual void onGrpcMessage(std::string_view message) = 0;
    // The call ended (also when the connection could not be made). Last callback.
    virtual void onGrpcClose(GrpcStatus status, const std::string& message) = 0;
  };

  struct Options {
    asio::ip::tcp::endpoint endpoint;
    std::string authority;  // :authority (the xDS cluster's name, as Envoy sends)
    std::string path;       // "/package.Service/Method"
    std::chrono::milliseconds connect_timeout{5000};
    std::size_t max_message_bytes = 64u << 20;
    // TLS to the server (the xDS cluster's UpstreamTlsContext): the
    // handshake runs within connect_timeout after the connect and must
    // select ALPN h2; its outcome is counted in ssl_stats on tls_shard
    // (required with tls). Null: h2c.
    std::unique_ptr<tls::TlsTransport> tls;
    std::optional<stats::SslStats> ssl_stats;
    stats::Shard* tls_shard = nullptr;
  };

  // Connects and starts the call; `callbacks` must outlive close().
  static std::shared_ptr<GrpcStream> start(Executor ex, Options options, Callbacks& callbacks);
  ~GrpcStream() override;
  GrpcStream(const GrpcStream&) = delete;
  GrpcStream& operator=(const GrpcStream&) = delete;

  // Queues one message (framed here). Ignored before onGrpcReady or after the end.
  void send(std::string_view message);
  // Half-closes nothing: ends the call (RST_STREAM CANCEL) and the connection.
  // No callback follows.
  void close();

  // http2::ConnectionCallbacks
  void onSettings(const http2::PeerSettings& settings) override;
  void onGoAway(std::int32_t last_stream_id, std::uint32_t error_code) override;
  // ResponseDecoderCallbacks
  void onMessageBegin() override {}
  void onInformational(ResponseHead&) override {}
  void onHeaders(ResponseHead& head, bool end_stream) override;
  void onData(std::span<const char> data, bool end_stream) override;
  void onTrailers(HeaderMap& trailers) override;
  void onMessageComplete() override;
  void onReset(StreamResetReason reason) override;

 private:
  GrpcStream(Executor ex, Options options, Callbacks& callbacks);
  Awaitable<void> run(std::shared_ptr<GrpcStream> self);
  Awaitable<void> writeLoop(std::shared_ptr<GrpcStream> self);
  void kickWriter();
  // Records the call's end once; delivered after the current dispatch.
  void finish(GrpcStatus status, std::string message);
  void statusFrom(const HeaderMap& fields);
  void deliver();
  void closeSocket();

  Options options_;
  Callbacks* callbacks_;
  TcpStream socket_;
  std::optional<http2::ClientCodec> codec_;
  http2::ClientStreamPtr stream_;
  std::vector<char> read_buffer_;
  std::string out_;
  GrpcMessageDecoder decoder_;
  std::deque<std::string> messages_;      // complete, not yet delivered
  std::size_t unacked_ = 0;               // received bytes to acknowledge after delivery
  std::optional<std::pair<GrpcStatus, std::string>> end_;
  bool writing_ = false;
  bool closed_ = false;     // close() called, or the call ended
  bool ready_ = false;
  bool headers_ok_ = false;
};

using GrpcStreamSharedPtr = std::shared_ptr<GrpcStream>;

}  // namespace turnout::proxy
