#include "proxy/admin/admin_server.h"

#include <malloc.h>

#include <algorithm>
#include <exception>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "config/snapshot/snapshot.h"
#include "envoy/admin/v3/clusters.pb.h"
#include "envoy/admin/v3/listeners.pb.h"
#include "envoy/admin/v3/server_info.pb.h"
#include "google/protobuf/util/json_util.h"
#include "proxy/admin/logging_handler.h"
#include "proxy/stats/stats_render.h"

namespace turnout::proxy::admin {
namespace {

constexpr const char* kJson = "application/json";

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percentDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      const int hi = hexValue(s[i + 1]);
      const int lo = hexValue(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

const std::string* findParam(const std::vector<std::pair<std::string, std::string>>& params,
                             std::string_view name) {
  for (const auto& [k, v] : params) {
    if (k == name) return &v;
  }
  return nullptr;
}

bool hasParam(const std::vector<std::pair<std::string, std::string>>& params, std::string_view name) {
  return findParam(params, name) != nullptr;
}

std::string toJson(const google::protobuf::Message& message, bool always_print_primitives) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = always_print_primitives;
  std::string out;
  auto status = google::protobuf::util::MessageToJsonString(message, &out, options);
  if (!status.ok()) return absl::StrCat("{\"error\":", stats::jsonQuote(std::string(status.message())), "}");
  return out;
}

AdminResponse text(unsigned status, std::string body) {
  AdminResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

AdminResponse json(std::string body) {
  AdminResponse r;
  r.content_type = kJson;
  r.body = std::move(body);
  return r;
}

envoy::admin::v3::ServerInfo::State protoState(ServerState s) {
  switch (s) {
    case ServerState::Live: return envoy::admin::v3::ServerInfo::LIVE;
    case ServerState::Draining: return envoy::admin::v3::ServerInfo::DRAINING;
    case ServerState::PreInitializing: return envoy::admin::v3::ServerInfo::PRE_INITIALIZING;
    case ServerState::Initializing: return envoy::admin::v3::ServerInfo::INITIALIZING;
  }
  return envoy::admin::v3::ServerInfo::LIVE;
}

}  // namespace

const char* serverStateName(ServerState state) {
  switch (state) {
    case ServerState::Live: return "LIVE";
    case ServerState::Draining: return "DRAINING";
    case ServerState::PreInitializing: return "PRE_INITIALIZING";
    case ServerState::Initializing: return "INITIALIZING";
  }
  return "LIVE";
}

std::vector<std::pair<std::string, std::string>> parseQuery(std::string_view query) {
  std::vector<std::pair<std::string, std::string>> out;
  for (absl::string_view p : absl::StrSplit(absl::string_view(query.data(), query.size()), '&',
                                             absl::SkipEmpty())) {
    const std::string_view part(p.data(), p.size());
    const size_t eq = part.find('=');
    if (eq == std::string_view::npos) {
      out.emplace_back(percentDecode(part), "");
    } else {
      out.emplace_back(percentDecode(part.substr(0, eq)), percentDecode(part.substr(eq + 1)));
    }
  }
  return out;
}

AdminServer::Options AdminServer::optionsFor(const config::Address& address) {
  Options o;
  o.address = address.address;
  o.port = static_cast<uint16_t>(address.port);
  return o;
}

AdminServer::AdminServer(AdminSource& source, stats::Store& store) : source_(source), store_(store) {
  handlers_ = {
      {"/", "Admin home page", false, &AdminServer::handleHelp},
      {"/certs", "print certs on machine", false, &AdminServer::handleCerts},
      {"/clusters", "upstream cluster status", false, &AdminServer::handleClusters},
      {"/config_dump", "dump current Envoy configs (experimental)", false, &AdminServer::handleConfigDump},
      {"/drain_listeners", "drain listeners", true, &AdminServer::handleDrainListeners},
      {"/healthcheck/fail", "cause the server to fail health checks", true,
       &AdminServer::handleHealthcheckFail},
      {"/healthcheck/ok", "cause the server to pass health checks", true, &AdminServer::handleHealthcheckOk},
      {"/help", "print out list of admin commands", false, &AdminServer::handleHelp},
      {"/listeners", "print listener info", false, &AdminServer::handleListeners},
      {"/logging", "query/change logging levels", true, &AdminServer::handleLogging},
      {"/memory", "print current allocation/heap usage", false, &AdminServer::handleMemory},
      {"/quitquitquit", "exit the server", true, &AdminServer::handleQuit},
      {"/ready", "print server state, return 200 if LIVE, otherwise return 503", false,
       &AdminServer::handleReady},
      {"/reset_counters", "reset all counters to zero", true, &AdminServer::handleResetCounters},
      {"/runtime", "print runtime values", false, &AdminServer::handleRuntime},
      {"/runtime_modify",
       "Adds or modifies runtime values as passed in query parameters. To delete a previously added "
       "key, use an empty string as the value. Note that deletion only applies to overrides added "
       "via this endpoint; values loaded from disk can be modified via override but not deleted. "
       "E.g. ?key1=value1&key2=value2...",
       true, &AdminServer::handleRuntimeModify},
      {"/server_info", "print server version/status information", false, &AdminServer::handleServerInfo},
      {"/stats", "print server stats", false, &AdminServer::handleStats},
      {"/stats/prometheus", "print server stats in prometheus format", false,
       &AdminServer::handlePrometheus},
  };
}

AdminServer::~AdminServer() = default;

absl::StatusOr<std::unique_ptr<AdminServer>> AdminServer::create(asio::io_context& ioc, AdminSource& source,
                                                                 stats::Store& store, Options options) {
  std::unique_ptr<AdminServer> server(new AdminServer(source, store));
  HttpService::Options http;
  http.address = std::move(options.address);
  http.port = options.port;
  http.address_path = std::move(options.address_path);
  http.max_request_header_bytes = options.max_request_header_bytes;
  http.max_request_body_bytes = options.max_request_body_bytes;
  http.idle_timeout = options.idle_timeout;
  http.write_timeout = options.write_timeout;
  http.address_name = "admin.address";
  http.address_path_name = "--admin-address-path";
  AdminServer* self = server.get();
  auto service = HttpService::create(ioc, std::move(http), [self](const HttpRequest& req) {
    const auto content_type = req[beast::http::field::content_type];
    return self->handle(std::string_view(req.method_string().data(), req.method_string().size()),
                        std::string_view(req.target().data(), req.target().size()), req.body(),
                        std::string_view(content_type.data(), content_type.size()));
  });
  if (!service.ok()) return service.status();
  server->http_ = std::move(*service);
  return server;
}

std::string AdminServer::helpText() const {
  std::vector<const Handler*> sorted;
  for (const Handler& h : handlers_) sorted.push_back(&h);
  std::sort(sorted.begin(), sorted.end(), [](const Handler* a, const Handler* b) { return a->prefix < b->prefix; });
  std::string out = "admin commands are:\n";
  for (const Handler* h : sorted) absl::StrAppend(&out, "  ", h->prefix, ": ", h->help, "\n");
  return out;
}

AdminResponse AdminServer::handle(std::string_view method, std::string_view target, std::string_view body,
                                  std::string_view content_type) {
  const size_t q = target.find('?');
  const std::string_view path = target.substr(0, q);
  Params params = q == std::string_view::npos ? Params{} : parseQuery(target.substr(q + 1));
  if (method == "POST" && content_type.substr(0, 33) == "application/x-www-form-urlencoded") {
    for (auto& p : parseQuery(body)) params.push_back(std::move(p));
  }
  for (const Handler& h : handlers_) {
    if (h.prefix != path) continue;
    if (h.mutates && method != "POST") {
      return text(405, absl::StrCat("Method ", std::string(method), " not allowed, POST required."));
    }
    return (this->*h.fn)(params);
  }
  return text(404, "invalid path. " + helpText());
}

AdminResponse AdminServer::handleHelp(const Params&) { return text(200, helpText()); }

AdminResponse AdminServer::handleReady(const Params&) {
  ServerState state = source_.serverInfo().state;
  if (source_.healthCheckFailed()) state = ServerState::Draining;
  return text(state == ServerState::Live ? 200 : 503, absl::StrCat(serverStateName(state), "\n"));
}

AdminResponse AdminServer::handleServerInfo(const Params&) {
  const ServerInfo info = source_.serverInfo();
  envoy::admin::v3::ServerInfo proto;
  proto.set_version(info.version);
  proto.set_state(protoState(source_.healthCheckFailed() ? ServerState::Draining : info.state));
  proto.mutable_uptime_current_epoch()->set_seconds(info.uptime_current_epoch.count());
  proto.mutable_uptime_all_epochs()->set_seconds(info.uptime_all_epochs.count());
  proto.set_hot_restart_version(info.hot_restart_version);
  const CommandLineOptions& c = info.command_line_options;
  auto* o = proto.mutable_command_line_options();
  o->set_base_id(c.base_id);
  o->set_concurrency(c.concurrency);
  o->set_config_path(c.config_path);
  o->set_config_yaml(c.config_yaml);
  o->set_allow_unknown_static_fields(c.allow_unknown_static_fields);
  o->set_reject_unknown_dynamic_fields(c.reject_unknown_dynamic_fields);
  o->set_ignore_unknown_dynamic_fields(c.ignore_unknown_dynamic_fields);
  o->set_disable_hot_restart(c.disable_hot_restart);
  o->set_use_dynamic_base_id(c.use_dynamic_base_id);
  o->set_local_address_ip_version(c.local_address_ip_version_v6
                                      ? envoy::admin::v3::CommandLineOptions::v6
                                      : envoy::admin::v3::CommandLineOptions::v4);
  o->set_admin_address_path(c.admin_address_path);
  o->set_log_level(c.log_level);
  o->set_component_log_level(c.component_log_level);
  o->set_log_format(c.log_format);
  o->set_log_path(c.log_path);
  o->set_service_cluster(c.service_cluster);
  o->set_service_node(c.service_node);
  o->set_service_zone(c.service_zone);
  o->mutable_drain_time()->set_seconds(c.drain_time.count());
  o->mutable_parent_shutdown_time()->set_seconds(c.parent_shutdown_time.count());
  if (c.mode == "Validate") {
    o->set_mode(envoy::admin::v3::CommandLineOptions::Validate);
  } else if (c.mode == "InitOnly") {
    o->set_mode(envoy::admin::v3::CommandLineOptions::InitOnly);
  }
  proto.mutable_node()->set_id(info.node_id);
  proto.mutable_node()->set_cluster(info.node_cluster);
  return json(toJson(proto, true));
}

AdminResponse AdminServer::renderStats(const Params& params, bool prometheus) {
  const std::string* filter = findParam(params, "filter");
  auto f = stats::StatsFilter::create(hasParam(params, "usedonly"), filter ? *filter : "");
  if (!f.ok()) return text(400, absl::StrCat(f.status().message(), "\n"));
  if (const std::string* hb = findParam(params, "histogram_buckets"); hb && *hb != "none" && !hb->empty()) {
    return text(400, "usage: /stats?histogram_buckets=none (cumulative, disjoint and detailed are not supported)\n");
  }
  store_.reclaim();  // removed clusters' stats go before the read
  if (prometheus) return text(200, stats::renderPrometheus(store_, *f));
  const std::string* format = findParam(params, "format");
  if (format == nullptr || *format == "text") return text(200, stats::renderText(store_, *f));
  if (*format == "json") return json(stats::renderJson(store_, *f));
  if (*format == "prometheus") return text(200, stats::renderPrometheus(store_, *f));
  return text(400, "usage: /stats?format=(json|prometheus|text)\n\n");
}

AdminResponse AdminServer::handleStats(const Params& params) { return renderStats(params, false); }
AdminResponse AdminServer::handlePrometheus(const Params& params) { return renderStats(params, true); }

AdminResponse AdminServer::handleClusters(const Params& params) {
  const std::string* format = findParam(params, "format");
  const bool as_json = format != nullptr && *format == "json";
  if (format != nullptr && !as_json && *format != "text") {
    return text(400, "usage: /clusters?format=(json|text)\n");
  }
  const std::vector<ClusterStatus> clusters = source_.clusters();
  if (as_json) {
    envoy::admin::v3::Clusters proto;
    for (const ClusterStatus& c : clusters) {
      auto* cs = proto.add_cluster_statuses();
      cs->set_name(c.name);
      cs->set_observability_name(c.observability_name.empty() ? c.name : c.observability_name);
      cs->set_added_via_api(c.added_via_api);
      if (!c.eds_service_name.empty()) cs->set_eds_service_name(c.eds_service_name);
      for (const CircuitBreakerStatus& cb : c.circuit_breakers) {
        auto* t = cs->mutable_circuit_breakers()->add_thresholds();
        if (cb.high_priority) t->set_priority(envoy::config::core::v3::HIGH);
        t->mutable_max_connections()->set_value(static_cast<uint32_t>(cb.max_connections));
        t->mutable_max_pending_requests()->set_value(static_cast<uint32_t>(cb.max_pending_requests));
        t->mutable_max_requests()->set_value(static_cast<uint32_t>(cb.max_requests));
        t->mutable_max_retries()->set_value(static_cast<uint32_t>(cb.max_retries));
      }
      for (const HostStatus& h : c.hosts) {
        auto* hs = cs->add_host_statuses();
        auto* sa = hs->mutable_address()->mutable_socket_address();
        sa->set_address(h.address);
        sa->set_port_value(h.port);
        for (const auto& [name, value] : h.counters) {
          auto* m = hs->add_stats();
          m->set_name(name);
          m->set_type(envoy::admin::v3::SimpleMetric::COUNTER);
          m->set_value(value);
        }
        for (const auto& [name, value] : h.gauges) {
          auto* m = hs->add_stats();
          m->set_name(name);
          m->set_type(envoy::admin::v3::SimpleMetric::GAUGE);
          m->set_value(value);
        }
        auto* health = hs->mutable_health_status();
        health->set_failed_active_health_check(h.failed_active_health_check);
        health->set_failed_outlier_check(h.failed_outlier_check);
        health->set_eds_health_status(envoy::config::core::v3::HEALTHY);
        if (h.success_rate >= 0) hs->mutable_success_rate()->set_value(h.success_rate);
        if (h.local_origin_success_rate >= 0) {
          hs->mutable_local_origin_success_rate()->set_value(h.local_origin_success_rate);
        }
        hs->set_weight(h.weight);
        hs->set_hostname(h.hostname);
        hs->set_priority(h.priority);
        hs->mutable_locality()->set_region(h.region);
        hs->mutable_locality()->set_zone(h.zone);
        hs->mutable_locality()->set_sub_zone(h.sub_zone);
      }
    }
    return json(toJson(proto, false));
  }
  std::string out;
  for (const ClusterStatus& c : clusters) {
    const std::string& n = c.name;
    absl::StrAppend(&out, n, "::observability_name::",
                    c.observability_name.empty() ? n : c.observability_name, "\n");
    std::vector<CircuitBreakerStatus> cbs = c.circuit_breakers;
    const bool has_default = std::any_of(cbs.begin(), cbs.end(), [](const auto& b) { return !b.high_priority; });
    const bool has_high = std::any_of(cbs.begin(), cbs.end(), [](const auto& b) { return b.high_priority; });
    if (!has_default) cbs.insert(cbs.begin(), CircuitBreakerStatus{});
    if (!has_high) cbs.push_back(CircuitBreakerStatus{.high_priority = true});
    for (bool high : {false, true}) {
      for (const CircuitBreakerStatus& cb : cbs) {
        if (cb.high_priority != high) continue;
        const char* p = high ? "high_priority" : "default_priority";
        absl::StrAppend(&out, n, "::", p, "::max_connections::", cb.max_connections, "\n");
        absl::StrAppend(&out, n, "::", p, "::max_pending_requests::", cb.max_pending_requests, "\n");
        absl::StrAppend(&out, n, "::", p, "::max_requests::", cb.max_requests, "\n");
        absl::StrAppend(&out, n, "::", p, "::max_retries::", cb.max_retries, "\n");
        break;
      }
    }
    absl::StrAppend(&out, n, "::added_via_api::", c.added_via_api ? "true" : "false", "\n");
    if (!c.eds_service_name.empty()) absl::StrAppend(&out, n, "::eds_service_name::", c.eds_service_name, "\n");
    for (const HostStatus& h : c.hosts) {
      const std::string prefix = absl::StrCat(n, "::", hostPort(h.address, h.port), "::");
      std::map<std::string, uint64_t> all(h.counters.begin(), h.counters.end());
      all.insert(h.gauges.begin(), h.gauges.end());
      for (const auto& [name, value] : all) absl::StrAppend(&out, prefix, name, "::", value, "\n");
      absl::StrAppend(&out, prefix, "hostname::", h.hostname, "\n");
      absl::StrAppend(&out, prefix, "health_flags::", h.health_flags, "\n");
      absl::StrAppend(&out, prefix, "weight::", h.weight, "\n");
      absl::StrAppend(&out, prefix, "region::", h.region, "\n");
      absl::StrAppend(&out, prefix, "zone::", h.zone, "\n");
      absl::StrAppend(&out, prefix, "sub_zone::", h.sub_zone, "\n");
      absl::StrAppend(&out, prefix, "canary::", h.canary ? "true" : "false", "\n");
      absl::StrAppend(&out, prefix, "priority::", h.priority, "\n");
      absl::StrAppend(&out, prefix, "success_rate::", stats::formatDouble(h.success_rate), "\n");
      absl::StrAppend(&out, prefix, "local_origin_success_rate::",
                      stats::formatDouble(h.local_origin_success_rate), "\n");
    }
  }
  return text(200, std::move(out));
}

AdminResponse AdminServer::handleListeners(const Params& params) {
  const std::string* format = findParam(params, "format");
  const bool as_json = format != nullptr && *format == "json";
  if (format != nullptr && !as_json && *format != "text") {
    return text(400, "usage: /listeners?format=(json|text)\n");
  }
  const std::vector<ListenerStatus> listeners = source_.listeners();
  if (as_json) {
    envoy::admin::v3::Listeners proto;
    for (const ListenerStatus& l : listeners) {
      auto* s = proto.add_listener_statuses();
      s->set_name(l.name);
      auto* sa = s->mutable_local_address()->mutable_socket_address();
      sa->set_address(l.address);
      sa->set_port_value(l.port);
    }
    return json(toJson(proto, false));
  }
  std::string out;
  for (const ListenerStatus& l : listeners) absl::StrAppend(&out, l.name, "::", hostPort(l.address, l.port), "\n");
  return text(200, std::move(out));
}

AdminResponse AdminServer::handleConfigDump(const Params& params) {
  ConfigDumpParams p;
  if (const std::string* v = findParam(params, "resource")) p.resource = *v;
  if (const std::string* v = findParam(params, "mask")) p.mask = *v;
  if (const std::string* v = findParam(params, "name_regex")) p.name_regex = *v;
  p.include_eds = hasParam(params, "include_eds");
  std::string error;
  std::string body = source_.configDumpJson(p, error);
  if (!error.empty()) return text(400, error + "\n");
  return json(std::move(body));
}

AdminResponse AdminServer::handleHealthcheckFail(const Params&) {
  source_.setHealthCheckFailed(true);
  return text(200, "OK\n");
}

AdminResponse AdminServer::handleHealthcheckOk(const Params&) {
  source_.setHealthCheckFailed(false);
  return text(200, "OK\n");
}

AdminResponse AdminServer::handleDrainListeners(const Params& params) {
  DrainParams p;
  p.inbound_only = hasParam(params, "inboundonly");
  p.graceful = hasParam(params, "graceful");
  p.skip_exit = hasParam(params, "skip_exit");
  if (p.skip_exit && !p.graceful) {
    return text(400, "skip_exit requires graceful\n");
  }
  source_.drainListeners(p);
  return text(200, "OK\n");
}

AdminResponse AdminServer::handleQuit(const Params&) {
  AdminResponse r = text(200, "OK\n");
  r.after_write = [this] { source_.quit(); };
  return r;
}

AdminResponse AdminServer::handleLogging(const Params& params) {
  LoggingResponse r = admin::handleLogging(params);
  return text(r.status, std::move(r.body));
}

AdminResponse AdminServer::handleResetCounters(const Params&) {
  store_.resetCounters();
  return text(200, "OK\n");
}

AdminResponse AdminServer::handleRuntime(const Params&) {
  std::string out = "{\"layers\":[\"admin\"],\"entries\":{";
  bool first = true;
  for (const auto& [k, v] : runtime_) {
    if (!first) out += ',';
    first = false;
    absl::StrAppend(&out, stats::jsonQuote(k), ":{\"layer_values\":[", stats::jsonQuote(v),
                    "],\"final_value\":", stats::jsonQuote(v), "}");
  }
  out += "}}";
  return json(std::move(out));
}

AdminResponse AdminServer::handleRuntimeModify(const Params& params) {
  if (params.empty()) {
    return text(400,
                "usage: /runtime_modify?key1=value1&key2=value2&keyN=valueN\n"
                "       or send the parameters as form values\n"
                "use an empty value to remove a previously added override");
  }
  for (const auto& [k, v] : params) {
    if (v.empty()) {
      runtime_.erase(k);
    } else {
      runtime_[k] = v;
    }
  }
  source_.onRuntimeUpdate(runtime_);
  return text(200, "OK\n");
}

AdminResponse AdminServer::handleMemory(const Params&) {
  const struct mallinfo2 mi = mallinfo2();
  return json(absl::StrCat("{\n \"allocated\": \"", mi.uordblks, "\",\n \"heap_size\": \"",
                           mi.arena + mi.hblkhd, "\",\n \"pageheap_unmapped\": \"0\",\n",
                           " \"pageheap_free\": \"", mi.fordblks, "\",\n \"total_thread_cache\": \"0\",\n",
                           " \"total_physical_bytes\": \"", mi.arena + mi.hblkhd, "\"\n}\n"));
}

AdminResponse AdminServer::handleCerts(const Params&) { return json("{\n \"certificates\": []\n}\n"); }

}  // namespace turnout::proxy::admin
