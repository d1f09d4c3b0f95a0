#pragma once

// routing::RouteTable: Envoy's RouteConfiguration semantics (virtual-host
// selection, first-match route matching, route actions), compiled once per
// config snapshot.
//
// Who calls it: config::SnapshotBuilder calls create() on the main/xDS thread;
// RouterFilter calls match() on worker threads. A RouteTable is immutable and
// safe to share between threads. Everything a RouteDecision points at lives
// in the RouteTable (keep the shared_ptr), except the views into the request
// (cluster from cluster_header, host_rewrite from host_rewrite_header), which
// live as long as the caller's request storage.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "routing/header_index.h"
#include "routing/request_view.h"
#include "routing/retry_policy.h"
#include "routing/route_config.h"
#include "routing/route_matcher.h"
#include "routing/weighted_choice.h"

namespace turnout::routing {

class CompiledCorsPolicy;

// The outcome of RouteTable::match().
struct RouteDecision {
  enum class Kind {
    Route,           // forward to `cluster`
    Redirect,        // answer `status` with Location = redirectLocation()
    DirectResponse,  // answer `status` with `body`
    NoRoute,         // Envoy: 404, flag NR, stat no_route
    // cluster_header named a header the request lacks. Envoy then routes to
    // the cluster "" and answers cluster_not_found_response_code (`status`,
    // 503 by default; the cluster_header doc's "404" predates that field).
    ClusterHeaderMissing,
  };

  Kind kind = Kind::NoRoute;
  const VirtualHost* virtual_host = nullptr;  // null only for NoRoute without a vhost
  const Route* route = nullptr;               // null for NoRoute and the require_tls redirect
  uint32_t virtual_host_index = 0;
  uint32_t route_index = 0;

  // Route: the upstream cluster (from `cluster`, the first value of
  // `cluster_header`, or the chosen weighted cluster).
  std::string_view cluster;
  const ClusterWeight* weighted_cluster = nullptr;  // set when weighted_clusters chose
  // 503/404/500 from cluster_not_found_response_code (the caller uses it when
  // the cluster is unknown, and for ClusterHeaderMissing).
  uint32_t cluster_not_found_status = 503;

  // Route and Redirect: the new :path when prefix_rewrite/regex_rewrite
  // applies (query kept); unset when the path is unchanged.
  std::optional<std::string> rewritten_path;
  // Route: the new :authority when a host rewrite applies; empty = keep.
  // Envoy order: the route's host_rewrite_literal / host_rewrite_header (when
  // present and non-empty) wins over the weighted cluster's literal.
  std::string_view host_rewrite;
  bool auto_host_rewrite = false;

  // Route: 0 = no route timeout. Envoy default 15 s.
  std::chrono::milliseconds timeout{15000};
  std::optional<std::chrono::milliseconds> idle_timeout;
  // Route: how long the whole stream may last from its start, from the
  // grpc-timeout header when the route sets grpc_timeout_header_max; unset =
  // no limit; 0 = already over (the offset ate it).
  std::optional<std::chrono::milliseconds> max_stream_duration;
  const RetryPolicy* retry_policy = nullptr;  // route's, else vhost's, else none
  const CompiledRetryPolicy* retry = nullptr;  // retry_policy compiled; set with it
  // Most specific non-empty list: route, else vhost, else route config.
  std::span<const RequestMirrorPolicy> mirror_policies;
  std::span<const HashPolicy> hash_policy;
  // Route: the route's and the virtual host's CorsPolicy, null when unset:
  // their typed_per_filter_config's when either has one, else
  // RouteAction.cors and VirtualHost.cors; routing/cors.h reads them.
  const CompiledCorsPolicy* route_cors = nullptr;
  const CompiledCorsPolicy* vhost_cors = nullptr;

  // Redirect and DirectResponse: the status to answer with.
  uint32_t status = 0;
  std::string_view body;  // DirectResponse body (may be empty)
};

// A header container the proxy adapts its own header map to. Names passed in
// are lowercase.
class HeaderMutationTarget {
 public:
  virtual ~HeaderMutationTarget() = default;
  virtual bool has(std::string_view name) const = 0;
  // Adds one more value (keeps existing ones).
  virtual void add(std::string_view name, std::string_view value) = 0;
  // Replaces every value of `name` with `value`.
  virtual void set(std::string_view name, std::string_view value) = 0;
  virtual void remove(std::string_view name) = 0;
};

// Expands one `%COMMAND%` / `%COMMAND(args)%` operator (given without the
// surrounding '%') by appending to `out`. Unset = operators expand to "".
using HeaderFormatHook = std::function<void(std::string_view command, std::string& out)>;

// One level of header mutations (weighted cluster, route, vhost, or route
// configuration). Points into the RouteTable.
struct HeaderMutationLevel {
  const CompactVector<HeaderValueOption>* to_add = nullptr;
  const CompactVector<std::string>* to_remove = nullptr;
};
using HeaderMutationLevels = std::vector<HeaderMutationLevel>;

class RouteTable;
using RouteTableConstSharedPtr = std::shared_ptr<const RouteTable>;

class RouteTable {
 public:
  // One virtual host, validated and compiled on its own (its routes, their
  // matchers, the sandbox index, its retry policies). Immutable; every
  // RouteTable built with it shares it, and everything a RouteDecision
  // points at for it lives in it. VHDS keeps one per received VirtualHost so
  // that an update compiles only the virtual hosts it changed.
  struct CompiledVirtualHost;
  using VirtualHostConstSharedPtr = std::shared_ptr<const CompiledVirtualHost>;

  // Errors name `field` (e.g. `virtual_hosts[2]` or a VHDS resource's
  // `resources[0]`) followed by the path inside the virtual host. What needs
  // the rest of the table (a domain another virtual host has, a direct
  // response body over max_direct_response_body_size_bytes) is checked by
  // create().
  static absl::StatusOr<VirtualHostConstSharedPtr> compileVirtualHost(VirtualHost config,
                                                                      std::string_view field);
  // compileVirtualHost() for a new version of `previous` that keeps some of
  // its routes: route i of the new host is `previous`'s route reuse[i] when
  // reuse[i] >= 0, else the next one of `config.routes` in order (there must
  // be exactly as many as reuse has negative entries). A kept route is
  // shared, not compiled again: a compiled route holds its config and its
  // action and nothing of the virtual host around it (an inherited retry or
  // mirror policy is the new host's), so a host of 10,000 routes that gained
  // one compiles one. The sandbox index and the matches of the routes
  // outside it are rebuilt for the new order. Errors name a route by its
  // index in the new host.
  static absl::StatusOr<VirtualHostConstSharedPtr> compileVirtualHost(
      VirtualHost config, std::string_view field, const CompiledVirtualHost& previous,
      std::span<const int32_t> reuse);
  // The routes of a compiled virtual host (tests, and the caller of the
  // reusing compileVirtualHost()).
  static size_t routeCount(const CompiledVirtualHost& vh);
  static std::string_view virtualHostName(const CompiledVirtualHost& vh);
  static const Route& route(const CompiledVirtualHost& vh, size_t i);

  // Validates and compiles `config`, whose virtual hosts come first, then
  // `compiled_hosts` in order (VHDS). Errors name the path inside the route
  // configuration, e.g. `virtual_hosts[1].domains[0]: duplicate domain "a.com"`,
  // the i-th compiled host being `virtual_hosts[config.virtual_hosts.size() + i]`.
  // Costs O(virtual hosts + domains) beyond compiling config's own virtual hosts.
  static absl::StatusOr<RouteTableConstSharedPtr> create(
      RouteConfiguration config, std::vector<VirtualHostConstSharedPtr> compiled_hosts = {});

  RouteTable(const RouteTable&) = delete;
  RouteTable& operator=(const RouteTable&) = delete;

  // Pure. Every header matcher, the sandbox index included, reads the
  // headers `view` holds, exactly as Envoy's router reads the header map the
  // filters before it left: a repeated header is matched as its values joined
  // with "," in arrival order; header names are case-insensitive (`view`
  // holds them lowercase). The routing-key header (`x-turnout-routing-key`)
  // is an ordinary header here. When a RoutingKey filter is configured, the
  // caller must apply it to the request before building `view`: set its
  // output_header to the extracted key, replacing every value the client
  // sent, or remove that header when no key was found (ActiveStream does
  // this). Without the filter the client's header is matched as sent.
  // `random` is Envoy's per-stream random value (its stream id): as in
  // Envoy, the same value drives runtime_fraction
  // (`random % denominator < numerator`) and the weighted_clusters pick
  // (`random % total`). Allocates nothing unless a path rewrite applies, or a
  // repeated header (or an upper-case authority) outgrows the per-thread
  // scratch buffer, which keeps its capacity for the next request.
  RouteDecision match(const RequestView& view, uint64_t random) const;

  // Former signature, kept so callers compile. `routing_key` is IGNORED: it
  // used to stand in for the routing-key header, which made a route on that
  // header unmatchable without the RoutingKey filter and could disagree with
  // the filter's output_header. The key must be in `view` instead (above).
  RouteDecision match(const RequestView& view, std::string_view routing_key,
                      uint64_t random) const {
    (void)routing_key;
    return match(view, random);
  }

  // Same as match() with the sandbox index disabled (every route evaluated in
  // order). For tests and the fuzzer, which check both agree.
  RouteDecision matchLinear(const RequestView& view, uint64_t random) const;
  // Former signature; `routing_key` is ignored, as for match().
  RouteDecision matchLinear(const RequestView& view, std::string_view routing_key,
                            uint64_t random) const {
    (void)routing_key;
    return matchLinear(view, random);
  }

  // The virtual host Envoy would select, or -1 (no authority / no match).
  int64_t findVirtualHost(std::string_view authority) const;

  // Number of routes of virtual host `vh` served by the sandbox index.
  size_t indexedRouteCount(size_t vh) const;

  // Request (or response) header mutation levels for `decision` in Envoy's
  // evaluation order (later levels win): weighted cluster first, then route,
  // vhost, route configuration; with most_specific_header_mutations_wins the
  // last three are reversed (route configuration, vhost, route). Envoy
  // evaluates the weighted cluster's level first in both cases. Empty levels
  // are omitted.
  HeaderMutationLevels requestHeaderMutations(const RouteDecision& decision) const;
  HeaderMutationLevels responseHeaderMutations(const RouteDecision& decision) const;

 private:
  struct CompiledRoute;
  class RoutePtr;
  struct RouteSlot;
  struct CompiledRun;
  struct Segment;

  RouteTable();
  static absl::StatusOr<RoutePtr> compileRoute(Route config, std::string_view field,
                                               CompiledRouteMatch& match);
  static absl::StatusOr<VirtualHostConstSharedPtr> compileHost(VirtualHost config,
                                                               std::string_view field,
                                                               const CompiledVirtualHost* previous,
                                                               std::span<const int32_t> reuse);
  absl::Status compile(std::vector<VirtualHostConstSharedPtr> compiled_hosts);
  RouteDecision matchImpl(const RequestView& view, uint64_t random, bool use_index) const;
  RouteDecision decide(const CompiledVirtualHost& vh, uint32_t vh_index, uint32_t route_index,
                       const MatchInput& in) const;

  // The route configuration's own fields; its virtual_hosts are moved into
  // vhosts_ (empty here).
  RouteConfiguration config_;
  std::vector<VirtualHostConstSharedPtr> vhosts_;
  absl::flat_hash_map<std::string, uint32_t> exact_domains_;
  // Wildcard domains keyed by the length of the non-'*' part, longest first.
  std::vector<std::pair<size_t, absl::flat_hash_map<std::string, uint32_t>>> suffix_domains_;
  std::vector<std::pair<size_t, absl::flat_hash_map<std::string, uint32_t>>> prefix_domains_;
  int64_t default_vhost_ = -1;
};

// A grpc-timeout header value (gRPC's PROTOCOL-HTTP2: 1 to 8 digits and a
// unit H, M, S, m, u or n), rounded up to whole milliseconds, as Envoy's
// Grpc::Common::getGrpcTimeout; nullopt when malformed.
std::optional<std::chrono::milliseconds> parseGrpcTimeout(std::string_view value);

// Applies `levels` in order to `headers`, as Envoy's HeaderParser does per
// level: removals first; then every add is evaluated against the headers as
// they were before this level's adds (ADD_IF_ABSENT, OVERWRITE_IF_EXISTS);
// overwrites are applied, then appends. An empty formatted value adds nothing
// unless keep_empty_value. Pseudo-headers and `host` are never touched
// (create() already rejects them). `%%` is a literal '%'; other `%...%`
// operators go to `hook`.
void applyHeaderMutations(const HeaderMutationLevels& levels, HeaderMutationTarget& headers,
                          const HeaderFormatHook& hook = {});

// Formats one header value: `%%` -> '%', `%CMD%` -> hook(CMD). Exposed for tests.
std::string formatHeaderValue(std::string_view value, const HeaderFormatHook& hook);

// The Location of a Redirect decision (Envoy's Http::Utility::newUri), or of
// a DirectResponse with status 201 or 3xx; "" otherwise.
std::string redirectLocation(const RequestView& view, const RouteDecision& decision);

}  // namespace turnout::routing
