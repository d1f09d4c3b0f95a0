#include "proxy/upstream/auto_conn_pool.h"

namespace turnout::proxy {

Awaitable<ConnPool::NewStreamResult> AutoConnPool::newStream(
    PendingRequest* pending, std::chrono::steady_clock::time_point deadline) {
  // The HTTP/2 side hands a request back at most once: after that the host's
  // protocol is HTTP/1.1 and chosen() is the HTTP/1 side.
  NewStreamResult r = co_await chosen().newStream(pending, deadline);
  if (r.protocol_changed) r = co_await chosen().newStream(pending, deadline);
  co_return r;
}

}  // namespace turnout::proxy
