#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include "envoy/extensions/access_loggers/file/v3/file.pb.h"
#include "envoy/extensions/access_loggers/stream/v3/stream.pb.h"
#include "google/protobuf/struct.pb.h"
#include "proxy/access_log/access_log.h"
#include "proxy/access_log/formatter.h"

namespace turnout::proxy::access_log {
namespace {

using namespace std::chrono_literals;

// 2016-04-15T20:17:00.310Z
std::chrono::system_clock::time_point startTime() {
  return std::chrono::system_clock::time_point(std::chrono::seconds(1460751420)) + 310ms;
}

struct Request {
  HeaderMap request_headers;
  HeaderMap response_headers;
  StreamInfo info;
  Request() {
    request_headers.add(":method", "GET");
    request_headers.add(":path", "/api/v1?q=1");
    request_headers.add(":authority", "example.com");
    request_headers.add("user-agent", "curl/7.88.1");
    request_headers.add("x-request-id", "abc-123");
    response_headers.add("x-envoy-upstream-service-time", "7");
    info.start_time = startTime();
    info.request_headers = &request_headers;
    info.response_headers = &response_headers;
    info.response_code = 200;
    info.bytes_received = 12;
    info.bytes_sent = 345;
    info.duration = 9ms + 500us;
    info.last_downstream_rx_byte = 1ms;
    info.first_upstream_rx_byte = 8ms;
    info.upstream_host = "10.0.0.1:8080";
    info.upstream_cluster = "backend";
    info.downstream_remote_address = "192.168.1.5:51234";
    info.downstream_local_address = "[::1]:10000";
    info.route_name = "r1";
    info.connection_id = 17;
    info.routing_key = "sandbox-42";
    info.response_code_details = "via_upstream";
  }
};

std::string render(std::string_view format, const StreamInfo& info) {
  auto f = Formatter::create(format);
  REQUIRE(f.ok());
  return f->format(info);
}

TEST_CASE("the default format renders Envoy's line", "[access_log]") {
  Request r;
  CHECK(render(kDefaultFormat, r.info) ==
        "[2016-04-15T20:17:00.310Z] \"GET /api/v1?q=1 HTTP/1.1\" 200 - 12 345 9 7 \"-\" \"curl/7.88.1\" "
        "\"abc-123\" \"example.com\" \"10.0.0.1:8080\"\n");
}

TEST_CASE("the default format prints - for everything unset", "[access_log]") {
  StreamInfo info;
  info.start_time = startTime();
  info.protocol.clear();
  CHECK(render(kDefaultFormat, info) ==
        "[2016-04-15T20:17:00.310Z] \"- - -\" 0 - 0 0 - - \"-\" \"-\" \"-\" \"-\" \"-\"\n");
}

TEST_CASE("command operators render their stream values", "[access_log]") {
  Request r;
  r.info.response_flags.set(ResponseFlag::UpstreamConnectionFailure);
  r.info.response_flags.set(ResponseFlag::NoHealthyUpstream);
  r.info.original_path = "/orig";
  auto [format, expected] = GENERATE(table<std::string, std::string>({
      {"%PROTOCOL%", "HTTP/1.1"},
      {"%RESPONSE_CODE%", "200"},
      {"%RESPONSE_FLAGS%", "UH,UF"},
      {"%RESPONSE_CODE_DETAILS%", "via_upstream"},
      {"%BYTES_RECEIVED% %BYTES_SENT%", "12 345"},
      {"%DURATION% %REQUEST_DURATION% %RESPONSE_DURATION%", "9 1 8"},
      {"%UPSTREAM_HOST% %UPSTREAM_CLUSTER%", "10.0.0.1:8080 backend"},
      {"%DOWNSTREAM_REMOTE_ADDRESS%", "192.168.1.5:51234"},
      {"%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%", "192.168.1.5"},
      {"%DOWNSTREAM_LOCAL_ADDRESS%", "[::1]:10000"},
      {"%DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%", "::1"},
      {"%ROUTE_NAME% %CONNECTION_ID% %ROUTING_KEY%", "r1 17 sandbox-42"},
      {"%REQ(:METHOD)% %REQ(USER-AGENT)%", "GET curl/7.88.1"},
      {"%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%", "/orig"},
      {"%REQ(X-MISSING?:AUTHORITY)%", "example.com"},
      {"%REQ(USER-AGENT):4%", "curl"},
      {"%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% %RESP(X-NONE)%", "7 -"},
      {"%TRAILER(GRPC-STATUS)%", "-"},
      {"100%% done", "100% done"},
      {"%START_TIME(%Y/%m/%d %H:%M:%S)%", "2016/04/15 20:17:00"},
      {"%START_TIME(%s.%3f)%", "1460751420.310"},
      {"%START_TIME(%f)%", "310000000"},
      {"plain text", "plain text"},
  }));
  INFO(format);
  CHECK(render(format, r.info) == expected);
}

TEST_CASE("response flags render in Envoy's order, comma-joined", "[access_log]") {
  ResponseFlags flags;
  CHECK(flags.toShortString() == "-");
  flags.set(ResponseFlag::DownstreamRemoteReset);
  flags.set(ResponseFlag::NoRouteFound);
  flags.set(ResponseFlag::FailedLocalHealthCheck);
  CHECK(flags.toShortString() == "LH,NR,DR");
  CHECK(responseFlagShortName(ResponseFlag::UpstreamRetryLimitExceeded) == "URX");
  CHECK(responseFlagShortName(ResponseFlag::DownstreamProtocolError) == "DPE");
  CHECK(responseFlagShortName(ResponseFlag::UpstreamMaxStreamDurationReached) == "UMSDR");
}

TEST_CASE("an unknown operator is a config error naming it", "[access_log]") {
  auto f = Formatter::create("%NOT_A_THING%");
  REQUIRE_FALSE(f.ok());
  CHECK(f.status().message() == "Not supported field in StreamInfo: NOT_A_THING");
  CHECK_FALSE(Formatter::create("%REQ()%").ok());
  CHECK_FALSE(Formatter::create("%REQ(X").ok());
  CHECK_FALSE(Formatter::create("%DURATION").ok());
}

TEST_CASE("json_format emits one sorted object per line with typed numbers", "[access_log]") {
  Request r;
  google::protobuf::Struct s;
  (*s.mutable_fields())["code"].set_string_value("%RESPONSE_CODE%");
  (*s.mutable_fields())["method"].set_string_value("%REQ(:METHOD)%");
  (*s.mutable_fields())["path"].set_string_value("path=%REQ(:PATH)%");
  (*s.mutable_fields())["missing"].set_string_value("%REQ(X-NONE)%");
  (*s.mutable_fields())["n"].set_number_value(1.5);
  auto f = Formatter::createJson(s);
  REQUIRE(f.ok());
  CHECK(f->format(r.info) ==
        "{\"code\":200,\"method\":\"GET\",\"missing\":null,\"n\":1.5,\"path\":\"path=/api/v1?q=1\"}\n");
}

TEST_CASE("json_format without preserved types renders numbers as strings", "[access_log]") {
  // Envoy's deprecated FileAccessLog.json_format: "All values are rendered as strings."
  Request r;
  google::protobuf::Struct s;
  (*s.mutable_fields())["code"].set_string_value("%RESPONSE_CODE%");
  (*s.mutable_fields())["nested"].mutable_struct_value()->mutable_fields()->operator[]("c")
      .set_string_value("%RESPONSE_CODE%");
  auto f = Formatter::createJson(s, false);
  REQUIRE(f.ok());
  CHECK(f->format(r.info) == "{\"code\":\"200\",\"nested\":{\"c\":\"200\"}}\n");
}

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = 5000ms) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::yield();
  }
  return pred();
}

TEST_CASE("the file sink writes lines from several workers via its flush thread", "[access_log]") {
  const std::string path = "/tmp/turnout_access_log_test_" + std::to_string(::getpid());
  std::remove(path.c_str());
  {
    AccessLogFile::Options options;
    options.flush_interval = 20ms;
    auto file = AccessLogFile::open(path, options);
    REQUIRE(file.ok());
    (*file)->write("one\n", 0);
    (*file)->write("two\n", 1);
    (*file)->flush();
    CHECK(eventually([&] { return (*file)->bytesWritten() == 8; }));
    const std::string contents = readFile(path);
    CHECK(contents.size() == 8);
    CHECK(contents.find("one\n") != std::string::npos);
    CHECK(contents.find("two\n") != std::string::npos);
    (*file)->write("three\n", 2);
  }  // destruction writes what is left
  CHECK(readFile(path).find("three\n") != std::string::npos);
  std::remove(path.c_str());
}

TEST_CASE("a full buffer is flushed without waiting for the interval", "[access_log]") {
  const std::string path = "/tmp/turnout_access_log_full_" + std::to_string(::getpid());
  std::remove(path.c_str());
  AccessLogFile::Options options;
  options.flush_interval = std::chrono::hours(1);
  options.min_flush_bytes = 10;
  auto file = AccessLogFile::open(path, options);
  REQUIRE(file.ok());
  (*file)->write("0123456789abc\n", 0);
  CHECK(eventually([&] { return readFile(path) == "0123456789abc\n"; }));
  std::remove(path.c_str());
}

TEST_CASE("the factory builds a file access log from FileAccessLog config", "[access_log]") {
  const std::string path = "/tmp/turnout_access_log_factory_" + std::to_string(::getpid());
  std::remove(path.c_str());
  envoy::extensions::access_loggers::file::v3::FileAccessLog msg;
  msg.set_path(path);
  msg.mutable_log_format()->mutable_text_format_source()->set_inline_string("%RESPONSE_CODE% %ROUTING_KEY%\n");
  config::AccessLogConfig cfg;
  cfg.name = "envoy.access_loggers.file";
  cfg.sink = config::AccessLogConfig::Sink::File;
  cfg.path = path;
  cfg.config.PackFrom(msg);
  cfg.type_url = cfg.config.type_url();
  AccessLogFactory factory(AccessLogFile::Options{10ms, 64 * 1024});
  auto log = factory.create(cfg);
  REQUIRE(log.ok());
  Request r;
  (*log)->log(r.info, 0);
  CHECK(eventually([&] { return readFile(path) == "200 sandbox-42\n"; }));
  auto again = factory.create(cfg);
  REQUIRE(again.ok());
  CHECK((*again)->file() == (*log)->file());
  std::remove(path.c_str());
}

TEST_CASE("the factory rejects filters and bad formats, naming the field", "[access_log]") {
  envoy::extensions::access_loggers::stream::v3::StdoutAccessLog msg;
  config::AccessLogConfig cfg;
  cfg.name = "stdout";
  cfg.sink = config::AccessLogConfig::Sink::Stdout;
  cfg.config.PackFrom(msg);
  cfg.type_url = cfg.config.type_url();
  AccessLogFactory factory;
  auto ok = factory.create(cfg);
  REQUIRE(ok.ok());
  CHECK((*ok)->file()->path() == "/dev/stdout");

  cfg.has_filter = true;
  auto filtered = factory.create(cfg);
  REQUIRE_FALSE(filtered.ok());
  CHECK(filtered.status().message().find("filter") != std::string::npos);

  cfg.has_filter = false;
  msg.mutable_log_format()->mutable_text_format_source()->set_inline_string("%BOGUS%");
  cfg.config.PackFrom(msg);
  auto bad = factory.create(cfg);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().message().find("Not supported field in StreamInfo: BOGUS") != std::string::npos);
  CHECK(bad.status().message().find("log_format") != std::string::npos);
}

}  // namespace
}  // namespace turnout::proxy::access_log
