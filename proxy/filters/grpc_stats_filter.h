#pragma once

// envoy.filters.http.grpc_stats (Envoy's GrpcStatsFilter; docs/grpc.md "gRPC
// stats"): for a gRPC request routed to a cluster, counts in
// cluster.<route target>.grpc.* the call's grpc-status (grpc.<code>,
// success or failure, total, whether it came in the response headers of a
// trailers-only response, in the trailers, or in a local reply), the
// messages each way (request_message_count, response_message_count) and,
// with enable_upstream_stats, the upstream request time (upstream_rq_time).
// A call to a method of individual_method_stats_allowlist, or to any method
// with stats_for_all_methods, counts in cluster.<name>.grpc.<service>.<method>.*
// instead, as Envoy's.
//
// turnout's filter chain is header-only and keeps no per-stream state
// (proxy/stream/filter.h), so this filter is a GrpcStatsTracker the stream
// holds and the router feeds: RouterFilter makes one once the route's
// cluster is known, and ActiveStream's local replies pass through it.
//
// Per-method stats are created where they are first used, as Envoy's, but
// turnout registers stats on the main thread only: a worker's first call of
// a method asks the main thread for the scope (GrpcMethodStats) and goes on
// at once; what its calls charge before the ids come back is kept by each
// call (PendingGrpcCharges) and written when they have come, or, for a call
// that ended first, by the main thread into its own shard. Nothing a call
// charges is lost or lands in another stat.
//
// Who calls it: the stream's worker thread.

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "proxy/codec/grpc_framing.h"
#include "proxy/codec/header_map.h"
#include "proxy/common/mailbox.h"
#include "proxy/stats/well_known_stats.h"

namespace turnout::proxy {

// The filter's config, compiled into the HCM's runtime.
struct GrpcStatsFilterConfig {
  bool upstream_stats = false;  // enable_upstream_stats
  bool all_methods = false;     // stats_for_all_methods
  bool replace_dots = false;    // replace_dots_in_grpc_service_name (with all_methods)
  // individual_method_stats_allowlist, as "<service>/<method>".
  absl::flat_hash_set<std::string> allowlist;

  // The "<service>.<method>" a call to `path` is counted under (written
  // into `buffer`), or nullopt for the cluster's grpc.*: the path's two
  // segments (isGrpcServicePath) when the allowlist names them or
  // all_methods is set. turnout also keeps out of stat names what Envoy
  // would not: a segment over kMaxMethodNameLength bytes, or one with a byte
  // outside '!'..'~' (such a call counts in the cluster's grpc.*).
  static constexpr size_t kMaxMethodNameLength = 128;
  using MethodNameBuffer = std::array<char, 2 * kMaxMethodNameLength + 1>;
  std::optional<std::string_view> methodStatName(std::string_view path,
                                                 MethodNameBuffer& buffer) const;
};

// One gRPC method's stats on one worker (WorkerCluster keeps them by name,
// GrpcStatsTracker charges them). Made by requestGrpcMethodStats; `ready`
// and `scope` are written on the worker only, once the main thread has
// registered the scope.
struct GrpcMethodStats {
  std::string prefix;  // cluster.<name>.grpc.<service>.<method>.
  stats::Store* store = nullptr;
  stats::ScopeRef scope;  // the registered scope (keeps its ids valid)
  stats::GrpcClusterStats ids;
  bool ready = false;
};
using GrpcMethodStatsSharedPtr = std::shared_ptr<GrpcMethodStats>;

// Asks the main thread (Store::runOnMainThread) to register `prefix`'s scope
// and hand it to the entry through `worker`'s mailbox. Worker thread.
GrpcMethodStatsSharedPtr requestGrpcMethodStats(stats::Store& store, Mailbox& worker,
                                                std::string prefix);

// What a call charged to a method whose ids have not come back yet: offsets
// in grpcMethodStatSchema() and amounts (a counter once, added up; each
// histogram sample), written into a shard once they have.
class PendingGrpcCharges {
 public:
  void inc(stats::StatId offset, uint64_t n = 1);
  void record(stats::StatId offset, uint64_t value_ms);
  bool empty() const { return charges_.empty(); }
  // Writes every charge into `shard` under `scope`'s ids, and forgets them.
  void replay(stats::Shard& shard, const stats::ScopeRef& scope);

 private:
  struct Charge {
    uint32_t offset;
    bool histogram;
    uint64_t value;
  };
  std::vector<Charge> charges_;
};

// Envoy's Grpc::Common::resolveServiceAndMethod: a path (its query dropped)
// of exactly two non-empty segments, /<service>/<method> (empty segments are
// skipped, as Envoy's split does). Only such calls are counted.
bool isGrpcServicePath(std::string_view path);

class GrpcStatsTracker {
 public:
  // `method`: the call's per-method stats (null: the cluster's grpc.*,
  // `stats`).
  GrpcStatsTracker(stats::GrpcClusterStats stats, stats::Shard& shard,
                   const GrpcStatsFilterConfig& config, GrpcMethodStatsSharedPtr method = nullptr)
      : stats_(stats), shard_(shard), config_(config), method_(std::move(method)) {}
  // What is still pending goes to the main thread, which registers the
  // method's scope (or finds it) and writes it into its own shard.
  ~GrpcStatsTracker();
  GrpcStatsTracker(const GrpcStatsTracker&) = delete;
  GrpcStatsTracker& operator=(const GrpcStatsTracker&) = delete;

  // Request body bytes as they leave for the upstream (once each, whatever
  // the retries).
  void onRequestData(std::span<const char> data);
  // The response head sent to the client (the upstream's, or a local
  // reply's); `end_stream`: a trailers-only response.
  void onResponseHeaders(uint16_t status, const HeaderMap& headers, bool end_stream);
  void onResponseData(std::span<const char> data);
  void onResponseTrailers(const HeaderMap& trailers);
  // An upstream request completed after `elapsed`.
  void onUpstreamComplete(std::chrono::milliseconds elapsed);

 private:
  void chargeStatus(const HeaderMap& headers);
  // Calls fn(sink, ids) with where this call's stats go now: the shard and
  // the cluster's or the method's ids, or the pending charges and the
  // method schema's offsets.
  template <class F>
  void charge(F&& fn);

  const stats::GrpcClusterStats stats_;  // by value: ClusterStats::grpc() computes it
  stats::Shard& shard_;
  const GrpcStatsFilterConfig& config_;
  const GrpcMethodStatsSharedPtr method_;
  PendingGrpcCharges pending_;  // method_ not ready yet
  GrpcFrameCounter request_frames_;
  GrpcFrameCounter response_frames_;
  bool grpc_response_ = false;  // a 200 gRPC response whose body is messages
};

}  // namespace turnout::proxy
