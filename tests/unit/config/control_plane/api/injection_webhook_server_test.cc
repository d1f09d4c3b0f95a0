#include "config/control_plane/api/injection_webhook_server.h"

#include <catch2/catch.hpp>

#include <boost/beast/ssl.hpp>

#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "absl/strings/str_replace.h"
#include "tests/support/eventually.h"
#include "tests/unit/proxy/tls/tls_test_support.h"

// The webhook's HTTPS server on loopback: the TLS flags' errors, a review
// over HTTPS, plaintext refused on the TLS port, malformed reviews answered
// 400 while it keeps serving, and a rotated certificate picked up.

namespace turnout::control_plane {
namespace {

namespace http = beast::http;
namespace ssl = asio::ssl;
using proxy::tls::test::KeyPair;
using proxy::tls::test::makeCert;
using proxy::tls::test::TempDir;

std::string readFixture(const std::string& name) {
  std::ifstream in(std::string(TURNOUT_SOURCE_DIR) + "/tests/configs/kubernetes/" + name, std::ios::binary);
  REQUIRE(in.good());
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

struct Pki {
  KeyPair ca = makeCert({.common_name = "webhook test CA", .is_ca = true});
  KeyPair server = makeCert({.common_name = "turnout-cp.turnout-system.svc",
                             .sans = "DNS:turnout-cp.turnout-system.svc,IP:127.0.0.1"},
                            &ca);
  KeyPair rotated = makeCert({.common_name = "rotated.turnout-system.svc",
                              .sans = "DNS:turnout-cp.turnout-system.svc,IP:127.0.0.1"},
                             &ca);
  KeyPair other = makeCert({.common_name = "other"}, &ca);
};

const Pki& pki() {
  static const Pki* p = new Pki();
  return *p;
}

// What one client call saw.
struct Call {
  bool done = false;
  boost::system::error_code ec;  // connect, handshake, write or read
  unsigned status = 0;
  std::string body;
  std::string peer_cn;  // HTTPS: the server certificate's CN
  std::string raw;      // plaintext calls: every byte the server sent
};
using CallPtr = std::shared_ptr<Call>;

// The co_spawn completion: an exception that escaped a call ends it with an error.
struct EndCall {
  CallPtr out;
  void operator()(std::exception_ptr e) const {
    if (e) {
      out->ec = asio::error::fault;
      out->done = true;
    }
  }
};

Awaitable<void> httpsCall(std::shared_ptr<ssl::context> ctx, uint16_t port, std::string target,
                          std::string content_type, std::string body, CallPtr out) {
  auto executor = co_await asio::this_coro::executor;
  beast::ssl_stream<TcpStream> stream(TcpStream(executor), *ctx);
  auto& tcp = beast::get_lowest_layer(stream);
  tcp.expires_after(std::chrono::seconds(5));
  boost::system::error_code ec;
  co_await tcp.async_connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port),
                             asio::redirect_error(use_awaitable, ec));
  if (!ec)
    co_await stream.async_handshake(ssl::stream_base::client,
                                    asio::redirect_error(use_awaitable, ec));
  if (!ec) {
    if (X509* peer = SSL_get1_peer_certificate(stream.native_handle())) {
      char cn[256] = {0};
      X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn, sizeof(cn));
      out->peer_cn = cn;
      X509_free(peer);
    }
    http::request<http::string_body> req{http::verb::post, target, 11};
    req.set(http::field::host, "turnout-cp.turnout-system.svc");
    if (!content_type.empty()) req.set(http::field::content_type, content_type);
    req.body() = std::move(body);
    req.prepare_payload();
    co_await http::async_write(stream, req, asio::redirect_error(use_awaitable, ec));
  }
  if (!ec) {
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    co_await http::async_read(stream, buffer, res, asio::redirect_error(use_awaitable, ec));
    out->status = res.result_int();
    out->body = res.body();
  }
  out->ec = ec;
  out->done = true;
}

Awaitable<void> plaintextCall(uint16_t port, std::string bytes, CallPtr out) {
  auto executor = co_await asio::this_coro::executor;
  TcpStream stream(executor);
  stream.expires_after(std::chrono::seconds(5));
  boost::system::error_code ec;
  co_await stream.async_connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port),
                                asio::redirect_error(use_awaitable, ec));
  if (!ec)
    co_await asio::async_write(stream, asio::buffer(bytes),
                               asio::redirect_error(use_awaitable, ec));
  while (!ec) {
    char buf[4096];
    const size_t n =
        co_await stream.async_read_some(asio::buffer(buf), asio::redirect_error(use_awaitable, ec));
    out->raw.append(buf, n);
  }
  out->ec = ec;
  out->done = true;
}

struct Fixture {
  TempDir dir;
  asio::io_context ioc;
  std::unique_ptr<InjectionWebhook> webhook;
  std::shared_ptr<ssl::context> client = std::make_shared<ssl::context>(ssl::context::tls_client);
  std::string cert_file;
  std::string key_file;

  Fixture() {
    cert_file = dir.write("tls.crt", pki().server.certPem());
    key_file = dir.write("tls.key", pki().server.keyPem());
    InjectionWebhook::Options options;
    options.address = "127.0.0.1";
    options.port = 0;
    options.tls_cert_file = cert_file;
    options.tls_key_file = key_file;
    options.reload_interval = std::chrono::milliseconds(20);
    auto created = InjectionWebhook::create(ioc, options);
    INFO(created.status().ToString());
    REQUIRE(created.ok());
    webhook = std::move(*created);
    webhook->start();
    const std::string ca = pki().ca.certPem();
    client->add_certificate_authority(asio::buffer(ca));
    client->set_verify_mode(ssl::verify_peer);
  }

  uint16_t port() const {
    const std::string a = webhook->boundAddress();
    return static_cast<uint16_t>(std::stoi(a.substr(a.rfind(':') + 1)));
  }

  CallPtr post(const std::string& body, const std::string& target = "/inject",
               const std::string& content_type = "application/json") {
    auto out = std::make_shared<Call>();
    asio::co_spawn(ioc, httpsCall(client, port(), target, content_type, body, out), EndCall{out});
    REQUIRE(test::eventually(ioc, [&] { return out->done; }, std::chrono::seconds(10)));
    return out;
  }
};

TEST_CASE("a review over HTTPS is answered with the patch", "[injection_webhook_server]") {
  Fixture f;
  CHECK(f.webhook->tls());
  const CallPtr c = f.post(readFixture("pod_plain.json"), "/inject?timeout=10s");
  INFO(c->ec.message());
  REQUIRE_FALSE(c->ec);
  CHECK(c->status == 200);
  CHECK(c->peer_cn == "turnout-cp.turnout-system.svc");
  CHECK(c->body.find("\"uid\":\"0df28fbd-5f5f-11e8-bc74-36e6bb280816\"") != std::string::npos);
  CHECK(c->body.find("\"patchType\":\"JSONPatch\"") != std::string::npos);
}

TEST_CASE("malformed reviews get 400 naming the field, and the webhook keeps serving",
          "[injection_webhook_server]") {
  Fixture f;
  const auto [fixture, error] = GENERATE(table<std::string, std::string>({
      {"malformed/not_json.txt", "\"error\":\"the body is not JSON"},
      {"malformed/missing_uid.json", "\"field\":\"request.uid\""},
      {"malformed/object_not_a_pod.json", "\"field\":\"request.object.kind\""},
  }));
  const CallPtr bad = f.post(readFixture(fixture));
  REQUIRE_FALSE(bad->ec);
  CHECK(bad->status == 400);
  INFO(bad->body);
  CHECK(bad->body.find(error) != std::string::npos);
  const CallPtr good = f.post(readFixture("pod_not_annotated.json"));
  REQUIRE_FALSE(good->ec);
  CHECK(good->status == 200);
}

TEST_CASE("plaintext HTTP on the TLS port gets no HTTP answer", "[injection_webhook_server]") {
  Fixture f;
  auto out = std::make_shared<Call>();
  const std::string body = readFixture("pod_plain.json");
  asio::co_spawn(f.ioc,
                 plaintextCall(f.port(),
                               "POST /inject HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                               "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body,
                               out),
                 EndCall{out});
  REQUIRE(test::eventually(f.ioc, [&] { return out->done; }, std::chrono::seconds(10)));
  CHECK(out->ec != beast::error::timeout);  // closed by the server, not left hanging
  CHECK(out->raw.find("HTTP/1.1") == std::string::npos);
  CHECK(out->raw.find("patch") == std::string::npos);
  const CallPtr after = f.post(body);  // and it still serves HTTPS
  CHECK(after->status == 200);
}

TEST_CASE("a rotated certificate serves new connections, a broken rotation keeps the old one",
          "[injection_webhook_server]") {
  Fixture f;
  CHECK(f.post(readFixture("pod_not_annotated.json"))->peer_cn == "turnout-cp.turnout-system.svc");
  // A broken rotation (a key that does not match) is refused: the old pair serves.
  f.dir.write("tls.crt", pki().rotated.certPem());
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
  test::eventually(f.ioc, [&] { return std::chrono::steady_clock::now() >= until; }, std::chrono::seconds(1));
  CHECK(f.post(readFixture("pod_not_annotated.json"))->peer_cn == "turnout-cp.turnout-system.svc");
  // The matching key arrives: the new certificate serves.
  f.dir.write("tls.key", pki().rotated.keyPem());
  std::string cn;
  CHECK(test::eventually(f.ioc, [&] {
    cn = f.post(readFixture("pod_not_annotated.json"))->peer_cn;
    return cn == "rotated.turnout-system.svc";
  }, std::chrono::seconds(10)));
}

TEST_CASE("the TLS files are checked at start with the flags' names", "[injection_webhook_server]") {
  // The generator holds names: each run of the case has its own directory.
  const auto [cert_name, key_name, error] = GENERATE(table<std::string, std::string, std::string>({
      {"missing.pem", "tls.key", "--webhook-tls-cert-file: cannot read '<missing.pem>': No such file"},
      {"tls.crt", "missing.pem", "--webhook-tls-key-file: cannot read '<missing.pem>': No such file"},
      {"junk.pem", "tls.key", "--webhook-tls-cert-file '<junk.pem>': contains no PEM certificate"},
      {"tls.crt", "junk.pem", "--webhook-tls-key-file '<junk.pem>'"},
      {"tls.key", "tls.key", "--webhook-tls-cert-file '<tls.key>': contains no PEM certificate"},
      {"tls.crt", "other.key", "--webhook-tls-key-file: the key in '<other.key>' does not match the certificate"},
      {"", "tls.key", "--webhook-tls-cert-file: cannot read '<>': Is a directory"},
  }));
  TempDir dir;
  dir.write("tls.crt", pki().server.certPem());
  dir.write("tls.key", pki().server.keyPem());
  dir.write("other.key", pki().other.keyPem());
  dir.write("junk.pem", "not a certificate\n");
  auto path = [&](const std::string& name) { return name.empty() ? dir.path() : dir.file(name); };
  std::string want = error;
  for (const std::string& name : {std::string("missing.pem"), std::string("junk.pem"), std::string("tls.key"),
                                  std::string("other.key"), std::string("")}) {
    want = absl::StrReplaceAll(want, {{"<" + name + ">", path(name)}});
  }
  auto tls = webhookTlsContext(path(cert_name), path(key_name));
  REQUIRE_FALSE(tls.ok());
  INFO(tls.status().message());
  CHECK(std::string(tls.status().message()).rfind(want, 0) == 0);
  REQUIRE(webhookTlsContext(dir.file("tls.crt"), dir.file("tls.key")).ok());
}

TEST_CASE("TLS or explicit plaintext, never both, never neither", "[injection_webhook_server]") {
  const auto [with_cert, with_key, plaintext, error] = GENERATE(table<bool, bool, bool, std::string>({
      {false, false, false, "--webhook-address needs --webhook-tls-cert-file and --webhook-tls-key-file"},
      {true, false, false, "--webhook-tls-cert-file needs --webhook-tls-key-file"},
      {false, true, false, "--webhook-tls-key-file needs --webhook-tls-cert-file"},
      {true, true, true, "--webhook-plaintext cannot be combined"},
  }));
  TempDir dir;
  asio::io_context ioc;
  InjectionWebhook::Options options;
  options.address = "127.0.0.1";
  if (with_cert) options.tls_cert_file = dir.write("tls.crt", pki().server.certPem());
  if (with_key) options.tls_key_file = dir.write("tls.key", pki().server.keyPem());
  options.plaintext = plaintext;
  auto created = InjectionWebhook::create(ioc, options);
  REQUIRE_FALSE(created.ok());
  INFO(created.status().message());
  CHECK(std::string(created.status().message()).rfind(error, 0) == 0);

  InjectionWebhook::Options plain;
  plain.address = "127.0.0.1";
  plain.plaintext = true;
  auto ok = InjectionWebhook::create(ioc, plain);
  REQUIRE(ok.ok());
  CHECK_FALSE((*ok)->tls());
}

TEST_CASE("only POST /inject with a JSON body is served", "[injection_webhook_server]") {
  const InjectionOptions options;
  auto call = [&](http::verb method, const std::string& target, const std::string& content_type) {
    proxy::admin::HttpRequest req{method, target, 11};
    if (!content_type.empty()) req.set(http::field::content_type, content_type);
    req.body() = readFixture("pod_plain.json");
    return InjectionWebhook::handle(req, options);
  };
  CHECK(call(http::verb::post, "/inject", "application/json").status == 200);
  CHECK(call(http::verb::post, "/inject?timeout=10s", "application/json; charset=utf-8").status == 200);
  CHECK(call(http::verb::post, "/inject", "").status == 200);
  const auto not_found = call(http::verb::post, "/", "application/json");
  CHECK(not_found.status == 404);
  CHECK(not_found.body.find("POST /inject") != std::string::npos);
  CHECK(call(http::verb::post, "/inject/x", "application/json").status == 404);
  const auto get = call(http::verb::get, "/inject", "");
  CHECK(get.status == 405);
  REQUIRE(get.headers.size() == 1);
  CHECK(get.headers[0] == std::pair<std::string, std::string>{"Allow", "POST"});
  CHECK(call(http::verb::post, "/inject", "application/x-www-form-urlencoded").status == 415);
}

}  // namespace
}  // namespace turnout::control_plane
