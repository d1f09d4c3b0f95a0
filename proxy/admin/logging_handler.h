#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace turnout::proxy::admin {

// Envoy's POST /logging against spdlog's logger registry (loggers by name):
//   no params          lists "active loggers:" and their levels
//   ?level=L           sets every logger
//   ?<logger>=L        sets one
//   ?paths=a:L,b:L     sets several
// Levels are spdlog's names (trace, debug, info, warning, error, critical,
// off). A bad request answers 404 with "error: <reason>" and the usage, as
// Envoy's LogsHandler does. Main thread only.
struct LoggingResponse {
  unsigned status = 200;
  std::string body;
};
LoggingResponse handleLogging(const std::vector<std::pair<std::string, std::string>>& params);

}  // namespace turnout::proxy::admin
