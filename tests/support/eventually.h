#pragma once

#include <chrono>

#include "proxy/common/asio.h"

namespace turnout::test {

// Runs `io` in 5 ms slices until `pred()` holds (true) or `limit` passes
// (false): a bounded wait for something asynchronous, never a sleep.
template <typename Pred>
bool eventually(asio::io_context& io, Pred pred,
                std::chrono::milliseconds limit = std::chrono::milliseconds(5000)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    io.restart();
    io.run_for(std::chrono::milliseconds(5));
  }
  return true;
}

}  // namespace turnout::test
