#include "proxy/listener/listener_address_map.h"

#include <catch2/catch.hpp>

#include <deque>
#include <string>

#include "proxy/server/data_plane_config.h"

namespace turnout::proxy {
namespace {

struct Listeners {
  std::deque<config::ListenerConfig> configs;  // stable addresses
  DataPlaneConfig dp;

  void add(const std::string& name, const std::string& ip, uint32_t port,
           bool ipv4_compat = false) {
    config::ListenerConfig& c = configs.emplace_back();
    c.name = name;
    c.address.address = ip;
    c.address.port = port;
    c.address.ipv4_compat = ipv4_compat;
    auto rt = std::make_shared<ListenerRuntime>();
    rt->config = &c;
    dp.listeners.push_back(std::move(rt));
  }
};

asio::ip::tcp::endpoint ep(const std::string& ip, uint16_t port) {
  return asio::ip::tcp::endpoint(asio::ip::make_address(ip), port);
}

TEST_CASE("a hand-off goes to the exact address, then the wildcard of its family and port",
          "[listener]") {
  Listeners l;
  l.add("capture", "0.0.0.0", 15001);
  l.add("wild_9080", "0.0.0.0", 9080);
  l.add("exact_9080", "10.0.0.20", 9080);
  l.add("wild6_9080", "::", 9080);
  l.add("exact6_9443", "fd00::7", 9443);
  const ListenerAddressMap m(l.dp);
  CHECK(m.find(ep("10.0.0.20", 9080)) == 2u);
  CHECK(m.find(ep("10.0.0.21", 9080)) == 1u);
  CHECK(m.find(ep("fd00::1", 9080)) == 3u);
  CHECK(m.find(ep("fd00::7", 9443)) == 4u);
  // No IPv6 wildcard on 9443, and an IPv4 destination never takes an IPv6
  // listener (no ipv4_compat).
  CHECK_FALSE(m.find(ep("fd00::8", 9443)).has_value());
  CHECK_FALSE(m.find(ep("10.0.0.20", 9443)).has_value());
  CHECK_FALSE(m.find(ep("10.0.0.20", 7777)).has_value());
  // The capture listener's own wildcard address is a listener like any other.
  CHECK(m.find(ep("127.0.0.1", 15001)) == 0u);
}

TEST_CASE("an IPv4 hand-off falls back to '::' with ipv4_compat, never to '::' without it",
          "[listener]") {
  Listeners l;
  l.add("dual_9080", "::", 9080, true);
  l.add("v6only_9090", "::", 9090);
  l.add("exact_9080", "10.0.0.20", 9080);
  const ListenerAddressMap m(l.dp);
  CHECK(m.find(ep("10.0.0.21", 9080)) == 0u);
  CHECK(m.find(ep("fd00::1", 9080)) == 0u);
  CHECK(m.find(ep("10.0.0.20", 9080)) == 2u);  // the exact address still wins
  CHECK(m.find(ep("fd00::1", 9090)) == 1u);
  CHECK_FALSE(m.find(ep("10.0.0.21", 9090)).has_value());
}

TEST_CASE("two listeners on one address: the first in config order takes hand-offs",
          "[listener]") {
  Listeners l;
  l.add("first", "0.0.0.0", 9080);
  l.add("second", "0.0.0.0", 9080);
  CHECK(ListenerAddressMap(l.dp).find(ep("10.1.1.1", 9080)) == 0u);
  CHECK(ListenerAddressMap().empty());
  CHECK_FALSE(ListenerAddressMap().find(ep("10.1.1.1", 9080)).has_value());
}

}  // namespace
}  // namespace turnout::proxy
