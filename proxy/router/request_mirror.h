#pragma once

#include <chrono>
#include <span>
#include <string>
#include <string_view>

#include "proxy/codec/codec.h"
#include "routing/route_config.h"
#include "routing/request_view.h"

namespace turnout::proxy {

class Worker;

// Envoy's request mirroring (route request_mirror_policies): a fire-and-
// forget copy of the request, as sent to the primary cluster, goes to each
// mirror cluster whose runtime_fraction admits it, with "-shadow" appended to
// the host (before any port) unless disable_shadow_host_suffix_append. The
// mirror's response is read and dropped; it never delays or changes the
// primary exchange. Runs on `worker`; the copies are owned by the spawned
// coroutines. `body` is the complete request body.
void startRequestMirrors(Worker& worker, std::span<const routing::RequestMirrorPolicy> policies,
                         const RequestHead& head, std::string_view body, uint64_t random,
                         std::chrono::milliseconds timeout);

// "foo.com" -> "foo.com-shadow", "foo.com:8080" -> "foo.com-shadow:8080",
// "[::1]:80" -> "[::1]-shadow:80" (Envoy's shadowAppendedHost).
std::string shadowHost(std::string_view host);

}  // namespace turnout::proxy
