#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "proxy/common/asio.h"

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "config/bootstrap/bootstrap_loader.h"
#include "proxy/admin/admin_server.h"
#include "proxy/admin/admin_source.h"
#include "proxy/server/data_plane_config.h"
#include "proxy/server/dynamic_resources.h"
#include "proxy/server/snapshot_publisher.h"
#include "proxy/server/worker.h"
#include "proxy/stats/store.h"
#include "proxy/upstream/dns_refresher.h"
#include "proxy/upstream/health_checker.h"
#include "proxy/upstream/outlier_detector.h"

namespace turnout::proxy {

struct ServerOptions {
  config::BootstrapLoadOptions bootstrap;
  uint32_t concurrency = 1;
  std::string admin_address_path;
  std::string xds_cache_dir;  // --xds-cache (docs/xds.md)
  // --reject-unknown-dynamic-fields / --ignore-unknown-dynamic-fields.
  UnknownDynamicFields unknown_dynamic_fields = UnknownDynamicFields::kWarn;
  std::chrono::seconds drain_time{600};
  admin::CommandLineOptions command_line;
};

// The serving process: the main thread runs the admin server, signals and
// config; `concurrency` workers run the listeners (DESIGN.md §8). run()
// returns the exit code once the server stops (/quitquitquit, SIGTERM,
// SIGINT).
class Server : public admin::AdminSource {
 public:
  explicit Server(ServerOptions options);
  ~Server() override;

  int run();

  // admin::AdminSource (main thread)
  admin::ServerInfo serverInfo() const override;
  bool healthCheckFailed() const override { return health_check_failed_.load(); }
  void setHealthCheckFailed(bool failed) override { health_check_failed_.store(failed); }
  std::string configDumpJson(const admin::ConfigDumpParams& params,
                             std::string& error) const override;
  std::vector<admin::ClusterStatus> clusters() const override;
  std::vector<admin::ListenerStatus> listeners() const override;
  void drainListeners(const admin::DrainParams& params) override;
  void quit() override;

 private:
  // Main thread, every second: TLS listeners whose certificate files changed
  // get their rebuilt context.
  void reloadTlsContexts();
  void shutdown();

  ServerOptions options_;
  asio::io_context main_{1};
  std::unique_ptr<stats::Store> store_;
  std::unique_ptr<admin::AdminServer> admin_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<SnapshotPublisher> publisher_;
  std::unique_ptr<DynamicResources> dynamic_;
  std::atomic<bool> health_check_failed_{false};
  bool draining_ = false;
  std::chrono::steady_clock::time_point started_;
  std::unique_ptr<SignalSet> signals_;
  std::unique_ptr<SteadyTimer> uptime_timer_;
};

}  // namespace turnout::proxy
