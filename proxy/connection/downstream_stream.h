#pragma once

// The downstream side's protocol-neutral seam (Envoy's ResponseEncoder and
// the stream's view of its connection; stages 3-4 and 9 of
// docs/life_of_a_request.md).
//
// A DownstreamStream is one request/response exchange with a client. The
// connection manager (ActiveStream) and the router (RouterFilter) see the
// client only through it, so that HTTP/1 (DownstreamConnection: one stream at
// a time on the connection) and HTTP/2 (Http2DownstreamConnection: many
// multiplexed streams) serve the same filters, routes and upstreams.
//
// Who calls it: the worker thread that owns the connection, only. Lifetime:
// the stream outlives the ActiveStream that serves it.

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/common/asio.h"

#include "proxy/codec/codec.h"
#include "proxy/server/data_plane_config.h"

namespace turnout::proxy {

class DownstreamConnection;
class PendingRequest;
class Worker;

// What the worker holds of every downstream connection it serves: enough to
// drain it (a listener removed or the server draining) or close it (stop).
class ConnectionHandle {
 public:
  virtual ~ConnectionHandle() = default;
  // The listener the connection was accepted on (in its own config).
  virtual const ListenerRuntime& listener() const = 0;
  // Finish what is in flight, accept nothing new, then close (HTTP/1:
  // `Connection: close` on the current response; HTTP/2: GOAWAY).
  virtual void drain() = 0;
  // Close the socket now.
  virtual void close() = 0;
};

// The config a new stream on a connection accepted with `accepted` on its
// listener `l` runs on: the worker's current one while it has that listener
// unchanged (an RDS update keeps the ListenerConfig; an LDS change or removal
// does not, and the connection then drains on the config it was accepted
// with). Both connection kinds use it.
DataPlaneConfigConstSharedPtr streamConfigFor(const Worker& worker,
                                              const DataPlaneConfigConstSharedPtr& accepted,
                                              const ListenerRuntime& l);
// `l`'s listener in `config` (a result of streamConfigFor()).
const ListenerRuntime& listenerIn(const DataPlaneConfig& config,
                                  const DataPlaneConfigConstSharedPtr& accepted,
                                  const ListenerRuntime& l);
// Filter chain `chain` of `l`'s listener in `config` (the same ListenerConfig,
// so the same chains).
const FilterChainRuntime& filterChainIn(const DataPlaneConfig& config,
                                        const DataPlaneConfigConstSharedPtr& accepted,
                                        const ListenerRuntime& l, size_t chain);

class DownstreamStream {
 public:
  virtual ~DownstreamStream() = default;

  // ---- The connection ----
  virtual Worker& worker() = 0;
  virtual uint64_t connectionId() const = 0;
  virtual const asio::ip::tcp::endpoint& remote() const = 0;
  virtual const asio::ip::tcp::endpoint& local() const = 0;
  // The config a new stream runs on (ActiveStream pins it for the stream):
  // the worker's current one while it has the connection's listener
  // unchanged, else the one the connection was accepted with.
  virtual DataPlaneConfigConstSharedPtr streamConfig() const = 0;
  // The connection's filter chain (chosen when it was accepted) in `config`
  // (a result of streamConfig()).
  virtual const FilterChainRuntime& filterChain(const DataPlaneConfig& config) const = 0;
  // The connection is draining: no request after this one.
  virtual bool draining() const = 0;
  // The access log's %PROTOCOL%: "HTTP/1.0", "HTTP/1.1" or "HTTP/2".
  virtual std::string_view protocol() const = 0;
  // The connection is TLS (x-forwarded-proto: https, as Envoy sets it from
  // the connection rather than from what the client claims).
  virtual bool secure() const = 0;
  // Scratch for routing views, reused across the connection's requests.
  virtual std::vector<routing::HeaderEntry>& entriesBuffer() = 0;

  // ---- The request body ----
  // Body bytes decoded since the router last took them (it clears the
  // string); whether the request has ended; its trailers, if any.
  virtual std::string& pendingBody() = 0;
  virtual bool requestComplete() const = 0;
  virtual const HeaderMap* requestTrailers() const = 0;
  // Waits until some body arrives or the request ends. Bytes the router took
  // since the last call count as forwarded (HTTP/2 returns them to the
  // client's flow-control window only now). False on a read error, a reset,
  // the timeout, stopReading() or a codec error (codecError() tells which).
  virtual Awaitable<bool> readBody(std::chrono::milliseconds timeout) = 0;
  virtual CodecErrorCode codecError() const = 0;
  // Makes a pending readBody() return false (the response ended early).
  virtual void stopReading() = 0;
  // While the request waits for an upstream stream: the client going away
  // cancels `pending`. stopWatching() must be awaited before `pending` goes
  // away.
  virtual void watchForClose(PendingRequest& pending) = 0;
  virtual Awaitable<void> stopWatching() = 0;

  // ---- The response ----
  // Encoders, in the order headers (1xx first if any), data*, trailers?;
  // end of stream exactly once. `head.close_connection` asks HTTP/1 to close
  // after this response (HTTP/2 ignores it).
  virtual void encodeHeaders(ResponseHead& head, bool end_stream) = 0;
  virtual void encodeData(std::span<const char> data, bool end_stream) = 0;
  virtual void encodeTrailers(const HeaderMap& trailers) = 0;
  // The interim "100 Continue" for a request that expects it.
  virtual void encode100Continue() = 0;
  // Drops response bytes encoded but not yet flushed (a local reply
  // replaces them).
  virtual void discardUnflushed() = 0;
  // Sends what the encoders produced; completes once the bytes have left
  // the stream's buffer (the backpressure on the upstream reader). False:
  // the client is gone, reset the stream, or the timeout expired.
  virtual Awaitable<bool> flush(std::chrono::milliseconds timeout) = 0;
  // flush() when it would complete at once with true: does it and returns
  // true, with no coroutine made and resumed (a flush per response on the
  // hot path). False: await flush() for the rest (HTTP/1 may have written
  // part of it already; HTTP/1 over TLS always awaits).
  virtual bool tryFlush() { return false; }

  // The request is a tunnel carried on a multiplexed upstream stream (an
  // upgrade or a CONNECT sent as HTTP/2 (extended) CONNECT): its body is the
  // tunnel's payload, to the client's end of it. HTTP/2 streams carry it as
  // DATA already; HTTP/1 makes every byte after the head, up to the
  // client's FIN (or TLS close_notify), the body (readBody() delivers them
  // as they come, requestComplete() turns true at the FIN).
  virtual void beginTunnelBody() {}

  // ---- HTTP/1 only ----
  // The codec requires closing after this exchange (HTTP/1.0, Connection:
  // close from the client, an upgrade).
  virtual bool closeAfterResponse() const { return false; }
  // A 101 was sent: the connection now carries raw bytes.
  virtual bool upgraded() const { return false; }
  // The HTTP/1 connection under the stream (a tunnel after an upgrade).
  virtual DownstreamConnection* http1() { return nullptr; }
  // An upgrade (WebSocket, CONNECT) can be tunnelled: HTTP/1, plaintext or
  // TLS; HTTP/2, an extended CONNECT (RFC 8441, with allow_connect) in its
  // stream (StreamTunnel); otherwise the upgrade is refused with 403.
  virtual bool canTunnel() const { return false; }
};

}  // namespace turnout::proxy
