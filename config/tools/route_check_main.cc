// turnout-route-check: checks what a bootstrap's routes decide for a list of
// requests, without starting a proxy — turnout's counterpart of Envoy's
// router_check_tool. When the listener's HTTP filters include the RoutingKey
// filter it is applied first, as the proxy does: the extracted key replaces
// the client's output header (x-turnout-routing-key), or the header is removed
// when no key is found. Without the filter that header is an ordinary header.
//
//   turnout-route-check -c bootstrap.yaml -t tests.yaml [--listener NAME] [--details]
//
// tests.yaml (a subset of Envoy's router check format):
//   tests:
//   - test_name: feat-x reaches the reviews fork
//     input:
//       authority: reviews
//       path: /
//       method: GET                     # default GET
//       random_value: 0                 # default 0
//       additional_request_headers:
//       - { key: baggage, value: "turnout-routing-key=feat-x" }
//     validate:
//       cluster_name: reviews-feat-x    # "" = no route
//       virtual_host_name: reviews
//       path_rewrite: /v2/              # the :path sent upstream
//       host_rewrite: reviews.internal  # the :authority sent upstream
//       path_redirect: https://...      # the Location of a redirect
//       status: 301                     # redirect / direct response / 404 no route
//       routing_key: feat-x             # what the RoutingKey filter extracted
//                                       # ("" without the filter)
//
// Exit status: 0 when every test passes, 1 when one fails, 2 on a bad config
// or test file.

#include <cstdio>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "config/bootstrap/bootstrap_loader.h"
#include "config/snapshot/routing_key_config.h"
#include "config/snapshot/snapshot_builder.h"
#include "routing/route_table.h"
#include "routing/routing_key.h"
#include "yaml-cpp/yaml.h"

namespace turnout::config {
namespace {

constexpr char kRoutingKeyType[] = "turnout.extensions.filters.http.routing_key.v3.RoutingKey";

struct Options {
  std::string config_path;
  std::string tests_path;
  std::string listener;
  bool details = false;
};

void usage(std::FILE* out) {
  std::fprintf(out,
               "usage: turnout-route-check -c BOOTSTRAP -t TESTS [--listener NAME] [--details]\n"
               "Prints where each request in TESTS would be routed by BOOTSTRAP and checks it\n"
               "against the expectations; exit 0 = all passed, 1 = a test failed, 2 = error.\n");
}

// The HTTP connection manager the requests enter: the named listener's (or the
// first listener's) first filter chain with an inline route table.
struct Entry {
  std::shared_ptr<const routing::RouteTable> table;
  std::optional<RoutingKeyFilterConfig> routing_key;
};

absl::StatusOr<Entry> findEntry(const Snapshot& snapshot, const std::string& listener) {
  for (size_t li = 0; li < snapshot.listeners.size(); ++li) {
    const ListenerConfig& l = snapshot.listeners[li];
    if (!listener.empty() && l.name != listener) continue;
    for (size_t ci = 0; ci < l.filter_chains.size(); ++ci) {
      const auto& hcm = l.filter_chains[ci].http_connection_manager;
      if (!hcm || !hcm->route_table_index) continue;
      Entry e;
      e.table = snapshot.route_tables[*hcm->route_table_index].table;
      for (size_t fi = 0; fi < hcm->http_filters.size(); ++fi) {
        const HttpFilterConfig& f = hcm->http_filters[fi];
        if (f.type_name != kRoutingKeyType) continue;
        turnout::extensions::filters::http::routing_key::v3::RoutingKey proto;
        if (!f.config.UnpackTo(&proto)) {
          return absl::InvalidArgumentError(absl::StrCat("listener '", l.name, "' filter '",
                                                         f.name, "': cannot unpack"));
        }
        auto rk = toRoutingKeyFilterConfig(
            proto, absl::StrCat("listener '", l.name, "' http_filters[", fi, "].typed_config"));
        if (!rk.ok()) return rk.status();
        e.routing_key = *std::move(rk);
      }
      return e;
    }
  }
  return absl::NotFoundError(listener.empty()
                                 ? std::string("no listener with an inline route_config")
                                 : absl::StrCat("no listener '", listener,
                                                "' with an inline route_config"));
}

std::string scalar(const YAML::Node& n, const char* key, const std::string& def = "") {
  return n[key] ? n[key].as<std::string>() : def;
}

struct Outcome {
  std::string key;
  std::string key_source;
  std::string cluster;
  std::string vhost;
  std::string path;
  std::string host;
  std::string location;
  uint32_t status = 0;
  std::string summary;
};

Outcome run(const Entry& entry, const YAML::Node& input) {
  const std::string authority = scalar(input, "authority");
  const std::string path = scalar(input, "path", "/");
  const std::string method = scalar(input, "method", "GET");
  const uint64_t random = input["random_value"] ? input["random_value"].as<uint64_t>() : 0;
  std::vector<std::string> storage;
  if (const auto& hs = input["additional_request_headers"]) {
    for (const auto& h : hs) {
      storage.push_back(absl::AsciiStrToLower(h["key"].as<std::string>()));
      storage.push_back(h["value"].as<std::string>());
    }
  }
  std::vector<routing::HeaderEntry> headers;
  for (size_t i = 0; i + 1 < storage.size(); i += 2) {
    headers.push_back({storage[i], storage[i + 1]});
  }

  Outcome o;
  if (entry.routing_key) {
    // What the proxy's RoutingKey filter does before routing: extract the
    // key, then set its output header to it (replacing whatever the client
    // sent) or remove that header when there is no key.
    std::string scratch;
    const routing::RequestView raw(method, authority, path, headers);
    auto k = routing::extractRoutingKey(raw, entry.routing_key->extraction, scratch);
    if (k.found()) {
      o.key = std::string(k.key);
      o.key_source = std::string(routing::keySourceKindName(k.source->kind)) + " " + k.source->name;
      k.key = o.key;
    } else if (k.error != routing::KeyError::kNone) {
      o.key_source = "none (" + std::string(routing::keyErrorName(k.error)) + ")";
    }
    routing::applyRoutingKey(headers, entry.routing_key->output_header, k);
  }
  // Without the filter the routing-key header is an ordinary header, matched
  // as the client sent it.
  const routing::RequestView view(method, authority, path, headers);
  routing::RouteDecision d = entry.table->match(view, random);
  if (d.virtual_host != nullptr) o.vhost = d.virtual_host->name;
  using Kind = routing::RouteDecision::Kind;
  switch (d.kind) {
    case Kind::Route:
      o.cluster = std::string(d.cluster);
      o.path = d.rewritten_path ? *d.rewritten_path : path;
      o.host = d.host_rewrite.empty() ? authority : std::string(d.host_rewrite);
      o.summary = absl::StrCat("cluster ", o.cluster);
      break;
    case Kind::Redirect:
      o.status = d.status;
      o.location = routing::redirectLocation(view, d);
      o.summary = absl::StrCat("redirect ", o.status, " ", o.location);
      break;
    case Kind::DirectResponse:
      o.status = d.status;
      o.summary = absl::StrCat("direct response ", o.status);
      break;
    case Kind::NoRoute:
      o.status = 404;
      o.summary = "no route (404 NR)";
      break;
    case Kind::ClusterHeaderMissing:
      o.status = d.cluster_not_found_status;
      o.summary = absl::StrCat("cluster header missing (", o.status, ")");
      break;
  }
  return o;
}

int runTests(const Options& opt) {
  BootstrapLoadOptions load;
  load.config_path = opt.config_path;
  auto loaded = loadBootstrap(load);
  if (!loaded.ok()) {
    std::fprintf(stderr, "turnout-route-check: %s\n", std::string(loaded.status().message()).c_str());
    return 2;
  }
  auto snapshot = SnapshotBuilder::build(loaded->bootstrap);
  if (!snapshot.ok()) {
    std::fprintf(stderr, "turnout-route-check: %s\n",
                 std::string(snapshot.status().message()).c_str());
    return 2;
  }
  auto entry = findEntry(**snapshot, opt.listener);
  if (!entry.ok()) {
    std::fprintf(stderr, "turnout-route-check: %s\n", std::string(entry.status().message()).c_str());
    return 2;
  }
  YAML::Node tests;
  try {
    tests = YAML::LoadFile(opt.tests_path)["tests"];
  } catch (const YAML::Exception& e) {
    std::fprintf(stderr, "turnout-route-check: %s: %s\n", opt.tests_path.c_str(), e.what());
    return 2;
  }
  if (!tests || !tests.IsSequence()) {
    std::fprintf(stderr, "turnout-route-check: %s: expected a 'tests' list\n",
                 opt.tests_path.c_str());
    return 2;
  }
  int passed = 0, failed = 0;
  for (size_t i = 0; i < tests.size(); ++i) {
    const YAML::Node& t = tests[i];
    const std::string name = scalar(t, "test_name", absl::StrCat("tests[", i, "]"));
    Outcome o;
    std::vector<std::string> mismatches;
    try {
      o = run(*entry, t["input"]);
      const YAML::Node& v = t["validate"];
      auto expect = [&](const char* field, const std::string& got) {
        if (v && v[field] && v[field].as<std::string>() != got) {
          mismatches.push_back(absl::StrCat(field, ": expected '", v[field].as<std::string>(),
                                            "', got '", got, "'"));
        }
      };
      expect("cluster_name", o.cluster);
      expect("virtual_host_name", o.vhost);
      expect("path_rewrite", o.path);
      expect("host_rewrite", o.host);
      expect("path_redirect", o.location);
      expect("routing_key", o.key);
      if (v && v["status"] && v["status"].as<uint32_t>() != o.status) {
        mismatches.push_back(absl::StrCat("status: expected ", v["status"].as<uint32_t>(),
                                          ", got ", o.status));
      }
    } catch (const YAML::Exception& e) {
      std::fprintf(stderr, "turnout-route-check: %s: tests[%zu]: %s\n", opt.tests_path.c_str(),
                   i, e.what());
      return 2;
    }
    const bool ok = mismatches.empty();
    (ok ? passed : failed)++;
    std::string key = o.key.empty() ? "-" : o.key;
    std::printf("%s  %-46s key=%-8s -> %s\n", ok ? "PASS" : "FAIL", name.c_str(), key.c_str(),
                o.summary.c_str());
    if (opt.details || !ok) {
      std::printf("      key source: %s; vhost: %s; upstream :authority %s, :path %s\n",
                  o.key_source.empty() ? "none" : o.key_source.c_str(),
                  o.vhost.empty() ? "-" : o.vhost.c_str(), o.host.empty() ? "-" : o.host.c_str(),
                  o.path.empty() ? "-" : o.path.c_str());
    }
    for (const auto& m : mismatches) std::printf("      %s\n", m.c_str());
  }
  std::printf("route check: %d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}

}  // namespace
}  // namespace turnout::config

int main(int argc, char** argv) {
  turnout::config::Options opt;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](const char* flag) -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "turnout-route-check: %s needs a value\n", flag);
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "-c" || a == "--config-path") {
      opt.config_path = value("-c");
    } else if (a == "-t" || a == "--tests") {
      opt.tests_path = value("-t");
    } else if (a == "--listener") {
      opt.listener = value("--listener");
    } else if (a == "--details" || a == "-d") {
      opt.details = true;
    } else if (a == "-h" || a == "--help") {
      turnout::config::usage(stdout);
      return 0;
    } else {
      std::fprintf(stderr, "turnout-route-check: unknown argument '%s'\n", a.c_str());
      turnout::config::usage(stderr);
      return 2;
    }
  }
  if (opt.config_path.empty() || opt.tests_path.empty()) {
    turnout::config::usage(stderr);
    return 2;
  }
  return turnout::config::runTests(opt);
}
