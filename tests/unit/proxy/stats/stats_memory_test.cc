#include <catch2/catch.hpp>

#include <malloc.h>

#include <string>
#include <vector>

#include "proxy/stats/store.h"
#include "proxy/stats/well_known_stats.h"

namespace turnout::proxy::stats {
namespace {

size_t heapInUse() {
  const struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
}

// Issue #8's scale target: 10,000 sandboxes, each its own cluster, 2 workers.
// Counts what config build does for an idle cluster: register its stats and
// set its membership gauges on the main shard. Before scopes this was about
// 30 KB per cluster (and clusters past ~636 had no stats); with a struct of
// ids per cluster, about 700 bytes.
TEST_CASE("an idle cluster's stats cost under 512 bytes with 2 workers", "[stats][memory]") {
  constexpr size_t kClusters = 10000;
  std::vector<ClusterStats> clusters;
  clusters.reserve(kClusters);
  Store store(2);
  (void)clusterStatSchema(false);  // the shared schema is built once, not per cluster
  const size_t before = heapInUse();
  const size_t shards_before = store.shardBytes();
  for (size_t i = 0; i < kClusters; ++i) {
    clusters.push_back(makeClusterStats(store, "sb" + std::to_string(i), ""));
    store.mainShard().set(clusters.back().membership_total(), 1);
    store.mainShard().set(clusters.back().membership_healthy(), 1);
  }
  const double heap = static_cast<double>(heapInUse() - before) / kClusters;
  const double shards = static_cast<double>(store.shardBytes() - shards_before) / kClusters;
  const double per_cluster = heap + sizeof(ClusterStats);
  WARN("per idle cluster: " << per_cluster << " bytes = heap " << heap << " (of which shard values "
                            << shards << ") + sizeof(ClusterStats) " << sizeof(ClusterStats));
  CHECK(store.overflowCount() == 0);
  CHECK(per_cluster <= 512);
}

}  // namespace
}  // namespace turnout::proxy::stats
