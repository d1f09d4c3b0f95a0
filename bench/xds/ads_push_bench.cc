// ads-push-bench: how long turnout-cp's ADS server takes to get a config change
// to N connected xDS clients (issue 10: p99 <= 100 ms for 1,000 clients).
//
// One process, two threads: the ADS server (config/control_plane/server) on
// one io_context, N clients on another, each client turnout's own xDS client
// (proxy/xds/XdsStream over its own TCP connection, CDS wildcard, EDS and RDS
// by name). After every client holds the initial config, each round adds a
// sandbox (a new cluster, its assignment and new routes for every client)
// and measures, per client, the time from the server's update() call to the
// client having applied the new RouteConfiguration (its ACK is sent at that
// moment, in the same flush). Reports p50/p90/p99/max per round and the
// server thread's CPU time per update, as JSON.
//
// Usage: ads-push-bench [--clients N] [--rounds R] [--services S] [--sandboxes K] [--delta 0|1]

#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <future>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "config/control_plane/server/ads_server.h"
#include "config/control_plane/state.h"
#include "config/snapshot/discovery_response.h"
#include "proxy/common/log.h"
#include "proxy/stats/store.h"
#include "proxy/xds/xds_stream.h"

namespace tc = turnout::control_plane;
namespace tp = turnout::proxy;
namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

namespace {

double threadCpuMs() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

struct ClientState {
  std::atomic<int> route_updates{0};
  std::atomic<int64_t> last_route_ns{0};  // steady_clock time of the last RDS applied
};

double pct(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p / 100.0 * static_cast<double>(v.size())));
  return v[i];
}

}  // namespace

int main(int argc, char** argv) {
  int clients = 1000, rounds = 5, services = 50, sandboxes = 10, delta = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    const int v = std::atoi(argv[i + 1]);
    if (a == "--clients") clients = v;
    else if (a == "--rounds") rounds = v;
    else if (a == "--services") services = v;
    else if (a == "--sandboxes") sandboxes = v;
    else if (a == "--delta") delta = v;
    else {
      std::cerr << "usage: ads-push-bench [--clients N] [--rounds R] [--services S] [--sandboxes K] "
                   "[--delta 0|1]\n";
      return 2;
    }
  }
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < static_cast<rlim_t>(2 * clients + 64)) {
    std::cerr << "ads-push-bench: RLIMIT_NOFILE " << rl.rlim_cur << " is too low for " << clients
              << " clients\n";
    return 1;
  }
  tp::setDefaultLogLevel("error");

  tc::State state;
  for (int s = 0; s < services; ++s) {
    auto r = state.putService(absl::StrCat("svc-", s),
                              absl::StrCat(R"({"port": 9080, "endpoints": ["10.0.)", s / 250, ".",
                                           s % 250 + 1, R"(:9080"]})"));
    if (!r.ok()) {
      std::cerr << r.status() << "\n";
      return 1;
    }
  }
  auto addSandbox = [&](int k) {
    return state.putSandbox(absl::StrCat("key-", k),
                            absl::StrCat(R"({"forks": {"svc-)", k % services,
                                         R"(": ["10.1.0.)", k % 250 + 1, R"(:9080"]}})"),
                            absl::Now());
  };
  for (int k = 0; k < sandboxes; ++k) {
    if (auto r = addSandbox(k); !r.ok()) {
      std::cerr << r.status() << "\n";
      return 1;
    }
  }

  asio::io_context server_ioc(1), client_ioc(1);
  // The server reads the models it is given (never copies them), on its own
  // thread: each round's is a copy that stays alive and unchanged.
  std::deque<tc::Model> models{state.model()};
  auto server = tc::AdsServer::create(server_ioc, {"127.0.0.1", 0}, models.back());
  if (!server.ok()) {
    std::cerr << server.status() << "\n";
    return 1;
  }
  (*server)->start();
  const uint16_t port = (*server)->port();

  tp::stats::Store store(1);
  std::vector<ClientState> states(static_cast<size_t>(clients));
  std::vector<std::unique_ptr<tp::XdsStream>> streams;
  for (int i = 0; i < clients; ++i) {
    envoy::config::core::v3::Node node;
    node.set_id(absl::StrCat("sidecar-", i));
    node.set_user_agent_name("turnout");
    tp::XdsStream::Options o;
    o.cluster_name = "xds";
    o.method_path = delta ? tc::kDeltaAdsMethod : tc::kAdsMethod;
    if (delta) o.protocol = turnout::config::xds::XdsProtocol::kDelta;
    auto s = std::make_unique<tp::XdsStream>(client_ioc, store, o, node, [port] {
      return std::vector<asio::ip::tcp::endpoint>{{asio::ip::make_address("127.0.0.1"), port}};
    });
    auto ok = [](const std::string&, const turnout::config::AnyList&) { return absl::OkStatus(); };
    ClientState* cs = &states[static_cast<size_t>(i)];
    if (delta) {
      // The O(changed) form a sidecar uses: the handler sees what changed.
      s->client().subscribeDelta(turnout::config::kClusterTypeUrl, {.wildcard = true}, {},
                                 [](const turnout::config::xds::DeltaUpdate&) {
                                   return absl::OkStatus();
                                 });
    } else {
      s->client().subscribe(turnout::config::kClusterTypeUrl, true, {}, ok);
    }
    auto routed = [cs](const std::string&, const turnout::config::AnyList&) {
      cs->last_route_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                              Clock::now().time_since_epoch())
                              .count();
      cs->route_updates++;
      return absl::OkStatus();
    };
    if (delta) {
      // Delta: turnout-cp sends the routes of each service as a VirtualHost
      // (VHDS); the RouteConfiguration only names VHDS and does not change.
      s->client().subscribe(turnout::config::kRouteConfigurationTypeUrl, false, {"outbound"}, ok);
      s->client().subscribe(tc::kVirtualHostTypeUrl, false, {"outbound"}, routed);
    } else {
      s->client().subscribe(turnout::config::kRouteConfigurationTypeUrl, false, {"outbound"},
                            routed);
    }
    streams.push_back(std::move(s));
  }
  asio::post(client_ioc, [&] {
    for (auto& s : streams) s->start();
  });
  auto work = asio::make_work_guard(client_ioc);
  auto swork = asio::make_work_guard(server_ioc);
  std::thread client_thread([&] { client_ioc.run(); });
  std::thread server_thread([&] { server_ioc.run(); });

  auto waitAll = [&](int want, std::chrono::seconds limit) {
    const auto end = Clock::now() + limit;
    while (Clock::now() < end) {
      int n = 0;
      for (auto& c : states) n += c.route_updates.load() >= want ? 1 : 0;
      if (n == clients) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return false;
  };
  bool ok = waitAll(1, std::chrono::seconds(60));
  std::string out = absl::StrCat("{\"protocol\": \"", delta ? "delta" : "sotw", "\", \"clients\": ", clients, ", \"services\": ", services,
                                 ", \"sandboxes\": ", sandboxes, ", \"connected\": ",
                                 ok ? "true" : "false", ", \"rounds\": [");
  for (int r = 0; ok && r < rounds; ++r) {
    if (auto st = addSandbox(sandboxes + r); !st.ok()) {
      std::cerr << st.status() << "\n";
      return 1;
    }
    const tc::Model& model = models.emplace_back(state.model());
    std::promise<double> cpu;
    uint64_t update_bytes = 0;
    const auto start = Clock::now();
    const int64_t start_ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(start.time_since_epoch()).count();
    asio::post(server_ioc, [&] {
      const double c0 = threadCpuMs();
      const uint64_t b0 = (*server)->bytesSent();
      (*server)->update(model);
      (*server)->flush();  // the push update() posted, now: its CPU is the update's
      update_bytes = (*server)->bytesSent() - b0;  // every push is encoded in flush()
      cpu.set_value(threadCpuMs() - c0);
    });
    const double update_cpu_ms = cpu.get_future().get();
    ok = waitAll(2 + r, std::chrono::seconds(60));
    std::vector<double> ms;
    for (auto& c : states) ms.push_back(static_cast<double>(c.last_route_ns.load() - start_ns) / 1e6);
    out += absl::StrCat(r ? ", " : "", "{\"complete\": ", ok ? "true" : "false",
                        ", \"update_cpu_ms\": ", update_cpu_ms, ", \"update_bytes_per_client\": ",
                        update_bytes / static_cast<uint64_t>(clients), ", \"p50_ms\": ", pct(ms, 50),
                        ", \"p90_ms\": ", pct(ms, 90), ", \"p99_ms\": ", pct(ms, 99),
                        ", \"max_ms\": ", pct(ms, 100), "}");
  }
  out += "]}";
  std::cout << out << std::endl;
  asio::post(client_ioc, [&] {
    for (auto& s : streams) s->stop();
  });
  asio::post(server_ioc, [&] { (*server)->stop(); });
  work.reset();
  swork.reset();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  client_ioc.stop();
  server_ioc.stop();
  client_thread.join();
  server_thread.join();
  streams.clear();
  return ok ? 0 : 1;
}
