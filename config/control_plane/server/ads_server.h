#pragma once

// turnout-cp's xDS server: ADS, State of the World
// (envoy.service.discovery.v3.AggregatedDiscoveryService/
// StreamAggregatedResources), on GrpcServer (docs/control_plane.md, "ADS
// server"). Main thread.
//
// Per stream: the node from its first request (its dialect from
// node.user_agent_name, generator.h), and per type the names asked for
// (CDS and LDS: every resource; RDS and EDS: the names in the request), the
// version and nonce last sent, the version ACKed or the error of the last
// NACK (ProxyStatus, GET /v1/proxies).
//
// A type's version for a stream is a hash of the names and content versions
// of the resources it gets, so it changes exactly when what that client
// would receive changes. A response is sent when a stream first asks for a
// type whose version differs from the one in the request (a reconnecting
// client that already holds it gets nothing), when the names asked for
// change, and on update() for every type whose version changed (SotW: only
// the changed types; Delta: only the changed resources), make before break:
// new clusters and endpoints, then LDS, RDS and VHDS, then the removed
// clusters and endpoints. Delta clients of the turnout and envoy dialects get
// their routes by VHDS (generator.h). A request whose
// nonce is not the last one sent for its type is stale and ignored whole, as
// go-control-plane does: the client's answer to the newer response carries
// its current names, and a change is answered then. An empty type_url ends the
// stream with INVALID_ARGUMENT. LDS: a gRPC client gets the API listeners it
// names (generator.h), a sidecar (node metadata turnout.mode "sidecar") its
// capture listeners (sidecar.h), its virtualInbound with the ports of the
// service its metadata names (ownInbound); other Envoy and turnout clients get no
// listeners, so their LDS initialisation completes and their bootstrap
// listeners stay.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <unordered_map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "config/control_plane/generator.h"
#include "config/control_plane/model.h"
#include "config/control_plane/server/grpc_server.h"
#include "config/control_plane/server/proxy_status.h"
#include "config/control_plane/sidecar.h"
#include "proxy/common/asio.h"

namespace turnout::control_plane {

inline constexpr char kAdsMethod[] =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";
// Delta (incremental): only changed resources and removed names are sent,
// diffed against what each client holds (its initial_resource_versions on a
// new stream, then every response it ACKed).
inline constexpr char kDeltaAdsMethod[] =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources";

class AdsStreamBase;

class AdsServer {
 public:
  struct Options {
    std::string address = "127.0.0.1";
    uint16_t port = 18000;  // 0: any free port
    // Delta ADS clients of the turnout and envoy dialects get their routes
    // through VHDS (generator.h). Off: the one `outbound` RouteConfiguration,
    // as SotW clients get (--no-vhds, for a Delta client without VHDS).
    bool vhds = true;
  };
  // `model` (and the one each update() gives) is read, not copied: it must
  // stay alive, and change only on this io_context, until the next update()
  // (turnout-cp passes its State's model, which lives as long as the API).
  static absl::StatusOr<std::unique_ptr<AdsServer>> create(asio::io_context& ioc, Options options,
                                                           const Model& model);
  ~AdsServer();
  void start();
  void stop();
  uint16_t port() const { return grpc_->port(); }
  // Bytes of xDS messages sent to all clients so far (benchmarks).
  uint64_t bytesSent() const { return grpc_->messageBytesSent(); }

  // The model changed: regenerates the resources and pushes what changed to
  // every stream, from a handler posted to the io_context, so that the API
  // answers first and a burst of mutations is pushed once (the last model).
  void update(const Model& model);
  // Applies the update() still posted, now (benchmarks time it).
  void flush();
  std::vector<ProxyStatus> proxies() const;

  // Resources as the generator made them for a dialect (cached per update).
  const ResourcesByType& resources(Profile profile);

  // A response as every client with the same dialect, type and names gets
  // it, serialized once per update: the version and the bytes of a
  // DiscoveryResponse without its nonce (a stream appends its own nonce
  // field; concatenated protobuf messages merge).
  struct Prepared {
    std::string version;
    std::string bytes;
  };
  // `keep_removed`: also the resources the last generation had and this one
  // dropped (the make phase of a SotW CDS push).
  // `own_inbound` (listeners only): the node's own virtualInbound
  // (ownInbound), sent instead of the profile's.
  using Entry = std::pair<const std::string, VersionedResource>;
  const Prepared& prepared(Profile profile, const std::string& type_url, bool wildcard,
                           const std::set<std::string>& names, bool keep_removed = false,
                           const Entry* own_inbound = nullptr);

  // A sidecar's own `virtualInbound` (sidecar.h): the filter chains of its
  // own ports (sidecarInboundPorts: the model's endpoints at `pod_ip`, the
  // address its stream comes from, and the service its node names), made
  // once per update and shared by the nodes of a profile with the same
  // ports; null when it has none (the node gets the profile's, with every
  // service port).
  const Entry* ownInbound(Profile profile, const SidecarService& service,
                          const std::string& pod_ip);

 private:
  friend class AdsStreamBase;
  friend class AdsStream;
  friend class DeltaAdsStream;
  AdsServer() = default;

  void apply();  // model_ is the new model

  asio::io_context* ioc_ = nullptr;
  Options options_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  // The model update() got, not yet applied (null: none). Not a copy: a
  // copy per mutation made loading 10,000 sandboxes quadratic.
  const Model* pending_ = nullptr;
  bool posted_ = false;
  std::unique_ptr<GrpcServer> grpc_;
  const Model* model_ = nullptr;  // the caller's (create(), update())
  // Per profile some stream used: its resources, kept up to date with each
  // update at the cost of what changed (IncrementalGenerator).
  struct Generation {
    explicit Generation(Profile p) : generator(p) {}
    IncrementalGenerator generator;
    bool fresh = true;  // made during this generation: nothing to diff against
  };
  std::map<Profile, Generation> generators_;
  Generation& generation(Profile profile);
  // Delta: per dialect and type, the names whose resource changed, appeared
  // or went away in the last update() (null: unknown, diff everything).
  const std::set<std::string>* changedNames(Profile profile, const std::string& type_url);
  std::map<std::string, Prepared> prepared_;
  // Delta: one resource as a serialized DeltaDiscoveryResponse holding only
  // that `resources` entry, per dialect, type and name; a stream's response
  // is the entries it sends followed by its own fields. An entry serves as
  // long as the resource keeps its version: an update erases only the
  // entries of the names it changed or removed (dropping all 10,000 of a
  // large model and making them again was a third of turnout-cp's time for
  // one new sandbox). `own`: a node's own resource (ownInbound), keyed by
  // its version too, and dropped at every update (one per node shape).
  const std::string& deltaResourceEntry(
      Profile profile, const std::string& type_url,
      const std::pair<const std::string, VersionedResource>& resource, bool own = false);
  static std::string deltaEntryKey(Profile profile, const std::string& type_url,
                                   const std::string& name);
  struct DeltaEntry {
    std::string version;
    std::string bytes;
  };
  std::unordered_map<std::string, DeltaEntry> delta_entries_;
  std::unordered_map<std::string, std::string> own_delta_entries_;
  std::map<std::string, Entry> own_inbound_;  // profile key and ports -> listener
  std::optional<PortsByIp> ports_by_ip_;       // of model_, made at first use
  std::set<AdsStreamBase*> streams_;  // SotW and Delta
};

}  // namespace turnout::control_plane
