#include "proxy/server/data_plane_config.h"

#include <algorithm>
#include <mutex>

#include "proxy/common/asio.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "config/snapshot/route_config_translator.h"
#include "envoy/extensions/filters/http/grpc_stats/v3/config.pb.h"
#include "envoy/extensions/filters/http/health_check/v3/health_check.pb.h"
#include "proxy/common/log.h"
#include "proxy/filters/grpc_web_filter.h"
#include "proxy/filters/health_check_filter.h"
#include "proxy/filters/routing_key_filter.h"

namespace turnout::proxy {
namespace {

constexpr char kRoutingKeyType[] = "turnout.extensions.filters.http.routing_key.v3.RoutingKey";
constexpr char kHealthCheckType[] = "envoy.extensions.filters.http.health_check.v3.HealthCheck";
constexpr char kGrpcStatsType[] = "envoy.extensions.filters.http.grpc_stats.v3.FilterConfig";
constexpr char kGrpcWebType[] = "envoy.extensions.filters.http.grpc_web.v3.GrpcWeb";
constexpr char kCorsType[] = "envoy.extensions.filters.http.cors.v3.Cors";

constexpr const char* kLogComponent = "upstream";

absl::StatusOr<ClusterRuntime> makeCluster(const config::ClusterConfig& c, stats::Store& store) {
  ClusterRuntime rt;
  rt.config = &c;
  rt.stats = stats::makeClusterStats(store, c.name, c.alt_stat_name,
                                     c.lb_policy == config::ClusterConfig::LbPolicy::Maglev);
  rt.health_checked =
      std::any_of(c.health_checks.begin(), c.health_checks.end(),
                  [](const auto& hc) { return hc.kind == config::HealthCheckConfig::Kind::Http; });
  using T = config::ClusterConfig::Type;
  const bool dns = c.type == T::StrictDns || c.type == T::LogicalDns;
  // STATIC (and EDS, whose localities come from its file later): the one
  // translation EDS updates use too. DNS clusters: one resolve target per
  // lb_endpoint.
  std::vector<HostDescription> statics;
  if (!dns) {
    statics = updateEndpointHosts(c.localities, {}, rt.health_checked).hosts;
  } else {
    size_t endpoint = 0;
    for (const auto& locality : c.localities) {
      for (const auto& e : locality.endpoints) {
        if (e.address.kind != config::Address::Kind::Socket) continue;
        HostDescription h;
        h.port = static_cast<uint16_t>(e.address.port);
        h.weight = e.weight == 0 ? 1 : e.weight;
        h.priority = locality.priority;
        h.healthy = endpointHealthy(e.health_status);
        h.hostname = e.hostname.empty() ? e.address.address : e.hostname;
        h.endpoint = endpoint++;
        rt.dns_targets.push_back(ResolveTarget{e.address.address, h});
      }
    }
  }
  // DNS clusters: the first resolution of every target, as Envoy's cluster
  // warming waits for it.
  stats::Shard& shard = store.mainShard();
  HostSetConstSharedPtr hosts = makeHostSet(c, std::move(statics));
  for (const ResolveTarget& target : rt.dns_targets) {
    asio::io_context io;
    TcpResolver resolver(io);
    boost::system::error_code ec;
    auto results = resolver.resolve(target.dns_name, "", ec);
    std::vector<asio::ip::address> resolved;
    for (const auto& r : results) resolved.push_back(r.endpoint().address());
    ResolutionApplied r = applyResolution(rt, target, ec, resolved, *hosts, shard);
    if (!r.ok) {
      TURNOUT_LOG(warn, kLogComponent, "cluster '{}': cannot resolve '{}' ({}); it has no hosts "
                  "from it until it resolves",
                  c.name, target.dns_name,
                  ec ? ec.message() : std::string("no address of the configured family"));
    }
    if (r.changed) hosts = std::move(r.changed);
  }
  rt.hosts = std::move(hosts);
  recordMembership(rt, *rt.hosts, shard);
  return rt;
}

absl::StatusOr<TcpProxyRuntime> buildTcpProxy(const config::ListenerConfig& l,
                                              const config::TcpProxyConfig& t,
                                              stats::Store& store,
                                              access_log::AccessLogFactory& logs) {
  TcpProxyRuntime rt;
  rt.config = &t;
  rt.buffer_limit_bytes = l.per_connection_buffer_limit_bytes;
  rt.stats = stats::makeTcpProxyStats(store, t.stat_prefix);
  for (size_t i = 0; i < t.access_logs.size(); ++i) {
    auto log = logs.create(t.access_logs[i]);
    if (!log.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("listener '", l.name, "' access_log[", i,
                                                     "]: ", log.status().message()));
    }
    rt.access_logs.push_back(*std::move(log));
  }
  return rt;
}

// The routing-key filters of every HCM, by their config's serialized bytes:
// a sidecar's outbound listeners (one per service port) all carry the same
// RoutingKey, and the compiled filter (its key sources, about 1 KB) is
// immutable, so HCMs with the same bytes share one. Config time only (the
// main thread, which builds every listener); the lock is for safety, never
// contended.
std::mutex g_routing_key_mu;
absl::flat_hash_map<std::string, std::weak_ptr<const RoutingKeyFilter>> g_routing_key_filters;

std::shared_ptr<const RoutingKeyFilter> sharedRoutingKeyFilter(const std::string& bytes) {
  std::lock_guard lock(g_routing_key_mu);
  auto it = g_routing_key_filters.find(bytes);
  return it == g_routing_key_filters.end() ? nullptr : it->second.lock();
}

void shareRoutingKeyFilter(const std::string& bytes,
                           const std::shared_ptr<const RoutingKeyFilter>& filter) {
  std::lock_guard lock(g_routing_key_mu);
  absl::erase_if(g_routing_key_filters, [](const auto& kv) { return kv.second.expired(); });
  g_routing_key_filters[bytes] = filter;
}

absl::StatusOr<HttpConnectionManagerRuntime> buildHcm(const config::ListenerConfig& l,
                                                      const config::HttpConnectionManagerConfig& h,
                                                      const config::Snapshot& snapshot,
                                                      const absl::flat_hash_map<std::string, RouteTableConstSharedPtr>& routes,
                                                      const stats::ListenerStats& lstats,
                                                      stats::Store& store,
                                                      access_log::AccessLogFactory& logs) {
  HttpConnectionManagerRuntime rt;
  rt.config = &h;
  rt.buffer_limit_bytes = l.per_connection_buffer_limit_bytes;
  rt.listener = &l;
  if (h.route_table_index) rt.route_table = snapshot.route_tables[*h.route_table_index].table;
  if (h.route_source == config::HttpConnectionManagerConfig::RouteSource::Rds) {
    auto it = routes.find(h.route_config_name);
    if (it != routes.end()) rt.route_table = it->second;
  }
  rt.stats = stats::makeHttpConnManagerStats(store, h.stat_prefix);
  rt.listener_http_stats = stats::makeListenerHttpStats(store, lstats, h.stat_prefix);
  rt.http2_stats = stats::makeHttp2CodecStats(store);
  for (size_t i = 0; i < h.access_logs.size(); ++i) {
    auto log = logs.create(h.access_logs[i]);
    if (!log.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("listener '", l.name, "' access_log[", i,
                                                     "]: ", log.status().message()));
    }
    rt.access_logs.push_back(*std::move(log));
  }
  for (size_t i = 0; i < h.http_filters.size(); ++i) {
    const config::HttpFilterConfig& f = h.http_filters[i];
    const std::string path = absl::StrCat("listener '", l.name, "' http_filters[", i, "]");
    if (f.type_name == kRoutingKeyType) {
      if (auto shared = sharedRoutingKeyFilter(f.config.value())) {
        rt.filters.push_back(std::move(shared));
        continue;
      }
      turnout::extensions::filters::http::routing_key::v3::RoutingKey proto;
      if (!f.config.UnpackTo(&proto)) {
        return absl::InvalidArgumentError(absl::StrCat(path, ": cannot unpack RoutingKey"));
      }
      const std::string tpath = absl::StrCat(path, ".typed_config");
      auto rk = config::toRoutingKeyFilterConfig(proto, tpath);
      if (!rk.ok()) return rk.status();
      auto filter = RoutingKeyFilter::create(*std::move(rk), tpath);
      if (!filter.ok()) return filter.status();
      shareRoutingKeyFilter(f.config.value(), *filter);
      rt.filters.push_back(*std::move(filter));
    } else if (f.type_name == kHealthCheckType) {
      envoy::extensions::filters::http::health_check::v3::HealthCheck proto;
      if (!f.config.UnpackTo(&proto)) {
        return absl::InvalidArgumentError(absl::StrCat(path, ": cannot unpack HealthCheck"));
      }
      std::vector<routing::CompiledHeaderMatcher> headers;
      if (proto.pass_through_mode().value()) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ".typed_config.pass_through_mode: pass-through health checking "
                               "is not supported by turnout; set it to false"));
      }
      for (int j = 0; j < proto.headers_size(); ++j) {
        const std::string hpath = absl::StrCat(path, ".typed_config.headers[", j, "]");
        auto m = config::toHeaderMatcher(proto.headers(j), hpath);
        if (!m.ok()) return m.status();
        auto compiled = routing::CompiledHeaderMatcher::compile(*m, hpath);
        if (!compiled.ok()) return compiled.status();
        headers.push_back(*std::move(compiled));
      }
      rt.filters.push_back(std::make_shared<HealthCheckFilter>(std::move(headers)));
    } else if (f.type_name == kGrpcStatsType) {
      // The field policy rejected what turnout does not do (the filter
      // state object).
      envoy::extensions::filters::http::grpc_stats::v3::FilterConfig proto;
      if (!f.config.UnpackTo(&proto)) {
        return absl::InvalidArgumentError(absl::StrCat(path, ": cannot unpack FilterConfig"));
      }
      GrpcStatsFilterConfig g{.upstream_stats = proto.enable_upstream_stats()};
      // As Envoy: stats_for_all_methods unset means false, and
      // replace_dots_in_grpc_service_name applies with it only.
      g.all_methods = proto.has_stats_for_all_methods() && proto.stats_for_all_methods().value();
      g.replace_dots = g.all_methods && proto.replace_dots_in_grpc_service_name();
      for (const auto& service : proto.individual_method_stats_allowlist().services()) {
        for (const auto& method : service.method_names()) {
          g.allowlist.insert(absl::StrCat(service.name(), "/", method));
        }
      }
      rt.grpc_stats = std::move(g);
    } else if (f.type_name == kGrpcWebType) {
      // GrpcWeb has no fields: one filter serves every chain.
      static const auto* grpc_web =
          new std::shared_ptr<const GrpcWebFilter>(std::make_shared<const GrpcWebFilter>());
      rt.filters.push_back(*grpc_web);
    } else if (f.type_name == kCorsType) {
      // No fields: the route's and virtual host's cors policies, applied
      // once the route is chosen (ActiveStream::applyCors).
      rt.cors = stats::makeCorsStats(store, h.stat_prefix);
    }
  }
  return rt;
}

}  // namespace

void recordMembership(const ClusterRuntime& cluster, const HostSet& hosts, stats::Shard& shard) {
  shard.set(cluster.stats.membership_total(), static_cast<int64_t>(hosts.hosts.size()));
  int64_t healthy_count = 0;
  for (const auto& h : hosts.hosts) healthy_count += h.healthy ? 1 : 0;
  shard.set(cluster.stats.membership_healthy(), healthy_count);
  if (!hosts.maglev.empty()) {
    // Envoy's maglev_lb.{min,max}_entries_per_host, of the lowest priority's table.
    const auto& slots = hosts.maglev.front().table.slotsPerHost();
    const auto [min, max] = std::minmax_element(slots.begin(), slots.end());
    shard.set(cluster.stats.maglev_min_entries_per_host(),
              min == slots.end() ? 0 : static_cast<int64_t>(*min));
    shard.set(cluster.stats.maglev_max_entries_per_host(),
              max == slots.end() ? 0 : static_cast<int64_t>(*max));
  }
}

ResolutionApplied applyResolution(const ClusterRuntime& cluster, const ResolveTarget& target,
                                  const boost::system::error_code& ec,
                                  const std::vector<asio::ip::address>& resolved,
                                  const HostSet& current, stats::Shard& shard) {
  const config::ClusterConfig& c = *cluster.config;
  const auto& stats = cluster.stats;
  shard.inc(stats.update_attempt());
  std::vector<std::string> addresses;
  if (!ec) addresses = selectAddresses(resolved, c.dns_lookup_family);
  const bool logical = c.type == config::ClusterConfig::Type::LogicalDns;
  ResolutionApplied r;
  if (ec || (logical && addresses.empty())) {
    shard.inc(stats.update_failure());
    return r;
  }
  r.ok = true;
  shard.inc(stats.update_success());
  HostListUpdate u =
      updateHostList(current.hosts, target, addresses, c.type, cluster.health_checked);
  if (!u.changed) {
    shard.inc(stats.update_no_rebuild());
    return r;
  }
  if (u.added > 0 || u.removed > 0) shard.inc(stats.membership_change());
  TURNOUT_LOG(info, kLogComponent, "cluster '{}': '{}' now resolves to {} ({} added, {} removed)",
              c.name, target.dns_name, absl::StrJoin(addresses, ", "), u.added, u.removed);
  r.changed = makeHostSet(c, std::move(u.hosts));
  recordMembership(cluster, *r.changed, shard);
  return r;
}

const ClusterRuntime* DataPlaneConfig::findCluster(std::string_view name) const {
  auto it = clusters.find(name);
  return it == clusters.end() ? nullptr : it->second.get();
}

ClusterRuntimeConstSharedPtr DataPlaneConfig::cluster(std::string_view name) const {
  auto it = clusters.find(name);
  return it == clusters.end() ? nullptr : it->second;
}

const ListenerRuntimeConstSharedPtr* DataPlaneConfig::findListener(std::string_view name) const {
  for (const auto& l : listeners) {
    if (l->config->name == name) return &l;
  }
  return nullptr;
}

namespace {

// A filter chain's DownstreamTlsContext as a reloading server context; null
// for a plaintext chain. Static secrets come from the bootstrap's
// static_resources.secrets.
absl::StatusOr<tls::ServerContextSlotSharedPtr> serverTlsFor(const config::FilterChainConfig& chain,
                                                            const config::Snapshot& owner) {
  if (!chain.has_tls || !chain.transport_socket) return tls::ServerContextSlotSharedPtr();
  std::string path = absl::StrCat(chain.path, ".transport_socket.typed_config");
  envoy::extensions::transport_sockets::tls::v3::DownstreamTlsContext ctx;
  if (!chain.transport_socket->UnpackTo(&ctx)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": cannot decode DownstreamTlsContext"));
  }
  auto secrets = tls::SecretResolver::create(owner.bootstrap.static_resources().secrets(),
                                             "static_resources.secrets");
  if (!secrets.ok()) return secrets.status();
  auto reloading =
      tls::ReloadingServerContext::create(std::move(ctx), std::move(path), *std::move(secrets));
  if (!reloading.ok()) return reloading.status();
  return std::make_shared<tls::ServerContextSlot>(*std::move(reloading));
}

absl::StatusOr<tls::ClientContextConstSharedPtr> clientTlsFor(const config::ClusterConfig& c,
                                                             const config::Snapshot& owner) {
  if (!c.has_tls || !c.transport_socket) return tls::ClientContextConstSharedPtr();
  const std::string path = absl::StrCat(c.path, ".transport_socket.typed_config");
  envoy::extensions::transport_sockets::tls::v3::UpstreamTlsContext ctx;
  if (!c.transport_socket->UnpackTo(&ctx)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": cannot decode UpstreamTlsContext"));
  }
  auto secrets = tls::SecretResolver::create(owner.bootstrap.static_resources().secrets(),
                                             "static_resources.secrets");
  if (!secrets.ok()) return secrets.status();
  return tls::ClientContext::create(ctx, path, *secrets);
}

}  // namespace

absl::Status checkClusterTls(const config::Snapshot& snapshot) {
  for (const auto& c : snapshot.clusters) {
    auto tls = clientTlsFor(c, snapshot);
    if (!tls.ok()) return tls.status();
  }
  return absl::OkStatus();
}

absl::Status checkListenerTls(const config::Snapshot& snapshot) {
  for (const auto& l : snapshot.listeners) {
    for (const auto& chain : l.filter_chains) {
      auto tls = serverTlsFor(chain, snapshot);
      if (!tls.ok()) return tls.status();
    }
    if (l.default_filter_chain) {
      auto tls = serverTlsFor(*l.default_filter_chain, snapshot);
      if (!tls.ok()) return tls.status();
    }
  }
  return absl::OkStatus();
}

bool ListenerRuntime::inspects() const { return config->filter_chain_matcher.needsFirstBytes(); }

bool ListenerRuntime::inspectsHttp() const {
  return config->http_inspector && config->filter_chain_matcher.matchesApplicationProtocols();
}

std::optional<size_t> ListenerRuntime::selectFilterChain(
    const config::FilterChainMatchInput& input) const {
  if (auto i = config->filter_chain_matcher.select(input)) return i;
  if (config->default_filter_chain) return config->filter_chains.size();
  return std::nullopt;
}

const FilterChainRuntime* ListenerRuntime::firstTlsChain() const {
  for (const auto& c : filter_chains) {
    if (c.tls) return &c;
  }
  return nullptr;
}

absl::StatusOr<ClusterRuntimeConstSharedPtr> DataPlaneConfig::buildCluster(
    config::SnapshotConstSharedPtr owner, const config::ClusterConfig& c, stats::Store& store) {
  auto rt = makeCluster(c, store);
  if (!rt.ok()) return rt.status();
  auto tls = clientTlsFor(c, *owner);
  if (!tls.ok()) return tls.status();
  rt->tls = *std::move(tls);
  if (rt->tls) {
    rt->ssl_stats = stats::makeSslStats(
        store, absl::StrCat("cluster.",
                            stats::sanitizeStatName(c.alt_stat_name.empty() ? c.name : c.alt_stat_name),
                            "."));
  }
  rt->owner = std::move(owner);
  return std::make_shared<const ClusterRuntime>(*std::move(rt));
}

absl::StatusOr<ListenerRuntimeConstSharedPtr> DataPlaneConfig::buildListener(
    config::SnapshotConstSharedPtr owner, const config::ListenerConfig& l, stats::Store& store,
    const absl::flat_hash_map<std::string, RouteTableConstSharedPtr>& routes) {
  access_log::AccessLogFactory logs;
  auto lr = std::make_shared<ListenerRuntime>();
  lr->config = &l;
  lr->stats = stats::makeListenerStats(store, l.address.toString(), l.stat_prefix);
  if (l.http_inspector) lr->http_inspector_stats = stats::makeHttpInspectorStats(store);
  auto addChain = [&](const config::FilterChainConfig& chain) -> absl::Status {
    FilterChainRuntime rt;
    rt.config = &chain;
    if (chain.http_connection_manager) {
      auto hcm =
          buildHcm(l, *chain.http_connection_manager, *owner, routes, lr->stats, store, logs);
      if (!hcm.ok()) return hcm.status();
      rt.hcm = *std::move(hcm);
    }
    if (chain.tcp_proxy) {
      auto tcp = buildTcpProxy(l, *chain.tcp_proxy, store, logs);
      if (!tcp.ok()) return tcp.status();
      rt.tcp_proxy = *std::move(tcp);
    }
    auto tls = serverTlsFor(chain, *owner);
    if (!tls.ok()) return tls.status();
    rt.tls = *std::move(tls);
    if (rt.tls && !lr->ssl_stats) lr->ssl_stats = stats::makeSslStats(store, lr->stats.prefix);
    lr->filter_chains.push_back(std::move(rt));
    return absl::OkStatus();
  };
  lr->filter_chains.reserve(l.filter_chains.size() + (l.default_filter_chain ? 1 : 0));
  for (const auto& chain : l.filter_chains) {
    if (auto s = addChain(chain); !s.ok()) return s;
  }
  if (l.default_filter_chain) {
    if (auto s = addChain(*l.default_filter_chain); !s.ok()) return s;
  }
  lr->owner = std::move(owner);
  return ListenerRuntimeConstSharedPtr(std::move(lr));
}

absl::StatusOr<std::shared_ptr<const DataPlaneConfig>> DataPlaneConfig::build(
    config::SnapshotConstSharedPtr snapshot, stats::Store& store) {
  auto out = std::make_shared<DataPlaneConfig>();
  out->snapshot = snapshot;
  for (const auto& c : snapshot->clusters) {
    auto rt = buildCluster(snapshot, c, store);
    if (!rt.ok()) return rt.status();
    out->clusters.insert_or_assign(c.name, *std::move(rt));
  }
  for (const auto& l : snapshot->listeners) {
    auto lr = buildListener(snapshot, l, store, out->routes);
    if (!lr.ok()) return lr.status();
    out->listeners.push_back(*std::move(lr));
  }
  return std::shared_ptr<const DataPlaneConfig>(std::move(out));
}

}  // namespace turnout::proxy
