#pragma once

// Shared by the turnout-bench unit tests.

#include <catch2/catch.hpp>

#include <string_view>
#include <vector>

#include "bench/turnout_bench/bench_options.h"

namespace turnout::bench::testing {

// The options `args` parse to, against http://127.0.0.1:8080/x.
inline BenchOptions optionsFor(std::vector<std::string_view> args) {
  args.push_back("http://127.0.0.1:8080/x");
  auto o = parseBenchOptions(args);
  REQUIRE(o.ok());
  return *std::move(o);
}

}  // namespace turnout::bench::testing
