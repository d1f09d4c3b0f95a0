#include "config/control_plane/cli/cli.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <string_view>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "config/control_plane/cli/api_client.h"
#include "config/control_plane/generator.h"
#include "config/control_plane/sidecar_bootstrap.h"
#include "config/json_string.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace turnout::control_plane::cli {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

constexpr int kOk = 0;
constexpr int kFailed = 1;
constexpr int kUsage = 2;

// ---- arguments ----------------------------------------------------------------------

// `--flag value` or `--flag=value`; every flag takes a value and may repeat.
struct Args {
  std::vector<std::string> positional;
  std::multimap<std::string, std::string> flags;

  std::vector<std::string> all(const std::string& flag) const {
    std::vector<std::string> out;
    for (auto [it, end] = flags.equal_range(flag); it != end; ++it) out.push_back(it->second);
    return out;
  }
  std::optional<std::string> last(const std::string& flag) const {
    std::vector<std::string> v = all(flag);
    if (v.empty()) return std::nullopt;
    return v.back();
  }
};

struct UsageError {
  std::string message;
};

absl::StatusOr<Args> parseArgs(const std::vector<std::string>& args, size_t from,
                               const std::set<std::string>& allowed) {
  Args out;
  for (size_t i = from; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.size() > 2 && a.substr(0, 2) == "--") {
      std::string name = a.substr(2);
      std::string value;
      if (const size_t eq = name.find('='); eq != std::string::npos) {
        value = name.substr(eq + 1);
        name.resize(eq);
      } else if (i + 1 < args.size()) {
        value = args[++i];
      } else {
        return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
      }
      if (!allowed.contains(name)) return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
      out.flags.emplace(std::move(name), std::move(value));
    } else {
      out.positional.push_back(a);
    }
  }
  return out;
}

// "NAME=VALUE" -> (NAME, VALUE), both non-empty.
absl::StatusOr<std::pair<std::string, std::string>> splitPair(std::string_view flag, const std::string& text) {
  const size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == text.size()) {
    return absl::InvalidArgumentError(absl::StrCat("--", std::string(flag), " '", text, "' is not NAME=VALUE"));
  }
  return std::make_pair(text.substr(0, eq), text.substr(eq + 1));
}

// ---- JSON ---------------------------------------------------------------------------

std::string jsonString(std::string_view s) {
  std::string out;
  config::appendJsonString(out, s);
  return out;
}

std::string stringList(const std::vector<std::string>& items) {
  std::vector<std::string> q;
  for (const std::string& s : items) q.push_back(jsonString(s));
  return absl::StrCat("[", absl::StrJoin(q, ","), "]");
}

// name -> list of strings, as a JSON object.
std::string listMap(const std::map<std::string, std::vector<std::string>>& m) {
  std::vector<std::string> parts;
  for (const auto& [k, v] : m) parts.push_back(absl::StrCat(jsonString(k), ":", stringList(v)));
  return absl::StrCat("{", absl::StrJoin(parts, ","), "}");
}

absl::StatusOr<Struct> parseJson(const std::string& body) {
  Struct s;
  auto status = google::protobuf::util::JsonStringToMessage(body, &s);
  if (!status.ok()) return absl::InternalError(absl::StrCat("the server sent invalid JSON: ", body));
  return s;
}

std::string printJson(const google::protobuf::Message& m) {
  google::protobuf::util::JsonPrintOptions o;
  o.add_whitespace = true;
  o.preserve_proto_field_names = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(m, &out, o);
  return out;
}

const Value* field(const Struct& s, const std::string& name) {
  auto it = s.fields().find(name);
  return it == s.fields().end() ? nullptr : &it->second;
}

// A value as a table cell.
std::string cell(const Value* v) {
  if (v == nullptr) return "-";
  switch (v->kind_case()) {
    case Value::kStringValue: return v->string_value().empty() ? "-" : v->string_value();
    case Value::kNumberValue: {
      const double d = v->number_value();
      if (d == static_cast<double>(static_cast<int64_t>(d))) return absl::StrCat(static_cast<int64_t>(d));
      return absl::StrCat(d);
    }
    case Value::kBoolValue: return v->bool_value() ? "true" : "false";
    case Value::kListValue: {
      std::vector<std::string> parts;
      for (const Value& item : v->list_value().values()) parts.push_back(cell(&item));
      return parts.empty() ? "-" : absl::StrJoin(parts, ",");
    }
    case Value::kStructValue: {
      std::vector<std::string> parts;
      std::map<std::string, const Value*> sorted;
      for (const auto& [k, item] : v->struct_value().fields()) sorted[k] = &item;
      for (const auto& [k, item] : sorted) parts.push_back(absl::StrCat(k, "=", cell(item)));
      return parts.empty() ? "-" : absl::StrJoin(parts, " ");
    }
    default: return "-";
  }
}

// ---- output -------------------------------------------------------------------------

using Row = std::vector<std::string>;

void printTable(std::ostream& out, const Row& header, const std::vector<Row>& rows) {
  std::vector<size_t> width(header.size());
  for (size_t i = 0; i < header.size(); ++i) width[i] = header[i].size();
  for (const Row& r : rows) {
    for (size_t i = 0; i < r.size() && i < width.size(); ++i) width[i] = std::max(width[i], r[i].size());
  }
  auto line = [&](const Row& r) {
    std::string s;
    for (size_t i = 0; i < r.size(); ++i) {
      s += r[i];
      if (i + 1 < r.size()) s += std::string(width[i] - r[i].size() + 2, ' ');
    }
    out << s << "\n";
  };
  line(header);
  for (const Row& r : rows) line(r);
}

struct Context {
  ApiClient client;
  bool json = false;
  std::ostream& out;
  std::ostream& err;
};

// Prints an error reply ("error: 409 Conflict: ...") and returns kFailed.
int reportError(Context& c, const ApiReply& reply) {
  auto s = parseJson(reply.body);
  std::string message = reply.body;
  std::string where;
  if (s.ok()) {
    if (const Value* e = field(*s, "error")) message = e->string_value();
    if (const Value* f = field(*s, "field")) where = absl::StrCat(" (field: ", f->string_value(), ")");
  }
  c.err << "error: " << reply.status << ": " << message << where << "\n";
  return kFailed;
}

int reportStatus(Context& c, const absl::Status& status) {
  c.err << "error: " << status.message() << "\n";
  return kFailed;
}

absl::StatusOr<ApiReply> call(Context& c, std::string_view method, const std::string& path,
                              std::string_view body = {}, std::optional<std::string> if_match = {}) {
  return c.client.request(method, path, body, std::move(if_match));
}

// One request whose answer gets printed: an error (returns 1), the JSON body
// with --output json (returns 0), or else nothing: the body is in `parsed`.
std::optional<int> request(Context& c, std::string_view method, const std::string& path, Struct& parsed,
                           std::string_view body = {}, std::optional<std::string> if_match = {}) {
  auto reply = call(c, method, path, body, std::move(if_match));
  if (!reply.ok()) return reportStatus(c, reply.status());
  if (reply->status >= 300) return reportError(c, *reply);
  if (c.json) {
    c.out << reply->body;
    return kOk;
  }
  auto s = parseJson(reply->body);
  if (!s.ok()) return reportStatus(c, s.status());
  parsed = std::move(*s);
  return std::nullopt;
}

// A mutation: prints "<what> (config version N)" or the JSON reply.
int mutate(Context& c, std::string_view method, const std::string& path, const std::string& what,
           std::string_view body = {}, std::optional<std::string> if_match = {}) {
  Struct s;
  if (auto rc = request(c, method, path, s, body, std::move(if_match))) return *rc;
  c.out << what << " (config version " << cell(field(s, "version")) << ")\n";
  return kOk;
}

// A GET answered with a table (or the JSON body).
int show(Context& c, const std::string& path, const Row& header, const std::string& list_field,
         std::vector<Row> (*render_one)(const Struct&)) {
  Struct s;
  if (auto rc = request(c, "GET", path, s)) return *rc;
  std::vector<Row> rows;
  if (list_field.empty()) {
    rows = render_one(s);
  } else if (const Value* items = field(s, list_field)) {
    for (const Value& item : items->list_value().values()) {
      for (Row& r : render_one(item.struct_value())) rows.push_back(std::move(r));
    }
  }
  printTable(c.out, header, rows);
  return kOk;
}

std::vector<Row> serviceRow(const Struct& s) {
  return {{cell(field(s, "name")), cell(field(s, "namespace")), cell(field(s, "port")),
           cell(field(s, "protocol")), cell(field(s, "endpoints"))}};
}

std::vector<Row> sandboxRow(const Struct& s) {
  return {{cell(field(s, "key")), cell(field(s, "forks")), cell(field(s, "ttl")), cell(field(s, "expires_at")),
           cell(field(s, "labels"))}};
}

std::vector<Row> releaseRow(const Struct& s) {
  const Value* matches = field(s, "matches");
  const size_t n = matches == nullptr ? 0 : static_cast<size_t>(matches->list_value().values_size());
  return {{cell(field(s, "service")), cell(field(s, "versions")), cell(field(s, "weights")),
           n == 0 ? "-" : absl::StrCat(n)}};
}

std::string typeCell(const Struct& types, const std::string& type) {
  const Value* v = field(types, type);
  if (v == nullptr) return "-";
  const Struct& t = v->struct_value();
  std::string out = cell(field(t, "acked_version"));
  if (const Value* nack = field(t, "nack_error"); nack != nullptr && !nack->string_value().empty()) {
    out = absl::StrCat("NACK ", cell(field(t, "sent_version")), ": ", nack->string_value());
  } else if (const Value* p = field(t, "pending"); p != nullptr && p->bool_value()) {
    absl::StrAppend(&out, " (sent ", cell(field(t, "sent_version")), ")");
  }
  return out;
}

std::vector<Row> proxyRow(const Struct& s) {
  const Value* types = field(s, "types");
  const Struct empty;
  const Struct& t = types == nullptr ? empty : types->struct_value();
  return {{cell(field(s, "node_id")), cell(field(s, "dialect")), cell(field(s, "peer")),
           cell(field(s, "connected_at")), typeCell(t, "clusters"), typeCell(t, "endpoints"),
           typeCell(t, "listeners"), typeCell(t, "routes")}};
}

// ---- commands -----------------------------------------------------------------------

std::string need(const Args& a, size_t index, const char* what) {
  if (index >= a.positional.size()) throw UsageError{absl::StrCat("missing ", what)};
  return a.positional[index];
}

// Flags other than the client's own that `what` takes; any other is an error.
void onlyFlags(const Args& a, const std::string& what, const std::set<std::string>& allowed) {
  for (const auto& [flag, value] : a.flags) {
    if (flag != "server" && flag != "output" && !allowed.contains(flag)) {
      throw UsageError{absl::StrCat(what, " does not take --", flag)};
    }
  }
}

void noMore(const Args& a, size_t count) {
  if (a.positional.size() > count) throw UsageError{absl::StrCat("unexpected argument '", a.positional[count], "'")};
}

int servicePut(Context& c, const std::string& name, const Args& a) {
  const std::optional<std::string> port = a.last("port");
  if (!port) throw UsageError{"service put needs --port P"};
  uint32_t p = 0;
  if (!absl::SimpleAtoi(*port, &p)) throw UsageError{absl::StrCat("--port '", *port, "' is not a number")};
  std::string body = absl::StrCat("{\"port\":", p);
  if (auto ns = a.last("namespace")) absl::StrAppend(&body, ",\"namespace\":", jsonString(*ns));
  if (auto protocol = a.last("protocol")) absl::StrAppend(&body, ",\"protocol\":", jsonString(*protocol));
  absl::StrAppend(&body, ",\"endpoints\":", stringList(a.all("endpoint")), "}");
  return mutate(c, "PUT", "/v1/services/" + name, "service " + name + " stored", body);
}

int sandboxCreate(Context& c, const std::string& key, const Args& a) {
  std::map<std::string, std::vector<std::string>> forks;
  for (const std::string& f : a.all("fork")) {
    auto kv = splitPair("fork", f);
    if (!kv.ok()) throw UsageError{std::string(kv.status().message())};
    forks[kv->first].push_back(kv->second);
  }
  if (forks.empty()) throw UsageError{"sandbox create needs --fork SERVICE=HOST:PORT"};
  std::string body = absl::StrCat("{\"forks\":", listMap(forks));
  std::vector<std::string> labels;
  for (const std::string& l : a.all("label")) {
    auto kv = splitPair("label", l);
    if (!kv.ok()) throw UsageError{std::string(kv.status().message())};
    labels.push_back(absl::StrCat(jsonString(kv->first), ":", jsonString(kv->second)));
  }
  if (!labels.empty()) absl::StrAppend(&body, ",\"labels\":{", absl::StrJoin(labels, ","), "}");
  if (auto ttl = a.last("ttl")) absl::StrAppend(&body, ",\"ttl\":", jsonString(*ttl));
  body += '}';
  return mutate(c, "PUT", "/v1/sandboxes/" + key, "sandbox " + key + " stored", body);
}

// `release set`: the current release (if any) with new weights and, when
// given, new versions; written back with If-Match so that a concurrent change
// is not overwritten.
int releaseSet(Context& c, const std::string& service, const Args& a) {
  const std::optional<std::string> weights = a.last("weights");
  if (!weights) throw UsageError{"release set needs --weights v1=90,v2=10"};
  std::vector<std::string> weight_parts;
  for (absl::string_view w : absl::StrSplit(*weights, ',', absl::SkipEmpty())) {
    auto kv = splitPair("weights", std::string(w));
    if (!kv.ok()) throw UsageError{std::string(kv.status().message())};
    uint32_t n = 0;
    if (!absl::SimpleAtoi(kv->second, &n)) {
      throw UsageError{absl::StrCat("--weights: '", kv->second, "' is not a number")};
    }
    weight_parts.push_back(absl::StrCat(jsonString(kv->first), ":", n));
  }
  std::map<std::string, std::vector<std::string>> versions;
  for (const std::string& v : a.all("version")) {
    auto kv = splitPair("version", v);
    if (!kv.ok()) throw UsageError{std::string(kv.status().message())};
    versions[kv->first].push_back(kv->second);
  }
  const std::string path = "/v1/releases/" + service;
  auto current = call(c, "GET", path);
  if (!current.ok()) return reportStatus(c, current.status());
  std::optional<std::string> if_match;
  std::string versions_json = listMap(versions);
  std::string matches_json;
  if (current->status == 200) {
    if_match = current->etag;
    auto s = parseJson(current->body);
    if (!s.ok()) return reportStatus(c, s.status());
    if (versions.empty()) {
      if (const Value* v = field(*s, "versions")) {
        Struct wrapper = v->struct_value();
        versions_json = printJson(wrapper);
      }
    }
    if (const Value* m = field(*s, "matches")) {
      Struct wrapper;
      (*wrapper.mutable_fields())["m"] = *m;
      auto printed = printJson(wrapper);
      // {"m": [...]} -> [...]
      const size_t open = printed.find('[');
      const size_t close = printed.rfind(']');
      if (open != std::string::npos && close != std::string::npos) {
        matches_json = printed.substr(open, close - open + 1);
      }
    }
  } else if (current->status == 404) {
    if (versions.empty()) {
      c.err << "error: " << service
            << " has no release yet: give its versions with --version NAME=HOST:PORT\n";
      return kFailed;
    }
  } else {
    return reportError(c, *current);
  }
  std::string body = absl::StrCat("{\"versions\":", versions_json, ",\"weights\":{", absl::StrJoin(weight_parts, ","),
                                  "}");
  if (!matches_json.empty()) absl::StrAppend(&body, ",\"matches\":", matches_json);
  body += '}';
  return mutate(c, "PUT", path, "release " + service + " stored", body, if_match);
}

// `service`, `sandbox` and `release`: list, get, delete and one write verb.
struct ResourceCommand {
  std::string noun;        // "service"
  std::string collection;  // "services": the path and the list's field
  std::string name_what;   // for a missing name: "the service NAME"
  Row header;
  std::vector<Row> (*row)(const Struct&);
  std::string write_verb;  // "put", "create", "set"
  std::set<std::string> write_flags;
  int (*write)(Context&, const std::string& name, const Args&);
};

int resourceCommand(Context& c, const ResourceCommand& r, const std::string& verb, const Args& a) {
  onlyFlags(a, r.noun + " " + verb, verb == r.write_verb ? r.write_flags : std::set<std::string>{});
  const std::string collection = "/v1/" + r.collection;
  if (verb == "list") {
    noMore(a, 0);
    return show(c, collection, r.header, r.collection, r.row);
  }
  if (verb != "get" && verb != "delete" && verb != r.write_verb) {
    throw UsageError{absl::StrCat("unknown ", r.noun, " command '", verb, "' (", r.write_verb,
                                  ", list, get, delete)")};
  }
  const std::string name = need(a, 0, r.name_what.c_str());
  noMore(a, 1);
  if (verb == "get") return show(c, collection + "/" + name, r.header, "", r.row);
  if (verb == "delete") return mutate(c, "DELETE", collection + "/" + name, r.noun + " " + name + " deleted");
  return r.write(c, name, a);
}

const ResourceCommand kServiceCommand = {"service", "services", "the service NAME",
                                         {"NAME", "NAMESPACE", "PORT", "PROTOCOL", "ENDPOINTS"},
                                         serviceRow, "put", {"port", "endpoint", "namespace", "protocol"},
                                         servicePut};
const ResourceCommand kSandboxCommand = {"sandbox", "sandboxes", "the sandbox KEY",
                                         {"KEY", "FORKS", "TTL", "EXPIRES", "LABELS"}, sandboxRow,
                                         "create", {"fork", "ttl", "label"}, sandboxCreate};
const ResourceCommand kReleaseCommand = {"release", "releases", "the SERVICE",
                                         {"SERVICE", "VERSIONS", "WEIGHTS", "MATCHES"}, releaseRow,
                                         "set", {"weights", "version"}, releaseSet};

int versionCommand(Context& c) {
  Struct s;
  if (auto rc = request(c, "GET", "/v1/version", s)) return *rc;
  c.out << "turnout-cp " << kVersion << "\nserver " << c.client.url() << ": config version "
        << cell(field(s, "version")) << "\n";
  return kOk;
}

uint32_t portFlag(const Args& a, const std::string& flag, uint32_t fallback) {
  const std::optional<std::string> v = a.last(flag);
  if (!v) return fallback;
  uint32_t p = 0;
  if (!absl::SimpleAtoi(*v, &p) || p == 0 || p > 65535) {
    throw UsageError{absl::StrCat("--", flag, " '", *v, "' is not a port (1..65535)")};
  }
  return p;
}

int bootstrapCommand(const Args& a, std::ostream& out) {
  noMore(a, 0);
  BootstrapOptions o;
  const std::optional<std::string> node = a.last("node");
  if (!node || node->empty()) throw UsageError{"bootstrap needs --node NODE"};
  o.node = *node;
  if (auto cluster = a.last("cluster")) o.cluster = *cluster;
  if (auto host = a.last("xds-host")) o.xds_host = *host;
  o.xds_port = portFlag(a, "xds-port", o.xds_port);
  o.admin_port = portFlag(a, "admin-port", o.admin_port);
  if (auto ads = a.last("ads")) {
    if (*ads != "delta" && *ads != "sotw") {
      throw UsageError{absl::StrCat("--ads '", *ads, "' must be delta or sotw")};
    }
    o.delta = *ads == "delta";
  }
  const std::string mode = a.last("mode").value_or("explicit");
  if (mode != "explicit" && mode != "capture") {
    throw UsageError{absl::StrCat("--mode '", mode, "' must be explicit or capture")};
  }
  o.capture = mode == "capture";
  if (o.capture) {
    if (a.last("outbound-port")) {
      throw UsageError{"--outbound-port is for --mode explicit (capture listens on 15001 and 15006)"};
    }
    o.service = a.last("service").value_or("");
    o.service_ns = a.last("namespace").value_or("");
    if (auto families = a.last("ip-families")) {
      std::optional<IpFamilies> parsed = parseIpFamilies(*families);
      if (!parsed) {
        throw UsageError{absl::StrCat("--ip-families '", *families, "' must be ", kIpFamiliesChoices)};
      }
      o.ip_families = *parsed;
    }
  } else {
    if (a.last("service") || a.last("namespace") || a.last("ip-families")) {
      throw UsageError{"--service, --namespace and --ip-families are for --mode capture"};
    }
    o.outbound_port = portFlag(a, "outbound-port", o.outbound_port);
  }
  out << bootstrapYaml(o);
  return kOk;
}

const std::set<std::string> kClientFlags = {"server", "output", "port", "endpoint", "namespace", "protocol",
                                            "fork", "ttl", "label", "weights", "version"};
const std::set<std::string> kBootstrapFlags = {"node",       "cluster",     "xds-host", "xds-port",
                                               "admin-port", "outbound-port", "mode",   "service",
                                               "namespace",  "ads",     "ip-families"};


}  // namespace

std::string usage() {
  return absl::StrCat(
      "usage: turnout-cp <command> [flags]\n"
      "\n"
      "  serve [--data-dir DIR | --store etcd://HOST:PORT[/PREFIX]] [--http-address HOST:PORT]\n"
      "        [--http-address-path FILE] [--xds-address HOST:PORT] [--xds-address-path FILE]\n"
      "        [--log-level LEVEL] [--no-vhds] [--webhook-address HOST:PORT ... (serve --help)]\n"
      "                                           run the control plane\n"
      "  service put NAME --port P [--endpoint HOST:PORT ...] [--namespace NS]\n"
      "                  [--protocol http|http2|grpc]\n"
      "  service list | get NAME | delete NAME\n"
      "  sandbox create KEY --fork SERVICE=HOST:PORT [--fork ...] [--ttl 24h] [--label k=v ...]\n"
      "  sandbox list | get KEY | delete KEY\n"
      "  release set SERVICE --weights v1=90,v2=10 [--version v1=HOST:PORT ...]\n"
      "  release list | get SERVICE | delete SERVICE\n"
      "  proxies                                  connected proxies and what they ACKed\n"
      "  version                                  this CLI's version and the server's config version\n"
      "  --version                                this CLI's version\n"
      "  bootstrap --node NODE [--xds-host H] [--xds-port P] [--admin-port N] [--cluster C] [--ads delta|sotw]\n"
      "            [--mode explicit [--outbound-port P] |\n"
      "             --mode capture [--service S] [--namespace NS] [--ip-families ipv4|ipv6|dual]]\n"
      "                                           print a sidecar bootstrap (ADS to turnout-cp)\n"
      "\n"
      "client flags: --server URL (default ",
      kDefaultServer, "), --output table|json (default table)\n");
}

std::string bootstrapYaml(const BootstrapOptions& o) {
  google::protobuf::util::JsonPrintOptions print;
  print.preserve_proto_field_names = true;
  std::string filter;
  (void)google::protobuf::util::MessageToJsonString(routingKeyFilterConfig(), &filter, print);
  // {"sources":...} -> {"@type": ..., "sources":...}
  const std::string typed_config =
      filter.size() > 2
          ? absl::StrCat("{\"@type\": \"type.googleapis.com/turnout.extensions.filters.http.routing_key.v3."
                         "RoutingKey\", ",
                         filter.substr(1))
          : "{\"@type\": \"type.googleapis.com/turnout.extensions.filters.http.routing_key.v3.RoutingKey\"}";
  SidecarBootstrap b;
  b.node_id = o.node;
  b.node_cluster = o.cluster;
  b.capture = o.capture;
  b.service = o.service;
  b.service_ns = o.service_ns;
  b.ip_families = o.ip_families;
  b.admin_port = o.admin_port;
  b.xds_host = o.xds_host;
  b.xds_port = o.xds_port;
  b.delta = o.delta;
  if (o.capture) {
    b.comment =
        "# turnout sidecar bootstrap made by `turnout-cp bootstrap --mode capture`:\n"
        "# `turnout iptables` captures the pod's TCP (outbound to 15001, inbound to\n"
        "# 15006; run this proxy as UID 1337), and turnout-cp sends the capture\n"
        "# listeners, routes and clusters over ADS (docs/sidecar.md).\n";
    return toYaml(b);
  }
  b.comment = absl::StrCat(
      "# turnout sidecar bootstrap made by `turnout-cp bootstrap`: routes come from\n"
      "# turnout-cp over ADS (route configuration `outbound`); applications send\n"
      "# outbound traffic to 127.0.0.1:", o.outbound_port, ".\n");
  b.listeners = absl::StrCat(
      hcmListenerHead("outbound", "127.0.0.1", o.outbound_port),
      "          rds:\n"
      "            route_config_name: outbound\n"
      "            config_source: {resource_api_version: V3, ads: {}}\n"
      "          http_filters:\n"
      "          - name: turnout.filters.http.routing_key\n"
      "            typed_config: ", typed_config, "\n",
      "          - name: envoy.filters.http.router\n"
      "            typed_config:\n"
      "              \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router\n");
  return toYaml(b);
}

int run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    (args.empty() ? err : out) << usage();
    return args.empty() ? kUsage : kOk;
  }
  const std::string& command = args[0];
  if (command == "--version") {
    out << "turnout-cp " << kVersion << "\n";
    return kOk;
  }
  try {
    if (command == "bootstrap") {
      auto a = parseArgs(args, 1, kBootstrapFlags);
      if (!a.ok()) throw UsageError{std::string(a.status().message())};
      return bootstrapCommand(*a, out);
    }
    const bool has_verb = command == "service" || command == "sandbox" || command == "release";
    if (!has_verb && command != "proxies" && command != "version") {
      throw UsageError{absl::StrCat("unknown command '", command, "'")};
    }
    std::string verb;
    if (has_verb) {
      if (args.size() < 2 || args[1].substr(0, 2) == "--") throw UsageError{absl::StrCat(command, " needs a command")};
      verb = args[1];
    }
    auto a = parseArgs(args, has_verb ? 2 : 1, kClientFlags);
    if (!a.ok()) throw UsageError{std::string(a.status().message())};
    const std::string output = a->last("output").value_or("table");
    if (output != "table" && output != "json") {
      throw UsageError{absl::StrCat("--output '", output, "' must be table or json")};
    }
    auto client = ApiClient::forUrl(a->last("server").value_or(kDefaultServer));
    if (!client.ok()) throw UsageError{std::string(client.status().message())};
    Context c{*client, output == "json", out, err};
    if (command == "service") return resourceCommand(c, kServiceCommand, verb, *a);
    if (command == "sandbox") return resourceCommand(c, kSandboxCommand, verb, *a);
    if (command == "release") return resourceCommand(c, kReleaseCommand, verb, *a);
    noMore(*a, 0);
    onlyFlags(*a, command, {});
    if (command == "proxies") {
      return show(c, "/v1/proxies", {"NODE", "DIALECT", "PEER", "CONNECTED", "CLUSTERS", "ENDPOINTS", "LISTENERS",
                                     "ROUTES"},
                  "proxies", proxyRow);
    }
    return versionCommand(c);
  } catch (const UsageError& e) {
    err << "error: " << e.message << "\n\n" << usage();
    return kUsage;
  }
}

}  // namespace turnout::control_plane::cli
