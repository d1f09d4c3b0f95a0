#include "bench/turnout_bench/request_set.h"

#include <algorithm>

#include "proxy/codec/http1_client_codec.h"

namespace turnout::bench {
namespace {

// The client codec is used here as an encoder only.
class NoResponses final : public proxy::ResponseDecoderCallbacks {
 public:
  void onMessageBegin() override {}
  void onHeaders(proxy::ResponseHead&, bool) override {}
  void onData(std::span<const char>, bool) override {}
  void onTrailers(proxy::HeaderMap&) override {}
  void onMessageComplete() override {}
  void onInformational(proxy::ResponseHead&) override {}
};

std::string serialiseHttp1(const RequestTemplate& t, uint64_t body_size) {
  NoResponses callbacks;
  proxy::http1::ClientCodec codec(callbacks);
  proxy::RequestHead head;
  head.method = t.method;
  head.path = t.path;
  head.authority = t.authority;
  for (const auto& [name, value] : t.headers) {
    if (name == "connection") {
      head.close_connection = value.find("close") != std::string::npos;
      continue;
    }
    head.headers.add(name, value);
  }
  if (body_size > 0) head.headers.add("content-length", std::to_string(body_size));
  std::string out;
  codec.encodeHeaders(head, /*end_stream=*/body_size == 0, out);
  return out;
}

}  // namespace

void applyRoutingKey(std::vector<std::pair<std::string, std::string>>& headers,
                     std::string_view key_header, std::string_view key) {
  auto it = std::find_if(headers.begin(), headers.end(),
                         [&](const auto& h) { return h.first == key_header; });
  std::string member;
  if (key_header == "baggage") {
    member = "turnout-routing-key=" + std::string(key);
    if (it != headers.end()) {
      it->second = it->second.empty() ? member : it->second + "," + member;
      return;
    }
  } else if (key_header == "tracestate") {
    member = "turnout=" + std::string(key);
    if (it != headers.end()) {
      it->second = it->second.empty() ? member : member + "," + it->second;
      return;
    }
  } else {
    member = std::string(key);
    if (it != headers.end()) {
      it->second = member;
      return;
    }
  }
  headers.emplace_back(std::string(key_header), std::move(member));
}

RequestSet::RequestSet(const BenchOptions& options)
    : route_count_(static_cast<uint32_t>(options.paths.size())),
      key_count_(static_cast<uint32_t>(options.key_mix.shares().size())),
      body_(options.body_size, 'x') {
  std::string authority = options.target.authority;
  std::vector<std::pair<std::string, std::string>> base;
  for (const auto& h : options.headers) {
    if (h.first == "host") {
      authority = h.second;  // -H host overrides the URL's
    } else {
      base.push_back(h);
    }
  }
  templates_.reserve(size_t{route_count_} * key_count_);
  for (uint32_t r = 0; r < route_count_; ++r) {
    for (uint32_t k = 0; k < key_count_; ++k) {
      RequestTemplate t;
      t.route = r;
      t.key = k;
      t.method = options.method;
      t.scheme = options.target.scheme;
      t.path = options.paths[r];
      t.authority = authority;
      t.headers = base;
      const KeyShare& share = options.key_mix.shares()[k];
      if (!share.baseline()) applyRoutingKey(t.headers, options.key_header, share.key);
      t.http1_head = serialiseHttp1(t, options.body_size);
      t.body = body_;
      templates_.push_back(std::move(t));
    }
  }
}

}  // namespace turnout::bench
