#include "proxy/server/server.h"

#include <iostream>

#include "absl/strings/str_cat.h"
#include "config/snapshot/snapshot_builder.h"
#include "envoy/admin/v3/config_dump.pb.h"
#include "envoy/admin/v3/config_dump_shared.pb.h"
#include "google/protobuf/util/json_util.h"
#include "proxy/common/log.h"
#include "proxy/stats/well_known_stats.h"

namespace turnout::proxy {
namespace {

constexpr char kVersion[] = "turnout/0.1.0/envoy-api-v1.31/RELEASE";

}  // namespace

Server::Server(ServerOptions options) : options_(std::move(options)) {}

Server::~Server() { shutdown(); }

absl::Status Server::bindListeners() {
  const auto& listeners = config_->listeners;
  for (size_t li = 0; li < listeners.size(); ++li) {
    const config::ListenerConfig& l = *listeners[li].config;
    if (!l.bind_to_port) continue;
    if (l.address.kind != config::Address::Kind::Socket) {
      return absl::InvalidArgumentError(
          absl::StrCat("listener '", l.name, "': only socket addresses can be bound"));
    }
    boost::system::error_code ec;
    auto ip = asio::ip::make_address(l.address.address, ec);
    if (ec) {
      return absl::InvalidArgumentError(
          absl::StrCat("listener '", l.name, "': invalid address '", l.address.address, "'"));
    }
    uint16_t port = static_cast<uint16_t>(l.address.port);
    for (auto& w : workers_) {
      auto acceptor = std::make_unique<asio::ip::tcp::acceptor>(w->io());
      asio::ip::tcp::endpoint ep(ip, port);
      acceptor->open(ep.protocol(), ec);
      if (!ec) acceptor->set_option(asio::socket_base::reuse_address(true), ec);
      if (!ec) {
        int one = 1;
        if (::setsockopt(acceptor->native_handle(), SOL_SOCKET, SO_REUSEPORT, &one,
                         sizeof(one)) != 0) {
          ec = boost::system::error_code(errno, boost::system::system_category());
        }
      }
      if (!ec) acceptor->bind(ep, ec);
      if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
      if (ec) {
        return absl::UnavailableError(absl::StrCat("listener '", l.name, "': cannot bind '",
                                                   l.address.toString(), "': ", ec.message()));
      }
      // Port 0: the first worker's socket picks the port, the others share it.
      if (port == 0) port = acceptor->local_endpoint().port();
      w->addListener(WorkerListener{li, l.name, std::move(acceptor)});
    }
    bound_.push_back(BoundListener{l.name, l.address.address, port});
    TURNOUT_LOG(info, "main", "listener '{}' on {}:{} ({} workers)", l.name, l.address.address,
                port, workers_.size());
  }
  return absl::OkStatus();
}

int Server::run() {
  started_ = std::chrono::steady_clock::now();
  const uint32_t concurrency = std::max(1u, options_.concurrency);
  store_ = std::make_unique<stats::Store>(concurrency);

  // The same call --mode validate makes (main.cc), so both answer alike.
  auto loaded = config::SnapshotBuilder::load(options_.bootstrap);
  if (loaded.ok()) {
    for (const auto& w : loaded->warnings) TURNOUT_LOG(warn, "config", "{}", w);
  }
  absl::StatusOr<DataPlaneConfigConstSharedPtr> dp =
      loaded.ok() ? DataPlaneConfig::build(loaded->snapshot, *store_) : loaded.status();
  if (!dp.ok()) {
    std::cerr << "error initializing configuration '" << options_.bootstrap.config_path
              << "': " << dp.status().message() << std::endl;
    return 1;
  }
  config_ = *std::move(dp);
  for (const auto& c : config_->clusters) {
    resources_[c.config->name] = std::make_shared<ClusterResources>();
  }
  for (uint32_t i = 0; i < concurrency; ++i) {
    workers_.push_back(std::make_unique<Worker>(i, *store_));
    workers_.back()->setHealthCheckFlag(&health_check_failed_);
  }
  if (auto st = bindListeners(); !st.ok()) {
    std::cerr << "turnout: " << st.message() << std::endl;
    return 1;
  }

  if (config_->snapshot->admin_address) {
    auto opts = admin::AdminServer::optionsFor(*config_->snapshot->admin_address);
    opts.address_path = options_.admin_address_path;
    auto admin = admin::AdminServer::create(main_, *this, *store_, opts);
    if (!admin.ok()) {
      std::cerr << "turnout: admin: " << admin.status().message() << std::endl;
      return 1;
    }
    admin_ = *std::move(admin);
    admin_->start();
    TURNOUT_LOG(info, "main", "admin address: {}", admin_->boundAddress());
  }

  stats::ServerStats server_stats = stats::makeServerStats(*store_);
  stats::Shard& main_shard = store_->mainShard();
  main_shard.set(server_stats.concurrency, concurrency);
  main_shard.set(server_stats.live, 1);
  main_shard.set(server_stats.active_clusters, static_cast<int64_t>(config_->clusters.size()));
  main_shard.set(server_stats.total_listeners_active, static_cast<int64_t>(bound_.size()));

  // Active health checks and DNS refreshes run on this thread; workers read
  // each host's health flag and get new host sets posted.
  health_checker_ = HealthChecker::create(main_, config_, main_shard, nullptr);
  health_checker_->start();
  // Outlier detection decides on this thread from the workers' counters and
  // posts each cluster's new ejected set to every worker.
  outlier_detector_ = OutlierDetector::create(
      main_, config_, *store_,
      [this](const ClusterRuntime& c, OutlierEjectionsConstSharedPtr ejections) {
        for (auto& w : workers_) {
          Worker* worker = w.get();
          asio::post(worker->io(), [worker, config = config_, c = &c, ejections] {
            if (worker->config() == config) worker->clusters().updateEjections(*c, ejections);
          });
        }
      });
  outlier_detector_->start();
  dns_refresher_ = DnsRefresher::create(
      main_, config_, main_shard, [this](const ClusterRuntime& c, HostSetConstSharedPtr hosts) {
        health_checker_->updateHosts(c, *hosts);
        outlier_detector_->updateHosts(c, *hosts);
        const size_t index = static_cast<size_t>(&c - config_->clusters.data());
        for (auto& w : workers_) w->postHosts(config_, index, hosts);
      });
  dns_refresher_->start();
  for (auto& w : workers_) w->start(config_, resources_);

  signals_ = std::make_unique<asio::signal_set>(main_, SIGINT, SIGTERM);
  signals_->async_wait([this](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    TURNOUT_LOG(info, "main", "caught signal {}, shutting down", sig);
    shutdown();
  });
  uptime_timer_ = std::make_unique<asio::steady_timer>(main_);
  std::function<void()> tick = [this, &tick, server_stats, &main_shard] {
    main_shard.set(server_stats.uptime,
                   std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::steady_clock::now() - started_)
                       .count());
    main_shard.set(server_stats.live, draining_ || health_check_failed_ ? 0 : 1);
    uptime_timer_->expires_after(std::chrono::seconds(1));
    uptime_timer_->async_wait([&tick](const boost::system::error_code& ec) {
      if (!ec) tick();
    });
  };
  tick();
  TURNOUT_LOG(info, "main", "starting main dispatch loop");
  main_.run();
  for (auto& w : workers_) w->stop();
  return 0;
}

void Server::shutdown() {
  if (health_checker_) health_checker_->stop();
  if (outlier_detector_) outlier_detector_->stop();
  if (dns_refresher_) dns_refresher_->stop();
  if (signals_) {
    boost::system::error_code ec;
    signals_->cancel(ec);
  }
  if (uptime_timer_) uptime_timer_->cancel();
  if (admin_) admin_->stop();
  main_.stop();
}

admin::ServerInfo Server::serverInfo() const {
  admin::ServerInfo info;
  info.version = kVersion;
  info.state = draining_ ? admin::ServerState::Draining : admin::ServerState::Live;
  auto up = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() -
                                                             started_);
  info.uptime_current_epoch = up;
  info.uptime_all_epochs = up;
  info.command_line_options = options_.command_line;
  if (config_) {
    info.node_id = config_->snapshot->node_id;
    info.node_cluster = config_->snapshot->node_cluster;
  }
  return info;
}

std::string Server::configDumpJson(const admin::ConfigDumpParams& params,
                                   std::string& error) const {
  if (!params.resource.empty() || !params.mask.empty() || !params.name_regex.empty()) {
    error = "turnout does not support the resource, mask or name_regex parameters of "
            "/config_dump yet";
    return "";
  }
  envoy::admin::v3::ConfigDump dump;
  const auto& bootstrap = config_->snapshot->bootstrap;
  envoy::admin::v3::BootstrapConfigDump b;
  *b.mutable_bootstrap() = bootstrap;
  dump.add_configs()->PackFrom(b);
  envoy::admin::v3::ClustersConfigDump clusters;
  for (const auto& c : bootstrap.static_resources().clusters()) {
    clusters.add_static_clusters()->mutable_cluster()->PackFrom(c);
  }
  dump.add_configs()->PackFrom(clusters);
  envoy::admin::v3::ListenersConfigDump listeners;
  for (const auto& l : bootstrap.static_resources().listeners()) {
    listeners.add_static_listeners()->mutable_listener()->PackFrom(l);
  }
  dump.add_configs()->PackFrom(listeners);
  envoy::admin::v3::RoutesConfigDump routes;
  dump.add_configs()->PackFrom(routes);
  std::string json;
  google::protobuf::util::JsonPrintOptions opts;
  opts.add_whitespace = true;
  opts.preserve_proto_field_names = true;
  auto st = google::protobuf::util::MessageToJsonString(dump, &json, opts);
  if (!st.ok()) {
    error = std::string(st.message());
    return "";
  }
  return json;
}

std::vector<admin::ClusterStatus> Server::clusters() const {
  std::vector<admin::ClusterStatus> out;
  for (const auto& c : config_->clusters) {
    admin::ClusterStatus s;
    s.name = c.config->name;
    s.observability_name = c.config->alt_stat_name.empty() ? c.config->name : c.config->alt_stat_name;
    for (const auto& t : c.config->circuit_breakers) {
      admin::CircuitBreakerStatus b;
      b.high_priority = t.priority == config::CircuitBreakerThresholds::Priority::High;
      b.max_connections = t.max_connections;
      b.max_pending_requests = t.max_pending_requests;
      b.max_requests = t.max_requests;
      b.max_retries = t.max_retries;
      s.circuit_breakers.push_back(b);
    }
    const HostSetConstSharedPtr hosts = dns_refresher_ ? dns_refresher_->hosts(c) : c.hosts;
    for (const auto& h : hosts->hosts) {
      admin::HostStatus hs;
      hs.address = h.ip;
      hs.port = h.port;
      hs.hostname = h.hostname;
      hs.weight = h.weight;
      hs.priority = h.priority;
      std::string flags;
      if (!h.healthy) flags += "/eds_health_status";
      const HostSharedState& st = *h.state;
      if (st.failed_active_hc.load(std::memory_order_relaxed)) {
        flags += "/failed_active_hc";
        hs.failed_active_health_check = true;
      }
      if (st.outlier && st.outlier->ejected()) {
        flags += "/failed_outlier_check";
        hs.failed_outlier_check = true;
      }
      hs.health_flags = flags.empty() ? "healthy" : flags;
      s.hosts.push_back(std::move(hs));
    }
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<admin::ListenerStatus> Server::listeners() const {
  std::vector<admin::ListenerStatus> out;
  for (const auto& b : bound_) out.push_back(admin::ListenerStatus{b.name, b.address, b.port});
  return out;
}

void Server::drainListeners(const admin::DrainParams&) {
  draining_ = true;
  for (auto& w : workers_) w->drain();
}

void Server::quit() {
  asio::post(main_, [this] { shutdown(); });
}

}  // namespace turnout::proxy
