#include "proxy/upstream/host_set.h"

#include <string>
#include <vector>

#include <catch2/catch.hpp>

namespace turnout::proxy {
namespace {

using Type = config::ClusterConfig::Type;
using Family = config::ClusterConfig::DnsLookupFamily;

ResolveTarget target(size_t endpoint, uint16_t port = 80, uint32_t weight = 1) {
  ResolveTarget t;
  t.dns_name = "svc" + std::to_string(endpoint);
  t.host.port = port;
  t.host.weight = weight;
  t.host.priority = 1;
  t.host.hostname = t.dns_name;
  t.host.endpoint = endpoint;
  return t;
}

// The hosts `t` resolving to `ips` gives, starting from `current`.
std::vector<HostDescription> resolve(const std::vector<HostDescription>& current,
                                     const ResolveTarget& t, std::vector<std::string> ips,
                                     Type type = Type::StrictDns) {
  return updateHostList(current, t, ips, type, false).hosts;
}

std::vector<std::string> addressesOf(const std::vector<HostDescription>& hosts) {
  std::vector<std::string> out;
  for (const auto& h : hosts) out.push_back(h.address);
  return out;
}

asio::ip::address ip(const char* s) { return asio::ip::make_address(s); }

}  // namespace

TEST_CASE("a target's first answer adds one host per address, in the resolver's order",
          "[dns]") {
  const ResolveTarget t = target(0, 8080, 3);
  const HostListUpdate u =
      updateHostList({}, t, {"10.0.0.2", "10.0.0.1", "::1"}, Type::StrictDns, false);
  CHECK(u.changed);
  CHECK(u.added == 3);
  CHECK(u.removed == 0);
  CHECK(addressesOf(u.hosts) ==
        std::vector<std::string>{"10.0.0.2:8080", "10.0.0.1:8080", "[::1]:8080"});
  for (const auto& h : u.hosts) {
    CHECK(h.port == 8080);
    CHECK(h.weight == 3);
    CHECK(h.priority == 1);
    CHECK(h.hostname == "svc0");
    CHECK(h.endpoint == 0);
    REQUIRE(h.state != nullptr);
    CHECK_FALSE(h.state->failed_active_hc.load());
  }
  CHECK(u.hosts[0].state != u.hosts[1].state);
}

TEST_CASE("the same address set in another order changes nothing", "[dns]") {
  const ResolveTarget t = target(0);
  const auto first = resolve({}, t, {"10.0.0.1", "10.0.0.2"});
  const HostListUpdate u = updateHostList(first, t, {"10.0.0.2", "10.0.0.1"}, Type::StrictDns, false);
  CHECK_FALSE(u.changed);
  CHECK(u.added == 0);
  CHECK(u.removed == 0);
  CHECK(addressesOf(u.hosts) == addressesOf(first));
  CHECK(u.hosts[0].state == first[0].state);
}

TEST_CASE("duplicate addresses in one answer make one host", "[dns]") {
  const HostListUpdate u =
      updateHostList({}, target(0), {"10.0.0.1", "10.0.0.1", "10.0.0.2"}, Type::StrictDns, false);
  CHECK(addressesOf(u.hosts) == std::vector<std::string>{"10.0.0.1:80", "10.0.0.2:80"});
  CHECK(u.added == 2);
}

TEST_CASE("surviving hosts keep their shared state, removed ones go, new ones are fresh",
          "[dns]") {
  const ResolveTarget t = target(0);
  const auto before = resolve({}, t, {"10.0.0.1", "10.0.0.2"});
  before[0].state->failed_active_hc = true;
  const HostListUpdate u =
      updateHostList(before, t, {"10.0.0.3", "10.0.0.1"}, Type::StrictDns, false);
  CHECK(u.changed);
  CHECK(u.added == 1);
  CHECK(u.removed == 1);
  REQUIRE(addressesOf(u.hosts) == std::vector<std::string>{"10.0.0.3:80", "10.0.0.1:80"});
  CHECK(u.hosts[1].state == before[0].state);
  CHECK(u.hosts[1].state->failed_active_hc);
  CHECK(u.hosts[0].state != before[0].state);
  CHECK(u.hosts[0].state != before[1].state);
  CHECK_FALSE(u.hosts[0].state->failed_active_hc);
}

TEST_CASE("new hosts of a health-checked cluster start failing active health checks, "
          "survivors keep their verdict",
          "[dns]") {
  const ResolveTarget t = target(0);
  const auto before = updateHostList({}, t, {"10.0.0.1"}, Type::StrictDns, true).hosts;
  CHECK(before[0].state->failed_active_hc.load());
  before[0].state->failed_active_hc = false;  // it passed its checks since
  const auto after = updateHostList(before, t, {"10.0.0.1", "10.0.0.2"}, Type::StrictDns, true);
  CHECK_FALSE(after.hosts[0].state->failed_active_hc.load());
  CHECK(after.hosts[1].state->failed_active_hc.load());
}

TEST_CASE("an empty answer removes the target's hosts (STRICT_DNS)", "[dns]") {
  const ResolveTarget t = target(0);
  const auto before = resolve({}, t, {"10.0.0.1", "10.0.0.2"});
  const HostListUpdate u = updateHostList(before, t, {}, Type::StrictDns, false);
  CHECK(u.changed);
  CHECK(u.removed == 2);
  CHECK(u.hosts.empty());
}

TEST_CASE("one target's answer leaves the other targets' hosts alone, in place", "[dns]") {
  const ResolveTarget a = target(0), b = target(1), c = target(2);
  auto hosts = resolve({}, a, {"10.0.0.1"});
  hosts = resolve(hosts, b, {"10.0.1.1", "10.0.1.2"});
  hosts = resolve(hosts, c, {"10.0.2.1"});
  REQUIRE(addressesOf(hosts) ==
          std::vector<std::string>{"10.0.0.1:80", "10.0.1.1:80", "10.0.1.2:80", "10.0.2.1:80"});
  const auto a_state = hosts[0].state;
  const auto c_state = hosts[3].state;

  SECTION("the middle target shrinks") {
    const auto next = resolve(hosts, b, {"10.0.1.2"});
    CHECK(addressesOf(next) ==
          std::vector<std::string>{"10.0.0.1:80", "10.0.1.2:80", "10.0.2.1:80"});
    CHECK(next[0].state == a_state);
    CHECK(next[2].state == c_state);
  }
  SECTION("the middle target empties and comes back between its neighbours") {
    const auto empty = resolve(hosts, b, {});
    CHECK(addressesOf(empty) == std::vector<std::string>{"10.0.0.1:80", "10.0.2.1:80"});
    const auto back = resolve(empty, b, {"10.0.1.9"});
    CHECK(addressesOf(back) ==
          std::vector<std::string>{"10.0.0.1:80", "10.0.1.9:80", "10.0.2.1:80"});
  }
  SECTION("the first and the last target change") {
    auto next = resolve(hosts, a, {"10.0.0.7"});
    next = resolve(next, c, {"10.0.2.7", "10.0.2.8"});
    CHECK(addressesOf(next) == std::vector<std::string>{"10.0.0.7:80", "10.0.1.1:80",
                                                        "10.0.1.2:80", "10.0.2.7:80",
                                                        "10.0.2.8:80"});
  }
  SECTION("two targets may resolve to the same address; each keeps its own host") {
    const auto next = resolve(hosts, c, {"10.0.0.1"});
    REQUIRE(next.size() == 4);
    CHECK(next[3].address == "10.0.0.1:80");
    CHECK(next[3].endpoint == 2);
    CHECK(next[3].state != a_state);
  }
}

TEST_CASE("a LOGICAL_DNS host takes the first address and keeps its state when it moves",
          "[dns]") {
  const ResolveTarget t = target(0, 443);
  const HostListUpdate first =
      updateHostList({}, t, {"10.0.0.1", "10.0.0.2"}, Type::LogicalDns, true);
  REQUIRE(first.hosts.size() == 1);
  CHECK(first.added == 1);
  CHECK(first.hosts[0].address == "10.0.0.1:443");
  CHECK(first.hosts[0].priority == 0);  // Envoy forces priority 0
  CHECK(first.hosts[0].state->failed_active_hc.load());

  const HostListUpdate same =
      updateHostList(first.hosts, t, {"10.0.0.1", "10.0.0.3"}, Type::LogicalDns, true);
  CHECK_FALSE(same.changed);

  const HostListUpdate moved = updateHostList(first.hosts, t, {"10.0.0.2"}, Type::LogicalDns, true);
  CHECK(moved.changed);
  CHECK(moved.added == 0);
  CHECK(moved.removed == 0);
  REQUIRE(moved.hosts.size() == 1);
  CHECK(moved.hosts[0].address == "10.0.0.2:443");
  CHECK(moved.hosts[0].ip == "10.0.0.2");
  CHECK(moved.hosts[0].state == first.hosts[0].state);
  CHECK(moved.hosts[0].hostname == "svc0");

  const HostListUpdate empty = updateHostList(moved.hosts, t, {}, Type::LogicalDns, true);
  CHECK_FALSE(empty.changed);
  CHECK(empty.hosts[0].address == "10.0.0.2:443");
}

TEST_CASE("dns_lookup_family picks from what the resolver returned", "[dns]") {
  const std::vector<asio::ip::address> both = {ip("10.0.0.1"), ip("::1"), ip("10.0.0.2"),
                                               ip("10.0.0.1"), ip("::2")};
  const std::vector<asio::ip::address> v4 = {ip("10.0.0.1")};
  const std::vector<asio::ip::address> v6 = {ip("::1")};
  using V = std::vector<std::string>;
  CHECK(selectAddresses(both, Family::V4Only) == V{"10.0.0.1", "10.0.0.2"});
  CHECK(selectAddresses(both, Family::V6Only) == V{"::1", "::2"});
  CHECK(selectAddresses(both, Family::Auto) == V{"::1", "::2"});
  CHECK(selectAddresses(v4, Family::Auto) == V{"10.0.0.1"});
  CHECK(selectAddresses(both, Family::V4Preferred) == V{"10.0.0.1", "10.0.0.2"});
  CHECK(selectAddresses(v6, Family::V4Preferred) == V{"::1"});
  CHECK(selectAddresses(both, Family::All) == V{"10.0.0.1", "10.0.0.2", "::1", "::2"});
  CHECK(selectAddresses(v4, Family::V6Only).empty());
  CHECK(hostPort("::1", 80) == "[::1]:80");
  CHECK(hostPort("10.0.0.1", 80) == "10.0.0.1:80");
}

}  // namespace turnout::proxy

namespace turnout::proxy {
namespace {

config::LocalityEndpointsConfig locality(uint32_t priority,
                                         std::vector<std::pair<std::string, uint32_t>> eps) {
  config::LocalityEndpointsConfig l;
  l.priority = priority;
  for (const auto& [ip, weight] : eps) {
    config::EndpointConfig e;
    e.address.address = ip;
    e.address.port = 80;
    e.weight = weight;
    l.endpoints.push_back(e);
  }
  return l;
}

TEST_CASE("an EDS update keeps the shared state of surviving hosts and adds new ones failing "
          "health checks",
          "[upstream][eds]") {
  HostListUpdate first = updateEndpointHosts({locality(0, {{"10.0.0.1", 1}, {"10.0.0.2", 1}})},
                                             {}, true);
  REQUIRE(first.changed);
  CHECK(first.added == 2);
  REQUIRE(first.hosts.size() == 2);
  first.hosts[0].state->failed_active_hc.store(false);  // passed its checks since

  HostListUpdate next = updateEndpointHosts(
      {locality(0, {{"10.0.0.1", 1}}), locality(1, {{"10.0.0.3", 5}})}, first.hosts, true);
  CHECK(next.changed);
  CHECK(next.added == 1);
  CHECK(next.removed == 1);
  REQUIRE(next.hosts.size() == 2);
  CHECK(next.hosts[0].address == "10.0.0.1:80");
  CHECK(next.hosts[0].state == first.hosts[0].state);
  CHECK_FALSE(next.hosts[0].state->failed_active_hc.load());
  CHECK(next.hosts[1].address == "10.0.0.3:80");
  CHECK(next.hosts[1].priority == 1);
  CHECK(next.hosts[1].weight == 5);
  CHECK(next.hosts[1].state->failed_active_hc.load());
}

TEST_CASE("an EDS update that changes nothing a worker uses is no rebuild", "[upstream][eds]") {
  auto first = updateEndpointHosts({locality(0, {{"10.0.0.1", 2}})}, {}, false);
  auto same = updateEndpointHosts({locality(0, {{"10.0.0.1", 2}})}, first.hosts, false);
  CHECK_FALSE(same.changed);
  CHECK(same.hosts[0].state == first.hosts[0].state);
  // A weight change is a rebuild, with nobody added or removed.
  auto weight = updateEndpointHosts({locality(0, {{"10.0.0.1", 3}})}, first.hosts, false);
  CHECK(weight.changed);
  CHECK(weight.added == 0);
  CHECK(weight.removed == 0);
  CHECK(weight.hosts[0].state == first.hosts[0].state);
}

}  // namespace
}  // namespace turnout::proxy
