#include "proxy/server/data_plane_config.h"

#include "proxy/common/asio.h"

#include "absl/strings/str_cat.h"
#include "config/snapshot/route_config_translator.h"
#include "envoy/extensions/filters/http/health_check/v3/health_check.pb.h"

namespace turnout::proxy {
namespace {

constexpr char kRoutingKeyType[] = "turnout.extensions.filters.http.routing_key.v3.RoutingKey";
constexpr char kHealthCheckType[] = "envoy.extensions.filters.http.health_check.v3.HealthCheck";

std::string hostPort(const std::string& ip, uint16_t port) {
  if (ip.find(':') != std::string::npos) return absl::StrCat("[", ip, "]:", port);
  return absl::StrCat(ip, ":", port);
}

bool healthy(config::EndpointConfig::HealthStatus s) {
  using H = config::EndpointConfig::HealthStatus;
  return s == H::Unknown || s == H::Healthy || s == H::Degraded;
}

// Resolves `name` on the calling (main) thread. Envoy's AUTO prefers IPv6 and
// falls back to IPv4; V4_PREFERRED the reverse; ALL keeps both.
absl::StatusOr<std::vector<std::string>> resolve(const std::string& name,
                                                 config::ClusterConfig::DnsLookupFamily family,
                                                 const std::string& cluster) {
  asio::io_context io;
  asio::ip::tcp::resolver resolver(io);
  boost::system::error_code ec;
  auto results = resolver.resolve(name, "", ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat("cluster '", cluster, "': cannot resolve '", name,
                                               "': ", ec.message()));
  }
  std::vector<std::string> v4, v6;
  for (const auto& r : results) {
    auto a = r.endpoint().address();
    auto& list = a.is_v4() ? v4 : v6;
    std::string s = a.to_string();
    if (std::find(list.begin(), list.end(), s) == list.end()) list.push_back(s);
  }
  using F = config::ClusterConfig::DnsLookupFamily;
  std::vector<std::string> out;
  switch (family) {
    case F::V4Only: out = v4; break;
    case F::V6Only: out = v6; break;
    case F::Auto: out = v6.empty() ? v4 : v6; break;
    case F::V4Preferred: out = v4.empty() ? v6 : v4; break;
    case F::All:
      out = v4;
      out.insert(out.end(), v6.begin(), v6.end());
      break;
  }
  if (out.empty()) {
    return absl::UnavailableError(absl::StrCat("cluster '", cluster, "': '", name,
                                               "' has no address of the configured family"));
  }
  return out;
}

absl::StatusOr<ClusterRuntime> buildCluster(const config::ClusterConfig& c, stats::Store& store) {
  ClusterRuntime rt;
  rt.config = &c;
  rt.stats = stats::makeClusterStats(store, c.name, c.alt_stat_name);
  using T = config::ClusterConfig::Type;
  for (const auto& locality : c.localities) {
    for (const auto& e : locality.endpoints) {
      if (e.address.kind != config::Address::Kind::Socket) continue;
      HostDescription h;
      h.port = static_cast<uint16_t>(e.address.port);
      h.weight = e.weight == 0 ? 1 : e.weight;
      h.priority = locality.priority;
      h.healthy = healthy(e.health_status);
      h.hostname = e.hostname;
      if (c.type == T::StrictDns || c.type == T::LogicalDns) {
        auto ips = resolve(e.address.address, c.dns_lookup_family, c.name);
        if (!ips.ok()) return ips.status();
        if (h.hostname.empty()) h.hostname = e.address.address;
        // LOGICAL_DNS uses the first address only (Envoy connects to one).
        const size_t n = c.type == T::LogicalDns ? 1 : ips->size();
        for (size_t i = 0; i < n; ++i) {
          HostDescription r = h;
          r.ip = (*ips)[i];
          r.address = hostPort(r.ip, r.port);
          rt.hosts.push_back(std::move(r));
        }
      } else {
        h.ip = e.address.address;
        h.address = hostPort(h.ip, h.port);
        rt.hosts.push_back(std::move(h));
      }
    }
  }
  store.mainShard().set(rt.stats.membership_total, static_cast<int64_t>(rt.hosts.size()));
  int64_t healthy_count = 0;
  for (const auto& h : rt.hosts) healthy_count += h.healthy ? 1 : 0;
  store.mainShard().set(rt.stats.membership_healthy, healthy_count);
  return rt;
}

absl::StatusOr<HttpConnectionManagerRuntime> buildHcm(const config::ListenerConfig& l,
                                                      const config::HttpConnectionManagerConfig& h,
                                                      const config::Snapshot& snapshot,
                                                      const stats::ListenerStats& lstats,
                                                      stats::Store& store,
                                                      access_log::AccessLogFactory& logs) {
  HttpConnectionManagerRuntime rt;
  rt.config = &h;
  if (h.route_table_index) rt.route_table = snapshot.route_tables[*h.route_table_index].table;
  rt.stats = stats::makeHttpConnManagerStats(store, h.stat_prefix);
  rt.listener_http_stats = stats::makeListenerHttpStats(store, lstats, h.stat_prefix);
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
      turnout::extensions::filters::http::routing_key::v3::RoutingKey proto;
      if (!f.config.UnpackTo(&proto)) {
        return absl::InvalidArgumentError(absl::StrCat(path, ": cannot unpack RoutingKey"));
      }
      auto rk = config::toRoutingKeyFilterConfig(proto, path);
      if (!rk.ok()) return rk.status();
      rt.routing_key = *std::move(rk);
    } else if (f.type_name == kHealthCheckType) {
      envoy::extensions::filters::http::health_check::v3::HealthCheck proto;
      if (!f.config.UnpackTo(&proto)) {
        return absl::InvalidArgumentError(absl::StrCat(path, ": cannot unpack HealthCheck"));
      }
      HealthCheckFilterRuntime hc;
      hc.pass_through_mode = proto.pass_through_mode().value();
      if (hc.pass_through_mode) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ".typed_config.pass_through_mode: pass-through health checking "
                               "is not supported by turnout; set it to false"));
      }
      for (int j = 0; j < proto.headers_size(); ++j) {
        const std::string hpath = absl::StrCat(path, ".typed_config.headers[", j, "]");
        auto m = config::toHeaderMatcher(proto.headers(j), hpath);
        if (!m.ok()) return m.status();
        auto compiled = routing::CompiledHeaderMatcher::compile(*m, "", hpath);
        if (!compiled.ok()) return compiled.status();
        hc.headers.push_back(*std::move(compiled));
      }
      rt.health_check = std::move(hc);
    }
  }
  return rt;
}

}  // namespace

const ClusterRuntime* DataPlaneConfig::findCluster(std::string_view name) const {
  for (const auto& c : clusters) {
    if (c.config->name == name) return &c;
  }
  return nullptr;
}

absl::StatusOr<std::shared_ptr<const DataPlaneConfig>> DataPlaneConfig::build(
    config::SnapshotConstSharedPtr snapshot, stats::Store& store) {
  auto out = std::make_shared<DataPlaneConfig>();
  access_log::AccessLogFactory logs;
  out->snapshot = snapshot;
  for (const auto& c : snapshot->clusters) {
    auto rt = buildCluster(c, store);
    if (!rt.ok()) return rt.status();
    out->clusters.push_back(*std::move(rt));
  }
  for (const auto& l : snapshot->listeners) {
    ListenerRuntime lr;
    lr.config = &l;
    lr.stats = stats::makeListenerStats(store, l.address.toString(), l.stat_prefix);
    for (const auto& chain : l.filter_chains) {
      if (!chain.http_connection_manager) continue;
      auto hcm = buildHcm(l, *chain.http_connection_manager, *snapshot, lr.stats, store, logs);
      if (!hcm.ok()) return hcm.status();
      lr.hcm = *std::move(hcm);
      break;
    }
    out->listeners.push_back(std::move(lr));
  }
  return std::shared_ptr<const DataPlaneConfig>(std::move(out));
}

}  // namespace turnout::proxy
