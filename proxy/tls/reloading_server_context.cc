#include "proxy/tls/reloading_server_context.h"

#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "proxy/common/xx_hash.h"

namespace turnout::proxy::tls {

absl::StatusOr<std::unique_ptr<ReloadingServerContext>> ReloadingServerContext::create(
    envoy::extensions::transport_sockets::tls::v3::DownstreamTlsContext config,
    std::string field_path, SecretResolver secrets) {
  std::unique_ptr<ReloadingServerContext> r(
      new ReloadingServerContext(std::move(config), std::move(field_path), std::move(secrets)));
  // The files are fingerprinted after the build (only the build knows which
  // files it read): a rotation in that instant waits for the next change.
  auto ctx = ServerContext::create(r->config_, r->field_path_, r->secrets_);
  if (!ctx.ok()) return ctx.status();
  r->current_ = *std::move(ctx);
  r->files_ = r->snapshotFiles(r->current_->sourceFiles());
  return r;
}

ReloadingServerContext::FileState ReloadingServerContext::statFile(const std::string& path) {
  FileState f;
  f.path = path;
  struct stat st {};
  // stat, not lstat: a Kubernetes secret volume swaps the ..data symlink.
  if (::stat(path.c_str(), &st) != 0) return f;
  f.exists = true;
  f.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  f.size = static_cast<int64_t>(st.st_size);
  f.inode = static_cast<uint64_t>(st.st_ino);
  f.device = static_cast<uint64_t>(st.st_dev);
  return f;
}

bool ReloadingServerContext::sameStat(const FileState& a, const FileState& b) {
  return a.exists == b.exists && a.mtime_ns == b.mtime_ns && a.size == b.size &&
         a.inode == b.inode && a.device == b.device;
}

uint64_t ReloadingServerContext::hashFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return 0;
  std::ostringstream out;
  out << in.rdbuf();
  return xxHash64(out.str());
}

std::vector<ReloadingServerContext::FileState> ReloadingServerContext::snapshotFiles(
    const std::vector<std::string>& paths) const {
  std::vector<FileState> out;
  out.reserve(paths.size());
  for (const std::string& p : paths) {
    FileState f = statFile(p);
    if (f.exists) f.content_hash = hashFile(p);
    out.push_back(std::move(f));
  }
  return out;
}

absl::StatusOr<bool> ReloadingServerContext::maybeReload() {
  bool content_changed = false;
  for (FileState& old : files_) {
    FileState now = statFile(old.path);
    if (sameStat(old, now)) continue;
    now.content_hash = now.exists ? hashFile(old.path) : 0;
    if (now.exists != old.exists || now.content_hash != old.content_hash) content_changed = true;
    old = std::move(now);  // a touch without a change is not looked at again
  }
  if (!content_changed) return false;
  auto ctx = ServerContext::create(config_, field_path_, secrets_);
  if (!ctx.ok()) {
    ++reload_failures_;
    return ctx.status();
  }
  current_ = *std::move(ctx);
  files_ = snapshotFiles(current_->sourceFiles());
  ++reloads_;
  return true;
}

}  // namespace turnout::proxy::tls
