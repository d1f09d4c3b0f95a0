// turnout: the proxy binary. Envoy's command line: it validates Envoy v3 bootstraps
// (--mode validate) or serves them (--mode serve, the default).

#include <cstdint>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "config/bootstrap/bootstrap_loader.h"
#include "config/snapshot/snapshot_builder.h"
#include "proxy/access_log/access_log.h"
#include "proxy/capture/iptables.h"
#include "proxy/common/log.h"
#include "proxy/common/memory_release.h"
#include "proxy/server/data_plane_config.h"
#include "proxy/server/server.h"

namespace turnout::proxy {
namespace {


constexpr const char* kVersion = "0.1.0";

struct CliOptions {
  std::string mode = "serve";
  config::BootstrapLoadOptions bootstrap;
  std::string log_level = "info";
  std::string component_log_level;
  // component_log_level parsed: (component, level) pairs, checked.
  std::vector<std::pair<std::string, std::string>> component_levels;
  std::string log_format;
  std::string log_path;
  uint32_t concurrency = 0;
  uint32_t drain_time_s = 600;
  uint32_t parent_shutdown_time_s = 900;
  uint64_t base_id = 0;
  bool reject_unknown_dynamic_fields = false;
  bool ignore_unknown_dynamic_fields = false;
  std::string admin_address_path;
  std::string xds_cache_dir;
  std::string local_address_ip_version = "v4";
  bool disable_hot_restart = false;
  bool use_dynamic_base_id = false;
  bool help = false;
  bool version = false;
};

constexpr const char* kUsage = R"(USAGE: turnout [options]

Envoy-compatible request-routing proxy.

  -c, --config-path <path>          Envoy v3 bootstrap (.yaml/.yml/.json, .pb, .pb_text)
      --config-yaml <yaml>          YAML bootstrap merged over --config-path
      --mode <serve|validate|init_only>
                                    validate: load and check the config, print
                                    "configuration '<path>' OK" and exit
  -l, --log-level <trace|debug|info|warning|warn|error|critical|off>
      --component-log-level <component:level,...>
                                    one component's level over -l (e.g. http2:debug)
      --log-format <format>         spdlog pattern, as Envoy's
                                    (default "[%Y-%m-%d %T.%e][%t][%l][%n] %v")
      --log-path <path>             log to this file (appended) instead of stderr
      --concurrency <n>             worker threads (default: hardware threads)
      --service-node <id>           overrides node.id
      --service-cluster <name>      overrides node.cluster
      --service-zone <zone>         overrides node.locality.zone
      --drain-time-s <s>            (default 600)
      --parent-shutdown-time-s <s>  (default 900)
      --base-id <n>                 shown in /server_info; turnout has no hot restart
                                    and so no shared memory for it to name
      --allow-unknown-static-fields unknown bootstrap fields are warnings, not errors
      --reject-unknown-dynamic-fields
                                    an xDS or file update with unknown fields is
                                    refused (default: taken without them, warned and
                                    counted in server.dynamic_unknown_fields)
      --ignore-unknown-dynamic-fields
                                    unknown dynamic fields are neither logged nor
                                    counted
      --admin-address-path <path>
      --xds-cache <dir>             keep the last accepted xDS config in <dir> and serve
                                    it at start before the control plane answers (turnout's)
      --local-address-ip-version <v4|v6>
                                    shown in /server_info (Envoy uses the local address
                                    only for unix-socket downstreams, which turnout
                                    refuses)
      --disable-hot-restart, --use-dynamic-base-id
                                    accepted and shown: turnout never hot-restarts
      --version
  -h, --help
)";

const absl::flat_hash_set<std::string>& logLevels() {
  static const auto* levels = new absl::flat_hash_set<std::string>{
      "trace", "debug", "info", "warning", "warn", "error", "critical", "off"};
  return *levels;
}

// Log components (R5/R11 stage names plus Envoy's common ones).
const absl::flat_hash_set<std::string>& logComponents() {
  static const auto* components = new absl::flat_hash_set<std::string>{
      "admin", "assert", "config", "connection", "codec", "conn_handler", "filter", "http",
      "http2", "main", "misc", "pool", "router", "runtime", "upstream", "xds", "health_checker",
      "hc", "listener", "tls", "client", "dns", "access_log", "stats"};
  return *components;
}

absl::Status parseError(const std::string& msg) { return absl::InvalidArgumentError(msg); }

template <typename T>
absl::Status parseUnsigned(const std::string& flag, const std::string& value, T& out) {
  uint64_t v = 0;
  if (!absl::SimpleAtoi(value, &v) || v > std::numeric_limits<T>::max()) {
    return parseError(absl::StrCat("PARSE ERROR: Argument: ", flag, "\n             Couldn't read argument value from string '", value, "'"));
  }
  out = static_cast<T>(v);
  return absl::OkStatus();
}

absl::Status parseComponentLogLevel(const std::string& spec,
                                    std::vector<std::pair<std::string, std::string>>& out) {
  out.clear();
  for (absl::string_view item : absl::StrSplit(spec, ',')) {
    std::vector<std::string> parts = absl::StrSplit(item, ':');
    if (parts.size() != 2) return parseError("error: component log level not correctly specified '" + std::string(item) + "'");
    if (!logLevels().contains(parts[1])) return parseError("error: invalid log level specified '" + parts[1] + "'");
    if (!logComponents().contains(parts[0])) return parseError("error: invalid component specified '" + parts[0] + "'");
    out.emplace_back(std::move(parts[0]), std::move(parts[1]));
  }
  return absl::OkStatus();
}

absl::StatusOr<CliOptions> parseCommandLine(int argc, char** argv) {
  CliOptions o;
  std::vector<std::string> args(argv + 1, argv + argc);
  for (size_t i = 0; i < args.size(); ++i) {
    std::string arg = args[i];
    std::optional<std::string> inline_value;
    if (arg.rfind("--", 0) == 0) {
      if (size_t eq = arg.find('='); eq != std::string::npos) {
        inline_value = arg.substr(eq + 1);
        arg = arg.substr(0, eq);
      }
    }
    auto value = [&]() -> absl::StatusOr<std::string> {
      if (inline_value) return *inline_value;
      if (i + 1 >= args.size()) {
        return parseError(absl::StrCat("PARSE ERROR: Argument: ", arg, "\n             Missing a value for this argument!"));
      }
      return args[++i];
    };
    auto take = [&](std::string& dst) -> absl::Status {
      auto v = value();
      if (!v.ok()) return v.status();
      dst = *v;
      return absl::OkStatus();
    };
    auto flag = [&](bool& dst) -> absl::Status {
      if (inline_value) return parseError(absl::StrCat("PARSE ERROR: Argument: ", arg, "\n             takes no value"));
      dst = true;
      return absl::OkStatus();
    };
    absl::Status s;
    std::string tmp;
    if (arg == "-c" || arg == "--config-path") {
      s = take(o.bootstrap.config_path);
    } else if (arg == "--config-yaml") {
      s = take(o.bootstrap.config_yaml);
    } else if (arg == "--mode") {
      s = take(o.mode);
      if (s.ok() && o.mode != "serve" && o.mode != "validate" && o.mode != "init_only") {
        s = parseError("error: unknown mode '" + o.mode + "'");
      }
    } else if (arg == "-l" || arg == "--log-level") {
      s = take(o.log_level);
      if (s.ok() && !logLevels().contains(o.log_level)) {
        s = parseError("error: invalid log level specified '" + o.log_level + "' (trace, debug, info, warning, error, critical, off)");
      }
    } else if (arg == "--component-log-level") {
      s = take(o.component_log_level);
      if (s.ok()) s = parseComponentLogLevel(o.component_log_level, o.component_levels);
    } else if (arg == "--log-format") {
      s = take(o.log_format);
    } else if (arg == "--log-path") {
      s = take(o.log_path);
    } else if (arg == "--concurrency") {
      if (s = take(tmp); s.ok()) s = parseUnsigned(arg, tmp, o.concurrency);
    } else if (arg == "--service-node") {
      s = take(o.bootstrap.service_node);
    } else if (arg == "--service-cluster") {
      s = take(o.bootstrap.service_cluster);
    } else if (arg == "--service-zone") {
      s = take(o.bootstrap.service_zone);
    } else if (arg == "--drain-time-s") {
      if (s = take(tmp); s.ok()) s = parseUnsigned(arg, tmp, o.drain_time_s);
    } else if (arg == "--parent-shutdown-time-s") {
      if (s = take(tmp); s.ok()) s = parseUnsigned(arg, tmp, o.parent_shutdown_time_s);
    } else if (arg == "--base-id") {
      if (s = take(tmp); s.ok()) s = parseUnsigned(arg, tmp, o.base_id);
    } else if (arg == "--allow-unknown-static-fields") {
      s = flag(o.bootstrap.allow_unknown_static_fields);
    } else if (arg == "--reject-unknown-dynamic-fields") {
      s = flag(o.reject_unknown_dynamic_fields);
    } else if (arg == "--ignore-unknown-dynamic-fields") {
      s = flag(o.ignore_unknown_dynamic_fields);
    } else if (arg == "--admin-address-path") {
      s = take(o.admin_address_path);
    } else if (arg == "--xds-cache") {
      s = take(o.xds_cache_dir);
    } else if (arg == "--local-address-ip-version") {
      s = take(o.local_address_ip_version);
      if (s.ok() && o.local_address_ip_version != "v4" && o.local_address_ip_version != "v6") {
        s = parseError("error: unknown IP address version '" + o.local_address_ip_version + "'");
      }
    } else if (arg == "--disable-hot-restart") {
      s = flag(o.disable_hot_restart);
    } else if (arg == "--use-dynamic-base-id") {
      s = flag(o.use_dynamic_base_id);
    } else if (arg == "--version") {
      s = flag(o.version);
    } else if (arg == "-h" || arg == "--help") {
      s = flag(o.help);
    } else {
      s = parseError(absl::StrCat("PARSE ERROR: Argument: ", arg, "\n             Couldn't find match for argument"));
    }
    if (!s.ok()) return s;
  }
  if (o.concurrency == 0) o.concurrency = std::max(1u, std::thread::hardware_concurrency());
  return o;
}

int validate(const CliOptions& o) {
  // The same call --mode serve starts with (Server::run), so both answer alike.
  auto loaded = config::SnapshotBuilder::load(o.bootstrap);
  // The access-log formats are compiled by the proxy layer; serve checks them
  // with the same call right after its load.
  absl::Status logs = loaded.ok() ? proxy::access_log::checkAccessLogFormats(*loaded->snapshot)
                                  : absl::OkStatus();
  if (!logs.ok()) loaded = logs;
  // So do the TLS contexts (certificate files, keys, trust stores).
  absl::Status tls = loaded.ok() ? proxy::checkListenerTls(*loaded->snapshot) : absl::OkStatus();
  if (!tls.ok()) loaded = tls;
  absl::Status cluster_tls =
      loaded.ok() ? proxy::checkClusterTls(*loaded->snapshot) : absl::OkStatus();
  if (!cluster_tls.ok()) loaded = cluster_tls;
  if (!loaded.ok()) {
    // Envoy: ENVOY_LOG(critical, "error initializing configuration '{}': {}", ...).
    std::cerr << "error initializing configuration '" << o.bootstrap.config_path
              << "': " << loaded.status().message() << std::endl;
    return 1;
  }
  for (const auto& w : loaded->warnings) std::cerr << "warning: " << w << "\n";
  // Envoy (source/server/config_validation/server.cc) prints exactly this line.
  std::cout << "configuration '" << o.bootstrap.config_path << "' OK" << std::endl;
  return 0;
}

int run(int argc, char** argv) {
  auto options = parseCommandLine(argc, argv);
  if (!options.ok()) {
    std::cerr << "turnout: " << options.status().message() << "\n\nFor complete USAGE and HELP type:\n   turnout --help\n";
    return 1;
  }
  if (options->help) {
    std::cout << kUsage;
    return 0;
  }
  if (options->version) {
    std::cout << "\nturnout version: " << kVersion << "/envoy-api-v1.31/RELEASE\n\n";
    return 0;
  }
  if (options->mode == "validate") return validate(*options);
  if (options->mode == "init_only") {
    std::cerr << "turnout: --mode init_only is not supported by turnout\n";
    return 1;
  }
  if (!setDefaultLogLevel(options->log_level)) {
    std::cerr << "turnout: invalid log level '" << options->log_level << "'\n";
    return 1;
  }
  if (!options->log_path.empty()) {
    if (absl::Status st = setLogPath(options->log_path); !st.ok()) {
      std::cerr << "turnout: --log-path " << options->log_path << ": " << st.message() << "\n";
      return 1;
    }
  }
  if (!options->log_format.empty()) setLogFormat(options->log_format);
  // Checked by the parser: known components and level names.
  for (const auto& [component, level] : options->component_levels) {
    setComponentLogLevel(component, level);
  }
  ServerOptions so;
  so.bootstrap = options->bootstrap;
  so.concurrency = options->concurrency;
  so.admin_address_path = options->admin_address_path;
  so.xds_cache_dir = options->xds_cache_dir;
  // Envoy: rejecting wins; ignoring only silences the warning.
  so.unknown_dynamic_fields = options->reject_unknown_dynamic_fields ? UnknownDynamicFields::kReject
                              : options->ignore_unknown_dynamic_fields
                                  ? UnknownDynamicFields::kIgnore
                                  : UnknownDynamicFields::kWarn;
  so.command_line.base_id = options->base_id;
  so.command_line.use_dynamic_base_id = options->use_dynamic_base_id;
  so.command_line.disable_hot_restart = options->disable_hot_restart;
  so.command_line.reject_unknown_dynamic_fields = options->reject_unknown_dynamic_fields;
  so.command_line.ignore_unknown_dynamic_fields = options->ignore_unknown_dynamic_fields;
  so.command_line.local_address_ip_version_v6 = options->local_address_ip_version == "v6";
  so.command_line.component_log_level = options->component_log_level;
  so.command_line.log_format = options->log_format;
  so.command_line.log_path = options->log_path;
  so.drain_time = std::chrono::seconds(options->drain_time_s);
  so.command_line.concurrency = options->concurrency;
  so.command_line.config_path = options->bootstrap.config_path;
  so.command_line.config_yaml = options->bootstrap.config_yaml;
  so.command_line.allow_unknown_static_fields = options->bootstrap.allow_unknown_static_fields;
  so.command_line.admin_address_path = options->admin_address_path;
  so.command_line.log_level = options->log_level;
  so.command_line.service_cluster = options->bootstrap.service_cluster;
  so.command_line.service_node = options->bootstrap.service_node;
  so.command_line.service_zone = options->bootstrap.service_zone;
  so.command_line.drain_time = std::chrono::seconds(options->drain_time_s);
  so.command_line.parent_shutdown_time = std::chrono::seconds(options->parent_shutdown_time_s);
  Server server(std::move(so));
  return server.run();
}

}  // namespace
}  // namespace turnout::proxy

int main(int argc, char** argv) {
  // The loader is done with the relocation table (docs/memory.md).
  turnout::proxy::releaseRelocationTable();
  // `turnout iptables ...`: the sidecar's traffic capture (docs/capture.md).
  if (argc > 1 && std::string_view(argv[1]) == "iptables") {
    return turnout::proxy::capture::iptablesMain(argc - 2, argv + 2);
  }
  return turnout::proxy::run(argc, argv);
}
