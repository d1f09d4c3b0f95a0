#pragma once

// Classifies a finished TLS handshake into Envoy's ssl.* counters
// (source/common/tls/context_impl.h ALL_SSL_STATS; docs
// configuration/listeners/stats "TLS statistics"): the listener's
// (downstream) or the cluster's (upstream) scope prefixes them. Pure apart
// from reading `ssl`; call on the connection's worker right after
// async_handshake completes.

#include <string>
#include <string_view>
#include <vector>

#include <openssl/ssl.h>

#include <boost/system/error_code.hpp>

namespace turnout::proxy::tls {

enum class HandshakeOutcome : uint8_t {
  Success,             // ssl.handshake
  ConnectionError,     // ssl.connection_error: any failure but a verification one
  FailVerifyError,     // ssl.fail_verify_error: the chain did not verify (CA, expiry)
  FailVerifySan,       // ssl.fail_verify_san: no SAN matched the configured matchers
  FailVerifyNoCert,    // ssl.fail_verify_no_cert: a required client certificate was absent
  FailVerifyCertHash,  // ssl.fail_verify_cert_hash: never produced (verify_certificate_hash is
                       // rejected)
};

// "ssl.handshake", "ssl.connection_error", ...
std::string_view statName(HandshakeOutcome outcome);

// `ec` is the handshake's result; `ssl` its connection.
HandshakeOutcome classifyHandshake(const SSL* ssl, const boost::system::error_code& ec);

struct HandshakeInfo {
  HandshakeOutcome outcome = HandshakeOutcome::ConnectionError;
  std::string version;  // "TLSv1.3" (SSL_get_version), on success
  std::string cipher;   // "TLS_AES_128_GCM_SHA256" (SSL_CIPHER_get_name), on success
  std::string curve;    // "X25519", "P-256" (BoringSSL's names, as Envoy reports them)
  std::string alpn;     // the negotiated protocol, "" when none
  bool session_reused = false;
  bool peer_certificate = false;  // the peer presented a certificate
};

HandshakeInfo describeHandshake(const SSL* ssl, const boost::system::error_code& ec);

// The counters to increment for `info`, without the scope prefix: the
// outcome's, and on success ssl.versions.<version>, ssl.ciphers.<cipher>,
// ssl.curves.<curve>, ssl.session_reused when resumed, and ssl.no_certificate
// when the peer sent no certificate (Envoy's ContextImpl::logHandshake; in
// practice a server's client without one).
std::vector<std::string> handshakeCounters(const HandshakeInfo& info);

}  // namespace turnout::proxy::tls
