#pragma once

// Test PKI made at test time with the OpenSSL API (no committed keys), and a
// loopback handshake between a ServerContext and a ClientContext.

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "proxy/common/asio.h"
#include "proxy/tls/handshake_outcome.h"
#include "proxy/tls/pem.h"
#include "proxy/tls/tls_context.h"
#include "proxy/tls/tls_transport.h"

namespace turnout::proxy::tls::test {

// Moves each side's output to the other until neither has any (in-memory handshakes).
inline void pump(TlsTransport& client, TlsTransport& server) {
  for (int i = 0; i < 20; ++i) {
    std::string c2s, s2c;
    client.takeOutput(c2s);
    server.takeOutput(s2c);
    if (c2s.empty() && s2c.empty()) return;
    server.feed(c2s);
    client.feed(s2c);
  }
}

// Both ends of an in-memory TLS connection and their last results.
struct Pair {
  std::unique_ptr<TlsTransport> client;
  std::unique_ptr<TlsTransport> server;
  TlsTransport::Result client_result = TlsTransport::Result::kWantRead;
  TlsTransport::Result server_result = TlsTransport::Result::kWantRead;
};

inline std::string pemOf(X509* x) {
  BIO* b = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(b, x);
  char* data = nullptr;
  long n = BIO_get_mem_data(b, &data);
  std::string out(data, static_cast<size_t>(n));
  BIO_free(b);
  return out;
}

inline std::string pemOf(EVP_PKEY* k) {
  BIO* b = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(b, k, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(b, &data);
  std::string out(data, static_cast<size_t>(n));
  BIO_free(b);
  return out;
}

struct KeyPair {
  std::shared_ptr<X509> cert;
  std::shared_ptr<EVP_PKEY> key;
  std::string certPem() const { return pemOf(cert.get()); }
  std::string keyPem() const { return pemOf(key.get()); }
};

struct CertSpec {
  std::string common_name;
  std::string sans;  // "DNS:a.example.com,IP:127.0.0.1,URI:spiffe://x"; empty: none
  bool is_ca = false;
  long not_before_s = -3600;  // relative to now
  long not_after_s = 86400;
};

// An EC P-256 key and a certificate signed by `issuer` (self-signed when null).
inline KeyPair makeCert(const CertSpec& spec, const KeyPair* issuer = nullptr) {
  static long serial = 1000;
  KeyPair kp;
  kp.key.reset(EVP_EC_gen("P-256"), EVP_PKEY_free);
  kp.cert.reset(X509_new(), X509_free);
  X509* x = kp.cert.get();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), ++serial);
  X509_gmtime_adj(X509_getm_notBefore(x), spec.not_before_s);
  X509_gmtime_adj(X509_getm_notAfter(x), spec.not_after_s);
  X509_set_pubkey(x, kp.key.get());
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(spec.common_name.c_str()), -1,
                             -1, 0);
  X509* issuer_cert = issuer != nullptr ? issuer->cert.get() : x;
  EVP_PKEY* issuer_key = issuer != nullptr ? issuer->key.get() : kp.key.get();
  X509_set_issuer_name(x, X509_get_subject_name(issuer_cert));
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer_cert, x, nullptr, nullptr, 0);
  auto add = [&](int nid, const std::string& value) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
  };
  add(NID_basic_constraints, spec.is_ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
  add(NID_key_usage, spec.is_ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
  if (!spec.is_ca) add(NID_ext_key_usage, "serverAuth,clientAuth");
  add(NID_subject_key_identifier, "hash");
  if (!spec.sans.empty()) add(NID_subject_alt_name, spec.sans);
  X509_sign(x, issuer_key, EVP_sha256());
  return kp;
}

// A temporary directory, removed with its contents.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "turnout-tls-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  std::string write(const std::string& name, const std::string& contents) const {
    std::string p = file(name);
    std::ofstream(p, std::ios::binary | std::ios::trunc) << contents;
    return p;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// The certificates every test uses: a CA, a server and a client certificate
// from it, one from another CA, and an expired server certificate.
struct TestPki {
  KeyPair ca = makeCert({.common_name = "turnout test CA", .is_ca = true});
  KeyPair other_ca = makeCert({.common_name = "other CA", .is_ca = true});
  KeyPair server = makeCert({.common_name = "server.example.com",
                             .sans = "DNS:server.example.com,DNS:*.svc.example.com,IP:127.0.0.1"},
                            &ca);
  KeyPair client = makeCert({.common_name = "client",
                             .sans = "URI:spiffe://cluster.local/ns/default/sa/client,"
                                     "email:client@example.com"},
                            &ca);
  KeyPair wrong_ca_client = makeCert(
      {.common_name = "intruder", .sans = "URI:spiffe://cluster.local/ns/default/sa/client"},
      &other_ca);
  KeyPair expired = makeCert({.common_name = "server.example.com",
                              .sans = "DNS:server.example.com",
                              .not_before_s = -7 * 86400,
                              .not_after_s = -86400},
                             &ca);
};

inline const TestPki& pki() {
  static const TestPki* p = new TestPki();
  return *p;
}

struct SideResult {
  boost::system::error_code ec;
  HandshakeInfo info;
  std::string sni;                 // the server name the server saw
  long verify_result = X509_V_OK;  // SSL_get_verify_result after the handshake
};

struct HandshakeResult {
  SideResult server;
  SideResult client;
};

// One connection over loopback: accept, both handshakes, then the server
// writes one byte the client reads (which also delivers TLS 1.3 session
// tickets), then both close: with close_notify both ways, or the client just
// closes its socket (`clean_close` false). Bounded by a 10 s watchdog.
inline HandshakeResult handshake(const ServerContext& server, const ClientContext& client,
                                 const ClientHandshakeOptions& options = {},
                                 ClientSessionCache* cache = nullptr, bool clean_close = true) {
  namespace ssl = asio::ssl;
  using asio::ip::tcp;
  asio::io_context io;
  TcpAcceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  ssl::stream<TcpSocket> s(io, server.sslContext());
  ssl::stream<TcpSocket> c(io, client.sslContext());
  SteadyTimer watchdog(io, std::chrono::seconds(10));
  HandshakeResult r;
  int done = 0;
  char sbuf[1] = {'x'};
  char cbuf[1] = {0};
  auto finish = [&] {
    if (++done == 2) watchdog.cancel();
  };
  watchdog.async_wait([&](boost::system::error_code ec) {
    if (ec) return;
    boost::system::error_code ignored;
    s.lowest_layer().close(ignored);
    c.lowest_layer().close(ignored);
    acceptor.close(ignored);
  });
  acceptor.async_accept(s.next_layer(), [&](boost::system::error_code ec) {
    if (ec) {
      r.server.ec = ec;
      finish();
      return;
    }
    s.async_handshake(ssl::stream_base::server, [&](boost::system::error_code ec) {
      r.server.ec = ec;
      r.server.info = describeHandshake(s.native_handle(), ec);
      r.server.verify_result = SSL_get_verify_result(s.native_handle());
      if (const char* name = SSL_get_servername(s.native_handle(), TLSEXT_NAMETYPE_host_name)) {
        r.server.sni = name;
      }
      if (ec) {
        boost::system::error_code ignored;
        s.lowest_layer().close(ignored);
        finish();
        return;
      }
      asio::async_write(s, asio::buffer(sbuf), [&](boost::system::error_code, size_t) {
        // Wait for the client's close_notify, answer it, close.
        s.async_read_some(asio::buffer(cbuf), [&](boost::system::error_code, size_t) {
          s.async_shutdown([&](boost::system::error_code) {
            boost::system::error_code ignored;
            s.lowest_layer().close(ignored);
            finish();
          });
        });
      });
    });
  });
  c.next_layer().async_connect(acceptor.local_endpoint(), [&](boost::system::error_code ec) {
    if (ec) {
      r.client.ec = ec;
      finish();
      return;
    }
    auto prepared = client.prepare(c.native_handle(), options, cache);
    if (!prepared.ok()) {
      r.client.ec = asio::error::invalid_argument;
      c.lowest_layer().close(ec);
      finish();
      return;
    }
    c.async_handshake(ssl::stream_base::client, [&](boost::system::error_code ec) {
      r.client.ec = ec;
      r.client.info = describeHandshake(c.native_handle(), ec);
      r.client.verify_result = SSL_get_verify_result(c.native_handle());
      if (ec) {
        boost::system::error_code ignored;
        c.lowest_layer().close(ignored);
        finish();
        return;
      }
      asio::async_read(c, asio::buffer(cbuf), [&](boost::system::error_code ec, size_t) {
        // A TLS 1.3 server refuses a client certificate after the client's
        // handshake is complete: the refusal arrives here.
        if (ec) {
          r.client.ec = ec;
          boost::system::error_code ignored;
          c.lowest_layer().close(ignored);
          finish();
          return;
        }
        if (!clean_close) {  // as an idle upstream connection is often closed
          boost::system::error_code ignored;
          c.lowest_layer().close(ignored);
          finish();
          return;
        }
        // A clean close: OpenSSL keeps sessions of connections that end
        // with close_notify resumable on the server.
        c.async_shutdown([&](boost::system::error_code) {
          boost::system::error_code ignored;
          c.lowest_layer().close(ignored);
          finish();
        });
      });
    });
  });
  io.run();
  return r;
}

}  // namespace turnout::proxy::tls::test

#include <catch2/catch.hpp>

#include "config/bootstrap/message_loader.h"

namespace turnout::proxy::tls::test {

// The PKI written to files, as a Kubernetes secret volume would hold it.
struct PkiFiles {
  TempDir dir;
  std::string ca = dir.write("ca.pem", pki().ca.certPem());
  std::string server_cert = dir.write("server.pem", pki().server.certPem());
  std::string server_key = dir.write("server.key", pki().server.keyPem());
  std::string client_cert = dir.write("client.pem", pki().client.certPem());
  std::string client_key = dir.write("client.key", pki().client.keyPem());
  std::string wrong_cert = dir.write("wrong.pem", pki().wrong_ca_client.certPem());
  std::string wrong_key = dir.write("wrong.key", pki().wrong_ca_client.keyPem());
  std::string expired_cert = dir.write("expired.pem", pki().expired.certPem());
  std::string expired_key = dir.write("expired.key", pki().expired.keyPem());
};

template <typename M>
M fromYaml(const std::string& yaml) {
  M m;
  auto s = config::loadMessageFromYaml(yaml, m, {}, nullptr);
  INFO(yaml);
  REQUIRE(s.ToString() == "OK");
  return m;
}

// A tls_certificates entry (YAML, at the indentation of a list item under
// common_tls_context).
inline std::string certYaml(const std::string& cert, const std::string& key) {
  return "    tls_certificates:\n    - certificate_chain: {filename: \"" + cert +
         "\"}\n      private_key: {filename: \"" + key + "\"}\n";
}

inline ServerContextConstSharedPtr serverContext(const std::string& yaml,
                                                 const SecretResolver& secrets = {}) {
  auto ctx = ServerContext::create(
      fromYaml<envoy::extensions::transport_sockets::tls::v3::DownstreamTlsContext>(yaml), "tls",
      secrets);
  INFO(yaml);
  REQUIRE(ctx.status().ToString() == "OK");
  return *ctx;
}

inline ClientContextConstSharedPtr clientContext(const std::string& yaml,
                                                 const SecretResolver& secrets = {}) {
  auto ctx = ClientContext::create(
      fromYaml<envoy::extensions::transport_sockets::tls::v3::UpstreamTlsContext>(yaml), "tls",
      secrets);
  INFO(yaml);
  REQUIRE(ctx.status().ToString() == "OK");
  return *ctx;
}

}  // namespace turnout::proxy::tls::test
