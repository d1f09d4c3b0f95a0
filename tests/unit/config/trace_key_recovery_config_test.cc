#include <catch2/catch.hpp>

#include <string>

#include "absl/strings/str_cat.h"
#include "config/bootstrap/bootstrap_loader.h"
#include "config/snapshot/routing_key_config.h"
#include "config/snapshot/snapshot_builder.h"

namespace turnout::config {
namespace {

constexpr const char* kFilter =
    "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0]."
    "typed_config";

// One listener per entry of `filters`: a RoutingKey filter with those fields
// (YAML at the filter's indentation, empty for none), then the router.
std::string bootstrap(const std::vector<std::string>& filters) {
  std::string out = "static_resources:\n  listeners:\n";
  for (size_t i = 0; i < filters.size(); ++i) {
    absl::StrAppend(&out, R"(
  - name: l)", i, R"(
    address: {socket_address: {address: 127.0.0.1, port_value: )", 1000 + i, R"(}}
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: in
          route_config: {virtual_hosts: [{name: v, domains: ['*'], routes: [{match: {prefix: /}, direct_response: {status: 200}}]}]}
          http_filters:
          - name: rk
            typed_config:
              "@type": type.googleapis.com/turnout.extensions.filters.http.routing_key.v3.RoutingKey
)",
                    filters[i], R"(
          - name: router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
)");
  }
  return out;
}

std::string errorOf(const std::vector<std::string>& filters) {
  auto loaded = loadBootstrapFromYaml(bootstrap(filters));
  if (!loaded.ok()) return absl::StrCat("load: ", loaded.status().message());
  auto snapshot = SnapshotBuilder::build(loaded->bootstrap);
  return snapshot.ok() ? "OK" : std::string(snapshot.status().message());
}

RoutingKeyFilterConfig configOf(const std::string& fields) {
  auto loaded = loadBootstrapFromYaml(bootstrap({fields}));
  INFO(loaded.status().ToString());
  REQUIRE(loaded.ok());
  auto snapshot = SnapshotBuilder::build(loaded->bootstrap);
  INFO(snapshot.status().ToString());
  REQUIRE(snapshot.ok());
  const auto& f = (*snapshot)->listeners[0].filter_chains[0].http_connection_manager->http_filters[0];
  turnout::extensions::filters::http::routing_key::v3::RoutingKey proto;
  REQUIRE(f.config.UnpackTo(&proto));
  auto cfg = toRoutingKeyFilterConfig(proto, "f");
  REQUIRE(cfg.ok());
  return *cfg;
}

TEST_CASE("trace key recovery is off unless configured, with its defaults", "[config]") {
  const RoutingKeyFilterConfig none = configOf("");
  CHECK_FALSE(none.trace.enabled());
  const RoutingKeyFilterConfig off = configOf("              trace_key_recovery: {}");
  CHECK_FALSE(off.trace.enabled());
  const RoutingKeyFilterConfig both = configOf("              trace_key_recovery: {mode: BOTH}");
  CHECK(both.trace.remember);
  CHECK(both.trace.recover);
  CHECK(both.trace.ttl_ms == 300000);
  CHECK(both.trace.max_entries == 16384);
  CHECK(both.trace.baggage_member == "turnout-routing-key");
}

TEST_CASE("trace key recovery honours mode, ttl, max_entries and the first baggage source",
          "[config]") {
  const RoutingKeyFilterConfig remember = configOf(
      "              trace_key_recovery: {mode: REMEMBER, ttl: 1.5s, max_entries: 100}");
  CHECK(remember.trace.remember);
  CHECK_FALSE(remember.trace.recover);
  CHECK(remember.trace.ttl_ms == 1500);
  CHECK(remember.trace.max_entries == 100);
  const RoutingKeyFilterConfig recover = configOf(
      "              sources: [{header: x-key}, {baggage_member: my-key}, {baggage_member: b}]\n"
      "              trace_key_recovery: {mode: RECOVER, ttl: 0.001s}");
  CHECK_FALSE(recover.trace.remember);
  CHECK(recover.trace.recover);
  CHECK(recover.trace.ttl_ms == 1);
  CHECK(recover.trace.baggage_member == "my-key");
}

struct ErrorCase {
  std::vector<std::string> filters;
  std::string error;
};

TEST_CASE("trace key recovery fields are validated with their paths", "[config]") {
  const std::string path = absl::StrCat(kFilter, ".trace_key_recovery");
  const ErrorCase c = GENERATE_COPY(values<ErrorCase>({
      {{"              trace_key_recovery: {mode: RECOVER, ttl: 0.0005s}"},
       absl::StrCat("load: ", path, ".ttl: value must be inside range [0.001s, 86400s]")},
      {{"              trace_key_recovery: {mode: RECOVER, ttl: 86400.001s}"},
       absl::StrCat("load: ", path, ".ttl: value must be inside range [0.001s, 86400s]")},
      {{"              trace_key_recovery: {mode: RECOVER, ttl: 1.0005s}"},
       absl::StrCat(path, ".ttl: must be whole milliseconds (the table's resolution)")},
      {{"              trace_key_recovery: {mode: RECOVER, max_entries: 0}"},
       absl::StrCat("load: ", path, ".max_entries: value must be inside range [1, 1048576]")},
      {{"              trace_key_recovery: {mode: RECOVER, max_entries: 1048577}"},
       absl::StrCat("load: ", path, ".max_entries: value must be inside range [1, 1048576]")},
      {{"              trace_key_recovery: {mode: 7}"},
       absl::StrCat("load: ", path, ".mode: value must be one of the defined enum values")},
      // RECOVER writes baggage: it needs a baggage member to write.
      {{"              sources: [{header: x-key}]\n"
        "              trace_key_recovery: {mode: RECOVER}"},
       absl::StrCat(path, ".mode: RECOVER re-attaches the key as a baggage member, and sources "
                          "names no baggage_member")},
      {{"              sources: [{tracestate_key: t}]\n"
        "              trace_key_recovery: {mode: BOTH}"},
       absl::StrCat(path, ".mode: RECOVER re-attaches the key as a baggage member, and sources "
                          "names no baggage_member")},
      // REMEMBER alone needs none.
      {{"              sources: [{header: x-key}]\n"
        "              trace_key_recovery: {mode: REMEMBER}"},
       "OK"},
  }));
  CAPTURE(c.filters);
  CHECK(errorOf(c.filters) == c.error);
}

TEST_CASE("trace key recovery: every listener must size the process's one table the same",
          "[config]") {
  const std::string second =
      "static_resources.listeners[1].filter_chains[0].filters[0].typed_config.http_filters[0]."
      "typed_config.trace_key_recovery";
  // Same size (default or spelled out), or recovery off on one: fine.
  CHECK(errorOf({"              trace_key_recovery: {mode: REMEMBER}",
                 "              trace_key_recovery: {mode: RECOVER, max_entries: 16384}"}) == "OK");
  CHECK(errorOf({"              trace_key_recovery: {mode: REMEMBER, max_entries: 10}",
                 "              trace_key_recovery: {max_entries: 20}", ""}) == "OK");
  CHECK(errorOf({"              trace_key_recovery: {mode: REMEMBER, max_entries: 10}",
                 "              trace_key_recovery: {mode: RECOVER, max_entries: 20}"}) ==
        absl::StrCat(second, ".max_entries: 20 differs from 10 at ", kFilter,
                     ".trace_key_recovery.max_entries: the trace-key table is one per process, so "
                     "every filter with recovery on must size it the same"));
}

}  // namespace
}  // namespace turnout::config
