#include "proxy/connection/downstream_connection.h"

#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <cstring>

#include "proxy/common/inq_read.h"
#include "proxy/common/log.h"
#include "proxy/common/read_scratch.h"
#include "proxy/common/resume.h"
#include "proxy/common/send_now.h"
#include "proxy/connection/http2_downstream_connection.h"
#include "proxy/connection/tcp_proxy_connection.h"
#include "proxy/listener/http_inspector.h"
#include "proxy/listener/original_dst.h"
#include "proxy/server/worker.h"
#include "proxy/stream/active_stream.h"
#include "proxy/stream/local_reply.h"
#include "proxy/upstream/cluster_manager.h"
#include "proxy/upstream/upstream_tls.h"

namespace turnout::proxy {
namespace {

constexpr size_t kReadChunk = 16 * 1024;
// What a keep-alive connection reads with while it waits for its next
// request, and the most buffer it keeps meanwhile: most request heads fit,
// and an idle connection does not hold a 16 KiB chunk (a larger head is
// read on in kReadChunk).
constexpr size_t kIdleReadChunk = 1024;
// TLS: what watchForClose() feeds the transport at most while a request waits.
constexpr size_t kMaxWatchCiphertext = 64 * 1024;
// RFC 9113 §3.4: what an HTTP/2 client sends first.
constexpr std::string_view kHttp2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
// Envoy's delayed_close_timeout default.
constexpr std::chrono::milliseconds kDelayedClose{1000};
// Stands in for "no timeout" (a disabled Envoy timeout is 0).
constexpr std::chrono::milliseconds kForever = std::chrono::hours(24 * 365);

std::chrono::milliseconds orForever(std::chrono::milliseconds t) {
  return t.count() == 0 ? kForever : t;
}

// Cancels the socket's pending read once a listener's listener_filters_timeout
// passes (0: never), leaving the socket open, so that
// continue_on_listener_filters_timeout can go on with the connection. Lives
// in the connection coroutine's frame while the first bytes are read; a
// deadline that passes between reads is seen by expired(). One entry in the
// worker's DeadlineQueue, not a timer of its own.
class ListenerFilterDeadline {
 public:
  ListenerFilterDeadline(DeadlineQueue& deadlines, TcpSocket& socket,
                         std::chrono::milliseconds timeout)
      : socket_(socket), deadline_(deadlines, &ListenerFilterDeadline::onExpired, this) {
    deadline_.expiresAfter(timeout);  // 0: none
  }
  ListenerFilterDeadline(const ListenerFilterDeadline&) = delete;
  ListenerFilterDeadline& operator=(const ListenerFilterDeadline&) = delete;

  bool expired() const { return expired_; }

 private:
  static void onExpired(void* self) {
    auto& d = *static_cast<ListenerFilterDeadline*>(self);
    d.expired_ = true;
    boost::system::error_code ignored;
    d.socket_.cancel(ignored);
  }

  TcpSocket& socket_;
  DeadlineQueue::Deadline deadline_;  // removed from the queue with this frame
  bool expired_ = false;
};
// A TLS record starts with its content type: 22 is a handshake (RFC 8446
// §5.1), which is how tls_inspector tells TLS from plaintext.
constexpr unsigned char kTlsHandshakeRecord = 22;

http1::Http1Settings settingsFor(const DataPlaneConfigConstSharedPtr& config, size_t listener,
                                 size_t chain) {
  http1::Http1Settings s;
  const auto& hcm = config->listeners[listener]->filter_chains[chain].hcm;
  if (hcm && hcm->config != nullptr) {
    s.max_headers_kb = hcm->config->max_request_headers_kb;
    if (hcm->config->max_headers_count) s.max_headers_count = *hcm->config->max_headers_count;
  }
  return s;
}

}  // namespace

DownstreamConnection::DownstreamConnection(Worker& worker, DataPlaneConfigConstSharedPtr config,
                                           size_t listener_index, size_t chain_index,
                                           TcpSocket socket, asio::ip::tcp::endpoint remote,
                                           asio::ip::tcp::endpoint local, std::string_view initial)
    : worker_(worker),
      config_(std::move(config)),
      listener_index_(listener_index),
      chain_index_(chain_index),
      stream_(std::move(socket)),
      remote_(remote),
      local_(local),
      id_(Worker::next_connection_id_.fetch_add(1)),
      buffer_(256 * 1024),
      codec_(*this, settingsFor(config_, listener_index_, chain_index_)),
      stop_wait_(worker.io().get_executor()),
      read_deadline_(worker.deadlines(), &DownstreamConnection::onDeadline, this),
      write_deadline_(worker.deadlines(), &DownstreamConnection::onDeadline, this),
      started_(std::chrono::steady_clock::now()) {
  registration_ = worker_.registerConnection(this);
  if (!initial.empty()) {
    auto space = buffer_.prepare(initial.size());
    std::memcpy(space.data(), initial.data(), initial.size());
    buffer_.commit(initial.size());
  }
}

DownstreamConnection::~DownstreamConnection() { worker_.unregisterConnection(registration_); }

DataPlaneConfigConstSharedPtr streamConfigFor(const Worker& worker,
                                              const DataPlaneConfigConstSharedPtr& accepted,
                                              const ListenerRuntime& l) {
  const DataPlaneConfigConstSharedPtr& current = worker.config();
  if (!current || current == accepted) return accepted;
  const ListenerRuntimeConstSharedPtr* now = current->findListener(l.config->name);
  if (now == nullptr || (*now)->config != l.config) return accepted;
  return current;
}

const ListenerRuntime& listenerIn(const DataPlaneConfig& config,
                                  const DataPlaneConfigConstSharedPtr& accepted,
                                  const ListenerRuntime& l) {
  if (&config == accepted.get()) return l;
  const ListenerRuntimeConstSharedPtr* found = config.findListener(l.config->name);
  return found != nullptr ? **found : l;
}

const FilterChainRuntime& filterChainIn(const DataPlaneConfig& config,
                                        const DataPlaneConfigConstSharedPtr& accepted,
                                        const ListenerRuntime& l, size_t chain) {
  return listenerIn(config, accepted, l).filter_chains[chain];
}

DataPlaneConfigConstSharedPtr DownstreamConnection::streamConfig() const {
  return streamConfigFor(worker_, config_, listener());
}

const FilterChainRuntime& DownstreamConnection::filterChain(const DataPlaneConfig& config) const {
  return filterChainIn(config, config_, listener(), chain_index_);
}

void DownstreamConnection::onDeadline(void* self) {
  // As a Beast tcp_stream's timeout: the socket closes, and the operation
  // in progress ends with an error.
  auto* conn = static_cast<DownstreamConnection*>(self);
  conn->deadline_passed_ = true;
  boost::system::error_code ec;
  conn->stream_.socket().close(ec);
}

void DownstreamConnection::close() {
  closed_ = true;
  boost::system::error_code ec;
  stream_.socket().shutdown(TcpSocket::shutdown_both, ec);
  stream_.socket().close(ec);
}

Awaitable<void> DownstreamConnection::run(Worker& worker, DataPlaneConfigConstSharedPtr config,
                                          size_t listener_index, TcpSocket socket,
                                          asio::ip::tcp::endpoint remote,
                                          asio::ip::tcp::endpoint local) {
  using CodecType = config::HttpConnectionManagerConfig::CodecType;
  const ListenerRuntime& l = *config->listeners[listener_index];
  stats::Shard& shard = worker.shard();
  auto closeSocket = [](TcpSocket& s) {
    boost::system::error_code ec;
    s.shutdown(TcpSocket::shutdown_both, ec);
    s.close(ec);
  };
  std::string initial;
  bool input_closed = false;
  std::optional<size_t> chain_index;
  std::unique_ptr<tls::TlsTransport> tls;
  // The chain sees the local address as restored by original_dst.
  const config::MatchAddress local_match = toMatchAddress(local);
  const config::MatchAddress remote_match = toMatchAddress(remote);
  if (!l.inspects()) {
    // Addresses and ports only (a capture listener's destination_port
    // chains): chosen without reading.
    chain_index = l.selectFilterChain(
        config::FilterChainMatchInput{{}, "raw_buffer", {}, local_match, remote_match});
    if (!chain_index) {
      shard.inc(l.stats.no_filter_chain_match);
      closeSocket(socket);
      co_return;
    }
  } else {
    // Envoy's tls_inspector: the first bytes tell TLS from plaintext; a TLS
    // connection's chain is chosen from its ClientHello (SNI, ALPN) inside
    // the handshake, a plaintext one's right away. All of it within the
    // listener's listener_filters_timeout.
    const config::ListenerConfig& lc = *l.config;
    ListenerFilterDeadline deadline(worker.deadlines(), socket, lc.listener_filters_timeout);
    initial.resize(kReadChunk);
    boost::system::error_code ec;
    const size_t n = co_await socket.async_read_some(asio::buffer(initial),
                                                     asio::redirect_error(use_awaitable, ec));
    initial.resize(n);
    // Past the deadline: closed, or with continue_on_listener_filters_timeout
    // matched on what came so far (Envoy counts both).
    bool timed_out = n == 0 && deadline.expired();
    if (timed_out) shard.inc(l.stats.downstream_pre_cx_timeout);
    if (n == 0 && !(timed_out && lc.continue_on_listener_filters_timeout)) {
      // Gone, or silent past the timeout, before a chain could be chosen.
      closeSocket(socket);
      co_return;
    }
    const bool is_tls =
        !initial.empty() && static_cast<unsigned char>(initial[0]) == kTlsHandshakeRecord;
    // Envoy's http_inspector on a plaintext connection: its request line
    // (or the HTTP/2 preface) gives the application protocol.
    std::string_view detected_alpn;
    if (!is_tls && !timed_out && l.inspectsHttp()) {
      HttpInspection inspection = inspectHttp(initial);
      while (inspection == HttpInspection::NeedMore && initial.size() < kHttpInspectorMaxBytes) {
        if (deadline.expired()) {
          timed_out = true;
          break;
        }
        const size_t had = initial.size();
        initial.resize(kHttpInspectorMaxBytes);
        const size_t more = co_await socket.async_read_some(
            asio::buffer(initial.data() + had, initial.size() - had),
            asio::redirect_error(use_awaitable, ec));
        initial.resize(had + more);
        if (ec) {
          timed_out = deadline.expired();
          break;
        }
        inspection = inspectHttp(initial);
      }
      const stats::HttpInspectorStats& hs = *l.http_inspector_stats;
      if (inspection == HttpInspection::NeedMore) {
        if (timed_out) shard.inc(l.stats.downstream_pre_cx_timeout);
        if (!timed_out && !ec) shard.inc(hs.read_error);  // a line too long to tell
        if (!timed_out || !lc.continue_on_listener_filters_timeout) {
          // Gone, silent, or undecidable before the request line ended:
          // Envoy closes the connection.
          closeSocket(socket);
          co_return;
        }
      } else {
        shard.inc(inspection == HttpInspection::Http11   ? hs.http11_found
                  : inspection == HttpInspection::Http10 ? hs.http10_found
                  : inspection == HttpInspection::Http2  ? hs.http2_found
                                                         : hs.http_not_found);
        detected_alpn = applicationProtocolOf(inspection);
      }
    }
    const FilterChainRuntime* first_tls = is_tls ? l.firstTlsChain() : nullptr;
    if (first_tls != nullptr) {
      const ListenerRuntime* lp = &l;
      tls = std::make_unique<tls::TlsTransport>(
          first_tls->tls->current(),
          [lp, local_match, remote_match](const tls::ClientHello& hello) {
            config::FilterChainMatchInput input{hello.server_name, "tls", hello.alpn, local_match,
                                                remote_match};
            std::optional<size_t> i = lp->selectFilterChain(input);
            // A plaintext chain cannot take a TLS connection: closed, as
            // Envoy's HCM would on the ClientHello's bytes.
            if (!i || !lp->filter_chains[*i].tls) return tls::ServerContextChoice{};
            return tls::ServerContextChoice{lp->filter_chains[*i].tls->current(), *i};
          });
    } else {
      // No chain serves TLS: the ClientHello cannot be read, so it matches
      // as one without SNI or ALPN.
      const std::array<std::string_view, 1> offered{detected_alpn};
      chain_index = l.selectFilterChain(config::FilterChainMatchInput{
          {},
          is_tls ? "tls" : "raw_buffer",
          detected_alpn.empty() ? std::span<const std::string_view>()
                                : std::span<const std::string_view>(offered),
          local_match,
          remote_match});
      if (!chain_index) {
        shard.inc(l.stats.no_filter_chain_match);
        closeSocket(socket);
        co_return;
      }
    }
  }
  if (!tls && chain_index && *chain_index < l.filter_chains.size() &&
      l.filter_chains[*chain_index].tls) {
    tls = std::make_unique<tls::TlsTransport>(l.filter_chains[*chain_index].tls->current());
  }
  if (tls) {
    // TLS first (what was read already is its start); then ALPN picks the
    // protocol: h2 for HTTP/2 (unless the HCM is HTTP1), anything else
    // HTTP/1.1 (unless it is HTTP2).
    tls->feed(initial);
    initial.clear();
    // One deadline for the whole handshake: the connection idle timeout of
    // the chain (before SNI picks it: of the chain the handshake starts on).
    const FilterChainRuntime* hs_chain =
        chain_index ? &l.filter_chains[*chain_index] : l.firstTlsChain();
    TcpStream hs(std::move(socket));
    hs.expires_after(orForever(hs_chain->hcm         ? hs_chain->hcm->config->idle_timeout
                               : hs_chain->tcp_proxy ? hs_chain->tcp_proxy->config->idle_timeout
                                                     : std::chrono::milliseconds(0)));
    const boost::system::error_code hs_ec = co_await runTlsHandshake(hs, *tls, l.ssl_stats, shard);
    socket = hs.release_socket();
    if (tls->refused()) {
      TURNOUT_LOG(debug, "conn", "no filter chain for the TLS connection from {}",
                  remote.address().to_string());
      shard.inc(l.stats.no_filter_chain_match);
      closeSocket(socket);
      co_return;
    }
    if (hs_ec) {
      TURNOUT_LOG(debug, "conn", "TLS handshake from {} failed", remote.address().to_string());
      // Counted as a connection of the listener, as Envoy does.
      shard.inc(l.stats.downstream_cx_total);
      shard.inc(l.stats.downstream_cx_destroy);
      closeSocket(socket);
      co_return;
    }
    if (!chain_index) chain_index = tls->selectedTag();
  }
  if (!chain_index || *chain_index >= l.filter_chains.size()) {
    // A listener without filter chains.
    shard.inc(l.stats.no_filter_chain_match);
    closeSocket(socket);
    co_return;
  }
  const FilterChainRuntime& chain = l.filter_chains[*chain_index];
  if (chain.tcp_proxy) {
    // Bytes, not HTTP: relayed as they come (what was read to pick the
    // chain first).
    co_await TcpProxyConnection::run(worker, std::move(config), listener_index, *chain_index,
                                     std::move(socket), remote, local, std::move(initial),
                                     std::move(tls));
    co_return;
  }
  const CodecType type = chain.hcm ? chain.hcm->config->codec_type : CodecType::Http1;
  bool h2 = type == CodecType::Http2;
  if (tls) {
    if (tls->alpn() == "h2") h2 = type != CodecType::Http1;
  } else if (type == CodecType::Auto) {
    // Envoy's AUTO: HTTP/2 when the connection starts with the client
    // preface (h2c with prior knowledge), else HTTP/1. Reads until the bytes
    // tell, within the connection idle timeout.
    const auto idle = orForever(chain.hcm->config->idle_timeout);
    TcpStream probe(std::move(socket));
    bool eof = false;
    while (initial.size() < kHttp2Preface.size() && kHttp2Preface.starts_with(initial)) {
      // A whole read chunk: the bytes after the first 24 are the start of
      // either protocol's stream, handed on below.
      probe.expires_after(idle);
      const size_t had = initial.size();
      initial.resize(had + kReadChunk);
      boost::system::error_code ec;
      const size_t n = co_await probe.async_read_some(
          asio::buffer(initial.data() + had, kReadChunk), asio::redirect_error(use_awaitable, ec));
      initial.resize(had + n);
      if (ec) {
        eof = true;
        break;
      }
    }
    socket = probe.release_socket();
    h2 = !eof && std::string_view(initial).starts_with(kHttp2Preface);
    // EOF within the first 24 bytes: what came is the start of the preface
    // (no complete HTTP/1 request). The HTTP/1 side closes without reading
    // again (asio would wait for another readiness edge that never comes).
    input_closed = eof;
  }
  if (h2) {
    co_await Http2DownstreamConnection::run(worker, std::move(config), listener_index,
                                            *chain_index, std::move(socket), remote, local,
                                            std::move(initial), std::move(tls));
  } else {
    co_await runHttp1(worker, std::move(config), listener_index, *chain_index, std::move(socket),
                      remote, local, std::move(initial), input_closed, std::move(tls));
  }
}

Awaitable<void> DownstreamConnection::runHttp1(Worker& worker, DataPlaneConfigConstSharedPtr config,
                                               size_t listener_index, size_t chain_index,
                                               TcpSocket socket, asio::ip::tcp::endpoint remote,
                                               asio::ip::tcp::endpoint local, std::string initial,
                                               bool input_closed,
                                               std::unique_ptr<tls::TlsTransport> tls) {
  DownstreamConnection conn(worker, std::move(config), listener_index, chain_index,
                            std::move(socket), remote, local, initial);
  std::string().swap(initial);  // copied into the connection's buffer; its read chunk goes
  conn.input_closed_ = input_closed;
  conn.tls_ = std::move(tls);
  const ListenerRuntime& l = conn.listener();
  const auto& hcm = conn.filterChain().hcm;
  stats::Shard& shard = worker.shard();
  shard.inc(l.stats.downstream_cx_total);
  shard.add(l.stats.downstream_cx_active, 1);
  if (hcm) {
    shard.inc(hcm->stats.downstream_cx_total);
    shard.add(hcm->stats.downstream_cx_active, 1);
    shard.inc(hcm->stats.downstream_cx_http1_total);
    shard.add(hcm->stats.downstream_cx_http1_active, 1);
    co_await conn.serve();
    co_await conn.lingerClose();
    shard.sub(hcm->stats.downstream_cx_active, 1);
    shard.sub(hcm->stats.downstream_cx_http1_active, 1);
    shard.inc(hcm->stats.downstream_cx_destroy);
  } else {
    shard.inc(l.stats.no_filter_chain_match);
  }
  conn.close();
  shard.sub(l.stats.downstream_cx_active, 1);
  shard.inc(l.stats.downstream_cx_destroy);
  shard.record(l.stats.downstream_cx_length_ms,
               static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                         std::chrono::steady_clock::now() - conn.started_)
                                         .count()));
}

bool DownstreamConnection::decodeBuffered() {
  auto data = buffer_.data();
  auto consumed = codec_.decode(
      std::span<const char>(static_cast<const char*>(data.data()), data.size()));
  if (!consumed.ok()) return false;
  buffer_.consume(*consumed);
  return true;
}

Awaitable<void> DownstreamConnection::serve() {
  const HttpConnectionManagerRuntime& hcm = *filterChain().hcm;
  const std::chrono::milliseconds idle = hcm.config->idle_timeout;  // 0: none
  const std::chrono::milliseconds stream_idle = hcm.config->stream_idle_timeout;
  while (!closed_) {
    // Wait for the next request head.
    while (head_ == nullptr) {
      if (!decodeBuffered()) {
        co_await replyCodecError();
        co_return;
      }
      if (head_ != nullptr) break;
      // Not when merely draining: the client may be sending its next
      // request on this keep-alive connection already, and closing would
      // fail it (RemoteDisconnected). That request gets `Connection: close`;
      // an idle one ends at the idle timeout or when the worker stops, as
      // Envoy keeps a draining listener's connections until the drain ends.
      if (closed_) co_return;
      const bool mid_request = buffer_.size() > 0;
      if (input_closed_) co_return;  // EOF seen while probing the protocol
      if (!mid_request) {
        // Idle between requests: give back what a large head, a body or a
        // large response grew (freed once per such request, kept for
        // small ones).
        if (buffer_.capacity() > kIdleReadChunk) buffer_.shrink_to_fit();
        if (body_.empty() && body_.capacity() > kIdleReadChunk) std::string().swap(body_);
        if (tls_in_.size() > kIdleReadChunk) std::string().swap(tls_in_);
        if (tls_wire_.capacity() > kIdleReadChunk) std::string().swap(tls_wire_);
      }
      read_deadline_.expiresAfter(mid_request ? stream_idle : idle);
      boost::system::error_code ec;
      const size_t chunk = mid_request ? kReadChunk : kIdleReadChunk;
      if (tls_) {
        co_await readTls(ec, chunk);
      } else {
        size_t n = 0;
        co_await readInq(stream_.socket(), buffer_.prepare(chunk), &ec, &n);
        if (!ec) buffer_.commit(n);
      }
      read_deadline_.clear();
      if (ec) {
        if (deadline_passed_ && mid_request) {
          worker_.shard().inc(hcm.stats.downstream_rq_header_timeout);
        }
        co_return;  // EOF, reset, idle timeout: nothing to answer
      }
    }
    RequestHead& head = *head_;
    {
      ActiveStream stream(*this, head);
      co_await stream.run();
      if (stream.closeConnection()) co_return;
    }
    head_ = nullptr;
    // A drain that began after this response's head went out (without
    // `Connection: close`) lets the next request through, which says it.
    if (codec_.shouldClose()) co_return;
  }
}

Awaitable<void> DownstreamConnection::lingerClose() {
  // A response sent before its request was read whole (an early 413, a
  // codec error): closing now with unread bytes in the socket would send a
  // reset that can destroy the response before the client reads it. As
  // Envoy's delayed close does, end our side and read (and drop) what the
  // client still sends, for at most a second.
  const bool unread_request = head_ != nullptr && !request_complete_;
  if (closed_ || !(unread_request || codec_.error() != CodecErrorCode::kNone)) co_return;
  boost::system::error_code ec;
  stream_.socket().shutdown(TcpSocket::shutdown_send, ec);
  if (ec) co_return;
  const auto until = std::chrono::steady_clock::now() + kDelayedClose;
  std::array<char, 16 * 1024> sink;
  for (int i = 0; i < 4096 && std::chrono::steady_clock::now() < until; ++i) {
    stream_.expires_at(until);
    co_await stream_.async_read_some(asio::buffer(sink), asio::redirect_error(use_awaitable, ec));
    if (ec) break;
  }
}

Awaitable<void> DownstreamConnection::replyCodecError() {
  const CodecErrorInfo info = codecErrorInfo(codec_.error());
  const HttpConnectionManagerRuntime& hcm = *filterChain().hcm;
  worker_.shard().inc(hcm.stats.downstream_cx_protocol_error);
  TURNOUT_CONN_LOG(debug, "conn", id_, "codec error: {}", info.details);
  if (info.downstream_status == 431) worker_.shard().inc(hcm.stats.downstream_rq_too_large);
  hcm.stats.countResponse(worker_.shard(), info.downstream_status);
  hcm.listener_http_stats.countResponse(worker_.shard(), info.downstream_status);
  ResponseHead head;
  LocalReply reply;
  reply.status = info.downstream_status;
  reply.body = info.details;
  reply.close_connection = true;
  out_.clear();
  encodeLocalReply(*this, reply, worker_.httpDate(), hcm.config->server_name, head);
  co_await write(std::chrono::seconds(5));
}

void DownstreamConnection::beginTunnelBody() {
  tunnel_body_ = true;
  // The head's own framing (an upgrade GET or a CONNECT has no body) said
  // complete; the tunnel's end is the client's FIN.
  request_complete_ = input_closed_;
}

Awaitable<bool> DownstreamConnection::readBody(std::chrono::milliseconds timeout) {
  const size_t before = body_.size();
  for (;;) {
    if (tunnel_body_) {
      // A tunnel's payload (beginTunnelBody): the bytes the client sent
      // behind the head (or that the watch read) first, as they are; the
      // codec never parses them.
      if (buffer_.size() > 0) {
        auto d = buffer_.data();
        body_.append(static_cast<const char*>(d.data()), d.size());
        buffer_.consume(d.size());
        co_return true;
      }
      if (request_complete_) co_return true;
      if (closed_) co_return false;
    } else {
      if (!decodeBuffered()) co_return false;
      if (body_.size() > before || request_complete_) co_return true;
      if (closed_ || input_closed_) co_return false;
      if (!codec_.inRequest()) {
        // The response ended the exchange first (an early 405 or 413): the
        // codec takes no more of this request, so reading on would only fill
        // the buffer. Wait for the router to stop the body pump (it calls
        // stopReading() after this wait began: the pump never reads again
        // once told to stop).
        boost::system::error_code ec;
        co_await waitOn(stop_wait_, &ec);
        co_return false;
      }
    }
    read_deadline_.expiresAfter(timeout);
    boost::system::error_code ec;
    if (tls_) {
      co_await readTls(ec, kReadChunk);
    } else {
      size_t n = 0;
      co_await readInq(stream_.socket(), buffer_.prepare(kReadChunk), &ec, &n);
      if (!ec) buffer_.commit(n);
    }
    read_deadline_.clear();
    if (tunnel_body_ && ec == asio::error::eof && !deadline_passed_) {
      request_complete_ = true;  // the client ended its side of the tunnel
      co_return true;
    }
    if (ec) co_return false;
  }
}

Awaitable<void> DownstreamConnection::readTls(boost::system::error_code& ec, size_t chunk) {
  // Plaintext the transport already holds first (records that came with the
  // handshake's last flight), then ciphertext from the socket until some
  // plaintext comes out. The caller set the stream's deadline.
  for (;;) {
    // The thread's scratch holds the plaintext only until it is copied
    // into the buffer, with no suspension in between.
    std::string& plain = readScratch().plain;
    plain.clear();
    const tls::TlsTransport::Result r = tls_->read(plain);
    if (!plain.empty()) {
      auto space = buffer_.prepare(plain.size());
      std::memcpy(space.data(), plain.data(), plain.size());
      buffer_.commit(plain.size());
      co_return;
    }
    if (r == tls::TlsTransport::Result::kClosed) {
      ec = asio::error::eof;
      co_return;
    }
    if (r == tls::TlsTransport::Result::kError) {
      ec = asio::error::connection_reset;
      co_return;
    }
    if (tls_->hasOutput()) {  // a TLS 1.3 key update answer, say
      tls_wire_.clear();
      tls_->takeOutput(tls_wire_);
      co_await writeAll(stream_.socket(), asio::buffer(tls_wire_), &ec);
      if (ec) co_return;
    }
    if (tls_in_.size() < chunk) tls_in_.resize(chunk);  // zero-filled once, when it grows
    size_t n = 0;
    co_await readInq(stream_.socket(), asio::buffer(tls_in_.data(), chunk), &ec, &n);
    if (ec) co_return;
    tls_->feed(std::span<const char>(tls_in_.data(), n));
  }
}

void DownstreamConnection::watchForClose(PendingRequest& pending) {
  watched_ = &pending;
  watch_fed_ = 0;
  if (!watching_) armWatch();
}

void DownstreamConnection::armWatch() {
  watching_ = true;
  stream_.socket().async_wait(TcpSocket::wait_read,
                              [this](const boost::system::error_code& ec) { onWatchReady(ec); });
}

void DownstreamConnection::onWatchReady(const boost::system::error_code& ec) {
  watching_ = false;
  if (watched_ == nullptr) return;  // stopped
  if (ec) {
    watched_->cancel();
    return;
  }
  const size_t room = buffer_.max_size() - buffer_.size();
  if (room == 0) return;  // nothing more can be read now, so nothing more can be seen
  const size_t want = std::min(room, kReadChunk);
  // TLS: the ciphertext goes into the transport (decrypted by the next
  // readTls()), within the same bound as plaintext bytes.
  // TLS: read into the thread's scratch and fed at once.
  char* into = tls_ ? readScratch().bytes.get() : static_cast<char*>(buffer_.prepare(want).data());
  const ssize_t n = ::recv(stream_.socket().native_handle(), into, want, MSG_DONTWAIT);
  if (n > 0 && tls_) {
    tls_->feed(std::span<const char>(into, static_cast<size_t>(n)));
    watch_fed_ += static_cast<size_t>(n);
    if (watch_fed_ < kMaxWatchCiphertext) armWatch();
  } else if (n > 0) {
    buffer_.commit(static_cast<size_t>(n));
    armWatch();
  } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
    armWatch();
  } else {
    watched_->cancel();  // EOF or a socket error: the client is gone
  }
}

Awaitable<void> DownstreamConnection::stopWatching() {
  watched_ = nullptr;
  if (!watching_) co_return;
  boost::system::error_code ec;
  stream_.socket().cancel(ec);
  // The cancelled wait's handler is queued ahead of this coroutine's
  // continuation on the worker's single-threaded io_context; after it has run
  // nothing refers to the request any more.
  for (int i = 0; watching_ && i < 64; ++i) {
    co_await asio::post(stream_.get_executor(), use_awaitable);
  }
  if (watching_) {
    TURNOUT_CONN_LOG(err, "conn", id_, "close watch still armed after cancel; closing");
    close();
  }
}

Awaitable<bool> DownstreamConnection::write(std::chrono::milliseconds timeout) {
  if (out_.empty()) co_return true;
  if (closed_) co_return false;
  boost::system::error_code ec;
  if (tls_) {
    const bool encrypted = tls_->write(std::span<const char>(out_.data(), out_.size()));
    out_.clear();
    if (!encrypted) co_return false;
    tls_wire_.clear();
    tls_->takeOutput(tls_wire_);
    write_deadline_.expiresAfter(timeout);
    co_await writeAll(stream_.socket(), asio::buffer(tls_wire_), &ec);
    write_deadline_.clear();
    co_return !ec;
  }
  write_deadline_.expiresAfter(timeout);
  co_await writeAll(stream_.socket(), asio::buffer(out_), &ec);
  write_deadline_.clear();
  out_.clear();
  co_return !ec;
}

// Not a coroutine: the caller awaits write()'s own (one frame, not two).
Awaitable<bool> DownstreamConnection::flush(std::chrono::milliseconds timeout) {
  return write(timeout);
}

bool DownstreamConnection::tryFlush() {
  if (out_.empty()) return true;
  if (closed_ || tls_) return false;
  // A failed send leaves out_ for write(), which fails the same way and
  // says so.
  return sendNow(stream_.socket(), out_) == SendNow::kAll;
}

std::string_view DownstreamConnection::protocol() const {
  return head_ != nullptr && head_->version_minor == 0 ? "HTTP/1.0" : "HTTP/1.1";
}

void DownstreamConnection::stopReading() {
  stop_wait_.notify();
  boost::system::error_code ec;
  stream_.socket().cancel(ec);
}

void DownstreamConnection::encodeHeaders(ResponseHead& head, bool end_stream) {
  codec_.encodeHeaders(head, end_stream, out_);
}

void DownstreamConnection::encodeData(std::span<const char> data, bool end_stream) {
  codec_.encodeData(data, end_stream, out_);
}

void DownstreamConnection::encodeTrailers(const HeaderMap& trailers) {
  codec_.encodeTrailers(trailers, out_);
}

void DownstreamConnection::encode100Continue() { out_ += "HTTP/1.1 100 Continue\r\n\r\n"; }

void DownstreamConnection::onMessageBegin() {
  head_ = nullptr;
  tunnel_body_ = false;
  head_end_stream_ = false;
  request_complete_ = false;
  trailers_ = nullptr;
  body_.clear();
}

void DownstreamConnection::onHeaders(RequestHead& head, bool end_stream) {
  head_ = &head;
  // HTTP/1 has no :scheme: the connection says it (an absolute-form target's
  // scheme is the client's word only).
  if (tls_) head.scheme = "https";
  head_end_stream_ = end_stream;
  if (end_stream) request_complete_ = true;
}

void DownstreamConnection::onData(std::span<const char> data, bool end_stream) {
  body_.append(data.data(), data.size());
  if (end_stream) request_complete_ = true;
}

void DownstreamConnection::onTrailers(HeaderMap& trailers) {
  trailers_ = &trailers;
  request_complete_ = true;
}

void DownstreamConnection::onMessageComplete() { request_complete_ = true; }

}  // namespace turnout::proxy
