#include "proxy/tls/tls_context.h"

#include <openssl/err.h>
#include <openssl/evp.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "config/bootstrap/field_policy.h"
#include "proxy/tls/data_source.h"
#include "proxy/tls/pem.h"
#include "proxy/tls/tls_field_path.h"

namespace turnout::proxy::tls {
namespace {

namespace tls_v3 = envoy::extensions::transport_sockets::tls::v3;

absl::Status invalid(std::string_view path, std::string_view what) {
  return absl::InvalidArgumentError(atPath(path, what));
}

// Envoy's default cipher lists (BoringSSL's [A|B] equal-preference groups
// flattened: OpenSSL has no such groups), the same for both legs.
constexpr const char* kDefaultCiphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:"
    "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384";
constexpr const char* kDefaultCurves = "X25519:P-256";
// Envoy's default session_timeout.
constexpr long kDefaultSessionTimeoutSeconds = 7200;

const char* versionName(int v) {
  switch (v) {
    case TLS1_VERSION:
      return "TLSv1_0";
    case TLS1_1_VERSION:
      return "TLSv1_1";
    case TLS1_2_VERSION:
      return "TLSv1_2";
    default:
      return "TLSv1_3";
  }
}

int opensslVersion(tls_v3::TlsParameters::TlsProtocol p, int fallback) {
  switch (p) {
    case tls_v3::TlsParameters::TLSv1_0:
      return TLS1_VERSION;
    case tls_v3::TlsParameters::TLSv1_1:
      return TLS1_1_VERSION;
    case tls_v3::TlsParameters::TLSv1_2:
      return TLS1_2_VERSION;
    case tls_v3::TlsParameters::TLSv1_3:
      return TLS1_3_VERSION;
    default:
      return fallback;
  }
}

absl::Status configureParams(SSL_CTX* ctx, const tls_v3::TlsParameters& params,
                             std::string_view path, bool server, std::string* cipher_list_out,
                             std::string* curve_list_out) {
  const std::string min_path = fieldPath(path, "tls_minimum_protocol_version");
  const std::string max_path = fieldPath(path, "tls_maximum_protocol_version");
  // Envoy's defaults: TLSv1_2 minimum on both legs; TLSv1_3 maximum on the
  // server, TLSv1_2 on the client.
  int min = opensslVersion(params.tls_minimum_protocol_version(), TLS1_2_VERSION);
  int max = opensslVersion(params.tls_maximum_protocol_version(),
                           server ? TLS1_3_VERSION : TLS1_2_VERSION);
  constexpr std::string_view kOldTls =
      "TLS 1.0 and 1.1 are not supported by turnout (OpenSSL 3 refuses them at its default "
      "security level); use TLSv1_2 or TLSv1_3";
  if (min < TLS1_2_VERSION) return invalid(min_path, kOldTls);
  if (max < TLS1_2_VERSION) return invalid(max_path, kOldTls);
  if (min > max) {
    return invalid(
        min_path,
        absl::StrCat(versionName(min), " is above the maximum version ", versionName(max),
                     (params.tls_maximum_protocol_version() == tls_v3::TlsParameters::TLS_AUTO
                          ? " (the default)"
                          : ""),
                     "; set tls_maximum_protocol_version"));
  }
  SSL_CTX_set_min_proto_version(ctx, min);
  SSL_CTX_set_max_proto_version(ctx, max);

  std::vector<std::string> ciphers;
  const std::string cipher_path = fieldPath(path, "cipher_suites");
  for (int i = 0; i < params.cipher_suites_size(); ++i) {
    std::string entry = params.cipher_suites(i);
    // "[A|B]" (BoringSSL equal preference) is taken as A then B.
    if (entry.size() >= 2 && entry.front() == '[' && entry.back() == ']') {
      entry = entry.substr(1, entry.size() - 2);
    }
    for (absl::string_view name : absl::StrSplit(entry, '|')) {
      if (name.empty() || SSL_CTX_set_cipher_list(ctx, std::string(name).c_str()) != 1) {
        ERR_clear_error();
        return invalid(indexPath(cipher_path, static_cast<size_t>(i)),
                       absl::StrCat("unknown cipher suite '", name,
                                    "' (TLS 1.2 names in OpenSSL spelling; TLS 1.3 suites are "
                                    "not configurable)"));
      }
      ciphers.emplace_back(name);
    }
  }
  const std::string cipher_list = ciphers.empty() ? kDefaultCiphers : absl::StrJoin(ciphers, ":");
  if (SSL_CTX_set_cipher_list(ctx, cipher_list.c_str()) != 1) {
    return invalid(cipher_path,
                   absl::StrCat("no usable cipher suite (", drainOpensslErrors(), ")"));
  }
  *cipher_list_out = cipher_list;

  std::vector<std::string> curves;
  const std::string curves_path = fieldPath(path, "ecdh_curves");
  for (int i = 0; i < params.ecdh_curves_size(); ++i) {
    const std::string& name = params.ecdh_curves(i);
    if (name.empty() || SSL_CTX_set1_groups_list(ctx, name.c_str()) != 1) {
      ERR_clear_error();
      return invalid(indexPath(curves_path, static_cast<size_t>(i)),
                     absl::StrCat("unknown ECDH curve '", name, "'"));
    }
    curves.push_back(name);
  }
  const std::string curve_list = curves.empty() ? kDefaultCurves : absl::StrJoin(curves, ":");
  if (SSL_CTX_set1_groups_list(ctx, curve_list.c_str()) != 1) {
    return invalid(curves_path, absl::StrCat("no usable curve (", drainOpensslErrors(), ")"));
  }
  *curve_list_out = curve_list;
  return absl::OkStatus();
}

absl::Status configureCertificate(SSL_CTX* ctx, const tls_v3::TlsCertificate& cert,
                                  std::string_view path, std::vector<std::string>* files,
                                  std::string* fingerprint) {
  const std::string chain_path = fieldPath(path, "certificate_chain");
  const std::string key_path = fieldPath(path, "private_key");
  if (!cert.has_certificate_chain()) return invalid(chain_path, "is required");
  if (!cert.has_private_key()) return invalid(key_path, "is required");
  auto chain_pem = readDataSource(cert.certificate_chain(), chain_path, files);
  if (!chain_pem.ok()) return chain_pem.status();
  auto key_pem = readDataSource(cert.private_key(), key_path, files);
  if (!key_pem.ok()) return key_pem.status();
  auto chain = parseCertificates(*chain_pem, chain_path);
  if (!chain.ok()) return chain.status();
  auto key = parsePrivateKey(*key_pem, key_path);
  if (!key.ok()) return key.status();

  X509* leaf = (*chain)[0].get();
  ERR_clear_error();
  if (X509_check_private_key(leaf, key->get()) != 1) {
    ERR_clear_error();
    return invalid(key_path, "does not match the certificate in certificate_chain");
  }
  if (SSL_CTX_use_certificate(ctx, leaf) != 1 || SSL_CTX_use_PrivateKey(ctx, key->get()) != 1) {
    return invalid(path, absl::StrCat("cannot use the certificate (", drainOpensslErrors(), ")"));
  }
  for (size_t i = 1; i < chain->size(); ++i) {
    if (SSL_CTX_add1_chain_cert(ctx, (*chain)[i].get()) != 1) {
      return invalid(chain_path, absl::StrCat("cannot use intermediate certificate ", i, " (",
                                              drainOpensslErrors(), ")"));
    }
  }
  for (const X509Ptr& c : *chain) *fingerprint += derOf(c.get());
  return absl::OkStatus();
}

std::string sha256(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<char*>(md), len);
}

absl::StatusOr<std::string> alpnWire(const std::vector<std::string>& protocols,
                                     std::string_view path) {
  std::string wire;
  for (size_t i = 0; i < protocols.size(); ++i) {
    if (protocols[i].empty() || protocols[i].size() > 255) {
      return invalid(indexPath(path, i), "an ALPN protocol name is 1 to 255 bytes");
    }
    wire.push_back(static_cast<char>(protocols[i].size()));
    wire += protocols[i];
  }
  return wire;
}

// The SSL ex_data slot that ties a client connection to its session cache.
struct SessionSlot {
  ClientSessionCache* cache;
  std::string key;
};

void freeSessionSlot(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
  delete static_cast<SessionSlot*>(ptr);
}

int sessionSlotIndex() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, freeSessionSlot);
  return index;
}

}  // namespace

absl::Status checkTlsContextFields(const google::protobuf::Message& context,
                                   std::string_view field_path) {
  return config::checkFieldPolicy(context, asAbsl(field_path));
}

absl::Status TlsContextBase::configureCommon(const tls_v3::CommonTlsContext& common,
                                             std::string_view common_path,
                                             const SecretResolver& secrets, bool server,
                                             bool require_peer_certificate) {
  SSL_CTX* ctx = ctx_.native_handle();
  // No renegotiation on either leg (allow_renegotiation must be false), no
  // compression; the server picks the cipher.
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                               (server ? SSL_OP_CIPHER_SERVER_PREFERENCE : 0));
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);

  if (auto s =
          configureParams(ctx, common.tls_params(), fieldPath(common_path, "tls_params"), server,
                          &cipher_list_, &curve_list_);
      !s.ok()) {
    return s;
  }

  // At most one certificate, inline or from a static secret.
  const int certs =
      common.tls_certificates_size() + common.tls_certificate_sds_secret_configs_size();
  if (certs > 1) {
    const std::string second = common.tls_certificates_size() > 1
                                   ? indexPath(fieldPath(common_path, "tls_certificates"), 1)
                                   : fieldPath(common_path, "tls_certificate_sds_secret_configs");
    return invalid(second, "more than one TLS certificate is not supported by turnout yet");
  }
  if (common.tls_certificates_size() == 1) {
    if (auto s = configureCertificate(ctx, common.tls_certificates(0),
                                      indexPath(fieldPath(common_path, "tls_certificates"), 0),
                                      &files_, &fingerprint_);
        !s.ok()) {
      return s;
    }
  } else if (common.tls_certificate_sds_secret_configs_size() == 1) {
    const std::string path =
        indexPath(fieldPath(common_path, "tls_certificate_sds_secret_configs"), 0);
    const std::string& name = common.tls_certificate_sds_secret_configs(0).name();
    const SecretResolver::Entry* entry = secrets.find(name);
    if (entry == nullptr || !entry->secret.has_tls_certificate()) {
      return invalid(fieldPath(path, "name"),
                     absl::StrCat("no static secret '", name,
                                  "' with a tls_certificate in static_resources.secrets"));
    }
    if (auto s =
            configureCertificate(ctx, entry->secret.tls_certificate(),
                                 fieldPath(entry->path, "tls_certificate"), &files_, &fingerprint_);
        !s.ok()) {
      return s;
    }
  } else if (server) {
    return invalid(fieldPath(common_path, "tls_certificates"),
                   "a server TLS context needs one certificate (tls_certificates or "
                   "tls_certificate_sds_secret_configs)");
  }

  const tls_v3::CertificateValidationContext* validation = nullptr;
  std::string validation_path;
  if (common.has_validation_context()) {
    validation = &common.validation_context();
    validation_path = fieldPath(common_path, "validation_context");
  } else if (common.has_validation_context_sds_secret_config()) {
    const std::string path = fieldPath(common_path, "validation_context_sds_secret_config");
    const std::string& name = common.validation_context_sds_secret_config().name();
    const SecretResolver::Entry* entry = secrets.find(name);
    if (entry == nullptr || !entry->secret.has_validation_context()) {
      return invalid(fieldPath(path, "name"),
                     absl::StrCat("no static secret '", name,
                                  "' with a validation_context in static_resources.secrets"));
    }
    validation = &entry->secret.validation_context();
    validation_path = fieldPath(entry->path, "validation_context");
  }
  if (validation != nullptr) {
    auto v = CertValidator::create(*validation, validation_path, &files_);
    if (!v.ok()) return v.status();
    validator_.emplace(*std::move(v));
    validator_->install(ctx, require_peer_certificate);
    fingerprint_ += validator_->fingerprintInput();
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  }

  alpn_.assign(common.alpn_protocols().begin(), common.alpn_protocols().end());
  auto wire = alpnWire(alpn_, fieldPath(common_path, "alpn_protocols"));
  if (!wire.ok()) return wire.status();
  alpn_wire_ = *std::move(wire);
  return absl::OkStatus();
}

// ---- ServerContext ----------------------------------------------------------------

absl::StatusOr<std::shared_ptr<const ServerContext>> ServerContext::create(
    const tls_v3::DownstreamTlsContext& config, std::string_view field_path,
    const SecretResolver& secrets) {
  if (auto s = checkTlsContextFields(config, field_path); !s.ok()) return s;
  std::shared_ptr<ServerContext> c(new ServerContext());
  c->require_client_certificate_ =
      config.has_require_client_certificate() && config.require_client_certificate().value();
  const std::string common_path = fieldPath(field_path, "common_tls_context");
  const tls_v3::CommonTlsContext& common = config.common_tls_context();
  if (c->require_client_certificate_ && !common.has_validation_context() &&
      !common.has_validation_context_sds_secret_config()) {
    return invalid(fieldPath(field_path, "require_client_certificate"),
                   "needs common_tls_context.validation_context (or "
                   "validation_context_sds_secret_config) to verify client certificates with");
  }
  if (auto s = c->configureCommon(common, common_path, secrets, /*server=*/true,
                                  c->require_client_certificate_);
      !s.ok()) {
    return s;
  }
  SSL_CTX* ctx = c->nativeHandle();
  if (!c->alpn_.empty()) SSL_CTX_set_alpn_select_cb(ctx, &ServerContext::selectAlpn, c.get());
  SSL_CTX_set_client_hello_cb(ctx, &serverClientHelloCallback, nullptr);

  // Session resumption: tickets (stateless) and the session cache (stateful)
  // are both on unless disabled. Resumption is scoped to this configuration.
  SSL_CTX_set_session_cache_mode(ctx, config.disable_stateful_session_resumption()
                                          ? SSL_SESS_CACHE_OFF
                                          : SSL_SESS_CACHE_SERVER);
  if (config.disable_stateless_session_resumption()) SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  long timeout = kDefaultSessionTimeoutSeconds;
  if (config.has_session_timeout()) {
    timeout = static_cast<long>(config.session_timeout().seconds());
    if (timeout <= 0) {
      return invalid(fieldPath(field_path, "session_timeout"), "must be at least one second");
    }
  }
  SSL_CTX_set_timeout(ctx, timeout);
  const std::string sid = sha256(absl::StrCat(c->fingerprint_, c->require_client_certificate_));
  SSL_CTX_set_session_id_context(ctx, reinterpret_cast<const unsigned char*>(sid.data()),
                                 std::min<unsigned int>(sid.size(), SSL_MAX_SID_CTX_LENGTH));
  return std::shared_ptr<const ServerContext>(std::move(c));
}

void ServerContext::adopt(SSL* ssl) const {
  SSL_CTX* ctx = nativeHandle();
  // The certificate, key, session id context and the context's callbacks
  // (ALPN, certificate verification, trust store) follow SSL_set_SSL_CTX;
  // what SSL_new copied into the SSL is set again here. Session tickets and
  // the session cache stay those of the first context, and the session id
  // context keeps one chain's sessions from resuming on another.
  SSL_set_SSL_CTX(ssl, ctx);
  SSL_set_verify(ssl, SSL_CTX_get_verify_mode(ctx), SSL_CTX_get_verify_callback(ctx));
  SSL_set_verify_depth(ssl, SSL_CTX_get_verify_depth(ctx));
  SSL_clear_options(ssl, SSL_get_options(ssl));
  SSL_set_options(ssl, SSL_CTX_get_options(ctx));
  SSL_set_min_proto_version(ssl, SSL_CTX_get_min_proto_version(ctx));
  SSL_set_max_proto_version(ssl, SSL_CTX_get_max_proto_version(ctx));
  SSL_set_cipher_list(ssl, cipher_list_.c_str());
  SSL_set1_groups_list(ssl, curve_list_.c_str());
  ERR_clear_error();
}

int ServerContext::selectAlpn(SSL*, const unsigned char** out, unsigned char* outlen,
                              const unsigned char* in, unsigned int inlen, void* arg) {
  const auto* self = static_cast<const ServerContext*>(arg);
  unsigned char* selected = nullptr;
  // The server's order wins (Envoy): the first of ours the client offers.
  if (SSL_select_next_proto(&selected, outlen,
                            reinterpret_cast<const unsigned char*>(self->alpn_wire_.data()),
                            static_cast<unsigned int>(self->alpn_wire_.size()), in,
                            inlen) != OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_NOACK;
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

// ---- ClientSessionCache -----------------------------------------------------------

void ClientSessionCache::put(const std::string& key, SSL_SESSION* session) {
  auto it = sessions_.find(key);
  if (it != sessions_.end()) {
    it->second.reset(session);
    return;
  }
  if (sessions_.size() >= max_entries_) sessions_.erase(sessions_.begin());
  sessions_.emplace(key, std::unique_ptr<SSL_SESSION, SessionDeleter>(session));
}

SSL_SESSION* ClientSessionCache::find(std::string_view key) const {
  auto it = sessions_.find(asAbsl(key));
  return it == sessions_.end() ? nullptr : it->second.get();
}

// ---- ClientContext ----------------------------------------------------------------

absl::StatusOr<std::shared_ptr<const ClientContext>> ClientContext::create(
    const tls_v3::UpstreamTlsContext& config, std::string_view field_path,
    const SecretResolver& secrets) {
  if (auto s = checkTlsContextFields(config, field_path); !s.ok()) return s;
  std::shared_ptr<ClientContext> c(new ClientContext());
  c->sni_ = config.sni();
  if (c->sni_.size() > 255) {
    return invalid(fieldPath(field_path, "sni"), "is longer than 255 bytes");
  }
  c->session_resumption_ = !config.has_max_session_keys() || config.max_session_keys().value() > 0;
  if (auto s = c->configureCommon(config.common_tls_context(),
                                  fieldPath(field_path, "common_tls_context"), secrets,
                                  /*server=*/false, /*require_peer_certificate=*/true);
      !s.ok()) {
    return s;
  }
  SSL_CTX* ctx = c->nativeHandle();
  if (!c->alpn_wire_.empty()) {
    SSL_CTX_set_alpn_protos(ctx, reinterpret_cast<const unsigned char*>(c->alpn_wire_.data()),
                            static_cast<unsigned int>(c->alpn_wire_.size()));
  }
  if (c->session_resumption_) {
    // Sessions go to the connection's ClientSessionCache, never the SSL_CTX's
    // shared store.
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, &ClientContext::onNewSession);
  } else {
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  }
  return std::shared_ptr<const ClientContext>(std::move(c));
}

absl::Status ClientContext::prepare(SSL* ssl, const ClientHandshakeOptions& options,
                                    ClientSessionCache* cache) const {
  const std::string& sni = options.sni_override.empty() ? sni_ : options.sni_override;
  if (!sni.empty() && SSL_set_tlsext_host_name(ssl, sni.c_str()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat("invalid SNI '", sni, "'"));
  }
  if (!options.alpn_override.empty()) {
    auto wire = alpnWire(options.alpn_override, "alpn_override");
    if (!wire.ok()) return wire.status();
    SSL_set_alpn_protos(ssl, reinterpret_cast<const unsigned char*>(wire->data()),
                        static_cast<unsigned int>(wire->size()));
  }
  if (!session_resumption_ || cache == nullptr || options.session_key.empty()) {
    return absl::OkStatus();
  }
  if (SSL_SESSION* s = cache->find(options.session_key);
      s != nullptr && SSL_SESSION_is_resumable(s)) {
    // The connection gets its own copy, which an abrupt close may spoil.
    if (SSL_SESSION* copy = SSL_SESSION_dup(s)) {
      SSL_set_session(ssl, copy);
      SSL_SESSION_free(copy);
    }
  }
  SSL_set_ex_data(ssl, sessionSlotIndex(), new SessionSlot{cache, options.session_key});
  return absl::OkStatus();
}

int ClientContext::onNewSession(SSL* ssl, SSL_SESSION* session) {
  auto* slot = static_cast<SessionSlot*>(SSL_get_ex_data(ssl, sessionSlotIndex()));
  if (slot == nullptr || slot->cache == nullptr) return 0;
  // A copy: OpenSSL marks the session of a connection that closes without
  // close_notify non-resumable, which must not spoil the cached one (upstream
  // connections are often closed that way when idle).
  if (SSL_SESSION* copy = SSL_SESSION_dup(session)) slot->cache->put(slot->key, copy);
  return 0;  // OpenSSL keeps its reference to `session`
}

}  // namespace turnout::proxy::tls
