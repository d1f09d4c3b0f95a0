#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "proxy/admin/admin_source.h"
#include "proxy/admin/http_service.h"
#include "proxy/common/asio.h"
#include "proxy/stats/store.h"

namespace turnout::config {
struct Address;
}

namespace turnout::proxy::admin {

// One admin response, before it goes on the wire.
using AdminResponse = HttpResponse;

// Envoy's admin interface (operations/admin.rst) on the MAIN thread's
// io_context, served by HttpService (HTTP/1.1 keep-alive, one coroutine per
// connection, size limits and deadlines). Handlers run synchronously on the main
// thread and read the proxy through AdminSource and stats::Store, which must
// outlive the server. Mutating endpoints require POST: any other method gets
// 405 "Method GET not allowed, POST required." and changes nothing (Envoy's
// AdminImpl::makeRequest). Unknown paths get 404 "invalid path. " + the help.
class AdminServer {
 public:
  struct Options {
    std::string address = "127.0.0.1";
    uint16_t port = 0;                // 0: any free port; see port()
    std::string address_path;         // --admin-address-path: gets "127.0.0.1:PORT"
    size_t max_request_header_bytes = 16 * 1024;
    size_t max_request_body_bytes = 64 * 1024;
    std::chrono::milliseconds idle_timeout{std::chrono::seconds(30)};
    std::chrono::milliseconds write_timeout{std::chrono::seconds(30)};
  };
  // Options for the bootstrap's admin.address.
  static Options optionsFor(const config::Address& address);

  // Binds and listens (errors name the address); call start() to accept.
  static absl::StatusOr<std::unique_ptr<AdminServer>> create(asio::io_context& ioc, AdminSource& source,
                                                             stats::Store& store, Options options);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  void start() { http_->start(); }
  // Stops accepting and closes open admin connections.
  void stop() { http_->stop(); }
  uint16_t port() const { return http_->port(); }
  // "127.0.0.1:PORT" (IPv6 as "[::1]:PORT").
  std::string boundAddress() const { return http_->boundAddress(); }

  // Dispatches one request (exposed for tests). `target` is path + query.
  AdminResponse handle(std::string_view method, std::string_view target, std::string_view body = {},
                       std::string_view content_type = {});

  const std::map<std::string, std::string>& runtimeAdminLayer() const { return runtime_; }
  // The "admin commands are:" list.
  std::string helpText() const;

 private:
  using Params = std::vector<std::pair<std::string, std::string>>;
  struct Handler {
    std::string prefix;
    std::string help;
    bool mutates;
    AdminResponse (AdminServer::*fn)(const Params&);
  };

  AdminServer(AdminSource& source, stats::Store& store);

  AdminResponse handleHelp(const Params&);
  AdminResponse handleReady(const Params&);
  AdminResponse handleServerInfo(const Params&);
  AdminResponse handleStats(const Params&);
  AdminResponse handlePrometheus(const Params&);
  AdminResponse handleClusters(const Params&);
  AdminResponse handleListeners(const Params&);
  AdminResponse handleConfigDump(const Params&);
  AdminResponse handleHealthcheckFail(const Params&);
  AdminResponse handleHealthcheckOk(const Params&);
  AdminResponse handleDrainListeners(const Params&);
  AdminResponse handleQuit(const Params&);
  AdminResponse handleLogging(const Params&);
  AdminResponse handleResetCounters(const Params&);
  AdminResponse handleRuntime(const Params&);
  AdminResponse handleRuntimeModify(const Params&);
  AdminResponse handleMemory(const Params&);
  AdminResponse handleCerts(const Params&);
  AdminResponse renderStats(const Params& params, bool prometheus);

  AdminSource& source_;
  stats::Store& store_;
  std::unique_ptr<HttpService> http_;
  std::vector<Handler> handlers_;
  std::map<std::string, std::string> runtime_;
};

// Parses "a=b&c&d=%2F" into (name, value) pairs, percent-decoding both.
std::vector<std::pair<std::string, std::string>> parseQuery(std::string_view query);

}  // namespace turnout::proxy::admin
