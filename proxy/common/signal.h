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

#include <cstddef>
#include <new>
#include <type_traits>
#include <utility>

#include "proxy/common/asio.h"

namespace turnout::proxy {

class Signal {
 public:
  explicit Signal(Executor ex) : ex_(std::move(ex)) {}
  ~Signal() { reset(); }
  Signal(const Signal&) = delete;
  Signal& operator=(const Signal&) = delete;

  template <typename Token>
  auto async_wait(Token&& token) {
    return asio::async_initiate<Token, void(boost::system::error_code)>(
        [this](auto handler) {
          fire(asio::error::operation_aborted);
          using Handler = decltype(handler);
          Box<Handler>::make(storage_, std::move(handler));
          ops_ = &kOps<Handler>;
        },
        token);
  }

  bool waiting() const { return ops_ != nullptr; }
  // Whether a waiter's handler of type Handler is kept in the Signal
  // itself (no allocation per wait). For tests.
  template <typename Handler>
  static constexpr bool keepsInPlace() {
    return Box<Handler>::kInPlace;
  }
  void notify() { fire(boost::system::error_code()); }
  void notifyNow() {
    if (ops_ != nullptr)
      std::exchange(ops_, nullptr)->invoke(storage_, boost::system::error_code());
  }
  void fire(boost::system::error_code ec) {
    if (ops_ != nullptr) std::exchange(ops_, nullptr)->post(storage_, ex_, ec);
  }

 private:
  // The waiter's handler lives in the Signal itself when it fits (a
  // coroutine's, as waitOn() gives: Asio 1.18's awaitable_thread, 32
  // bytes, and the result pointer; signal_test checks that it fits), else
  // on the heap with its pointer here: a wait allocates nothing, where a
  // heap waiter per wait cost an allocation, a free and their cache misses
  // per wake-up. Each operation moves the handler out and destroys the
  // stored one before it runs it, and waiting() is false by then: the
  // handler may wait on this Signal again.
  static constexpr std::size_t kInline = 6 * sizeof(void*);
  struct Ops {
    void (*post)(void* storage, const Executor& ex, boost::system::error_code ec);
    void (*invoke)(void* storage, boost::system::error_code ec);
    void (*destroy)(void* storage);
  };
  template <typename Handler>
  struct Box {
    static constexpr bool kInPlace = sizeof(Handler) <= kInline &&
                                     alignof(Handler) <= alignof(std::max_align_t) &&
                                     std::is_nothrow_move_constructible_v<Handler>;
    static void make(void* storage, Handler&& h) {
      if constexpr (kInPlace) {
        new (storage) Handler(std::move(h));
      } else {
        *static_cast<Handler**>(storage) = new Handler(std::move(h));
      }
    }
    static Handler* get(void* storage) {
      if constexpr (kInPlace) {
        return std::launder(static_cast<Handler*>(storage));
      } else {
        return *static_cast<Handler**>(storage);
      }
    }
    static Handler take(void* storage) {
      Handler* stored = get(storage);
      Handler h(std::move(*stored));
      destroy(storage);
      return h;
    }
    static void destroy(void* storage) {
      if constexpr (kInPlace) {
        get(storage)->~Handler();
      } else {
        delete get(storage);
      }
    }
    static void post(void* storage, const Executor& ex, boost::system::error_code ec) {
      asio::post(ex, [h = take(storage), ec]() mutable { std::move(h)(ec); });
    }
    static void invoke(void* storage, boost::system::error_code ec) {
      Handler h = take(storage);
      std::move(h)(ec);
    }
  };
  template <typename Handler>
  static constexpr Ops kOps = {&Box<Handler>::post, &Box<Handler>::invoke, &Box<Handler>::destroy};

  // Destroyed with a waiter (only when its io_context is torn down with
  // coroutines suspended): the handler is dropped, not called.
  void reset() {
    if (ops_ != nullptr) std::exchange(ops_, nullptr)->destroy(storage_);
  }

  Executor ex_;
  const Ops* ops_ = nullptr;
  alignas(std::max_align_t) unsigned char storage_[kInline];
};

}  // namespace turnout::proxy
