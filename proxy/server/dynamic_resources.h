#pragma once

#include <array>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "proxy/common/asio.h"

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/inlined_vector.h"
#include "absl/container/node_hash_map.h"
#include "absl/status/status.h"
#include "config/snapshot/discovery_response.h"
#include "envoy/config/route/v3/route.pb.h"
#include "proxy/server/snapshot_publisher.h"
#include "proxy/stats/store.h"
#include "proxy/xds/xds_cache.h"
#include "proxy/xds/xds_stream.h"

namespace turnout::proxy {

// Watches one file (Envoy's path_config_source): `on_change` gets its
// contents whenever they change. inotify on the watched directory
// (IN_MOVED_TO, IN_CLOSE_WRITE, IN_CREATE) through an Asio
// StreamDescriptor, plus a re-stat every second as a fallback. A
// file moved into place (rename, as Kubernetes does) is seen at once. Main
// thread.
class FileWatch {
 public:
  using OnChange = std::function<void(const std::string& contents)>;
  FileWatch(asio::io_context& main, std::string path, std::string directory, OnChange on_change);
  ~FileWatch();
  FileWatch(const FileWatch&) = delete;
  FileWatch& operator=(const FileWatch&) = delete;
  // Reads the file now (the initial load) and starts watching.
  void start();
  void stop();

 private:
  void check();
  void readEvents();
  void tick();

  std::string path_;
  std::string directory_;
  OnChange on_change_;
  std::optional<std::string> last_;
  int inotify_fd_ = -1;
  std::unique_ptr<StreamDescriptor> events_;
  SteadyTimer timer_;
  std::array<char, 4096> buffer_{};
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// The bootstrap's dynamic_resources (cds_config, lds_config), the RDS
// config sources of its HCMs and the EDS config sources of its clusters (static
// or from CDS), from files: each file change is parsed,
// checked like the bootstrap, turned into runtime objects for the changed
// resources only, and published. A bad file is rejected (logged at warn,
// update_rejected counted) and the last good config keeps serving. Stats as
// Envoy's: cluster_manager.cds.*, listener_manager.lds.*,
// http.<stat_prefix>.rds.<route_config_name>.* (update_attempt,
// update_success, update_rejected, version), and for EDS the cluster's own
// scope: cluster.<name>.update_attempt / update_success / update_rejected /
// update_empty / update_no_rebuild / membership_change / init_fetch_timeout.
//
// EDS (Envoy's EdsClusterImpl over a filesystem subscription): each EDS
// cluster matches the ClusterLoadAssignment whose cluster_name is its
// service_name (else its name). An assignment is turned into the cluster's
// new host set (updateEndpointHosts: surviving hosts keep their state) and
// published with SnapshotPublisher::publishHosts, so only that cluster's
// WorkerCluster changes on each worker. A file without the cluster's
// assignment keeps its hosts (update_empty). A cluster warms until its first
// assignment, at most initial_fetch_timeout; meanwhile it has no hosts
// (requests get 503 UH). Gauge cluster_manager.warming_clusters.
//
// ADS (docs/xds.md): a source `ads: {}` takes its resources from the one
// xDS stream of dynamic_resources.ads_config (XdsStream), through the same
// checks and the same apply steps as a file; the handler's outcome is the
// ACK or the NACK. CDS and LDS are wildcard subscriptions; RDS asks for the
// route_config_names of the HCMs that use ADS, EDS for the service names of
// the EDS clusters that do, both kept current as listeners and clusters
// come and go.
//
// Unknown fields in a resource (a newer API's: config::UnknownFields) are,
// as Envoy's dynamic config: dropped, counted once each in
// server.dynamic_unknown_fields and logged at warn (kWarn, the default);
// dropped, neither logged nor counted (kIgnore); or the update is refused
// naming the first (kReject).
//
// VHDS (docs/xds.md, "VHDS"): an ADS route configuration with `vhds` (Delta
// ADS only) makes its name a namespace subscription of the VirtualHost type;
// its table is its inline virtual hosts plus the VHDS ones of its namespace,
// rebuilt when either changes. A listener waiting for it warms until the
// first VHDS response. Main thread.
enum class UnknownDynamicFields { kWarn, kIgnore, kReject };

class DynamicResources {
 public:
  // `xds_cache_dir`: --xds-cache (docs/xds.md), empty for none.
  // `unknown_fields`: what a resource's unknown fields do (Envoy's
  // --reject-unknown-dynamic-fields / --ignore-unknown-dynamic-fields).
  DynamicResources(asio::io_context& main, stats::Store& store, SnapshotPublisher& publisher,
                   std::string xds_cache_dir = {},
                   UnknownDynamicFields unknown_fields = UnknownDynamicFields::kWarn);
  ~DynamicResources();

  // Reads the bootstrap's config sources; errors name the field.
  absl::Status start();
  void stop();

  // What /config_dump shows (Envoy's admin v3 ConfigDump). Main thread.
  using Time = std::chrono::system_clock::time_point;
  // The last rejected update (Envoy's UpdateFailureState); cleared by the
  // next accepted one.
  struct ErrorState {
    std::string details;
    Time last_update_attempt{};
  };
  // The accepted update that last changed one resource.
  struct ResourceVersion {
    std::string version_info;
    Time last_updated{};
  };
  struct Source {
    std::string version_info;  // of the last accepted file
    Time last_updated{};
    std::optional<ErrorState> error;
    absl::flat_hash_map<std::string, ResourceVersion> resources;  // by cluster / listener name
  };
  // One RDS route configuration by name: the last accepted proto (absent
  // while none was, and for one with VHDS: routeConfig() merges it), and the
  // last rejection.
  struct RouteConfigState {
    std::string version_info;
    Time last_updated{};
    std::optional<envoy::config::route::v3::RouteConfiguration> route_config;
    bool vhds = false;  // accepted, with vhds: the proto is in vhds_rds_
    std::optional<ErrorState> error;
  };
  // What /config_dump shows of an accepted route configuration: as
  // received, or with VHDS its virtual hosts merged in, as Envoy does (made
  // on demand: keeping a merged copy would hold every virtual host twice).
  std::optional<envoy::config::route::v3::RouteConfiguration> routeConfig(
      const std::string& name, const RouteConfigState& state) const;
  const Source& cds() const { return cds_; }
  const Source& lds() const { return lds_; }
  const std::map<std::string, RouteConfigState>& routeConfigs() const { return route_configs_; }
  // The ADS stream, or null without dynamic_resources.ads_config.
  const XdsStream* ads() const { return ads_.get(); }

  // Envoy's initialisation (docs/xds.md, "Initialisation"): with ADS, false
  // until the first CDS and LDS responses (or the --xds-cache), the EDS
  // clusters and the listeners they bring, and the ADS routes of the bound
  // listeners are in, each wait bounded by its config source's
  // initial_fetch_timeout (15 s; 0: none). The server is INITIALIZING
  // meanwhile (/ready answers 503). Once true it stays true.
  bool initialized() const { return initialized_; }

 private:
  struct UpdateStats {
    stats::StatId attempt, success, rejected, version;
    // Envoy's update_duration histogram: from the response (or file) being
    // taken up to the new generation published, parsing included.
    stats::StatId duration;
  };
  // The start of the update being handled (updateStarted()); accepted()
  // records the time since into the source's update_duration.
  void updateStarted() { update_started_ = std::chrono::steady_clock::now(); }
  uint64_t updateMicros() const {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                     std::chrono::steady_clock::now() - update_started_)
                                     .count());
  }
  std::chrono::steady_clock::time_point update_started_{};
  UpdateStats makeStats(const std::string& prefix);
  // One CDS / LDS update, from a file or the ADS stream: Ok, or the reason
  // it was rejected (the last good config stays). CDS: `parsed` is the whole
  // set (dynamic clusters missing from it are removed), or with
  // `removed_names` (Delta) only the changed clusters, and those names go.
  absl::Status applyClusters(absl::StatusOr<config::DiscoverySnapshot> parsed,
                             const std::vector<std::string>* removed_names = nullptr);
  absl::Status applyListeners(absl::StatusOr<config::DiscoverySnapshot> parsed);
  // CDS State of the World over xDS: the clusters whose bytes changed are
  // parsed and applied (applyClusters), the missing ones removed.
  absl::Status applySotwClusters(const std::string& version, const config::AnyList& resources);
  // SotW CDS: a hash of the bytes each running dynamic cluster came in, and
  // that runtime (as Envoy's CDS compares a hash of each cluster to skip the
  // unchanged ones). Only the State-of-the-World path keeps it.
  struct SotwCluster {
    uint64_t hash = 0;
    const ClusterRuntime* runtime = nullptr;
  };
  absl::flat_hash_map<std::string, SotwCluster> sotw_clusters_;
  // RDS over xDS: the compiled virtual hosts of the last accepted response,
  // by route configuration and a hash of their bytes; a response's
  // unchanged virtual hosts are reused (config::parseRouteResourcesReusing).
  config::CompiledVirtualHosts xds_vhosts_;
  absl::Status applyAdsRoutes(absl::StatusOr<config::DiscoveryRoutes> parsed);
  absl::Status applyAdsEndpoints(absl::StatusOr<config::DiscoveryEndpoints> parsed);
  // VHDS: one Delta response of VirtualHosts (checked, merged, published, or NACKed).
  absl::Status applyVhds(const config::xds::DeltaUpdate& update);
  // What an RDS route configuration's vhds may use here.
  config::VhdsSource vhdsSource() const;
  // One VHDS virtual host as received (for /config_dump), and compiled when
  // it arrived: a table rebuilt for a later update shares it.
  struct VhdsHost {
    // The resource as received (the Any's bytes), parsed only for
    // /config_dump: a parsed VirtualHost costs several times its bytes.
    std::string serialized;
    routing::RouteTable::VirtualHostConstSharedPtr compiled;
    // Its routes' keys: the next version parses, checks and compiles only
    // the routes not among them (config::checkVirtualHost).
    config::RouteKeys route_keys;
  };
  // The VHDS virtual hosts of one namespace (route configuration), by resource name.
  using VhdsHosts = std::map<std::string, VhdsHost>;
  // `rds` (a route configuration with vhds) with `hosts` appended (what
  // /config_dump shows: mergedProto), or its table: `rds` translated, with
  // the compiled `hosts` after its own virtual hosts (O(virtual hosts), no
  // route compiled again). `label` names a VHDS virtual host in an error (by
  // resource name); errors name `path`.
  static envoy::config::route::v3::RouteConfiguration mergedProto(
      const envoy::config::route::v3::RouteConfiguration& rds, const VhdsHosts& hosts);
  static absl::StatusOr<RouteTableConstSharedPtr> mergeVhds(
      const envoy::config::route::v3::RouteConfiguration& rds, const VhdsHosts& hosts,
      const std::string& path, const std::function<std::string(const std::string&)>& label);
  // The VHDS namespaces: the ADS route configurations with vhds that are
  // asked for; a new one waits for its first VHDS response.
  void watchVhds();
  // Starts the xDS streams: ADS (ads_config) with its subscriptions, and the
  // CDS/LDS api_config_source streams.
  absl::Status startXds();
  // True when a static listener or cluster takes RDS or EDS from xDS.
  static bool usesXds(const config::Snapshot& s);
  // An xDS stream to `server` on `method_path`; errors name `path`.
  absl::StatusOr<std::unique_ptr<XdsStream>> makeStream(const config::AdsServerConfig& server,
                                                        std::string method_path,
                                                        const std::string& path) const;
  // Subscribes `stream` to `type` with the handler that applies it.
  void subscribeType(XdsStream& stream, const std::string& type);
  // One xDS source per type (ADS, or one api_config_source stream): whether
  // `type` can take `source` (null: ADS), and binding it (opening the stream
  // on first use). Errors name `path`.
  absl::Status canBind(const std::string& type, const std::optional<config::AdsServerConfig>& source,
                       const std::string& path) const;
  absl::Status bindType(const std::string& type, const std::optional<config::AdsServerConfig>& source,
                        const std::string& path);
  // The stream `type` is taken from: its own, else the ADS stream (or null).
  XdsStream* streamFor(const std::string& type) const;
  // --xds-cache: applies the cached responses, CDS, EDS, LDS, RDS.
  void restoreFromCache();
  // A resource set that needs ADS when there is none: the error, naming it.
  absl::Status checkAdsAvailable(const config::Snapshot& resources) const;
  void watchRoutes();
  // EDS: subscribes the EDS clusters of the current generation that are new
  // or replaced, and forgets removed ones. With `changed` (the clusters an
  // update added or replaced) and `removed`, it looks at those only: a
  // one-cluster CDS update of a 20,000-cluster table costs O(1), not a walk
  // over every cluster and a new set of every EDS name. Null: every cluster
  // of the generation (start).
  void watchEndpoints(const std::vector<std::string>* changed = nullptr,
                      const std::vector<std::string>* removed = nullptr);
  struct EdsCluster;
  struct EdsWatch;
  void watchCluster(const std::string& name, const ClusterRuntimeConstSharedPtr& rt, EdsWatch& w);
  void forgetEdsCluster(const std::string& name, EdsWatch& w);
  void unregisterAds(EdsCluster& e, EdsWatch& w);
  void onEndpoints(const std::string& path, const std::string& contents);
  // Applies the file's assignment to one cluster; `count` says whether this
  // is an update of the file (stats) or a cluster catching up with it.
  void applyAssignment(EdsCluster& cluster, const config::DiscoveryEndpoints::Assignment* a,
                       bool count);
  // The assignment a cluster would use now (from its file, or from ADS), or null.
  const config::DiscoveryEndpoints::Assignment* cachedAssignment(const config::ClusterConfig& cfg) const;
  void warmed(EdsCluster& cluster);
  // The host set `c` starts with when the file already holds its assignment.
  ClusterRuntimeConstSharedPtr withCachedEndpoints(ClusterRuntimeConstSharedPtr c);
  void routeRejected(const std::string& name, std::string details);
  void rejected(const UpdateStats& s, Source* source, const std::string& what,
                const absl::Status& status);
  // `changed`: the resources this update added or replaced; `removed`: those it dropped.
  void accepted(const UpdateStats& s, Source* source, const std::string& version,
                const std::vector<std::string>& changed = {},
                const std::vector<std::string>& removed = {});

  asio::io_context& main_;
  stats::Store& store_;
  SnapshotPublisher& publisher_;
  std::vector<std::unique_ptr<FileWatch>> watches_;
  UpdateStats cds_stats_, lds_stats_;
  Source cds_, lds_;
  // RDS: one watch per file; the stats of every HCM that reads it.
  struct RdsSource {
    std::string path;
    std::vector<std::pair<std::string, UpdateStats>> names;  // route_config_name, stats
  };
  std::vector<RdsSource> rds_;
  std::vector<std::string> rds_watched_;
  std::map<std::string, RouteConfigState> route_configs_;

  // EDS: the last accepted response of each watched file, by path.
  absl::flat_hash_map<std::string, std::optional<config::DiscoveryEndpoints>> eds_files_;
  struct EdsCluster {
    ClusterRuntimeConstSharedPtr runtime;  // the generation's runtime it serves
    HostSetConstSharedPtr hosts;           // its current host set
    bool warming = false;                  // counted in warming_count_
    std::unique_ptr<SteadyTimer> init_timer;
    bool bound = false;  // its ADS EDS source was bound (bindType) when it came
    // The assignment name it is registered under in ads_eds_ (bound ADS
    // clusters), or empty.
    std::string ads_name;
  };
  // By cluster name; node-based, as ads_eds_ points at the entries.
  absl::node_hash_map<std::string, EdsCluster> eds_clusters_;
  // The bound ADS EDS clusters by the ClusterLoadAssignment name they ask
  // for (clusters may share one): its keys are the EDS names subscribed, and
  // an EDS response reaches its clusters without a walk over all of them.
  absl::flat_hash_map<std::string, absl::InlinedVector<EdsCluster*, 1>> ads_eds_;
  // ADS EDS clusters whose source could not be bound: tried again at every
  // CDS update.
  std::set<std::string> eds_unbound_;
  // The EDS stream has been given the whole name set (else, when it comes
  // to exist, it gets it; from then on only the differences).
  bool eds_names_synced_ = false;
  stats::StatId warming_clusters_;
  int64_t warming_count_ = 0;  // EDS clusters warming, the gauge's value

  // ADS: the stream, the RDS stats per route_config_name, the accepted
  // assignments by cluster_name.
  std::unique_ptr<XdsStream> ads_;
  struct TypeSource {
    std::optional<config::AdsServerConfig> source;  // null: the ADS stream
    std::unique_ptr<XdsStream> stream;               // its own stream when `source`
  };
  std::map<std::string, TypeSource> type_sources_;  // by type URL, once bound
  bool xds_started_ = false;
  std::string xds_cache_dir_;
  // Unknown fields (see the class comment).
  config::UnknownFields unknownFieldsMode() const;
  // Counts (and at kWarn logs) each of `fields` not seen before; `what`
  // names the resource type in the log.
  void noteUnknownFields(const char* what, const std::vector<std::string>& fields);
  UnknownDynamicFields unknown_fields_;
  stats::StatId dynamic_unknown_fields_;
  absl::flat_hash_set<std::string> unknown_seen_;
  std::unique_ptr<XdsCache> xds_cache_;
  // Each ADS route configuration's stats (one subscription per name, under
  // the stat_prefix of the first HCM that named it, as Envoy's).
  std::map<std::string, UpdateStats> ads_rds_stats_;
  absl::flat_hash_map<std::string, config::DiscoveryEndpoints::Assignment> ads_assignments_;
  // That stat_prefix of each ADS route configuration, and the names RDS asks
  // for now.
  std::map<std::string, std::string> ads_rds_prefixes_;
  std::set<std::string> ads_rds_names_;

  // VHDS: the RDS protos (as received) of the ADS route configurations with
  // vhds; the VirtualHosts received, by namespace then resource name; the
  // namespaces still waiting for their first VHDS response.
  std::map<std::string, envoy::config::route::v3::RouteConfiguration> vhds_rds_;
  std::map<std::string, VhdsHosts> vhds_hosts_;
  std::set<std::string> vhds_waiting_;
  std::vector<std::shared_ptr<SteadyTimer>> vhds_timers_;  // bound the waits

  // Listener warming (Envoy's): a listener from LDS whose HCM takes its
  // routes over ADS is not bound until they arrive, at most 15 s
  // (initial_fetch_timeout's default); a changed listener's old version
  // serves meanwhile. Gauge listener_manager.total_listeners_warming.
  struct WarmingListener {
    ListenerRuntimeConstSharedPtr runtime;
    std::unique_ptr<SteadyTimer> timer;
  };
  std::map<std::string, WarmingListener> warming_listeners_;
  stats::StatId listeners_warming_;
  // The ADS route configurations `l` needs that `routes` lacks (or whose
  // first VHDS response has not come).
  std::vector<std::string> missingAdsRoutes(
      const ListenerRuntime& l,
      const absl::flat_hash_map<std::string, RouteTableConstSharedPtr>& routes) const;
  // Binds the warming listeners whose routes have arrived (all of them when
  // `all`, at the warming timeout).
  void promoteWarmed(bool all, const std::string& only = {});
  void setWarmingGauge();

  // Initialisation: what is still awaited, and the timers that bound it.
  void startInitialization();
  void checkInitialized();
  // Runs `expired` after `timeout` unless initialised first; 0: never.
  void initTimer(std::chrono::milliseconds timeout, std::function<void()> expired);
  bool initialized_ = true;
  bool cds_pending_ = false;
  bool lds_pending_ = false;
  bool routes_pending_ = false;  // the bound listeners' ADS routes
  std::vector<std::unique_ptr<SteadyTimer>> init_timers_;
};

}  // namespace turnout::proxy
