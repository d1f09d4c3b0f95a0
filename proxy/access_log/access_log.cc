#include "proxy/access_log/access_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "envoy/config/core/v3/substitution_format_string.pb.h"
#include "envoy/extensions/access_loggers/file/v3/file.pb.h"
#include "envoy/extensions/access_loggers/stream/v3/stream.pb.h"

// The deprecated v3 fields (text_format, format, json_format,
// typed_json_format) are still valid Envoy config, so they are read here.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

namespace turnout::proxy::access_log {
namespace {

constexpr std::string_view kFileType = "envoy.extensions.access_loggers.file.v3.FileAccessLog";
constexpr std::string_view kStdoutType = "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog";
constexpr std::string_view kStderrType = "envoy.extensions.access_loggers.stream.v3.StderrAccessLog";

std::string typeName(const std::string& type_url) {
  const size_t slash = type_url.rfind('/');
  return slash == std::string::npos ? type_url : type_url.substr(slash + 1);
}

absl::StatusOr<Formatter> fromSubstitution(const envoy::config::core::v3::SubstitutionFormatString& s,
                                           const std::string& path) {
  using S = envoy::config::core::v3::SubstitutionFormatString;
  absl::StatusOr<Formatter> f = absl::InvalidArgumentError("unset");
  switch (s.format_case()) {
    case S::kTextFormat: f = Formatter::create(s.text_format()); break;
    case S::kJsonFormat: f = Formatter::createJson(s.json_format()); break;
    case S::kTextFormatSource:
      if (!s.text_format_source().has_inline_string()) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ".text_format_source: only inline_string is supported"));
      }
      f = Formatter::create(s.text_format_source().inline_string());
      break;
    default: f = Formatter::create(kDefaultFormat); break;
  }
  if (!f.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ": ", f.status().message()));
  if (s.formatters_size() > 0) {
    return absl::InvalidArgumentError(absl::StrCat(path, ".formatters: not supported"));
  }
  return f;
}

}  // namespace

AccessLogFile::AccessLogFile(std::string path, int fd, bool owns_fd, Options options)
    : path_(std::move(path)), fd_(fd), owns_fd_(owns_fd), options_(options), slots_(new Slot[kSlots]) {
  thread_ = std::thread([this] { flushThread(); });
}

absl::StatusOr<std::shared_ptr<AccessLogFile>> AccessLogFile::open(const std::string& path, Options options) {
  int fd = -1;
  bool owns = true;
  if (path == "/dev/stdout") {
    fd = STDOUT_FILENO;
    owns = false;
  } else if (path == "/dev/stderr") {
    fd = STDERR_FILENO;
    owns = false;
  } else {
    fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("access log: cannot open '", path, "': ", std::strerror(errno)));
    }
  }
  return std::shared_ptr<AccessLogFile>(new AccessLogFile(path, fd, owns, options));
}

AccessLogFile::~AccessLogFile() {
  {
    std::lock_guard<std::mutex> lock(flush_mu_);
    stopping_ = true;
  }
  flush_cv_.notify_one();
  thread_.join();
  if (owns_fd_) ::close(fd_);
}

void AccessLogFile::write(std::string_view data, size_t worker) {
  Slot& slot = slots_[worker % kSlots];
  bool full = false;
  {
    std::lock_guard<std::mutex> lock(slot.mu);
    slot.buffer.append(data.data(), data.size());
    full = slot.buffer.size() >= options_.min_flush_bytes;
  }
  if (full) flush();
}

void AccessLogFile::flush() {
  {
    std::lock_guard<std::mutex> lock(flush_mu_);
    flush_requested_ = true;
  }
  flush_cv_.notify_one();
}

void AccessLogFile::flushThread() {
  std::unique_lock<std::mutex> lock(flush_mu_);
  for (;;) {
    flush_cv_.wait_for(lock, options_.flush_interval, [this] { return flush_requested_ || stopping_; });
    const bool stopping = stopping_;
    flush_requested_ = false;
    lock.unlock();
    writeOut();
    lock.lock();
    if (stopping) return;
  }
}

void AccessLogFile::writeOut() {
  std::string pending;
  for (size_t i = 0; i < kSlots; ++i) {
    Slot& slot = slots_[i];
    std::string taken;
    {
      std::lock_guard<std::mutex> lock(slot.mu);
      if (slot.buffer.empty()) continue;
      taken.swap(slot.buffer);
    }
    pending += taken;
  }
  size_t off = 0;
  while (off < pending.size()) {
    const ssize_t n = ::write(fd_, pending.data() + off, pending.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      write_failures_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    off += static_cast<size_t>(n);
  }
  bytes_written_.fetch_add(pending.size(), std::memory_order_relaxed);
}

void AccessLog::log(const StreamInfo& info, size_t worker) const {
  thread_local std::string line;
  line.clear();
  formatter_.formatTo(info, line);
  file_->write(line, worker);
}

absl::StatusOr<std::shared_ptr<AccessLogFile>> AccessLogFactory::file(const std::string& path) {
  if (auto it = files_.find(path); it != files_.end()) {
    if (auto existing = it->second.lock()) return existing;
  }
  auto opened = AccessLogFile::open(path, options_);
  if (!opened.ok()) return opened.status();
  files_[path] = *opened;
  return *opened;
}

absl::StatusOr<AccessLogFactory::Prepared> AccessLogFactory::prepare(
    const config::AccessLogConfig& config) {
  const std::string where = absl::StrCat("access_log '", config.name, "'");
  if (config.has_filter) {
    return absl::UnimplementedError(absl::StrCat(where, ".filter: access log filters are not supported"));
  }
  const std::string type = typeName(config.type_url.empty() ? config.config.type_url() : config.type_url);
  absl::StatusOr<Formatter> formatter = Formatter::create(kDefaultFormat);
  std::string path;
  if (type == kFileType) {
    envoy::extensions::access_loggers::file::v3::FileAccessLog msg;
    if (!config.config.UnpackTo(&msg)) {
      return absl::InvalidArgumentError(absl::StrCat(where, ".typed_config: cannot unpack ", type));
    }
    using F = envoy::extensions::access_loggers::file::v3::FileAccessLog;
    const std::string cfg = absl::StrCat(where, ".typed_config");
    switch (msg.access_log_format_case()) {
      case F::kLogFormat: formatter = fromSubstitution(msg.log_format(), cfg + ".log_format"); break;
      case F::kFormat: formatter = Formatter::create(msg.format()); break;
      // Envoy renders every value of the deprecated json_format as a string.
      case F::kJsonFormat: formatter = Formatter::createJson(msg.json_format(), false); break;
      case F::kTypedJsonFormat: formatter = Formatter::createJson(msg.typed_json_format()); break;
      default: break;
    }
    path = msg.path().empty() ? config.path : msg.path();
    if (path.empty()) return absl::InvalidArgumentError(absl::StrCat(cfg, ".path: must not be empty"));
  } else if (type == kStdoutType || type == kStderrType) {
    const std::string cfg = absl::StrCat(where, ".typed_config.log_format");
    if (type == kStdoutType) {
      envoy::extensions::access_loggers::stream::v3::StdoutAccessLog msg;
      if (!config.config.UnpackTo(&msg)) {
        return absl::InvalidArgumentError(absl::StrCat(where, ".typed_config: cannot unpack ", type));
      }
      if (msg.has_log_format()) formatter = fromSubstitution(msg.log_format(), cfg);
      path = "/dev/stdout";
    } else {
      envoy::extensions::access_loggers::stream::v3::StderrAccessLog msg;
      if (!config.config.UnpackTo(&msg)) {
        return absl::InvalidArgumentError(absl::StrCat(where, ".typed_config: cannot unpack ", type));
      }
      if (msg.has_log_format()) formatter = fromSubstitution(msg.log_format(), cfg);
      path = "/dev/stderr";
    }
  } else {
    return absl::InvalidArgumentError(absl::StrCat(where, ".typed_config: unsupported access logger ", type));
  }
  if (!formatter.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": ", formatter.status().message()));
  }
  return Prepared{*std::move(formatter), std::move(path)};
}

absl::StatusOr<AccessLogConstSharedPtr> AccessLogFactory::create(const config::AccessLogConfig& config) {
  auto prepared = prepare(config);
  if (!prepared.ok()) return prepared.status();
  auto f = file(prepared->path);
  if (!f.ok()) return f.status();
  return std::make_shared<const AccessLog>(config.name, std::move(prepared->formatter), std::move(*f));
}

absl::Status checkAccessLogFormats(const config::Snapshot& snapshot) {
  for (size_t l = 0; l < snapshot.listeners.size(); ++l) {
    const config::ListenerConfig& listener = snapshot.listeners[l];
    auto check = [&](const config::FilterChainConfig& chain, const std::string& chain_path) {
      if (!chain.http_connection_manager && !chain.tcp_proxy) return absl::OkStatus();
      const auto& logs = chain.http_connection_manager ? chain.http_connection_manager->access_logs
                                                       : chain.tcp_proxy->access_logs;
      for (size_t i = 0; i < logs.size(); ++i) {
        auto prepared = AccessLogFactory::prepare(logs[i]);
        if (prepared.ok()) continue;
        // The HCM or TCP proxy is the chain's only network filter (both are terminal).
        return absl::InvalidArgumentError(absl::StrCat(
            chain_path, ".filters[0].typed_config.access_log[", i, "]: ",
            prepared.status().message()));
      }
      return absl::OkStatus();
    };
    const std::string path = absl::StrCat("static_resources.listeners[", l, "]");
    for (size_t c = 0; c < listener.filter_chains.size(); ++c) {
      auto s = check(listener.filter_chains[c], absl::StrCat(path, ".filter_chains[", c, "]"));
      if (!s.ok()) return s;
    }
    if (listener.default_filter_chain) {
      auto s = check(*listener.default_filter_chain, path + ".default_filter_chain");
      if (!s.ok()) return s;
    }
  }
  return absl::OkStatus();
}


}  // namespace turnout::proxy::access_log

#pragma GCC diagnostic pop
