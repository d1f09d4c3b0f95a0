// Certificate rotation: the context is rebuilt when a source file's content
// changes, and kept when the new files are invalid.

#include <filesystem>

#include "proxy/tls/reloading_server_context.h"
#include "tests/unit/proxy/tls/tls_test_support.h"

namespace turnout::proxy::tls {
namespace {

namespace tls_v3 = envoy::extensions::transport_sockets::tls::v3;
using test::pki;
using test::PkiFiles;

// The subject CN of the certificate the server presented.
std::string presentedCn(const ServerContext& server, const ClientContext& client) {
  namespace ssl = asio::ssl;
  using asio::ip::tcp;
  asio::io_context io;
  TcpAcceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  ssl::stream<TcpSocket> s(io, server.sslContext());
  ssl::stream<TcpSocket> c(io, client.sslContext());
  std::string cn;
  acceptor.async_accept(s.next_layer(), [&](boost::system::error_code ec) {
    if (!ec) s.async_handshake(ssl::stream_base::server, [](boost::system::error_code) {});
  });
  c.next_layer().async_connect(acceptor.local_endpoint(), [&](boost::system::error_code ec) {
    if (ec) return;
    c.async_handshake(ssl::stream_base::client, [&](boost::system::error_code ec) {
      if (!ec) {
        X509* peer = SSL_get0_peer_certificate(c.native_handle());
        char buf[256] = {};
        X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, buf, sizeof(buf));
        cn = buf;
      }
      boost::system::error_code ignored;
      c.lowest_layer().close(ignored);
      s.lowest_layer().close(ignored);
    });
  });
  io.run_for(std::chrono::seconds(10));
  return cn;
}

// Kubernetes' atomic update: new files in a fresh directory, then the
// ..data symlink swapped.
void rotate(const PkiFiles& f, const std::string& cert_pem, const std::string& key_pem, int gen) {
  const std::string dir = f.dir.file("gen" + std::to_string(gen));
  std::filesystem::create_directory(dir);
  f.dir.write("gen" + std::to_string(gen) + "/tls.crt", cert_pem);
  f.dir.write("gen" + std::to_string(gen) + "/tls.key", key_pem);
  const std::string tmp = f.dir.file("..data_tmp");
  std::filesystem::create_directory_symlink(dir, tmp);
  std::filesystem::rename(tmp, f.dir.file("..data"));
}

TEST_CASE("reload picks up a rotated certificate and keeps the old one on a bad rotation",
          "[tls][reload]") {
  PkiFiles f;
  rotate(f, pki().server.certPem(), pki().server.keyPem(), 1);
  std::filesystem::create_symlink("..data/tls.crt", f.dir.file("tls.crt"));
  std::filesystem::create_symlink("..data/tls.key", f.dir.file("tls.key"));
  auto config = test::fromYaml<tls_v3::DownstreamTlsContext>(
      "common_tls_context:\n" + test::certYaml(f.dir.file("tls.crt"), f.dir.file("tls.key")));
  auto reloading = ReloadingServerContext::create(config, "listener.tls", SecretResolver());
  REQUIRE(reloading.status().ToString() == "OK");
  auto& r = **reloading;
  auto client = test::clientContext(
      "common_tls_context:\n  validation_context:\n    trusted_ca: {filename: \"" + f.ca + "\"}\n");

  auto first = r.current();
  CHECK(presentedCn(*first, *client) == "server.example.com");
  CHECK(r.maybeReload().value() == false);
  CHECK(r.current() == first);

  // The same content rewritten: no rebuild.
  rotate(f, pki().server.certPem(), pki().server.keyPem(), 2);
  CHECK(r.maybeReload().value() == false);
  CHECK(r.current() == first);

  // A new certificate: rebuilt; the old context still serves its connections.
  auto renewed = test::makeCert(
      {.common_name = "renewed.example.com", .sans = "DNS:server.example.com"}, &pki().ca);
  rotate(f, renewed.certPem(), renewed.keyPem(), 3);
  CHECK(r.maybeReload().value() == true);
  auto second = r.current();
  CHECK(second != first);
  CHECK(presentedCn(*second, *client) == "renewed.example.com");
  CHECK(presentedCn(*first, *client) == "server.example.com");
  CHECK(r.reloads() == 1);

  // A bad rotation (the key of another certificate): reported, the old context kept.
  auto other = test::makeCert({.common_name = "other"}, &pki().ca);
  rotate(f, other.certPem(), renewed.keyPem(), 4);
  auto failed = r.maybeReload();
  REQUIRE_FALSE(failed.ok());
  CHECK(failed.status().message() ==
        "listener.tls.common_tls_context.tls_certificates[0].private_key: does not match the "
        "certificate in certificate_chain");
  CHECK(r.current() == second);
  CHECK(r.reloadFailures() == 1);
  CHECK(presentedCn(*r.current(), *client) == "renewed.example.com");
  // Reported once: unchanged files are not retried.
  CHECK(r.maybeReload().value() == false);

  // A missing file is a failure too, and the next good rotation is taken.
  std::filesystem::remove(f.dir.file("gen4/tls.crt"));
  CHECK_FALSE(r.maybeReload().ok());
  rotate(f, other.certPem(), other.keyPem(), 5);
  CHECK(r.maybeReload().value() == true);
  CHECK(presentedCn(*r.current(), *client) == "other");
}

TEST_CASE("reload also watches the trusted CA file", "[tls][reload]") {
  PkiFiles f;
  auto config = test::fromYaml<tls_v3::DownstreamTlsContext>(
      "common_tls_context:\n" + test::certYaml(f.server_cert, f.server_key) +
      "    validation_context: {trusted_ca: {filename: \"" + f.ca + "\"}}\n");
  auto reloading = ReloadingServerContext::create(config, "tls", SecretResolver());
  REQUIRE(reloading.ok());
  auto before = (*reloading)->current();
  f.dir.write("ca.pem", pki().ca.certPem() + pki().other_ca.certPem());
  CHECK((*reloading)->maybeReload().value() == true);
  CHECK((*reloading)->current() != before);
}

}  // namespace
}  // namespace turnout::proxy::tls
