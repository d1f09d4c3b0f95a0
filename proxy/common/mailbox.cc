#include "proxy/common/mailbox.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <system_error>
#include <utility>

namespace turnout::proxy {
namespace {

int makeEventFd() {
  const int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
  return fd;
}

}  // namespace

Mailbox::Mailbox(asio::io_context& io) : event_(io, makeEventFd()) { arm(); }

Mailbox::~Mailbox() {
  boost::system::error_code ec;
  event_.close(ec);
}

void Mailbox::post(std::function<void()> fn) {
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(std::move(fn));
    wake = !woken_;
    woken_ = true;
  }
  if (!wake) return;  // the owning thread has not drained the last write yet
  const uint64_t one = 1;
  // Cannot fail short of a closed descriptor: the counter is reset at
  // each drain, far from its 2^64 - 2 limit.
  [[maybe_unused]] const ssize_t n = ::write(event_.native_handle(), &one, sizeof(one));
}

void Mailbox::arm() {
  event_.async_wait(StreamDescriptor::wait_read, [this](const boost::system::error_code& ec) {
    if (ec) return;  // closed: the io_context is going away
    drain();
    arm();
  });
}

void Mailbox::drain() {
  uint64_t count = 0;
  [[maybe_unused]] const ssize_t n = ::read(event_.native_handle(), &count, sizeof(count));
  {
    std::lock_guard<std::mutex> lock(mu_);
    batch_.swap(queue_);
    woken_ = false;
  }
  for (auto& fn : batch_) fn();
  batch_.clear();
}

}  // namespace turnout::proxy
