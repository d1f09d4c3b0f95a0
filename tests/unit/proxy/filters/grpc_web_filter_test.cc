#include "proxy/filters/grpc_web_filter.h"

#include <catch2/catch.hpp>

#include <string>

#include "proxy/codec/grpc_framing.h"

namespace turnout::proxy {
namespace {

// What GrpcWebFilter sees of its stream: the head, and whether it started a
// translation.
class Callbacks : public StreamDecoderFilterCallbacks {
 public:
  RequestHead head;
  bool started = false;
  bool text_request = false;
  bool text_response = false;

  RequestHead& requestHead() override { return head; }
  routing::RequestView requestView() override { return head.view(scratch_); }
  void setRoutingKey(std::string_view) override {}
  stats::Shard& shard() override { std::abort(); }
  const stats::HttpConnManagerStats& hcmStats() override { std::abort(); }
  bool healthCheckFailed() override { return false; }
  void localReply(uint16_t, std::string_view, std::string_view) override {}
  void setResponseFlag(access_log::ResponseFlag) override {}
  void startGrpcWeb(bool text_req, bool text_resp) override {
    started = true;
    text_request = text_req;
    text_response = text_resp;
  }

 private:
  std::vector<routing::HeaderEntry> scratch_;
};

std::string header(const HeaderMap& h, std::string_view name) {
  const std::string_view v = h.get(name);
  return v.data() == nullptr ? "<none>" : std::string(v);
}

std::string str(std::span<const char> s) { return std::string(s.data(), s.size()); }

std::string message(const std::string& body) {
  const auto prefix = grpcFramePrefix(body.size());
  return std::string(prefix.data(), prefix.size()) + body;
}

std::string b64(const std::string& in) {
  std::string out;
  base64Encode(std::span<const char>(in.data(), in.size()), out);
  return out;
}

TEST_CASE("grpc_web turns a gRPC-Web request into gRPC", "[grpc_web]") {
  const GrpcWebFilter filter;
  for (const char* type : {"application/grpc-web", "application/grpc-web+proto",
                           "application/grpc-web-text", "application/grpc-web-text+proto"}) {
    CAPTURE(type);
    Callbacks cb;
    cb.head.method = "POST";
    cb.head.path = "/pkg.Svc/Call";
    cb.head.headers.add("content-type", type);
    cb.head.headers.add("content-length", "12");
    cb.head.headers.add("x-grpc-web", "1");
    CHECK(filter.decodeHeaders(cb) == FilterHeadersStatus::Continue);
    CHECK(cb.started);
    CHECK(cb.text_request == std::string_view(type).starts_with("application/grpc-web-text"));
    CHECK_FALSE(cb.text_response);
    CHECK(header(cb.head.headers, "content-type") == "application/grpc");
    CHECK(header(cb.head.headers, "content-length") == "<none>");
    CHECK(header(cb.head.headers, "te") == "trailers");
    CHECK(header(cb.head.headers, "grpc-accept-encoding") == "identity,deflate,gzip");
    CHECK(header(cb.head.headers, "x-grpc-web") == "1");
  }
}

TEST_CASE("grpc_web asks for a text response when accept names the text type", "[grpc_web]") {
  const GrpcWebFilter filter;
  Callbacks cb;
  cb.head.path = "/s/m";
  cb.head.headers.add("content-type", "application/grpc-web+proto");
  cb.head.headers.add("accept", "application/grpc-web-text");
  cb.head.headers.add("grpc-accept-encoding", "identity");
  cb.head.headers.add("te", "gzip");
  filter.decodeHeaders(cb);
  CHECK(cb.text_response);
  CHECK_FALSE(cb.text_request);
  CHECK(header(cb.head.headers, "grpc-accept-encoding") == "identity");  // the client's kept
  CHECK(header(cb.head.headers, "te") == "trailers");
  CHECK(cb.head.headers.count("te") == 1);
}

TEST_CASE("grpc_web leaves every other request alone", "[grpc_web]") {
  const GrpcWebFilter filter;
  // Envoy's isGrpcWebRequest compares the content-type exactly.
  for (const char* type : {"application/grpc", "application/json", "application/grpc-web; x=1",
                           "Application/grpc-web", "application/grpc-web+json"}) {
    CAPTURE(type);
    Callbacks cb;
    cb.head.path = "/s/m";
    cb.head.headers.add("content-type", type);
    cb.head.headers.add("content-length", "3");
    CHECK(filter.decodeHeaders(cb) == FilterHeadersStatus::Continue);
    CHECK_FALSE(cb.started);
    CHECK(header(cb.head.headers, "content-type") == type);
    CHECK(header(cb.head.headers, "content-length") == "3");
  }
  Callbacks none;
  none.head.path = "/";
  filter.decodeHeaders(none);
  CHECK_FALSE(none.started);
}

TEST_CASE("a binary gRPC-Web body passes as it is", "[grpc_web]") {
  GrpcWebStream web(false, false);
  std::string body = "\x01not base64 at all";
  CHECK(web.decodeRequestBody(body, true));
  CHECK(body == "\x01not base64 at all");
}

TEST_CASE("a text gRPC-Web body is decoded across chunks", "[grpc_web]") {
  GrpcWebStream web(true, false);
  const std::string msg = message("hello") + message("world!");
  // Each message encoded on its own, as a client may send them, then split
  // mid-group.
  const std::string text = b64(message("hello")) + b64(message("world!"));
  std::string decoded;
  for (size_t at = 0; at < text.size(); at += 5) {
    std::string chunk = text.substr(at, 5);
    const bool last = at + 5 >= text.size();
    REQUIRE(web.decodeRequestBody(chunk, last));
    decoded += chunk;
  }
  CHECK(decoded == msg);
}

TEST_CASE("a text gRPC-Web body that is not base64 is refused with Envoy's details", "[grpc_web]") {
  {
    GrpcWebStream web(true, false);
    std::string body = "AAAA*AAA";
    CHECK_FALSE(web.decodeRequestBody(body, false));
    CHECK(web.details() == "grpc_base_64_decode_failed");
  }
  {
    GrpcWebStream web(true, false);
    std::string body = "AAAAA";  // ends inside a group
    CHECK(web.decodeRequestBody(body, false));
    CHECK(body == std::string(3, '\0'));
    std::string rest = "AA";
    CHECK_FALSE(web.decodeRequestBody(rest, true));
    CHECK(web.details() == "grpc_base_64_decode_failed_bad_size");
  }
  CHECK(GrpcWebStream::kBadRequestBody == "Bad gRPC-web request, invalid base64 data.");
}

ResponseHead grpcHead(uint16_t status, const std::string& type) {
  ResponseHead head;
  head.status = status;
  if (!type.empty()) head.headers.add("content-type", type);
  head.headers.add("content-length", "10");
  return head;
}

TEST_CASE("a gRPC response goes back as gRPC-Web, trailers as the last message", "[grpc_web]") {
  GrpcWebStream web(false, false);
  ResponseHead head = grpcHead(200, "application/grpc");
  CHECK(web.onResponseHeaders(head, false));
  CHECK_FALSE(web.holding());
  CHECK(header(head.headers, "content-type") == "application/grpc-web+proto");
  CHECK(header(head.headers, "content-length") == "<none>");
  const std::string data = message("reply");
  CHECK(str(web.encodeData(std::span<const char>(data.data(), data.size()))) == data);
  HeaderMap trailers;
  trailers.add("grpc-status", "0");
  trailers.add("grpc-message", "ok");
  const std::string lines = "grpc-status:0\r\ngrpc-message:ok\r\n";
  CHECK(str(web.encodeTrailers(trailers)) ==
        std::string("\x80\0\0\0", 4) + static_cast<char>(lines.size()) + lines);
}

TEST_CASE("a text response is base64, chunk by chunk and the trailers too", "[grpc_web]") {
  GrpcWebStream web(false, true);
  ResponseHead head = grpcHead(200, "application/grpc+proto");
  CHECK(web.onResponseHeaders(head, false));
  CHECK(header(head.headers, "content-type") == "application/grpc-web-text+proto");
  const std::string data = message("abcd");
  CHECK(str(web.encodeData(std::span<const char>(data.data(), data.size()))) == b64(data));
  HeaderMap trailers;
  trailers.add("grpc-status", "0");
  const std::string lines = "grpc-status:0\r\n";
  CHECK(str(web.encodeTrailers(trailers)) ==
        b64(std::string("\x80\0\0\0", 4) + static_cast<char>(lines.size()) + lines));
}

TEST_CASE("a trailers-only gRPC response and a gRPC-Web one pass with the type set", "[grpc_web]") {
  GrpcWebStream web(false, false);
  ResponseHead trailers_only = grpcHead(200, "application/grpc");
  trailers_only.headers.add("grpc-status", "5");
  CHECK(web.onResponseHeaders(trailers_only, true));
  CHECK(header(trailers_only.headers, "grpc-status") == "5");
  CHECK(header(trailers_only.headers, "content-type") == "application/grpc-web+proto");
  ResponseHead already = grpcHead(200, "Application/GRPC-Web+proto ; charset=x");
  CHECK(web.onResponseHeaders(already, false));
  // A non-gRPC response without a body passes (Envoy's end_stream case).
  ResponseHead empty = grpcHead(503, "");
  CHECK(web.onResponseHeaders(empty, true));
  CHECK(header(empty.headers, "grpc-status") == "<none>");
}

TEST_CASE("a response that is not gRPC becomes a gRPC status from its code and body",
          "[grpc_web]") {
  for (const auto& [status, type, grpc_status] :
       {std::tuple<uint16_t, std::string, std::string>{503, "text/plain", "14"},
        {404, "text/html", "12"},
        {200, "application/json", "2"},
        {500, "application/grpc", "2"}}) {
    CAPTURE(status, type);
    GrpcWebStream web(false, true);
    ResponseHead head = grpcHead(status, type);
    CHECK_FALSE(web.onResponseHeaders(head, false));
    CHECK(web.holding());
    web.holdData(std::span<const char>("no healthy", 10));
    web.holdData(std::span<const char>(" upstream\n", 10));
    ResponseHead& out = web.finishHeld();
    CHECK(out.status == status);
    CHECK(header(out.headers, "grpc-status") == grpc_status);
    CHECK(header(out.headers, "grpc-message") == "no healthy upstream%0A");
    CHECK(header(out.headers, "content-length") == "0");
    CHECK(header(out.headers, "content-type") == "application/grpc-web-text+proto");
  }
}

TEST_CASE("a held body is bounded", "[grpc_web]") {
  GrpcWebStream web(false, false);
  ResponseHead head = grpcHead(502, "text/plain");
  REQUIRE_FALSE(web.onResponseHeaders(head, false));
  const std::string chunk(10000, 'x');
  for (int i = 0; i < 5; ++i) web.holdData(std::span<const char>(chunk.data(), chunk.size()));
  CHECK(header(web.finishHeld().headers, "grpc-message").size() == GrpcWebStream::kMaxHeldBody);
}

}  // namespace
}  // namespace turnout::proxy
