#pragma once

#include <exception>
#include <string>

namespace turnout::proxy {

// The completion handler every asio::co_spawn gets (STYLE R8d; never a bare
// `detached`): an exception that escaped the coroutine is logged at error
// level, naming what the coroutine was, and goes no further, so one broken
// connection or loop cannot take its thread down. Copyable; `what` is a
// static description, `name` an optional instance name (a listener's).
struct LogEscapedException {
  const char* component;
  const char* what;
  std::string name = {};

  void operator()(std::exception_ptr e) const;
};

}  // namespace turnout::proxy
