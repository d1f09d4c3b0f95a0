#include "config/control_plane/etcd_json.h"

#include <algorithm>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "config/json_string.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace turnout::control_plane {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

// Debian's abseil has its own string_view.
absl::string_view av(std::string_view s) { return absl::string_view(s.data(), s.size()); }
std::string str(absl::string_view s) { return std::string(s.data(), s.size()); }

constexpr size_t kMaxErrorBody = 200;

std::string b64(std::string_view s) { return absl::Base64Escape(av(s)); }

std::string jsonString(std::string_view s) {
  std::string out;
  config::appendJsonString(out, s);
  return out;
}

absl::StatusOr<Struct> parseObject(std::string_view what, std::string_view json) {
  Value root;
  google::protobuf::util::JsonParseOptions options;
  auto s = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), &root, options);
  if (!s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        av(what),
        ": not valid JSON: ", av(std::string_view(s.message().data(), s.message().size()))));
  }
  if (root.kind_case() != Value::kStructValue) {
    return absl::InvalidArgumentError(absl::StrCat(av(what), ": not a JSON object"));
  }
  return root.struct_value();
}

const Value* field(const Struct& object, const char* name) {
  auto it = object.fields().find(name);
  return it == object.fields().end() ? nullptr : &it->second;
}

const Struct* objectField(const Struct& object, const char* name) {
  const Value* v = field(object, name);
  return v != nullptr && v->kind_case() == Value::kStructValue ? &v->struct_value() : nullptr;
}

// etcd's int64s are JSON strings ("12"); plain numbers are taken too. An
// absent field is 0 (the gateway omits zero values).
absl::StatusOr<int64_t> int64Field(std::string_view what, const Struct& object, const char* name) {
  const Value* v = field(object, name);
  if (v == nullptr) return 0;
  int64_t out = 0;
  if (v->kind_case() == Value::kStringValue && absl::SimpleAtoi(v->string_value(), &out))
    return out;
  if (v->kind_case() == Value::kNumberValue && v->number_value() >= 0 && v->number_value() < 9e15) {
    return static_cast<int64_t>(v->number_value());
  }
  return absl::InvalidArgumentError(absl::StrCat(av(what), ".", name, ": not an integer"));
}

bool boolField(const Struct& object, const char* name) {
  const Value* v = field(object, name);
  return v != nullptr && v->kind_case() == Value::kBoolValue && v->bool_value();
}

absl::StatusOr<std::string> base64Field(std::string_view what, const Struct& object,
                                        const char* name) {
  const Value* v = field(object, name);
  if (v == nullptr) return std::string();
  std::string out;
  if (v->kind_case() != Value::kStringValue || !absl::Base64Unescape(v->string_value(), &out)) {
    return absl::InvalidArgumentError(absl::StrCat(av(what), ".", name, ": not base64"));
  }
  return out;
}

// An answer that is an error: {"error": "...", "message": "...", "code": n}.
absl::Status answerError(const Struct& object, std::string_view body) {
  if (field(object, "error") != nullptr || field(object, "code") != nullptr) {
    return absl::UnavailableError(absl::StrCat("etcd: ", etcdErrorMessage(body)));
  }
  return absl::OkStatus();
}

bool validPrefixChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '/' || c == '-' || c == '_' ||
         c == '.';
}

}  // namespace

std::string EtcdEndpoint::url() const {
  const bool v6 = host.find(':') != std::string::npos;
  return absl::StrCat("etcd://", v6 ? "[" : "", host, v6 ? "]" : "", ":", port, prefix);
}

absl::StatusOr<EtcdEndpoint> parseEtcdUrl(std::string_view url) {
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("--store '", av(url), "': ", av(why),
                                                   " (expected etcd://HOST:PORT[/PREFIX], e.g. "
                                                   "etcd://127.0.0.1:2379/turnout-cp)"));
  };
  constexpr std::string_view kScheme = "etcd://";
  if (url.substr(0, kScheme.size()) != kScheme) return bad("not an etcd:// URL");
  std::string_view rest = url.substr(kScheme.size());
  const size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
  EtcdEndpoint out;
  if (authority.find('@') != std::string_view::npos)
    return bad("user information is not supported");
  size_t colon;
  if (!authority.empty() && authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos || close < 2) return bad("unterminated IPv6 address");
    out.host = std::string(authority.substr(1, close - 1));
    if (authority.size() == close + 1 || authority[close + 1] != ':') return bad("no port");
    colon = close + 1;
  } else {
    colon = authority.rfind(':');
    if (colon == std::string_view::npos) return bad("no port");
    out.host = std::string(authority.substr(0, colon));
    if (out.host.find(':') != std::string::npos) return bad("an IPv6 address needs brackets");
  }
  if (out.host.empty()) return bad("no host");
  for (char c : out.host) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != ':') {
      return bad("the host has a character that is not allowed");
    }
  }
  uint32_t port = 0;
  const std::string_view port_text = authority.substr(colon + 1);
  if (port_text.empty() || !absl::SimpleAtoi(av(port_text), &port) || port == 0 || port > 65535 ||
      !absl::ascii_isdigit(static_cast<unsigned char>(port_text.front()))) {
    return bad("the port must be 1-65535");
  }
  out.port = static_cast<uint16_t>(port);
  if (!path.empty()) {
    while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
    if (path == "/") return bad("the prefix is empty");
    if (path.find("//") != std::string_view::npos) return bad("the prefix has an empty segment");
    for (char c : path) {
      if (!validPrefixChar(c)) return bad("the prefix may hold only letters, digits and / - _ .");
    }
    out.prefix = std::string(path);
  }
  return out;
}

std::string etcdVersionKey(std::string_view prefix) { return absl::StrCat(av(prefix), "/version"); }

std::string etcdResourceKey(std::string_view prefix, ResourceKind kind, std::string_view name) {
  return absl::StrCat(av(prefix), "/r/", av(resourceKindName(kind)), "/", av(name));
}

std::string etcdPrefixEnd(std::string_view key) {
  std::string end(key);
  while (!end.empty()) {
    if (static_cast<unsigned char>(end.back()) < 0xff) {
      end.back() = static_cast<char>(end.back() + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // every key
}

std::string encodeEtcdRecord(const StoredResource& resource) {
  std::string out = absl::StrCat("{\"json\":", jsonString(resource.json),
                                 ",\"resource_version\":\"", resource.resource_version, "\"");
  if (resource.expires_at != absl::InfiniteFuture()) {
    absl::StrAppend(&out, ",\"expires_at_ns\":\"", absl::ToUnixNanos(resource.expires_at), "\"");
  }
  out += '}';
  return out;
}

absl::StatusOr<StoredResource> decodeEtcdRecord(std::string_view key, ResourceKind kind,
                                                std::string_view name, std::string_view value) {
  auto damaged = [&](absl::string_view why) {
    return absl::DataLossError(absl::StrCat("etcd key ", av(key), ": ", why));
  };
  auto object = parseObject("record", value);
  if (!object.ok()) return damaged(object.status().message());
  StoredResource r;
  r.kind = kind;
  r.name = std::string(name);
  const Value* json = field(*object, "json");
  if (json == nullptr || json->kind_case() != Value::kStringValue)
    return damaged("no \"json\" string");
  r.json = json->string_value();
  for (const auto& [k, v] : object->fields()) {
    if (k != "json" && k != "resource_version" && k != "expires_at_ns") {
      return damaged(absl::StrCat("unknown field \"", k, "\""));
    }
  }
  auto rv = int64Field("record", *object, "resource_version");
  if (!rv.ok() || *rv <= 0) return damaged("resource_version must be a positive integer");
  r.resource_version = static_cast<uint64_t>(*rv);
  if (field(*object, "expires_at_ns") != nullptr) {
    auto ns = int64Field("record", *object, "expires_at_ns");
    if (!ns.ok()) return damaged("expires_at_ns must be an integer");
    r.expires_at = absl::FromUnixNanos(*ns);
  }
  return r;
}

std::string etcdRangeRequest(std::string_view prefix) {
  const std::string key = absl::StrCat(av(prefix), "/");
  return absl::StrCat("{\"key\":\"", b64(key), "\",\"range_end\":\"", b64(etcdPrefixEnd(key)),
                      "\"}");
}

absl::StatusOr<EtcdSnapshot> parseEtcdRange(std::string_view prefix, std::string_view body) {
  auto object = parseObject("etcd range answer", body);
  if (!object.ok()) return object.status();
  if (absl::Status e = answerError(*object, body); !e.ok()) return e;
  EtcdSnapshot out;
  const Struct* header = objectField(*object, "header");
  if (header == nullptr) return absl::InvalidArgumentError("etcd range answer: no header");
  auto revision = int64Field("header", *header, "revision");
  if (!revision.ok()) return revision.status();
  out.revision = *revision;
  if (boolField(*object, "more"))
    return absl::InternalError("etcd range answer: truncated (\"more\")");
  const std::string version_key = etcdVersionKey(prefix);
  const std::string resource_prefix = absl::StrCat(av(prefix), "/r/");
  bool have_version = false;
  if (const Value* kvs = field(*object, "kvs"); kvs != nullptr) {
    if (kvs->kind_case() != Value::kListValue)
      return absl::InvalidArgumentError("etcd range answer: kvs");
    for (const Value& kv : kvs->list_value().values()) {
      if (kv.kind_case() != Value::kStructValue)
        return absl::InvalidArgumentError("etcd range answer: kvs[]");
      auto key = base64Field("kvs[]", kv.struct_value(), "key");
      if (!key.ok()) return key.status();
      auto value = base64Field("kvs[]", kv.struct_value(), "value");
      if (!value.ok()) return value.status();
      if (*key == version_key) {
        uint64_t v = 0;
        if (!absl::SimpleAtoi(*value, &v)) {
          return absl::DataLossError(absl::StrCat("etcd key ", *key, ": not a config version: '",
                                                  value->substr(0, 40), "'"));
        }
        auto mod = int64Field("kvs[]", kv.struct_value(), "mod_revision");
        if (!mod.ok()) return mod.status();
        out.state.version = v;
        out.version_mod_revision = *mod;
        have_version = true;
        continue;
      }
      // <prefix>/r/<kind>/<name>
      std::string_view rest(*key);
      if (rest.substr(0, resource_prefix.size()) != resource_prefix) {
        return absl::DataLossError(absl::StrCat("etcd key ", *key,
                                                ": not a turnout-cp key (expected ", version_key,
                                                " or ", resource_prefix, "<kind>/<name>)"));
      }
      rest.remove_prefix(resource_prefix.size());
      const size_t slash = rest.find('/');
      ResourceKind kind;
      if (slash == std::string_view::npos || slash + 1 == rest.size() ||
          !resourceKindFromName(rest.substr(0, slash), kind)) {
        return absl::DataLossError(absl::StrCat(
            "etcd key ", *key, ": not <kind>/<name> with kind service, sandbox or release"));
      }
      auto r = decodeEtcdRecord(*key, kind, rest.substr(slash + 1), *value);
      if (!r.ok()) return r.status();
      out.state.resources.push_back(std::move(*r));
    }
  }
  if (!have_version && !out.state.resources.empty()) {
    return absl::DataLossError(
        absl::StrCat("etcd: resources under ", resource_prefix, " but no ", version_key));
  }
  // etcd sorts by key (release < sandbox < service); restore wants services first.
  std::stable_sort(out.state.resources.begin(), out.state.resources.end(),
                   [](const StoredResource& a, const StoredResource& b) {
                     return static_cast<int>(a.kind) < static_cast<int>(b.kind);
                   });
  return out;
}

std::string etcdTxnRequest(std::string_view prefix, const Change& change, int64_t guard) {
  // One operation per key (etcd refuses a txn that names a key twice); as in
  // SqliteStore::apply, the puts go first and the deletes win.
  std::map<std::string, std::optional<std::string>> ops;
  for (const StoredResource& r : change.puts)
    ops[etcdResourceKey(prefix, r.kind, r.name)] = encodeEtcdRecord(r);
  for (const auto& [kind, name] : change.deletes)
    ops[etcdResourceKey(prefix, kind, name)] = std::nullopt;
  std::string out = absl::StrCat("{\"compare\":[{\"key\":\"", b64(etcdVersionKey(prefix)),
                                 "\",\"target\":\"MOD\",\"result\":\"EQUAL\",\"mod_revision\":\"",
                                 guard, "\"}],\"success\":[");
  for (const auto& [key, value] : ops) {
    if (value) {
      absl::StrAppend(&out, "{\"request_put\":{\"key\":\"", b64(key), "\",\"value\":\"",
                      b64(*value), "\"}},");
    } else {
      absl::StrAppend(&out, "{\"request_delete_range\":{\"key\":\"", b64(key), "\"}},");
    }
  }
  absl::StrAppend(&out, "{\"request_put\":{\"key\":\"", b64(etcdVersionKey(prefix)),
                  "\",\"value\":\"", b64(absl::StrCat(change.version)), "\"}}]}");
  return out;
}

absl::StatusOr<EtcdTxnResult> parseEtcdTxn(std::string_view body) {
  auto object = parseObject("etcd txn answer", body);
  if (!object.ok()) return object.status();
  if (absl::Status e = answerError(*object, body); !e.ok()) return e;
  const Struct* header = objectField(*object, "header");
  if (header == nullptr) return absl::InvalidArgumentError("etcd txn answer: no header");
  auto revision = int64Field("header", *header, "revision");
  if (!revision.ok()) return revision.status();
  return EtcdTxnResult{boolField(*object, "succeeded"), *revision};
}

std::string etcdWatchRequest(std::string_view prefix, int64_t start_revision) {
  const std::string key = absl::StrCat(av(prefix), "/");
  return absl::StrCat("{\"create_request\":{\"key\":\"", b64(key), "\",\"range_end\":\"",
                      b64(etcdPrefixEnd(key)), "\",\"start_revision\":\"", start_revision, "\"}}");
}

absl::StatusOr<EtcdWatchMessage> parseEtcdWatchMessage(std::string_view line) {
  auto object = parseObject("etcd watch message", line);
  if (!object.ok()) return object.status();
  if (absl::Status e = answerError(*object, line); !e.ok()) return e;
  const Struct* result = objectField(*object, "result");
  if (result == nullptr) return absl::InvalidArgumentError("etcd watch message: no result");
  EtcdWatchMessage out;
  out.created = boolField(*result, "created");
  out.canceled = boolField(*result, "canceled");
  if (const Value* reason = field(*result, "cancel_reason");
      reason != nullptr && reason->kind_case() == Value::kStringValue) {
    out.reason = reason->string_value();
  }
  auto compact = int64Field("result", *result, "compact_revision");
  if (!compact.ok()) return compact.status();
  out.compact_revision = *compact;
  if (const Struct* header = objectField(*result, "header"); header != nullptr) {
    auto revision = int64Field("header", *header, "revision");
    if (!revision.ok()) return revision.status();
    out.revision = *revision;
  }
  if (const Value* events = field(*result, "events"); events != nullptr) {
    if (events->kind_case() != Value::kListValue)
      return absl::InvalidArgumentError("etcd watch message: events");
    for (const Value& event : events->list_value().values()) {
      if (event.kind_case() != Value::kStructValue) continue;
      const Struct* kv = objectField(event.struct_value(), "kv");
      if (kv == nullptr) continue;
      auto mod = int64Field("kv", *kv, "mod_revision");
      if (!mod.ok()) return mod.status();
      out.last_event_revision = std::max(out.last_event_revision, *mod);
    }
  }
  return out;
}

std::string etcdErrorMessage(std::string_view body) {
  auto object = parseObject("", body);
  if (object.ok()) {
    for (const char* name : {"message", "error"}) {
      const Value* v = field(*object, name);
      if (v != nullptr && v->kind_case() == Value::kStringValue) return v->string_value();
      if (v != nullptr &&
          v->kind_case() == Value::kStructValue) {  // watch: {"error": {"message": ...}}
        const Value* m = field(v->struct_value(), "message");
        if (m != nullptr && m->kind_case() == Value::kStringValue) return m->string_value();
      }
    }
  }
  std::string text(body.substr(0, kMaxErrorBody));
  if (body.size() > kMaxErrorBody) text += "...";
  return str(absl::StripAsciiWhitespace(text));
}

absl::StatusOr<std::optional<HttpHead>> parseHttpHead(std::string_view data) {
  const size_t end = data.find("\r\n\r\n");
  if (end == std::string_view::npos) {
    if (data.size() > 64 * 1024) return absl::InvalidArgumentError("HTTP answer: head over 64 KiB");
    return std::optional<HttpHead>();
  }
  HttpHead head;
  head.size = end + 4;
  std::vector<absl::string_view> lines = absl::StrSplit(av(data.substr(0, end)), "\r\n");
  // HTTP/1.1 200 OK
  const absl::string_view status_line = lines.front();
  if (status_line.size() < 12 || status_line.substr(0, 5) != "HTTP/" || status_line[8] != ' ' ||
      !absl::SimpleAtoi(status_line.substr(9, 3), &head.status) || head.status < 100 ||
      head.status > 599) {
    return absl::InvalidArgumentError(
        absl::StrCat("HTTP answer: bad status line '", status_line.substr(0, 80), "'"));
  }
  for (size_t i = 1; i < lines.size(); ++i) {
    const size_t colon = lines[i].find(':');
    if (colon == absl::string_view::npos)
      return absl::InvalidArgumentError("HTTP answer: bad header line");
    const std::string name = absl::AsciiStrToLower(lines[i].substr(0, colon));
    const std::string value =
        absl::AsciiStrToLower(absl::StripAsciiWhitespace(lines[i].substr(colon + 1)));
    if (name == "transfer-encoding") {
      head.chunked = value == "chunked";
      if (!head.chunked)
        return absl::InvalidArgumentError("HTTP answer: unsupported transfer-encoding");
    } else if (name == "content-length") {
      size_t n = 0;
      if (!absl::SimpleAtoi(value, &n))
        return absl::InvalidArgumentError("HTTP answer: bad content-length");
      head.content_length = n;
    }
  }
  return std::optional<HttpHead>(head);
}

absl::Status ChunkedDecoder::feed(std::string_view in, std::string& out) {
  size_t i = 0;
  while (i < in.size() && state_ != State::kDone) {
    switch (state_) {
      case State::kSize:
      case State::kDataEnd:
      case State::kTrailer: {
        const size_t nl = in.find('\n', i);
        const std::string_view part =
            in.substr(i, nl == std::string_view::npos ? std::string_view::npos : nl - i);
        line_.append(part);
        if (line_.size() > 4096) return absl::InvalidArgumentError("chunked body: line over 4 KiB");
        if (nl == std::string_view::npos) return absl::OkStatus();
        i = nl + 1;
        if (!line_.empty() && line_.back() == '\r') line_.pop_back();
        const std::string line = std::move(line_);
        line_.clear();
        if (state_ == State::kDataEnd) {
          if (!line.empty())
            return absl::InvalidArgumentError("chunked body: no CRLF after a chunk");
          state_ = State::kSize;
        } else if (state_ == State::kTrailer) {
          if (line.empty()) state_ = State::kDone;
        } else {
          const std::string_view size_text = std::string_view(line).substr(0, line.find(';'));
          size_t size = 0;
          if (size_text.empty() || size_text.size() > 12 ||
              !absl::SimpleHexAtoi(av(size_text), &size)) {
            return absl::InvalidArgumentError(
                absl::StrCat("chunked body: bad chunk size '", line.substr(0, 20), "'"));
          }
          remaining_ = size;
          state_ = size == 0 ? State::kTrailer : State::kData;
        }
        break;
      }
      case State::kData: {
        const size_t n = std::min(remaining_, in.size() - i);
        out.append(in.substr(i, n));
        i += n;
        remaining_ -= n;
        if (remaining_ == 0) state_ = State::kDataEnd;
        break;
      }
      case State::kDone:
        break;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<HttpAnswer> parseHttpAnswer(std::string_view data) {
  auto head = parseHttpHead(data);
  if (!head.ok()) return head.status();
  if (!*head) return absl::InvalidArgumentError("HTTP answer: incomplete head");
  HttpAnswer out;
  out.status = (*head)->status;
  const std::string_view rest = data.substr((*head)->size);
  if ((*head)->chunked) {
    ChunkedDecoder decoder;
    if (absl::Status s = decoder.feed(rest, out.body); !s.ok()) return s;
    if (!decoder.done()) return absl::InvalidArgumentError("HTTP answer: chunked body cut short");
  } else if ((*head)->content_length) {
    if (rest.size() < *(*head)->content_length)
      return absl::InvalidArgumentError("HTTP answer: body cut short");
    out.body = std::string(rest.substr(0, *(*head)->content_length));
  } else {
    out.body = std::string(rest);
  }
  return out;
}

}  // namespace turnout::control_plane
