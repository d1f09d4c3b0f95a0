#pragma once

#include <sys/socket.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "config/control_plane/etcd_json.h"
#include "config/control_plane/store.h"

namespace turnout::control_plane {

// turnout-cp's shared store (`--store etcd://HOST:PORT[/PREFIX]`): the State in
// etcd (3.4 or later) through its v3 JSON gateway, so that several turnout-cp
// replicas serve the same state. Layout and requests: etcd_json.h.
//
// load() ranges the prefix at one revision and remembers the guard (the
// mod_revision of <prefix>/version). apply() is one txn guarded by it: when
// another replica wrote first the txn writes nothing and apply() is Aborted;
// the owner reloads. Both are blocking HTTP/1.1 requests with a short deadline
// (loopback or a nearby etcd), made on the owner's thread; a connection
// failure or timeout is Unavailable.
//
// watch() starts a thread that streams POST /v3/watch on the prefix and hands
// every change's revision to the callback; the owner reloads on its thread
// when isNewer() (its own writes come back too and are skipped). When the
// stream breaks (etcd restarted) it reconnects with back-off from the next
// revision and reports -1 once it is back, so that the owner reloads fully.
class EtcdStore : public Store {
 public:
  struct Options {
    absl::Duration request_timeout = absl::Seconds(2);
    absl::Duration max_backoff = absl::Seconds(2);
    // Called on the watch thread when the watch breaks (this library does not
    // log; main passes a logger).
    std::function<void(const absl::Status&)> on_watch_broken;
  };

  // Resolves the host and checks that etcd answers, retrying for up to `wait`.
  static absl::StatusOr<std::unique_ptr<EtcdStore>> connect(const EtcdEndpoint& endpoint,
                                                            absl::Duration wait, Options options);
  static absl::StatusOr<std::unique_ptr<EtcdStore>> connect(const EtcdEndpoint& endpoint,
                                                            absl::Duration wait) {
    return connect(endpoint, wait, Options());
  }
  ~EtcdStore() override;
  EtcdStore(const EtcdStore&) = delete;
  EtcdStore& operator=(const EtcdStore&) = delete;

  // Store
  absl::StatusOr<StoredState> load() override;
  absl::Status apply(const Change& change) override;
  std::string describe() const override { return endpoint_.url(); }
  void watch(ChangeCallback on_change) override;
  void unwatch() override;
  bool isNewer(int64_t revision) const override { return revision < 0 || revision > revision_; }

  // The store revision the last load() or apply() saw.
  int64_t revision() const { return revision_; }

 private:
  struct Address {
    sockaddr_storage storage{};
    socklen_t size = 0;
  };

  EtcdStore(EtcdEndpoint endpoint, std::vector<Address> addresses, Options options)
      : endpoint_(std::move(endpoint)), addresses_(std::move(addresses)), options_(options) {}

  // One POST on a fresh connection (Connection: close); the body of a 200.
  absl::StatusOr<std::string> post(std::string_view path, std::string_view body) const;
  absl::StatusOr<int> open(absl::Time deadline) const;
  void watchLoop(ChangeCallback on_change);
  // Streams one watch until it breaks or unwatch(); updates `next_revision`.
  absl::Status watchOnce(const ChangeCallback& on_change, int64_t& next_revision, bool& reported);
  // Sleeps up to `d`; false when unwatch() came first.
  bool sleepFor(absl::Duration d);

  const EtcdEndpoint endpoint_;
  // What the host resolved to at start (localhost: ::1 and 127.0.0.1), tried in order.
  const std::vector<Address> addresses_;
  const Options options_;
  // The owner's thread only.
  int64_t revision_ = 0;
  int64_t guard_ = 0;

  std::thread watcher_;
  int64_t watch_from_ = 0;  // set before the thread starts
  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<bool> stopping_{false};  // set under mu_; the thread polls it
};

}  // namespace turnout::control_plane
