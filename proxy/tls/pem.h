#pragma once

// PEM parsing for certificates and private keys, with OpenSSL's error queue
// turned into config errors that name the field path. Main thread (config).

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "absl/status/statusor.h"

namespace turnout::proxy::tls {

struct X509Deleter {
  void operator()(X509* x) const { X509_free(x); }
};
struct EvpPkeyDeleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using X509Ptr = std::unique_ptr<X509, X509Deleter>;
using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, EvpPkeyDeleter>;

// Drains OpenSSL's thread-local error queue: "" when empty, else the reasons
// joined by "; ".
std::string drainOpensslErrors();

// Every certificate in `pem` (at least one). `field_path` names the DataSource.
absl::StatusOr<std::vector<X509Ptr>> parseCertificates(std::string_view pem,
                                                       std::string_view field_path);

// The one private key in `pem`.
absl::StatusOr<EvpPkeyPtr> parsePrivateKey(std::string_view pem, std::string_view field_path);

// The DER encoding of `cert` (for fingerprints).
std::string derOf(X509* cert);

}  // namespace turnout::proxy::tls
