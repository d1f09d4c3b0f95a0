// Filter chain selection by the ClientHello (SNI, ALPN) in a server-side
// TlsTransport: the handshake starts on one context and moves to the one the
// selector picks, with all of that context's settings; a refused ClientHello
// ends the handshake without an alert. Both sides in memory.

#include <string>
#include <vector>

#include "proxy/tls/tls_transport.h"
#include "tests/unit/proxy/tls/tls_test_support.h"

namespace turnout::proxy::tls {
namespace {

using test::clientContext;
using test::PkiFiles;
using test::serverContext;

using test::Pair;
using test::pump;

Pair handshake(std::unique_ptr<TlsTransport> server, const ClientContextConstSharedPtr& client,
               const ClientHandshakeOptions& options = {}) {
  Pair p;
  auto c = TlsTransport::createClient(client, options, nullptr);
  REQUIRE(c.ok());
  p.client = *std::move(c);
  p.server = std::move(server);
  for (int i = 0; i < 10; ++i) {
    p.client_result = p.client->handshake();
    p.server_result = p.server->handshake();
    pump(*p.client, *p.server);
    if (p.client_result != TlsTransport::Result::kWantRead &&
        p.server_result != TlsTransport::Result::kWantRead) {
      break;
    }
  }
  return p;
}

std::string peerCommonName(SSL* ssl) {
  X509* peer = SSL_get0_peer_certificate(ssl);
  if (peer == nullptr) return "";
  char cn[256] = {0};
  X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn, sizeof(cn));
  return cn;
}

// Two chains' contexts: "a" with the shared test server certificate, "b"
// with its own certificate for other.example.com.
struct Chains {
  PkiFiles f;
  test::KeyPair other_kp = test::makeCert(
      {.common_name = "other.example.com", .sans = "DNS:other.example.com"}, &test::pki().ca);
  std::string other_cert = f.dir.write("other.pem", other_kp.certPem());
  std::string other_key = f.dir.write("other.key", other_kp.keyPem());

  ServerContextConstSharedPtr a(const std::string& extra = "") const {
    return serverContext("common_tls_context:\n" + test::certYaml(f.server_cert, f.server_key) +
                         extra);
  }
  ServerContextConstSharedPtr b(const std::string& common_extra = "",
                                const std::string& extra = "") const {
    return serverContext("common_tls_context:\n" + test::certYaml(other_cert, other_key) +
                         common_extra + extra);
  }
  ClientContextConstSharedPtr client(const std::string& extra = "") const {
    return clientContext("common_tls_context:\n    validation_context:\n      trusted_ca: "
                         "{filename: \"" + f.ca + "\"}\n" + extra);
  }
};

// Serves "other.example.com" with `b` (tag 1), anything else with `a` (tag 0);
// records what the ClientHello offered.
struct Selector {
  ServerContextConstSharedPtr a, b;
  std::string seen_sni;
  std::vector<std::string> seen_alpn;
  int calls = 0;
  ServerContextSelector fn() {
    return [this](const ClientHello& hello) {
      ++calls;
      seen_sni = std::string(hello.server_name);
      seen_alpn.assign(hello.alpn.begin(), hello.alpn.end());
      if (hello.server_name == "other.example.com") return ServerContextChoice{b, 1};
      return ServerContextChoice{a, 0};
    };
  }
};

TEST_CASE("the ClientHello's SNI moves the handshake onto the chosen chain's certificate",
          "[tls][sni]") {
  Chains c;
  Selector sel{c.a(), c.b()};
  ClientHandshakeOptions o;
  o.sni_override = "other.example.com";
  auto p = handshake(std::make_unique<TlsTransport>(sel.a, sel.fn()), c.client(), o);
  REQUIRE(p.server_result == TlsTransport::Result::kOk);
  REQUIRE(p.client_result == TlsTransport::Result::kOk);
  CHECK(sel.calls == 1);
  CHECK(sel.seen_sni == "other.example.com");
  CHECK(p.server->selectedTag() == 1u);
  CHECK(peerCommonName(p.client->native()) == "other.example.com");

  o.sni_override = "server.example.com";
  auto q = handshake(std::make_unique<TlsTransport>(sel.a, sel.fn()), c.client(), o);
  REQUIRE(q.server_result == TlsTransport::Result::kOk);
  CHECK(q.server->selectedTag() == 0u);
  CHECK(peerCommonName(q.client->native()) == "server.example.com");
}

TEST_CASE("the chosen chain's ALPN list answers the client's offer", "[tls][sni]") {
  Chains c;
  Selector sel{c.a("    alpn_protocols: [h2, http/1.1]\n"),
               c.b("    alpn_protocols: [http/1.1]\n")};
  ClientHandshakeOptions o;
  o.sni_override = "other.example.com";
  o.alpn_override = {"h2", "http/1.1"};
  auto p = handshake(std::make_unique<TlsTransport>(sel.a, sel.fn()), c.client(), o);
  REQUIRE(p.server_result == TlsTransport::Result::kOk);
  CHECK(sel.seen_alpn == std::vector<std::string>{"h2", "http/1.1"});
  CHECK(p.server->alpn() == "http/1.1");

  o.sni_override = "server.example.com";
  auto q = handshake(std::make_unique<TlsTransport>(sel.a, sel.fn()), c.client(), o);
  REQUIRE(q.server_result == TlsTransport::Result::kOk);
  CHECK(q.server->alpn() == "h2");
}

TEST_CASE("the chosen chain's protocol versions and client verification apply", "[tls][sni]") {
  Chains c;
  // b: TLS 1.2 only, and a client certificate is required.
  Selector sel{c.a(), c.b("    tls_params: {tls_maximum_protocol_version: TLSv1_2}\n"
                          "    validation_context:\n      trusted_ca: {filename: \"" +
                              c.f.ca + "\"}\n",
                          "require_client_certificate: true\n")};
  ClientHandshakeOptions o;
  o.sni_override = "other.example.com";
  const std::string client_cert = "    tls_certificates:\n    - certificate_chain: {filename: \"" +
                                  c.f.client_cert + "\"}\n      private_key: {filename: \"" +
                                  c.f.client_key + "\"}\n" +
                                  "    tls_params: {tls_maximum_protocol_version: TLSv1_3}\n";
  auto p = handshake(std::make_unique<TlsTransport>(sel.a, sel.fn()), c.client(client_cert), o);
  REQUIRE(p.server_result == TlsTransport::Result::kOk);
  CHECK(SSL_version(p.server->native()) == TLS1_2_VERSION);
  CHECK(peerCommonName(p.server->native()) == "client");

  // Without a client certificate b refuses; a (TLS 1.3, no verification) serves.
  auto q = handshake(std::make_unique<TlsTransport>(sel.a, sel.fn()), c.client(), o);
  CHECK(q.server_result == TlsTransport::Result::kError);
  o.sni_override = "server.example.com";
  auto r = handshake(std::make_unique<TlsTransport>(sel.a, sel.fn()),
                     c.client("    tls_params: {tls_maximum_protocol_version: TLSv1_3}\n"), o);
  REQUIRE(r.server_result == TlsTransport::Result::kOk);
  CHECK(SSL_version(r.server->native()) == TLS1_3_VERSION);
}

TEST_CASE("a session resumes on the chain that issued it and not on another", "[tls][sni]") {
  Chains c;
  Selector sel{c.a(), c.b()};
  auto version = GENERATE(std::string("TLSv1_2"), std::string("TLSv1_3"));
  INFO(version);
  auto client = c.client("    tls_params: {tls_minimum_protocol_version: " + version +
                         ", tls_maximum_protocol_version: " + version + "}\n");
  ClientSessionCache cache;
  ClientHandshakeOptions o;
  o.sni_override = "other.example.com";
  o.session_key = "127.0.0.1:443";
  auto run = [&](const ClientHandshakeOptions& opts) {
    Pair p;
    auto t = TlsTransport::createClient(client, opts, &cache);
    REQUIRE(t.ok());
    p.client = *std::move(t);
    p.server = std::make_unique<TlsTransport>(sel.a, sel.fn());
    for (int i = 0; i < 10; ++i) {
      p.client_result = p.client->handshake();
      p.server_result = p.server->handshake();
      pump(*p.client, *p.server);
    }
    REQUIRE(p.client_result == TlsTransport::Result::kOk);
    // TLS 1.3 tickets come after the handshake.
    REQUIRE(p.server->write(std::string("x")));
    pump(*p.client, *p.server);
    std::string got;
    CHECK(p.client->read(got) == TlsTransport::Result::kOk);
    return p;
  };
  CHECK_FALSE(run(o).client->sessionReused());
  auto again = run(o);
  CHECK(again.client->sessionReused());
  CHECK(again.server->selectedTag() == 1u);
  // The same session offered to chain a: a full handshake with a's certificate.
  ClientHandshakeOptions to_a = o;
  to_a.sni_override = "server.example.com";
  auto other = run(to_a);
  CHECK_FALSE(other.client->sessionReused());
  CHECK(other.server->selectedTag() == 0u);
  CHECK(peerCommonName(other.client->native()) == "server.example.com");
}

TEST_CASE("a refused ClientHello fails the handshake without sending an alert", "[tls][sni]") {
  Chains c;
  auto a = c.a();
  bool asked = false;
  auto server = std::make_unique<TlsTransport>(a, [&asked](const ClientHello&) {
    asked = true;
    return ServerContextChoice{};
  });
  auto client = TlsTransport::createClient(c.client(), {}, nullptr);
  REQUIRE(client.ok());
  CHECK((*client)->handshake() == TlsTransport::Result::kWantRead);
  std::string hello;
  (*client)->takeOutput(hello);
  REQUIRE_FALSE(hello.empty());
  server->feed(hello);
  CHECK(server->handshake() == TlsTransport::Result::kError);
  CHECK(asked);
  CHECK(server->refused());
  CHECK_FALSE(server->selectedTag().has_value());
  CHECK_FALSE(server->hasOutput());
}

TEST_CASE("a transport without a selector ignores the client hello hook", "[tls][sni]") {
  Chains c;
  ClientHandshakeOptions o;
  o.sni_override = "other.example.com";
  auto p = handshake(std::make_unique<TlsTransport>(c.a()), c.client(), o);
  REQUIRE(p.server_result == TlsTransport::Result::kOk);
  CHECK_FALSE(p.server->selectedTag().has_value());
  CHECK(peerCommonName(p.client->native()) == "server.example.com");
}

}  // namespace
}  // namespace turnout::proxy::tls
