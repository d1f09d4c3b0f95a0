#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "proxy/admin/admin_server.h"
#include "proxy/common/asio.h"
#include "proxy/common/log.h"
#include "proxy/stats/store.h"

namespace turnout::proxy::admin {
namespace {

namespace http = beast::http;
using tcp = asio::ip::tcp;

class FakeSource : public AdminSource {
 public:
  ServerInfo serverInfo() const override {
    ServerInfo info;
    info.version = "turnout/0.1.0";
    info.state = state;
    info.uptime_current_epoch = std::chrono::seconds(12);
    info.uptime_all_epochs = std::chrono::seconds(12);
    info.command_line_options.concurrency = 2;
    info.node_id = "node-1";
    info.node_cluster = "c1";
    return info;
  }
  bool healthCheckFailed() const override { return hc_failed; }
  void setHealthCheckFailed(bool failed) override { hc_failed = failed; }
  std::string configDumpJson(const ConfigDumpParams& params, std::string& error) const override {
    last_dump = params;
    if (params.name_regex == "(") {
      error = "invalid name_regex";
      return "";
    }
    return "{\"configs\":[]}";
  }
  std::vector<ClusterStatus> clusters() const override {
    ClusterStatus c;
    c.name = "backend";
    HostStatus h;
    h.address = "10.0.0.1";
    h.port = 80;
    h.counters = {{"cx_total", 4}, {"rq_total", 7}};
    h.gauges = {{"cx_active", 1}};
    c.hosts.push_back(h);
    return {c};
  }
  std::vector<ListenerStatus> listeners() const override {
    return {{"ingress", "0.0.0.0", 10000}, {"v6", "::", 8080}};
  }
  void drainListeners(const DrainParams& params) override {
    ++drains;
    last_drain = params;
  }
  void quit() override { ++quits; }
  void onRuntimeUpdate(const std::map<std::string, std::string>& layer) override { runtime = layer; }

  ServerState state = ServerState::Live;
  bool hc_failed = false;
  mutable ConfigDumpParams last_dump;
  int drains = 0;
  DrainParams last_drain;
  int quits = 0;
  std::map<std::string, std::string> runtime;
};

struct Reply {
  unsigned status = 0;
  std::string body;
  std::string content_type;
  bool done = false;
  std::string error;
};

// One client connection that sends `targets` in order (keep-alive) and
// records each reply.
Awaitable<void> client(uint16_t port, http::verb verb, std::vector<std::string> targets,
                       std::vector<Reply>* replies) {
  auto executor = co_await asio::this_coro::executor;
  TcpStream stream(executor);
  stream.expires_after(std::chrono::seconds(5));
  co_await stream.async_connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port),
                                use_awaitable);
  beast::flat_buffer buffer;
  for (const std::string& target : targets) {
    http::request<http::string_body> req{verb, target, 11};
    req.set(http::field::host, "127.0.0.1");
    req.keep_alive(true);
    req.prepare_payload();
    stream.expires_after(std::chrono::seconds(5));
    co_await http::async_write(stream, req, use_awaitable);
    http::response<http::string_body> res;
    co_await http::async_read(stream, buffer, res, use_awaitable);
    Reply r;
    r.status = res.result_int();
    r.body = res.body();
    r.content_type = std::string(res[http::field::content_type]);
    r.done = true;
    replies->push_back(std::move(r));
  }
}

struct Fixture {
  asio::io_context ioc{1};
  FakeSource source;
  stats::Store store{1};
  std::unique_ptr<AdminServer> server;

  explicit Fixture(AdminServer::Options options = {}) {
    auto created = AdminServer::create(ioc, source, store, std::move(options));
    REQUIRE(created.ok());
    server = std::move(*created);
    server->start();
  }

  std::vector<Reply> send(http::verb verb, std::vector<std::string> targets) {
    std::vector<Reply> replies;
    bool finished = false;
    std::string failure;
    asio::co_spawn(ioc, client(server->port(), verb, targets, &replies),
                   [&finished, &failure](std::exception_ptr e) {
                     finished = true;
                     if (e) {
                       try {
                         std::rethrow_exception(e);
                       } catch (const std::exception& ex) {
                         failure = ex.what();
                       }
                     }
                   });
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!finished && std::chrono::steady_clock::now() < deadline) {
      ioc.run_one_for(std::chrono::milliseconds(100));
    }
    REQUIRE(finished);
    INFO(failure);
    REQUIRE(failure.empty());
    return replies;
  }
  Reply get(std::string target) { return send(http::verb::get, {std::move(target)}).at(0); }
  Reply post(std::string target) { return send(http::verb::post, {std::move(target)}).at(0); }
};

TEST_CASE("admin binds port 0 and writes its address to the address path", "[admin]") {
  const std::string path = "/tmp/turnout_admin_address_test_" + std::to_string(::getpid());
  AdminServer::Options options;
  options.address_path = path;
  Fixture f(options);
  CHECK(f.server->port() != 0);
  std::ifstream in(path);
  std::stringstream contents;
  contents << in.rdbuf();
  CHECK(contents.str() == "127.0.0.1:" + std::to_string(f.server->port()));
  std::remove(path.c_str());
}

TEST_CASE("ready reports LIVE with 200 and other states with 503", "[admin]") {
  Fixture f;
  Reply r = f.get("/ready");
  CHECK(r.status == 200);
  CHECK(r.body == "LIVE\n");
  f.source.state = ServerState::Initializing;
  r = f.get("/ready");
  CHECK(r.status == 503);
  CHECK(r.body == "INITIALIZING\n");
}

TEST_CASE("a failed health check makes ready report DRAINING until healthcheck/ok", "[admin]") {
  Fixture f;
  CHECK(f.post("/healthcheck/fail").body == "OK\n");
  CHECK(f.source.hc_failed);
  Reply r = f.get("/ready");
  CHECK(r.status == 503);
  CHECK(r.body == "DRAINING\n");
  f.post("/healthcheck/ok");
  CHECK(f.get("/ready").status == 200);
}

TEST_CASE("mutating endpoints refuse GET with 405 and do nothing", "[admin]") {
  Fixture f;
  for (const char* path : {"/healthcheck/fail", "/drain_listeners", "/quitquitquit", "/reset_counters",
                           "/runtime_modify?a=b", "/logging"}) {
    INFO(path);
    Reply r = f.get(path);
    CHECK(r.status == 405);
    CHECK(r.body == "Method GET not allowed, POST required.");
  }
  CHECK_FALSE(f.source.hc_failed);
  CHECK(f.source.drains == 0);
  CHECK(f.source.quits == 0);
  CHECK(f.server->runtimeAdminLayer().empty());
}

TEST_CASE("an unknown path gets 404 with the help text", "[admin]") {
  Fixture f;
  Reply r = f.get("/nope");
  CHECK(r.status == 404);
  CHECK(r.body.rfind("invalid path. admin commands are:\n", 0) == 0);
  CHECK(r.body.find("  /stats: print server stats\n") != std::string::npos);
  CHECK(f.get("/help").body.rfind("admin commands are:\n  /: Admin home page\n", 0) == 0);
}

TEST_CASE("keep-alive serves several requests on one connection", "[admin]") {
  Fixture f;
  auto replies = f.send(http::verb::get, {"/ready", "/help", "/ready"});
  REQUIRE(replies.size() == 3);
  CHECK(replies[2].body == "LIVE\n");
}

TEST_CASE("stats endpoints render text, json and prometheus", "[admin]") {
  Fixture f;
  f.store.shard(0).inc(f.store.counter("cluster.x.upstream_rq_total"), 5);
  Reply r = f.get("/stats?filter=upstream_rq_total");
  CHECK(r.status == 200);
  CHECK(r.body == "cluster.x.upstream_rq_total: 5\n");
  r = f.get("/stats?format=json&filter=upstream");
  CHECK(r.content_type == "application/json");
  CHECK(r.body == "{\"stats\":[{\"name\":\"cluster.x.upstream_rq_total\",\"value\":5}]}");
  const std::string prom =
      "# TYPE envoy_cluster_upstream_rq_total counter\n"
      "envoy_cluster_upstream_rq_total{envoy_cluster_name=\"x\"} 5\n\n";
  CHECK(f.get("/stats/prometheus?usedonly").body == prom);
  CHECK(f.get("/stats?format=prometheus&usedonly").body == prom);
}

TEST_CASE("bad stats params answer 400 with a reason", "[admin]") {
  Fixture f;
  Reply r = f.get("/stats?filter=(");
  CHECK(r.status == 400);
  CHECK(r.body.find("Invalid re2 regex") != std::string::npos);
  CHECK(f.get("/stats?format=xml").status == 400);
  CHECK(f.get("/clusters?format=xml").status == 400);
}

TEST_CASE("reset_counters zeroes counters", "[admin]") {
  Fixture f;
  f.store.shard(0).inc(f.store.counter("c"), 5);
  CHECK(f.post("/reset_counters").body == "OK\n");
  CHECK(f.get("/stats?filter=^c$").body == "c: 0\n");
}

TEST_CASE("server_info is ServerInfo JSON", "[admin]") {
  Fixture f;
  Reply r = f.get("/server_info");
  CHECK(r.status == 200);
  CHECK(r.content_type == "application/json");
  CHECK(r.body.find("\"version\": \"turnout/0.1.0\"") != std::string::npos);
  CHECK(r.body.find("\"state\": \"LIVE\"") != std::string::npos);
  CHECK(r.body.find("\"uptime_current_epoch\": \"12s\"") != std::string::npos);
  CHECK(r.body.find("\"concurrency\": 2") != std::string::npos);
  CHECK(r.body.find("\"id\": \"node-1\"") != std::string::npos);
}

TEST_CASE("clusters text lists limits and per-host lines", "[admin]") {
  Fixture f;
  Reply r = f.get("/clusters");
  CHECK(r.body ==
        "backend::observability_name::backend\n"
        "backend::default_priority::max_connections::1024\n"
        "backend::default_priority::max_pending_requests::1024\n"
        "backend::default_priority::max_requests::1024\n"
        "backend::default_priority::max_retries::3\n"
        "backend::high_priority::max_connections::1024\n"
        "backend::high_priority::max_pending_requests::1024\n"
        "backend::high_priority::max_requests::1024\n"
        "backend::high_priority::max_retries::3\n"
        "backend::added_via_api::false\n"
        "backend::10.0.0.1:80::cx_active::1\n"
        "backend::10.0.0.1:80::cx_total::4\n"
        "backend::10.0.0.1:80::rq_total::7\n"
        "backend::10.0.0.1:80::hostname::\n"
        "backend::10.0.0.1:80::health_flags::healthy\n"
        "backend::10.0.0.1:80::weight::1\n"
        "backend::10.0.0.1:80::region::\n"
        "backend::10.0.0.1:80::zone::\n"
        "backend::10.0.0.1:80::sub_zone::\n"
        "backend::10.0.0.1:80::canary::false\n"
        "backend::10.0.0.1:80::priority::0\n"
        "backend::10.0.0.1:80::success_rate::-1\n"
        "backend::10.0.0.1:80::local_origin_success_rate::-1\n");
  Reply j = f.get("/clusters?format=json");
  CHECK(j.content_type == "application/json");
  CHECK(j.body.find("\"cluster_statuses\"") != std::string::npos);
  CHECK(j.body.find("\"port_value\": 80") != std::string::npos);
}

TEST_CASE("listeners list name::address", "[admin]") {
  Fixture f;
  CHECK(f.get("/listeners").body == "ingress::0.0.0.0:10000\nv6::[::]:8080\n");
  CHECK(f.get("/listeners?format=json").body.find("\"listener_statuses\"") != std::string::npos);
}

TEST_CASE("config_dump passes its query through to the source", "[admin]") {
  Fixture f;
  Reply r = f.get("/config_dump?resource=dynamic_listeners&mask=a.b&name_regex=x.*&include_eds");
  CHECK(r.body == "{\"configs\":[]}");
  CHECK(f.source.last_dump.resource == "dynamic_listeners");
  CHECK(f.source.last_dump.mask == "a.b");
  CHECK(f.source.last_dump.name_regex == "x.*");
  CHECK(f.source.last_dump.include_eds);
  CHECK(f.get("/config_dump?name_regex=(").status == 400);
}

TEST_CASE("drain_listeners passes inboundonly and graceful", "[admin]") {
  Fixture f;
  CHECK(f.post("/drain_listeners?inboundonly&graceful").body == "OK\n");
  CHECK(f.source.drains == 1);
  CHECK(f.source.last_drain.inbound_only);
  CHECK(f.source.last_drain.graceful);
}

TEST_CASE("quitquitquit answers OK and then asks the source to quit", "[admin]") {
  Fixture f;
  CHECK(f.post("/quitquitquit").body == "OK\n");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (f.source.quits == 0 && std::chrono::steady_clock::now() < deadline) {
    f.ioc.run_one_for(std::chrono::milliseconds(50));
  }
  CHECK(f.source.quits == 1);
}

TEST_CASE("runtime_modify stores values shown by runtime", "[admin]") {
  Fixture f;
  CHECK(f.post("/runtime_modify").status == 400);
  CHECK(f.post("/runtime_modify?feature.x=on").body == "OK\n");
  CHECK(f.source.runtime.at("feature.x") == "on");
  CHECK(f.get("/runtime").body ==
        "{\"layers\":[\"admin\"],\"entries\":{\"feature.x\":{\"layer_values\":[\"on\"],\"final_value\":\"on\"}}}");
  f.post("/runtime_modify?feature.x=");
  CHECK(f.get("/runtime").body == "{\"layers\":[\"admin\"],\"entries\":{}}");
}

TEST_CASE("logging lists loggers and changes levels by name", "[admin]") {
  Fixture f;
  auto logger = componentLogger("admin_test_component");
  Reply r = f.post("/logging?admin_test_component=debug");
  CHECK(r.status == 200);
  CHECK(r.body.find("  admin_test_component: debug\n") != std::string::npos);
  CHECK(logger->level() == spdlog::level::debug);
  f.post("/logging?paths=admin_test_component:warning");
  CHECK(logger->level() == spdlog::level::warn);
  r = f.post("/logging?level=loud");
  CHECK(r.status == 404);
  CHECK(r.body.rfind("error: unknown logger level\n", 0) == 0);
  CHECK(f.post("/logging?no_such_logger=info").body.rfind("error: unknown logger name\n", 0) == 0);
  logger->set_level(spdlog::level::info);
}

TEST_CASE("an oversized request body gets 413", "[admin]") {
  AdminServer::Options options;
  options.max_request_body_bytes = 16;
  Fixture f(options);
  AdminResponse r = f.server->handle("GET", "/ready");
  CHECK(r.status == 200);
  std::vector<Reply> replies;
  bool finished = false;
  asio::co_spawn(
      f.ioc,
      [](uint16_t port, std::vector<Reply>* out) -> Awaitable<void> {
        auto executor = co_await asio::this_coro::executor;
        TcpStream stream(executor);
        stream.expires_after(std::chrono::seconds(5));
        co_await stream.async_connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port),
                                      use_awaitable);
        http::request<http::string_body> req{http::verb::post, "/runtime_modify", 11};
        req.body() = std::string(100, 'x');
        req.prepare_payload();
        co_await http::async_write(stream, req, use_awaitable);
        beast::flat_buffer buffer;
        http::response<http::string_body> res;
        co_await http::async_read(stream, buffer, res, use_awaitable);
        out->push_back(Reply{res.result_int(), res.body(), "", true, ""});
      }(f.server->port(), &replies),
      [&finished](std::exception_ptr) { finished = true; });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!finished && std::chrono::steady_clock::now() < deadline) f.ioc.run_one_for(std::chrono::milliseconds(100));
  REQUIRE(replies.size() == 1);
  CHECK(replies[0].status == 413);
}

}  // namespace
}  // namespace turnout::proxy::admin
