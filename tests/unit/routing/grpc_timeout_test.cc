// gRPC on routes: the grpc-timeout request header as the stream's max
// duration when max_stream_duration.grpc_timeout_header_max is set (Envoy's
// ActiveStream::refreshDurationTimeout), and its parser
// (Grpc::Common::getGrpcTimeout).

#include <catch2/catch.hpp>

#include <chrono>
#include <optional>
#include <string>

#include "routing/route_table.h"
#include "tests/unit/routing/route_test_support.h"

namespace turnout::routing::test {
namespace {

using std::chrono::milliseconds;

TEST_CASE("grpc-timeout values parse as gRPC's PROTOCOL-HTTP2 says, rounding up", "[routing]") {
  auto [text, want] = GENERATE(table<std::string, std::optional<milliseconds>>({
      {"1H", milliseconds(3600000)},
      {"2M", milliseconds(120000)},
      {"3S", milliseconds(3000)},
      {"250m", milliseconds(250)},
      {"1500u", milliseconds(2)},
      {"1000u", milliseconds(1)},
      {"1n", milliseconds(1)},
      {"0m", milliseconds(0)},
      {"99999999S", milliseconds(99999999000)},
      {"123456789S", std::nullopt},  // more than 8 digits
      {"10", std::nullopt},          // no unit
      {"m", std::nullopt},           // no digits
      {"10x", std::nullopt},
      {"-1S", std::nullopt},
      {"1 S", std::nullopt},
      {"", std::nullopt},
  }));
  CAPTURE(text);
  CHECK(parseGrpcTimeout(text) == want);
}

struct Case {
  std::optional<milliseconds> header_max;
  std::optional<milliseconds> offset;
  std::string grpc_timeout;  // empty: no header
  std::optional<milliseconds> want;
};

TEST_CASE("grpc_timeout_header_max makes grpc-timeout the max stream duration", "[routing]") {
  // Envoy's refreshDurationTimeout: the header, capped by a non-zero max,
  // minus the offset; no (or a malformed) header: no limit from it.
  auto c = GENERATE(values<Case>({
      {std::nullopt, std::nullopt, "1S", std::nullopt},  // not configured
      {milliseconds(5000), std::nullopt, "1S", milliseconds(1000)},
      {milliseconds(5000), std::nullopt, "10S", milliseconds(5000)},
      {milliseconds(0), std::nullopt, "30S", milliseconds(30000)},  // 0: uncapped
      {milliseconds(5000), std::nullopt, "", std::nullopt},
      {milliseconds(5000), std::nullopt, "soon", std::nullopt},
      {milliseconds(0), std::nullopt, "", std::nullopt},
      {milliseconds(0), milliseconds(200), "1S", milliseconds(800)},
      {milliseconds(500), milliseconds(200), "1S", milliseconds(300)},  // cap, then offset
      {milliseconds(0), milliseconds(2000), "1S", milliseconds(0)},     // over at once
      {milliseconds(0), milliseconds(200), "0m", milliseconds(0)},
  }));
  Route r = prefixRoute("/", "c");
  r.route->timeout = milliseconds(7000);
  if (c.header_max) r.route->grpc_timeout_header_max = *c.header_max;
  if (c.offset) r.route->grpc_timeout_header_offset = *c.offset;
  auto t = mustCreate(singleVhost({r}));
  TestRequest req;
  req.header("content-type", "application/grpc");
  if (!c.grpc_timeout.empty()) req.header("grpc-timeout", c.grpc_timeout);
  const RequestView v = req.view();
  CAPTURE(c.grpc_timeout);
  const RouteDecision d = t->match(v, 0);
  CHECK(d.max_stream_duration == c.want);
  CHECK(d.timeout == milliseconds(7000));  // the route timeout is its own
}

}  // namespace
}  // namespace turnout::routing::test
