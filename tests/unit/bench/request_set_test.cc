#include "bench/turnout_bench/request_set.h"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "proxy/codec/http1_server_codec.h"
#include "tests/unit/bench/bench_test_support.h"

namespace turnout::bench {
namespace {

using testing::optionsFor;

// What turnout's own server codec makes of a template's bytes.
struct Parsed : proxy::RequestDecoderCallbacks {
  void onMessageBegin() override {}
  void onHeaders(proxy::RequestHead& h, bool end) override {
    head = h;
    ended = end;
  }
  void onData(std::span<const char> d, bool end) override {
    body.append(d.data(), d.size());
    ended = end;
  }
  void onTrailers(proxy::HeaderMap&) override {}
  void onMessageComplete() override { complete = true; }

  proxy::RequestHead head;
  std::string body;
  bool ended = false;
  bool complete = false;
};

Parsed parseWire(const RequestTemplate& t) {
  Parsed p;
  proxy::http1::ServerCodec codec(p);
  const std::string wire = t.http1_head + std::string(t.body);
  auto used = codec.decode(wire);
  REQUIRE(used.ok());
  CHECK(*used == wire.size());
  return p;
}

TEST_CASE("request templates serialise a plain GET once", "[bench][requests]") {
  const BenchOptions o = optionsFor({});
  const RequestSet set(o);
  REQUIRE(set.routeCount() == 1);
  REQUIRE(set.keyCount() == 1);
  const RequestTemplate& t = set.get(0, 0);
  CHECK(t.http1_head == "GET /x HTTP/1.1\r\nhost: 127.0.0.1:8080\r\n\r\n");
  CHECK(t.body.empty());
  const Parsed p = parseWire(t);
  CHECK(p.complete);
  CHECK(p.head.path == "/x");
}

TEST_CASE("request templates: one per route and key, with the key in baggage",
          "[bench][requests]") {
  const BenchOptions o = optionsFor({"--path", "/a,/b", "--key-mix", "baseline=8,feat-a=1,feat-b=1",
                                  "-H", "X-Extra: 1", "-H", "baggage: userId=7"});
  const RequestSet set(o);
  REQUIRE(set.routeCount() == 2);
  REQUIRE(set.keyCount() == 3);
  for (uint32_t r = 0; r < 2; ++r) {
    for (uint32_t k = 0; k < 3; ++k) {
      const RequestTemplate& t = set.get(r, k);
      CHECK(t.route == r);
      CHECK(t.key == k);
      const Parsed p = parseWire(t);
      CHECK(p.head.path == (r == 0 ? "/a" : "/b"));
      CHECK(p.head.headers.get("x-extra") == "1");
      const std::string_view baggage = p.head.headers.get("baggage");
      if (k == 0) {
        CHECK(baggage == "userId=7");
      } else {
        CHECK(baggage == (k == 1 ? "userId=7,turnout-routing-key=feat-a"
                                 : "userId=7,turnout-routing-key=feat-b"));
      }
      CHECK(p.head.headers.count("baggage") == 1);
    }
  }
}

TEST_CASE("routing key goes where --key-header says", "[bench][requests]") {
  std::vector<std::pair<std::string, std::string>> h;
  applyRoutingKey(h, "baggage", "k1");
  CHECK(h == decltype(h){{"baggage", "turnout-routing-key=k1"}});

  h = {{"tracestate", "congo=t61rcWkgMzE"}};
  applyRoutingKey(h, "tracestate", "k2");
  CHECK(h == decltype(h){{"tracestate", "turnout=k2,congo=t61rcWkgMzE"}});

  h = {{"x-turnout-routing-key", "old"}, {"a", "b"}};
  applyRoutingKey(h, "x-turnout-routing-key", "k3");
  CHECK(h == decltype(h){{"x-turnout-routing-key", "k3"}, {"a", "b"}});

  h = {};
  applyRoutingKey(h, "sd-routing-key", "k4");
  CHECK(h == decltype(h){{"sd-routing-key", "k4"}});
}

TEST_CASE("request templates carry a filler body with content-length", "[bench][requests]") {
  const BenchOptions o = optionsFor({"--method", "POST", "--body-size", "1000"});
  const RequestSet set(o);
  const RequestTemplate& t = set.get(0, 0);
  CHECK(t.body.size() == 1000);
  CHECK(t.http1_head.find("content-length: 1000\r\n") != std::string::npos);
  CHECK(t.http1_head.find("chunked") == std::string::npos);
  const Parsed p = parseWire(t);
  CHECK(p.head.method == "POST");
  CHECK(p.body == std::string(1000, 'x'));
  CHECK(p.complete);
}

TEST_CASE("request templates: POST without a body says content-length 0", "[bench][requests]") {
  const RequestSet set(optionsFor({"--method", "POST"}));
  CHECK(set.get(0, 0).http1_head.find("content-length: 0\r\n") != std::string::npos);
}

TEST_CASE("request templates: -H host overrides the URL's authority", "[bench][requests]") {
  const RequestSet set(optionsFor({"-H", "Host: example.test"}));
  const RequestTemplate& t = set.get(0, 0);
  CHECK(t.authority == "example.test");
  const Parsed p = parseWire(t);
  CHECK(p.head.headers.count("host") == 1);
  CHECK(p.head.headers.get("host") == "example.test");
}

TEST_CASE("request templates: -H 'connection: close' asks for a fresh connection each time",
          "[bench][requests]") {
  const RequestSet set(optionsFor({"-H", "Connection: close"}));
  const Parsed p = parseWire(set.get(0, 0));
  CHECK_FALSE(p.head.keep_alive);
}

}  // namespace
}  // namespace turnout::bench
