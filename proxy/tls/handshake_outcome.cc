#include "proxy/tls/handshake_outcome.h"

#include <openssl/err.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>
#include <openssl/x509_vfy.h>

#include <boost/asio/ssl/error.hpp>

#include "absl/strings/str_cat.h"

namespace turnout::proxy::tls {
namespace {

// BoringSSL's SSL_get_curve_name spelling, which Envoy's ssl.curves.* use.
std::string curveName(int nid) {
  switch (nid) {
    case 0:
      return "";
    case NID_X25519:
      return "X25519";
    case NID_X448:
      return "X448";
    case NID_X9_62_prime256v1:
      return "P-256";
    case NID_secp384r1:
      return "P-384";
    case NID_secp521r1:
      return "P-521";
    default: {
      const char* sn = OBJ_nid2sn(nid);
      return sn != nullptr ? sn : "";
    }
  }
}

}  // namespace

std::string_view statName(HandshakeOutcome outcome) {
  switch (outcome) {
    case HandshakeOutcome::Success:
      return "ssl.handshake";
    case HandshakeOutcome::ConnectionError:
      return "ssl.connection_error";
    case HandshakeOutcome::FailVerifyError:
      return "ssl.fail_verify_error";
    case HandshakeOutcome::FailVerifySan:
      return "ssl.fail_verify_san";
    case HandshakeOutcome::FailVerifyNoCert:
      return "ssl.fail_verify_no_cert";
    case HandshakeOutcome::FailVerifyCertHash:
      return "ssl.fail_verify_cert_hash";
  }
  return "ssl.connection_error";
}

HandshakeOutcome classifyHandshake(const SSL* ssl, const boost::system::error_code& ec) {
  if (!ec) return HandshakeOutcome::Success;
  if (ssl != nullptr) {
    const long verify = SSL_get_verify_result(ssl);
    // cert_validator.cc marks a SAN mismatch with this code.
    if (verify == X509_V_ERR_APPLICATION_VERIFICATION) return HandshakeOutcome::FailVerifySan;
    if (verify != X509_V_OK) return HandshakeOutcome::FailVerifyError;
  }
  if (ec.category() == boost::asio::error::get_ssl_category() &&
      ERR_GET_REASON(static_cast<unsigned long>(ec.value())) ==
          SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
    return HandshakeOutcome::FailVerifyNoCert;
  }
  return HandshakeOutcome::ConnectionError;
}

HandshakeInfo describeHandshake(const SSL* ssl, const boost::system::error_code& ec) {
  HandshakeInfo info;
  info.outcome = classifyHandshake(ssl, ec);
  if (info.outcome != HandshakeOutcome::Success || ssl == nullptr) return info;
  info.version = SSL_get_version(ssl);
  if (const SSL_CIPHER* c = SSL_get_current_cipher(ssl)) info.cipher = SSL_CIPHER_get_name(c);
  const unsigned char* alpn = nullptr;
  unsigned int alpn_len = 0;
  SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
  if (alpn != nullptr) info.alpn.assign(reinterpret_cast<const char*>(alpn), alpn_len);
  info.curve = curveName(SSL_get_negotiated_group(const_cast<SSL*>(ssl)));
  info.session_reused = SSL_session_reused(const_cast<SSL*>(ssl)) == 1;
  info.peer_certificate = SSL_get0_peer_certificate(ssl) != nullptr;
  return info;
}

std::vector<std::string> handshakeCounters(const HandshakeInfo& info) {
  std::vector<std::string> out{std::string(statName(info.outcome))};
  if (info.outcome != HandshakeOutcome::Success) return out;
  if (!info.version.empty()) out.push_back(absl::StrCat("ssl.versions.", info.version));
  if (!info.cipher.empty()) out.push_back(absl::StrCat("ssl.ciphers.", info.cipher));
  if (info.session_reused) out.emplace_back("ssl.session_reused");
  if (!info.curve.empty()) out.push_back(absl::StrCat("ssl.curves.", info.curve));
  if (!info.peer_certificate) out.emplace_back("ssl.no_certificate");
  return out;
}

}  // namespace turnout::proxy::tls
