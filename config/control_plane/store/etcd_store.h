#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "config/control_plane/state.h"
#include "config/control_plane/store.h"

namespace turnout::control_plane {

// turnout-cp's shared store: etcd v3 through its JSON gateway (HTTP/1.1 on
// the client port, /v3/kv/range, /v3/kv/txn, /v3/watch; keys and values
// base64), so that several turnout-cp replicas serve one state
// (docs/control_plane.md, "The store"). Layout under the prefix:
//   <prefix>/version          the config version (decimal)
//   <prefix>/r/<kind>/<name>  one resource: "<resource_version> <expires_at>\n<json>",
//                             expires_at in Unix nanoseconds or "-"
// A mutation is one transaction guarded by the version it follows (the
// version key's value, or its absence for version 0): the replica that
// writes second gets Aborted and reloads, so versions never fork.
//
// Requests are blocking, with a 5 s timeout, on the thread that owns the
// State (etcd is a local or nearby cluster); watch() runs its own thread.

namespace etcd {

struct Url {
  std::string host;
  uint16_t port = 2379;
  std::string prefix = "/turnout-cp";  // no trailing slash
};
// "etcd://HOST[:PORT][/PREFIX]"; errors say what is wrong.
absl::StatusOr<Url> parseUrl(std::string_view url);

// One resource's value, and back.
std::string encodeRecord(const StoredResource& r);
absl::StatusOr<StoredResource> decodeRecord(ResourceKind kind, std::string_view name,
                                            std::string_view value);

// The /v3/kv/txn body that writes `change` under `prefix`.
std::string txnRequest(const std::string& prefix, const Change& change);
// A /v3/kv/range answer for the prefix: the stored state, and the revision it
// was read at (the watch starts after it).
absl::StatusOr<StoredState> parseRange(const std::string& prefix, std::string_view json,
                                       int64_t* revision);

}  // namespace etcd

class EtcdStore final : public Store {
 public:
  // Connects (retrying for up to `wait`) and reads the state once.
  static absl::StatusOr<std::unique_ptr<EtcdStore>> open(const std::string& url,
                                                         absl::Duration wait = absl::Seconds(10));
  ~EtcdStore() override;

  absl::StatusOr<StoredState> load() override;
  absl::Status apply(const Change& change) override;
  std::string describe() const override;

  // Watches the prefix from the last load() on; `changed` is called (on the
  // watch thread: post it) after every batch of events, and after a
  // reconnect (events may have been missed). Until the destructor.
  void watch(std::function<void()> changed);

 private:
  explicit EtcdStore(etcd::Url url) : url_(std::move(url)) {}
  absl::StatusOr<std::string> post(const std::string& path, const std::string& body) const;
  void watchLoop(std::function<void()> changed);

  etcd::Url url_;
  std::atomic<int64_t> revision_{0};  // of the last load()
  std::atomic<bool> stopping_{false};
  std::mutex watch_mu_;
  int watch_fd_ = -1;  // guarded by watch_mu_
  std::thread watcher_;
};

}  // namespace turnout::control_plane
