#pragma once

#include <chrono>
#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <vector>

#include "proxy/common/asio.h"
#include "proxy/common/deadline_queue.h"
#include "proxy/common/signal.h"

#include "proxy/codec/http1_server_codec.h"
#include "proxy/connection/downstream_stream.h"
#include "proxy/server/data_plane_config.h"
#include "proxy/tls/tls_transport.h"

namespace turnout::proxy {

class PendingRequest;
class Worker;

// One downstream HTTP/1.1 connection (stage 2-3 of a request's life): the
// socket, the read buffer and the ServerCodec. It reads requests one at a
// time and hands each to an ActiveStream; pipelined requests wait in the read
// buffer while the codec is paused. The connection is its own (one)
// DownstreamStream. Lives in its run() coroutine's frame on one worker;
// registered with the worker for drain and shutdown.
class DownstreamConnection : public ConnectionHandle,
                             public DownstreamStream,
                             public RequestDecoderCallbacks {
 public:
  // The connection coroutine for every accepted socket. Parameters by value
  // (STYLE.md R8c). `remote` and `local` are the connection's addresses as
  // accepted. Picks the listener's filter chain (by what the client sends
  // first when the listener has several chains or match rules: TLS or not,
  // then the ClientHello's SNI and ALPN during the handshake), then the
  // protocol per that chain's HCM codec_type (AUTO: HTTP/2 when the first
  // bytes are the HTTP/2 connection preface), and serves HTTP/1 here or hands
  // the socket to Http2DownstreamConnection; a chain with a TCP proxy goes
  // to TcpProxyConnection instead (no HTTP).
  static Awaitable<void> run(Worker& worker, DataPlaneConfigConstSharedPtr config,
                             size_t listener_index, TcpSocket socket,
                             asio::ip::tcp::endpoint remote, asio::ip::tcp::endpoint local);

  DownstreamConnection(Worker& worker, DataPlaneConfigConstSharedPtr config, size_t listener_index,
                       size_t chain_index, TcpSocket socket, asio::ip::tcp::endpoint remote,
                       asio::ip::tcp::endpoint local, std::string_view initial);
  ~DownstreamConnection() override;

  // ConnectionHandle (worker thread).
  const ListenerRuntime& listener() const override { return *config_->listeners[listener_index_]; }
  // The filter chain the connection was given when accepted.
  const FilterChainRuntime& filterChain() const { return listener().filter_chains[chain_index_]; }
  void drain() override { draining_ = true; }
  void close() override;

  // DownstreamStream.
  Worker& worker() override { return worker_; }
  uint64_t connectionId() const override { return id_; }
  const asio::ip::tcp::endpoint& remote() const override { return remote_; }
  const asio::ip::tcp::endpoint& local() const override { return local_; }
  DataPlaneConfigConstSharedPtr streamConfig() const override;
  const FilterChainRuntime& filterChain(const DataPlaneConfig& config) const override;
  bool draining() const override { return draining_; }
  std::string_view protocol() const override;
  bool secure() const override { return tls_ != nullptr; }
  std::vector<routing::HeaderEntry>& entriesBuffer() override { return entries_buf_; }
  std::string& pendingBody() override { return body_; }
  bool requestComplete() const override { return request_complete_; }
  const HeaderMap* requestTrailers() const override { return trailers_; }
  Awaitable<bool> readBody(std::chrono::milliseconds timeout) override;
  CodecErrorCode codecError() const override { return codec_.error(); }
  void stopReading() override;
  // While the request waits for an upstream connection, watches the socket:
  // the client hanging up (EOF, reset, or the socket closed at shutdown)
  // cancels `pending`, as a downstream disconnect resets a pending stream in
  // Envoy. Bytes that arrive meanwhile (request body, a pipelined request)
  // are read into the buffer while it has room; once it is full the watch
  // ends.
  void watchForClose(PendingRequest& pending) override;
  Awaitable<void> stopWatching() override;
  void encodeHeaders(ResponseHead& head, bool end_stream) override;
  void encodeData(std::span<const char> data, bool end_stream) override;
  void encodeTrailers(const HeaderMap& trailers) override;
  void encode100Continue() override;
  void discardUnflushed() override { out_.clear(); }
  Awaitable<bool> flush(std::chrono::milliseconds timeout) override;
  bool tryFlush() override;
  bool closeAfterResponse() const override { return codec_.shouldClose(); }
  bool upgraded() const override { return codec_.upgraded(); }
  DownstreamConnection* http1() override { return this; }
  bool canTunnel() const override { return true; }
  void beginTunnelBody() override;

  // For the tunnel after an upgrade: the socket, and the TLS session over it
  // (null for plaintext).
  TcpStream& stream() { return stream_; }
  tls::TlsTransport* tlsTransport() { return tls_.get(); }
  // Bytes read from the client that the codec has not consumed (after an
  // upgrade: the start of the tunnel). Valid until the next read.
  std::string_view buffered() const {
    auto d = buffer_.data();
    return std::string_view(static_cast<const char*>(d.data()), d.size());
  }
  void consumeBuffered(size_t n) { buffer_.consume(n); }
  // Frees the read buffer once it is empty (a tunnel reads the socket
  // itself from then on).
  void releaseReadBuffer() {
    if (buffer_.size() == 0) buffer_.shrink_to_fit();
  }

  // RequestDecoderCallbacks
  void onMessageBegin() override;
  void onHeaders(RequestHead& head, bool end_stream) override;
  void onData(std::span<const char> data, bool end_stream) override;
  void onTrailers(HeaderMap& trailers) override;
  void onMessageComplete() override;

 private:
  // Serves HTTP/1 on an accepted socket; `initial`: bytes already read.
  static Awaitable<void> runHttp1(Worker& worker, DataPlaneConfigConstSharedPtr config,
                                  size_t listener_index, size_t chain_index, TcpSocket socket,
                                  asio::ip::tcp::endpoint remote, asio::ip::tcp::endpoint local,
                                  std::string initial, bool input_closed,
                                  std::unique_ptr<tls::TlsTransport> tls);
  Awaitable<void> serve();
  // Decodes what is buffered; false on a codec error.
  bool decodeBuffered();
  Awaitable<void> replyCodecError();
  // TLS: decrypts into buffer_ what the transport holds, else reads
  // ciphertext (at most `chunk` at a time) until some plaintext comes; `ec`
  // as a socket read's.
  Awaitable<void> readTls(boost::system::error_code& ec, size_t chunk);
  // Writes out_ to the client (and clears it). False on error/timeout.
  Awaitable<bool> write(std::chrono::milliseconds timeout);
  // Before closing a connection whose last request was not read whole.
  Awaitable<void> lingerClose();
  static void onDeadline(void* self);

  Worker& worker_;
  DataPlaneConfigConstSharedPtr config_;
  size_t listener_index_;
  size_t chain_index_;  // into listener().filter_chains
  TcpStream stream_;
  asio::ip::tcp::endpoint remote_;
  asio::ip::tcp::endpoint local_;
  uint64_t id_;
  beast::flat_buffer buffer_;
  http1::ServerCodec codec_;
  // readBody() waits on it once the response ended the request early;
  // stopReading() ends the wait.
  Signal stop_wait_;
  // The read and write timeouts (DeadlineQueue: no Asio timer per
  // operation). When one passes, the socket closes as with a Beast
  // tcp_stream's timeout, and deadline_passed_ says why the operation failed.
  DeadlineQueue::Deadline read_deadline_;
  DeadlineQueue::Deadline write_deadline_;
  bool deadline_passed_ = false;
  std::list<ConnectionHandle*>::iterator registration_;
  std::chrono::steady_clock::time_point started_;

  // Per-request decode state, reset by onMessageBegin.
  RequestHead* head_ = nullptr;
  bool head_end_stream_ = false;
  bool request_complete_ = false;
  const HeaderMap* trailers_ = nullptr;
  // The body is the raw bytes after the head (beginTunnelBody()); the
  // connection closes after this exchange.
  bool tunnel_body_ = false;
  std::string body_;
  std::vector<routing::HeaderEntry> entries_buf_;
  std::string out_;  // response bytes for the client, reused across requests
  bool draining_ = false;
  bool closed_ = false;
  bool input_closed_ = false;  // the client's EOF was read before this connection took the socket
  // TLS (a listener with a DownstreamTlsContext; null: plaintext), with its
  // ciphertext and plaintext scratch.
  std::unique_ptr<tls::TlsTransport> tls_;
  std::string tls_wire_;  // ciphertext to write
  std::string tls_in_;    // ciphertext read (its size is the read chunk)
  size_t watch_fed_ = 0;
  // watchForClose(): the request to cancel, and whether a wait is armed.
  PendingRequest* watched_ = nullptr;
  bool watching_ = false;

  void armWatch();
  void onWatchReady(const boost::system::error_code& ec);
};

}  // namespace turnout::proxy
