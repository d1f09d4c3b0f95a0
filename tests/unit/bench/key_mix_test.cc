#include "bench/turnout_bench/key_mix.h"

#include <catch2/catch.hpp>

#include <map>
#include <string>
#include <vector>

namespace turnout::bench {
namespace {

TEST_CASE("key mix parses names and integer weights in order", "[bench][key_mix]") {
  auto mix = KeyMix::parse("baseline=90,feat-a=5,feat_b.2=5");
  REQUIRE(mix.ok());
  REQUIRE(mix->shares().size() == 3);
  CHECK(mix->shares()[0].key == "baseline");
  CHECK(mix->shares()[0].baseline());
  CHECK(mix->shares()[1].key == "feat-a");
  CHECK_FALSE(mix->shares()[1].baseline());
  CHECK(mix->shares()[2].key == "feat_b.2");
  CHECK(mix->weights() == std::vector<uint32_t>{90, 5, 5});
  CHECK(mix->totalWeight() == 100);
}

TEST_CASE("key mix without --key-mix is all baseline", "[bench][key_mix]") {
  KeyMix mix;
  REQUIRE(mix.shares().size() == 1);
  CHECK(mix.shares()[0].baseline());
  CHECK(mix.totalWeight() == 1);
}

TEST_CASE("key mix rejects malformed specs and says why", "[bench][key_mix]") {
  struct Case {
    const char* spec;
    const char* error;
  };
  const Case c = GENERATE(Case{"", "empty key mix"},
                          Case{"baseline", "'baseline' is not name=weight"},
                          Case{"a=1,", "'' is not name=weight"},
                          Case{"=5", "'' is not a valid routing key"},
                          Case{"a b=5", "'a b' is not a valid routing key"},
                          Case{"feat/x=5", "'feat/x' is not a valid routing key"},
                          Case{"a=", "weight of 'a' must be an integer from 0 to 1000000, got ''"},
                          Case{"a=x", "got 'x'"},
                          Case{"a=-1", "got '-1'"},
                          Case{"a=1.5", "got '1.5'"},
                          Case{"a=1000001", "got '1000001'"},
                          Case{"a=1,a=2", "'a' appears twice"},
                          Case{"a=0,baseline=0", "every weight is 0"});
  CAPTURE(c.spec);
  auto mix = KeyMix::parse(c.spec);
  REQUIRE_FALSE(mix.ok());
  CHECK_THAT(std::string(mix.status().message()), Catch::Contains(c.error));
}

TEST_CASE("weighted sequence gives every key its exact share in each cycle", "[bench][key_mix]") {
  const std::vector<uint32_t> weights = GENERATE(std::vector<uint32_t>{90, 5, 5},
                                                 std::vector<uint32_t>{1, 1},
                                                 std::vector<uint32_t>{3, 0, 7},
                                                 std::vector<uint32_t>{1},
                                                 std::vector<uint32_t>{1, 999999});
  uint64_t total = 0;
  for (uint32_t w : weights) total += w;
  WeightedSequence seq(weights);
  for (int cycle = 0; cycle < 3; ++cycle) {
    std::vector<uint64_t> counts(weights.size(), 0);
    for (uint64_t i = 0; i < total; ++i) ++counts[seq.next()];
    for (size_t k = 0; k < weights.size(); ++k) {
      CAPTURE(cycle, k);
      CHECK(counts[k] == weights[k]);
    }
  }
}

TEST_CASE("weighted sequence spreads a small share through the cycle", "[bench][key_mix]") {
  // 90/5/5: feat-a comes every 20 requests, not five in a row.
  WeightedSequence seq({90, 5, 5});
  std::vector<size_t> positions;
  for (size_t i = 0; i < 200; ++i) {
    if (seq.next() == 1) positions.push_back(i);
  }
  REQUIRE(positions.size() == 10);
  for (size_t i = 1; i < positions.size(); ++i) {
    CHECK(positions[i] - positions[i - 1] == 20);
  }
}

TEST_CASE("weighted sequence is deterministic", "[bench][key_mix]") {
  WeightedSequence a({7, 2, 1});
  WeightedSequence b({7, 2, 1});
  for (int i = 0; i < 1000; ++i) REQUIRE(a.next() == b.next());
}

}  // namespace
}  // namespace turnout::bench
