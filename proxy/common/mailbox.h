#pragma once

// Work other threads hand to one io_context's thread (a worker): a
// mutex-guarded queue and an eventfd that the io_context's reactor watches.
//
// Why: every asio::post into an io_context from another thread needs the
// scheduler's mutex, and so does every turn of its run loop, whoever posted:
// pthread_mutex_lock/unlock came to about 340 instructions of each HTTP/1.1
// request and 450 of each h2c one (bench/compare/instructions.sh). With
// everything from other threads coming through a Mailbox, the io_context
// takes BOOST_ASIO_CONCURRENCY_HINT_UNSAFE and its run loop has no lock.
// The lock here is taken only when another thread posts (config updates,
// host sets, ejections) and once per batch on the owning thread.
//
// post() from any thread; the functions run on the io_context's thread, in
// the order they were posted. Constructed (and the eventfd registered with
// the reactor) before that thread runs the io_context; destroyed after it
// stopped: what was never run is destroyed with the Mailbox.

#include <functional>
#include <mutex>
#include <vector>

#include "proxy/common/asio.h"

namespace turnout::proxy {

class Mailbox {
 public:
  explicit Mailbox(asio::io_context& io);
  ~Mailbox();
  Mailbox(const Mailbox&) = delete;
  Mailbox& operator=(const Mailbox&) = delete;

  // Any thread.
  void post(std::function<void()> fn);

 private:
  void arm();
  void drain();

  StreamDescriptor event_;  // an eventfd
  std::mutex mu_;
  std::vector<std::function<void()>> queue_;  // guarded by mu_
  bool woken_ = false;                        // guarded by mu_: an eventfd write is pending
  std::vector<std::function<void()>> batch_;  // the owning thread's, reused
};

}  // namespace turnout::proxy
