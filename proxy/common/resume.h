#pragma once

// co_await on an Asio operation without Asio 1.18's initiation coroutine.
//
// In Asio 1.18, `co_await socket.async_read_some(buf, use_awaitable)` runs
// the operation's initiation inside a coroutine of its own
// (async_result<use_awaitable_t>::initiate): per operation a frame is
// allocated, resumed, handed the result, popped, destroyed, and the result
// moved out of it, with two more indirect jumps (resume, destroy) for the
// branch predictor. A proxied request awaits about six such operations.
//
// `co_await resumeAfter(initiation, &out...)` does what that frame does
// without it: the caller suspends, the initiation gets a handler that is
// the caller's thread of execution (as Asio's own handler is, so the
// handler's executor and the stack unwinding at shutdown are Asio's), and
// on completion the handler stores its arguments through the pointers and
// resumes the caller directly. A null pointer drops that argument.
//
//   boost::system::error_code ec;
//   std::size_t n = 0;
//   co_await readSome(socket, asio::buffer(buf), &ec, &n);
//
// The results are written before the caller resumes and live in its frame
// (the pointers must point there, or to anything that outlives the wait).
// Works only inside an Awaitable<> coroutine on turnout's Executor: it uses
// the awaitable frame's await_transform for function objects, the hook
// Asio's initiation uses itself. Tied to Asio 1.18 (Boost 1.74, Debian 12):
// the static_assert below stops a build against another version, where the
// awaitable internals may differ.

#include <cstddef>
#include <tuple>
#include <utility>

#include "proxy/common/asio.h"

static_assert(BOOST_ASIO_VERSION / 100 == 1018,
              "resume.h relies on Asio 1.18's awaitable_thread and awaitable_frame_base");

namespace turnout {
namespace resume_detail {

using Thread = asio::detail::awaitable_thread<Executor>;
using Frame = asio::detail::awaitable_frame_base<Executor>;

// The completion handler: the suspended caller's thread of execution.
template <typename... Outs>
class Handler : public Thread {
 public:
  Handler(Thread* thread, std::tuple<Outs*...> outs) : Thread(std::move(*thread)), outs_(outs) {}
  Handler(Handler&&) noexcept = default;

  template <typename... Args>
  void operator()(Args&&... args) {
    static_assert(sizeof...(Args) == sizeof...(Outs), "one pointer per completion argument");
    store(std::index_sequence_for<Outs...>{}, std::forward<Args>(args)...);
    // The caller is the top of the stack: it resumes where it suspended,
    // and its next operation takes the thread from it again.
    this->top_of_stack_->attach_thread(this);
    this->pump();
  }

 private:
  template <std::size_t... I, typename... Args>
  void store(std::index_sequence<I...>, Args&&... args) {
    ((std::get<I>(outs_) != nullptr ? void(*std::get<I>(outs_) = std::forward<Args>(args))
                                    : void()),
     ...);
  }

  std::tuple<Outs*...> outs_;
};

// What the caller co_awaits: the awaitable frame runs it once the caller
// is suspended (so a completion on another thread cannot race the
// suspension; turnout's are on this one anyway).
template <typename Initiation, typename... Outs>
struct Start {
  Initiation initiation;
  std::tuple<Outs*...> outs;

  Thread* operator()(Frame* frame) {
    std::move(initiation)(Handler<Outs...>(frame->detach_thread(), outs));
    return nullptr;
  }
};

}  // namespace resume_detail

// `initiation(handler)` starts an operation whose completion arguments go
// to `outs` (in order; nullptr to drop one).
template <typename Initiation, typename... Outs>
resume_detail::Start<Initiation, Outs...> resumeAfter(Initiation initiation, Outs*... outs) {
  return {std::move(initiation), std::tuple<Outs*...>(outs...)};
}

// async_read_some: `*n` bytes, or `*ec`.
template <typename Stream>
auto readSome(Stream& stream, asio::mutable_buffer buffer, boost::system::error_code* ec,
              std::size_t* n) {
  return resumeAfter(
      [&stream, buffer](auto handler) { stream.async_read_some(buffer, std::move(handler)); }, ec,
      n);
}

// async_write of the whole buffer: `*ec` says whether it all went.
template <typename Stream>
auto writeAll(Stream& stream, asio::const_buffer buffer, boost::system::error_code* ec) {
  return resumeAfter(
      [&stream, buffer](auto handler) { asio::async_write(stream, buffer, std::move(handler)); },
      ec, static_cast<std::size_t*>(nullptr));
}

// A timer's or Signal's async_wait: `*ec` as the wait completes.
template <typename Waitable>
auto waitOn(Waitable& waitable, boost::system::error_code* ec) {
  return resumeAfter([&waitable](auto handler) { waitable.async_wait(std::move(handler)); }, ec);
}

}  // namespace turnout
