#include "proxy/server/server.h"

#include <algorithm>
#include <iostream>
#include <map>

#include "absl/strings/str_cat.h"
#include "config/snapshot/snapshot_builder.h"
#include "envoy/admin/v3/config_dump.pb.h"
#include "envoy/admin/v3/config_dump_shared.pb.h"
#include "envoy/config/endpoint/v3/endpoint.pb.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb.h"
#include "google/protobuf/util/time_util.h"
#include "google/protobuf/util/json_util.h"
#include "proxy/access_log/access_log.h"
#include "proxy/common/log.h"
#include "proxy/stats/well_known_stats.h"

namespace turnout::proxy {
namespace {

constexpr char kVersion[] = "turnout/0.1.0/envoy-api-v1.31/RELEASE";

}  // namespace

Server::Server(ServerOptions options) : options_(std::move(options)) {}

Server::~Server() { shutdown(); }

int Server::run() {
  started_ = std::chrono::steady_clock::now();
  const uint32_t concurrency = std::max(1u, options_.concurrency);
  store_ = std::make_unique<stats::Store>(concurrency);
  // Workers ask for the stats they create at first use (per-method gRPC
  // stats) here; main_ outlives every worker's run.
  store_->setMainThreadPoster(
      [this](std::function<void()> fn) { asio::post(main_, std::move(fn)); });

  // The same call --mode validate makes (main.cc), so both answer alike.
  auto loaded = config::SnapshotBuilder::load(options_.bootstrap);
  if (loaded.ok()) {
    if (auto logs = access_log::checkAccessLogFormats(*loaded->snapshot); !logs.ok()) loaded = logs;
  }
  if (loaded.ok()) {
    // With --allow-unknown-static-fields: the unknown fields ignored.
    for (const auto& w : loaded->warnings) TURNOUT_LOG(warn, "config", "{}", w);
    store_->mainShard().inc(store_->counter("server.static_unknown_fields"),
                            loaded->warnings.size());
  }
  absl::StatusOr<DataPlaneConfigConstSharedPtr> dp =
      loaded.ok() ? DataPlaneConfig::build(loaded->snapshot, *store_) : loaded.status();
  if (!dp.ok()) {
    std::cerr << "error initializing configuration '" << options_.bootstrap.config_path
              << "': " << dp.status().message() << std::endl;
    return 1;
  }
  DataPlaneConfigConstSharedPtr config = *std::move(dp);
  for (uint32_t i = 0; i < concurrency; ++i) {
    workers_.push_back(std::make_unique<Worker>(i, *store_));
    workers_.back()->setHealthCheckFlag(&health_check_failed_);
  }

  if (config->snapshot->admin_address) {
    auto opts = admin::AdminServer::optionsFor(*config->snapshot->admin_address);
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

  // Binds the listeners, starts the main-thread services (health checks, DNS
  // refreshes, outlier detection) and the workers with the first generation.
  publisher_ = std::make_unique<SnapshotPublisher>(main_, *store_, workers_);
  if (auto st = publisher_->start(config); !st.ok()) {
    std::cerr << "turnout: " << st.message() << std::endl;
    return 1;
  }
  // dynamic_resources and RDS: files watched on this thread, published live.
  dynamic_ = std::make_unique<DynamicResources>(main_, *store_, *publisher_, options_.xds_cache_dir,
                                                options_.unknown_dynamic_fields);
  if (auto st = dynamic_->start(); !st.ok()) {
    std::cerr << "turnout: " << st.message() << std::endl;
    return 1;
  }

  signals_ = std::make_unique<SignalSet>(main_, SIGINT, SIGTERM);
  signals_->async_wait([this](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    TURNOUT_LOG(info, "main", "caught signal {}, shutting down", sig);
    shutdown();
  });
  uptime_timer_ = std::make_unique<SteadyTimer>(main_);
  std::function<void()> tick = [this, &tick, server_stats, &main_shard] {
    main_shard.set(server_stats.uptime,
                   std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::steady_clock::now() - started_)
                       .count());
    main_shard.set(server_stats.live, draining_ || health_check_failed_ ? 0 : 1);
    reloadTlsContexts();
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

void Server::reloadTlsContexts() {
  // Kubernetes rotates a mounted secret by swapping a symlink: each TLS
  // listener's files are checked once a second (a stat, then a hash when it
  // changed); a good rotation serves new connections, a bad one is logged and
  // the old certificate keeps serving.
  if (!publisher_ || !publisher_->current()) return;
  for (const auto& l : publisher_->current()->listeners) {
    for (const auto& chain : l->filter_chains) {
      if (!chain.tls) continue;
      auto changed = chain.tls->maybeReload();
      if (!changed.ok()) {
        TURNOUT_LOG(warn, "main", "listener '{}': TLS certificate reload failed: {}",
                    l->config->name, std::string(changed.status().message()));
      } else if (*changed) {
        TURNOUT_LOG(info, "main", "listener '{}' ({}): TLS certificate reloaded",
                    l->config->name, chain.config->path);
      }
    }
  }
}

void Server::shutdown() {
  if (dynamic_) dynamic_->stop();
  if (publisher_) publisher_->stop();
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
  info.state = draining_                                ? admin::ServerState::Draining
               : dynamic_ && !dynamic_->initialized() ? admin::ServerState::Initializing
                                                      : admin::ServerState::Live;
  auto up = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() -
                                                             started_);
  info.uptime_current_epoch = up;
  info.uptime_all_epochs = up;
  info.command_line_options = options_.command_line;
  if (publisher_ && publisher_->current()) {
    info.node_id = publisher_->current()->snapshot->node_id;
    info.node_cluster = publisher_->current()->snapshot->node_cluster;
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
  // Main thread: the published config and DynamicResources' records change
  // only here, between handlers.
  using envoy::admin::v3::UpdateFailureState;
  using google::protobuf::util::TimeUtil;
  const DataPlaneConfig& current = *publisher_->current();
  const config::SnapshotConstSharedPtr& boot = current.snapshot;
  auto stamp = [](std::chrono::system_clock::time_point t) {
    return TimeUtil::NanosecondsToTimestamp(
        std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count());
  };
  // Static resources were loaded at start.
  const auto loaded_at = stamp(std::chrono::system_clock::now() -
                               std::chrono::duration_cast<std::chrono::system_clock::duration>(
                                   std::chrono::steady_clock::now() - started_));
  auto setError = [&](const std::optional<DynamicResources::ErrorState>& e,
                      UpdateFailureState* out) {
    out->set_details(e->details);
    *out->mutable_last_update_attempt() = stamp(e->last_update_attempt);
  };
  static const DynamicResources::Source kNoSource;
  const DynamicResources::Source& cds = dynamic_ ? dynamic_->cds() : kNoSource;
  const DynamicResources::Source& lds = dynamic_ ? dynamic_->lds() : kNoSource;

  envoy::admin::v3::ConfigDump dump;
  envoy::admin::v3::BootstrapConfigDump b;
  *b.mutable_bootstrap() = boot->fullBootstrap();
  *b.mutable_last_updated() = loaded_at;
  dump.add_configs()->PackFrom(b);

  envoy::admin::v3::ClustersConfigDump clusters;
  clusters.set_version_info(cds.version_info);
  // The snapshot keeps cluster protos serialized: packed as they are.
  auto packCluster = [](const std::string& bytes, google::protobuf::Any* any) {
    any->set_type_url("type.googleapis.com/envoy.config.cluster.v3.Cluster");
    any->set_value(bytes);
  };
  for (const auto& c : boot->cluster_protos) {
    auto* sc = clusters.add_static_clusters();
    packCluster(c, sc->mutable_cluster());
    *sc->mutable_last_updated() = loaded_at;
  }
  std::vector<const ClusterRuntime*> dynamic_clusters;
  for (const auto& [name, c] : current.clusters) {
    if (c->owner != boot) dynamic_clusters.push_back(c.get());
  }
  std::sort(dynamic_clusters.begin(), dynamic_clusters.end(),
            [](const auto* x, const auto* y) { return x->config->name < y->config->name; });
  for (const ClusterRuntime* c : dynamic_clusters) {
    const auto& protos = c->owner->cluster_protos;
    const auto index = c->config - c->owner->clusters.data();
    if (index < 0 || static_cast<size_t>(index) >= protos.size()) continue;
    auto* dc = clusters.add_dynamic_active_clusters();
    packCluster(protos[static_cast<size_t>(index)], dc->mutable_cluster());
    auto it = cds.resources.find(c->config->name);
    if (it != cds.resources.end()) {
      dc->set_version_info(it->second.version_info);
      *dc->mutable_last_updated() = stamp(it->second.last_updated);
    }
    if (cds.error) setError(cds.error, dc->mutable_error_state());
  }
  dump.add_configs()->PackFrom(clusters);

  // ?include_eds: each cluster's endpoints as turnout holds them now (DNS
  // resolved, EDS applied), by priority; EDS clusters are dynamic, the rest
  // static, as Envoy's EndpointsConfigDump.
  if (params.include_eds) {
    envoy::admin::v3::EndpointsConfigDump endpoints;
    std::vector<const ClusterRuntime*> all;
    for (const auto& [name, c] : current.clusters) all.push_back(c.get());
    std::sort(all.begin(), all.end(),
              [](const auto* x, const auto* y) { return x->config->name < y->config->name; });
    for (const ClusterRuntime* c : all) {
      envoy::config::endpoint::v3::ClusterLoadAssignment cla;
      cla.set_cluster_name(c->config->eds ? c->config->eds_service_name : c->config->name);
      const HostSetConstSharedPtr hosts = publisher_->hosts(*c);
      std::map<uint32_t, envoy::config::endpoint::v3::LocalityLbEndpoints*> by_priority;
      if (hosts) {
        for (const HostDescription& h : hosts->hosts) {
          auto*& level = by_priority[h.priority];
          if (level == nullptr) {
            level = cla.add_endpoints();
            level->set_priority(h.priority);
          }
          auto* e = level->add_lb_endpoints();
          auto* sa = e->mutable_endpoint()->mutable_address()->mutable_socket_address();
          sa->set_address(h.ip);
          sa->set_port_value(h.port);
          if (!h.hostname.empty()) e->mutable_endpoint()->set_hostname(h.hostname);
          e->mutable_load_balancing_weight()->set_value(h.weight);
          e->set_health_status(h.healthy ? envoy::config::core::v3::HEALTHY
                                         : envoy::config::core::v3::UNHEALTHY);
        }
      }
      if (c->config->eds) {
        auto* d = endpoints.add_dynamic_endpoint_configs();
        d->mutable_endpoint_config()->PackFrom(cla);
      } else {
        auto* st = endpoints.add_static_endpoint_configs();
        st->mutable_endpoint_config()->PackFrom(cla);
        *st->mutable_last_updated() = loaded_at;
      }
    }
    dump.add_configs()->PackFrom(endpoints);
  }

  // Listeners, and the route configurations inline in their HCMs.
  envoy::admin::v3::RoutesConfigDump routes;
  auto inlineRoutes = [&](const envoy::config::listener::v3::Listener& l,
                          const google::protobuf::Timestamp& when) {
    auto scan = [&](const envoy::config::listener::v3::FilterChain& fc) {
      for (const auto& f : fc.filters()) {
        envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager hcm;
        if (!f.has_typed_config() || !f.typed_config().UnpackTo(&hcm) || !hcm.has_route_config()) {
          continue;
        }
        auto* r = routes.add_static_route_configs();
        r->mutable_route_config()->PackFrom(hcm.route_config());
        *r->mutable_last_updated() = when;
      }
    };
    for (const auto& fc : l.filter_chains()) scan(fc);
    if (l.has_default_filter_chain()) scan(l.default_filter_chain());
  };
  envoy::admin::v3::ListenersConfigDump listeners;
  listeners.set_version_info(lds.version_info);
  for (size_t i = 0; i < boot->listener_protos.size(); ++i) {
    const envoy::config::listener::v3::Listener l = boot->listenerProto(i);
    auto* sl = listeners.add_static_listeners();
    sl->mutable_listener()->PackFrom(l);
    *sl->mutable_last_updated() = loaded_at;
    inlineRoutes(l, loaded_at);
  }
  std::vector<const ListenerRuntime*> dynamic_listeners;
  for (const auto& l : current.listeners) {
    if (l->owner != boot) dynamic_listeners.push_back(l.get());
  }
  std::sort(dynamic_listeners.begin(), dynamic_listeners.end(),
            [](const auto* x, const auto* y) { return x->config->name < y->config->name; });
  for (const ListenerRuntime* l : dynamic_listeners) {
    const auto index = static_cast<size_t>(l->config - l->owner->listeners.data());
    if (index >= l->owner->listener_protos.size()) continue;
    const envoy::config::listener::v3::Listener proto = l->owner->listenerProto(index);
    auto* dl = listeners.add_dynamic_listeners();
    dl->set_name(l->config->name);
    auto* active = dl->mutable_active_state();
    active->mutable_listener()->PackFrom(proto);
    google::protobuf::Timestamp when;
    auto it = lds.resources.find(l->config->name);
    if (it != lds.resources.end()) {
      active->set_version_info(it->second.version_info);
      when = stamp(it->second.last_updated);
      *active->mutable_last_updated() = when;
    }
    if (lds.error) setError(lds.error, dl->mutable_error_state());
    inlineRoutes(proto, when);
  }
  dump.add_configs()->PackFrom(listeners);

  if (dynamic_) {
    for (const auto& [name, state] : dynamic_->routeConfigs()) {
      auto* r = routes.add_dynamic_route_configs();
      if (auto rc = dynamic_->routeConfig(name, state)) {
        r->set_version_info(state.version_info);
        r->mutable_route_config()->PackFrom(*rc);
        *r->mutable_last_updated() = stamp(state.last_updated);
      }
      if (state.error) setError(state.error, r->mutable_error_state());
    }
  }
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
  std::vector<const ClusterRuntime*> sorted;
  for (const auto& [name, c] : publisher_->current()->clusters) sorted.push_back(c.get());
  std::sort(sorted.begin(), sorted.end(),
            [](const auto* a, const auto* b) { return a->config->name < b->config->name; });
  for (const ClusterRuntime* cp : sorted) {
    const ClusterRuntime& c = *cp;
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
    const HostSetConstSharedPtr hosts = publisher_->hosts(c);
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
  // Every listener, as Envoy lists them: a bound one with the port it got, a
  // bind_to_port: false one with its configured address. Both in config order.
  std::vector<admin::ListenerStatus> out;
  const DataPlaneConfigConstSharedPtr& current = publisher_->current();
  if (!current) return out;
  const auto bound = publisher_->boundListeners();
  size_t next_bound = 0;
  for (const auto& l : current->listeners) {
    const config::ListenerConfig& c = *l->config;
    if (next_bound < bound.size() && bound[next_bound].name == c.name) {
      const auto& b = bound[next_bound++];
      out.push_back(admin::ListenerStatus{b.name, b.address, b.port});
    } else {
      out.push_back(admin::ListenerStatus{c.name, c.address.address, c.address.port});
    }
  }
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
