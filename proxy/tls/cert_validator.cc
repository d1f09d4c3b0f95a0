#include "proxy/tls/cert_validator.h"

#include <arpa/inet.h>
#include <openssl/x509v3.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "proxy/tls/data_source.h"
#include "proxy/tls/tls_field_path.h"

namespace turnout::proxy::tls {
namespace {

namespace matcher_v3 = envoy::type::matcher::v3;

absl::Status invalid(std::string_view path, std::string_view what) {
  return absl::InvalidArgumentError(atPath(path, what));
}

absl::StatusOr<routing::StringMatch> compileMatcher(const matcher_v3::StringMatcher& p,
                                                    const std::string& path) {
  routing::StringMatcher m;
  m.ignore_case = p.ignore_case();
  switch (p.match_pattern_case()) {
    case matcher_v3::StringMatcher::kExact:
      m.exact = p.exact();
      break;
    case matcher_v3::StringMatcher::kPrefix:
      m.prefix = p.prefix();
      break;
    case matcher_v3::StringMatcher::kSuffix:
      m.suffix = p.suffix();
      break;
    case matcher_v3::StringMatcher::kContains:
      m.contains = p.contains();
      break;
    case matcher_v3::StringMatcher::kSafeRegex:
      m.safe_regex = routing::RegexMatcher{p.safe_regex().regex()};
      break;
    default:
      return invalid(path, "a match pattern is required");
  }
  return routing::StringMatch::compile(m, path);
}

// The text of a GENERAL_NAME of the matcher's kind: the IA5 string of DNS,
// URI and EMAIL names, the dotted or colon form of an IP address.
bool generalNameText(const GENERAL_NAME* name, std::string& out) {
  switch (name->type) {
    case GEN_DNS:
    case GEN_URI:
    case GEN_EMAIL: {
      const ASN1_IA5STRING* s = name->d.ia5;
      out.assign(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                 static_cast<size_t>(ASN1_STRING_length(s)));
      return true;
    }
    case GEN_IPADD: {
      const ASN1_OCTET_STRING* ip = name->d.iPAddress;
      char buf[INET6_ADDRSTRLEN] = {};
      int len = ASN1_STRING_length(ip);
      const unsigned char* data = ASN1_STRING_get0_data(ip);
      if (len == 4 && inet_ntop(AF_INET, data, buf, sizeof(buf)) != nullptr) {
        out = buf;
        return true;
      }
      if (len == 16 && inet_ntop(AF_INET6, data, buf, sizeof(buf)) != nullptr) {
        out = buf;
        return true;
      }
      return false;
    }
    default:
      return false;
  }
}

}  // namespace

bool dnsNameMatch(std::string_view expected, std::string_view dns_name) {
  if (absl::EqualsIgnoreCase(asAbsl(expected), asAbsl(dns_name))) return true;
  // A wildcard covers exactly one leftmost label.
  if (dns_name.size() > 2 && dns_name.substr(0, 2) == "*.") {
    size_t dot = expected.find('.');
    if (dot == std::string_view::npos || dot == 0) return false;
    return absl::EqualsIgnoreCase(asAbsl(expected.substr(dot)), asAbsl(dns_name.substr(1)));
  }
  return false;
}

bool SanMatcher::matches(std::string_view san) const {
  // Envoy: an exact DNS matcher follows DNS wildcard semantics.
  if (general_name_type == GEN_DNS && matcher.kind() == routing::StringMatch::Kind::Exact) {
    return dnsNameMatch(matcher.value(), san);
  }
  return matcher.match(san);
}

absl::StatusOr<CertValidator> CertValidator::create(
    const tls_v3::CertificateValidationContext& validation, std::string_view field_path,
    std::vector<std::string>* files) {
  CertValidator v;
  if (!validation.has_trusted_ca()) {
    return invalid(fieldPath(field_path, "trusted_ca"),
                   "is required: turnout verifies peer certificates against trusted_ca only");
  }
  const std::string ca_path = fieldPath(field_path, "trusted_ca");
  auto pem = readDataSource(validation.trusted_ca(), ca_path, files);
  if (!pem.ok()) return pem.status();
  auto certs = parseCertificates(*pem, ca_path);
  if (!certs.ok()) return certs.status();
  v.trusted_ = *std::move(certs);
  for (const X509Ptr& c : v.trusted_) v.fingerprint_input_ += derOf(c.get());

  const std::string typed_path = fieldPath(field_path, "match_typed_subject_alt_names");
  for (int i = 0; i < validation.match_typed_subject_alt_names_size(); ++i) {
    const auto& m = validation.match_typed_subject_alt_names(i);
    const std::string path = indexPath(typed_path, static_cast<size_t>(i));
    int type = 0;
    switch (m.san_type()) {
      case tls_v3::SubjectAltNameMatcher::DNS:
        type = GEN_DNS;
        break;
      case tls_v3::SubjectAltNameMatcher::URI:
        type = GEN_URI;
        break;
      case tls_v3::SubjectAltNameMatcher::EMAIL:
        type = GEN_EMAIL;
        break;
      case tls_v3::SubjectAltNameMatcher::IP_ADDRESS:
        type = GEN_IPADD;
        break;
      default:
        return invalid(fieldPath(path, "san_type"),
                       "only DNS, URI, EMAIL and IP_ADDRESS are supported by turnout");
    }
    auto compiled = compileMatcher(m.matcher(), fieldPath(path, "matcher"));
    if (!compiled.ok()) return compiled.status();
    v.san_matchers_.push_back(SanMatcher{type, *std::move(compiled)});
    v.fingerprint_input_ += m.SerializeAsString();
  }
  // The deprecated form matches the same string against every SAN type.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  const std::string legacy_path = fieldPath(field_path, "match_subject_alt_names");
  for (int i = 0; i < validation.match_subject_alt_names_size(); ++i) {
    const std::string path = indexPath(legacy_path, static_cast<size_t>(i));
    for (int type : {GEN_DNS, GEN_URI, GEN_EMAIL, GEN_IPADD}) {
      auto compiled = compileMatcher(validation.match_subject_alt_names(i), path);
      if (!compiled.ok()) return compiled.status();
      v.san_matchers_.push_back(SanMatcher{type, *std::move(compiled)});
    }
    v.fingerprint_input_ += validation.match_subject_alt_names(i).SerializeAsString();
  }
#pragma GCC diagnostic pop
  return v;
}

void CertValidator::install(SSL_CTX* ctx, bool require_peer_certificate) const {
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  for (const X509Ptr& c : trusted_) X509_STORE_add_cert(store, c.get());
  SSL_CTX_set_verify(
      ctx, SSL_VERIFY_PEER | (require_peer_certificate ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
      nullptr);
  SSL_CTX_set_cert_verify_callback(ctx, &CertValidator::verifyCallback,
                                   const_cast<CertValidator*>(this));
}

bool CertValidator::sanMatches(X509* leaf) const {
  if (san_matchers_.empty()) return true;
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(leaf, NID_subject_alt_name, nullptr, nullptr));
  if (names == nullptr) return false;
  bool matched = false;
  std::string text;
  for (int i = 0; i < sk_GENERAL_NAME_num(names) && !matched; ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
    if (!generalNameText(name, text)) continue;
    for (const SanMatcher& m : san_matchers_) {
      if (m.general_name_type == name->type && m.matches(text)) {
        matched = true;
        break;
      }
    }
  }
  GENERAL_NAMES_free(names);
  return matched;
}

int CertValidator::verifyCallback(X509_STORE_CTX* store_ctx, void* arg) {
  const auto* self = static_cast<const CertValidator*>(arg);
  if (X509_verify_cert(store_ctx) <= 0) return 0;
  X509* leaf = X509_STORE_CTX_get0_cert(store_ctx);
  if (leaf == nullptr || !self->sanMatches(leaf)) {
    // SSL_get_verify_result reports this code: fail_verify_san.
    X509_STORE_CTX_set_error(store_ctx, X509_V_ERR_APPLICATION_VERIFICATION);
    return 0;
  }
  return 1;
}

}  // namespace turnout::proxy::tls
