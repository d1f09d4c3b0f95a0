#include "proxy/common/log.h"
#include "proxy/common/spawn.h"

#include <mutex>

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

namespace turnout::proxy {
namespace {

std::mutex& registryMutex() {
  static std::mutex m;
  return m;
}
// What a logger made later gets: --log-format's pattern, and --log-path's
// file (shared by every logger) instead of a stderr sink of its own.
std::string& defaultPattern() {
  // Envoy's default --log-format: [%Y-%m-%d %T.%e][%t][%l][%n] %v
  static std::string pattern = "[%Y-%m-%d %T.%e][%t][%l][%n] %v";
  return pattern;
}
std::shared_ptr<spdlog::sinks::sink>& fileSink() {
  static std::shared_ptr<spdlog::sinks::sink> sink;
  return sink;
}
spdlog::level::level_enum& defaultLevel() {
  static spdlog::level::level_enum level = spdlog::level::info;
  return level;
}

}  // namespace

std::shared_ptr<spdlog::logger> componentLogger(const std::string& component) {
  // Start-up and first use only (call sites cache the pointer).
  std::lock_guard<std::mutex> lock(registryMutex());
  if (auto existing = spdlog::get(component)) return existing;
  std::shared_ptr<spdlog::sinks::sink> sink = fileSink();
  if (sink == nullptr) sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  auto logger = std::make_shared<spdlog::logger>(component, std::move(sink));
  logger->set_pattern(defaultPattern());
  logger->set_level(defaultLevel());
  spdlog::register_logger(logger);
  return logger;
}

namespace {

// A level by name ("warning" is Envoy's spelling of spdlog's "warn");
// false for an unknown one (spdlog reads it as off).
bool parseLevel(const std::string& name, spdlog::level::level_enum& out) {
  out = spdlog::level::from_str(name == "warning" ? "warn" : name);
  return out != spdlog::level::off || name == "off";
}

}  // namespace

bool setDefaultLogLevel(const std::string& level) {
  spdlog::level::level_enum l;
  if (!parseLevel(level, l)) return false;
  {
    std::lock_guard<std::mutex> lock(registryMutex());
    defaultLevel() = l;
  }
  for (const char* c : {"main", "conn", "router", "pool", "admin", "upstream", "config"}) {
    componentLogger(c)->set_level(l);
  }
  spdlog::apply_all([l](std::shared_ptr<spdlog::logger> lg) { lg->set_level(l); });
  return true;
}

bool setComponentLogLevel(const std::string& component, const std::string& level) {
  spdlog::level::level_enum l;
  if (!parseLevel(level, l)) return false;
  componentLogger(component)->set_level(l);
  return true;
}

void setLogFormat(const std::string& pattern) {
  {
    std::lock_guard<std::mutex> lock(registryMutex());
    defaultPattern() = pattern;
  }
  spdlog::apply_all([&](std::shared_ptr<spdlog::logger> lg) { lg->set_pattern(pattern); });
}

absl::Status setLogPath(const std::string& path) {
  std::shared_ptr<spdlog::sinks::sink> sink;
  try {
    sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(path, /*truncate=*/false);
  } catch (const spdlog::spdlog_ex& e) {
    return absl::InvalidArgumentError(e.what());
  }
  {
    std::lock_guard<std::mutex> lock(registryMutex());
    fileSink() = sink;
  }
  spdlog::apply_all([&](std::shared_ptr<spdlog::logger> lg) {
    lg->sinks().assign(1, sink);
    lg->set_pattern(defaultPattern());  // the new sink's formatter
  });
  return absl::OkStatus();
}

}  // namespace turnout::proxy

namespace turnout::proxy {

void LogEscapedException::operator()(std::exception_ptr e) const {
  if (!e) return;
  std::string reason = "unknown exception";
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    reason = ex.what();
  } catch (...) {
  }
  auto logger = componentLogger(component);
  if (name.empty()) {
    logger->error("{} failed: {}", what, reason);
  } else {
    logger->error("{} '{}' failed: {}", what, name, reason);
  }
}

}  // namespace turnout::proxy
