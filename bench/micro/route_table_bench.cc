// RouteTable::match cost against the number of sandbox routes (DESIGN.md §6):
// with the sandbox index, 10,000 sandboxes should cost about what 1 does.

#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "routing/route_table.h"

namespace {

using namespace turnout::routing;  // NOLINT: benchmark TU

Route prefixRoute(std::string prefix, std::string cluster) {
  Route r;
  r.match.prefix = std::move(prefix);
  r.route.emplace();
  r.route->cluster = std::move(cluster);
  return r;
}

RouteTableConstSharedPtr sandboxTable(int sandboxes) {
  RouteConfiguration c;
  VirtualHost vh;
  vh.name = "svc";
  vh.domains = {"svc.default.svc.cluster.local", "*"};
  for (int i = 0; i < sandboxes; ++i) {
    Route r = prefixRoute("/", "svc-sb" + std::to_string(i));
    HeaderMatcher h;
    h.name = "x-turnout-routing-key";
    h.string_match.emplace();
    h.string_match->exact = "sb" + std::to_string(i);
    r.match.headers = {h};
    vh.routes.push_back(r);
  }
  vh.routes.push_back(prefixRoute("/", "svc-baseline"));
  c.virtual_hosts = {vh};
  return *RouteTable::create(std::move(c));
}

// args: sandbox count, which key (0 = first, 1 = last, 2 = none).
void BM_SandboxLookup(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const auto table = sandboxTable(n);
  const std::string key = state.range(1) == 0   ? "sb0"
                          : state.range(1) == 1 ? "sb" + std::to_string(n - 1)
                                                : "no-such-sandbox";
  // The key as the RoutingKey filter leaves it: in x-turnout-routing-key.
  std::vector<HeaderEntry> headers = {
      {"user-agent", "bench"}, {"accept", "*/*"}, {"x-turnout-routing-key", key}};
  const RequestView view("GET", "svc.default.svc.cluster.local", "/api/v1/items?id=7", headers);
  uint64_t random = 0;
  for (auto _ : state) {
    RouteDecision d = table->match(view, ++random);
    benchmark::DoNotOptimize(d);
  }
}
BENCHMARK(BM_SandboxLookup)->ArgsProduct({{1, 100, 10000}, {0, 1, 2}});

// The same without the index: what a plain linear Envoy-style scan costs.
void BM_SandboxLookupLinear(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const auto table = sandboxTable(n);
  const std::string key = "sb" + std::to_string(n - 1);
  std::vector<HeaderEntry> headers = {{"user-agent", "bench"}, {"x-turnout-routing-key", key}};
  const RequestView view("GET", "svc.default.svc.cluster.local", "/api/v1/items", headers);
  for (auto _ : state) {
    RouteDecision d = table->matchLinear(view, 0);
    benchmark::DoNotOptimize(d);
  }
}
BENCHMARK(BM_SandboxLookupLinear)->Arg(1)->Arg(100)->Arg(10000);

// A typical 20-route prefix table; the request hits the 15th route.
void BM_PrefixTable20(benchmark::State& state) {
  RouteConfiguration c;
  VirtualHost vh;
  vh.name = "web";
  vh.domains = {"www.example.com", "example.com"};
  for (int i = 0; i < 19; ++i) {
    vh.routes.push_back(
        prefixRoute("/service" + std::to_string(i) + "/", "svc" + std::to_string(i)));
  }
  vh.routes.push_back(prefixRoute("/", "default"));
  c.virtual_hosts = {vh};
  const auto table = *RouteTable::create(std::move(c));
  std::vector<HeaderEntry> headers = {{"user-agent", "bench"}};
  const RequestView view("GET", "www.example.com", "/service14/orders/42?x=1", headers);
  for (auto _ : state) {
    RouteDecision d = table->match(view, 0);
    benchmark::DoNotOptimize(d);
  }
}
BENCHMARK(BM_PrefixTable20);

}  // namespace
