// routing::CompactVector: the lists a route rarely has cost one pointer while
// empty, and read and write as the std::vector they replace.

#include <catch2/catch.hpp>

#include <algorithm>
#include <span>
#include <string>
#include <vector>

#include "routing/route_config.h"

namespace turnout::routing {
namespace {

TEST_CASE("an empty compact vector is one null pointer", "[routing][memory]") {
  STATIC_REQUIRE(sizeof(CompactVector<std::string>) == sizeof(void*));
  CompactVector<std::string> v;
  CHECK(v.empty());
  CHECK(v.size() == 0);
  CHECK(v.data() == nullptr);
  CHECK(v.begin() == v.end());
  const std::span<const std::string> s(v);
  CHECK(s.empty());
  // Assigning an empty vector leaves nothing on the heap; clear() frees it.
  v = std::vector<std::string>{};
  CHECK(v.data() == nullptr);
  v.push_back("a");
  CHECK(v.data() != nullptr);
  v.clear();
  CHECK(v.data() == nullptr);
  CHECK(v.empty());
}

TEST_CASE("a compact vector reads and writes as a std::vector", "[routing]") {
  CompactVector<std::string> v{"b", "d"};
  v.push_back("e");
  v.emplace_back("f");
  CHECK(*v.insert(v.begin(), "a") == "a");
  CHECK(*v.insert(v.begin() + 2, "c") == "c");
  CHECK(v == std::vector<std::string>{"a", "b", "c", "d", "e", "f"});
  CHECK(v.front() == "a");
  CHECK(v.back() == "f");
  CHECK(v[3] == "d");
  CHECK(v.size() == 6);

  CHECK(*v.erase(v.begin() + 1) == "c");
  CHECK(*v.erase(v.begin() + 2, v.begin() + 4) == "f");
  CHECK(v == std::vector<std::string>{"a", "c", "f"});
  CHECK(v.erase(v.end(), v.end()) == v.end());

  // Copies are deep; moves take the list.
  CompactVector<std::string> copy = v;
  copy[0] = "z";
  CHECK(v[0] == "a");
  CHECK_FALSE(copy == v);
  CompactVector<std::string> moved = std::move(copy);
  CHECK(moved.toVector() == std::vector<std::string>{"z", "c", "f"});

  // A contiguous range: spans, algorithms and range-for over pointers.
  const std::span<const std::string> s(v);
  CHECK(s.size() == 3);
  CHECK(std::find(v.begin(), v.end(), "f") != v.end());
  std::string joined;
  for (const auto& x : v) joined += x;
  CHECK(joined == "acf");

  // Assigning from a std::vector (the translators build those).
  v = std::vector<std::string>{"x"};
  CHECK(v.size() == 1);
  CHECK(CompactVector<std::string>() == CompactVector<std::string>(std::vector<std::string>{}));
}

}  // namespace
}  // namespace turnout::routing
