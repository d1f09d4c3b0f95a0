// STYLE.md R14: RouteTable::match allocates nothing on the common path. This
// file replaces the global operator new of routing_tests with one that counts
// while a test asks it to; everything else it passes to malloc/free.

#include <malloc.h>

#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "tests/unit/routing/route_test_support.h"

namespace {
bool g_counting = false;  // routing_tests runs its cases on one thread
size_t g_allocations = 0;
}  // namespace

void* operator new(std::size_t size) {
  if (g_counting) ++g_allocations;
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace turnout::routing::test {
namespace {

// Allocations made by fn().
template <typename Fn>
size_t allocationsOf(Fn&& fn) {
  g_allocations = 0;
  g_counting = true;
  fn();
  g_counting = false;
  return g_allocations;
}

TEST_CASE("an indexed routing-key lookup allocates nothing", "[routing][routing_key]") {
  std::vector<Route> routes;
  for (int i = 0; i < 1000; ++i) {
    Route r = prefixRoute("/", "svc-sb" + std::to_string(i));
    r.match.headers = {exactHeader("x-turnout-routing-key", "sb" + std::to_string(i))};
    routes.push_back(r);
  }
  routes.push_back(prefixRoute("/", "baseline"));
  auto t = mustCreate(singleVhost(routes, {"svc.default.svc.cluster.local"}));
  REQUIRE(t->indexedRouteCount(0) == 1000);

  auto request = [](std::vector<std::string> keys) {
    TestRequest r;
    r.host("svc.default.svc.cluster.local").at("/api/v1/items?id=7");
    r.header("user-agent", "bench").header("accept", "*/*");
    for (auto& k : keys) r.header("x-turnout-routing-key", std::move(k));
    return r;
  };
  TestRequest hit = request({"sb777"});
  TestRequest miss = request({"no-such-sandbox"});
  TestRequest none = request({});
  TestRequest repeated = request({"sb1", "sb2"});
  const RequestView vh = hit.view(), vm = miss.view(), vn = none.view(), vr = repeated.view();

  RouteDecision d;
  for (const RequestView* v : {&vh, &vm, &vn, &vr}) d = t->match(*v, 0);  // warm thread_locals

  CHECK(allocationsOf([&] { d = t->match(vh, 1); }) == 0);
  CHECK(d.cluster == "svc-sb777");
  CHECK(allocationsOf([&] { d = t->match(vm, 2); }) == 0);
  CHECK(d.cluster == "baseline");
  CHECK(allocationsOf([&] { d = t->match(vn, 3); }) == 0);
  CHECK(d.cluster == "baseline");
  // A repeated header is joined into a per-thread scratch string that keeps
  // its capacity, so once warm it allocates nothing either.
  CHECK(allocationsOf([&] { d = t->match(vr, 4); }) == 0);
  CHECK(d.cluster == "baseline");
  // The counter works.
  CHECK(allocationsOf([] { ::operator delete(::operator new(100)); }) == 1);
}


// issue #8's scale target is 4 KB per sandbox (its cluster and its route,
// everything counted). A sandbox route, as the translator makes it from
// `{ match: { prefix: "/", headers: [{ name: x-turnout-routing-key,
// string_match: { exact: K } }] }, route: { cluster: K } }`, once cost
// about 2.6 KB here (a 1,520-byte Route whose unset optionals were inline,
// a 488-byte HeaderMatcher, a 384-byte CompiledRoute); the route config's
// rarely set members are now Boxed and the compiled route's rare parts
// separate. Heap bytes in use (glibc's count, malloc overhead included)
// for the config and its table, per route.
TEST_CASE("a sandbox route costs at most 1 KiB in its route table, config included",
          "[routing][memory]") {
  constexpr size_t kRoutes = 4000;
  auto inUse = [] { return mallinfo2().uordblks; };
  const size_t before = inUse();
  RouteTableConstSharedPtr t;
  {
    std::vector<Route> routes;
    routes.reserve(kRoutes + 1);
    for (size_t i = 0; i < kRoutes; ++i) {
      const std::string key = "sb-" + std::to_string(i);
      Route r = prefixRoute("/", key);
      r.match.headers = {exactHeader("x-turnout-routing-key", key)};
      routes.push_back(std::move(r));
    }
    routes.push_back(prefixRoute("/", "baseline"));
    t = mustCreate(singleVhost(std::move(routes)));
  }
  const size_t per_route = (inUse() - before) / kRoutes;
  REQUIRE(t->indexedRouteCount(0) == kRoutes);
  INFO("bytes per sandbox route: " << per_route);
  CHECK(per_route <= 1024);  // 672 when written
  // The unset members take a pointer each, not their size.
  CHECK(sizeof(Route) <= 400);
  CHECK(sizeof(HeaderMatcher) <= 128);
}

}  // namespace
}  // namespace turnout::routing::test
