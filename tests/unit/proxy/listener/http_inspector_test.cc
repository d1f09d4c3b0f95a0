#include "proxy/listener/http_inspector.h"

#include <catch2/catch.hpp>

#include <string>

namespace turnout::proxy {
namespace {

TEST_CASE("the request line's version gives the plaintext application protocol", "[listener]") {
  CHECK(inspectHttp("GET / HTTP/1.1\r\nHost: a\r\n\r\n") == HttpInspection::Http11);
  CHECK(inspectHttp("POST /x?y=1 HTTP/1.1\n") == HttpInspection::Http11);
  CHECK(inspectHttp("GET / HTTP/1.0\r\n") == HttpInspection::Http10);
  // Any other version is http/1.0, as Envoy sets it.
  CHECK(inspectHttp("GET / HTTP/2.7\r\n") == HttpInspection::Http10);
  CHECK(inspectHttp("M-SEARCH * HTTP/1.1\r\n") == HttpInspection::Http11);
  CHECK(applicationProtocolOf(HttpInspection::Http11) == "http/1.1");
  CHECK(applicationProtocolOf(HttpInspection::Http10) == "http/1.0");
  CHECK(applicationProtocolOf(HttpInspection::Http2) == "h2c");
  CHECK(applicationProtocolOf(HttpInspection::NotHttp).empty());
}

TEST_CASE("the HTTP/2 client preface is h2c once all 24 bytes are there", "[listener]") {
  const std::string preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  CHECK(inspectHttp(preface) == HttpInspection::Http2);
  CHECK(inspectHttp(preface + "\x00\x00\x12\x04") == HttpInspection::Http2);
  for (size_t n = 1; n < preface.size(); ++n) {
    INFO(n);
    CHECK(inspectHttp(preface.substr(0, n)) == HttpInspection::NeedMore);
  }
  // "PRI * HTTP/2.0\r\n" then something else: a request line of version 2.0.
  CHECK(inspectHttp("PRI * HTTP/2.0\r\nX") == HttpInspection::Http10);
}

TEST_CASE("an unfinished request line asks for more, a malformed one is no HTTP", "[listener]") {
  const std::string line = "GET /path HTTP/1.1\r\n";
  for (size_t n = 0; n < line.size(); ++n) {
    INFO(n);
    CHECK(inspectHttp(line.substr(0, n)) == HttpInspection::NeedMore);
  }
  CHECK(inspectHttp("\r\nGET / HTTP/1.1\r\n") == HttpInspection::NotHttp);
  CHECK(inspectHttp(" GET / HTTP/1.1\r\n") == HttpInspection::NotHttp);
  CHECK(inspectHttp("GE(T / HTTP/1.1\r\n") == HttpInspection::NotHttp);
  CHECK(inspectHttp("GET  / HTTP/1.1\r\n") == HttpInspection::NotHttp);
  CHECK(inspectHttp("GET / HTTP/1.1 \r\n") == HttpInspection::NotHttp);
  CHECK(inspectHttp("GET / HTTP/x.1\r\n") == HttpInspection::NotHttp);
  CHECK(inspectHttp("GET / HTTP/1.1\rX") == HttpInspection::NotHttp);
  CHECK(inspectHttp("GET /\r\n") == HttpInspection::NotHttp);
  CHECK(inspectHttp(std::string("\x16\x03\x01\x02\x00", 5)) == HttpInspection::NotHttp);
  CHECK(inspectHttp(std::string("\x00\x00\x00\x0a", 4)) == HttpInspection::NotHttp);
}

}  // namespace
}  // namespace turnout::proxy
