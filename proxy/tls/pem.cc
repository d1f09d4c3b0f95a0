#include "proxy/tls/pem.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "absl/strings/str_cat.h"
#include "proxy/tls/tls_field_path.h"

namespace turnout::proxy::tls {
namespace {

struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
using BioPtr = std::unique_ptr<BIO, BioDeleter>;

BioPtr memoryBio(std::string_view data) {
  return BioPtr(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

absl::Status invalid(std::string_view path, std::string_view what) {
  std::string detail = drainOpensslErrors();
  return absl::InvalidArgumentError(atPath(
      path, detail.empty() ? std::string(what) : absl::StrCat(asAbsl(what), " (", detail, ")")));
}

}  // namespace

std::string drainOpensslErrors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

absl::StatusOr<std::vector<X509Ptr>> parseCertificates(std::string_view pem,
                                                       std::string_view field_path) {
  ERR_clear_error();
  BioPtr bio = memoryBio(pem);
  std::vector<X509Ptr> certs;
  while (X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    certs.emplace_back(x);
  }
  // The loop ends with PEM_R_NO_START_LINE at the end of input; anything else
  // is a malformed certificate.
  unsigned long err = ERR_peek_last_error();
  if (err != 0 &&
      !(ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE)) {
    return invalid(field_path, "malformed PEM certificate");
  }
  ERR_clear_error();
  if (certs.empty()) {
    return absl::InvalidArgumentError(atPath(field_path, "contains no PEM certificate"));
  }
  return certs;
}

absl::StatusOr<EvpPkeyPtr> parsePrivateKey(std::string_view pem, std::string_view field_path) {
  ERR_clear_error();
  BioPtr bio = memoryBio(pem);
  // An empty passphrase: an encrypted key fails instead of prompting on a tty.
  static char kNoPassphrase[] = "";
  EvpPkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, kNoPassphrase));
  if (!key) return invalid(field_path, "contains no valid PEM private key");
  ERR_clear_error();
  return key;
}

std::string derOf(X509* cert) {
  unsigned char* der = nullptr;
  int len = i2d_X509(cert, &der);
  if (len <= 0) return "";
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

}  // namespace turnout::proxy::tls
