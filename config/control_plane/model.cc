#include "config/control_plane/model.h"

#include <arpa/inet.h>

#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "config/json_limits.h"
#include "config/json_string.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "re2/re2.h"
#include "routing/routing_key.h"

namespace turnout::control_plane {
namespace {

using google::protobuf::ListValue;
using google::protobuf::Struct;
using google::protobuf::Value;

std::string str(std::string_view s) { return std::string(s); }

// A user-supplied value inside an error message: quoted, control and
// non-ASCII bytes as \xNN, at most 64 characters shown.
std::string shown(std::string_view value) {
  constexpr size_t kShown = 64;
  std::string out = "'";
  for (size_t i = 0; i < value.size() && i < kShown; ++i) {
    const unsigned char c = static_cast<unsigned char>(value[i]);
    if (c < 0x20 || c >= 0x7f) {
      absl::StrAppend(&out, absl::StrFormat("\\x%02x", c));
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  if (value.size() > kShown) absl::StrAppend(&out, "...(", value.size(), " bytes)");
  out += "'";
  return out;
}

// `parent.key` when the key is a plain identifier, else `parent["key"]`.
std::string child(std::string_view parent, std::string_view key) {
  bool plain = !key.empty();
  for (char c : key) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') plain = false;
  }
  if (plain) return parent.empty() ? str(key) : absl::StrCat(str(parent), ".", str(key));
  std::string out = str(parent);
  out += '[';
  config::appendJsonString(out, key);
  out += ']';
  return out;
}
std::string index(std::string_view parent, size_t i) {
  return absl::StrCat(str(parent), "[", i, "]");
}

// ---- JSON values --------------------------------------------------------------------

std::string_view kindName(const Value& v) {
  switch (v.kind_case()) {
    case Value::kNullValue: return "null";
    case Value::kNumberValue: return "a number";
    case Value::kStringValue: return "a string";
    case Value::kBoolValue: return "a boolean";
    case Value::kStructValue: return "an object";
    case Value::kListValue: return "a list";
    default: return "nothing";
  }
}

absl::Status wrongType(std::string_view path, std::string_view want, const Value& v) {
  return invalidArgument(path, absl::StrCat("must be ", str(want), ", got ", str(kindName(v))));
}

absl::StatusOr<Struct> parseObject(std::string_view json) {
  if (!config::jsonNestingWithin(json)) {
    return absl::InvalidArgumentError(
        absl::StrCat("the body nests arrays and objects deeper than ", config::kMaxJsonNesting));
  }
  Value root;
  google::protobuf::util::JsonParseOptions options;
  auto s = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), &root, options);
  if (!s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the body is not valid JSON: ",
                     config::jsonParseReason(std::string_view(s.message().data(), s.message().size()))));
  }
  if (root.kind_case() != Value::kStructValue) {
    return absl::InvalidArgumentError(
        absl::StrCat("the body must be a JSON object, got ", str(kindName(root))));
  }
  return root.struct_value();
}

// The fields of `object` in key order, so that which error is reported first
// does not depend on the protobuf map's order.
std::map<std::string, const Value*> sortedFields(const Struct& object) {
  std::map<std::string, const Value*> out;
  for (const auto& [k, v] : object.fields()) out.emplace(k, &v);
  return out;
}

// Fails on the first field of `object` not in `allowed` (in key order, so that
// the error does not depend on hash order).
absl::Status checkFields(std::string_view path, const Struct& object,
                         std::initializer_list<std::string_view> allowed) {
  for (const auto& [k, v] : sortedFields(object)) {
    bool ok = false;
    for (auto a : allowed) ok = ok || a == k;
    if (!ok) {
      std::vector<std::string> names(allowed.begin(), allowed.end());
      return invalidArgument(child(path, k), absl::StrCat("unknown field (expected one of: ",
                                                          absl::StrJoin(names, ", "), ")"));
    }
  }
  return absl::OkStatus();
}

const Value* field(const Struct& object, std::string_view name) {
  auto it = object.fields().find(str(name));
  return it == object.fields().end() ? nullptr : &it->second;
}

absl::StatusOr<std::string> asString(std::string_view path, const Value& v) {
  if (v.kind_case() != Value::kStringValue) return wrongType(path, "a string", v);
  return v.string_value();
}

absl::StatusOr<uint32_t> asInteger(std::string_view path, const Value& v, uint32_t min,
                                   uint32_t max) {
  if (v.kind_case() != Value::kNumberValue) return wrongType(path, "an integer", v);
  const double d = v.number_value();
  if (!std::isfinite(d) || std::floor(d) != d || d < min || d > max) {
    return invalidArgument(path, absl::StrCat("must be an integer in ", min, "..", max, ", got ",
                                              absl::StrCat(d)));
  }
  return static_cast<uint32_t>(d);
}

// A body may repeat the resource's own name; it must then be the same.
absl::Status checkSelfName(const Struct& object, std::string_view field_name,
                           std::string_view expected) {
  const Value* v = field(object, field_name);
  if (v == nullptr) return absl::OkStatus();
  auto s = asString(field_name, *v);
  if (!s.ok()) return s.status();
  if (*s != expected) {
    return invalidArgument(field_name, absl::StrCat(shown(*s), " does not match the name in the "
                                                    "request, ", shown(expected)));
  }
  return absl::OkStatus();
}

absl::StatusOr<Endpoints> parseEndpointList(std::string_view path, const Value& v) {
  if (v.kind_case() != Value::kListValue) return wrongType(path, "a list of \"host:port\"", v);
  Endpoints out;
  const ListValue& list = v.list_value();
  for (int i = 0; i < list.values_size(); ++i) {
    const std::string p = index(path, i);
    auto text = asString(p, list.values(i));
    if (!text.ok()) return text.status();
    auto ep = parseEndpoint(p, *text);
    if (!ep.ok()) return ep.status();
    for (size_t j = 0; j < out.size(); ++j) {
      if (out[j] == *ep) {
        return invalidArgument(p, absl::StrCat(shown(*text), " is listed twice (also [", j, "])"));
      }
    }
    out.push_back(*std::move(ep));
  }
  return out;
}

// An object whose keys are names checked by `check_key` and values endpoint lists.
template <typename CheckKey>
absl::StatusOr<std::map<std::string, Endpoints>> parseEndpointMap(std::string_view path,
                                                                  const Value& v,
                                                                  CheckKey check_key,
                                                                  bool non_empty_lists) {
  if (v.kind_case() != Value::kStructValue) return wrongType(path, "an object", v);
  std::map<std::string, Endpoints> out;
  for (const auto& [k, list] : sortedFields(v.struct_value())) {
    const std::string p = child(path, k);
    if (auto s = check_key(p, k); !s.ok()) return s;
    auto eps = parseEndpointList(p, *list);
    if (!eps.ok()) return eps.status();
    if (non_empty_lists && eps->empty()) {
      return invalidArgument(p, "needs at least one endpoint");
    }
    out.emplace(k, *std::move(eps));
  }
  return out;
}

bool isLabelKeyChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' ||
         c == '/';
}
bool isLabelValueChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
}
bool alnumEnds(std::string_view s) {
  return absl::ascii_isalnum(static_cast<unsigned char>(s.front())) &&
         absl::ascii_isalnum(static_cast<unsigned char>(s.back()));
}

absl::Status validateLabel(std::string_view path, std::string_view key, std::string_view value) {
  if (key.empty() || key.size() > 253 || !alnumEnds(key)) {
    return invalidArgument(path, "a label key is 1..253 characters of [A-Za-z0-9._/-], "
                                 "alphanumeric at both ends");
  }
  for (char c : key) {
    if (!isLabelKeyChar(c)) {
      return invalidArgument(path, "a label key is 1..253 characters of [A-Za-z0-9._/-], "
                                   "alphanumeric at both ends");
    }
  }
  bool ok = value.size() <= 63 && (value.empty() || alnumEnds(value));
  for (char c : value) ok = ok && isLabelValueChar(c);
  if (!ok) {
    return invalidArgument(path, absl::StrCat(shown(value), ": a label value is 0..63 "
                                              "characters of [A-Za-z0-9._-], alphanumeric at both "
                                              "ends"));
  }
  return absl::OkStatus();
}

bool isTokenChar(char c) {
  // RFC 9110 tchar, lowercase only.
  if (absl::ascii_isupper(static_cast<unsigned char>(c))) return false;
  if (absl::ascii_isalnum(static_cast<unsigned char>(c))) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

absl::Status validateRegex(std::string_view path, const std::string& regex) {
  RE2 re(regex, RE2::Quiet);
  if (!re.ok()) {
    return invalidArgument(path, absl::StrCat(shown(regex), " is not an RE2 regex: ", re.error()));
  }
  if (re.ProgramSize() > kMaxRegexProgramSize) {
    return invalidArgument(path, absl::StrCat("the regex's RE2 program size is ", re.ProgramSize(),
                                              ", over ", kMaxRegexProgramSize,
                                              " (Envoy's default re2.max_program_size)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<HeaderMatch> parseHeaderMatch(std::string_view path, const std::string& name,
                                             const Value& v) {
  HeaderMatch m;
  m.name = name;
  if (v.kind_case() == Value::kStringValue) {
    m.kind = HeaderMatch::Kind::kExact;
    m.value = v.string_value();
    return m;
  }
  if (v.kind_case() != Value::kStructValue) {
    return wrongType(path, "a string (exact value) or an object with one of exact, prefix, "
                           "regex, present",
                     v);
  }
  const Struct& o = v.struct_value();
  if (auto s = checkFields(path, o, {"exact", "prefix", "regex", "present"}); !s.ok()) return s;
  if (o.fields_size() != 1) {
    return invalidArgument(path, "set exactly one of exact, prefix, regex, present");
  }
  const auto& [op, arg] = *o.fields().begin();
  const std::string p = child(path, op);
  if (op == "present") {
    if (arg.kind_case() != Value::kBoolValue || !arg.bool_value()) {
      return invalidArgument(p, "must be true (to match an absent header, leave it out)");
    }
    m.kind = HeaderMatch::Kind::kPresent;
    return m;
  }
  auto value = asString(p, arg);
  if (!value.ok()) return value.status();
  m.value = *value;
  if (op == "exact") {
    m.kind = HeaderMatch::Kind::kExact;
  } else if (op == "prefix") {
    if (m.value.empty()) return invalidArgument(p, "must not be empty (use present: true)");
    m.kind = HeaderMatch::Kind::kPrefix;
  } else {
    if (m.value.empty()) return invalidArgument(p, "must not be empty");
    if (auto s = validateRegex(p, m.value); !s.ok()) return s;
    m.kind = HeaderMatch::Kind::kRegex;
  }
  return m;
}

void appendEndpoints(std::string& out, const Endpoints& eps) {
  out += '[';
  for (size_t i = 0; i < eps.size(); ++i) {
    if (i > 0) out += ',';
    config::appendJsonString(out, eps[i].toString());
  }
  out += ']';
}

void appendEndpointMap(std::string& out, const std::map<std::string, Endpoints>& m) {
  out += '{';
  bool first = true;
  for (const auto& [k, eps] : m) {
    if (!first) out += ',';
    first = false;
    config::appendJsonString(out, k);
    out += ':';
    appendEndpoints(out, eps);
  }
  out += '}';
}

bool isDnsName(std::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  size_t start = 0;
  while (start <= host.size()) {
    size_t dot = host.find('.', start);
    if (dot == std::string_view::npos) dot = host.size();
    std::string_view label = host.substr(start, dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return false;
    }
    for (char c : label) {
      if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
    }
    start = dot + 1;
    if (dot == host.size()) break;
  }
  return true;
}

bool isIpv4(const std::string& host) {
  in_addr a;
  return inet_pton(AF_INET, host.c_str(), &a) == 1;
}
bool isIpv6(const std::string& host) {
  in6_addr a;
  return inet_pton(AF_INET6, host.c_str(), &a) == 1;
}

}  // namespace

// ---- errors ---------------------------------------------------------------------------

absl::Status invalidArgument(std::string_view path, std::string_view message) {
  if (path.empty()) return absl::InvalidArgumentError(str(message));
  return absl::InvalidArgumentError(absl::StrCat(str(path), ": ", str(message)));
}
absl::Status conflictError(std::string_view message) { return absl::AbortedError(str(message)); }
absl::Status notFoundError(std::string_view message) { return absl::NotFoundError(str(message)); }
absl::Status preconditionFailedError(std::string_view message) {
  return absl::FailedPreconditionError(str(message));
}

int httpStatusFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk: return 200;
    case absl::StatusCode::kInvalidArgument: return 400;
    case absl::StatusCode::kNotFound: return 404;
    case absl::StatusCode::kAborted: return 409;
    case absl::StatusCode::kFailedPrecondition: return 412;
    default: return 500;
  }
}

// ---- names ------------------------------------------------------------------------------

absl::Status validateDnsLabel(std::string_view path, std::string_view name) {
  bool ok = !name.empty() && name.size() <= 63 && name.front() != '-' && name.back() != '-';
  for (char c : name) {
    ok = ok && (absl::ascii_isdigit(static_cast<unsigned char>(c)) ||
                absl::ascii_islower(static_cast<unsigned char>(c)) || c == '-');
  }
  if (!ok) {
    return invalidArgument(path, absl::StrCat(shown(name), " is not a DNS label (1..63 of "
                                              "[a-z0-9-], alphanumeric at both ends)"));
  }
  return absl::OkStatus();
}

absl::Status validateServiceName(std::string_view path, std::string_view name) {
  if (auto s = validateDnsLabel(path, name); !s.ok()) return s;
  if (name.find("--") != std::string_view::npos) {
    return invalidArgument(path, absl::StrCat(shown(name), " contains \"--\", which separates "
                                              "the parts of generated cluster names"));
  }
  return absl::OkStatus();
}

absl::Status validateRoutingKey(std::string_view path, std::string_view key) {
  if (!routing::isValidRoutingKey(key, kMaxRoutingKeyLength)) {
    return invalidArgument(path, absl::StrCat(shown(key), " is not a routing key (1..",
                                              kMaxRoutingKeyLength,
                                              " characters of [A-Za-z0-9._-])"));
  }
  return absl::OkStatus();
}

bool Endpoint::isIp() const { return isIpv4(host) || isIpv6(host); }

std::string Endpoint::toString() const {
  if (host.find(':') != std::string::npos) return absl::StrCat("[", host, "]:", port);
  return absl::StrCat(host, ":", port);
}

absl::StatusOr<Endpoint> parseEndpoint(std::string_view path, std::string_view text) {
  auto bad = [&](std::string_view why) {
    std::string msg = absl::StrCat(shown(text), " is not host:port");
    if (!why.empty()) absl::StrAppend(&msg, " (", str(why), ")");
    return invalidArgument(path, msg);
  };
  Endpoint ep;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return bad("");
    }
    ep.host = str(text.substr(1, close - 1));
    if (!isIpv6(ep.host)) return bad("not an IPv6 address in brackets");
    port = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos || colon == 0) return bad("");
    ep.host = str(text.substr(0, colon));
    if (ep.host.find(':') != std::string::npos) return bad("write IPv6 addresses as [addr]:port");
    port = text.substr(colon + 1);
    const bool numeric =
        ep.host.find_first_not_of("0123456789.") == std::string::npos;
    if (numeric ? !isIpv4(ep.host) : !isDnsName(ep.host)) {
      return bad(numeric ? "not an IPv4 address" : "not a DNS name or IP address");
    }
  }
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != port.npos) {
    return bad("the port must be a number in 1..65535");
  }
  uint32_t p = 0;
  for (char c : port) p = p * 10 + static_cast<uint32_t>(c - '0');
  if (p < 1 || p > 65535) return bad("the port must be a number in 1..65535");
  ep.port = p;
  return ep;
}

absl::StatusOr<absl::Duration> parseTtl(std::string_view path, std::string_view text) {
  auto bad = [&] {
    return invalidArgument(path, absl::StrCat(shown(text), " is not a TTL (a number and a "
                                              "unit s, m, h or d, e.g. \"30m\", \"24h\", \"7d\", "
                                              "\"1h30m\")"));
  };
  if (text.empty()) return bad();
  absl::Duration total = absl::ZeroDuration();
  size_t i = 0;
  while (i < text.size()) {
    size_t digits = 0;
    int64_t n = 0;
    while (i < text.size() && absl::ascii_isdigit(static_cast<unsigned char>(text[i]))) {
      if (++digits > 9) return bad();
      n = n * 10 + (text[i] - '0');
      ++i;
    }
    if (digits == 0 || i == text.size()) return bad();
    switch (text[i]) {
      case 's': total += absl::Seconds(n); break;
      case 'm': total += absl::Minutes(n); break;
      case 'h': total += absl::Hours(n); break;
      case 'd': total += absl::Hours(24 * n); break;
      default: return bad();
    }
    ++i;
  }
  if (total <= absl::ZeroDuration()) return invalidArgument(path, "the TTL must be positive");
  if (total > kMaxTtl) return invalidArgument(path, "the TTL may be at most 366d");
  return total;
}

std::string clusterName(std::string_view service) { return str(service); }
std::string clusterName(std::string_view service, std::string_view suffix) {
  std::string out;
  out.reserve(service.size() + 2 + suffix.size());
  appendClusterName(out, service, suffix);
  return out;
}
void appendClusterName(std::string& out, std::string_view service, std::string_view suffix) {
  out.append(service).append("--").append(suffix);
}

// ---- services -------------------------------------------------------------------------

absl::StatusOr<Service> parseService(std::string_view name, std::string_view json) {
  if (auto s = validateServiceName("name", name); !s.ok()) return s;
  auto object = parseObject(json);
  if (!object.ok()) return object.status();
  if (auto s = checkFields("", *object, {"name", "port", "namespace", "endpoints", "protocol"});
      !s.ok()) {
    return s;
  }
  if (auto s = checkSelfName(*object, "name", name); !s.ok()) return s;
  Service out;
  out.name = str(name);
  const Value* port = field(*object, "port");
  if (port == nullptr) return invalidArgument("port", "required");
  auto p = asInteger("port", *port, 1, 65535);
  if (!p.ok()) return p.status();
  out.port = *p;
  if (const Value* ns = field(*object, "namespace")) {
    auto n = asString("namespace", *ns);
    if (!n.ok()) return n.status();
    if (auto s = validateDnsLabel("namespace", *n); !s.ok()) return s;
    out.ns = *n;
  }
  if (const Value* eps = field(*object, "endpoints")) {
    auto list = parseEndpointList("endpoints", *eps);
    if (!list.ok()) return list.status();
    out.endpoints = *std::move(list);
  }
  if (const Value* protocol = field(*object, "protocol")) {
    auto text = asString("protocol", *protocol);
    if (!text.ok()) return text.status();
    if (*text != "http" && *text != "http2" && *text != "grpc") {
      return invalidArgument("protocol", absl::StrCat(shown(*text),
                                                      " is not one of \"http\", \"http2\", \"grpc\""));
    }
    out.protocol = *text;
  }
  return out;
}

std::string toJson(const Service& service) {
  std::string out = "{\"name\":";
  config::appendJsonString(out, service.name);
  absl::StrAppend(&out, ",\"port\":", service.port, ",\"namespace\":");
  config::appendJsonString(out, service.ns);
  out += ",\"endpoints\":";
  appendEndpoints(out, service.endpoints);
  out += ",\"protocol\":";
  config::appendJsonString(out, service.protocol);
  out += '}';
  return out;
}

// ---- sandboxes ------------------------------------------------------------------------

absl::StatusOr<Sandbox> parseSandbox(std::string_view key, std::string_view json) {
  if (auto s = validateRoutingKey("key", key); !s.ok()) return s;
  auto object = parseObject(json);
  if (!object.ok()) return object.status();
  if (auto s = checkFields("", *object, {"key", "forks", "labels", "ttl", "expires_at"}); !s.ok()) {
    return s;
  }
  if (auto s = checkSelfName(*object, "key", key); !s.ok()) return s;
  Sandbox out;
  out.key = str(key);
  const Value* forks = field(*object, "forks");
  if (forks == nullptr) return invalidArgument("forks", "required");
  auto map = parseEndpointMap(
      "forks", *forks,
      [](std::string_view p, const std::string& service) {
        return validateServiceName(p, service);
      },
      /*non_empty_lists=*/true);
  if (!map.ok()) return map.status();
  if (map->empty()) return invalidArgument("forks", "a sandbox forks at least one service");
  out.forks = *std::move(map);
  if (const Value* labels = field(*object, "labels")) {
    if (labels->kind_case() != Value::kStructValue) {
      return wrongType("labels", "an object of strings", *labels);
    }
    for (const auto& [k, v] : sortedFields(labels->struct_value())) {
      const std::string p = child("labels", k);
      auto value = asString(p, *v);
      if (!value.ok()) return value.status();
      if (auto s = validateLabel(p, k, *value); !s.ok()) return s;
      out.labels.emplace(k, *value);
    }
  }
  if (const Value* ttl = field(*object, "ttl")) {
    auto text = asString("ttl", *ttl);
    if (!text.ok()) return text.status();
    auto d = parseTtl("ttl", *text);
    if (!d.ok()) return d.status();
    out.ttl = *text;
    out.ttl_duration = *d;
  }
  if (const Value* expires = field(*object, "expires_at")) {
    // Output only; a string or null is accepted so that GET -> PUT round-trips.
    if (expires->kind_case() != Value::kStringValue && expires->kind_case() != Value::kNullValue) {
      return wrongType("expires_at", "a string (it is output only and ignored)", *expires);
    }
  }
  return out;
}

std::string toJson(const Sandbox& sandbox) {
  std::string out = "{\"key\":";
  config::appendJsonString(out, sandbox.key);
  out += ",\"forks\":";
  appendEndpointMap(out, sandbox.forks);
  out += ",\"labels\":{";
  bool first = true;
  for (const auto& [k, v] : sandbox.labels) {
    if (!first) out += ',';
    first = false;
    config::appendJsonString(out, k);
    out += ':';
    config::appendJsonString(out, v);
  }
  out += '}';
  if (!sandbox.ttl.empty()) {
    out += ",\"ttl\":";
    config::appendJsonString(out, sandbox.ttl);
  }
  if (sandbox.expires_at != absl::InfiniteFuture()) {
    out += ",\"expires_at\":";
    config::appendJsonString(
        out, absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", sandbox.expires_at, absl::UTCTimeZone()));
  }
  out += '}';
  return out;
}

// ---- releases -------------------------------------------------------------------------

absl::StatusOr<Release> parseRelease(std::string_view service, std::string_view json) {
  if (auto s = validateServiceName("service", service); !s.ok()) return s;
  auto object = parseObject(json);
  if (!object.ok()) return object.status();
  if (auto s = checkFields("", *object, {"service", "versions", "weights", "matches"}); !s.ok()) {
    return s;
  }
  if (auto s = checkSelfName(*object, "service", service); !s.ok()) return s;
  Release out;
  out.service = str(service);
  const Value* versions = field(*object, "versions");
  if (versions == nullptr) return invalidArgument("versions", "required");
  auto map = parseEndpointMap(
      "versions", *versions,
      [](std::string_view p, const std::string& name) { return validateServiceName(p, name); },
      /*non_empty_lists=*/false);
  if (!map.ok()) return map.status();
  if (map->empty()) return invalidArgument("versions", "a release declares at least one version");
  out.versions = *std::move(map);

  auto checkVersion = [&](std::string_view p, const std::string& v) -> absl::Status {
    if (out.versions.count(v) == 0) {
      return invalidArgument(p, absl::StrCat("unknown version '", v, "' (declare it in versions)"));
    }
    return absl::OkStatus();
  };

  if (const Value* weights = field(*object, "weights")) {
    if (weights->kind_case() != Value::kStructValue) {
      return wrongType("weights", "an object of version: weight", *weights);
    }
    const auto sorted = sortedFields(weights->struct_value());
    uint32_t sum = 0;
    for (const auto& [k, v] : sorted) {
      const std::string p = child("weights", k);
      if (auto s = checkVersion(p, k); !s.ok()) return s;
      auto w = asInteger(p, *v, 0, 100);
      if (!w.ok()) return w.status();
      sum += *w;
      out.weights.emplace(k, *w);
    }
    if (out.weights.empty()) {
      return invalidArgument("weights", "name at least one version (or leave weights out)");
    }
    if (sum != 100) {
      return invalidArgument("weights", absl::StrCat("the weights sum to ", sum,
                                                     "; they must sum to 100"));
    }
  }

  if (const Value* matches = field(*object, "matches")) {
    if (matches->kind_case() != Value::kListValue) {
      return wrongType("matches", "a list", *matches);
    }
    const ListValue& list = matches->list_value();
    for (int i = 0; i < list.values_size(); ++i) {
      const std::string p = index("matches", i);
      const Value& m = list.values(i);
      if (m.kind_case() != Value::kStructValue) return wrongType(p, "an object", m);
      const Struct& o = m.struct_value();
      if (auto s = checkFields(p, o, {"headers", "version"}); !s.ok()) return s;
      ReleaseMatch rm;
      const Value* version = field(o, "version");
      if (version == nullptr) return invalidArgument(child(p, "version"), "required");
      auto vname = asString(child(p, "version"), *version);
      if (!vname.ok()) return vname.status();
      if (auto s = checkVersion(child(p, "version"), *vname); !s.ok()) return s;
      rm.version = *vname;
      const std::string hp = child(p, "headers");
      const Value* headers = field(o, "headers");
      if (headers == nullptr) return invalidArgument(hp, "required");
      if (headers->kind_case() != Value::kStructValue) {
        return wrongType(hp, "an object of header name: match", *headers);
      }
      const auto sorted = sortedFields(headers->struct_value());
      if (sorted.empty()) return invalidArgument(hp, "match at least one header");
      for (const auto& [name, v] : sorted) {
        const std::string np = child(hp, name);
        bool token = !name.empty() && name.size() <= 256;
        for (char c : name) token = token && isTokenChar(c);
        if (!token) {
          return invalidArgument(np, "a header name is a lowercase HTTP token (e.g. x-canary)");
        }
        auto hm = parseHeaderMatch(np, name, *v);
        if (!hm.ok()) return hm.status();
        rm.headers.push_back(*std::move(hm));
      }
      out.matches.push_back(std::move(rm));
    }
  }
  if (out.weights.empty() && out.matches.empty()) {
    return invalidArgument("", "a release needs weights or matches (or both)");
  }
  return out;
}

std::string toJson(const Release& release) {
  std::string out = "{\"service\":";
  config::appendJsonString(out, release.service);
  out += ",\"versions\":";
  appendEndpointMap(out, release.versions);
  if (!release.weights.empty()) {
    out += ",\"weights\":{";
    bool first = true;
    for (const auto& [k, w] : release.weights) {
      if (!first) out += ',';
      first = false;
      config::appendJsonString(out, k);
      absl::StrAppend(&out, ":", w);
    }
    out += '}';
  }
  if (!release.matches.empty()) {
    out += ",\"matches\":[";
    for (size_t i = 0; i < release.matches.size(); ++i) {
      const ReleaseMatch& m = release.matches[i];
      if (i > 0) out += ',';
      out += "{\"headers\":{";
      for (size_t j = 0; j < m.headers.size(); ++j) {
        const HeaderMatch& h = m.headers[j];
        if (j > 0) out += ',';
        config::appendJsonString(out, h.name);
        out += ':';
        switch (h.kind) {
          case HeaderMatch::Kind::kExact: config::appendJsonString(out, h.value); break;
          case HeaderMatch::Kind::kPrefix:
            out += "{\"prefix\":";
            config::appendJsonString(out, h.value);
            out += '}';
            break;
          case HeaderMatch::Kind::kRegex:
            out += "{\"regex\":";
            config::appendJsonString(out, h.value);
            out += '}';
            break;
          case HeaderMatch::Kind::kPresent: out += "{\"present\":true}"; break;
        }
      }
      out += "},\"version\":";
      config::appendJsonString(out, m.version);
      out += '}';
    }
    out += ']';
  }
  out += '}';
  return out;
}

// ---- references ----------------------------------------------------------------------

absl::Status checkSandboxReferences(const Model& model, const Sandbox& sandbox) {
  for (const auto& [service, eps] : sandbox.forks) {
    if (model.services.count(service) == 0) {
      return conflictError(absl::StrCat("sandbox '", sandbox.key, "' forks service '", service,
                                        "', which does not exist (create the service first)"));
    }
    auto rel = model.releases.find(service);
    if (rel != model.releases.end() && rel->second.versions.count(sandbox.key) != 0) {
      return conflictError(absl::StrCat(
          "sandbox '", sandbox.key, "' forks service '", service, "', whose release has a version '",
          sandbox.key, "': both would be cluster '", clusterName(service, sandbox.key), "'"));
    }
  }
  return absl::OkStatus();
}

absl::Status checkReleaseReferences(const Model& model, const Release& release) {
  if (model.services.count(release.service) == 0) {
    return conflictError(absl::StrCat("a release for service '", release.service,
                                      "', which does not exist (create the service first)"));
  }
  for (const auto& [version, eps] : release.versions) {
    auto sb = model.sandboxes.find(version);
    if (sb != model.sandboxes.end() && sb->second.forks.count(release.service) != 0) {
      return conflictError(absl::StrCat("version '", version, "' of the release for service '",
                                        release.service, "' has the name of sandbox '", version,
                                        "', which forks it: both would be cluster '",
                                        clusterName(release.service, version), "'"));
    }
  }
  return absl::OkStatus();
}

absl::Status checkReferences(const Model& model) {
  for (const auto& [name, service] : model.services) {
    if (name != service.name) return absl::InternalError("service stored under another name");
  }
  for (const auto& [key, sandbox] : model.sandboxes) {
    if (key != sandbox.key) return absl::InternalError("sandbox stored under another key");
    if (auto s = checkSandboxReferences(model, sandbox); !s.ok()) return s;
  }
  for (const auto& [service, release] : model.releases) {
    if (service != release.service) return absl::InternalError("release stored under another name");
    if (auto s = checkReleaseReferences(model, release); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace turnout::control_plane
