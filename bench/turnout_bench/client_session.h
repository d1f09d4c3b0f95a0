#pragma once

// The seam between the load loop and a protocol: one client connection to
// the target: HTTP/1.1 (Http1Session) or h2c (Http2Session); TLS next. A LoadWorker
// owns its sessions and drives each from coroutines on its own io_context;
// nothing here is thread-safe.
//
// Contract:
// - connect() (re)opens the connection; exchange() sends one request and
//   completes when its response has been read in full. A protocol that
//   multiplexes (h2c) may let several coroutines await exchange() on one
//   session at once; HTTP/1.1 callers await one at a time.
// - Peer behaviour never throws: it comes back as an ErrorKind (or a retry),
//   and after any error the session is closed (isOpen() false) until
//   connect() again. A session also closes itself when the server ends the
//   connection gracefully (Connection: close, GOAWAY).
// - Every operation carries a deadline. The worker's watchdog calls
//   expireIfPast(now) a few times a second; a session past its deadline
//   closes itself and the operation in progress fails with kTimeout.
// - close() may be called at any time (the run is ending); the operation in
//   progress then fails, and the worker, which knows it is stopping, ignores
//   the failure.
// - RequestTemplate references must outlive the exchange (RequestSet lives
//   for the whole run).

#include <chrono>
#include <cstdint>
#include <string_view>

#include "bench/turnout_bench/request_set.h"
#include "proxy/common/asio.h"

namespace turnout::bench {

using Clock = std::chrono::steady_clock;

enum class ErrorKind : uint8_t {
  kNone = 0,
  kConnect,  // connect refused, unreachable, or over the timeout
  kRead,     // read failed, or the peer closed before the response was complete
  kWrite,    // write failed
  kTimeout,  // the request passed --timeout
  kParse,    // the response is not valid HTTP
};
inline constexpr size_t kErrorKindCount = 6;

// "connect", "read", ... ("none" for kNone).
std::string_view errorKindName(ErrorKind kind);

struct ExchangeResult {
  ErrorKind error = ErrorKind::kNone;
  uint16_t status = 0;      // final response status when error == kNone
  uint64_t bytes_read = 0;  // bytes received for this exchange
  // The server never processed the request (a reused keep-alive connection
  // it had closed, a stream refused after its GOAWAY): the caller sends it
  // again on a new connection. error is kNone.
  bool retry = false;
};

class ClientSession {
 public:
  virtual ~ClientSession() = default;

  // Opens a fresh connection (closing any previous one). kNone on success.
  virtual Awaitable<ErrorKind> connect(Clock::time_point deadline) = 0;
  virtual bool isOpen() const = 0;
  // Sends `request` and reads its response.
  virtual Awaitable<ExchangeResult> exchange(const RequestTemplate& request,
                                             Clock::time_point deadline) = 0;
  virtual void close() = 0;
  virtual void expireIfPast(Clock::time_point now) = 0;
};

}  // namespace turnout::bench
