// ShardedMap (DataPlaneConfig::clusters): a copy shares every shard; a write
// copies only the shard it touches, never changes what another map sees, and
// sameShard() and diff() tell two generations' untouched shards apart from the rest.

#include <catch2/catch.hpp>

#include <map>
#include <memory>
#include <set>
#include <string>

#include "proxy/server/cluster_map.h"

namespace turnout::proxy {
namespace {

using IntMap = ShardedMap<std::shared_ptr<const int>>;

std::map<std::string, int> contents(const IntMap& m) {
  std::map<std::string, int> out;
  for (const auto& [name, v] : m) out.emplace(name, *v);
  return out;
}

size_t sharedShards(const IntMap& a, const IntMap& b) {
  size_t n = 0;
  for (size_t s = 0; s < IntMap::kShards; ++s) n += a.sameShard(b, s) ? 1 : 0;
  return n;
}

}  // namespace

TEST_CASE("a sharded map finds, iterates, replaces and erases like a map", "[cluster_map]") {
  IntMap m;
  CHECK(m.empty());
  CHECK(m.begin() == m.end());
  std::map<std::string, int> want;
  for (int i = 0; i < 1000; ++i) {
    const std::string name = "cluster-" + std::to_string(i);
    m.insert_or_assign(name, std::make_shared<const int>(i));
    want[name] = i;
  }
  CHECK(m.size() == 1000);
  CHECK(contents(m) == want);
  CHECK(static_cast<size_t>(std::distance(m.begin(), m.end())) == 1000);

  m.insert_or_assign("cluster-7", std::make_shared<const int>(-7));  // replace: size kept
  CHECK(m.size() == 1000);
  REQUIRE(m.find("cluster-7") != m.end());
  CHECK(*m.find("cluster-7")->second == -7);
  CHECK(m.find("cluster-7")->first == "cluster-7");
  CHECK(m.find("nope") == m.end());
  CHECK_FALSE(m.contains("nope"));

  CHECK(m.erase("cluster-7") == 1);
  CHECK(m.erase("cluster-7") == 0);
  CHECK(m.size() == 999);
  CHECK_FALSE(m.contains("cluster-7"));
  want.erase("cluster-7");
  CHECK(contents(m) == want);
}

TEST_CASE("a copy shares every shard and a write copies only the one it touches",
          "[cluster_map]") {
  IntMap gen1;
  for (int i = 0; i < 20000; ++i) {
    gen1.insert_or_assign("svc--sb-" + std::to_string(i), std::make_shared<const int>(i));
  }
  IntMap gen2 = gen1;
  CHECK(sharedShards(gen1, gen2) == IntMap::kShards);

  // One new cluster: one shard differs, and gen1 does not see it.
  gen2.insert_or_assign("svc--sb-new", std::make_shared<const int>(-1));
  CHECK(sharedShards(gen1, gen2) == IntMap::kShards - 1);
  CHECK_FALSE(gen1.contains("svc--sb-new"));
  CHECK(gen1.size() == 20000);
  CHECK(gen2.size() == 20001);

  // The value a shared entry pointed at is the same object in both.
  CHECK(gen1.find("svc--sb-5")->second == gen2.find("svc--sb-5")->second);

  // A miss on erase copies nothing; a hit copies its shard only.
  IntMap gen3 = gen2;
  CHECK(gen3.erase("not-there") == 0);
  CHECK(sharedShards(gen2, gen3) == IntMap::kShards);
  CHECK(gen3.erase("svc--sb-new") == 1);
  CHECK(sharedShards(gen2, gen3) == IntMap::kShards - 1);
  CHECK(gen2.contains("svc--sb-new"));
  CHECK(contents(gen3) == contents(gen1));

  // Every entry sits in exactly one shard.
  size_t total = 0;
  std::set<std::string> seen;
  for (size_t s = 0; s < IntMap::kShards; ++s) {
    total += gen1.shard(s).size();
    for (const auto& [name, v] : gen1.shard(s)) seen.insert(name);
  }
  CHECK(total == 20000);
  CHECK(seen.size() == 20000);
}

}  // namespace turnout::proxy

namespace turnout::proxy {

TEST_CASE("diff reports what a generation added, replaced and removed, and counts the rest",
          "[cluster_map]") {
  IntMap before;
  for (int i = 0; i < 500; ++i) {
    before.insert_or_assign("c" + std::to_string(i), std::make_shared<const int>(i));
  }
  IntMap next = before;
  next.insert_or_assign("new", std::make_shared<const int>(-1));
  next.insert_or_assign("c7", std::make_shared<const int>(7));  // same number, another object
  next.erase("c9");
  std::map<std::string, std::pair<bool, int>> changed;  // name -> (had an old value, new)
  std::set<std::string> removed;
  const size_t same = next.diff(
      &before,
      [&](const std::string& name, const std::shared_ptr<const int>* old,
          const std::shared_ptr<const int>& v) {
        changed[name] = {old != nullptr, *v};
      },
      [&](const std::string& name, const std::shared_ptr<const int>&) { removed.insert(name); });
  CHECK(changed ==
        std::map<std::string, std::pair<bool, int>>{{"c7", {true, 7}}, {"new", {false, -1}}});
  CHECK(removed == std::set<std::string>{"c9"});
  CHECK(same == 498);  // 500 - c7 - c9, whether their shard was walked or skipped

  // Against nothing (a first generation): everything is new.
  size_t added = 0;
  CHECK(before.diff(
            nullptr,
            [&](const std::string&, const std::shared_ptr<const int>* old,
                const std::shared_ptr<const int>&) { added += old == nullptr ? 1 : 0; },
            [&](const std::string&, const std::shared_ptr<const int>&) { FAIL("nothing left"); }) ==
        0);
  CHECK(added == 500);
  // Against itself: nothing walked, nothing reported.
  CHECK(next.diff(
            &next,
            [&](const std::string&, const std::shared_ptr<const int>*,
                const std::shared_ptr<const int>&) { FAIL("no change"); },
            [&](const std::string&, const std::shared_ptr<const int>&) { FAIL("no change"); }) ==
        next.size());
}

}  // namespace turnout::proxy
