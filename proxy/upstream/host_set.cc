#include "proxy/upstream/host_set.h"

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"

namespace turnout::proxy {

std::string hostPort(const std::string& ip, uint16_t port) {
  if (ip.find(':') != std::string::npos) return absl::StrCat("[", ip, "]:", port);
  return absl::StrCat(ip, ":", port);
}

std::vector<std::string> selectAddresses(const std::vector<asio::ip::address>& resolved,
                                         config::ClusterConfig::DnsLookupFamily family) {
  std::vector<std::string> v4, v6;
  for (const auto& a : resolved) {
    auto& list = a.is_v4() ? v4 : v6;
    std::string s = a.to_string();
    if (std::find(list.begin(), list.end(), s) == list.end()) list.push_back(std::move(s));
  }
  using F = config::ClusterConfig::DnsLookupFamily;
  switch (family) {
    case F::V4Only: return v4;
    case F::V6Only: return v6;
    case F::Auto: return v6.empty() ? v4 : v6;
    case F::V4Preferred: return v4.empty() ? v6 : v4;
    case F::All: break;
  }
  v4.insert(v4.end(), v6.begin(), v6.end());
  return v4;
}

const MaglevLevel* HostSet::maglevLevel(uint32_t priority) const {
  for (const MaglevLevel& level : maglev) {
    if (level.priority == priority) return &level;
  }
  return nullptr;
}

HostSetConstSharedPtr makeHostSet(const config::ClusterConfig& config,
                                  std::vector<HostDescription> hosts) {
  auto set = std::make_shared<HostSet>();
  set->hosts = std::move(hosts);
  if (config.lb_policy != config::ClusterConfig::LbPolicy::Maglev) return set;
  std::vector<uint32_t> priorities;
  for (const auto& h : set->hosts) {
    if (h.healthy) priorities.push_back(h.priority);
  }
  std::sort(priorities.begin(), priorities.end());
  priorities.erase(std::unique(priorities.begin(), priorities.end()), priorities.end());
  for (uint32_t priority : priorities) {
    std::vector<uint32_t> members;
    std::vector<MaglevTable::Host> keys;
    for (uint32_t i = 0; i < set->hosts.size(); ++i) {
      const HostDescription& h = set->hosts[i];
      if (!h.healthy || h.priority != priority) continue;
      members.push_back(i);
      keys.push_back(MaglevTable::Host{config.use_hostname_for_hashing ? h.hostname : h.address,
                                       h.weight});
    }
    set->maglev.push_back(
        MaglevLevel{priority, std::move(members), MaglevTable(keys, config.maglev_table_size)});
  }
  return set;
}

namespace {

HostDescription hostFor(const ResolveTarget& target, const std::string& ip, bool health_checked) {
  HostDescription h = target.host;
  h.ip = ip;
  h.address = hostPort(ip, h.port);
  h.state = std::make_shared<HostSharedState>();
  h.state->failed_active_hc.store(health_checked, std::memory_order_relaxed);
  return h;
}

HostListUpdate updateLogical(const std::vector<HostDescription>& current,
                             const ResolveTarget& target,
                             const std::vector<std::string>& addresses, bool health_checked) {
  HostListUpdate u;
  u.hosts = current;
  if (addresses.empty()) return u;
  if (u.hosts.empty()) {
    u.hosts.push_back(hostFor(target, addresses.front(), health_checked));
    u.hosts.back().priority = 0;
    u.changed = true;
    u.added = 1;
    return u;
  }
  HostDescription& h = u.hosts.front();
  if (h.ip == addresses.front()) return u;
  h.ip = addresses.front();
  h.address = hostPort(h.ip, h.port);
  u.changed = true;
  return u;
}

}  // namespace

HostListUpdate updateHostList(const std::vector<HostDescription>& current,
                              const ResolveTarget& target,
                              const std::vector<std::string>& addresses,
                              config::ClusterConfig::Type type, bool health_checked) {
  if (type == config::ClusterConfig::Type::LogicalDns) {
    return updateLogical(current, target, addresses, health_checked);
  }
  const size_t endpoint = target.host.endpoint;
  absl::flat_hash_set<std::string> fresh;
  std::vector<std::string> unique;
  for (const auto& a : addresses) {
    if (fresh.insert(a).second) unique.push_back(a);
  }
  absl::flat_hash_set<std::string> old;
  for (const auto& h : current) {
    if (h.endpoint == endpoint) old.insert(h.ip);
  }

  HostListUpdate u;
  for (const auto& ip : unique) u.added += old.contains(ip) ? 0 : 1;
  for (const auto& ip : old) u.removed += fresh.contains(ip) ? 0 : 1;
  u.changed = u.added > 0 || u.removed > 0;
  if (!u.changed) {
    u.hosts = current;
    return u;
  }
  // The target's hosts take the place of its old ones (or go after the
  // hosts of earlier lb_endpoints), in the resolver's order.
  u.hosts.reserve(current.size() + u.added);
  bool placed = false;
  auto place = [&] {
    for (const auto& ip : unique) {
      auto survivor = std::find_if(current.begin(), current.end(), [&](const HostDescription& h) {
        return h.endpoint == endpoint && h.ip == ip;
      });
      u.hosts.push_back(survivor != current.end() ? *survivor
                                                   : hostFor(target, ip, health_checked));
    }
    placed = true;
  };
  for (const auto& h : current) {
    if (!placed && h.endpoint >= endpoint) place();
    if (h.endpoint != endpoint) u.hosts.push_back(h);
  }
  if (!placed) place();
  return u;
}

bool endpointHealthy(config::EndpointConfig::HealthStatus s) {
  using H = config::EndpointConfig::HealthStatus;
  return s == H::Unknown || s == H::Healthy || s == H::Degraded;
}

HostListUpdate updateEndpointHosts(const std::vector<config::LocalityEndpointsConfig>& localities,
                                   const std::vector<HostDescription>& current,
                                   bool health_checked) {
  HostListUpdate u;
  absl::flat_hash_set<std::string> fresh;
  size_t endpoint = 0;
  for (const auto& locality : localities) {
    for (const auto& e : locality.endpoints) {
      if (e.address.kind != config::Address::Kind::Socket) continue;
      HostDescription h;
      h.ip = e.address.address;
      h.port = static_cast<uint16_t>(e.address.port);
      h.address = hostPort(h.ip, h.port);
      h.weight = e.weight == 0 ? 1 : e.weight;
      h.priority = locality.priority;
      h.healthy = endpointHealthy(e.health_status);
      h.hostname = e.hostname;
      h.endpoint = endpoint++;
      auto survivor = std::find_if(current.begin(), current.end(), [&](const HostDescription& c) {
        return c.address == h.address;
      });
      if (survivor != current.end()) {
        h.state = survivor->state;
      } else {
        h.state->failed_active_hc.store(health_checked, std::memory_order_relaxed);
        ++u.added;
      }
      fresh.insert(h.address);
      u.hosts.push_back(std::move(h));
    }
  }
  for (const auto& c : current) u.removed += fresh.contains(c.address) ? 0 : 1;
  u.changed = u.added > 0 || u.removed > 0 || u.hosts.size() != current.size();
  for (size_t i = 0; !u.changed && i < u.hosts.size(); ++i) {
    const HostDescription& a = u.hosts[i];
    const HostDescription& b = current[i];
    u.changed = a.address != b.address || a.weight != b.weight || a.priority != b.priority ||
                a.healthy != b.healthy || a.hostname != b.hostname;
  }
  if (!u.changed) u.hosts = current;
  return u;
}

}  // namespace turnout::proxy
