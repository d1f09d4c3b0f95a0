// cp-update-bench: turnout-cp's CPU to make the config for one change, at
// scale, with and without the model's journal.
//
// Builds a State with S services and K sandboxes forking F services each
// (spread evenly, as bench/xds/cp_scale_bench.py does), makes the config
// once for a profile, then R times: creates one more sandbox and times
// IncrementalGenerator::update for it. The same changes are timed on a
// second generator that is handed the model without its journal, which
// makes it walk every sandbox and service as update() did before the
// journal: the two columns compare in one run on one machine. Prints the
// median and max microseconds of each and how many services each looked
// at, as one line of JSON.
//
// Usage: cp-update-bench [--services S] [--sandboxes K] [--forks F] [--rounds R]
//                        [--profile turnout-vhds|turnout|envoy|envoy-vhds]

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "config/control_plane/generator.h"
#include "config/control_plane/state.h"

namespace tc = turnout::control_plane;

namespace {

double medianOf(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

std::string sandboxJson(int index, int services, int forks, int port) {
  std::string json = R"({"forks": {)";
  for (int f = 0; f < forks; ++f) {
    const int svc = (index * forks + f) % services;
    if (f > 0) json += ", ";
    absl::StrAppend(&json, "\"svc", svc, "\": [\"10.1.", (index / 250) % 250, ".", index % 250 + 1,
                    ":", port, "\"]");
  }
  json += "}}";
  return json;
}

}  // namespace

int main(int argc, char** argv) {
  int services = 100, sandboxes = 10000, forks = 2, rounds = 20;
  std::string profile_name = "turnout-vhds";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const char* v = argv[i + 1];
    if (flag == "--services") {
      services = std::atoi(v);
    } else if (flag == "--sandboxes") {
      sandboxes = std::atoi(v);
    } else if (flag == "--forks") {
      forks = std::atoi(v);
    } else if (flag == "--rounds") {
      rounds = std::atoi(v);
    } else if (flag == "--profile") {
      profile_name = v;
    } else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  if (services < 1 || sandboxes < 0 || forks < 1 || forks > services || rounds < 1) {
    std::fprintf(stderr, "bad sizes\n");
    return 2;
  }
  tc::Profile profile;
  if (profile_name == "turnout-vhds") {
    profile = tc::Profile(tc::Dialect::kTurnout, false, true);
  } else if (profile_name == "turnout") {
    profile = tc::Profile(tc::Dialect::kTurnout);
  } else if (profile_name == "envoy") {
    profile = tc::Profile(tc::Dialect::kEnvoy);
  } else if (profile_name == "envoy-vhds") {
    profile = tc::Profile(tc::Dialect::kEnvoy, false, true);
  } else {
    std::fprintf(stderr, "unknown profile %s\n", profile_name.c_str());
    return 2;
  }

  tc::State state;
  const absl::Time now = absl::Now();
  for (int s = 0; s < services; ++s) {
    auto r = state.putService(absl::StrCat("svc", s),
                              absl::StrCat(R"({"port": 8080, "endpoints": ["10.0.)", s / 250, ".",
                                           s % 250 + 1, R"(:8080"]})"));
    if (!r.ok()) {
      std::fprintf(stderr, "%s\n", r.status().ToString().c_str());
      return 1;
    }
  }
  for (int k = 0; k < sandboxes; ++k) {
    auto r = state.putSandbox(absl::StrCat("sb-", k), sandboxJson(k, services, forks, 8080), now);
    if (!r.ok()) {
      std::fprintf(stderr, "%s\n", r.status().ToString().c_str());
      return 1;
    }
  }

  using Clock = std::chrono::steady_clock;
  tc::IncrementalGenerator journaled(profile);
  tc::IncrementalGenerator walking(profile);
  journaled.update(state.model());
  tc::Model unjournaled = state.model();
  unjournaled.journal = tc::ModelJournal{};
  walking.update(unjournaled);

  std::vector<double> with_journal, without_journal;
  size_t services_journaled = 0, services_walking = 0;
  for (int round = 0; round < rounds; ++round) {
    const int k = sandboxes + round;
    auto r = state.putSandbox(absl::StrCat("sb-", k), sandboxJson(k, services, forks, 9090), now);
    if (!r.ok()) {
      std::fprintf(stderr, "%s\n", r.status().ToString().c_str());
      return 1;
    }
    auto t0 = Clock::now();
    journaled.update(state.model());
    auto t1 = Clock::now();
    with_journal.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    services_journaled = journaled.lastUpdateServices();
    if (!journaled.lastUpdateIncremental()) {
      std::fprintf(stderr, "the journaled generator did not go by the journal\n");
      return 1;
    }
    // The walking generator's model: the same resources, no journal. The
    // copy is not timed.
    unjournaled = state.model();
    unjournaled.journal = tc::ModelJournal{};
    t0 = Clock::now();
    walking.update(unjournaled);
    t1 = Clock::now();
    without_journal.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    services_walking = walking.lastUpdateServices();
  }
  // Both made the same config.
  for (const auto& [type, map] : journaled.resources()) {
    const auto& other = walking.resources().at(type);
    if (other.size() != map.size()) {
      std::fprintf(stderr, "the generators disagree on %s\n", type.c_str());
      return 1;
    }
    for (const auto& [name, v] : map) {
      auto it = other.find(name);
      if (it == other.end() || it->second.version != v.version) {
        std::fprintf(stderr, "the generators disagree on %s %s\n", type.c_str(), name.c_str());
        return 1;
      }
    }
  }
  std::printf(
      "{\"profile\": \"%s\", \"services\": %d, \"sandboxes\": %d, \"forks\": %d, \"rounds\": %d, "
      "\"journal_us_median\": %.1f, \"journal_us_max\": %.1f, \"journal_services\": %zu, "
      "\"walk_us_median\": %.1f, \"walk_us_max\": %.1f, \"walk_services\": %zu}\n",
      profile_name.c_str(), services, sandboxes, forks, rounds, medianOf(with_journal),
      *std::max_element(with_journal.begin(), with_journal.end()), services_journaled,
      medianOf(without_journal), *std::max_element(without_journal.begin(), without_journal.end()),
      services_walking);
  return 0;
}
