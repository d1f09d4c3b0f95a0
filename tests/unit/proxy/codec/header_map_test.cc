#include "proxy/codec/header_map.h"

#include <catch2/catch.hpp>

#include "proxy/codec/codec.h"

namespace turnout::proxy {
namespace {

TEST_CASE("header map lowercases names and keeps arrival order", "[codec][header_map]") {
  HeaderMap map;
  map.add("Host", "example.com");
  map.add("X-Trace", "A");
  map.add("x-trace", "B");
  REQUIRE(map.size() == 3);
  CHECK(map.nameAt(0) == "host");
  CHECK(map.nameAt(1) == "x-trace");
  CHECK(map.valueAt(1) == "A");
  CHECK(map.valueAt(2) == "B");
  CHECK(map.get("x-trace") == "A");
  CHECK(map.count("x-trace") == 2);
  CHECK(map.get("absent").data() == nullptr);
  CHECK_FALSE(map.has("absent"));
}

TEST_CASE("header map tracks byte size and count through add, remove and set",
          "[codec][header_map]") {
  HeaderMap map;
  map.add("a", "12");
  map.add("bb", "3");
  map.add("a", "4567");
  CHECK(map.byteSize() == 3 + 3 + 5);
  CHECK(map.remove("a") == 2);
  CHECK(map.size() == 1);
  CHECK(map.byteSize() == 3);
  map.set("bb", "xyz");
  CHECK(map.size() == 1);
  CHECK(map.get("bb") == "xyz");
  CHECK(map.byteSize() == 5);
}

TEST_CASE("header map keeps earlier views' contents stable across growth", "[codec][header_map]") {
  HeaderMap map;
  for (int i = 0; i < 200; ++i) map.add("name", std::string(50, static_cast<char>('a' + i % 26)));
  CHECK(map.valueAt(0) == std::string(50, 'a'));
  CHECK(map.valueAt(199) == std::string(50, static_cast<char>('a' + 199 % 26)));
}

TEST_CASE("cleared header map is empty and reusable", "[codec][header_map]") {
  HeaderMap map;
  map.add("a", "b");
  map.clear();
  CHECK(map.empty());
  CHECK(map.byteSize() == 0);
  map.add("c", "d");
  CHECK(map.get("c") == "d");
  CHECK_FALSE(map.has("a"));
}

TEST_CASE("cleared header map reuses its arena: shorter and longer fields after a clear",
          "[codec][header_map]") {
  HeaderMap map;
  map.add("x-long-name", std::string(100, 'a'));
  map.clear();
  // Shorter than what the arena held: the old bytes past it are not fields.
  map.add("B", "c");
  REQUIRE(map.size() == 1);
  CHECK(map.nameAt(0) == "b");
  CHECK(map.valueAt(0) == "c");
  CHECK(map.byteSize() == 2);
  // Then past the old end.
  map.addLowercase("d", std::string(200, 'e'));
  CHECK(map.valueAt(0) == "c");
  CHECK(map.valueAt(1) == std::string(200, 'e'));
}

TEST_CASE("header map copies and moves only its live fields", "[codec][header_map]") {
  HeaderMap map;
  map.add("old", std::string(64, 'o'));
  map.clear();
  map.add("a", "1");
  map.addLowercase("secret", "s", /*never_indexed=*/true);

  HeaderMap copy(map);
  CHECK(copy == map);
  CHECK(copy.byteSize() == map.byteSize());
  CHECK(copy.neverIndexedAt(1));
  HeaderMap assigned;
  assigned.add("z", "zz");
  assigned = map;
  CHECK(assigned == map);
  CHECK_FALSE(assigned.has("z"));
  assigned = assigned;  // NOLINT: self-assignment keeps the map
  CHECK(assigned == map);

  HeaderMap moved(std::move(copy));
  CHECK(moved == map);
  CHECK(copy.empty());  // NOLINT: a moved-from map is empty and reusable
  CHECK(copy.byteSize() == 0);
  copy.add("n", "v");
  CHECK(copy.get("n") == "v");
  HeaderMap move_assigned;
  move_assigned.add("q", "r");
  move_assigned = std::move(moved);
  CHECK(move_assigned == map);
  CHECK(move_assigned.get("secret") == "s");
  CHECK(moved.empty());  // NOLINT
  moved.add("m", "w");
  REQUIRE(moved.size() == 1);
  CHECK(moved.valueAt(0) == "w");
}

TEST_CASE("header map keeps a field's never-indexed mark, and set() drops it",
          "[codec][header_map]") {
  HeaderMap map;
  map.addLowercase("authorization", "Bearer t0k3n", /*never_indexed=*/true);
  map.addLowercase("x-plain", "1");
  map.addLowercase("cookie", "", /*never_indexed=*/true);
  CHECK(map.get("authorization") == "Bearer t0k3n");  // the mark is not in the value
  CHECK(map.valueAt(0).size() == 12);
  CHECK(map.neverIndexedAt(0));
  CHECK_FALSE(map.neverIndexedAt(1));
  CHECK(map.neverIndexedAt(2));
  CHECK(map.has("cookie"));
  CHECK(map.get("cookie").empty());
  CHECK(map.byteSize() == 13 + 12 + 7 + 1 + 6);
  std::vector<std::string> marked;
  map.forEachMarked([&](std::string_view n, std::string_view v, bool never_indexed) {
    marked.push_back(std::string(n) + "=" + std::string(v) + (never_indexed ? "!" : ""));
  });
  CHECK(marked == std::vector<std::string>{"authorization=Bearer t0k3n!", "x-plain=1", "cookie=!"});

  const HeaderMap copy = map;  // a retry's or a mirror's copy keeps it
  CHECK(copy.neverIndexedAt(0));
  CHECK(copy == map);

  CHECK(map.remove("x-plain") == 1);  // entries move; marks move with them
  CHECK(map.neverIndexedAt(1));
  CHECK(map.byteSize() == 13 + 12 + 6);
  map.set("authorization", "replaced");  // turnout's own value now
  CHECK(map.get("authorization") == "replaced");
  CHECK_FALSE(map.neverIndexedAt(map.size() - 1));
  CHECK(map.byteSize() == 6 + 13 + 8);
  CHECK(map.remove("authorization") == 1);
  CHECK(map.remove("cookie") == 1);
  CHECK(map.byteSize() == 0);
}

TEST_CASE("empty header value is present but empty", "[codec][header_map]") {
  HeaderMap map;
  map.add("x-empty", "");
  CHECK(map.has("x-empty"));
  CHECK(map.get("x-empty").empty());
}

TEST_CASE("request head builds a routing view over its header map", "[codec][header_map]") {
  RequestHead head;
  head.method = "GET";
  head.path = "/a?b";
  head.authority = "svc.local";
  head.headers.add("Host", "svc.local");
  head.headers.add("Baggage", "sandbox=s1");
  std::vector<routing::HeaderEntry> scratch;
  const routing::RequestView view = head.view(scratch);
  CHECK(view.method() == "GET");
  CHECK(view.path() == "/a?b");
  CHECK(view.authority() == "svc.local");
  CHECK(view.scheme() == "http");
  CHECK(view.first("baggage") == "sandbox=s1");
  CHECK(view.first(":authority") == "svc.local");
  CHECK(view.headers().size() == 2);
}

}  // namespace
}  // namespace turnout::proxy
