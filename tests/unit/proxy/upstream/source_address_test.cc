#include <string>

#include <catch2/catch.hpp>

#include "config/snapshot/snapshot.h"
#include "proxy/upstream/source_address.h"

// Cluster.upstream_bind_config: which source address an upstream connection
// binds (Envoy's DefaultUpstreamLocalAddressSelector), and that the socket
// really comes from it.

namespace turnout::proxy {
namespace {

using SourceAddress = config::ClusterConfig::SourceAddress;

asio::ip::tcp::endpoint ep(const std::string& ip, uint16_t port = 80) {
  return asio::ip::tcp::endpoint(asio::ip::make_address(ip), port);
}

config::ClusterConfig bound(const std::string& source, const std::string& extra = "") {
  config::ClusterConfig c;
  c.name = "c";
  config::ClusterConfig::UpstreamBind bind;
  bind.source_address = SourceAddress{source, 0};
  if (!extra.empty()) bind.extra_source_address = SourceAddress{extra, 0};
  c.upstream_bind = bind;
  return c;
}

std::string selected(const config::ClusterConfig& c, const std::string& destination) {
  const SourceAddress* s = selectSourceAddress(c, ep(destination));
  return s == nullptr ? "none" : s->address;
}

TEST_CASE("the source address of the host's family is bound and source_address otherwise",
          "[proxy][upstream]") {
  CHECK(selected(config::ClusterConfig{}, "10.0.0.1") == "none");
  const auto dual = bound("127.0.0.6", "::6");
  CHECK(selected(dual, "10.0.0.1") == "127.0.0.6");
  CHECK(selected(dual, "fd00::1") == "::6");
  const auto dual_v6_first = bound("::6", "127.0.0.6");
  CHECK(selected(dual_v6_first, "10.0.0.1") == "127.0.0.6");
  CHECK(selected(dual_v6_first, "fd00::1") == "::6");
  // One family only: Envoy falls back to source_address, whose bind then fails.
  const auto v4_only = bound("127.0.0.6");
  CHECK(selected(v4_only, "fd00::1") == "127.0.0.6");
  asio::io_context io;
  TcpSocket socket(io);
  CHECK(bindSourceAddress(socket, v4_only, ep("::1")) == asio::error::address_family_not_supported);
}

TEST_CASE("an IPv6 upstream connection comes from the extra source address", "[proxy][upstream]") {
  asio::io_context io;
  TcpAcceptor v6(io);
  boost::system::error_code ec;
  v6.open(asio::ip::tcp::v6(), ec);
  if (!ec) v6.bind(ep("::1", 0), ec);
  if (ec) {
    WARN("no IPv6 loopback here: " << ec.message());
    return;
  }
  v6.listen();
  TcpAcceptor v4(io, ep("127.0.0.1", 0));
  // 127.0.0.6 is not the kernel's choice for 127.0.0.1; for ::1 the extra
  // address is what makes the bind succeed (source_address alone fails).
  const auto cluster = bound("127.0.0.6", "::1");
  for (auto* acceptor : {&v6, &v4}) {
    TcpSocket socket(io);
    const asio::ip::tcp::endpoint to = acceptor->local_endpoint();
    REQUIRE_FALSE(bindSourceAddress(socket, cluster, to));
    socket.connect(to);
    TcpSocket accepted = acceptor->accept();
    const auto want = asio::ip::make_address(to.address().is_v4() ? "127.0.0.6" : "::1");
    CHECK(accepted.remote_endpoint().address() == want);
    CHECK(socket.local_endpoint().address() == want);
  }
}

}  // namespace
}  // namespace turnout::proxy
