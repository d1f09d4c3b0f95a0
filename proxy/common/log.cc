#include "proxy/common/log.h"
#include "proxy/common/spawn.h"

#include <mutex>

#include <spdlog/sinks/stdout_sinks.h>

namespace turnout::proxy {
namespace {

std::mutex& registryMutex() {
  static std::mutex m;
  return m;
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
  auto logger = std::make_shared<spdlog::logger>(
      component, std::make_shared<spdlog::sinks::stderr_sink_mt>());
  // Envoy's default --log-format: [%Y-%m-%d %T.%e][%t][%l][%n] %v
  logger->set_pattern("[%Y-%m-%d %T.%e][%t][%l][%n] %v");
  logger->set_level(defaultLevel());
  spdlog::register_logger(logger);
  return logger;
}

bool setDefaultLogLevel(const std::string& level) {
  auto l = spdlog::level::from_str(level);
  if (l == spdlog::level::off && level != "off") return false;
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
