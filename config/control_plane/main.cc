// turnout-cp: the control plane. `turnout-cp serve` runs the REST/JSON API (and
// the ADS server) on one io_context over the SQLite store (--data-dir) or etcd
// (--store etcd://, shared by several replicas); every other command is the
// CLI (cli/cli.h), a client of that API.

#include <csignal>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "config/control_plane/api/injection_webhook_server.h"
#include "config/control_plane/api/rest_api.h"
#include "config/control_plane/cli/cli.h"
#include "config/control_plane/etcd_store.h"
#include "config/control_plane/sqlite_store.h"
#include "proxy/common/asio.h"
#include "config/control_plane/server/ads_server.h"
#include "proxy/common/log.h"

namespace turnout::control_plane {
namespace {

struct HostPort {
  std::string host;
  uint16_t port = 0;
};

// How long `serve` waits for etcd to answer at start.
constexpr absl::Duration kEtcdStartWait = absl::Seconds(10);

struct ServeOptions {
  std::string data_dir = "./turnout-cp-data";
  bool data_dir_given = false;
  std::optional<EtcdEndpoint> etcd;  // --store etcd://
  HostPort xds_address{"127.0.0.1", 18000};
  HostPort http_address{"127.0.0.1", 18080};
  std::string http_address_path;
  std::string xds_address_path;  // gets the ADS server's bound "127.0.0.1:PORT"
  std::string log_level = "info";
  // The admission webhook (off without --webhook-address).
  std::optional<HostPort> webhook_address;
  std::string webhook_address_path;
  std::string webhook_tls_cert_file;
  std::string webhook_tls_key_file;
  bool webhook_plaintext = false;
  bool vhds = true;  // --no-vhds
  InjectionOptions injection;
  bool injection_given = false;  // an --inject-* flag
};

// "HOST:PORT" or "[V6]:PORT"; port 0 picks a free one.
absl::StatusOr<HostPort> parseHostPort(const std::string& flag, const std::string& text) {
  auto bad = [&] {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": '", text, "' is not HOST:PORT (e.g. 127.0.0.1:18080)"));
  };
  const size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) return bad();
  std::string host = text.substr(0, colon);
  if (host.front() == '[') {
    if (host.back() != ']' || host.size() < 3) return bad();
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string::npos) {
    return bad();  // IPv6 needs brackets
  }
  uint32_t port = 0;
  if (!absl::SimpleAtoi(text.substr(colon + 1), &port) || port > 65535) return bad();
  return HostPort{std::move(host), static_cast<uint16_t>(port)};
}

absl::StatusOr<ServeOptions> parseServeOptions(const std::vector<std::string>& args) {
  ServeOptions o;
  for (size_t i = 1; i < args.size(); ++i) {
    std::string flag = args[i];
    if (flag == "-h" || flag == "--help") {
      return absl::CancelledError(
          absl::StrCat(cli::usage(), "\nserve's admission webhook (docs/kubernetes.md):\n", injectionFlagsUsage()));
    }
    if (flag == "--webhook-plaintext") {  // the flags without a value
      o.webhook_plaintext = true;
      continue;
    }
    if (flag == "--no-vhds") {
      o.vhds = false;
      continue;
    }
    std::string value;
    if (const size_t eq = flag.find('='); eq != std::string::npos && flag.substr(0, 2) == "--") {
      value = flag.substr(eq + 1);
      flag.resize(eq);
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      return absl::InvalidArgumentError(absl::StrCat(flag, " needs a value"));
    }
    if (flag == "--data-dir") {
      if (value.empty()) return absl::InvalidArgumentError("--data-dir: empty");
      o.data_dir = value;
      o.data_dir_given = true;
    } else if (flag == "--store") {
      if (value.substr(0, 7) != "etcd://") {
        return absl::InvalidArgumentError(absl::StrCat(
            "--store '", value, "': unknown store (only etcd://HOST:PORT[/PREFIX]; for the embedded SQLite store "
            "use --data-dir)"));
      }
      auto endpoint = parseEtcdUrl(value);
      if (!endpoint.ok()) return endpoint.status();
      o.etcd = *endpoint;
    } else if (flag == "--xds-address") {
      auto a = parseHostPort(flag, value);
      if (!a.ok()) return a.status();
      o.xds_address = *a;
    } else if (flag == "--http-address") {
      auto a = parseHostPort(flag, value);
      if (!a.ok()) return a.status();
      o.http_address = *a;
    } else if (flag == "--http-address-path") {
      o.http_address_path = value;
    } else if (flag == "--xds-address-path") {
      o.xds_address_path = value;
    } else if (flag == "--log-level") {
      o.log_level = value;
    } else if (flag == "--webhook-plaintext") {
      return absl::InvalidArgumentError("--webhook-plaintext takes no value");
    } else if (flag == "--webhook-address") {
      auto a = parseHostPort(flag, value);
      if (!a.ok()) return a.status();
      o.webhook_address = *a;
    } else if (flag == "--webhook-address-path") {
      o.webhook_address_path = value;
    } else if (flag == "--webhook-tls-cert-file" || flag == "--webhook-tls-key-file") {
      if (value.empty()) return absl::InvalidArgumentError(absl::StrCat(flag, ": empty"));
      (flag == "--webhook-tls-cert-file" ? o.webhook_tls_cert_file : o.webhook_tls_key_file) = value;
    } else if (auto injection = setInjectionFlag(o.injection, flag, value); !injection.ok()) {
      return injection.status();
    } else if (*injection) {
      o.injection_given = true;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("serve: unknown flag ", flag));
    }
  }
  if (!o.webhook_address) {
    // Webhook flags without the webhook would be silently ignored.
    const char* orphan = !o.webhook_tls_cert_file.empty()  ? "--webhook-tls-cert-file"
                         : !o.webhook_tls_key_file.empty() ? "--webhook-tls-key-file"
                         : o.webhook_plaintext             ? "--webhook-plaintext"
                         : !o.webhook_address_path.empty() ? "--webhook-address-path"
                         : o.injection_given               ? "--inject-*"
                                                           : nullptr;
    if (orphan != nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(orphan, " needs --webhook-address (the admission webhook)"));
    }
  } else {
    const bool cert = !o.webhook_tls_cert_file.empty();
    const bool key = !o.webhook_tls_key_file.empty();
    if (o.webhook_plaintext && (cert || key)) {
      return absl::InvalidArgumentError(
          "--webhook-plaintext cannot be combined with --webhook-tls-cert-file or --webhook-tls-key-file (it "
          "serves the webhook without TLS)");
    }
    if (!o.webhook_plaintext && !cert && !key) {
      return absl::InvalidArgumentError(
          "--webhook-address needs --webhook-tls-cert-file and --webhook-tls-key-file (Kubernetes calls admission "
          "webhooks over HTTPS only); --webhook-plaintext serves it without TLS for local testing");
    }
    if (cert && !key) return absl::InvalidArgumentError("--webhook-tls-cert-file needs --webhook-tls-key-file");
    if (key && !cert) return absl::InvalidArgumentError("--webhook-tls-key-file needs --webhook-tls-cert-file");
  }
  if (o.etcd && o.data_dir_given) {
    return absl::InvalidArgumentError(
        "--store and --data-dir are mutually exclusive: --store etcd:// keeps the state in etcd, --data-dir in a "
        "local SQLite file");
  }
  return o;
}

int serve(const std::vector<std::string>& args) {
  auto options = parseServeOptions(args);
  if (options.status().code() == absl::StatusCode::kCancelled) {  // --help
    std::cout << options.status().message();
    return 0;
  }
  if (!options.ok()) {
    std::cerr << "turnout-cp: " << options.status().message() << "\n";
    return 2;
  }
  if (!proxy::setDefaultLogLevel(options->log_level == "warning" ? "warn" : options->log_level)) {
    std::cerr << "turnout-cp: --log-level: unknown level '" << options->log_level << "'\n";
    return 2;
  }
  std::unique_ptr<Store> store;
  if (options->etcd) {
    EtcdStore::Options etcd_options;
    etcd_options.on_watch_broken = [url = options->etcd->url()](const absl::Status& status) {
      TURNOUT_LOG(warn, "store", "etcd watch on {} broke: {}; reconnecting", url, status.ToString());
    };
    auto etcd = EtcdStore::connect(*options->etcd, kEtcdStartWait, std::move(etcd_options));
    if (!etcd.ok()) {
      std::cerr << "turnout-cp: --store: " << etcd.status().message() << "\n";
      return 1;
    }
    store = std::move(*etcd);
  } else {
    auto sqlite = SqliteStore::open(options->data_dir);
    if (!sqlite.ok()) {
      std::cerr << "turnout-cp: --data-dir " << options->data_dir << ": " << sqlite.status().message() << "\n";
      return 1;
    }
    store = std::move(*sqlite);
  }
  asio::io_context ioc(1);
  RestApi::Options api_options;
  api_options.address = options->http_address.host;
  api_options.port = options->http_address.port;
  api_options.address_path = options->http_address_path;
  auto api = RestApi::create(ioc, *store, api_options);
  if (!api.ok()) {
    std::cerr << "turnout-cp: " << api.status().message() << "\n";
    return 1;
  }

  // The ADS server: pushes every stored change; /v1/proxies reads its streams.
  auto ads = AdsServer::create(
      ioc, {options->xds_address.host, options->xds_address.port, options->vhds},
      (*api)->state().model());
  if (!ads.ok()) {
    std::cerr << "turnout-cp: " << ads.status().message() << "\n";
    return 1;
  }
  AdsServer* ads_server = ads->get();
  (*api)->setOnChange([ads_server](const State& state) { ads_server->update(state.model()); });
  (*api)->setProxies([ads_server] { return ads_server->proxies(); });
  if (!options->xds_address_path.empty()) {
    std::ofstream f(options->xds_address_path);
    f << options->xds_address.host << ":" << ads_server->port() << "\n";
    if (!f) {
      std::cerr << "turnout-cp: --xds-address-path " << options->xds_address_path
                << ": cannot write\n";
      return 1;
    }
  }
  // The admission webhook: checked and bound before anything is served.
  std::unique_ptr<InjectionWebhook> webhook;
  if (options->webhook_address) {
    InjectionWebhook::Options webhook_options;
    webhook_options.address = options->webhook_address->host;
    webhook_options.port = options->webhook_address->port;
    webhook_options.address_path = options->webhook_address_path;
    webhook_options.tls_cert_file = options->webhook_tls_cert_file;
    webhook_options.tls_key_file = options->webhook_tls_key_file;
    webhook_options.plaintext = options->webhook_plaintext;
    webhook_options.injection = options->injection;
    auto created = InjectionWebhook::create(ioc, std::move(webhook_options));
    if (!created.ok()) {
      std::cerr << "turnout-cp: " << created.status().message() << "\n";
      return 1;
    }
    webhook = std::move(*created);
  }

  ads_server->start();
  (*api)->start();
  if (webhook) {
    webhook->start();
    TURNOUT_LOG(info, "main", "turnout-cp: admission webhook on {}://{}{}", webhook->tls() ? "https" : "http",
                webhook->boundAddress(), kInjectPath);
    if (!webhook->tls()) {
      TURNOUT_LOG(warn, "main", "turnout-cp: the admission webhook serves plaintext (--webhook-plaintext): for "
                                "local testing only; Kubernetes calls webhooks over HTTPS");
    }
  }
  TURNOUT_LOG(info, "main", "turnout-cp: REST API on {}, ADS on {}:{}, data in {} (config version {})",
              (*api)->boundAddress(), options->xds_address.host, ads_server->port(), store->describe(),
              (*api)->state().version());

  SignalSet signals(ioc, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int signal) {
    if (ec) return;
    TURNOUT_LOG(info, "main", "turnout-cp: signal {}, shutting down", signal);
    (*api)->stop();
    ads_server->stop();
    if (webhook) webhook->stop();
    ioc.stop();
  });
  ioc.run();
  return 0;
}

}  // namespace
}  // namespace turnout::control_plane

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty() && args[0] == "serve") return turnout::control_plane::serve(args);
  return turnout::control_plane::cli::run(args, std::cout, std::cerr);
}
