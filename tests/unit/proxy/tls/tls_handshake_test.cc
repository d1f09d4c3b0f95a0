// Real TLS handshakes over loopback between turnout's server and client
// contexts (proxy/tls/tls_context.h), with certificates made at test time.

#include <algorithm>
#include <cstdio>
#include <thread>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "envoy/config/bootstrap/v3/bootstrap.pb.h"
#include "tests/unit/proxy/tls/tls_test_support.h"

namespace turnout::proxy::tls {
namespace {

using test::clientContext;
using test::handshake;
using test::pki;
using test::PkiFiles;
using test::serverContext;

std::string serverYaml(const PkiFiles& f, const std::string& extra = "",
                       const std::string& common_extra = "") {
  return "common_tls_context:\n" + test::certYaml(f.server_cert, f.server_key) + common_extra +
         extra;
}

std::string trustCa(const PkiFiles& f, const std::string& matchers = "") {
  return "    validation_context:\n      trusted_ca: {filename: \"" + f.ca + "\"}\n" + matchers;
}

bool hasCounter(const std::vector<std::string>& counters, const std::string& name) {
  return std::find(counters.begin(), counters.end(), name) != counters.end();
}

TEST_CASE("a server and a client context complete a TLS 1.3 handshake with ALPN h2",
          "[tls][handshake]") {
  PkiFiles f;
  auto server = serverYaml(f, "", "    alpn_protocols: [h2, http/1.1]\n");
  auto client = "common_tls_context:\n    tls_params: {tls_maximum_protocol_version: TLSv1_3}\n" +
                trustCa(f) + "    alpn_protocols: [h2, http/1.1]\n";
  auto r = handshake(*serverContext(server), *clientContext(client));
  REQUIRE_FALSE(r.server.ec);
  REQUIRE_FALSE(r.client.ec);
  CHECK(r.server.info.outcome == HandshakeOutcome::Success);
  CHECK(r.client.info.version == "TLSv1.3");
  CHECK(r.server.info.alpn == "h2");
  CHECK(r.client.info.alpn == "h2");
  auto counters = handshakeCounters(r.client.info);
  CHECK(hasCounter(counters, "ssl.handshake"));
  CHECK(hasCounter(counters, "ssl.versions.TLSv1.3"));
  CHECK(hasCounter(counters, "ssl.ciphers." + r.client.info.cipher));
  CHECK(r.client.info.cipher.rfind("TLS_", 0) == 0);
  CHECK(hasCounter(counters, "ssl.curves.X25519"));         // the default first curve
  CHECK_FALSE(hasCounter(counters, "ssl.no_certificate"));  // the server's is there
}

TEST_CASE("the client's default maximum is TLS 1.2, as in Envoy", "[tls][handshake]") {
  PkiFiles f;
  auto r = handshake(*serverContext(serverYaml(f)),
                     *clientContext("common_tls_context:\n" + trustCa(f)));
  REQUIRE_FALSE(r.client.ec);
  CHECK(r.client.info.version == "TLSv1.2");
  CHECK(r.server.info.version == "TLSv1.2");
}

TEST_CASE("TLS 1.2 pinned on both sides negotiates the configured cipher and curve",
          "[tls][handshake]") {
  PkiFiles f;
  const std::string params =
      "    tls_params:\n      tls_minimum_protocol_version: TLSv1_2\n"
      "      tls_maximum_protocol_version: TLSv1_2\n"
      "      cipher_suites: [\"[ECDHE-ECDSA-CHACHA20-POLY1305|ECDHE-RSA-CHACHA20-POLY1305]\"]\n"
      "      ecdh_curves: [P-256]\n";
  auto server = serverContext(serverYaml(f, "", params));
  auto client = clientContext("common_tls_context:\n" + trustCa(f) + params);
  auto r = handshake(*server, *client);
  REQUIRE_FALSE(r.server.ec);
  REQUIRE_FALSE(r.client.ec);
  CHECK(r.server.info.version == "TLSv1.2");
  CHECK(r.server.info.cipher == "ECDHE-ECDSA-CHACHA20-POLY1305");
  auto counters = handshakeCounters(r.server.info);
  CHECK(hasCounter(counters, "ssl.versions.TLSv1.2"));
  CHECK(hasCounter(counters, "ssl.ciphers.ECDHE-ECDSA-CHACHA20-POLY1305"));
  CHECK(hasCounter(counters, "ssl.curves.P-256"));
  CHECK(hasCounter(counters, "ssl.no_certificate"));  // the server's, without mTLS

  // A client pinned to TLS 1.3 cannot talk to a server pinned to TLS 1.2.
  auto tls13 = clientContext(
      "common_tls_context:\n    tls_params: {tls_minimum_protocol_version: TLSv1_3, "
      "tls_maximum_protocol_version: TLSv1_3}\n" +
      trustCa(f));
  auto refused = handshake(*server, *tls13);
  CHECK(refused.server.info.outcome == HandshakeOutcome::ConnectionError);
  CHECK(refused.client.info.outcome == HandshakeOutcome::ConnectionError);
  CHECK(handshakeCounters(refused.server.info) == std::vector<std::string>{"ssl.connection_error"});
}

TEST_CASE("ALPN picks the server's first protocol the client offers", "[tls][handshake]") {
  PkiFiles f;
  auto server = serverContext(serverYaml(f, "", "    alpn_protocols: [h2, http/1.1]\n"));
  auto client =
      clientContext("common_tls_context:\n" + trustCa(f) + "    alpn_protocols: [http/1.1, h2]\n");
  CHECK(handshake(*server, *client).client.info.alpn == "h2");

  auto http1 =
      clientContext("common_tls_context:\n" + trustCa(f) + "    alpn_protocols: [http/1.1]\n");
  CHECK(handshake(*server, *http1).server.info.alpn == "http/1.1");

  // The pool's override replaces the context's list.
  ClientHandshakeOptions opts;
  opts.alpn_override = {"http/1.1"};
  CHECK(handshake(*server, *client, opts).client.info.alpn == "http/1.1");

  // No common protocol: the handshake goes on without ALPN (Envoy).
  auto other =
      clientContext("common_tls_context:\n" + trustCa(f) + "    alpn_protocols: [spdy/3]\n");
  auto r = handshake(*server, *other);
  REQUIRE_FALSE(r.client.ec);
  CHECK(r.client.info.alpn.empty());
}

TEST_CASE("the client sends the configured SNI and an override wins", "[tls][handshake]") {
  PkiFiles f;
  auto server = serverContext(serverYaml(f));
  auto client = clientContext("sni: api.svc.example.com\ncommon_tls_context:\n" + trustCa(f));
  CHECK(client->sni() == "api.svc.example.com");
  CHECK(handshake(*server, *client).server.sni == "api.svc.example.com");
  ClientHandshakeOptions opts;
  opts.sni_override = "server.example.com";
  CHECK(handshake(*server, *client, opts).server.sni == "server.example.com");
  auto no_sni = clientContext("common_tls_context:\n" + trustCa(f));
  CHECK(handshake(*server, *no_sni).server.sni.empty());
}

std::string mtlsServer(const PkiFiles& f, bool require = true) {
  return serverYaml(f, require ? "require_client_certificate: true\n" : "",
                    trustCa(f) + "    tls_params: {tls_maximum_protocol_version: TLSv1_3}\n");
}

std::string mtlsClient(const PkiFiles& f, const std::string& cert, const std::string& key,
                       const std::string& version) {
  return "common_tls_context:\n" + (cert.empty() ? std::string() : test::certYaml(cert, key)) +
         trustCa(f) + "    tls_params: {tls_minimum_protocol_version: " + version +
         ", tls_maximum_protocol_version: " + version + "}\n";
}

TEST_CASE("mTLS accepts a client certificate from the trusted CA", "[tls][handshake]") {
  PkiFiles f;
  auto version = GENERATE(std::string("TLSv1_2"), std::string("TLSv1_3"));
  auto server = serverContext(mtlsServer(f));
  CHECK(server->requireClientCertificate());
  auto r = handshake(*server, *clientContext(mtlsClient(f, f.client_cert, f.client_key, version)));
  REQUIRE_FALSE(r.server.ec);
  REQUIRE_FALSE(r.client.ec);
  CHECK(r.server.info.peer_certificate);
  CHECK_FALSE(hasCounter(handshakeCounters(r.server.info), "ssl.no_certificate"));
}

TEST_CASE("mTLS refuses a client without a certificate as fail_verify_no_cert",
          "[tls][handshake]") {
  PkiFiles f;
  auto version = GENERATE(std::string("TLSv1_2"), std::string("TLSv1_3"));
  INFO(version);
  auto r = handshake(*serverContext(mtlsServer(f)), *clientContext(mtlsClient(f, "", "", version)));
  CHECK(r.server.ec);
  CHECK(r.server.info.outcome == HandshakeOutcome::FailVerifyNoCert);
  CHECK(handshakeCounters(r.server.info) == std::vector<std::string>{"ssl.fail_verify_no_cert"});
  // The client learns it from the server's alert (after its own handshake, in TLS 1.3).
  CHECK(r.client.ec);
}

TEST_CASE("mTLS refuses a client certificate from another CA as fail_verify_error",
          "[tls][handshake]") {
  PkiFiles f;
  auto version = GENERATE(std::string("TLSv1_2"), std::string("TLSv1_3"));
  INFO(version);
  auto r = handshake(*serverContext(mtlsServer(f)),
                     *clientContext(mtlsClient(f, f.wrong_cert, f.wrong_key, version)));
  CHECK(r.server.ec);
  CHECK(r.server.info.outcome == HandshakeOutcome::FailVerifyError);
  CHECK(statName(r.server.info.outcome) == "ssl.fail_verify_error");
  CHECK(r.server.verify_result == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
  CHECK(r.client.ec);
}

TEST_CASE(
    "a server that asks for but does not require client certificates counts ssl.no_certificate",
    "[tls][handshake]") {
  PkiFiles f;
  auto server = serverContext(mtlsServer(f, /*require=*/false));
  CHECK_FALSE(server->requireClientCertificate());
  auto r = handshake(*server, *clientContext(mtlsClient(f, "", "", "TLSv1_3")));
  REQUIRE_FALSE(r.server.ec);
  REQUIRE_FALSE(r.client.ec);
  CHECK(hasCounter(handshakeCounters(r.server.info), "ssl.no_certificate"));
  // A certificate it is given must still verify.
  auto wrong =
      handshake(*server, *clientContext(mtlsClient(f, f.wrong_cert, f.wrong_key, "TLSv1_3")));
  CHECK(wrong.server.info.outcome == HandshakeOutcome::FailVerifyError);
}

TEST_CASE("the upstream refuses a server certificate whose SANs do not match as fail_verify_san",
          "[tls][handshake]") {
  PkiFiles f;
  auto server = serverContext(serverYaml(f));
  auto client =
      clientContext("common_tls_context:\n" +
                    trustCa(f,
                            "      match_typed_subject_alt_names:\n"
                            "      - {san_type: DNS, matcher: {exact: other.example.com}}\n"));
  auto r = handshake(*server, *client);
  CHECK(r.client.ec);
  CHECK(r.client.info.outcome == HandshakeOutcome::FailVerifySan);
  CHECK(handshakeCounters(r.client.info) == std::vector<std::string>{"ssl.fail_verify_san"});
  CHECK(r.server.info.outcome == HandshakeOutcome::ConnectionError);
}

TEST_CASE("typed SAN matchers accept a matching DNS, wildcard DNS, IP, URI or email SAN",
          "[tls][handshake]") {
  PkiFiles f;
  // The client certificate carries URI and email SANs, the server's DNS and IP ones.
  auto matcher = GENERATE(
      std::string("{san_type: DNS, matcher: {exact: server.example.com}}"),
      std::string("{san_type: DNS, matcher: {exact: api.svc.example.com}}"),  // *.svc.example.com
      std::string("{san_type: DNS, matcher: {suffix: .example.com}}"),
      std::string("{san_type: IP_ADDRESS, matcher: {exact: 127.0.0.1}}"),
      std::string(
          "{san_type: DNS, matcher: {safe_regex: {regex: 'server\\.example\\.(com|org)'}}}"));
  INFO(matcher);
  auto server = serverContext(serverYaml(f));
  auto client =
      clientContext("common_tls_context:\n" +
                    trustCa(f, "      match_typed_subject_alt_names:\n      - " + matcher + "\n"));
  auto r = handshake(*server, *client);
  CHECK_FALSE(r.client.ec);

  // The same on the server for the client's URI / email SANs.
  auto client_matcher =
      GENERATE(std::string("{san_type: URI, matcher: {prefix: 'spiffe://cluster.local/'}}"),
               std::string("{san_type: EMAIL, matcher: {contains: '@example'}}"));
  INFO(client_matcher);
  auto mtls = serverContext(serverYaml(
      f, "require_client_certificate: true\n",
      trustCa(f, "      match_typed_subject_alt_names:\n      - " + client_matcher + "\n")));
  auto ok = handshake(*mtls, *clientContext(mtlsClient(f, f.client_cert, f.client_key, "TLSv1_2")));
  CHECK_FALSE(ok.server.ec);
}

TEST_CASE("a SAN of another type does not satisfy a typed matcher", "[tls][handshake]") {
  PkiFiles f;
  // 127.0.0.1 is an IP SAN, not a DNS one.
  auto client = clientContext("common_tls_context:\n" +
                              trustCa(f,
                                      "      match_typed_subject_alt_names:\n"
                                      "      - {san_type: DNS, matcher: {exact: 127.0.0.1}}\n"));
  CHECK(handshake(*serverContext(serverYaml(f)), *client).client.info.outcome ==
        HandshakeOutcome::FailVerifySan);
}

TEST_CASE("the deprecated match_subject_alt_names matches any SAN type", "[tls][handshake]") {
  PkiFiles f;
  auto server = serverContext(serverYaml(f));
  auto ip = clientContext("common_tls_context:\n" +
                          trustCa(f, "      match_subject_alt_names: [{exact: 127.0.0.1}]\n"));
  CHECK_FALSE(handshake(*server, *ip).client.ec);
  auto none =
      clientContext("common_tls_context:\n" +
                    trustCa(f, "      match_subject_alt_names: [{exact: nope.example.com}]\n"));
  CHECK(handshake(*server, *none).client.info.outcome == HandshakeOutcome::FailVerifySan);
}

TEST_CASE("an expired server certificate fails verification as fail_verify_error",
          "[tls][handshake]") {
  PkiFiles f;
  auto server =
      serverContext("common_tls_context:\n" + test::certYaml(f.expired_cert, f.expired_key));
  auto r = handshake(*server, *clientContext("common_tls_context:\n" + trustCa(f)));
  CHECK(r.client.info.outcome == HandshakeOutcome::FailVerifyError);
  CHECK(r.client.verify_result == X509_V_ERR_CERT_HAS_EXPIRED);
}

TEST_CASE("an upstream without a validation context does not verify the server",
          "[tls][handshake]") {
  PkiFiles f;
  auto server =
      serverContext("common_tls_context:\n" + test::certYaml(f.expired_cert, f.expired_key));
  auto r = handshake(*server, *clientContext("sni: x.example.com\n"));
  CHECK_FALSE(r.client.ec);
}

TEST_CASE("the client resumes its session on a second connection", "[tls][handshake]") {
  PkiFiles f;
  auto version = GENERATE(std::string("TLSv1_2"), std::string("TLSv1_3"));
  INFO(version);
  auto server = serverContext(mtlsServer(f));
  auto client = clientContext(mtlsClient(f, f.client_cert, f.client_key, version));
  ClientSessionCache cache;
  ClientHandshakeOptions opts;
  opts.session_key = "127.0.0.1:443";
  auto first = handshake(*server, *client, opts, &cache);
  REQUIRE_FALSE(first.client.ec);
  CHECK_FALSE(first.client.info.session_reused);
  CHECK(cache.size() == 1);
  auto second = handshake(*server, *client, opts, &cache);
  REQUIRE_FALSE(second.client.ec);
  CHECK(second.client.info.session_reused);
  CHECK(second.server.info.session_reused);
  CHECK(hasCounter(handshakeCounters(second.server.info), "ssl.session_reused"));

  // Another host does not get that session.
  ClientHandshakeOptions other = opts;
  other.session_key = "127.0.0.2:443";
  CHECK_FALSE(handshake(*server, *client, other, &cache).client.info.session_reused);
  // Nor does a connection without a cache.
  CHECK_FALSE(handshake(*server, *client, opts, nullptr).client.info.session_reused);
}

TEST_CASE("a session survives a connection closed without close_notify", "[tls][handshake]") {
  // OpenSSL marks such a connection's session non-resumable; the client cache
  // keeps its own copy, and the server's tickets do not depend on its cache.
  PkiFiles f;
  auto version = GENERATE(std::string("TLSv1_2"), std::string("TLSv1_3"));
  INFO(version);
  auto server = serverContext(serverYaml(f));
  auto client = clientContext("common_tls_context:\n" + trustCa(f) +
                              "    tls_params: {tls_maximum_protocol_version: " + version + "}\n");
  ClientSessionCache cache;
  ClientHandshakeOptions opts;
  opts.session_key = "h";
  REQUIRE_FALSE(handshake(*server, *client, opts, &cache, /*clean_close=*/false).client.ec);
  auto second = handshake(*server, *client, opts, &cache, /*clean_close=*/false);
  CHECK(second.client.info.session_reused);
  CHECK(handshake(*server, *client, opts, &cache, false).client.info.session_reused);
}

TEST_CASE("max_session_keys 0 turns client session resumption off", "[tls][handshake]") {
  PkiFiles f;
  auto server = serverContext(serverYaml(f));
  auto client = clientContext("max_session_keys: 0\ncommon_tls_context:\n" + trustCa(f));
  CHECK_FALSE(client->sessionResumption());
  ClientSessionCache cache;
  ClientHandshakeOptions opts;
  opts.session_key = "h";
  handshake(*server, *client, opts, &cache);
  CHECK(cache.size() == 0);
  CHECK_FALSE(handshake(*server, *client, opts, &cache).client.info.session_reused);
}

TEST_CASE("server session resumption narrows to the cache or turns off", "[tls][handshake]") {
  PkiFiles f;
  auto version = GENERATE(std::string("TLSv1_2"), std::string("TLSv1_3"));
  INFO(version);
  auto client = clientContext("common_tls_context:\n" + trustCa(f) +
                              "    tls_params: {tls_maximum_protocol_version: " + version + "}\n");
  auto resumed = [&](const ServerContext& server) {
    ClientSessionCache cache;
    ClientHandshakeOptions opts;
    opts.session_key = "h";
    handshake(server, *client, opts, &cache);
    return handshake(server, *client, opts, &cache).server.info.session_reused;
  };
  CHECK(resumed(*serverContext(serverYaml(f, "disable_stateless_session_resumption: true\n"))));
  CHECK(resumed(*serverContext(serverYaml(f, "session_timeout: 60s\n"))));
  CHECK_FALSE(resumed(*serverContext(serverYaml(
      f,
      "disable_stateless_session_resumption: true\ndisable_stateful_session_resumption: true\n"))));
  CHECK(SSL_CTX_get_timeout(
            serverContext(serverYaml(f, "session_timeout: 60s\n"))->nativeHandle()) == 60);
}

TEST_CASE("certificates and trusted CAs come from static secrets", "[tls][handshake]") {
  PkiFiles f;
  auto bootstrap = test::fromYaml<envoy::config::bootstrap::v3::Bootstrap>(
      "static_resources:\n  secrets:\n"
      "  - name: server-cert\n    tls_certificate:\n"
      "      certificate_chain: {filename: \"" +
      f.server_cert +
      "\"}\n"
      "      private_key: {filename: \"" +
      f.server_key +
      "\"}\n"
      "  - name: mesh-ca\n    validation_context:\n"
      "      trusted_ca: {filename: \"" +
      f.ca +
      "\"}\n"
      "      match_typed_subject_alt_names:\n"
      "      - {san_type: URI, matcher: {exact: 'spiffe://cluster.local/ns/default/sa/client'}}\n");
  auto secrets =
      SecretResolver::create(bootstrap.static_resources().secrets(), "static_resources.secrets");
  REQUIRE(secrets.status().ToString() == "OK");
  auto server = serverContext(
      "require_client_certificate: true\ncommon_tls_context:\n"
      "  tls_certificate_sds_secret_configs: [{name: server-cert}]\n"
      "  validation_context_sds_secret_config: {name: mesh-ca}\n",
      *secrets);
  CHECK(server->sourceFiles() == std::vector<std::string>{f.server_cert, f.server_key, f.ca});
  auto r =
      handshake(*server, *clientContext(mtlsClient(f, f.client_cert, f.client_key, "TLSv1_3")));
  CHECK_FALSE(r.server.ec);
  auto wrong =
      handshake(*server, *clientContext(mtlsClient(f, f.wrong_cert, f.wrong_key, "TLSv1_3")));
  CHECK(wrong.server.info.outcome == HandshakeOutcome::FailVerifyError);
}

TEST_CASE("certificates can be given inline and from the environment", "[tls][handshake]") {
  PkiFiles f;
  setenv("TURNOUT_TEST_TLS_KEY", pki().server.keyPem().c_str(), 1);
  auto server = serverContext(
      "common_tls_context:\n  tls_certificates:\n"
      "  - certificate_chain: {inline_string: " +
      absl::StrCat("\"", absl::CEscape(pki().server.certPem()), "\"") +
      "}\n"
      "    private_key: {environment_variable: TURNOUT_TEST_TLS_KEY}\n");
  CHECK(server->sourceFiles().empty());
  auto client = clientContext(
      "common_tls_context:\n  validation_context:\n    trusted_ca: {inline_bytes: \"" +
      absl::Base64Escape(pki().ca.certPem()) + "\"}\n");
  CHECK_FALSE(handshake(*server, *client).client.ec);
  unsetenv("TURNOUT_TEST_TLS_KEY");
}

TEST_CASE("openssl s_client completes a handshake against a server context", "[tls][handshake]") {
  PkiFiles f;
  auto server = serverContext(serverYaml(f, "", "    alpn_protocols: [h2, http/1.1]\n"));
  using asio::ip::tcp;
  asio::io_context io;
  TcpAcceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  const unsigned short port = acceptor.local_endpoint().port();
  boost::system::error_code server_ec = asio::error::would_block;
  std::thread serve([&] {
    asio::ssl::stream<TcpSocket> s(io, server->sslContext());
    boost::system::error_code ec;
    acceptor.accept(s.next_layer(), ec);
    if (!ec) s.handshake(asio::ssl::stream_base::server, ec);
    server_ec = ec;
    s.lowest_layer().close(ec);
  });
  const std::string cmd = "timeout 20 openssl s_client -connect 127.0.0.1:" + std::to_string(port) +
                          " -servername server.example.com -alpn h2 -CAfile " + f.ca +
                          " -verify_return_error </dev/null 2>&1";
  std::string out;
  if (FILE* p = popen(cmd.c_str(), "r")) {
    char buf[4096];
    while (size_t n = fread(buf, 1, sizeof(buf), p)) out.append(buf, n);
    pclose(p);
  }
  serve.join();
  INFO(out);
  CHECK_FALSE(server_ec);
  CHECK(out.find("Verify return code: 0 (ok)") != std::string::npos);
  CHECK(out.find("ALPN protocol: h2") != std::string::npos);
  CHECK(out.find("TLSv1.3") != std::string::npos);
}

}  // namespace
}  // namespace turnout::proxy::tls
