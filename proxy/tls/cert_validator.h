#pragma once

// Peer certificate validation for both legs (Envoy's DefaultCertValidator):
// the chain is verified against validation_context.trusted_ca, then the leaf's
// subject alternative names against match_typed_subject_alt_names (or the
// deprecated match_subject_alt_names). A SAN mismatch is recorded as the
// verify result X509_V_ERR_APPLICATION_VERIFICATION so that the handshake
// classification (handshake_outcome.h) can tell fail_verify_san from
// fail_verify_error.
//
// Built by the context factories on the main thread; immutable afterwards and
// read by OpenSSL's verify callback on any worker thread.

#include <string>
#include <string_view>
#include <vector>

#include <openssl/ssl.h>

#include "absl/status/statusor.h"
#include "envoy/extensions/transport_sockets/tls/v3/common.pb.h"
#include "proxy/tls/pem.h"
#include "routing/route_matcher.h"

namespace turnout::proxy::tls {

namespace tls_v3 = envoy::extensions::transport_sockets::tls::v3;

// Envoy's Utility::dnsNameMatch: `dns_name` (from a DNS SAN) equals
// `expected`, or is `*.rest` where `rest` is `expected` minus its first label.
// Case-insensitive.
bool dnsNameMatch(std::string_view expected, std::string_view dns_name);

// One compiled SubjectAltNameMatcher.
struct SanMatcher {
  int general_name_type = 0;  // GEN_DNS, GEN_URI, GEN_EMAIL, GEN_IPADD
  routing::StringMatch matcher;
  bool matches(std::string_view san) const;
};

class CertValidator {
 public:
  // `validation` is the validation context (inline or from a static secret),
  // `field_path` its path. Reads trusted_ca; `files` gets any file it reads.
  static absl::StatusOr<CertValidator> create(
      const tls_v3::CertificateValidationContext& validation, std::string_view field_path,
      std::vector<std::string>* files);

  // Installs the trust store and the verify callback on `ctx`, with
  // SSL_VERIFY_PEER (| FAIL_IF_NO_PEER_CERT when `require_peer_certificate`).
  // `*this` must outlive `ctx`.
  void install(SSL_CTX* ctx, bool require_peer_certificate) const;

  // Whether the leaf's SANs satisfy the matchers (true when there are none).
  bool sanMatches(X509* leaf) const;

  bool hasSanMatchers() const { return !san_matchers_.empty(); }
  // DER of the trusted CAs, for the session id context.
  const std::string& fingerprintInput() const { return fingerprint_input_; }

 private:
  static int verifyCallback(X509_STORE_CTX* store_ctx, void* arg);

  std::vector<X509Ptr> trusted_;
  std::vector<SanMatcher> san_matchers_;
  std::string fingerprint_input_;
};

}  // namespace turnout::proxy::tls
