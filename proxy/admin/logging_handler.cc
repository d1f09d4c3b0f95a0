#include "proxy/admin/logging_handler.h"

#include <algorithm>
#include <map>
#include <memory>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

#include "proxy/common/log.h"

namespace turnout::proxy::admin {
namespace {

std::optional<spdlog::level::level_enum> parseLevel(std::string_view s) {
  for (int i = 0; i < spdlog::level::n_levels; ++i) {
    const auto sv = spdlog::level::to_string_view(static_cast<spdlog::level::level_enum>(i));
    if (std::string_view(sv.data(), sv.size()) == s) return static_cast<spdlog::level::level_enum>(i);
  }
  return std::nullopt;
}

std::string listLoggers() {
  std::map<std::string, std::string> loggers;
  spdlog::details::registry::instance().apply_all([&](const std::shared_ptr<spdlog::logger>& l) {
    const auto sv = spdlog::level::to_string_view(l->level());
    loggers[l->name()] = std::string(sv.data(), sv.size());
  });
  std::string out = "active loggers:\n";
  for (const auto& [name, level] : loggers) {
    if (name.empty()) continue;  // spdlog's unnamed default logger
    absl::StrAppend(&out, "  ", name, ": ", level, "\n");
  }
  return out;
}

std::string changeLevels(const std::vector<std::pair<std::string, std::string>>& params) {
  if (params.empty()) return "";
  if (params.size() != 1) return "invalid number of parameters";
  const auto& [key, value] = params.front();
  if (key == "level") {
    auto level = parseLevel(value);
    if (!level) return "unknown logger level";
    spdlog::details::registry::instance().apply_all(
        [&](const std::shared_ptr<spdlog::logger>& l) { l->set_level(*level); });
    return "";
  }
  std::vector<std::pair<std::string, spdlog::level::level_enum>> changes;
  if (key == "paths") {
    for (absl::string_view pair : absl::StrSplit(value, ',', absl::SkipWhitespace())) {
      std::pair<std::string, std::string> nl = absl::StrSplit(pair, absl::MaxSplits(':', 1));
      if (nl.first.empty() || nl.second.empty()) return "empty logger name or empty logger level";
      auto level = parseLevel(nl.second);
      if (!level) return "unknown logger level";
      changes.emplace_back(nl.first, *level);
    }
  } else {
    auto level = parseLevel(value);
    if (!level) return "unknown logger level";
    changes.emplace_back(key, *level);
  }
  for (const auto& [name, level] : changes) {
    if (!spdlog::get(name)) return "unknown logger name";
  }
  for (const auto& [name, level] : changes) spdlog::get(name)->set_level(level);
  return "";
}

}  // namespace

LoggingResponse handleLogging(const std::vector<std::pair<std::string, std::string>>& params) {
  LoggingResponse r;
  const std::string error = changeLevels(params);
  if (error.empty()) {
    r.body = listLoggers();
    return r;
  }
  r.status = 404;
  r.body = absl::StrCat("error: ", error, "\n\n");
  r.body += "usage: /logging?<name>=<level> (change single level)\n";
  r.body += "usage: /logging?paths=name1:level1,name2:level2,... (change multiple levels)\n";
  r.body += "usage: /logging?level=<level> (change all levels)\n";
  r.body += "levels: ";
  for (int i = 0; i < spdlog::level::n_levels; ++i) {
    const auto sv = spdlog::level::to_string_view(static_cast<spdlog::level::level_enum>(i));
    absl::StrAppend(&r.body, std::string(sv.data(), sv.size()), " ");
  }
  r.body += "\n";
  return r;
}

}  // namespace turnout::proxy::admin
