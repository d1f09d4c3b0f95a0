#pragma once

// A wake-up for one coroutine, given by code on the same io_context thread.
//
// turnout used an Asio steady_timer at time max() for this (async_wait to
// sleep, cancel() to wake). Each such sleep costs the reactor: expires_at()
// cancels (reactor mutex), async_wait() inserts into the timer queue (mutex
// again), cancel() takes it out (and again) and completes through the
// scheduler: about 2,000 instructions of an h2c request, whose connection
// and stream sleep on three of them (bench/compare/instructions.sh). A
// Signal keeps the waiting coroutine's handler and posts it when woken:
// no timer queue, no mutex (a post from the io_context's own thread goes to
// its private queue).
//
// - async_wait(token): completes with no error at notify(), with `ec` at
//   fire(ec) (a deadline's callback passes asio::error::timed_out), with
//   operation_aborted when another wait replaces it. One waiter at a time.
// - notify() with nobody waiting does nothing: the waiter re-checks its
//   condition before it sleeps, as with the timer.
// - notifyNow() runs the waiter here and now instead, until it next
//   suspends (its coroutine resumes inside the caller's call): no trip
//   through the scheduler, and no reactor poll before it (Asio queues a
//   post behind the reactor's next turn). Only where the caller's state is
//   consistent and the waiter may run: never from inside a codec callback.
// - Destroyed with a waiter (only when its io_context is torn down with
//   coroutines suspended): the handler is dropped, not called, as the
//   timer service's shutdown does.
//
// Single-threaded, like the io_context it belongs to.

#include <memory>
#include <utility>

#include "proxy/common/asio.h"

namespace turnout::proxy {

class Signal {
 public:
  explicit Signal(Executor ex) : ex_(std::move(ex)) {}
  ~Signal() { waiter_.reset(); }
  Signal(const Signal&) = delete;
  Signal& operator=(const Signal&) = delete;

  template <typename Token>
  auto async_wait(Token&& token) {
    return asio::async_initiate<Token, void(boost::system::error_code)>(
        [this](auto handler) {
          fire(asio::error::operation_aborted);
          waiter_ = std::make_unique<Waiter<decltype(handler)>>(std::move(handler));
        },
        token);
  }

  bool waiting() const { return waiter_ != nullptr; }
  void notify() { fire(boost::system::error_code()); }
  void notifyNow() {
    if (!waiter_) return;
    std::unique_ptr<WaiterBase> w = std::move(waiter_);
    w->invoke(boost::system::error_code());
  }
  void fire(boost::system::error_code ec) {
    if (!waiter_) return;
    std::unique_ptr<WaiterBase> w = std::move(waiter_);
    w->post(ex_, ec);
  }

 private:
  struct WaiterBase {
    virtual ~WaiterBase() = default;
    virtual void post(const Executor& ex, boost::system::error_code ec) = 0;
    virtual void invoke(boost::system::error_code ec) = 0;
  };
  template <typename Handler>
  struct Waiter final : WaiterBase {
    explicit Waiter(Handler h) : handler(std::move(h)) {}
    void post(const Executor& ex, boost::system::error_code ec) override {
      asio::post(ex, [h = std::move(handler), ec]() mutable { std::move(h)(ec); });
    }
    void invoke(boost::system::error_code ec) override {
      Handler h(std::move(handler));
      std::move(h)(ec);
    }
    Handler handler;
  };

  Executor ex_;
  std::unique_ptr<WaiterBase> waiter_;
};

}  // namespace turnout::proxy
