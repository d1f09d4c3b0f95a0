#include "config/control_plane/api/injection_webhook_server.h"

#include <openssl/err.h>
#include <openssl/x509.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "config/control_plane/api/rest_api.h"
#include "proxy/common/log.h"
#include "proxy/tls/pem.h"

namespace turnout::control_plane {
namespace {

using proxy::admin::HttpRequest;
using proxy::admin::HttpResponse;

constexpr char kCertFlag[] = "--webhook-tls-cert-file";
constexpr char kKeyFlag[] = "--webhook-tls-key-file";

std::string_view view(beast::string_view s) { return std::string_view(s.data(), s.size()); }

absl::StatusOr<std::string> readFile(const char* flag, const std::string& path) {
  auto fail = [&](int err) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": cannot read '", path, "': ", std::strerror(err)));
  };
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(errno);
  std::string out;
  char buf[16384];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;  // EISDIR for a directory
      ::close(fd);
      return fail(err);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<proxy::tls::ReloadingServerContext>> webhookTlsContext(const std::string& cert_file,
                                                                                       const std::string& key_file) {
  // Checked here first so that errors name the flags; ServerContext::create
  // below reads them again (and so does every reload).
  auto cert_pem = readFile(kCertFlag, cert_file);
  if (!cert_pem.ok()) return cert_pem.status();
  auto key_pem = readFile(kKeyFlag, key_file);
  if (!key_pem.ok()) return key_pem.status();
  auto chain = proxy::tls::parseCertificates(*cert_pem, absl::StrCat(kCertFlag, " '", cert_file, "'"));
  if (!chain.ok()) return chain.status();
  auto key = proxy::tls::parsePrivateKey(*key_pem, absl::StrCat(kKeyFlag, " '", key_file, "'"));
  if (!key.ok()) return key.status();
  ERR_clear_error();
  if (X509_check_private_key((*chain)[0].get(), key->get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat(kKeyFlag, ": the key in '", key_file,
                                                   "' does not match the certificate in ", kCertFlag, " '",
                                                   cert_file, "'"));
  }
  envoy::extensions::transport_sockets::tls::v3::DownstreamTlsContext config;
  auto* common = config.mutable_common_tls_context();
  auto* certificate = common->add_tls_certificates();
  certificate->mutable_certificate_chain()->set_filename(cert_file);
  certificate->mutable_private_key()->set_filename(key_file);
  common->add_alpn_protocols("http/1.1");
  return proxy::tls::ReloadingServerContext::create(std::move(config), absl::StrCat(kCertFlag, "/", kKeyFlag),
                                                    proxy::tls::SecretResolver());
}

InjectionWebhook::InjectionWebhook(asio::io_context& ioc, Options options)
    : ioc_(ioc), options_(std::move(options)), reload_timer_(ioc) {}

InjectionWebhook::~InjectionWebhook() { stop(); }

absl::StatusOr<std::unique_ptr<InjectionWebhook>> InjectionWebhook::create(asio::io_context& ioc, Options options) {
  const bool has_cert = !options.tls_cert_file.empty();
  const bool has_key = !options.tls_key_file.empty();
  if (options.plaintext && (has_cert || has_key)) {
    return absl::InvalidArgumentError(absl::StrCat("--webhook-plaintext cannot be combined with ", kCertFlag,
                                                   " or ", kKeyFlag, " (it serves the webhook without TLS)"));
  }
  if (!options.plaintext) {
    if (!has_cert && !has_key) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--webhook-address needs ", kCertFlag, " and ", kKeyFlag,
          " (Kubernetes calls admission webhooks over HTTPS only); --webhook-plaintext serves it without TLS for "
          "local testing"));
    }
    if (!has_cert) return absl::InvalidArgumentError(absl::StrCat(kKeyFlag, " needs ", kCertFlag));
    if (!has_key) return absl::InvalidArgumentError(absl::StrCat(kCertFlag, " needs ", kKeyFlag));
  }
  std::unique_ptr<InjectionWebhook> webhook(new InjectionWebhook(ioc, std::move(options)));
  const Options& o = webhook->options_;
  if (!o.plaintext) {
    auto tls = webhookTlsContext(o.tls_cert_file, o.tls_key_file);
    if (!tls.ok()) return tls.status();
    webhook->tls_ = std::move(*tls);
  }
  proxy::admin::HttpService::Options http;
  http.address = o.address;
  http.port = o.port;
  http.address_path = o.address_path;
  http.max_request_body_bytes = kMaxAdmissionReviewBytes;
  http.address_name = "--webhook-address";
  http.address_path_name = "--webhook-address-path";
  http.log_component = "webhook";
  if (webhook->tls_) {
    proxy::tls::ReloadingServerContext* tls = webhook->tls_.get();
    http.tls_context = [tls] { return tls->current(); };
  }
  InjectionOptions injection = o.injection;
  auto service = proxy::admin::HttpService::create(
      ioc, std::move(http),
      [injection = std::move(injection)](const HttpRequest& request) { return handle(request, injection); },
      [](unsigned status, std::string_view message) { return errorResponse(status, message); });
  if (!service.ok()) return service.status();
  webhook->http_ = std::move(*service);
  return webhook;
}

void InjectionWebhook::start() {
  http_->start();
  if (tls_) scheduleReload();
}

void InjectionWebhook::stop() {
  if (stopped_) return;
  stopped_ = true;
  reload_timer_.cancel();
  if (http_) http_->stop();
}

void InjectionWebhook::scheduleReload() {
  reload_timer_.expires_after(options_.reload_interval);
  reload_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopped_) return;
    // Kubernetes rotates a mounted secret by swapping a symlink: the files are
    // checked (a stat, then a hash when it changed) and new connections get
    // the new certificate; a broken rotation keeps the old one serving.
    auto changed = tls_->maybeReload();
    if (!changed.ok()) {
      TURNOUT_LOG(warn, "webhook", "webhook TLS certificate reload failed, still serving the previous one: {}",
                  std::string(changed.status().message()));
    } else if (*changed) {
      TURNOUT_LOG(info, "webhook", "webhook TLS certificate reloaded from {}", options_.tls_cert_file);
    }
    scheduleReload();
  });
}

HttpResponse InjectionWebhook::handle(const HttpRequest& request, const InjectionOptions& options) {
  const std::string_view target = view(request.target());
  const std::string_view path = target.substr(0, target.find('?'));
  if (path != kInjectPath) {
    return errorResponse(404, absl::StrCat("no endpoint ", std::string(path), "; the webhook is POST ", kInjectPath));
  }
  if (request.method() != beast::http::verb::post) {
    HttpResponse r = errorResponse(405, absl::StrCat("method ", std::string(view(request.method_string())),
                                                     " is not allowed on ", kInjectPath, " (allowed: POST)"));
    r.headers.emplace_back("Allow", "POST");
    return r;
  }
  if (auto it = request.find(beast::http::field::content_type); it != request.end()) {
    const std::string_view type = view(it->value());
    const std::string media =
        absl::AsciiStrToLower(absl::StripAsciiWhitespace(std::string(type.substr(0, type.find(';')))));
    if (media != "application/json") {
      return errorResponse(415, absl::StrCat("Content-Type '", std::string(type),
                                             "' is not application/json (an AdmissionReview)"));
    }
  }
  auto answer = reviewAdmission(request.body(), options);
  if (!answer.ok()) {
    TURNOUT_LOG(debug, "webhook", "malformed AdmissionReview: {}", std::string(answer.status().message()));
    return errorResponse(answer.status());
  }
  HttpResponse r;
  r.content_type = "application/json";
  r.body = std::move(*answer);
  r.body += '\n';
  return r;
}

}  // namespace turnout::control_plane
