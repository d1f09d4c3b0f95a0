#include "config/control_plane/generator.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "config/snapshot/discovery_response.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "re2/re2.h"

namespace turnout::control_plane {
namespace {

namespace cluster_v3 = envoy::config::cluster::v3;
namespace core_v3 = envoy::config::core::v3;
namespace endpoint_v3 = envoy::config::endpoint::v3;
namespace route_v3 = envoy::config::route::v3;

std::string str(std::string_view s) { return std::string(s); }

std::string quote(std::string_view s) { return RE2::QuoteMeta(re2::StringPiece(s.data(), s.size())); }

// Optional whitespace (OWS of RFC 9110: spaces and tabs).
constexpr char kOws[] = "[ \\t]*";

void addEndpoints(endpoint_v3::ClusterLoadAssignment& cla, const Endpoints& endpoints) {
  if (endpoints.empty()) return;
  auto* locality = cla.add_endpoints();
  for (const Endpoint& ep : endpoints) {
    auto* sa = locality->add_lb_endpoints()->mutable_endpoint()->mutable_address()
                   ->mutable_socket_address();
    sa->set_address(ep.host);
    sa->set_port_value(ep.port);
  }
}

// One generated cluster; EDS clusters also get their ClusterLoadAssignment.
void addCluster(Resources& out, const std::string& name, const Endpoints& endpoints) {
  cluster_v3::Cluster c;
  c.set_name(name);
  c.mutable_connect_timeout()->set_seconds(kConnectTimeoutSeconds);
  c.set_lb_policy(cluster_v3::Cluster::ROUND_ROBIN);
  bool all_ip = true;
  for (const Endpoint& ep : endpoints) all_ip = all_ip && ep.isIp();
  if (all_ip) {
    c.set_type(cluster_v3::Cluster::EDS);
    auto* eds = c.mutable_eds_cluster_config()->mutable_eds_config();
    eds->mutable_ads();
    eds->set_resource_api_version(core_v3::V3);
    endpoint_v3::ClusterLoadAssignment cla;
    cla.set_cluster_name(name);
    addEndpoints(cla, endpoints);
    out.load_assignments.push_back(std::move(cla));
  } else {
    // gRPC's xDS client takes LOGICAL_DNS but not STRICT_DNS; Envoy and turnout
    // take both. LOGICAL_DNS has exactly one endpoint.
    c.set_type(endpoints.size() == 1 ? cluster_v3::Cluster::LOGICAL_DNS
                                     : cluster_v3::Cluster::STRICT_DNS);
    auto* cla = c.mutable_load_assignment();
    cla->set_cluster_name(name);
    addEndpoints(*cla, endpoints);
  }
  out.clusters.push_back(std::move(c));
}

route_v3::Route* addRoute(route_v3::VirtualHost& vh, std::string name) {
  auto* r = vh.add_routes();
  r->set_name(std::move(name));
  r->mutable_match()->set_prefix("/");
  return r;
}

void routeTo(route_v3::Route& r, const std::string& cluster) {
  auto* action = r.mutable_route();
  action->set_cluster(cluster);
  // No route timeout: a sidecar adds no deadline the application did not ask
  // for (streams, long polls), as Istio does.
  action->mutable_timeout()->set_seconds(0);
}

route_v3::HeaderMatcher* addHeader(route_v3::Route& r, std::string_view name) {
  auto* h = r.mutable_match()->add_headers();
  h->set_name(str(name));
  return h;
}

std::string_view formKindName(KeyForm::Kind kind) {
  switch (kind) {
    case KeyForm::Kind::kBaggage: return "baggage";
    case KeyForm::Kind::kTracestate: return "tracestate";
    case KeyForm::Kind::kHeader: return "header";
  }
  return "";
}

// `forks`: the sandboxes that fork `service`, by key.
void addSandboxRoutes(route_v3::VirtualHost& vh, const std::vector<const Sandbox*>& forks,
                      const Service& service, Dialect dialect) {
  if (dialect == Dialect::kTurnout) {
    for (const Sandbox* sb : forks) {
      auto* r = addRoute(vh, absl::StrCat("sandbox/", sb->key));
      addHeader(*r, kRoutingKeyHeader)->mutable_string_match()->set_exact(sb->key);
      routeTo(*r, clusterName(service.name, sb->key));
    }
    return;
  }
  // One pass per form, so that the form order is the precedence when a request
  // carries keys in several forms, as it is for turnout's RoutingKey filter.
  for (const KeyForm& form : envoyKeyForms()) {
    for (const Sandbox* sb : forks) {
      auto* r = addRoute(vh, absl::StrCat("sandbox/", sb->key, "/", str(formKindName(form.kind)),
                                          "/", str(form.name)));
      switch (form.kind) {
        case KeyForm::Kind::kBaggage:
          addHeader(*r, "baggage")->mutable_string_match()->mutable_safe_regex()->set_regex(
              baggageMemberRegex(form.name, sb->key));
          break;
        case KeyForm::Kind::kTracestate:
          addHeader(*r, "tracestate")->mutable_string_match()->mutable_safe_regex()->set_regex(
              tracestateMemberRegex(form.name, sb->key));
          break;
        case KeyForm::Kind::kHeader:
          addHeader(*r, form.name)->mutable_string_match()->set_exact(sb->key);
          break;
      }
      routeTo(*r, clusterName(service.name, sb->key));
    }
  }
}

void addReleaseRoutes(route_v3::VirtualHost& vh, const Release& release) {
  for (size_t i = 0; i < release.matches.size(); ++i) {
    const ReleaseMatch& m = release.matches[i];
    auto* r = addRoute(vh, absl::StrCat("release/match/", i));
    for (const HeaderMatch& h : m.headers) {
      auto* hm = addHeader(*r, h.name);
      switch (h.kind) {
        case HeaderMatch::Kind::kExact: hm->mutable_string_match()->set_exact(h.value); break;
        case HeaderMatch::Kind::kPrefix: hm->mutable_string_match()->set_prefix(h.value); break;
        case HeaderMatch::Kind::kRegex:
          hm->mutable_string_match()->mutable_safe_regex()->set_regex(h.value);
          break;
        case HeaderMatch::Kind::kPresent: hm->set_present_match(true); break;
      }
    }
    routeTo(*r, clusterName(release.service, m.version));
  }
  // Zero weights are left out (every client agrees on what a missing cluster
  // means; not all accept weight 0); one version left is a plain route.
  std::vector<std::pair<std::string, uint32_t>> live;
  for (const auto& [version, weight] : release.weights) {
    if (weight > 0) live.emplace_back(version, weight);
  }
  if (live.empty()) return;
  auto* r = addRoute(vh, "release/weights");
  if (live.size() == 1) {
    routeTo(*r, clusterName(release.service, live.front().first));
    return;
  }
  auto* action = r->mutable_route();
  for (const auto& [version, weight] : live) {
    auto* cw = action->mutable_weighted_clusters()->add_clusters();
    cw->set_name(clusterName(release.service, version));
    cw->mutable_weight()->set_value(weight);
  }
  action->mutable_timeout()->set_seconds(0);
}

uint64_t fnv1a64(std::string_view bytes) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

std::string deterministicBytes(const google::protobuf::Message& message) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    message.SerializeToCodedStream(&coded);
  }
  return out;
}

void addVersioned(ResourceMap& map, const std::string& name,
                  const google::protobuf::Message& message) {
  VersionedResource v;
  v.resource.PackFrom(message);
  v.version = contentVersion(message);
  map.emplace(name, std::move(v));
}

}  // namespace

Dialect dialectFor(const core_v3::Node& node) {
  return node.user_agent_name() == kTurnoutUserAgentName ? Dialect::kTurnout : Dialect::kEnvoy;
}

std::string_view dialectName(Dialect dialect) {
  return dialect == Dialect::kTurnout ? "turnout" : "envoy";
}

const std::vector<KeyForm>& envoyKeyForms() {
  static const auto* forms = new std::vector<KeyForm>{
      {KeyForm::Kind::kBaggage, "turnout-routing-key"},
      {KeyForm::Kind::kBaggage, "sd-routing-key"},
      {KeyForm::Kind::kTracestate, "turnout"},
      {KeyForm::Kind::kTracestate, "sd-routing-key"},
      {KeyForm::Kind::kHeader, "x-turnout-routing-key"},
      {KeyForm::Kind::kHeader, "sd-routing-key"},
      {KeyForm::Kind::kHeader, "ot-baggage-sd-routing-key"},
      {KeyForm::Kind::kHeader, "uberctx-sd-routing-key"},
  };
  return *forms;
}

turnout::extensions::filters::http::routing_key::v3::RoutingKey routingKeyFilterConfig() {
  turnout::extensions::filters::http::routing_key::v3::RoutingKey out;
  for (const KeyForm& form : envoyKeyForms()) {
    auto* source = out.add_sources();
    switch (form.kind) {
      case KeyForm::Kind::kBaggage: source->set_baggage_member(str(form.name)); break;
      case KeyForm::Kind::kTracestate: source->set_tracestate_key(str(form.name)); break;
      case KeyForm::Kind::kHeader: source->set_header(str(form.name)); break;
    }
  }
  out.set_output_header(kRoutingKeyHeader);
  return out;
}

// W3C Baggage: list-member = key OWS "=" OWS value *( OWS ";" OWS property ),
// members separated by OWS "," OWS. A value has no whitespace, "," or ";", so
// the value is exactly `value` when it is followed by OWS and then ";", "," or
// the end; what follows a ";" or "," may be anything.
std::string baggageMemberRegex(std::string_view member_key, std::string_view value) {
  return absl::StrCat("(?:.*,)?", kOws, quote(member_key), kOws, "=", kOws, quote(value), kOws,
                      "(?:[;,].*)?");
}

// W3C Trace Context tracestate: list-member = key "=" value, members separated
// by OWS "," OWS; no whitespace around "=". A value may hold inner spaces but
// ends in a non-space, so `value` followed by OWS and then "," or the end is the
// whole value.
std::string tracestateMemberRegex(std::string_view member_key, std::string_view value) {
  return absl::StrCat("(?:.*,)?", kOws, quote(member_key), "=", quote(value), kOws, "(?:,.*)?");
}

std::vector<std::string> domainsFor(const Service& service) {
  const std::string port = absl::StrCat(":", service.port);
  std::vector<std::string> out;
  for (const std::string& host :
       {service.name, absl::StrCat(service.name, ".", service.ns),
        absl::StrCat(service.name, ".", service.ns, ".svc"),
        absl::StrCat(service.name, ".", service.ns, ".svc.cluster.local")}) {
    out.push_back(host);
    out.push_back(host + port);
  }
  return out;
}

Resources generate(const Model& model, Dialect dialect) {
  Resources out;
  // Clusters by name: collect first, then emit in name order.
  std::map<std::string, const Endpoints*> clusters;
  for (const auto& [name, service] : model.services) {
    clusters.emplace(clusterName(name), &service.endpoints);
  }
  for (const auto& [key, sandbox] : model.sandboxes) {
    for (const auto& [service, endpoints] : sandbox.forks) {
      clusters.emplace(clusterName(service, key), &endpoints);
    }
  }
  for (const auto& [service, release] : model.releases) {
    for (const auto& [version, endpoints] : release.versions) {
      clusters.emplace(clusterName(service, version), &endpoints);
    }
  }
  for (const auto& [name, endpoints] : clusters) addCluster(out, name, *endpoints);

  // service -> the sandboxes forking it, by key (one pass over the sandboxes).
  std::map<std::string_view, std::vector<const Sandbox*>> forks_of;
  for (const auto& [key, sandbox] : model.sandboxes) {
    for (const auto& [service, endpoints] : sandbox.forks) forks_of[service].push_back(&sandbox);
  }
  static const std::vector<const Sandbox*> kNone;

  route_v3::RouteConfiguration& rc = out.route_configuration;
  rc.set_name(kRouteConfigurationName);
  for (const auto& [name, service] : model.services) {
    auto* vh = rc.add_virtual_hosts();
    vh->set_name(name);
    for (auto& d : domainsFor(service)) vh->add_domains(std::move(d));
    auto forks = forks_of.find(name);
    addSandboxRoutes(*vh, forks == forks_of.end() ? kNone : forks->second, service, dialect);
    if (auto it = model.releases.find(name); it != model.releases.end()) {
      addReleaseRoutes(*vh, it->second);
    }
    routeTo(*addRoute(*vh, "baseline"), clusterName(name));
  }
  return out;
}

std::string contentVersion(const google::protobuf::Message& message) {
  return absl::StrFormat("%016x", fnv1a64(deterministicBytes(message)));
}

ResourcesByType generateByType(const Model& model, Dialect dialect) {
  Resources r = generate(model, dialect);
  ResourcesByType out;
  ResourceMap& clusters = out[config::kClusterTypeUrl];
  for (const auto& c : r.clusters) addVersioned(clusters, c.name(), c);
  ResourceMap& endpoints = out[config::kClusterLoadAssignmentTypeUrl];
  for (const auto& cla : r.load_assignments) addVersioned(endpoints, cla.cluster_name(), cla);
  addVersioned(out[config::kRouteConfigurationTypeUrl], r.route_configuration.name(),
               r.route_configuration);
  return out;
}

}  // namespace turnout::control_plane
