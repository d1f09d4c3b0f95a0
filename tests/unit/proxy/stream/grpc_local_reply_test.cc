// The gRPC half of local replies (proxy/stream/local_reply.h): which requests
// are gRPC (the status map and grpc-message encoding are the codec's:
// tests/unit/proxy/codec/grpc_framing_test.cc).

#include "proxy/stream/local_reply.h"

#include <string>

#include <catch2/catch.hpp>

namespace turnout::proxy {
namespace {

TEST_CASE("gRPC content types are application/grpc and application/grpc+x only", "[grpc]") {
  CHECK(isGrpcContentType("application/grpc"));
  CHECK(isGrpcContentType("application/grpc+proto"));
  CHECK(isGrpcContentType("application/grpc+json"));
  CHECK_FALSE(isGrpcContentType("application/grpc-web"));
  CHECK_FALSE(isGrpcContentType("application/grpc-web+proto"));
  CHECK_FALSE(isGrpcContentType("application/grpcx"));
  CHECK_FALSE(isGrpcContentType("application/json"));
  CHECK_FALSE(isGrpcContentType(""));
}

}  // namespace
}  // namespace turnout::proxy
