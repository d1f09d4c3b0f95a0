// Config errors of the TLS contexts: every one names its field path.

#include "envoy/config/bootstrap/v3/bootstrap.pb.h"
#include "tests/unit/proxy/tls/tls_test_support.h"

namespace turnout::proxy::tls {
namespace {

namespace tls_v3 = envoy::extensions::transport_sockets::tls::v3;
using test::certYaml;
using test::fromYaml;
using test::pki;
using test::PkiFiles;

std::string serverError(const std::string& yaml, const SecretResolver& secrets = {}) {
  auto ctx = ServerContext::create(fromYaml<tls_v3::DownstreamTlsContext>(yaml), "tls", secrets);
  return ctx.status().ToString();
}

std::string clientError(const std::string& yaml, const SecretResolver& secrets = {}) {
  auto ctx = ClientContext::create(fromYaml<tls_v3::UpstreamTlsContext>(yaml), "tls", secrets);
  return ctx.status().ToString();
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

#define CHECK_ERROR(error, expected) \
  do {                               \
    const std::string e_ = (error);  \
    INFO(e_);                        \
    CHECK(contains(e_, expected));   \
  } while (0)

TEST_CASE("an unreadable certificate file names the DataSource path", "[tls][config]") {
  PkiFiles f;
  CHECK_ERROR(
      serverError("common_tls_context:\n" + certYaml(f.dir.file("missing.pem"), f.server_key)),
      "INVALID_ARGUMENT: tls.common_tls_context.tls_certificates[0].certificate_chain."
      "filename: cannot read '" +
          f.dir.file("missing.pem") + "': No such file");
  CHECK_ERROR(serverError("common_tls_context:\n" + certYaml(f.server_cert, f.dir.path())),
              "tls.common_tls_context.tls_certificates[0].private_key.filename: cannot read");
}

TEST_CASE("bad PEM names the field it came from", "[tls][config]") {
  PkiFiles f;
  std::string junk = f.dir.write("junk.pem", "not a certificate\n");
  CHECK_ERROR(serverError("common_tls_context:\n" + certYaml(junk, f.server_key)),
              "tls.common_tls_context.tls_certificates[0].certificate_chain: contains no PEM "
              "certificate");
  std::string cut = pki().server.certPem();
  cut = f.dir.write("cut.pem", cut.substr(0, 60) + "\n-----END CERTIFICATE-----\n");
  CHECK_ERROR(serverError("common_tls_context:\n" + certYaml(cut, f.server_key)),
              "tls.common_tls_context.tls_certificates[0].certificate_chain: malformed PEM");
  CHECK_ERROR(serverError("common_tls_context:\n" + certYaml(f.server_cert, junk)),
              "tls.common_tls_context.tls_certificates[0].private_key: contains no valid PEM "
              "private key");
  CHECK_ERROR(
      clientError("common_tls_context:\n  validation_context:\n    trusted_ca: {filename: \"" +
                  junk + "\"}\n"),
      "tls.common_tls_context.validation_context.trusted_ca: contains no PEM certificate");
}

TEST_CASE("a private key that does not match the certificate is refused", "[tls][config]") {
  PkiFiles f;
  CHECK_ERROR(serverError("common_tls_context:\n" + certYaml(f.server_cert, f.client_key)),
              "tls.common_tls_context.tls_certificates[0].private_key: does not match the "
              "certificate in certificate_chain");
  CHECK_ERROR(clientError("common_tls_context:\n" + certYaml(f.client_cert, f.server_key)),
              "tls.common_tls_context.tls_certificates[0].private_key: does not match");
}

TEST_CASE("an unknown cipher or curve names its index", "[tls][config]") {
  PkiFiles f;
  CHECK_ERROR(
      serverError("common_tls_context:\n" + certYaml(f.server_cert, f.server_key) +
                  "    tls_params: {cipher_suites: [ECDHE-RSA-AES128-GCM-SHA256, NOPE-CIPHER]}\n"),
      "tls.common_tls_context.tls_params.cipher_suites[1]: unknown cipher suite "
      "'NOPE-CIPHER'");
  CHECK_ERROR(
      clientError("common_tls_context:\n  tls_params: {cipher_suites: ['[AES128-SHA|BOGUS]']}\n"),
      "tls.common_tls_context.tls_params.cipher_suites[0]: unknown cipher suite 'BOGUS'");
  CHECK_ERROR(clientError("common_tls_context:\n  tls_params: {ecdh_curves: [X25519, P-999]}\n"),
              "tls.common_tls_context.tls_params.ecdh_curves[1]: unknown ECDH curve 'P-999'");
}

TEST_CASE("a minimum TLS version above the maximum is refused", "[tls][config]") {
  PkiFiles f;
  CHECK_ERROR(serverError("common_tls_context:\n" + certYaml(f.server_cert, f.server_key) +
                          "    tls_params: {tls_minimum_protocol_version: TLSv1_3, "
                          "tls_maximum_protocol_version: TLSv1_2}\n"),
              "tls.common_tls_context.tls_params.tls_minimum_protocol_version: TLSv1_3 is above "
              "the maximum version TLSv1_2");
  // The client's default maximum is TLS 1.2 (Envoy).
  CHECK_ERROR(
      clientError("common_tls_context:\n  tls_params: {tls_minimum_protocol_version: TLSv1_3}\n"),
      "TLSv1_3 is above the maximum version TLSv1_2 (the default)");
  CHECK_ERROR(
      clientError("common_tls_context:\n  tls_params: {tls_minimum_protocol_version: TLSv1_0}\n"),
      "tls.common_tls_context.tls_params.tls_minimum_protocol_version: TLS 1.0 and 1.1 "
      "are not supported");
}

TEST_CASE("a bad SAN regex names the matcher", "[tls][config]") {
  PkiFiles f;
  CHECK_ERROR(
      clientError("common_tls_context:\n  validation_context:\n    trusted_ca: {filename: \"" +
                  f.ca +
                  "\"}\n    match_typed_subject_alt_names:\n"
                  "    - {san_type: DNS, matcher: {exact: a}}\n"
                  "    - {san_type: URI, matcher: {safe_regex: {regex: 'a(('}}}\n"),
      "tls.common_tls_context.validation_context.match_typed_subject_alt_names[1]."
      "matcher.safe_regex");
  CHECK_ERROR(
      clientError("common_tls_context:\n  validation_context:\n    trusted_ca: {filename: \"" +
                  f.ca + "\"}\n    match_subject_alt_names: [{safe_regex: {regex: '[z-a]'}}]\n"),
      "tls.common_tls_context.validation_context.match_subject_alt_names[0].safe_regex");
}

TEST_CASE("fields turnout does not honour are refused with their path", "[tls][config]") {
  PkiFiles f;
  const std::string cert = certYaml(f.server_cert, f.server_key);
  CHECK_ERROR(serverError("require_sni: true\ncommon_tls_context:\n" + cert),
              "tls.require_sni: require_sni is not supported by turnout yet");
  CHECK_ERROR(serverError("ocsp_staple_policy: MUST_STAPLE\ncommon_tls_context:\n" + cert),
              "tls.ocsp_staple_policy: OCSP stapling is not supported");
  CHECK_ERROR(
      serverError("session_ticket_keys: {keys: [{inline_string: abc}]}\ncommon_tls_context:\n" +
                  cert),
      "tls.session_ticket_keys: configured session ticket keys are not supported");
  CHECK_ERROR(clientError("allow_renegotiation: true\n"),
              "tls.allow_renegotiation: TLS renegotiation is not supported by turnout");
  CHECK_ERROR(clientError("common_tls_context:\n  tls_params: {signature_algorithms: [ed25519]}\n"),
              "tls.common_tls_context.tls_params.signature_algorithms: signature_algorithms is "
              "not supported");
  CHECK_ERROR(clientError("common_tls_context:\n  key_log: {path: /tmp/keys}\n"),
              "tls.common_tls_context.key_log: TLS key logging is not supported");
  CHECK_ERROR(
      clientError("common_tls_context:\n  validation_context:\n    trusted_ca: {filename: \"" +
                  f.ca + "\"}\n    verify_certificate_hash: ['" + std::string(64, 'a') + "']\n"),
      "tls.common_tls_context.validation_context.verify_certificate_hash: certificate "
      "pinning (verify_certificate_hash) is not supported");
  CHECK_ERROR(
      clientError("common_tls_context:\n  validation_context:\n    trusted_ca: {filename: \"" +
                  f.ca + "\"}\n    allow_expired_certificate: true\n"),
      "tls.common_tls_context.validation_context.allow_expired_certificate:");
  CHECK_ERROR(
      clientError("common_tls_context:\n  validation_context:\n    trusted_ca: {filename: \"" +
                  f.ca +
                  "\"}\n    match_typed_subject_alt_names:\n"
                  "    - {san_type: OTHER_NAME, oid: '1.2.3', matcher: {exact: a}}\n"),
      "tls.common_tls_context.validation_context.match_typed_subject_alt_names[0].oid: "
      "OTHER_NAME SAN matching is not supported");
  CHECK_ERROR(clientError("common_tls_context:\n  combined_validation_context: {}\n"),
              "tls.common_tls_context.combined_validation_context: combined_validation_context "
              "is not supported");
  CHECK_ERROR(
      clientError("common_tls_context:\n  tls_certificates:\n  - password: {inline_string: x}\n"),
      "tls.common_tls_context.tls_certificates[0].password: encrypted private keys");
  CHECK(checkTlsContextFields(fromYaml<tls_v3::UpstreamTlsContext>("sni: a\nmax_session_keys: 2\n"),
                              "x")
            .ok());
}

TEST_CASE("sds_config pointing at a server is refused with its path", "[tls][config]") {
  CHECK_ERROR(clientError("common_tls_context:\n  tls_certificate_sds_secret_configs:\n"
                          "  - name: cert\n    sds_config: {ads: {}}\n"),
              "tls.common_tls_context.tls_certificate_sds_secret_configs[0].sds_config: SDS from "
              "a server is not supported by turnout");
  CHECK_ERROR(clientError("common_tls_context:\n  validation_context_sds_secret_config:\n"
                          "    name: ca\n    sds_config: {path_config_source: {path: /x}}\n"),
              "tls.common_tls_context.validation_context_sds_secret_config.sds_config: SDS from");
}

TEST_CASE("a reference to an unknown static secret names it", "[tls][config]") {
  PkiFiles f;
  CHECK_ERROR(
      serverError("common_tls_context:\n  tls_certificate_sds_secret_configs: [{name: nope}]\n"),
      "tls.common_tls_context.tls_certificate_sds_secret_configs[0].name: no static secret "
      "'nope' with a tls_certificate");
  auto bootstrap = fromYaml<envoy::config::bootstrap::v3::Bootstrap>(
      "static_resources:\n  secrets:\n  - name: ca\n    validation_context:\n"
      "      trusted_ca: {filename: \"" +
      f.dir.file("gone.pem") + "\"}\n");
  auto secrets =
      SecretResolver::create(bootstrap.static_resources().secrets(), "static_resources.secrets");
  REQUIRE(secrets.ok());
  // A secret's own errors name the secret's path.
  CHECK_ERROR(
      clientError("common_tls_context:\n  validation_context_sds_secret_config: {name: ca}\n",
                  *secrets),
      "static_resources.secrets[0].validation_context.trusted_ca.filename: cannot read");
  CHECK_ERROR(
      clientError("common_tls_context:\n  tls_certificate_sds_secret_configs: [{name: ca}]\n",
                  *secrets),
      "no static secret 'ca' with a tls_certificate");
}

TEST_CASE("static secrets are checked when the resolver is built", "[tls][config]") {
  auto make = [](const std::string& yaml) {
    auto b = fromYaml<envoy::config::bootstrap::v3::Bootstrap>(yaml);
    return SecretResolver::create(b.static_resources().secrets(), "static_resources.secrets")
        .status()
        .ToString();
  };
  CHECK_ERROR(make("static_resources:\n  secrets:\n  - {name: a, validation_context: {trusted_ca: "
                   "{inline_string: x}}}\n"
                   "  - {name: a, validation_context: {trusted_ca: {inline_string: 'y'}}}\n"),
              "static_resources.secrets[1].name: duplicate secret name 'a' (first at "
              "static_resources.secrets[0])");
  CHECK_ERROR(make("static_resources:\n  secrets:\n  - {name: k, generic_secret: {secret: "
                   "{inline_string: x}}}\n"),
              "static_resources.secrets[0].generic_secret: generic secrets are not supported");
  CHECK_ERROR(make("static_resources:\n  secrets:\n  - {validation_context: {trusted_ca: "
                   "{inline_string: x}}}\n"),
              "static_resources.secrets[0].name: a static secret needs a name");
}

TEST_CASE("context shapes turnout cannot serve are refused", "[tls][config]") {
  PkiFiles f;
  CHECK_ERROR(
      serverError("common_tls_context: {alpn_protocols: [h2]}\n"),
      "tls.common_tls_context.tls_certificates: a server TLS context needs one certificate");
  CHECK_ERROR(serverError("common_tls_context:\n" + certYaml(f.server_cert, f.server_key) +
                          "    - certificate_chain: {filename: \"" + f.client_cert +
                          "\"}\n      private_key: {filename: \"" + f.client_key + "\"}\n"),
              "tls.common_tls_context.tls_certificates[1]: more than one TLS certificate");
  CHECK_ERROR(serverError("require_client_certificate: true\ncommon_tls_context:\n" +
                          certYaml(f.server_cert, f.server_key)),
              "tls.require_client_certificate: needs common_tls_context.validation_context");
  CHECK_ERROR(clientError("common_tls_context:\n  alpn_protocols: [h2, '']\n"),
              "tls.common_tls_context.alpn_protocols[1]: an ALPN protocol name is 1 to 255 bytes");
  CHECK_ERROR(
      clientError(
          "common_tls_context:\n  validation_context: {match_subject_alt_names: [{exact: a}]}\n"),
      "tls.common_tls_context.validation_context.trusted_ca: is required");
  CHECK_ERROR(serverError("common_tls_context:\n  tls_certificates:\n  - certificate_chain: "
                          "{environment_variable: TURNOUT_TEST_UNSET_VAR}\n"
                          "    private_key: {inline_string: x}\n"),
              "tls.common_tls_context.tls_certificates[0].certificate_chain.environment_variable: "
              "environment variable 'TURNOUT_TEST_UNSET_VAR' is not set");
  CHECK_ERROR(serverError("session_timeout: 0.5s\ncommon_tls_context:\n" +
                          certYaml(f.server_cert, f.server_key)),
              "tls.session_timeout: must be at least one second");
}

}  // namespace
}  // namespace turnout::proxy::tls
