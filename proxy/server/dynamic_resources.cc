#include "proxy/server/dynamic_resources.h"

#include "proxy/upstream/upstream_tls.h"

#include <sys/inotify.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "config/snapshot/discovery_response.h"
#include "config/snapshot/listener_address_set.h"
#include "config/snapshot/route_config_translator.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/util/message_differencer.h"
#include "google/protobuf/wire_format_lite.h"
#include "proxy/common/log.h"

namespace turnout::proxy {
namespace {

// Whether `runtime`'s listener came from the same Listener message as
// `file`'s listeners[i]. Snapshots keep listener protos serialized: equal
// bytes are equal messages; else compare parsed (map fields may serialize
// in any order).
bool sameListenerProto(const ListenerRuntime& runtime, const config::Snapshot& file, size_t i) {
  const config::Snapshot& owner = *runtime.owner;
  const size_t index = static_cast<size_t>(runtime.config - owner.listeners.data());
  if (index >= owner.listener_protos.size() || i >= file.listener_protos.size()) return false;
  return owner.listener_protos[index] == file.listener_protos[i] ||
         google::protobuf::util::MessageDifferencer::Equals(owner.listenerProto(index),
                                                            file.listenerProto(i));
}

constexpr const char* kLog = "config";

// Field 1 (a string: Cluster.name) of a serialized message, read off the
// wire without parsing the rest; nullopt when absent or malformed.
std::optional<std::string> wireName(const std::string& bytes) {
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()),
                                            static_cast<int>(bytes.size()));
  while (const uint32_t tag = in.ReadTag()) {
    if (tag == ((1u << 3) | 2u)) {
      uint32_t size = 0;
      std::string name;
      if (!in.ReadVarint32(&size) || !in.ReadString(&name, static_cast<int>(size))) {
        return std::nullopt;
      }
      return name;
    }
    if (!google::protobuf::internal::WireFormatLite::SkipField(&in, tag)) return std::nullopt;
  }
  return std::nullopt;
}

std::string dirOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::optional<std::string> readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

struct FileSource {
  std::string path;
  std::string directory;
};

std::optional<FileSource> fileSource(const envoy::config::core::v3::ConfigSource& cs) {
  if (cs.has_path_config_source()) {
    FileSource f{cs.path_config_source().path(), cs.path_config_source().watched_directory().path()};
    if (f.directory.empty()) f.directory = dirOf(f.path);
    return f;
  }
  // The deprecated ConfigSource.path form: the file's directory is watched.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  const std::string& path = cs.path();
#pragma GCC diagnostic pop
  if (!path.empty()) return FileSource{path, dirOf(path)};
  return std::nullopt;
}

}  // namespace

FileWatch::FileWatch(asio::io_context& main, std::string path, std::string directory,
                     OnChange on_change)
    : path_(std::move(path)),
      directory_(std::move(directory)),
      on_change_(std::move(on_change)),
      timer_(main) {
  inotify_fd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (inotify_fd_ >= 0) {
    if (::inotify_add_watch(inotify_fd_, directory_.c_str(),
                            IN_MOVED_TO | IN_CLOSE_WRITE | IN_CREATE) < 0) {
      TURNOUT_LOG(warn, kLog, "cannot watch '{}' ({}); re-reading '{}' every second", directory_,
                  std::strerror(errno), path_);
    }
    events_ = std::make_unique<StreamDescriptor>(main, inotify_fd_);
  }
}

FileWatch::~FileWatch() { stop(); }

void FileWatch::stop() {
  *alive_ = false;
  timer_.cancel();
  if (events_) {
    boost::system::error_code ec;
    events_->close(ec);  // closes inotify_fd_
    events_.reset();
  }
}

void FileWatch::start() {
  check();
  readEvents();
  tick();
}

void FileWatch::check() {
  std::optional<std::string> contents = readFile(path_);
  if (!contents || contents == last_) return;
  last_ = contents;
  on_change_(*contents);
}

void FileWatch::readEvents() {
  if (!events_) return;
  events_->async_read_some(asio::buffer(buffer_),
                           [this, alive = alive_](const boost::system::error_code& ec, size_t) {
                             if (!*alive || ec) return;
                             // Any event in the directory: read the file again.
                             check();
                             readEvents();
                           });
}

void FileWatch::tick() {
  timer_.expires_after(std::chrono::seconds(1));
  timer_.async_wait([this, alive = alive_](const boost::system::error_code& ec) {
    if (!*alive || ec) return;
    check();
    tick();
  });
}

DynamicResources::DynamicResources(asio::io_context& main, stats::Store& store,
                                   SnapshotPublisher& publisher, std::string xds_cache_dir,
                                   UnknownDynamicFields unknown_fields)
    : main_(main),
      store_(store),
      publisher_(publisher),
      xds_cache_dir_(std::move(xds_cache_dir)),
      unknown_fields_(unknown_fields) {
  dynamic_unknown_fields_ = store_.counter("server.dynamic_unknown_fields");
  cds_stats_ = makeStats("cluster_manager.cds.");
  lds_stats_ = makeStats("listener_manager.lds.");
  warming_clusters_ = store_.gauge("cluster_manager.warming_clusters");
  listeners_warming_ = store_.gauge("listener_manager.total_listeners_warming");
}

DynamicResources::~DynamicResources() { stop(); }

config::UnknownFields DynamicResources::unknownFieldsMode() const {
  switch (unknown_fields_) {
    case UnknownDynamicFields::kReject:
      return config::UnknownFields::kReject;
    case UnknownDynamicFields::kIgnore:
      return config::UnknownFields::kIgnore;
    case UnknownDynamicFields::kWarn:
      break;
  }
  return config::UnknownFields::kReport;
}

void DynamicResources::noteUnknownFields(const char* what, const std::vector<std::string>& fields) {
  // Envoy counts and logs each description once; the set is bounded (a
  // control plane could name ever new paths).
  constexpr size_t kMaxRemembered = 4096;
  if (unknown_fields_ == UnknownDynamicFields::kIgnore) return;  // not logged, not counted
  for (const std::string& f : fields) {
    if (unknown_seen_.size() >= kMaxRemembered) unknown_seen_.clear();
    if (!unknown_seen_.insert(f).second) continue;
    store_.mainShard().inc(dynamic_unknown_fields_);
    TURNOUT_LOG(warn, kLog, "{}: unknown field ignored: {}", what, f);
  }
}

void DynamicResources::stop() {
  if (ads_) ads_->stop();
  for (auto& [type, bound] : type_sources_) {
    if (bound.stream) bound.stream->stop();
  }
  for (auto& [name, w] : warming_listeners_) w.timer->cancel();
  for (auto& t : init_timers_) t->cancel();
  for (auto& t : vhds_timers_) t->cancel();
  for (auto& w : watches_) w->stop();
  for (auto& [name, c] : eds_clusters_) {
    if (c.init_timer) c.init_timer->cancel();
  }
}

DynamicResources::UpdateStats DynamicResources::makeStats(const std::string& prefix) {
  return UpdateStats{store_.counter(prefix + "update_attempt"),
                     store_.counter(prefix + "update_success"),
                     store_.counter(prefix + "update_rejected"), store_.gauge(prefix + "version"),
                     store_.histogram(prefix + "update_duration")};
}

void DynamicResources::rejected(const UpdateStats& s, Source* source, const std::string& what,
                                const absl::Status& status) {
  store_.mainShard().inc(s.rejected);
  if (source) {
    source->error = ErrorState{absl::StrCat(what, ": ", status.message()),
                               std::chrono::system_clock::now()};
  }
  TURNOUT_LOG(warn, kLog, "{} update rejected: {}", what, std::string(status.message()));
}

void DynamicResources::accepted(const UpdateStats& s, Source* source, const std::string& version,
                                const std::vector<std::string>& changed,
                                const std::vector<std::string>& removed) {
  stats::Shard& shard = store_.mainShard();
  shard.inc(s.success);
  if (update_started_ != std::chrono::steady_clock::time_point{}) {
    shard.recordMicros(s.duration, updateMicros());
  }
  // Envoy's `version` gauge: a hash of version_info.
  shard.set(s.version, static_cast<int64_t>(absl::HashOf(version) & 0x7fffffffffffffffULL));
  if (!source) return;
  const Time now = std::chrono::system_clock::now();
  source->version_info = version;
  source->last_updated = now;
  source->error.reset();
  for (const auto& name : changed) source->resources[name] = ResourceVersion{version, now};
  for (const auto& name : removed) source->resources.erase(name);
}

absl::Status DynamicResources::start() {
  const auto& bootstrap = publisher_.current()->snapshot->bootstrap;
  const auto& dr = bootstrap.dynamic_resources();
  const config::Snapshot& boot = *publisher_.current()->snapshot;
  const bool xds = boot.ads || boot.cds_source || boot.lds_source || usesXds(boot);
  if (xds) {
    if (auto st = startXds(); !st.ok()) return st;
  } else if (!xds_cache_dir_.empty()) {
    TURNOUT_LOG(warn, kLog, "--xds-cache '{}' has no effect: the bootstrap takes nothing "
                "from xDS", xds_cache_dir_);
  }
  if (dr.has_cds_config() && !dr.cds_config().has_ads() && !boot.cds_source) {
    auto f = fileSource(dr.cds_config());
    if (!f) return absl::InvalidArgumentError("dynamic_resources.cds_config: needs a path or ads");
    watches_.push_back(std::make_unique<FileWatch>(
        main_, f->path, f->directory,
        [this](const std::string& c) {
          updateStarted();
          (void)applyClusters(config::parseClusterResponse(c, unknownFieldsMode()));
        }));
  }
  if (dr.has_lds_config() && !dr.lds_config().has_ads() && !boot.lds_source) {
    auto f = fileSource(dr.lds_config());
    if (!f) return absl::InvalidArgumentError("dynamic_resources.lds_config: needs a path or ads");
    watches_.push_back(std::make_unique<FileWatch>(
        main_, f->path, f->directory,
        [this](const std::string& c) {
          updateStarted();
          (void)applyListeners(config::parseListenerResponse(c, unknownFieldsMode()));
        }));
  }
  // Clusters first (Envoy initialises CDS before LDS), then listeners, then routes.
  for (auto& w : watches_) w->start();
  watchRoutes();
  watchEndpoints();
  if (xds) {
    startInitialization();
    if (xds_cache_) restoreFromCache();
    xds_started_ = true;
    if (ads_) ads_->start();
    for (auto& [type, bound] : type_sources_) {
      if (bound.stream) bound.stream->start();
    }
  }
  return absl::OkStatus();
}

bool DynamicResources::usesXds(const config::Snapshot& s) {
  for (const auto& c : s.clusters) {
    if (c.eds && c.eds->ads) return true;
  }
  for (const auto& l : s.listeners) {
    for (const auto& fc : l.filter_chains) {
      if (fc.http_connection_manager && fc.http_connection_manager->rds_ads) return true;
    }
    if (l.default_filter_chain && l.default_filter_chain->http_connection_manager &&
        l.default_filter_chain->http_connection_manager->rds_ads) {
      return true;
    }
  }
  return false;
}

namespace {
// A config source's initial_fetch_timeout: Envoy's 15 s when unset, 0 none.
std::chrono::milliseconds initialFetchTimeout(const envoy::config::core::v3::ConfigSource& cs) {
  if (!cs.has_initial_fetch_timeout()) return std::chrono::seconds(15);
  return std::chrono::milliseconds(cs.initial_fetch_timeout().seconds() * 1000 +
                                   cs.initial_fetch_timeout().nanos() / 1000000);
}
}  // namespace

void DynamicResources::startInitialization() {
  const auto& dr = publisher_.current()->snapshot->bootstrap.dynamic_resources();
  initialized_ = false;
  const config::Snapshot& boot = *publisher_.current()->snapshot;
  cds_pending_ = dr.cds_config().has_ads() || boot.cds_source.has_value();
  lds_pending_ = dr.lds_config().has_ads() || boot.lds_source.has_value();
  routes_pending_ = true;
  if (cds_pending_) {
    initTimer(initialFetchTimeout(dr.cds_config()), [this] {
      if (!cds_pending_) return;
      store_.mainShard().inc(store_.counter("cluster_manager.cds.init_fetch_timeout"));
      TURNOUT_LOG(warn, kLog, "ADS: no CDS response within cds_config.initial_fetch_timeout; "
                  "initialising without it");
      cds_pending_ = false;
    });
  }
  if (lds_pending_) {
    initTimer(initialFetchTimeout(dr.lds_config()), [this] {
      if (!lds_pending_) return;
      store_.mainShard().inc(store_.counter("listener_manager.lds.init_fetch_timeout"));
      TURNOUT_LOG(warn, kLog, "ADS: no LDS response within lds_config.initial_fetch_timeout; "
                  "initialising without it");
      lds_pending_ = false;
    });
  }
  // The static listeners' ADS routes: the longest of their HCMs' timeouts
  // (0 in any: no bound), as every RDS subscription is its own init target.
  std::chrono::milliseconds longest{0};
  bool unbounded = false;
  for (const auto& l : publisher_.current()->listeners) {
    for (const auto& c : l->filter_chains) {
      if (!c.hcm || !c.hcm->config->rds_ads) continue;
      const auto t = c.hcm->config->rds_initial_fetch_timeout;
      unbounded = unbounded || t.count() == 0;
      longest = std::max(longest, std::chrono::duration_cast<std::chrono::milliseconds>(t));
    }
  }
  if (!unbounded && longest.count() > 0) {
    initTimer(longest, [this] {
      if (!routes_pending_) return;
      TURNOUT_LOG(warn, kLog, "ADS: the listeners' route configurations did not all arrive "
                  "within rds.config_source.initial_fetch_timeout; initialising without them");
      routes_pending_ = false;
    });
  }
}

void DynamicResources::initTimer(std::chrono::milliseconds timeout, std::function<void()> expired) {
  if (timeout.count() == 0) return;
  auto t = std::make_unique<SteadyTimer>(main_);
  t->expires_after(timeout);
  t->async_wait([this, expired = std::move(expired)](const boost::system::error_code& ec) {
    if (ec || initialized_) return;
    expired();
    checkInitialized();
  });
  init_timers_.push_back(std::move(t));
}

void DynamicResources::checkInitialized() {
  if (initialized_ || cds_pending_ || lds_pending_ || warming_count_ > 0 ||
      !warming_listeners_.empty()) {
    return;
  }
  if (routes_pending_) {
    const DataPlaneConfigConstSharedPtr current = publisher_.current();
    for (const auto& l : current->listeners) {
      if (!missingAdsRoutes(*l, current->routes).empty()) return;
    }
    routes_pending_ = false;
  }
  initialized_ = true;
  for (auto& t : init_timers_) t->cancel();
  TURNOUT_LOG(info, kLog, "ADS: initial configuration in; the server is LIVE");
}

void DynamicResources::restoreFromCache() {
  for (const char* type : {config::kClusterTypeUrl, config::kClusterLoadAssignmentTypeUrl,
                           config::kListenerTypeUrl, config::kRouteConfigurationTypeUrl,
                           config::kVirtualHostTypeUrl}) {
    XdsStream* stream = streamFor(type);
    if (stream == nullptr || stream->client().state(type) == nullptr) continue;
    auto cached = xds_cache_->load(type);
    if (!cached) continue;
    if (auto st = stream->client().restore(*cached); !st.ok()) {
      TURNOUT_LOG(warn, kLog, "--xds-cache: the cached {} (version '{}') is not usable: {}", type,
                  cached->version_info(), std::string(st.message()));
      continue;
    }
    TURNOUT_LOG(info, kLog, "--xds-cache: serving the cached {} version '{}' ({} resources)",
                type, cached->version_info(), cached->resources_size());
  }
}

namespace {

// The gRPC method of a type's own (non-aggregated) stream.
std::string typeMethod(const std::string& type, bool delta) {
  struct Service {
    const char* type;
    const char* service;
    const char* sotw;
    const char* delta;
  };
  static const Service kServices[] = {
      {config::kClusterTypeUrl, "envoy.service.cluster.v3.ClusterDiscoveryService", "StreamClusters",
       "DeltaClusters"},
      {config::kListenerTypeUrl, "envoy.service.listener.v3.ListenerDiscoveryService",
       "StreamListeners", "DeltaListeners"},
      {config::kRouteConfigurationTypeUrl, "envoy.service.route.v3.RouteDiscoveryService",
       "StreamRoutes", "DeltaRoutes"},
      {config::kClusterLoadAssignmentTypeUrl, "envoy.service.endpoint.v3.EndpointDiscoveryService",
       "StreamEndpoints", "DeltaEndpoints"},
  };
  for (const Service& s : kServices) {
    if (type == s.type) return absl::StrCat("/", s.service, "/", delta ? s.delta : s.sotw);
  }
  return "";
}

const char* typeName(const std::string& type) {
  if (type == config::kClusterTypeUrl) return "CDS";
  if (type == config::kListenerTypeUrl) return "LDS";
  if (type == config::kRouteConfigurationTypeUrl) return "RDS";
  return "EDS";
}

}  // namespace

absl::StatusOr<std::unique_ptr<XdsStream>> DynamicResources::makeStream(
    const config::AdsServerConfig& server, std::string method_path, const std::string& path) const {
  ClusterRuntimeConstSharedPtr xds_cluster = publisher_.current()->cluster(server.cluster_name);
  if (!xds_cluster) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ".grpc_services[0].envoy_grpc.cluster_name: unknown cluster '", server.cluster_name,
        "' (the xDS cluster must be a static cluster)"));
  }
  if (xds_cluster->config->eds) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ".grpc_services[0].envoy_grpc.cluster_name: cluster '", server.cluster_name,
        "' is an EDS cluster; the xDS cluster needs static or DNS endpoints"));
  }
  XdsStream::Options o;
  if (xds_cluster->tls) {
    // TLS (and mTLS) to the management server: the cluster's
    // UpstreamTlsContext, ALPN h2, verified as its other connections are.
    const std::string tls_name = server.cluster_name;
    o.make_tls = [this, tls_name](const asio::ip::tcp::endpoint& ep) -> std::unique_ptr<tls::TlsTransport> {
      ClusterRuntimeConstSharedPtr c = publisher_.current()->cluster(tls_name);
      if (!c || !c->tls) return nullptr;
      return makeUpstreamTransport(*c, ep, {"h2"}, nullptr);
    };
    o.ssl_stats = xds_cluster->ssl_stats.toOptional();
  }
  o.cluster_name = server.cluster_name;
  o.authority = server.authority;
  o.method_path = std::move(method_path);
  o.protocol = server.delta ? config::xds::XdsProtocol::kDelta
                            : config::xds::XdsProtocol::kStateOfTheWorld;
  o.connect_timeout = xds_cluster->config->connect_timeout;
  o.max_message_bytes = server.max_receive_message_length;
  envoy::config::core::v3::Node node = publisher_.current()->snapshot->bootstrap.node();
  // As Envoy sets "envoy": the name a control plane picks its dialect by.
  node.set_user_agent_name("turnout");
  node.set_user_agent_version("0.1.0");
  const std::string name = server.cluster_name;
  return std::make_unique<XdsStream>(
      main_, store_, std::move(o), std::move(node), [this, name] {
        std::vector<asio::ip::tcp::endpoint> out;
        ClusterRuntimeConstSharedPtr c = publisher_.current()->cluster(name);
        if (!c || !c->hosts) return out;
        for (const auto& h : c->hosts->hosts) {
          boost::system::error_code ec;
          auto ip = asio::ip::make_address(h.ip, ec);
          if (!ec) out.emplace_back(ip, h.port);
        }
        return out;
      });
}

void DynamicResources::subscribeType(XdsStream& stream, const std::string& type) {
  const bool wildcard = type == config::kClusterTypeUrl || type == config::kListenerTypeUrl;
  if (type == config::kClusterTypeUrl &&
      stream.client().protocol() == config::xds::XdsProtocol::kDelta) {
    // Delta CDS, incremental: only the clusters a response changes are
    // parsed and checked (the field-policy walk is reflection, and a sidecar
    // holds thousands of clusters); removals come by name.
    stream.client().subscribeDelta(
        type, {.wildcard = true}, {}, [this, type](const config::xds::DeltaUpdate& u) {
          updateStarted();
          config::AnyList changed;
          changed.Reserve(static_cast<int>(u.changed.size()));
          for (const auto* r : u.changed) *changed.Add() = r->resource();
          absl::Status st = applyClusters(
              config::parseClusterResources(u.version_info, changed, unknownFieldsMode()),
              &u.removed);
          cds_pending_ = false;
          if (st.ok() && xds_cache_) xds_cache_->storeDelta(type, u);
          checkInitialized();
          return st;
        });
    return;
  }
  stream.client().subscribe(type, wildcard, {}, [this, type, wildcard](const std::string& v,
                                                                        const config::AnyList& r) {
    updateStarted();
    absl::Status st;
    if (type == config::kClusterTypeUrl) {
      st = applySotwClusters(v, r);
      cds_pending_ = false;  // answered, accepted or not: the initial fetch is done
    } else if (type == config::kListenerTypeUrl) {
      st = applyListeners(config::parseListenerResources(v, r, unknownFieldsMode()));
      lds_pending_ = false;
    } else if (type == config::kRouteConfigurationTypeUrl) {
      config::CompiledVirtualHosts compiled;
      st = applyAdsRoutes(config::parseRouteResourcesReusing(v, r, vhdsSource(), xds_vhosts_,
                                                             compiled, unknownFieldsMode()));
      if (st.ok()) {
        size_t reused = 0, total = 0;
        for (const auto& [name, hosts] : compiled) {
          total += hosts.size();
          if (auto held = xds_vhosts_.find(name); held != xds_vhosts_.end()) {
            for (const auto& [hash, host] : hosts) {
              auto it = held->second.find(hash);
              reused += it != held->second.end() && it->second.compiled == host.compiled;
            }
          }
        }
        TURNOUT_LOG(info, kLog, "RDS: {} of {} virtual hosts unchanged (not compiled again)",
                    reused, total);
        xds_vhosts_ = std::move(compiled);
      }
    } else {
      st = applyAdsEndpoints(config::parseEndpointResources(v, r, unknownFieldsMode()));
    }
    // Each accepted response is also what --xds-cache keeps.
    if (st.ok() && xds_cache_) xds_cache_->store(type.c_str(), v, r, wildcard);
    checkInitialized();
    return st;
  });
}

absl::Status DynamicResources::applySotwClusters(const std::string& version,
                                                 const config::AnyList& resources) {
  // State of the World: every response holds every cluster. One whose
  // bytes hash as those the running cluster came in is neither parsed nor
  // checked again (at 20,100 clusters, parsing and checking all of them
  // was 375-425 ms of a one-sandbox update), as Envoy's CDS skips a cluster
  // whose hash is unchanged; the rest go through applyClusters as a Delta
  // update would, and what the response lacks is removed. Errors name
  // resources[i] of the whole response: a subset that would be refused
  // (parse, TLS, xDS source, a static cluster named) is not applied; the
  // whole response is, and says where.
  const DataPlaneConfigConstSharedPtr current = publisher_.current();
  config::AnyList changed;
  std::vector<std::pair<std::string, uint64_t>> changed_hashes;
  absl::flat_hash_set<std::string> named;
  bool incremental = true;
  for (const auto& any : resources) {
    std::optional<std::string> name;
    if (any.type_url() == config::kClusterTypeUrl) name = wireName(any.value());
    if (!name || !named.insert(*name).second) {
      TURNOUT_LOG(debug, kLog, "CDS (SotW): '{}' (type '{}') is unnamed or twice",
                  name.value_or(""), any.type_url());
      incremental = false;  // unnamed, not a Cluster, or twice: the full path says why
      break;
    }
    const ClusterRuntime* old = current->findCluster(*name);
    if (old != nullptr && old->owner == current->snapshot) {
      TURNOUT_LOG(debug, kLog, "CDS (SotW): '{}' is static", *name);
      incremental = false;  // a static cluster: refused, with its index
      break;
    }
    const uint64_t hash = absl::HashOf(any.value());
    auto held = sotw_clusters_.find(*name);
    if (old != nullptr && held != sotw_clusters_.end() && held->second.runtime == old &&
        held->second.hash == hash) {
      continue;  // unchanged
    }
    *changed.Add() = any;
    changed_hashes.emplace_back(*std::move(name), hash);
  }
  // After an accepted response: the changed clusters' hashes, and no entry
  // for a cluster the response did not name.
  auto remember = [&](const std::vector<std::pair<std::string, uint64_t>>& hashes,
                      const std::vector<std::string>& gone) {
    const DataPlaneConfigConstSharedPtr now = publisher_.current();
    for (const auto& [name, hash] : hashes) {
      sotw_clusters_[name] = SotwCluster{hash, now->findCluster(name)};
    }
    for (const auto& name : gone) sotw_clusters_.erase(name);
  };
  auto whole = [&] {
    absl::Status st =
        applyClusters(config::parseClusterResources(version, resources, unknownFieldsMode()));
    if (st.ok()) sotw_clusters_.clear();  // the next response parses all, and keeps their hashes
    return st;
  };
  if (!incremental) {
    TURNOUT_LOG(debug, kLog, "CDS (SotW): the whole response is parsed");
    return whole();
  }
  TURNOUT_LOG(info, kLog, "CDS (SotW): {} of {} clusters changed", changed.size(),
              resources.size());
  auto parsed = config::parseClusterResources(version, changed, unknownFieldsMode());
  // Unknown fields are named by their index in the whole response.
  if (!parsed.ok() || !parsed->unknown_fields.empty() || !checkClusterTls(*parsed->snapshot).ok() ||
      !checkAdsAvailable(*parsed->snapshot).ok()) {
    return whole();
  }
  std::vector<std::string> removed;
  for (const auto& [name, rt] : current->clusters) {
    if (rt->owner != current->snapshot && !named.contains(name)) removed.push_back(name);
  }
  absl::Status st = applyClusters(std::move(parsed), &removed);
  if (st.ok()) remember(changed_hashes, removed);
  return st;
}

absl::Status DynamicResources::canBind(const std::string& type,
                                       const std::optional<config::AdsServerConfig>& source,
                                       const std::string& path) const {
  auto bound = type_sources_.find(type);
  if (bound != type_sources_.end()) {
    if (bound->second.source == source) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": turnout already takes ", typeName(type), " from ",
        bound->second.source ? absl::StrCat("the api_config_source of cluster '",
                                            bound->second.source->cluster_name, "'")
                             : std::string("the ADS stream"),
        "; it takes each resource type from one xDS source"));
  }
  if (!source && !ads_) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": an ads config source needs dynamic_resources.ads_config"));
  }
  return absl::OkStatus();
}

absl::Status DynamicResources::bindType(const std::string& type,
                                        const std::optional<config::AdsServerConfig>& source,
                                        const std::string& path) {
  if (auto st = canBind(type, source, path); !st.ok()) return st;
  if (type_sources_.contains(type)) return absl::OkStatus();
  TypeSource bound{source, nullptr};
  if (source) {
    auto stream = makeStream(*source, typeMethod(type, source->delta), path);
    if (!stream.ok()) return stream.status();
    bound.stream = *std::move(stream);
    subscribeType(*bound.stream, type);
    TURNOUT_LOG(info, kLog, "{}: its own stream to cluster '{}' ({})", typeName(type),
                source->cluster_name, source->delta ? "Delta" : "SotW");
    if (xds_started_) bound.stream->start();
  }
  type_sources_.emplace(type, std::move(bound));
  return absl::OkStatus();
}

XdsStream* DynamicResources::streamFor(const std::string& type) const {
  auto it = type_sources_.find(type);
  if (it != type_sources_.end() && it->second.stream) return it->second.stream.get();
  return ads_.get();
}

absl::Status DynamicResources::startXds() {
  const config::Snapshot& boot = *publisher_.current()->snapshot;
  const auto& dr = boot.bootstrap.dynamic_resources();
  if (!xds_cache_dir_.empty()) {
    auto cache = XdsCache::create(xds_cache_dir_);
    if (!cache.ok()) return cache.status();
    xds_cache_ = *std::move(cache);
  }
  if (boot.ads) {
    auto stream = makeStream(*boot.ads,
                             boot.ads->delta
                                 ? "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"
                                 : "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources",
                             "dynamic_resources.ads_config");
    if (!stream.ok()) return stream.status();
    ads_ = *std::move(stream);
    // RDS and EDS names follow the listeners and clusters that use ADS.
    if (dr.cds_config().has_ads()) subscribeType(*ads_, config::kClusterTypeUrl);
    if (dr.lds_config().has_ads()) subscribeType(*ads_, config::kListenerTypeUrl);
    subscribeType(*ads_, config::kRouteConfigurationTypeUrl);
    subscribeType(*ads_, config::kClusterLoadAssignmentTypeUrl);
    if (boot.ads->delta) {
      // VHDS: a namespace per route configuration with vhds (watchVhds).
      ads_->client().subscribeDelta(
          config::kVirtualHostTypeUrl, {.wildcard = false, .namespaces = true}, {},
          [this](const config::xds::DeltaUpdate& u) {
            updateStarted();
            absl::Status st = applyVhds(u);
            if (st.ok() && xds_cache_) xds_cache_->storeDelta(config::kVirtualHostTypeUrl, u);
            return st;
          });
    }
    TURNOUT_LOG(info, kLog, "ADS: management server cluster '{}'", boot.ads->cluster_name);
  }
  // CDS and LDS from the bootstrap; RDS and EDS bind when the first listener
  // or cluster that takes them from xDS is applied (watchRoutes, watchEndpoints).
  for (auto [cs, source, type, path] :
       {std::make_tuple(&dr.cds_config(), &boot.cds_source, config::kClusterTypeUrl,
                        "dynamic_resources.cds_config.api_config_source"),
        std::make_tuple(&dr.lds_config(), &boot.lds_source, config::kListenerTypeUrl,
                        "dynamic_resources.lds_config.api_config_source")}) {
    if (cs->has_ads()) {
      if (auto st = bindType(type, std::nullopt, path); !st.ok()) return st;
    } else if (*source) {
      if (auto st = bindType(type, *source, path); !st.ok()) return st;
    }
  }
  return absl::OkStatus();
}

absl::Status DynamicResources::checkAdsAvailable(const config::Snapshot& resources) const {
  // What each type would be bound to after this update: the current binding,
  // else the first resource of the update that names a source.
  std::map<std::string, std::pair<std::optional<config::AdsServerConfig>, std::string>> first;
  auto check = [&](const std::string& type, const std::optional<config::AdsServerConfig>& source,
                   const std::string& path) -> absl::Status {
    if (auto st = canBind(type, source, path); !st.ok()) return st;
    auto [it, inserted] = first.try_emplace(type, source, path);
    if (!inserted && it->second.first != source) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": differs from the ", typeName(type), " source at ", it->second.second,
          "; turnout takes each resource type from one xDS source"));
    }
    if (inserted && source && !type_sources_.contains(type)) {
      // A new stream: its cluster must be there now.
      ClusterRuntimeConstSharedPtr c = publisher_.current()->cluster(source->cluster_name);
      if (!c || c->config->eds) {
        return absl::InvalidArgumentError(absl::StrCat(
            path, ".grpc_services[0].envoy_grpc.cluster_name: '", source->cluster_name,
            "' is not a static, non-EDS cluster (the xDS cluster)"));
      }
    }
    return absl::OkStatus();
  };
  for (size_t i = 0; i < resources.clusters.size(); ++i) {
    const config::ClusterConfig& c = resources.clusters[i];
    if (!c.eds || !c.eds->ads) continue;
    if (auto st = check(config::kClusterLoadAssignmentTypeUrl, c.eds->source,
                        absl::StrCat("resources[", i, "].eds_cluster_config.eds_config.",
                                     c.eds->source ? "api_config_source" : "ads"));
        !st.ok()) {
      return st;
    }
  }
  for (size_t i = 0; i < resources.listeners.size(); ++i) {
    const config::ListenerConfig& l = resources.listeners[i];
    std::vector<const config::FilterChainConfig*> chains;
    for (const auto& fc : l.filter_chains) chains.push_back(&fc);
    if (l.default_filter_chain) chains.push_back(&*l.default_filter_chain);
    for (const config::FilterChainConfig* fc : chains) {
      const auto& h = fc->http_connection_manager;
      if (!h || !h->rds_ads) continue;
      // The chain's path names the synthetic bootstrap; the response says resources[i].
      if (auto st = check(config::kRouteConfigurationTypeUrl, h->rds_source,
                          absl::StrCat(absl::StrReplaceAll(fc->path, {{"static_resources.listeners[", "resources["}}),
                                       ".filters[0].typed_config.rds.config_source.",
                                       h->rds_source ? "api_config_source" : "ads"));
          !st.ok()) {
        return st;
      }
    }
  }
  return absl::OkStatus();
}

void DynamicResources::watchRoutes() {
  std::set<std::string> ads_names;
  // Every filter chain's HCM (a listener may have several, chosen by SNI).
  std::vector<const config::HttpConnectionManagerConfig*> hcms;
  for (const auto& l : publisher_.current()->listeners) {
    for (const auto& c : l->filter_chains) {
      if (c.hcm) hcms.push_back(c.hcm->config);
    }
  }
  for (const auto& [name, w] : warming_listeners_) {
    for (const auto& c : w.runtime->filter_chains) {
      if (c.hcm) hcms.push_back(c.hcm->config);
    }
  }
  for (const config::HttpConnectionManagerConfig* hcm : hcms) {
    const config::HttpConnectionManagerConfig& h = *hcm;
    if (h.route_source == config::HttpConnectionManagerConfig::RouteSource::Rds && h.rds_ads) {
      if (auto st = bindType(config::kRouteConfigurationTypeUrl, h.rds_source,
                             absl::StrCat("http.", h.stat_prefix, ".rds"));
          !st.ok()) {
        // Checked before the listener was taken (checkAdsAvailable, SnapshotBuilder).
        TURNOUT_LOG(err, kLog, "RDS '{}': {}", h.route_config_name, std::string(st.message()));
        continue;
      }
      ads_names.insert(h.route_config_name);
      // One subscription per route configuration, however many HCMs name
      // it, with its stats under the stat_prefix of the first HCM that did
      // (Envoy's RouteConfigProviderManager: subscriptions are keyed by the
      // Rds message; http.<stat_prefix>.rds.<name>.* and .vhds.<name>.*).
      if (!ads_rds_stats_.contains(h.route_config_name)) {
        ads_rds_prefixes_.emplace(h.route_config_name, h.stat_prefix);
        ads_rds_stats_.emplace(
            h.route_config_name,
            makeStats(absl::StrCat("http.", h.stat_prefix, ".rds.", h.route_config_name, ".")));
      }
      continue;
    }
    if (h.route_source != config::HttpConnectionManagerConfig::RouteSource::Rds ||
        h.rds_path.empty()) {
      continue;
    }
    // As for ADS: one subscription (and one set of stats) per file and name.
    const std::string key = h.rds_path + "\n" + h.route_config_name;
    if (std::find(rds_watched_.begin(), rds_watched_.end(), key) != rds_watched_.end()) continue;
    rds_watched_.push_back(key);
    UpdateStats s = makeStats(
        absl::StrCat("http.", h.stat_prefix, ".rds.", h.route_config_name, "."));
    auto it = std::find_if(rds_.begin(), rds_.end(),
                           [&](const RdsSource& r) { return r.path == h.rds_path; });
    if (it != rds_.end()) {
      it->names.emplace_back(h.route_config_name, s);
      continue;
    }
    rds_.push_back(RdsSource{h.rds_path, {{h.route_config_name, s}}});
    const size_t index = rds_.size() - 1;
    auto w = std::make_unique<FileWatch>(
        main_, h.rds_path,
        h.rds_watched_directory.empty() ? dirOf(h.rds_path) : h.rds_watched_directory,
        [this, index](const std::string& c) {
          updateStarted();
          const RdsSource& src = rds_[index];
          stats::Shard& shard = store_.mainShard();
          for (const auto& [name, st] : src.names) shard.inc(st.attempt);
          auto parsed = config::parseRouteResponse(c, unknownFieldsMode());
          if (parsed.ok()) noteUnknownFields("RDS", parsed->unknown_fields);
          if (!parsed.ok()) {
            for (const auto& [name, st] : src.names) {
              rejected(st, nullptr, absl::StrCat("RDS '", name, "' (", src.path, ")"),
                       parsed.status());
              routeRejected(name, absl::StrCat("RDS '", src.path, "': ", parsed.status().message()));
            }
            return;
          }
          DataPlaneConfigConstSharedPtr next = publisher_.current();
          for (const auto& [name, table] : parsed->tables) {
            next = SnapshotPublisher::withRoute(*next, name, table);
          }
          if (auto st = publisher_.publish(next); !st.ok()) {
            for (const auto& [name, s2] : src.names) {
              rejected(s2, nullptr, "RDS", st);
              routeRejected(name, absl::StrCat("RDS '", src.path, "': ", st.message()));
            }
            return;
          }
          for (const auto& [name, st] : src.names) accepted(st, nullptr, parsed->version_info);
          const Time now = std::chrono::system_clock::now();
          for (auto& rc : parsed->configs) {
            RouteConfigState& state = route_configs_[rc.name()];
            state.version_info = parsed->version_info;
            state.last_updated = now;
            state.error.reset();
            state.route_config = std::move(rc);
          }
          TURNOUT_LOG(info, kLog, "RDS '{}': version '{}' applied", src.path,
                      parsed->version_info);
        });
    FileWatch* raw = w.get();
    watches_.push_back(std::move(w));
    raw->start();
  }
  ads_rds_names_ = ads_names;
  if (XdsStream* stream = streamFor(config::kRouteConfigurationTypeUrl)) {
    if (xds_cache_) xds_cache_->retain(config::kRouteConfigurationTypeUrl, ads_names);
    stream->client().setNames(config::kRouteConfigurationTypeUrl, std::move(ads_names));
  }
  watchVhds();
}

absl::Status DynamicResources::applyAdsRoutes(absl::StatusOr<config::DiscoveryRoutes> parsed) {
  stats::Shard& shard = store_.mainShard();
  for (const auto& [name, st] : ads_rds_stats_) shard.inc(st.attempt);
  if (!parsed.ok()) {
    for (const auto& [name, st] : ads_rds_stats_) {
      rejected(st, nullptr, absl::StrCat("RDS '", name, "' (ADS)"), parsed.status());
      routeRejected(name, absl::StrCat("RDS (ADS): ", parsed.status().message()));
    }
    return parsed.status();
  }
  noteUnknownFields("RDS", parsed->unknown_fields);
  // VHDS: a route configuration with vhds serves its inline virtual hosts
  // and those of its namespace received so far.
  std::set<std::string> merged;
  for (size_t i = 0; i < parsed->configs.size(); ++i) {
    const auto& rc = parsed->configs[i];
    if (!rc.has_vhds() || !ads_rds_stats_.contains(rc.name())) continue;
    static const VhdsHosts kNoHosts;
    auto hosts = vhds_hosts_.find(rc.name());
    auto m = mergeVhds(rc, hosts == vhds_hosts_.end() ? kNoHosts : hosts->second,
                       absl::StrCat("resources[", i, "]"), [](const std::string& n) {
                         return absl::StrCat("VHDS virtual host '", n, "'");
                       });
    if (!m.ok()) {
      for (const auto& [name, st] : ads_rds_stats_) {
        rejected(st, nullptr, absl::StrCat("RDS '", name, "' (ADS)"), m.status());
      }
      routeRejected(rc.name(), absl::StrCat("RDS (ADS): ", m.status().message()));
      return m.status();
    }
    parsed->tables[i].second = *m;
    merged.insert(rc.name());
  }
  DataPlaneConfigConstSharedPtr next = publisher_.current();
  bool changed = false;
  for (const auto& [name, table] : parsed->tables) {
    if (!ads_rds_stats_.contains(name)) {
      TURNOUT_LOG(warn, kLog, "RDS (ADS): route configuration '{}' was not asked for; ignored", name);
      continue;
    }
    next = SnapshotPublisher::withRoute(*next, name, table);
    changed = true;
  }
  if (changed) {
    if (auto st = publisher_.publish(next); !st.ok()) {
      for (const auto& [name, s2] : ads_rds_stats_) rejected(s2, nullptr, "RDS", st);
      return st;
    }
  }
  const Time now = std::chrono::system_clock::now();
  for (auto& rc : parsed->configs) {
    auto it = ads_rds_stats_.find(rc.name());
    if (it == ads_rds_stats_.end()) continue;
    accepted(it->second, nullptr, parsed->version_info);
    RouteConfigState& state = route_configs_[rc.name()];
    state.version_info = parsed->version_info;
    state.last_updated = now;
    state.error.reset();
    if (merged.contains(rc.name())) {
      // /config_dump shows the VHDS virtual hosts merged in (routeConfig()).
      state.vhds = true;
      state.route_config.reset();
      vhds_rds_[rc.name()] = std::move(rc);
    } else {
      vhds_rds_.erase(rc.name());
      state.vhds = false;
      state.route_config = std::move(rc);
    }
  }
  TURNOUT_LOG(info, kLog, "RDS (ADS): version '{}' applied", parsed->version_info);
  watchVhds();
  if (!warming_listeners_.empty()) promoteWarmed(false);
  return absl::OkStatus();
}

config::VhdsSource DynamicResources::vhdsSource() const {
  if (!ads_) return config::VhdsSource::kNone;
  return ads_->client().protocol() == config::xds::XdsProtocol::kDelta
             ? config::VhdsSource::kDeltaAds
             : config::VhdsSource::kSotwAds;
}

envoy::config::route::v3::RouteConfiguration DynamicResources::mergedProto(
    const envoy::config::route::v3::RouteConfiguration& rds, const VhdsHosts& hosts) {
  envoy::config::route::v3::RouteConfiguration out = rds;
  for (const auto& [name, vh] : hosts) {
    // Parsed when it was accepted: these bytes cannot fail to parse.
    (void)out.add_virtual_hosts()->ParseFromString(vh.serialized);
  }
  return out;
}

absl::StatusOr<RouteTableConstSharedPtr> DynamicResources::mergeVhds(
    const envoy::config::route::v3::RouteConfiguration& rds, const VhdsHosts& hosts,
    const std::string& path, const std::function<std::string(const std::string&)>& label) {
  // The head alone (its inline virtual hosts; no copy of the VHDS ones).
  envoy::config::route::v3::RouteConfiguration head = rds;
  head.clear_vhds();
  std::vector<routing::RouteTable::VirtualHostConstSharedPtr> compiled;
  compiled.reserve(hosts.size());
  for (const auto& [name, vh] : hosts) compiled.push_back(vh.compiled);
  auto table = config::translateRouteConfiguration(head, path, std::move(compiled));
  if (!table.ok()) {
    // A VHDS virtual host is named by its resource, not by where the merge put it.
    const int inline_count = rds.virtual_hosts_size();
    std::vector<std::pair<std::string, std::string>> names;
    int k = inline_count;
    for (const auto& [name, vh] : hosts) {
      names.emplace_back(absl::StrCat(path, ".virtual_hosts[", k++, "]"), label(name));
    }
    return absl::Status(table.status().code(),
                        absl::StrReplaceAll(table.status().message(), names));
  }
  return *std::move(table);
}

std::optional<envoy::config::route::v3::RouteConfiguration> DynamicResources::routeConfig(
    const std::string& name, const RouteConfigState& state) const {
  if (!state.vhds) return state.route_config;
  auto rds = vhds_rds_.find(name);
  if (rds == vhds_rds_.end()) return std::nullopt;
  static const VhdsHosts kNoHosts;
  auto hosts = vhds_hosts_.find(name);
  return mergedProto(rds->second, hosts == vhds_hosts_.end() ? kNoHosts : hosts->second);
}

void DynamicResources::watchVhds() {
  if (!ads_) return;
  const config::xds::XdsClient::TypeState* state =
      ads_->client().state(config::kVirtualHostTypeUrl);
  if (state == nullptr) return;
  std::set<std::string> names;
  for (const auto& [name, rc] : vhds_rds_) {
    if (ads_rds_names_.contains(name)) names.insert(name);
  }
  if (names == state->names) return;
  for (const auto& n : names) {
    if (state->names.contains(n) || !vhds_waiting_.insert(n).second) continue;
    // The wait is bounded by vhds.config_source.initial_fetch_timeout (15 s
    // unset, 0 none), as Envoy's VHDS subscription is its own init target.
    const auto timeout = initialFetchTimeout(vhds_rds_[n].vhds().config_source());
    if (timeout.count() == 0) continue;
    auto timer = std::make_shared<SteadyTimer>(main_);
    timer->expires_after(timeout);
    timer->async_wait([this, n, timer](const boost::system::error_code& ec) {
      if (ec || !vhds_waiting_.erase(n)) return;
      TURNOUT_LOG(warn, kLog, "VHDS: no VirtualHost response for route configuration '{}' "
                  "within vhds.config_source.initial_fetch_timeout; serving without", n);
      promoteWarmed(false);
      checkInitialized();
    });
    vhds_timers_.push_back(std::move(timer));
  }
  std::erase_if(vhds_timers_, [](const auto& t) {
    return t->expiry() < std::chrono::steady_clock::now();
  });
  std::erase_if(vhds_waiting_, [&](const std::string& n) { return !names.contains(n); });
  std::erase_if(vhds_hosts_, [&](const auto& kv) { return !names.contains(kv.first); });
  TURNOUT_LOG(info, kLog, "VHDS: subscribed to {} route configuration(s)", names.size());
  if (xds_cache_) xds_cache_->retain(config::kVirtualHostTypeUrl, names, /*namespaces=*/true);
  ads_->client().setNames(config::kVirtualHostTypeUrl, std::move(names));
}

absl::Status DynamicResources::applyVhds(const config::xds::DeltaUpdate& u) {
  // Any answer ends the initial wait of the subscribed route configurations,
  // accepted or not (Envoy's VHDS init target).
  auto answered = [this] {
    if (vhds_waiting_.empty()) return;
    vhds_waiting_.clear();
    promoteWarmed(false);
    checkInitialized();
  };
  // Applied in place; undone if anything below fails.
  struct Undo {
    std::string ns, name;
    std::optional<VhdsHost> before;
  };
  std::vector<Undo> undo;
  auto rollback = [&] {
    for (auto it = undo.rbegin(); it != undo.rend(); ++it) {
      if (it->before) {
        vhds_hosts_[it->ns][it->name] = std::move(*it->before);
      } else {
        vhds_hosts_[it->ns].erase(it->name);
      }
    }
    std::erase_if(vhds_hosts_, [](const auto& kv) { return kv.second.empty(); });
  };
  auto reject = [&](absl::Status st) {
    rollback();
    TURNOUT_LOG(warn, kLog, "VHDS update rejected: {}", std::string(st.message()));
    for (const auto& [name, rc] : vhds_rds_) {
      routeRejected(name, absl::StrCat("VHDS: ", st.message()));
    }
    answered();
    return st;
  };
  std::set<std::string> touched;
  absl::flat_hash_map<std::string, std::string> labels;  // resource name -> resources[i]
  std::vector<std::string> unknown;                      // noted once the update is accepted
  for (size_t i = 0; i < u.changed.size(); ++i) {
    const auto& r = *u.changed[i];
    const std::string path = absl::StrCat("resources[", i, "]");
    if (!r.resource().Is<envoy::config::route::v3::VirtualHost>()) {
      return reject(absl::InvalidArgumentError(
          absl::StrCat(path, ": cannot parse a envoy.config.route.v3.VirtualHost")));
    }
    std::string ns = config::xds::namespaceOf(r.name());
    if (ns.empty()) {
      return reject(absl::InvalidArgumentError(absl::StrCat(
          path, ".name: '", r.name(),
          "' is not '<route configuration name>/<virtual host>' (VHDS names are namespaced)")));
    }
    // A new version of a host parses, checks and compiles only the routes
    // it did not have.
    static const config::RouteKeys kNone;
    const VhdsHost* previous = nullptr;
    if (auto h = vhds_hosts_.find(ns); h != vhds_hosts_.end()) {
      if (auto p = h->second.find(r.name()); p != h->second.end()) previous = &p->second;
    }
    std::string bytes(r.resource().value());
    config::RouteKeys keys;
    auto compiled = config::checkVirtualHost(
        bytes, path, previous != nullptr ? previous->compiled.get() : nullptr,
        previous != nullptr ? previous->route_keys : kNone, keys,
        unknown_fields_ == UnknownDynamicFields::kReject ? nullptr : &unknown);
    if (!compiled.ok()) return reject(compiled.status());
    VhdsHosts& hosts = vhds_hosts_[ns];
    auto [it, inserted] = hosts.try_emplace(r.name());
    Undo& d = undo.emplace_back(Undo{ns, r.name(), std::nullopt});
    if (!inserted) d.before = std::move(it->second);
    it->second = VhdsHost{std::move(bytes), *std::move(compiled), std::move(keys)};
    labels[r.name()] = path;
    touched.insert(std::move(ns));
  }
  for (const auto& name : u.removed) {
    std::string ns = config::xds::namespaceOf(name);
    auto hosts = vhds_hosts_.find(ns);
    if (hosts == vhds_hosts_.end()) continue;
    auto it = hosts->second.find(name);
    if (it == hosts->second.end()) continue;
    undo.push_back(Undo{ns, name, std::move(it->second)});
    hosts->second.erase(it);
    touched.insert(std::move(ns));
  }
  // Every touched route configuration rebuilt; all or nothing.
  static const VhdsHosts kNoHosts;
  std::map<std::string, RouteTableConstSharedPtr> merged;
  for (const auto& ns : touched) {
    auto rds = vhds_rds_.find(ns);
    if (rds == vhds_rds_.end() || !ads_rds_names_.contains(ns)) continue;
    auto hosts = vhds_hosts_.find(ns);
    auto m = mergeVhds(rds->second, hosts == vhds_hosts_.end() ? kNoHosts : hosts->second,
                       absl::StrCat("route configuration '", ns, "'"),
                       [&](const std::string& n) {
                         auto l = labels.find(n);
                         return l != labels.end() ? l->second
                                                  : absl::StrCat("VHDS virtual host '", n, "'");
                       });
    if (!m.ok()) return reject(m.status());
    merged.emplace(ns, *std::move(m));
  }
  if (!merged.empty()) {
    DataPlaneConfigConstSharedPtr next = publisher_.current();
    for (const auto& [name, table] : merged) next = SnapshotPublisher::withRoute(*next, name, table);
    if (auto st = publisher_.publish(next); !st.ok()) return reject(st);
  }
  std::erase_if(vhds_hosts_, [](const auto& kv) { return kv.second.empty(); });
  const Time now = std::chrono::system_clock::now();
  stats::Shard& shard = store_.mainShard();
  for (auto& [name, table] : merged) {
    RouteConfigState& state = route_configs_[name];
    state.last_updated = now;
    state.error.reset();
    if (auto p = ads_rds_prefixes_.find(name); p != ads_rds_prefixes_.end()) {
      const std::string scope = absl::StrCat("http.", p->second, ".vhds.", name, ".");
      shard.inc(store_.counter(scope + "config_reload"));
      shard.recordMicros(store_.histogram(scope + "update_duration"), updateMicros());
    }
  }
  noteUnknownFields("VHDS", unknown);
  TURNOUT_LOG(info, kLog, "VHDS: version '{}' applied ({} changed, {} removed, {} route "
              "configuration(s) rebuilt)", u.version_info, u.changed.size(), u.removed.size(),
              merged.size());
  answered();
  return absl::OkStatus();
}

void DynamicResources::routeRejected(const std::string& name, std::string details) {
  route_configs_[name].error = ErrorState{std::move(details), std::chrono::system_clock::now()};
}

absl::Status DynamicResources::applyClusters(absl::StatusOr<config::DiscoverySnapshot> parsed,
                                             const std::vector<std::string>* removed_names) {
  store_.mainShard().inc(cds_stats_.attempt);
  auto reject = [&](const absl::Status& st) {
    rejected(cds_stats_, &cds_, "CDS", st);
    return st;
  };
  if (!parsed.ok()) return reject(parsed.status());
  noteUnknownFields("CDS", parsed->unknown_fields);
  if (auto st = checkAdsAvailable(*parsed->snapshot); !st.ok()) return reject(st);
  for (const auto& w : parsed->warnings) TURNOUT_LOG(warn, kLog, "CDS: {}", w);
  const DataPlaneConfigConstSharedPtr& current = publisher_.current();
  const config::Snapshot& file = *parsed->snapshot;
  std::vector<ClusterRuntimeConstSharedPtr> upserts;
  std::vector<std::string> changed;
  absl::flat_hash_set<std::string> names;
  for (size_t i = 0; i < file.clusters.size(); ++i) {
    const config::ClusterConfig& c = file.clusters[i];
    names.insert(c.name);
    ClusterRuntimeConstSharedPtr old = current->cluster(c.name);
    if (old && old->owner == current->snapshot) {
      return reject(absl::InvalidArgumentError(absl::StrCat(
          "resources[", i, "].name: '", c.name,
          "' is a static cluster of the bootstrap and cannot be replaced")));
    }
    if (old) {
      // Unchanged resource: keep the runtime object (workers keep its pools).
      const size_t old_index = static_cast<size_t>(old->config - old->owner->clusters.data());
      // Snapshots keep cluster protos serialized: equal bytes are equal
      // messages; else compare parsed (map fields may serialize in any order).
      if (old_index < old->owner->cluster_protos.size() &&
          (old->owner->cluster_protos[old_index] == file.cluster_protos[i] ||
           google::protobuf::util::MessageDifferencer::Equals(old->owner->clusterProto(old_index),
                                                              file.clusterProto(i)))) {
        continue;
      }
    }
    auto rt = DataPlaneConfig::buildCluster(parsed->snapshot, c, store_);
    if (!rt.ok()) return reject(rt.status());
    upserts.push_back(withCachedEndpoints(*std::move(rt)));
    changed.push_back(c.name);
  }
  std::vector<std::string> removed;
  if (removed_names != nullptr) {
    // Incremental: what the update names, if it is a dynamic cluster.
    for (const auto& name : *removed_names) {
      ClusterRuntimeConstSharedPtr rt = current->cluster(name);
      if (rt && rt->owner != current->snapshot && !names.contains(name)) removed.push_back(name);
    }
  } else {
    for (const auto& [name, rt] : current->clusters) {
      if (rt->owner != current->snapshot && !names.contains(name)) removed.push_back(name);
    }
  }
  if (upserts.empty() && removed.empty()) {
    accepted(cds_stats_, &cds_, parsed->version_info);
    return absl::OkStatus();
  }
  auto next = SnapshotPublisher::withClusters(*current, std::move(upserts), removed);
  if (auto st = publisher_.publish(next); !st.ok()) return reject(st);
  accepted(cds_stats_, &cds_, parsed->version_info, changed, removed);
  TURNOUT_LOG(info, kLog, "CDS: version '{}' applied ({} clusters)", parsed->version_info,
              next->clusters.size());
  watchEndpoints(&changed, &removed);
  return absl::OkStatus();
}

absl::Status DynamicResources::applyListeners(absl::StatusOr<config::DiscoverySnapshot> parsed) {
  store_.mainShard().inc(lds_stats_.attempt);
  auto reject = [&](const absl::Status& st) {
    rejected(lds_stats_, &lds_, "LDS", st);
    return st;
  };
  if (!parsed.ok()) return reject(parsed.status());
  noteUnknownFields("LDS", parsed->unknown_fields);
  for (const auto& w : parsed->warnings) TURNOUT_LOG(warn, kLog, "LDS: {}", w);
  if (auto st = checkAdsAvailable(*parsed->snapshot); !st.ok()) return reject(st);
  const DataPlaneConfigConstSharedPtr& current = publisher_.current();
  const config::Snapshot& file = *parsed->snapshot;
  std::vector<ListenerRuntimeConstSharedPtr> upserts;
  std::vector<std::string> changed;
  absl::flat_hash_set<std::string> names;
  // The update's listeners were checked against each other when built; the
  // bootstrap's stay, so none may take one of their addresses.
  config::ListenerAddressSet addresses;
  for (const auto& l : current->listeners) {
    if (l->owner == current->snapshot) addresses.insert(*l->config);
  }
  for (size_t i = 0; i < file.listeners.size(); ++i) {
    const config::ListenerConfig& l = file.listeners[i];
    names.insert(l.name);
    if (auto other = addresses.insert(l); other.has_value() && *other != l.name) {
      return reject(absl::InvalidArgumentError(absl::StrCat(
          "resources[", i, "].address: error adding listener '", l.name,
          "': has duplicate address '", l.address.toString(), "' as existing listener '", *other,
          "' (a static listener of the bootstrap)")));
    }
    const ListenerRuntimeConstSharedPtr* old = current->findListener(l.name);
    if (old && (*old)->owner == current->snapshot) {
      return reject(absl::InvalidArgumentError(absl::StrCat(
          "resources[", i, "].name: '", l.name,
          "' is a static listener of the bootstrap and cannot be replaced")));
    }
    if (old && sameListenerProto(**old, file, i)) continue;
    if (auto w = warming_listeners_.find(l.name); w != warming_listeners_.end()) {
      if (sameListenerProto(*w->second.runtime, file, i)) continue;  // still warming, unchanged
    }
    auto rt = DataPlaneConfig::buildListener(parsed->snapshot, l, store_, current->routes);
    if (!rt.ok()) return reject(rt.status());
    upserts.push_back(*std::move(rt));
    changed.push_back(l.name);
  }
  std::vector<std::string> removed;
  for (const auto& l : current->listeners) {
    if (l->owner != current->snapshot && !names.contains(l->config->name)) {
      removed.push_back(l->config->name);
    }
  }
  // Listeners whose ADS routes are missing warm instead of being bound now.
  std::vector<ListenerRuntimeConstSharedPtr> warming;
  for (auto it = upserts.begin(); it != upserts.end();) {
    if (ads_ && !missingAdsRoutes(**it, current->routes).empty()) {
      warming.push_back(std::move(*it));
      it = upserts.erase(it);
    } else {
      ++it;
    }
  }
  if (!upserts.empty() || !removed.empty()) {
    auto next = SnapshotPublisher::withListeners(*current, std::move(upserts), removed);
    if (auto st = publisher_.publish(next); !st.ok()) return reject(st);
  }
  for (auto it = warming_listeners_.begin(); it != warming_listeners_.end();) {
    if (names.contains(it->first)) {
      ++it;
    } else {
      it->second.timer->cancel();
      it = warming_listeners_.erase(it);
    }
  }
  for (auto& rt : warming) {
    const std::string name = rt->config->name;
    WarmingListener& w = warming_listeners_[name];
    if (w.timer) w.timer->cancel();
    w.runtime = std::move(rt);
    w.timer = std::make_unique<SteadyTimer>(main_);
    // Bounded by its HCMs' rds.config_source.initial_fetch_timeout (the
    // longest; 0 in any: until the routes come).
    std::chrono::milliseconds bound{0};
    bool unbounded = false;
    for (const auto& c : w.runtime->filter_chains) {
      if (!c.hcm || !c.hcm->config->rds_ads) continue;
      const auto t = std::chrono::duration_cast<std::chrono::milliseconds>(
          c.hcm->config->rds_initial_fetch_timeout);
      unbounded = unbounded || t.count() == 0;
      bound = std::max(bound, t);
    }
    if (unbounded) {
      TURNOUT_LOG(info, kLog, "LDS: listener '{}' warms until its routes arrive (no "
                  "initial_fetch_timeout)", name);
      continue;
    }
    w.timer->expires_after(bound);
    w.timer->async_wait([this, name, bound, raw = w.runtime.get()](
                            const boost::system::error_code& ec) {
      if (ec) return;
      auto it = warming_listeners_.find(name);
      if (it == warming_listeners_.end() || it->second.runtime.get() != raw) return;
      TURNOUT_LOG(warn, kLog, "LDS: listener '{}' got no route configuration within {} ms "
                  "(initial_fetch_timeout); serving it without (404 until one arrives)",
                  name, bound.count());
      promoteWarmed(true, name);
    });
    TURNOUT_LOG(info, kLog, "LDS: listener '{}' warms until its routes arrive", name);
  }
  setWarmingGauge();
  accepted(lds_stats_, &lds_, parsed->version_info, changed, removed);
  TURNOUT_LOG(info, kLog, "LDS: version '{}' applied", parsed->version_info);
  watchRoutes();
  return absl::OkStatus();
}

std::vector<std::string> DynamicResources::missingAdsRoutes(
    const ListenerRuntime& l,
    const absl::flat_hash_map<std::string, RouteTableConstSharedPtr>& routes) const {
  std::vector<std::string> out;
  for (const auto& c : l.filter_chains) {
    if (!c.hcm) continue;
    const config::HttpConnectionManagerConfig& h = *c.hcm->config;
    if (h.route_source == config::HttpConnectionManagerConfig::RouteSource::Rds && h.rds_ads &&
        (!routes.contains(h.route_config_name) || vhds_waiting_.contains(h.route_config_name))) {
      out.push_back(h.route_config_name);
    }
  }
  return out;
}

void DynamicResources::setWarmingGauge() {
  store_.mainShard().set(listeners_warming_, static_cast<int64_t>(warming_listeners_.size()));
}

void DynamicResources::promoteWarmed(bool all, const std::string& only) {
  const DataPlaneConfigConstSharedPtr current = publisher_.current();
  std::vector<ListenerRuntimeConstSharedPtr> ready;
  std::vector<std::string> done;
  for (auto& [name, w] : warming_listeners_) {
    if (!only.empty() && name != only) continue;
    if (!all && !missingAdsRoutes(*w.runtime, current->routes).empty()) continue;
    // Built again: its HCMs take the route tables that exist now.
    auto rt = DataPlaneConfig::buildListener(w.runtime->owner, *w.runtime->config, store_,
                                             current->routes);
    done.push_back(name);
    if (!rt.ok()) {
      TURNOUT_LOG(warn, kLog, "LDS: listener '{}' cannot be built after warming: {}", name,
                  std::string(rt.status().message()));
      continue;
    }
    ready.push_back(*std::move(rt));
  }
  for (const auto& name : done) {
    warming_listeners_[name].timer->cancel();
    warming_listeners_.erase(name);
  }
  setWarmingGauge();
  if (ready.empty()) {
    checkInitialized();
    return;
  }
  auto next = SnapshotPublisher::withListeners(*current, std::move(ready), {});
  if (auto st = publisher_.publish(next); !st.ok()) {
    TURNOUT_LOG(warn, kLog, "LDS: warmed listeners cannot be bound: {}", std::string(st.message()));
    return;
  }
  TURNOUT_LOG(info, kLog, "LDS: {} warmed listener(s) bound", done.size());
  checkInitialized();
}

ClusterRuntimeConstSharedPtr DynamicResources::withCachedEndpoints(ClusterRuntimeConstSharedPtr c) {
  const config::ClusterConfig& cfg = *c->config;
  if (!cfg.eds) return c;
  const config::DiscoveryEndpoints::Assignment* a = cachedAssignment(cfg);
  if (a == nullptr) return c;
  // The replaced cluster's hosts keep their state (and pools) where they survive.
  std::vector<HostDescription> current;
  if (auto old = eds_clusters_.find(cfg.name); old != eds_clusters_.end()) {
    current = old->second.hosts->hosts;
  }
  auto copy = std::make_shared<ClusterRuntime>(*c);
  copy->hosts = makeHostSet(cfg, updateEndpointHosts(a->localities, current, c->health_checked).hosts);
  recordMembership(*copy, *copy->hosts, store_.mainShard());
  return copy;
}

const config::DiscoveryEndpoints::Assignment* DynamicResources::cachedAssignment(
    const config::ClusterConfig& cfg) const {
  if (!cfg.eds) return nullptr;
  if (cfg.eds->ads) {
    auto it = ads_assignments_.find(cfg.eds_service_name);
    return it == ads_assignments_.end() ? nullptr : &it->second;
  }
  auto file = eds_files_.find(cfg.eds->path);
  if (file == eds_files_.end() || !file->second) return nullptr;
  return file->second->find(cfg.eds_service_name);
}

// What one watchEndpoints() call changed, applied at its end.
struct DynamicResources::EdsWatch {
  std::set<std::string> touched;  // ads_eds_ keys added or removed
  std::vector<std::string> new_paths;
  std::vector<std::string> caught_up;
};

void DynamicResources::watchEndpoints(const std::vector<std::string>* changed,
                                      const std::vector<std::string>* removed) {
  const DataPlaneConfigConstSharedPtr current = publisher_.current();
  EdsWatch w;
  if (changed == nullptr) {
    for (const auto& [name, rt] : current->clusters) watchCluster(name, rt, w);
    std::vector<std::string> gone;
    for (const auto& [name, e] : eds_clusters_) {
      const ClusterRuntime* now = current->findCluster(name);
      if (now == nullptr || !now->config->eds) gone.push_back(name);
    }
    for (const auto& name : gone) forgetEdsCluster(name, w);
  } else {
    for (const auto& name : *changed) {
      if (ClusterRuntimeConstSharedPtr rt = current->cluster(name)) watchCluster(name, rt, w);
    }
    if (removed != nullptr) {
      for (const auto& name : *removed) forgetEdsCluster(name, w);
    }
    // A source that could not be bound is tried again.
    const std::vector<std::string> unbound(eds_unbound_.begin(), eds_unbound_.end());
    for (const auto& name : unbound) {
      if (ClusterRuntimeConstSharedPtr rt = current->cluster(name)) watchCluster(name, rt, w);
    }
  }
  for (const auto& name : w.caught_up) {
    EdsCluster& e = eds_clusters_[name];
    applyAssignment(e, cachedAssignment(*e.runtime->config), /*count=*/false);
  }
  for (const auto& path : w.new_paths) {
    const config::EdsSourceConfig& src = *[&]() -> const config::EdsSourceConfig* {
      for (const auto& [name, e] : eds_clusters_) {
        if (!e.runtime->config->eds->ads && e.runtime->config->eds->path == path) {
          return &*e.runtime->config->eds;
        }
      }
      return nullptr;
    }();
    auto fw = std::make_unique<FileWatch>(
        main_, src.path, src.watched_directory.empty() ? dirOf(src.path) : src.watched_directory,
        [this, path](const std::string& c) { onEndpoints(path, c); });
    FileWatch* raw = fw.get();
    watches_.push_back(std::move(fw));
    raw->start();
  }
  store_.mainShard().set(warming_clusters_, warming_count_);
  XdsStream* stream = streamFor(config::kClusterLoadAssignmentTypeUrl);
  if (stream == nullptr) {
    eds_names_synced_ = false;
    return;
  }
  // Assignments nobody uses any more are forgotten, as Envoy drops them.
  if (!eds_names_synced_) {
    std::set<std::string> names;
    for (const auto& [name, list] : ads_eds_) names.insert(name);
    for (auto it = ads_assignments_.begin(); it != ads_assignments_.end();) {
      if (names.contains(it->first)) {
        ++it;
      } else {
        ads_assignments_.erase(it++);
      }
    }
    if (xds_cache_) xds_cache_->retain(config::kClusterLoadAssignmentTypeUrl, names);
    stream->client().setNames(config::kClusterLoadAssignmentTypeUrl, std::move(names));
    eds_names_synced_ = true;
    return;
  }
  std::vector<std::string> add;
  std::vector<std::string> remove;
  for (const auto& name : w.touched) {
    if (ads_eds_.contains(name)) {
      add.push_back(name);
    } else {
      remove.push_back(name);
      ads_assignments_.erase(name);
    }
  }
  if (xds_cache_ && !remove.empty()) {
    xds_cache_->forget(config::kClusterLoadAssignmentTypeUrl, remove);
  }
  stream->client().updateNames(config::kClusterLoadAssignmentTypeUrl, add, remove);
}

void DynamicResources::watchCluster(const std::string& name,
                                    const ClusterRuntimeConstSharedPtr& rt, EdsWatch& w) {
  const config::ClusterConfig& cfg = *rt->config;
  if (!cfg.eds) {
    forgetEdsCluster(name, w);  // it may have been an EDS cluster before
    return;
  }
  EdsCluster& e = eds_clusters_[name];
  // A cluster bound to its EDS source when it came only needs its name
  // (20,000 clusters: binding each again, and naming its path, was most of
  // this loop); one that could not be bound tries again.
  if (!cfg.eds->ads) {
    e.bound = false;
    eds_unbound_.erase(name);
  } else if (!(e.bound && e.runtime == rt)) {
    e.bound = false;
    if (auto st = bindType(config::kClusterLoadAssignmentTypeUrl, cfg.eds->source,
                           absl::StrCat("cluster.", name, ".eds"));
        st.ok()) {
      e.bound = true;
      eds_unbound_.erase(name);
    } else {
      eds_unbound_.insert(name);
      TURNOUT_LOG(err, kLog, "EDS for cluster '{}': {}", name, std::string(st.message()));
    }
  }
  // Registered under the assignment name it asks for.
  const std::string& want = cfg.eds->ads && e.bound ? cfg.eds_service_name : std::string();
  if (e.ads_name != want) {
    unregisterAds(e, w);
    if (!want.empty()) {
      auto& list = ads_eds_[want];
      if (list.empty()) w.touched.insert(want);
      list.push_back(&e);
      e.ads_name = want;
    }
  }
  if (e.runtime == rt) return;
  e.runtime = rt;
  e.hosts = rt->hosts;
  if (!cfg.eds->ads && !eds_files_.contains(cfg.eds->path)) {
    eds_files_[cfg.eds->path] = std::nullopt;
    w.new_paths.push_back(cfg.eds->path);
  }
  if (cachedAssignment(cfg) != nullptr) {
    // Built from the file's assignment (withCachedEndpoints), or catches up now.
    w.caught_up.push_back(name);
    return;
  }
  // Warming until the first assignment, at most initial_fetch_timeout.
  if (!e.warming) {
    e.warming = true;
    ++warming_count_;
  }
  if (e.init_timer) e.init_timer->cancel();
  e.init_timer.reset();
  if (cfg.eds->initial_fetch_timeout.count() > 0) {
    e.init_timer = std::make_unique<SteadyTimer>(main_);
    e.init_timer->expires_after(cfg.eds->initial_fetch_timeout);
    e.init_timer->async_wait([this, name = name, raw = rt.get()](
                                 const boost::system::error_code& ec) {
      if (ec) return;
      auto it = eds_clusters_.find(name);
      if (it == eds_clusters_.end() || it->second.runtime.get() != raw || !it->second.warming) {
        return;
      }
      store_.mainShard().inc(raw->stats.init_fetch_timeout());
      TURNOUT_LOG(warn, kLog,
                  "EDS: cluster '{}' got no ClusterLoadAssignment '{}' from '{}' within "
                  "initial_fetch_timeout; it serves without hosts until one arrives",
                  name, raw->config->eds_service_name,
                  raw->config->eds->ads ? std::string("ADS") : raw->config->eds->path);
      warmed(it->second);
    });
  }
}

void DynamicResources::unregisterAds(EdsCluster& e, EdsWatch& w) {
  if (e.ads_name.empty()) return;
  auto it = ads_eds_.find(e.ads_name);
  if (it != ads_eds_.end()) {
    auto& list = it->second;
    list.erase(std::remove(list.begin(), list.end(), &e), list.end());
    if (list.empty()) {
      ads_eds_.erase(it);
      w.touched.insert(e.ads_name);
    }
  }
  e.ads_name.clear();
}

void DynamicResources::forgetEdsCluster(const std::string& name, EdsWatch& w) {
  eds_unbound_.erase(name);
  auto it = eds_clusters_.find(name);
  if (it == eds_clusters_.end()) return;
  EdsCluster& e = it->second;
  if (e.init_timer) e.init_timer->cancel();
  unregisterAds(e, w);
  if (e.warming && warming_count_ > 0) --warming_count_;
  eds_clusters_.erase(it);
}

void DynamicResources::warmed(EdsCluster& e) {
  if (!e.warming) return;
  e.warming = false;
  if (e.init_timer) e.init_timer->cancel();
  // O(1): a CDS update of 20,000 EDS clusters warms each one (recounting
  // here made that quadratic: 30% of a sidecar's update time at 10,000
  // sandboxes). The count follows each EdsCluster's `warming` flag.
  if (warming_count_ > 0) --warming_count_;
  store_.mainShard().set(warming_clusters_, warming_count_);
  if (!initialized_ && warming_count_ == 0) checkInitialized();
}

void DynamicResources::onEndpoints(const std::string& path, const std::string& contents) {
  stats::Shard& shard = store_.mainShard();
  auto parsed = config::parseEndpointResponse(contents, unknownFieldsMode());
  for (auto& [name, e] : eds_clusters_) {
    if (e.runtime->config->eds->ads || e.runtime->config->eds->path != path) continue;
    shard.inc(e.runtime->stats.update_attempt());
    if (!parsed.ok()) {
      shard.inc(e.runtime->stats.update_rejected());
      TURNOUT_LOG(warn, kLog, "EDS '{}' for cluster '{}' update rejected: {}", path, name,
                  std::string(parsed.status().message()));
    }
  }
  if (!parsed.ok()) return;
  noteUnknownFields("EDS", parsed->unknown_fields);
  for (const auto& w : parsed->warnings) TURNOUT_LOG(warn, kLog, "EDS '{}': {}", path, w);
  eds_files_[path] = *parsed;
  for (auto& [name, e] : eds_clusters_) {
    if (!e.runtime->config->eds->ads && e.runtime->config->eds->path == path) {
      applyAssignment(e, eds_files_[path]->find(e.runtime->config->eds_service_name), /*count=*/true);
    }
  }
  TURNOUT_LOG(info, kLog, "EDS '{}': version '{}' applied", path, parsed->version_info);
}

absl::Status DynamicResources::applyAdsEndpoints(
    absl::StatusOr<config::DiscoveryEndpoints> parsed) {
  stats::Shard& shard = store_.mainShard();
  // Only the clusters whose assignment is in this response count it (a
  // SotW EDS response need not hold every assignment asked for).
  // The response's assignments by name (find() is linear; a first push
  // holds thousands).
  // The clusters concerned are found by name (ads_eds_), not by a walk
  // over every cluster: a one-assignment push to 20,000 clusters is O(1).
  if (!parsed.ok()) {
    for (auto& [name, list] : ads_eds_) {
      for (EdsCluster* e : list) {
        shard.inc(e->runtime->stats.update_attempt());
        shard.inc(e->runtime->stats.update_rejected());
      }
    }
    TURNOUT_LOG(warn, kLog, "EDS (ADS) update rejected: {}", std::string(parsed.status().message()));
    return parsed.status();
  }
  noteUnknownFields("EDS", parsed->unknown_fields);
  for (const auto& w : parsed->warnings) TURNOUT_LOG(warn, kLog, "EDS (ADS): {}", w);
  for (const auto& a : parsed->assignments) {
    auto it = ads_eds_.find(a.cluster_name);
    if (it == ads_eds_.end()) continue;
    for (EdsCluster* e : it->second) shard.inc(e->runtime->stats.update_attempt());
  }
  for (const auto& a : parsed->assignments) ads_assignments_[a.cluster_name] = a;
  for (const auto& a : parsed->assignments) {
    auto it = ads_eds_.find(a.cluster_name);
    if (it == ads_eds_.end()) continue;
    // A copy: applying may not change the list, but keep it safe.
    const absl::InlinedVector<EdsCluster*, 1> list = it->second;
    for (EdsCluster* e : list) applyAssignment(*e, cachedAssignment(*e->runtime->config), true);
  }
  TURNOUT_LOG(info, kLog, "EDS (ADS): version '{}' applied", parsed->version_info);
  return absl::OkStatus();
}

void DynamicResources::applyAssignment(EdsCluster& e,
                                       const config::DiscoveryEndpoints::Assignment* a,
                                       bool count) {
  const ClusterRuntime& rt = *e.runtime;
  const config::ClusterConfig& cfg = *rt.config;
  stats::Shard& shard = store_.mainShard();
  if (a == nullptr) {
    // Envoy: an update without the cluster's assignment keeps the previous
    // hosts (update_empty) and ends the warming.
    if (count) {
      shard.inc(rt.stats.update_empty());
      TURNOUT_LOG(warn, kLog, "EDS '{}' has no ClusterLoadAssignment '{}' for cluster '{}'; "
                  "keeping its {} hosts",
                  cfg.eds->path, cfg.eds_service_name, cfg.name, e.hosts->hosts.size());
    }
    warmed(e);
    return;
  }
  if (count) shard.inc(rt.stats.update_success());
  HostListUpdate u = updateEndpointHosts(a->localities, e.hosts->hosts, rt.health_checked);
  if (!u.changed) {
    if (count) shard.inc(rt.stats.update_no_rebuild());
    warmed(e);
    return;
  }
  if (u.added > 0 || u.removed > 0) shard.inc(rt.stats.membership_change());
  TURNOUT_LOG(info, kLog, "EDS: cluster '{}' has {} hosts ({} added, {} removed)", cfg.name,
              u.hosts.size(), u.added, u.removed);
  e.hosts = makeHostSet(cfg, std::move(u.hosts));
  recordMembership(rt, *e.hosts, shard);
  publisher_.publishHosts(e.runtime, e.hosts);
  warmed(e);
}

}  // namespace turnout::proxy
