#pragma once

// turnout-cp's mutating admission webhook server (docs/kubernetes.md):
// `POST /inject` takes an AdmissionReview and answers with reviewAdmission()
// (injection_webhook.h). Kubernetes calls webhooks over HTTPS only, so it
// serves HTTPS (proxy::admin::HttpService with a TLS context built by the
// proxy's TLS code, proxy/tls/) from --webhook-tls-cert-file and
// --webhook-tls-key-file, re-read once a second: a rotated certificate serves
// new connections, a broken rotation is logged and the old one keeps serving.
// Plaintext only when asked for explicitly (--webhook-plaintext, local tests).
//
// Runs on the main thread's io_context, as the REST API; the handler is
// synchronous and pure.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "config/control_plane/api/injection_webhook.h"
#include "proxy/admin/http_service.h"
#include "proxy/common/asio.h"
#include "proxy/tls/reloading_server_context.h"

namespace turnout::control_plane {

// An AdmissionReview carries the Pod (object) and, for updates, the old one:
// the API server's request limit is 3 MiB (etcd's 1.5 MiB object, twice).
inline constexpr size_t kMaxAdmissionReviewBytes = 4 * 1024 * 1024;
inline constexpr char kInjectPath[] = "/inject";

class InjectionWebhook {
 public:
  struct Options {
    std::string address = "0.0.0.0";
    uint16_t port = 0;
    std::string address_path;  // --webhook-address-path: gets "HOST:PORT" once bound
    // Both, or plaintext (never both).
    std::string tls_cert_file;
    std::string tls_key_file;
    bool plaintext = false;
    InjectionOptions injection;
    std::chrono::milliseconds reload_interval{std::chrono::seconds(1)};
  };

  // Checks the certificate and key (errors name the flags), binds and
  // listens; call start() to serve.
  static absl::StatusOr<std::unique_ptr<InjectionWebhook>> create(asio::io_context& ioc, Options options);
  ~InjectionWebhook();
  InjectionWebhook(const InjectionWebhook&) = delete;
  InjectionWebhook& operator=(const InjectionWebhook&) = delete;

  void start();
  void stop();
  std::string boundAddress() const { return http_->boundAddress(); }
  bool tls() const { return tls_ != nullptr; }

  // One request: POST /inject (any query string: the API server adds
  // ?timeout=10s) with a JSON body; 400 for a malformed review, 404, 405,
  // 415. Errors are {"error": "..."} (plus "field" when one is named).
  static proxy::admin::HttpResponse handle(const proxy::admin::HttpRequest& request,
                                           const InjectionOptions& options);

 private:
  InjectionWebhook(asio::io_context& ioc, Options options);
  void scheduleReload();

  asio::io_context& ioc_;
  Options options_;
  std::unique_ptr<proxy::tls::ReloadingServerContext> tls_;
  std::unique_ptr<proxy::admin::HttpService> http_;
  SteadyTimer reload_timer_;
  bool stopped_ = false;
};

// The server TLS context from a PEM certificate chain file and a PEM private
// key file, for --webhook-tls-cert-file and --webhook-tls-key-file: an
// unreadable file, a file without a certificate or key, or a key that does
// not match the certificate is an error naming the flag.
absl::StatusOr<std::unique_ptr<proxy::tls::ReloadingServerContext>> webhookTlsContext(
    const std::string& cert_file, const std::string& key_file);

}  // namespace turnout::control_plane
