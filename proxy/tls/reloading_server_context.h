#pragma once

// Certificate rotation for a downstream TLS context (Kubernetes rewrites
// mounted secret files in place, by swapping a symlink): keeps the config and
// rebuilds the ServerContext when one of its source files changes.
//
// Main thread only (it reads files): the integrator calls maybeReload() on a
// timer and, when it returns true, posts current() to the workers, which use
// it for new connections. Connections in flight keep the context they
// started with (shared_ptr). Not thread-safe.

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "proxy/tls/tls_context.h"

namespace turnout::proxy::tls {

class ReloadingServerContext {
 public:
  // Builds the first context; fails as ServerContext::create does.
  static absl::StatusOr<std::unique_ptr<ReloadingServerContext>> create(
      envoy::extensions::transport_sockets::tls::v3::DownstreamTlsContext config,
      std::string field_path, SecretResolver secrets);

  // The context for new connections.
  ServerContextConstSharedPtr current() const { return current_; }

  // Checks each source file: stat (mtime, size, inode, device) first, then a
  // hash of the content when the stat changed. When a content changed,
  // rebuilds the context: true when current() changed, false when nothing
  // did, an error (naming the field path) when the new files are invalid, in
  // which case current() stays the old context. A failed rotation is reported
  // once; the next change of the files is tried again.
  absl::StatusOr<bool> maybeReload();

  uint64_t reloads() const { return reloads_; }
  uint64_t reloadFailures() const { return reload_failures_; }

 private:
  struct FileState {
    std::string path;
    bool exists = false;
    int64_t mtime_ns = 0;
    int64_t size = 0;
    uint64_t inode = 0;
    uint64_t device = 0;
    uint64_t content_hash = 0;
  };
  static FileState statFile(const std::string& path);
  static bool sameStat(const FileState& a, const FileState& b);
  static uint64_t hashFile(const std::string& path);
  std::vector<FileState> snapshotFiles(const std::vector<std::string>& paths) const;

  ReloadingServerContext(envoy::extensions::transport_sockets::tls::v3::DownstreamTlsContext config,
                         std::string field_path, SecretResolver secrets)
      : config_(std::move(config)),
        field_path_(std::move(field_path)),
        secrets_(std::move(secrets)) {}

  envoy::extensions::transport_sockets::tls::v3::DownstreamTlsContext config_;
  std::string field_path_;
  SecretResolver secrets_;
  ServerContextConstSharedPtr current_;
  std::vector<FileState> files_;
  uint64_t reloads_ = 0;
  uint64_t reload_failures_ = 0;
};

// A listener's TLS context as connections see it: current() on any worker
// (an atomic load per handshake), maybeReload() on the main thread, which
// swaps in the rebuilt context when the certificate files rotate. A
// connection keeps the context it handshook with.
class ServerContextSlot {
 public:
  explicit ServerContextSlot(std::unique_ptr<ReloadingServerContext> reloading)
      : reloading_(std::move(reloading)), current_(reloading_->current()) {}

  ServerContextConstSharedPtr current() const { return current_.load(std::memory_order_acquire); }
  // Main thread only. As ReloadingServerContext::maybeReload().
  absl::StatusOr<bool> maybeReload() {
    auto changed = reloading_->maybeReload();
    if (changed.ok() && *changed) current_.store(reloading_->current(), std::memory_order_release);
    return changed;
  }

 private:
  std::unique_ptr<ReloadingServerContext> reloading_;
  std::atomic<ServerContextConstSharedPtr> current_;
};

using ServerContextSlotSharedPtr = std::shared_ptr<ServerContextSlot>;

}  // namespace turnout::proxy::tls
