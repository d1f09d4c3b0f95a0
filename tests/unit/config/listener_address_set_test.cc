#include "config/snapshot/listener_address_set.h"

#include <catch2/catch.hpp>

#include <optional>
#include <string>

namespace turnout::config {
namespace {

ListenerConfig listener(const std::string& name, const std::string& ip, uint32_t port,
                        bool bind_to_port = true, bool ipv4_compat = false) {
  ListenerConfig l;
  l.name = name;
  l.address.address = ip;
  l.address.port = port;
  l.address.ipv4_compat = ipv4_compat;
  l.bind_to_port = bind_to_port;
  return l;
}

std::optional<std::string> clash(const ListenerConfig& first, const ListenerConfig& second) {
  ListenerAddressSet set;
  REQUIRE_FALSE(set.insert(first).has_value());
  return set.insert(second);
}

TEST_CASE("two listeners on one IP and port clash, however the address is spelled",
          "[config][listener]") {
  CHECK(clash(listener("a", "0.0.0.0", 80), listener("b", "0.0.0.0", 80)) == "a");
  CHECK(clash(listener("a", "::", 80), listener("b", "0:0::0", 80)) == "a");
  CHECK(clash(listener("a", "fd00::7", 80), listener("b", "fd00:0::7", 80)) == "a");
}

TEST_CASE("listeners that differ in IP, port, family or protocol do not clash",
          "[config][listener]") {
  CHECK_FALSE(clash(listener("a", "0.0.0.0", 80), listener("b", "0.0.0.0", 81)));
  CHECK_FALSE(clash(listener("a", "0.0.0.0", 80), listener("b", "127.0.0.1", 80)));
  CHECK_FALSE(clash(listener("a", "0.0.0.0", 80), listener("b", "::", 80)));
  CHECK_FALSE(clash(listener("a", "::", 80), listener("b", "0.0.0.0", 80)));
  ListenerConfig udp = listener("b", "0.0.0.0", 80);
  udp.address.protocol = Address::Protocol::Udp;
  CHECK_FALSE(clash(listener("a", "0.0.0.0", 80), udp));
  ListenerConfig pipe = listener("b", "0.0.0.0", 80);
  pipe.address.kind = Address::Kind::Pipe;
  CHECK_FALSE(clash(listener("a", "0.0.0.0", 80), pipe));
}

TEST_CASE("'::' with ipv4_compat also takes 0.0.0.0 on its port", "[config][listener]") {
  CHECK(clash(listener("a", "::", 80, true, true), listener("b", "0.0.0.0", 80)) == "a");
  CHECK(clash(listener("a", "0.0.0.0", 80), listener("b", "::", 80, true, true)) == "a");
  CHECK(clash(listener("a", "::", 80), listener("b", "::", 80, true, true)) == "a");
  // Only the wildcard: a specific IPv6 address takes no IPv4 connection.
  CHECK_FALSE(clash(listener("a", "::1", 80, true, true), listener("b", "0.0.0.0", 80)));
  CHECK_FALSE(clash(listener("a", "::", 80, true, true), listener("b", "0.0.0.0", 81)));
  CHECK_FALSE(clash(listener("a", "::", 80, true, true), listener("b", "127.0.0.1", 80)));
}

TEST_CASE("bind_to_port: false listeners clash with each other and with bound ones",
          "[config][listener]") {
  CHECK(clash(listener("a", "0.0.0.0", 9080, false), listener("b", "0.0.0.0", 9080, false)) ==
        "a");
  CHECK(clash(listener("a", "0.0.0.0", 15001), listener("b", "0.0.0.0", 15001, false)) == "a");
  CHECK(clash(listener("a", "0.0.0.0", 15001, false), listener("b", "0.0.0.0", 15001)) == "a");
  CHECK_FALSE(clash(listener("a", "0.0.0.0", 9080, false), listener("b", "0.0.0.0", 9090, false)));
}

TEST_CASE("bound listeners on port 0 each get a port of their own", "[config][listener]") {
  CHECK_FALSE(clash(listener("a", "127.0.0.1", 0), listener("b", "127.0.0.1", 0)));
  CHECK(clash(listener("a", "127.0.0.1", 0, false), listener("b", "127.0.0.1", 0, false)) == "a");
}

TEST_CASE("a clashing listener claims nothing and the holder stays the first one",
          "[config][listener]") {
  ListenerAddressSet set;
  CHECK_FALSE(set.insert(listener("a", "0.0.0.0", 80)).has_value());
  CHECK(set.insert(listener("b", "::", 80, true, true)) == "a");
  // b's "::" was not claimed either.
  CHECK_FALSE(set.insert(listener("c", "::", 80)).has_value());
  CHECK(set.insert(listener("d", "0.0.0.0", 80)) == "a");
}

}  // namespace
}  // namespace turnout::config
