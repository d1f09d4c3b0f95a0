// The gRPC half of local replies (proxy/stream/local_reply.h): which requests
// are gRPC, Envoy's HTTP -> gRPC status mapping and grpc-message encoding.

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

TEST_CASE("HTTP statuses map to gRPC statuses as Envoy's httpToGrpcStatus", "[grpc]") {
  CHECK(httpToGrpcStatus(400) == 13);  // INTERNAL
  CHECK(httpToGrpcStatus(401) == 16);  // UNAUTHENTICATED
  CHECK(httpToGrpcStatus(403) == 7);   // PERMISSION_DENIED
  CHECK(httpToGrpcStatus(404) == 12);  // UNIMPLEMENTED
  CHECK(httpToGrpcStatus(429) == 14);  // UNAVAILABLE
  CHECK(httpToGrpcStatus(502) == 14);
  CHECK(httpToGrpcStatus(503) == 14);
  CHECK(httpToGrpcStatus(504) == 14);
  CHECK(httpToGrpcStatus(408) == 2);   // UNKNOWN
  CHECK(httpToGrpcStatus(500) == 2);
  CHECK(httpToGrpcStatus(200) == 2);
}

TEST_CASE("grpc-message is percent-encoded outside ' '..'}' and for '%'", "[grpc]") {
  std::string out = "stale";
  percentEncodeGrpcMessage("no healthy upstream", out);
  CHECK(out == "no healthy upstream");
  percentEncodeGrpcMessage("100% done~\n\xc3\xa9", out);
  CHECK(out == "100%25 done%7E%0A%C3%A9");
  percentEncodeGrpcMessage("", out);
  CHECK(out.empty());
}

}  // namespace
}  // namespace turnout::proxy
