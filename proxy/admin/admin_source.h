#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace turnout::proxy::admin {

// What the admin server reads from, and asks of, the running proxy. The
// server process (proxy/server) implements it; tests use a fake. Every call
// is made on the main thread (the admin's io_context), so an implementation
// may read main-thread state directly and must post anything meant for
// workers. Values are returned by value: nothing returned is kept past the
// call.

// envoy.admin.v3.ServerInfo.State. A failed health check (/healthcheck/fail)
// is reported as Draining by the admin whatever state() says (Envoy's
// Utility::serverState).
enum class ServerState { Live, Draining, PreInitializing, Initializing };
// "LIVE", "DRAINING", "PRE_INITIALIZING", "INITIALIZING".
const char* serverStateName(ServerState state);

// The command line, as envoy.admin.v3.CommandLineOptions shows it.
struct CommandLineOptions {
  uint64_t base_id = 0;
  uint32_t concurrency = 0;
  std::string config_path;
  std::string config_yaml;
  bool allow_unknown_static_fields = false;
  bool reject_unknown_dynamic_fields = false;
  bool ignore_unknown_dynamic_fields = false;
  bool disable_hot_restart = false;
  bool use_dynamic_base_id = false;
  bool local_address_ip_version_v6 = false;  // --local-address-ip-version v6
  std::string admin_address_path;
  std::string log_level;
  std::string component_log_level;
  std::string log_format;
  std::string log_path;
  std::string service_cluster;
  std::string service_node;
  std::string service_zone;
  std::chrono::seconds drain_time{600};
  std::chrono::seconds parent_shutdown_time{900};
  std::string mode = "Serve";  // Serve, Validate, InitOnly
};

struct ServerInfo {
  std::string version;  // e.g. "turnout/0.1.0/..."
  ServerState state = ServerState::Live;
  std::chrono::seconds uptime_current_epoch{0};
  std::chrono::seconds uptime_all_epochs{0};
  std::string hot_restart_version;
  CommandLineOptions command_line_options;
  std::string node_id;
  std::string node_cluster;
};

// envoy.admin.v3.ClusterStatus, flattened.
struct CircuitBreakerStatus {
  bool high_priority = false;  // "default_priority" or "high_priority"
  uint64_t max_connections = 1024;
  uint64_t max_pending_requests = 1024;
  uint64_t max_requests = 1024;
  uint64_t max_retries = 3;
};

struct HostStatus {
  std::string address;  // "1.2.3.4", "::1", or a pipe path
  uint32_t port = 0;
  std::string hostname;
  // Envoy's health_flags text: "healthy", or "/failed_active_hc/failed_outlier_check"...
  std::string health_flags = "healthy";
  bool failed_active_health_check = false;
  bool failed_outlier_check = false;
  uint32_t weight = 1;
  std::string region, zone, sub_zone;
  bool canary = false;
  uint32_t priority = 0;
  double success_rate = -1;  // -1: not computed
  double local_origin_success_rate = -1;
  // Host counters and gauges (Envoy: cx_active, cx_connect_fail, cx_total,
  // rq_active, rq_error, rq_success, rq_timeout, rq_total).
  std::map<std::string, uint64_t> counters;
  std::map<std::string, uint64_t> gauges;
};

struct ClusterStatus {
  std::string name;
  std::string observability_name;  // alt_stat_name, else the name
  bool added_via_api = false;
  std::string eds_service_name;
  std::vector<CircuitBreakerStatus> circuit_breakers;  // default first, then high
  std::vector<HostStatus> hosts;
};

struct ListenerStatus {
  std::string name;
  std::string address;  // host part
  uint32_t port = 0;
};

// Query parameters of /config_dump, passed through unchanged.
struct ConfigDumpParams {
  std::string resource;
  std::string mask;
  std::string name_regex;
  bool include_eds = false;
};

struct DrainParams {
  bool inbound_only = false;
  bool graceful = false;
  bool skip_exit = false;
};

class AdminSource {
 public:
  virtual ~AdminSource() = default;

  virtual ServerInfo serverInfo() const = 0;
  virtual bool healthCheckFailed() const = 0;
  virtual void setHealthCheckFailed(bool failed) = 0;
  // The complete `{"configs":[...]}` document. An error string (non-empty
  // `error`) becomes a 400 with that text, e.g. for a bad name_regex.
  virtual std::string configDumpJson(const ConfigDumpParams& params, std::string& error) const = 0;
  virtual std::vector<ClusterStatus> clusters() const = 0;
  virtual std::vector<ListenerStatus> listeners() const = 0;
  virtual void drainListeners(const DrainParams& params) = 0;
  // Called after the /quitquitquit response has been written.
  virtual void quit() = 0;
  // The admin runtime layer after a /runtime_modify (key -> value; a key
  // with an empty value was removed).
  virtual void onRuntimeUpdate(const std::map<std::string, std::string>& admin_layer) {
    (void)admin_layer;
  }
};

}  // namespace turnout::proxy::admin
