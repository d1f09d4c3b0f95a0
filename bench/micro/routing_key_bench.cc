// extractRoutingKey with the default config on typical and worst-case
// requests. Every case reuses one scratch string, as a worker does.
#include <string>
#include <string_view>
#include <vector>

#include <benchmark/benchmark.h>

#include "routing/routing_key.h"

namespace turnout::routing {
namespace {

// Common request headers that every lookup has to walk past.
std::vector<HeaderEntry> baseHeaders() {
  return {{"user-agent", "curl/7.88.1"},
          {"accept", "*/*"},
          {"x-request-id", "5d7a9c3e-0b1f-4f8e-9a53-2f4c1e0d6b7a"},
          {"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}};
}

void runExtraction(benchmark::State& state, std::vector<HeaderEntry> headers,
                   std::string_view expected) {
  const RequestView view("GET", "reviews.default.svc", "/api/v1/reviews/42", headers);
  const RoutingKeyConfig config = RoutingKeyConfig::defaults();
  std::string scratch;
  scratch.reserve(256);
  if (extractRoutingKey(view, config, scratch).key != expected) {
    state.SkipWithError("unexpected key");
    return;
  }
  for (auto _ : state) {
    KeyExtraction r = extractRoutingKey(view, config, scratch);
    benchmark::DoNotOptimize(r);
  }
}

void BM_NoHeaders(benchmark::State& state) { runExtraction(state, baseHeaders(), ""); }

void BM_TypicalBaggage(benchmark::State& state) {
  auto headers = baseHeaders();
  headers.push_back({"baggage",
                     "userId=alice,serverNode=DF%2028,isProduction=false,"
                     "turnout-routing-key=sandbox-7f3a;ttl=30,tenant=acme"});
  runExtraction(state, std::move(headers), "sandbox-7f3a");
}

void BM_TypicalBaggagePercentEncodedKey(benchmark::State& state) {
  auto headers = baseHeaders();
  headers.push_back({"baggage",
                     "userId=alice,serverNode=DF%2028,isProduction=false,"
                     "turnout-routing-key=sandbox%2D7f3a;ttl=30,tenant=acme"});
  runExtraction(state, std::move(headers), "sandbox-7f3a");
}

void BM_Baggage64MembersKeyLast(benchmark::State& state) {
  static const std::string baggage = [] {
    std::string s;
    for (int i = 0; i < 63; ++i) s += "member" + std::to_string(i) + "=value" + std::to_string(i) + ",";
    return s + "turnout-routing-key=sandbox-7f3a";
  }();
  auto headers = baseHeaders();
  headers.push_back({"baggage", baggage});
  runExtraction(state, std::move(headers), "sandbox-7f3a");
}

void BM_TracestateOnly(benchmark::State& state) {
  auto headers = baseHeaders();
  headers.push_back({"tracestate", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE,turnout=sandbox-7f3a"});
  runExtraction(state, std::move(headers), "sandbox-7f3a");
}

void BM_PlainHeaderOnly(benchmark::State& state) {
  auto headers = baseHeaders();
  headers.push_back({"x-turnout-routing-key", "sandbox-7f3a"});
  runExtraction(state, std::move(headers), "sandbox-7f3a");
}

BENCHMARK(BM_NoHeaders);
BENCHMARK(BM_TypicalBaggage);
BENCHMARK(BM_TypicalBaggagePercentEncodedKey);
BENCHMARK(BM_Baggage64MembersKeyLast);
BENCHMARK(BM_TracestateOnly);
BENCHMARK(BM_PlainHeaderOnly);

}  // namespace
}  // namespace turnout::routing
