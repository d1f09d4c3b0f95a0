// Mailbox: another thread's work reaches an io_context that takes no lock
// (BOOST_ASIO_CONCURRENCY_HINT_UNSAFE, as a worker's), all of it, in order.

#include "proxy/common/mailbox.h"

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "tests/support/eventually.h"

namespace turnout::proxy {
namespace {

using namespace std::chrono_literals;

TEST_CASE("work posted from other threads runs on the owner's thread, in each poster's order",
          "[mailbox]") {
  asio::io_context io{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE};
  Mailbox mailbox(io);
  const std::thread::id owner = std::this_thread::get_id();
  constexpr int kThreads = 4, kEach = 5000;
  std::vector<std::vector<int>> seen(kThreads);  // written on the owner's thread only
  std::atomic<bool> wrong_thread{false};
  int ran = 0;
  std::vector<std::thread> posters;
  for (int t = 0; t < kThreads; ++t) {
    posters.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        mailbox.post([&, t, i] {
          if (std::this_thread::get_id() != owner) wrong_thread = true;
          seen[t].push_back(i);
          ++ran;
        });
      }
    });
  }
  const bool all = test::eventually(
      io, [&] { return ran == kThreads * kEach; }, 10000ms);
  for (auto& p : posters) p.join();
  REQUIRE(all);
  CHECK_FALSE(wrong_thread);
  for (int t = 0; t < kThreads; ++t) {
    REQUIRE(seen[t].size() == static_cast<size_t>(kEach));
    for (int i = 0; i < kEach; ++i) REQUIRE(seen[t][i] == i);
  }
}

TEST_CASE(
    "work posted before the owner runs or by the work itself runs, and what never ran "
    "is destroyed with the mailbox",
    "[mailbox]") {
  asio::io_context io{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE};
  auto mailbox = std::make_unique<Mailbox>(io);
  std::vector<int> order;
  mailbox->post([&] {
    order.push_back(1);
    mailbox->post([&] { order.push_back(3); });  // from the owner's thread: the next batch
  });
  mailbox->post([&] { order.push_back(2); });
  REQUIRE(test::eventually(
      io, [&] { return order.size() == 3; }, 5000ms));
  CHECK(order == std::vector<int>{1, 2, 3});

  auto held = std::make_shared<int>(7);
  std::weak_ptr<int> watch = held;
  mailbox->post([held = std::move(held)] {});
  mailbox.reset();  // never ran: its captures go with the mailbox
  CHECK(watch.expired());
}

}  // namespace
}  // namespace turnout::proxy
