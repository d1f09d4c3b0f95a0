#pragma once

// The requests of a run, built once before it starts: one template per
// (route, routing key), with its HTTP/1.1 head already serialised, so the hot
// path only hands bytes to the socket. Immutable once built and shared by
// every worker thread.

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "bench/turnout_bench/bench_options.h"

namespace turnout::bench {

struct RequestTemplate {
  uint32_t route = 0;  // index into BenchOptions::paths
  uint32_t key = 0;    // index into KeyMix::shares()
  std::string method;
  std::string scheme;  // "http" or "https"
  std::string path;
  std::string authority;
  // Every field as sent (lowercase names, routing key included, host and
  // framing fields excluded): what an HTTP/2 session would encode.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string http1_head;  // request line and fields, through the blank line
  std::string_view body;   // the shared filler (RequestSet owns it)
};

class RequestSet {
 public:
  explicit RequestSet(const BenchOptions& options);
  RequestSet(const RequestSet&) = delete;
  RequestSet& operator=(const RequestSet&) = delete;

  const RequestTemplate& get(uint32_t route, uint32_t key) const {
    return templates_[route * key_count_ + key];
  }
  uint32_t routeCount() const { return route_count_; }
  uint32_t keyCount() const { return key_count_; }

 private:
  uint32_t route_count_;
  uint32_t key_count_;
  std::string body_;
  std::vector<RequestTemplate> templates_;
};

// The header that carries `key` under `key_header` ("baggage": the member
// turnout-routing-key=<key>; "tracestate": turnout=<key>; other names: the
// key itself), merged into `headers`: appended to an existing baggage,
// prepended to an existing tracestate (the newest member goes first), and
// replacing an existing plain header. Exposed for tests.
void applyRoutingKey(std::vector<std::pair<std::string, std::string>>& headers,
                     std::string_view key_header, std::string_view key);

}  // namespace turnout::bench
