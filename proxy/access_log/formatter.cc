#include "proxy/access_log/formatter.h"

#include <unistd.h>

#include <algorithm>
#include <ctime>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "google/protobuf/struct.pb.h"
#include "proxy/stats/stats_render.h"

namespace turnout::proxy::access_log {
namespace {

struct OpName {
  std::string_view name;
  Formatter::Op op;
};

constexpr OpName kSimpleOps[] = {
    {"PROTOCOL", Formatter::Op::Protocol},
    {"RESPONSE_CODE", Formatter::Op::ResponseCode},
    {"RESPONSE_FLAGS", Formatter::Op::ResponseFlags},
    {"RESPONSE_CODE_DETAILS", Formatter::Op::ResponseCodeDetails},
    {"BYTES_RECEIVED", Formatter::Op::BytesReceived},
    {"BYTES_SENT", Formatter::Op::BytesSent},
    {"DURATION", Formatter::Op::Duration},
    {"REQUEST_DURATION", Formatter::Op::RequestDuration},
    {"RESPONSE_DURATION", Formatter::Op::ResponseDuration},
    {"UPSTREAM_HOST", Formatter::Op::UpstreamHost},
    {"UPSTREAM_CLUSTER", Formatter::Op::UpstreamCluster},
    {"DOWNSTREAM_REMOTE_ADDRESS", Formatter::Op::DownstreamRemoteAddress},
    {"DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT", Formatter::Op::DownstreamRemoteAddressWithoutPort},
    {"DOWNSTREAM_LOCAL_ADDRESS", Formatter::Op::DownstreamLocalAddress},
    {"DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT", Formatter::Op::DownstreamLocalAddressWithoutPort},
    {"ROUTE_NAME", Formatter::Op::RouteName},
    {"CONNECTION_ID", Formatter::Op::ConnectionId},
    {"HOSTNAME", Formatter::Op::Hostname},
    {"ROUTING_KEY", Formatter::Op::RoutingKey},
};

bool isNumeric(Formatter::Op op) {
  using Op = Formatter::Op;
  switch (op) {
    case Op::ResponseCode: case Op::BytesReceived: case Op::BytesSent: case Op::Duration:
    case Op::RequestDuration: case Op::ResponseDuration: case Op::ConnectionId:
      return true;
    default:
      return false;
  }
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

absl::StatusOr<std::vector<Formatter::Segment>> parse(std::string_view format) {
  std::vector<Formatter::Segment> out;
  std::string literal;
  auto flush = [&] {
    if (!literal.empty()) {
      out.push_back(Formatter::Segment{Formatter::Op::Literal, std::move(literal), "", std::nullopt});
      literal.clear();
    }
  };
  size_t i = 0;
  while (i < format.size()) {
    const char c = format[i];
    if (c != '%') {
      literal += c;
      ++i;
      continue;
    }
    if (i + 1 < format.size() && format[i + 1] == '%') {
      literal += '%';
      i += 2;
      continue;
    }
    // %NAME[(args)][:N]%
    size_t j = i + 1;
    while (j < format.size() && ((format[j] >= 'A' && format[j] <= 'Z') || format[j] == '_' ||
                                 (format[j] >= '0' && format[j] <= '9'))) {
      ++j;
    }
    const std::string_view name = format.substr(i + 1, j - i - 1);
    std::string args;
    bool has_args = false;
    if (j < format.size() && format[j] == '(') {
      const size_t close = format.find(')', j);
      if (close == std::string_view::npos) {
        return absl::InvalidArgumentError(
            absl::StrCat("Incorrect configuration: ", std::string(format), ". Couldn't find ')' after '",
                         std::string(name), "('"));
      }
      args = std::string(format.substr(j + 1, close - j - 1));
      has_args = true;
      j = close + 1;
    }
    std::optional<size_t> max_length;
    if (j < format.size() && format[j] == ':') {
      size_t k = j + 1;
      while (k < format.size() && format[k] >= '0' && format[k] <= '9') ++k;
      size_t n = 0;
      if (k == j + 1 || !absl::SimpleAtoi(absl::string_view(format.data() + j + 1, k - j - 1), &n)) {
        return absl::InvalidArgumentError(
            absl::StrCat("Length must be an integer in operator %", std::string(name), "%"));
      }
      max_length = n;
      j = k;
    }
    if (j >= format.size() || format[j] != '%' || name.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Incorrect configuration: ", std::string(format), ". Expected '%' to close command at position ", i));
    }
    flush();
    Formatter::Segment seg;
    seg.max_length = max_length;
    if (name == "REQ" || name == "RESP" || name == "TRAILER") {
      if (!has_args || args.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("Invalid header configuration. Format string contains empty header for %",
                         std::string(name), "%"));
      }
      seg.op = name == "REQ" ? Formatter::Op::Req : name == "RESP" ? Formatter::Op::Resp : Formatter::Op::Trailer;
      const size_t q = args.find('?');
      seg.text = lower(args.substr(0, q));
      if (q != std::string::npos) seg.fallback = lower(args.substr(q + 1));
    } else if (name == "START_TIME") {
      seg.op = Formatter::Op::StartTime;
      seg.text = args;
    } else {
      bool found = false;
      for (const OpName& o : kSimpleOps) {
        if (o.name == name) {
          seg.op = o.op;
          found = true;
          break;
        }
      }
      if (!found || has_args) {
        return absl::InvalidArgumentError(
            absl::StrCat("Not supported field in StreamInfo: ", std::string(name)));
      }
    }
    out.push_back(std::move(seg));
    i = j + 1;
  }
  flush();
  return out;
}

std::string_view requestHeader(const StreamInfo& info, const std::string& name) {
  if (info.request_headers != nullptr) {
    std::string_view v = info.request_headers->get(name);
    if (v.data() != nullptr) return v;
  }
  auto orNull = [](const std::string& s) { return s.empty() ? std::string_view() : std::string_view(s); };
  if (name == ":method") return orNull(info.method);
  if (name == ":path") return orNull(info.path);
  if (name == ":authority") {
    if (info.request_headers != nullptr) {
      std::string_view host = info.request_headers->get("host");
      if (host.data() != nullptr) return host;
    }
    return orNull(info.authority);
  }
  if (name == ":scheme") return orNull(info.scheme);
  if (name == "x-envoy-original-path") return orNull(info.original_path);
  return {};
}

std::string_view mapHeader(const HeaderMap* map, const std::string& name) {
  if (map == nullptr) return {};
  return map->get(name);
}

std::string withoutPort(std::string_view address) {
  if (!address.empty() && address.front() == '[') {
    const size_t close = address.find(']');
    if (close != std::string_view::npos) return std::string(address.substr(1, close - 1));
  }
  const size_t colon = address.rfind(':');
  if (colon == std::string_view::npos || address.find(':') != colon) return std::string(address);
  return std::string(address.substr(0, colon));
}

const std::string& hostname() {
  static const std::string* kHostname = [] {
    char buf[256] = {};
    if (gethostname(buf, sizeof(buf) - 1) != 0) return new std::string("-");
    return new std::string(buf);
  }();
  return *kHostname;
}

// Renders one operator; returns false when the value is unset.
bool render(const Formatter::Segment& seg, const StreamInfo& info, std::string& value) {
  using Op = Formatter::Op;
  auto ms = [](const std::optional<std::chrono::nanoseconds>& d, std::string& v) {
    if (!d) return false;
    v = absl::StrCat(std::chrono::duration_cast<std::chrono::milliseconds>(*d).count());
    return true;
  };
  auto str = [](std::string_view s, std::string& v) {
    if (s.empty()) return false;
    v.assign(s.data(), s.size());
    return true;
  };
  switch (seg.op) {
    case Op::Literal: value = seg.text; return true;
    case Op::StartTime: value = formatStartTime(info.start_time, seg.text); return true;
    case Op::Req: {
      std::string_view v = requestHeader(info, seg.text);
      if (v.data() == nullptr && !seg.fallback.empty()) v = requestHeader(info, seg.fallback);
      if (v.data() == nullptr) return false;
      value.assign(v.data(), v.size());
      return true;
    }
    case Op::Resp:
    case Op::Trailer: {
      const HeaderMap* map = seg.op == Op::Resp ? info.response_headers : info.response_trailers;
      std::string_view v = mapHeader(map, seg.text);
      if (v.data() == nullptr && !seg.fallback.empty()) v = mapHeader(map, seg.fallback);
      if (v.data() == nullptr) return false;
      value.assign(v.data(), v.size());
      return true;
    }
    case Op::Protocol: return str(info.protocol, value);
    case Op::ResponseCode: value = absl::StrCat(info.response_code.value_or(0)); return true;
    case Op::ResponseFlags: value = info.response_flags.toShortString(); return true;
    case Op::ResponseCodeDetails: return str(info.response_code_details, value);
    case Op::BytesReceived: value = absl::StrCat(info.bytes_received); return true;
    case Op::BytesSent: value = absl::StrCat(info.bytes_sent); return true;
    case Op::Duration: return ms(info.duration, value);
    case Op::RequestDuration: return ms(info.last_downstream_rx_byte, value);
    case Op::ResponseDuration: return ms(info.first_upstream_rx_byte, value);
    case Op::UpstreamHost: return str(info.upstream_host, value);
    case Op::UpstreamCluster: return str(info.upstream_cluster, value);
    case Op::DownstreamRemoteAddress: return str(info.downstream_remote_address, value);
    case Op::DownstreamRemoteAddressWithoutPort: return str(withoutPort(info.downstream_remote_address), value);
    case Op::DownstreamLocalAddress: return str(info.downstream_local_address, value);
    case Op::DownstreamLocalAddressWithoutPort: return str(withoutPort(info.downstream_local_address), value);
    case Op::RouteName: return str(info.route_name, value);
    case Op::ConnectionId: value = absl::StrCat(info.connection_id.value_or(0)); return true;
    case Op::Hostname: value = hostname(); return true;
    case Op::RoutingKey: return str(info.routing_key, value);
  }
  return false;
}

void appendSegments(const std::vector<Formatter::Segment>& segments, const StreamInfo& info,
                    std::string& out) {
  std::string value;
  for (const Formatter::Segment& seg : segments) {
    if (seg.op == Formatter::Op::Literal) {
      out += seg.text;
      continue;
    }
    value.clear();
    if (!render(seg, info, value)) {
      out += '-';
      continue;
    }
    if (seg.max_length && value.size() > *seg.max_length) value.resize(*seg.max_length);
    out += value;
  }
}

absl::StatusOr<std::vector<Formatter::JsonField>> compileJson(const google::protobuf::Struct& s,
                                                              const std::string& path,
                                                              bool preserve_types) {
  std::vector<Formatter::JsonField> fields;
  for (const auto& [key, value] : s.fields()) {
    Formatter::JsonField f;
    f.key = key;
    switch (value.kind_case()) {
      case google::protobuf::Value::kStringValue: {
        auto segs = parse(value.string_value());
        if (!segs.ok()) {
          return absl::InvalidArgumentError(absl::StrCat(path, ".", key, ": ", segs.status().message()));
        }
        f.segments = std::move(*segs);
        f.typed = preserve_types && f.segments.size() == 1 && isNumeric(f.segments[0].op) &&
                  !f.segments[0].max_length;
        break;
      }
      case google::protobuf::Value::kNumberValue:
        f.kind = Formatter::JsonField::Kind::Number;
        f.literal = stats::formatDouble(value.number_value());
        break;
      case google::protobuf::Value::kBoolValue:
        f.kind = Formatter::JsonField::Kind::Bool;
        f.literal = value.bool_value() ? "true" : "false";
        break;
      case google::protobuf::Value::kStructValue: {
        auto children =
            compileJson(value.struct_value(), absl::StrCat(path, ".", key), preserve_types);
        if (!children.ok()) return children.status();
        f.kind = Formatter::JsonField::Kind::Object;
        f.children = std::move(*children);
        break;
      }
      case google::protobuf::Value::kListValue:
        return absl::InvalidArgumentError(
            absl::StrCat(path, ".", key, ": lists are not supported in json_format"));
      default:
        f.kind = Formatter::JsonField::Kind::Null;
        break;
    }
    fields.push_back(std::move(f));
  }
  std::sort(fields.begin(), fields.end(),
            [](const Formatter::JsonField& a, const Formatter::JsonField& b) { return a.key < b.key; });
  return fields;
}

void appendJson(const std::vector<Formatter::JsonField>& fields, const StreamInfo& info, std::string& out) {
  out += '{';
  bool first = true;
  std::string value;
  for (const Formatter::JsonField& f : fields) {
    if (!first) out += ',';
    first = false;
    out += stats::jsonQuote(f.key);
    out += ':';
    switch (f.kind) {
      case Formatter::JsonField::Kind::Number:
      case Formatter::JsonField::Kind::Bool: out += f.literal; break;
      case Formatter::JsonField::Kind::Null: out += "null"; break;
      case Formatter::JsonField::Kind::Object: appendJson(f.children, info, out); break;
      case Formatter::JsonField::Kind::Format:
        if (f.segments.size() == 1 && f.segments[0].op != Formatter::Op::Literal) {
          value.clear();
          if (!render(f.segments[0], info, value)) {
            out += "null";
            break;
          }
          if (f.segments[0].max_length && value.size() > *f.segments[0].max_length) {
            value.resize(*f.segments[0].max_length);
          }
          out += f.typed ? value : stats::jsonQuote(value);
        } else {
          value.clear();
          appendSegments(f.segments, info, value);
          out += stats::jsonQuote(value);
        }
        break;
    }
  }
  out += '}';
}

}  // namespace

std::string formatStartTime(std::chrono::system_clock::time_point t, std::string_view format) {
  const std::string fmt = format.empty() ? std::string("%Y-%m-%dT%H:%M:%S.%3fZ") : std::string(format);
  const auto since_epoch = t.time_since_epoch();
  const auto secs = std::chrono::floor<std::chrono::seconds>(since_epoch);
  const int64_t nanos = std::chrono::duration_cast<std::chrono::nanoseconds>(since_epoch - secs).count();
  const std::time_t tt = static_cast<std::time_t>(secs.count());
  std::tm tm{};
  gmtime_r(&tt, &tm);
  // Expand Envoy's extensions first, then hand the rest to strftime.
  std::string expanded;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%' || i + 1 >= fmt.size()) {
      expanded += fmt[i];
      continue;
    }
    const char n = fmt[i + 1];
    if (n == 'f') {
      expanded += absl::StrFormat("%09d", nanos);
      ++i;
    } else if (n >= '1' && n <= '9' && i + 2 < fmt.size() && fmt[i + 2] == 'f') {
      const int digits = n - '0';
      expanded += absl::StrFormat("%09d", nanos).substr(0, digits);
      i += 2;
    } else if (n == 's') {
      expanded += absl::StrCat(secs.count());
      ++i;
    } else {
      expanded += fmt[i];
      expanded += n;
      ++i;
    }
  }
  char buf[512];
  const size_t len = std::strftime(buf, sizeof(buf), expanded.c_str(), &tm);
  return std::string(buf, len);
}

absl::StatusOr<Formatter> Formatter::create(std::string_view format) {
  auto segments = parse(format);
  if (!segments.ok()) return segments.status();
  Formatter f;
  f.text_ = std::move(*segments);
  return f;
}

absl::StatusOr<Formatter> Formatter::createJson(const google::protobuf::Struct& json_format,
                                                bool preserve_types) {
  auto fields = compileJson(json_format, "json_format", preserve_types);
  if (!fields.ok()) return fields.status();
  Formatter f;
  f.json_ = std::make_shared<const std::vector<JsonField>>(std::move(*fields));
  return f;
}

void Formatter::formatTo(const StreamInfo& info, std::string& out) const {
  if (json_) {
    appendJson(*json_, info, out);
    out += '\n';
    return;
  }
  appendSegments(text_, info, out);
}

std::string Formatter::format(const StreamInfo& info) const {
  std::string out;
  formatTo(info, out);
  return out;
}

}  // namespace turnout::proxy::access_log
