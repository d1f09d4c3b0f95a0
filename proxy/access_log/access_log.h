#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "absl/status/statusor.h"
#include "config/snapshot/snapshot.h"
#include "proxy/access_log/formatter.h"
#include "proxy/access_log/stream_info.h"

namespace turnout::proxy::access_log {

// An append-only log file (or /dev/stdout, /dev/stderr) written by workers
// without blocking on I/O, as Envoy's AccessLogFileImpl: each worker appends
// to its own buffer slot (a per-slot mutex held only for the append, and by
// the flush thread only for a swap, so workers never contend with each other
// or wait on the disk); a dedicated flush thread writes the buffers out every
// flush_interval (1 s) or as soon as a slot holds min_flush_bytes (64 KiB).
// Lines are never split. Shared by every access log naming the same path;
// the flush thread writes what is left when the last reference goes.
class AccessLogFile {
 public:
  static constexpr size_t kSlots = 64;
  struct Options {
    std::chrono::milliseconds flush_interval{1000};
    size_t min_flush_bytes = 64 * 1024;
  };

  // Opens `path` for append (creating it 0644); "/dev/stdout" and
  // "/dev/stderr" use the process's descriptors.
  static absl::StatusOr<std::shared_ptr<AccessLogFile>> open(const std::string& path, Options options);
  static absl::StatusOr<std::shared_ptr<AccessLogFile>> open(const std::string& path) {
    return open(path, Options{});
  }
  ~AccessLogFile();
  AccessLogFile(const AccessLogFile&) = delete;
  AccessLogFile& operator=(const AccessLogFile&) = delete;

  // Worker-side: appends `data` to slot `worker % kSlots`.
  void write(std::string_view data, size_t worker);
  // Asks the flush thread to write everything now (does not wait).
  void flush();
  const std::string& path() const { return path_; }
  uint64_t bytesWritten() const { return bytes_written_.load(std::memory_order_relaxed); }
  uint64_t writeFailures() const { return write_failures_.load(std::memory_order_relaxed); }

 private:
  struct alignas(64) Slot {
    std::mutex mu;
    std::string buffer;
  };
  AccessLogFile(std::string path, int fd, bool owns_fd, Options options);
  void flushThread();
  void writeOut();

  const std::string path_;
  const int fd_;
  const bool owns_fd_;
  const Options options_;
  std::unique_ptr<Slot[]> slots_;
  std::mutex flush_mu_;
  std::condition_variable flush_cv_;
  bool flush_requested_ = false;
  bool stopping_ = false;
  std::atomic<uint64_t> bytes_written_{0};
  std::atomic<uint64_t> write_failures_{0};
  std::thread thread_;
};

// One configured access log: a compiled format and where its lines go.
// Immutable and shared by every worker; log() runs on the worker at
// ActiveStream::onComplete and only formats and appends to the worker's slot.
class AccessLog {
 public:
  AccessLog(std::string name, Formatter formatter, std::shared_ptr<AccessLogFile> file)
      : name_(std::move(name)), formatter_(std::move(formatter)), file_(std::move(file)) {}

  void log(const StreamInfo& info, size_t worker) const;
  const std::string& name() const { return name_; }
  const Formatter& formatter() const { return formatter_; }
  const std::shared_ptr<AccessLogFile>& file() const { return file_; }

 private:
  std::string name_;
  Formatter formatter_;
  std::shared_ptr<AccessLogFile> file_;
};
using AccessLogConstSharedPtr = std::shared_ptr<const AccessLog>;

// Builds AccessLogs from config::AccessLogConfig on the main thread. Files
// are opened here (config time) and shared by path across access logs.
// Supports envoy.extensions.access_loggers.file.v3.FileAccessLog and
// stream.v3.{Stdout,Stderr}AccessLog with log_format (text_format,
// text_format_source.inline_string, json_format) or the deprecated
// format/json_format fields; `filter` is rejected.
class AccessLogFactory {
 public:
  AccessLogFactory() = default;
  explicit AccessLogFactory(AccessLogFile::Options options) : options_(options) {}

  absl::StatusOr<AccessLogConstSharedPtr> create(const config::AccessLogConfig& config);

  // What create() checks, without opening the file: the logger type and its
  // format, compiled.
  struct Prepared {
    Formatter formatter;
    std::string path;
  };
  static absl::StatusOr<Prepared> prepare(const config::AccessLogConfig& config);

 private:
  absl::StatusOr<std::shared_ptr<AccessLogFile>> file(const std::string& path);

  AccessLogFile::Options options_;
  std::map<std::string, std::weak_ptr<AccessLogFile>> files_;
};

// The access logs of every HTTP connection manager and TCP proxy of `snapshot`'s listeners
// checked as AccessLogFactory::create would (format strings compiled; no file
// opened). Errors name the bootstrap path:
// `static_resources.listeners[0].filter_chains[0].filters[0].typed_config.
// access_log[0]: ...`. --mode validate and serve both call it right after
// SnapshotBuilder::load, so a bad format fails both the same way. Any thread.
absl::Status checkAccessLogFormats(const config::Snapshot& snapshot);

}  // namespace turnout::proxy::access_log
