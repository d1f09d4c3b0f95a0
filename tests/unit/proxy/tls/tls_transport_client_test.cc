// The client side of the sans-I/O TlsTransport (what the upstream pools use)
// against a server-side TlsTransport, both in memory: handshake, SNI, ALPN,
// data both ways, session resumption, verification failures.

#include <string>

#include "proxy/tls/tls_transport.h"
#include "tests/unit/proxy/tls/tls_test_support.h"

namespace turnout::proxy::tls {
namespace {

using test::clientContext;
using test::PkiFiles;
using test::serverContext;

std::string serverYaml(const PkiFiles& f, const std::string& common_extra = "") {
  return "common_tls_context:\n" + test::certYaml(f.server_cert, f.server_key) + common_extra;
}

std::string clientYaml(const PkiFiles& f, const std::string& extra = "",
                       const std::string& common_extra = "") {
  return "common_tls_context:\n    validation_context:\n      trusted_ca: {filename: \"" + f.ca +
         "\"}\n" + common_extra + extra;
}

using test::Pair;
using test::pump;

// Runs both handshakes to completion (or failure) in memory.
Pair handshakeInMemory(const ServerContextConstSharedPtr& server,
                       const ClientContextConstSharedPtr& client,
                       const ClientHandshakeOptions& options = {},
                       ClientSessionCache* cache = nullptr) {
  Pair p;
  auto c = TlsTransport::createClient(client, options, cache);
  REQUIRE(c.ok());
  p.client = *std::move(c);
  p.server = std::make_unique<TlsTransport>(server);
  for (int i = 0; i < 10; ++i) {
    p.client_result = p.client->handshake();
    p.server_result = p.server->handshake();
    pump(*p.client, *p.server);
    const bool client_done = p.client_result != TlsTransport::Result::kWantRead;
    const bool server_done = p.server_result != TlsTransport::Result::kWantRead;
    if (client_done && server_done) break;
  }
  return p;
}

TEST_CASE("a read takes data, a KeyUpdate and close_notify that arrived together",
          "[tls][transport]") {
  // read() stops once nothing is decrypted and no ciphertext is left; what
  // follows the data in the same bytes (a KeyUpdate, an alert) is still read.
  PkiFiles f;
  auto p =
      handshakeInMemory(serverContext(serverYaml(f)),
                        clientContext(clientYaml(
                            f, "", "    tls_params: {tls_maximum_protocol_version: TLSv1_3}\n")));
  REQUIRE(p.server_result == TlsTransport::Result::kOk);
  REQUIRE(p.client->describe().version == "TLSv1.3");  // KeyUpdate is TLS 1.3's
  REQUIRE(p.client->write(std::string("one")));
  REQUIRE(SSL_key_update(p.client->native(), SSL_KEY_UPDATE_NOT_REQUESTED) == 1);
  REQUIRE(
      p.client->write(std::string("two")));  // the KeyUpdate goes out before it, then the new keys
  pump(*p.client, *p.server);
  std::string got;
  CHECK(p.server->read(got) == TlsTransport::Result::kOk);
  CHECK(got == "onetwo");
  REQUIRE(p.client->write(std::string("three")));
  p.client->shutdown();  // close_notify right behind the data
  pump(*p.client, *p.server);
  got.clear();
  CHECK(p.server->read(got) == TlsTransport::Result::kClosed);
  CHECK(got == "three");
}

TEST_CASE("ciphertext fed in slices that end inside records is all decrypted, in order",
          "[tls][transport]") {
  // The transport's input buffer keeps only the partial record between
  // feeds; a reader that is handed 7 bytes at a time sees every byte.
  PkiFiles f;
  auto p = handshakeInMemory(serverContext(serverYaml(f)), clientContext(clientYaml(f)));
  REQUIRE(p.server_result == TlsTransport::Result::kOk);
  std::string sent;
  for (int i = 0; i < 300; ++i) sent += "chunk " + std::to_string(i) + ";";
  for (size_t at = 0; at < sent.size(); at += 100) {
    REQUIRE(p.client->write(std::string_view(sent).substr(at, 100)));  // many small records
  }
  std::string wire;
  p.client->takeOutput(wire);
  CHECK_FALSE(p.client->hasOutput());
  REQUIRE(wire.size() > sent.size());
  std::string got;
  for (size_t at = 0; at < wire.size(); at += 7) {
    const std::string_view slice = std::string_view(wire).substr(at, 7);
    p.server->feed(std::span<const char>(slice.data(), slice.size()));
    REQUIRE(p.server->read(got) == TlsTransport::Result::kOk);
  }
  CHECK(got == sent);
  // takeOutput appends to what the caller holds.
  REQUIRE(p.server->write(std::string("reply")));
  std::string out = "kept:";
  p.server->takeOutput(out);
  CHECK(out.substr(0, 5) == "kept:");
  CHECK(out.size() > 10);
  CHECK_FALSE(p.server->hasOutput());
}

TEST_CASE("a client transport completes a handshake with a server transport and carries data",
          "[tls][transport]") {
  PkiFiles f;
  auto p = handshakeInMemory(serverContext(serverYaml(f)),
                             clientContext(clientYaml(f, "sni: server.example.com\n")));
  REQUIRE(p.client_result == TlsTransport::Result::kOk);
  REQUIRE(p.server_result == TlsTransport::Result::kOk);
  CHECK(p.client->handshakeDone());
  CHECK(p.client->describe().outcome == HandshakeOutcome::Success);
  CHECK(std::string(SSL_get_servername(p.server->native(), TLSEXT_NAMETYPE_host_name)) ==
        "server.example.com");

  const std::string request = "GET / HTTP/1.1\r\nhost: x\r\n\r\n";
  REQUIRE(p.client->write(request));
  pump(*p.client, *p.server);
  std::string got;
  CHECK(p.server->read(got) == TlsTransport::Result::kOk);
  CHECK(got == request);

  const std::string response(100 * 1024, 'r');  // several records
  REQUIRE(p.server->write(response));
  pump(*p.client, *p.server);
  got.clear();
  CHECK(p.client->read(got) == TlsTransport::Result::kOk);
  CHECK(got == response);

  p.server->shutdown();
  pump(*p.client, *p.server);
  got.clear();
  CHECK(p.client->read(got) == TlsTransport::Result::kClosed);
}

TEST_CASE("without an sni the client sends none", "[tls][transport]") {
  PkiFiles f;
  auto p = handshakeInMemory(serverContext(serverYaml(f)), clientContext(clientYaml(f)));
  REQUIRE(p.client_result == TlsTransport::Result::kOk);
  CHECK(SSL_get_servername(p.server->native(), TLSEXT_NAMETYPE_host_name) == nullptr);
}

TEST_CASE("the ALPN override (h2 for an HTTP/2 cluster) is offered and selected",
          "[tls][transport]") {
  PkiFiles f;
  auto server = serverContext(serverYaml(f, "    alpn_protocols: [h2, http/1.1]\n"));
  ClientHandshakeOptions h2;
  h2.alpn_override = {"h2"};
  auto p = handshakeInMemory(server, clientContext(clientYaml(f)), h2);
  REQUIRE(p.client_result == TlsTransport::Result::kOk);
  CHECK(p.client->alpn() == "h2");
  CHECK(p.server->alpn() == "h2");

  // An HTTP/1-only server selects nothing the client offered: no ALPN.
  auto http1 = serverContext(serverYaml(f, "    alpn_protocols: [http/1.1]\n"));
  auto q = handshakeInMemory(http1, clientContext(clientYaml(f)), h2);
  CHECK(q.client->alpn().empty());
}

TEST_CASE("a second client transport resumes the session the first one stored",
          "[tls][transport]") {
  PkiFiles f;
  auto server = serverContext(serverYaml(f));
  auto version = GENERATE(std::string("TLSv1_2"), std::string("TLSv1_3"));
  INFO(version);
  auto client = clientContext(clientYaml(
      f, "", "    tls_params: {tls_minimum_protocol_version: " + version +
                 ", tls_maximum_protocol_version: " + version + "}\n"));
  ClientSessionCache cache;
  ClientHandshakeOptions opts;
  opts.session_key = "127.0.0.1:8443";
  {
    auto p = handshakeInMemory(server, client, opts, &cache);
    REQUIRE(p.client_result == TlsTransport::Result::kOk);
    CHECK_FALSE(p.client->sessionReused());
    // TLS 1.3 tickets come after the handshake: read them as the pools do.
    REQUIRE(p.server->write(std::string("x")));
    pump(*p.client, *p.server);
    std::string got;
    CHECK(p.client->read(got) == TlsTransport::Result::kOk);
    CHECK(got == "x");
  }
  CHECK(cache.size() == 1);
  auto second = handshakeInMemory(server, client, opts, &cache);
  REQUIRE(second.client_result == TlsTransport::Result::kOk);
  CHECK(second.client->sessionReused());
  CHECK(second.client->describe().session_reused);

  ClientHandshakeOptions other = opts;
  other.session_key = "127.0.0.2:8443";
  auto third = handshakeInMemory(server, client, other, &cache);
  REQUIRE(third.client_result == TlsTransport::Result::kOk);
  CHECK_FALSE(third.client->sessionReused());
}

TEST_CASE("a server certificate from an untrusted CA fails the client as fail_verify_error",
          "[tls][transport]") {
  PkiFiles f;
  test::TempDir d;
  auto other_ca = d.write("other.pem", test::pki().other_ca.certPem());
  auto client = clientContext("common_tls_context:\n    validation_context:\n      trusted_ca: "
                              "{filename: \"" + other_ca + "\"}\n");
  auto p = handshakeInMemory(serverContext(serverYaml(f)), client);
  CHECK(p.client_result == TlsTransport::Result::kError);
  CHECK(p.client->describe().outcome == HandshakeOutcome::FailVerifyError);
}

TEST_CASE("a SAN mismatch fails the client as fail_verify_san", "[tls][transport]") {
  PkiFiles f;
  auto client = clientContext(clientYaml(
      f, "", "      match_typed_subject_alt_names:\n      - san_type: DNS\n        matcher: {exact: "
             "other.example.com}\n"));
  auto p = handshakeInMemory(serverContext(serverYaml(f)), client);
  CHECK(p.client_result == TlsTransport::Result::kError);
  CHECK(p.client->describe().outcome == HandshakeOutcome::FailVerifySan);
}

TEST_CASE("an ALPN override too long for the wire fails createClient", "[tls][transport]") {
  PkiFiles f;
  ClientHandshakeOptions opts;
  opts.alpn_override = {std::string(300, 'a')};
  CHECK_FALSE(TlsTransport::createClient(clientContext(clientYaml(f)), opts, nullptr).ok());
}

}  // namespace
}  // namespace turnout::proxy::tls
