#pragma once

// Logging (STYLE.md R11): spdlog loggers named after components ("main",
// "conn", "router", "pool", "admin", "upstream"), created on first use and
// adjustable at run time through the admin /logging endpoint. The level is
// checked before any formatting, so a disabled debug line costs one branch.
// Nothing above debug runs per request.

#include <memory>
#include <string>

#include <spdlog/spdlog.h>

#include "absl/status/status.h"

namespace turnout::proxy {

// The logger for `component`, created with the default level on first use.
// Thread-safe (spdlog's registry); call sites cache the pointer.
std::shared_ptr<spdlog::logger> componentLogger(const std::string& component);

// Sets every component's level and the default for new ones ("trace" ..
// "critical", "off"); false for an unknown name. Main thread, at start-up.
bool setDefaultLogLevel(const std::string& level);
// --component-log-level: one component's level (made if new); false for an
// unknown level name. Main thread, at start-up, after setDefaultLogLevel().
bool setComponentLogLevel(const std::string& component, const std::string& level);
// --log-format: every logger's spdlog pattern, and new ones'.
void setLogFormat(const std::string& pattern);
// --log-path: every logger writes to this file (appended to) instead of
// stderr; an error names why it cannot be opened.
absl::Status setLogPath(const std::string& path);

}  // namespace turnout::proxy

#define TURNOUT_LOG(lvl, component, ...)                                                 \
  do {                                                                                   \
    static const std::shared_ptr<spdlog::logger> turnout_logger_ =                      \
        ::turnout::proxy::componentLogger(component);                                   \
    if (turnout_logger_->should_log(spdlog::level::lvl)) {                               \
      turnout_logger_->log(spdlog::level::lvl, __VA_ARGS__);                            \
    }                                                                                    \
  } while (0)

// A connection- or stream-scoped line: prefixes "[C<id>]" / "[C<id>][S<id>]".
#define TURNOUT_CONN_LOG(lvl, component, conn_id, fmt, ...) \
  TURNOUT_LOG(lvl, component, "[C{}] " fmt, conn_id, ##__VA_ARGS__)
