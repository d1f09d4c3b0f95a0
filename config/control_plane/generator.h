#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "config/control_plane/model.h"
#include "config/control_plane/sidecar.h"
#include "config/snapshot/discovery_response.h"
#include "envoy/config/cluster/v3/cluster.pb.h"
#include "envoy/config/core/v3/base.pb.h"
#include "envoy/config/endpoint/v3/endpoint.pb.h"
#include "envoy/config/listener/v3/listener.pb.h"
#include "envoy/config/route/v3/route.pb.h"
#include "google/protobuf/any.pb.h"
#include "turnout/extensions/filters/http/routing_key/v3/routing_key.pb.h"

namespace turnout::control_plane {

// Model -> Envoy v3 resources (DESIGN.md §6, docs/control_plane.md). Pure and
// deterministic: the same model and dialect give byte-identical resources, so
// content versions survive restarts. Called by the xDS server per dialect, on
// whatever thread owns the State.
//
// Generated:
// - clusters `<service>`, `<service>--<key>` (each sandbox fork) and
//   `<service>--<version>` (each release version). A cluster whose endpoints are
//   all IP addresses is EDS over ADS with a ClusterLoadAssignment of the same
//   name; one with a DNS name is LOGICAL_DNS (one endpoint) or STRICT_DNS
//   (several) with an inline load_assignment and no ClusterLoadAssignment.
// - one RouteConfiguration `outbound`: a virtual host per service (domains
//   domainsFor()), its routes in this order: sandbox routes (every sandbox that
//   forks the service, by key), release header matches (in order), the release's
//   weighted split, the baseline route.
// - for gRPC clients (Dialect::kGrpc) only: an API listener per service domain
//   (a channel to `xds:///reviews` asks LDS for the listener `reviews`), whose
//   HttpConnectionManager takes `outbound` over ADS.
// Every locality has load_balancing_weight 1: gRPC ignores a locality
// without one, and Envoy and turnout ignore locality weights here.

// How a client matches routing keys, chosen by node.user_agent_name.
enum class Dialect {
  // turnout: its RoutingKey filter has put the key into x-turnout-routing-key;
  // one exact header match per sandbox (compiled into a hash index).
  kTurnout,
  // Stock Envoy and other xDS clients (gRPC): the key is matched where the
  // client sent it, with RE2 regexes exact to the W3C grammars, one route per
  // key form (envoyKeyForms()) and sandbox.
  kEnvoy,
  // gRPC's xDS clients (user_agent_name "gRPC <language>", e.g. "gRPC Node Pure
  // JS", "gRPC Go", "gRPC Java", "gRPC C-core"): the envoy dialect's routes,
  // plus API listeners, which gRPC asks for by name.
  kGrpc,
};
inline constexpr char kTurnoutUserAgentName[] = "turnout";
Dialect dialectFor(const envoy::config::core::v3::Node& node);
std::string_view dialectName(Dialect dialect);  // "turnout", "envoy", "grpc"

// What a client is sent: its dialect, and whether it is a captured sidecar
// (node metadata `turnout: {mode: sidecar}`, sidecar.h), which also gets the
// capture listeners and passthrough clusters, for its pod's IP families
// (`ip_families`; kIpv4 for every client that is not a sidecar). gRPC
// clients are never sidecars. `vhds`: the client is on a Delta ADS stream
// and takes each service's virtual host as its own VirtualHost resource
// (VHDS, below); gRPC's clients have no VHDS.
struct Profile {
  Dialect dialect = Dialect::kEnvoy;
  bool sidecar = false;
  bool vhds = false;
  IpFamilies ip_families = IpFamilies::kIpv4;
  Profile(Dialect d = Dialect::kEnvoy, bool s = false,  // NOLINT: a Dialect is a profile
          bool v = false, IpFamilies f = IpFamilies::kIpv4)
      : dialect(d),
        sidecar(s && d != Dialect::kGrpc),
        vhds(v && d != Dialect::kGrpc),
        ip_families(sidecar ? f : IpFamilies::kIpv4) {}
  auto operator<=>(const Profile&) const = default;
};
// `unknown_ip_families`, when given, receives a node's `ip_families` value
// that is none of ipv4, ipv6, dual (the profile is then IPv4): ipFamiliesFor().
Profile profileFor(const envoy::config::core::v3::Node& node,
                   std::string* unknown_ip_families = nullptr);
// "turnout", "envoy", "grpc", "turnout/sidecar", "envoy/sidecar", and for a
// sidecar of another family than IPv4 "/ipv6" or "/dual" after it
// ("turnout/sidecar/dual"): what /v1/proxies shows as the dialect; VHDS is
// not part of it.
std::string profileName(Profile profile);
// profileName() plus "/vhds" when the profile takes VHDS: a cache key.
std::string profileKey(Profile profile);

inline constexpr char kRouteConfigurationName[] = "outbound";
// VHDS (Envoy's Virtual Host Discovery Service, Delta only): a VHDS profile's
// `outbound` RouteConfiguration carries `vhds: {config_source: {ads: {}}}`
// and no service virtual host inline; each service's virtual host is a
// VirtualHost resource named `outbound/<service>` (its `name` the same), which
// the client gets through a namespace subscription to `outbound`. A sandbox
// then changes one small VirtualHost, not a RouteConfiguration that holds
// every service: a Delta update costs O(what changed).
using config::kVirtualHostTypeUrl;
std::string virtualHostResourceName(std::string_view service);
inline constexpr char kRoutingKeyHeader[] = "x-turnout-routing-key";
inline constexpr int kConnectTimeoutSeconds = 5;

// One place a routing key travels, for the envoy dialect.
struct KeyForm {
  enum class Kind { kBaggage, kTracestate, kHeader };
  Kind kind;
  std::string_view name;  // baggage member key, tracestate member key, or header name
};
// In route order (the order of precedence of turnout's default key sources,
// routing::RoutingKeyConfig::defaults(), plus the Signadot forms):
// baggage turnout-routing-key, baggage sd-routing-key, tracestate turnout,
// tracestate sd-routing-key, x-turnout-routing-key, sd-routing-key,
// ot-baggage-sd-routing-key, uberctx-sd-routing-key.
const std::vector<KeyForm>& envoyKeyForms();

// The RoutingKey filter config a turnout-dialect client should run so that it
// reads the key from the same places, in the same order, as the envoy dialect's
// routes (envoyKeyForms()) and writes it to kRoutingKeyHeader. For the
// listeners the control plane will generate (the sidecar issue); the filter's
// own defaults lack tracestate sd-routing-key and the two Signadot headers.
turnout::extensions::filters::http::routing_key::v3::RoutingKey routingKeyFilterConfig();

// Full-match RE2 regexes (Envoy matches safe_regex against the whole value, the
// values of a repeated header joined with ","). True exactly when the list holds
// a member `<member_key>=<value>`: at the start or after a comma, optional
// whitespace around it (and, for baggage, around "=") and baggage properties
// (";...") after it; never a substring of another member's key or value.
std::string baggageMemberRegex(std::string_view member_key, std::string_view value);
std::string tracestateMemberRegex(std::string_view member_key, std::string_view value);

// name, name:port, name.ns, name.ns:port, name.ns.svc, name.ns.svc:port,
// name.ns.svc.cluster.local, name.ns.svc.cluster.local:port.
std::vector<std::string> domainsFor(const Service& service);

struct Resources {
  std::vector<envoy::config::cluster::v3::Cluster> clusters;  // by name
  std::vector<envoy::config::endpoint::v3::ClusterLoadAssignment> load_assignments;  // by name
  envoy::config::route::v3::RouteConfiguration route_configuration;
  // VHDS profiles: each service's virtual host, by name (`outbound/<service>`).
  std::vector<envoy::config::route::v3::VirtualHost> virtual_hosts;
  // kGrpc: API listeners, by name; sidecars: the capture listeners (sidecar.h).
  std::vector<envoy::config::listener::v3::Listener> listeners;
};
Resources generate(const Model& model, Profile profile);

// A resource and its content version: 16 hex digits of FNV-1a 64 over its
// deterministic serialisation, equal across processes and restarts, so a Delta
// server can send only what changed and a restarted server can recognise what a
// client already has.
struct VersionedResource {
  google::protobuf::Any resource;
  std::string version;
};
// name -> resource, ordered by name.
using ResourceMap = std::map<std::string, VersionedResource>;
// type URL (config/snapshot/discovery_response.h) -> resources: clusters,
// cluster load assignments and route configurations, each present even when
// empty; virtual hosts for VHDS profiles (present even when empty); listeners for kGrpc (API listeners, which gRPC asks for by name) and
// for sidecars only. Other Envoy and turnout clients get no listener type: an
// empty one would tell a wildcard LDS client to drop the listeners of its
// bootstrap.
using ResourcesByType = std::map<std::string, ResourceMap>;
ResourcesByType generateByType(const Model& model, Profile profile);

// One profile's resources kept across model updates, for the xDS server: an
// update regenerates only what it touches, so its cost follows the change,
// not the model. Per service, the inputs its resources come from (the
// service, the sandboxes that fork it, its release) are compared with those
// of the last update, and only a service whose inputs changed has its
// clusters, assignments and virtual host made again; listeners (a few per
// port, or per domain for gRPC) are made each time, and the non-VHDS
// `outbound` RouteConfiguration, which holds every virtual host, is
// reassembled when one of them changed. The resources are byte for byte
// those of generateByType(), which is one update of a new generator.
class IncrementalGenerator {
 public:
  explicit IncrementalGenerator(Profile profile);
  ~IncrementalGenerator();
  IncrementalGenerator(IncrementalGenerator&&) noexcept;
  IncrementalGenerator& operator=(IncrementalGenerator&&) noexcept;
  void update(const Model& model);
  const ResourcesByType& resources() const { return resources_; }
  // Of the last update(): per type, the names whose resource appeared,
  // changed or went away (every type of resources() has an entry).
  const std::map<std::string, std::set<std::string>>& changed() const { return changed_; }
  // Of the last update(): the resources it took away, by type and name.
  const ResourcesByType& removed() const { return removed_; }
  // Drops what changed() and removed() hold when nobody will diff against
  // the last update (a new generator's first: every name changed), so its
  // memory goes now and not in the middle of the next change.
  void forgetChanges();
  // Of the last update(): whether it went by the model's journal (only the
  // services listed since the update before), and how many services it
  // looked at (for tests and benchmarks).
  bool lastUpdateIncremental() const { return last_incremental_; }
  size_t lastUpdateServices() const { return last_services_; }

 private:
  struct Unit;
  struct Forks;
  // Puts `message` as `name` into `type`, noting a change of version.
  void put(const std::string& type, const std::string& name, const google::protobuf::Message& message);
  // put() for a message already serialized deterministically (`bytes`) of
  // the type named `message_type` (its full name).
  void putBytes(const std::string& type, const std::string& name, std::string_view message_type,
                std::string bytes);
  void erase(const std::string& type, const std::string& name);
  // Makes service `name`'s resources again unless made from the same inputs
  // (`f`: the sandboxes forking it, in key order); true when the route
  // configuration (non-VHDS profiles) must be put again.
  bool updateUnit(const std::string& name, const Service& service,
                  const std::vector<const Sandbox*>& f, const Release* release);

  Profile profile_;
  bool first_ = true;
  ResourcesByType resources_;
  std::map<std::string, std::set<std::string>> changed_;
  ResourcesByType removed_;
  std::map<std::string, std::unique_ptr<Unit>> units_;  // by service name
  std::unique_ptr<Forks> forks_;  // service -> the sandboxes forking it (update())
  // The model journal's epoch and revision at the last update().
  uint64_t journal_epoch_ = 0;
  uint64_t journal_revision_ = 0;
  bool last_incremental_ = false;
  size_t last_services_ = 0;
};

std::string contentVersion(const google::protobuf::Message& message);

}  // namespace turnout::control_plane
