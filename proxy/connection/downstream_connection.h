#pragma once

#include <chrono>
#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <vector>

#include "proxy/common/asio.h"

#include "proxy/codec/http1_server_codec.h"
#include "proxy/server/data_plane_config.h"

namespace turnout::proxy {

class PendingRequest;
class Worker;

// One downstream HTTP/1.1 connection (stage 2-3 of a request's life): the
// socket, the read buffer and the ServerCodec. It reads requests one at a
// time and hands each to an ActiveStream; pipelined requests wait in the read
// buffer while the codec is paused. Lives in its run() coroutine's frame on
// one worker; registered with the worker for drain and shutdown.
class DownstreamConnection : public RequestDecoderCallbacks {
 public:
  // The connection coroutine. Parameters by value (STYLE.md R8c).
  // `remote` and `local` are the connection's addresses as accepted.
  static asio::awaitable<void> run(Worker& worker, DataPlaneConfigConstSharedPtr config,
                                   size_t listener_index, asio::ip::tcp::socket socket,
                                   asio::ip::tcp::endpoint remote, asio::ip::tcp::endpoint local);

  DownstreamConnection(Worker& worker, DataPlaneConfigConstSharedPtr config,
                       size_t listener_index, asio::ip::tcp::socket socket,
                       asio::ip::tcp::endpoint remote, asio::ip::tcp::endpoint local);
  ~DownstreamConnection() override;

  // Worker thread: finish the current request with `Connection: close`.
  void drain() { draining_ = true; }
  // Worker thread: close the socket now (shutdown).
  void close();

  // For ActiveStream.
  Worker& worker() { return worker_; }
  uint64_t id() const { return id_; }
  // The listener and config the connection was accepted with.
  const ListenerRuntime& listener() const { return *config_->listeners[listener_index_]; }
  const DataPlaneConfigConstSharedPtr& config() const { return config_; }
  // The config a new request on this connection runs on (ActiveStream pins
  // it per stream): the worker's current one while it has this connection's
  // listener unchanged, else the connection's own.
  DataPlaneConfigConstSharedPtr streamConfig() const;
  // This connection's listener in `config` (a result of streamConfig()).
  const ListenerRuntime& listener(const DataPlaneConfig& config) const;
  http1::ServerCodec& codec() { return codec_; }
  beast::tcp_stream& stream() { return stream_; }
  const asio::ip::tcp::endpoint& remote() const { return remote_; }
  const asio::ip::tcp::endpoint& local() const { return local_; }
  bool draining() const { return draining_; }

  // Request body plumbing. Body bytes the codec decoded since the last
  // takeBody(), and whether the request has ended.
  std::string& pendingBody() { return body_; }
  bool requestComplete() const { return request_complete_; }
  const HeaderMap* requestTrailers() const { return trailers_; }
  // Decodes buffered bytes and, if that yields nothing, reads more, until
  // some body arrives or the request ends. False on a read error, timeout or
  // codec error (codecError() tells which).
  asio::awaitable<bool> readBody(std::chrono::milliseconds timeout);
  CodecErrorCode codecError() const { return codec_.error(); }

  // Per-request scratch reused across the requests of this connection.
  std::vector<routing::HeaderEntry>& entriesBuffer() { return entries_buf_; }
  std::string& downstreamOutBuffer() { return down_out_buf_; }

  // Bytes read from the client that the codec has not consumed (after an
  // upgrade: the start of the tunnel). Valid until the next read.
  std::string_view buffered() const {
    auto d = buffer_.data();
    return std::string_view(static_cast<const char*>(d.data()), d.size());
  }
  void consumeBuffered(size_t n) { buffer_.consume(n); }

  // While this connection's request waits for an upstream connection
  // (WorkerCluster::acquire), watches the socket: the client hanging up (EOF,
  // reset, or the socket closed at shutdown) cancels `pending`, as a downstream
  // disconnect resets a pending stream in Envoy. Bytes that arrive meanwhile
  // (request body, a pipelined request) are read into the buffer while it has
  // room; once it is full the watch ends. stopWatching() must be awaited
  // before `pending` goes away or the socket is used again.
  void watchForClose(PendingRequest& pending);
  asio::awaitable<void> stopWatching();

  // Writes `out` to the client (and clears it). False on error/timeout.
  asio::awaitable<bool> write(std::string& out, std::chrono::milliseconds timeout);

  // RequestDecoderCallbacks
  void onMessageBegin() override;
  void onHeaders(RequestHead& head, bool end_stream) override;
  void onData(std::span<const char> data, bool end_stream) override;
  void onTrailers(HeaderMap& trailers) override;
  void onMessageComplete() override;

 private:
  asio::awaitable<void> serve();
  // Decodes what is buffered; false on a codec error.
  bool decodeBuffered();
  asio::awaitable<void> replyCodecError();
  // Before closing a connection whose last request was not read whole.
  asio::awaitable<void> lingerClose();

  Worker& worker_;
  DataPlaneConfigConstSharedPtr config_;
  size_t listener_index_;
  beast::tcp_stream stream_;
  asio::ip::tcp::endpoint remote_;
  asio::ip::tcp::endpoint local_;
  uint64_t id_;
  beast::flat_buffer buffer_;
  http1::ServerCodec codec_;
  std::list<DownstreamConnection*>::iterator registration_;
  std::chrono::steady_clock::time_point started_;

  // Per-request decode state, reset by onMessageBegin.
  RequestHead* head_ = nullptr;
  bool head_end_stream_ = false;
  bool request_complete_ = false;
  const HeaderMap* trailers_ = nullptr;
  std::string body_;
  std::vector<routing::HeaderEntry> entries_buf_;
  std::string down_out_buf_;
  bool draining_ = false;
  bool closed_ = false;
  // watchForClose(): the request to cancel, and whether a wait is armed.
  PendingRequest* watched_ = nullptr;
  bool watching_ = false;

  void armWatch();
  void onWatchReady(const boost::system::error_code& ec);
};

}  // namespace turnout::proxy
