#include "config/control_plane/store/etcd_store.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "proxy/common/log.h"

namespace turnout::control_plane {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

constexpr int kTimeoutMs = 5000;
constexpr char kLog[] = "store";

std::string str(absl::string_view s) { return std::string(s); }
std::string b64(std::string_view s) { return absl::Base64Escape(absl::string_view(s.data(), s.size())); }

std::string versionKey(const std::string& prefix) { return prefix + "/version"; }
std::string resourcePrefix(const std::string& prefix) { return prefix + "/r/"; }
std::string resourceKey(const std::string& prefix, ResourceKind kind, const std::string& name) {
  return absl::StrCat(prefix, "/r/", str(absl::string_view(resourceKindName(kind).data(),
                                                           resourceKindName(kind).size())),
                      "/", name);
}
// etcd's range_end for "every key starting with p": p with its last byte + 1.
std::string rangeEnd(std::string p) {
  while (!p.empty() && static_cast<unsigned char>(p.back()) == 0xff) p.pop_back();
  if (!p.empty()) p.back() = static_cast<char>(p.back() + 1);
  return p;
}

const Value* field(const Struct& s, const char* name) {
  auto it = s.fields().find(name);
  return it == s.fields().end() ? nullptr : &it->second;
}

int64_t int64Field(const Struct& s, const char* name) {
  const Value* v = field(s, name);
  int64_t out = 0;
  if (v == nullptr) return 0;
  if (v->kind_case() == Value::kStringValue) {
    (void)absl::SimpleAtoi(v->string_value(), &out);
  } else if (v->kind_case() == Value::kNumberValue) {
    out = static_cast<int64_t>(v->number_value());
  }
  return out;
}

absl::StatusOr<Struct> parseJson(std::string_view json) {
  Struct s;
  auto st = google::protobuf::util::JsonStringToMessage(str(absl::string_view(json.data(), json.size())), &s);
  if (!st.ok()) return absl::InternalError(absl::StrCat("etcd answered bad JSON: ", st.message().as_string()));
  return s;
}

std::string unb64(const Value& v) {
  std::string out;
  if (v.kind_case() == Value::kStringValue) absl::Base64Unescape(v.string_value(), &out);
  return out;
}

// ---- a minimal blocking HTTP/1.1 client (loopback or a nearby etcd) -----------------

int connectTo(const std::string& host, uint16_t port, std::string* error) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const std::string service = std::to_string(port);
  if (int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &res); rc != 0) {
    *error = absl::StrCat("cannot resolve ", host, ": ", gai_strerror(rc));
    return -1;
  }
  int fd = -1;
  for (addrinfo* a = res; a != nullptr && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    timeval tv{kTimeoutMs / 1000, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      *error = absl::StrCat("cannot connect to ", host, ":", port, ": ", std::strerror(errno));
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(res);
  return fd;
}

bool sendAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

std::string requestText(const etcd::Url& url, const std::string& path, const std::string& body,
                        bool keep_alive) {
  return absl::StrCat("POST ", path, " HTTP/1.1\r\nHost: ", url.host, ":", url.port,
                      "\r\nContent-Type: application/json\r\nContent-Length: ", body.size(),
                      keep_alive ? "\r\n\r\n" : "\r\nConnection: close\r\n\r\n", body);
}

// Decodes as much of a chunked body as `raw` holds into `out`; true once the
// last chunk was read. Consumes what it decoded from `raw`.
bool dechunk(std::string& raw, std::string& out, bool* bad) {
  while (true) {
    const size_t eol = raw.find("\r\n");
    if (eol == std::string::npos) return false;
    std::string size_text(raw.substr(0, eol));
    if (size_t semi = size_text.find(';'); semi != std::string::npos) size_text.resize(semi);
    uint64_t size = 0;
    if (!absl::SimpleHexAtoi(absl::StripAsciiWhitespace(size_text), &size)) {
      *bad = true;
      return false;
    }
    if (size == 0) return true;
    if (raw.size() < eol + 2 + size + 2) return false;
    out.append(raw, eol + 2, size);
    raw.erase(0, eol + 2 + size + 2);
  }
}

}  // namespace

namespace etcd {

absl::StatusOr<Url> parseUrl(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("--store '", str(absl::string_view(text.data(), text.size())),
                                                   "': ", str(absl::string_view(why.data(), why.size())),
                                                   " (etcd://HOST[:PORT][/PREFIX])"));
  };
  absl::string_view rest(text.data(), text.size());
  if (!absl::ConsumePrefix(&rest, "etcd://")) return bad("not an etcd:// URL");
  Url url;
  const size_t slash = rest.find('/');
  absl::string_view hostport = rest.substr(0, slash);
  if (slash != absl::string_view::npos) {
    std::string prefix(rest.substr(slash));
    while (prefix.size() > 1 && prefix.back() == '/') prefix.pop_back();
    if (prefix == "/") return bad("the prefix is empty");
    url.prefix = prefix;
  }
  if (hostport.empty()) return bad("no host");
  absl::string_view port_text;
  if (absl::ConsumePrefix(&hostport, "[")) {
    const size_t close = hostport.find(']');
    if (close == absl::string_view::npos) return bad("an IPv6 host needs its closing bracket");
    absl::string_view after = hostport.substr(close + 1);
    hostport = hostport.substr(0, close);
    if (!after.empty()) {
      if (!absl::ConsumePrefix(&after, ":")) return bad("junk after the IPv6 host");
      port_text = after;
    }
  } else if (const size_t colon = hostport.find(':'); colon != absl::string_view::npos) {
    if (hostport.find(':', colon + 1) != absl::string_view::npos) {
      return bad("write an IPv6 host in brackets");
    }
    port_text = hostport.substr(colon + 1);
    hostport = hostport.substr(0, colon);
  }
  if (!port_text.empty() || (text.find("]:") != std::string_view::npos)) {
    uint32_t port = 0;
    if (!absl::SimpleAtoi(port_text, &port) || port == 0 || port > 65535) {
      return bad("the port must be a number in 1..65535");
    }
    url.port = static_cast<uint16_t>(port);
  }
  if (hostport.empty()) return bad("no host");
  url.host = str(hostport);
  return url;
}

std::string encodeRecord(const StoredResource& r) {
  const std::string expires = r.expires_at == absl::InfiniteFuture()
                                  ? "-"
                                  : std::to_string(absl::ToUnixNanos(r.expires_at));
  return absl::StrCat(r.resource_version, " ", expires, "\n", r.json);
}

absl::StatusOr<StoredResource> decodeRecord(ResourceKind kind, std::string_view name,
                                            std::string_view value) {
  const std::string what = absl::StrCat("stored ", str(absl::string_view(resourceKindName(kind).data(),
                                                                         resourceKindName(kind).size())),
                                        " '", str(absl::string_view(name.data(), name.size())), "'");
  const size_t nl = value.find('\n');
  if (nl == std::string_view::npos) return absl::DataLossError(what + ": no header line");
  std::vector<std::string> head = absl::StrSplit(absl::string_view(value.data(), nl), ' ');
  StoredResource r;
  r.kind = kind;
  r.name = std::string(name);
  if (head.size() != 2 || !absl::SimpleAtoi(head[0], &r.resource_version)) {
    return absl::DataLossError(what + ": bad header line");
  }
  if (head[1] != "-") {
    int64_t ns = 0;
    if (!absl::SimpleAtoi(head[1], &ns)) return absl::DataLossError(what + ": bad expiry");
    r.expires_at = absl::FromUnixNanos(ns);
  }
  r.json = std::string(value.substr(nl + 1));
  return r;
}

std::string txnRequest(const std::string& prefix, const Change& change) {
  const std::string vkey = b64(versionKey(prefix));
  std::string compare;
  if (change.version <= 1) {
    // Version 0 is no version key at all.
    compare = absl::StrCat(R"({"key":")", vkey,
                           R"(","target":"CREATE","result":"EQUAL","create_revision":"0"})");
  } else {
    compare = absl::StrCat(R"({"key":")", vkey, R"(","target":"VALUE","result":"EQUAL","value":")",
                           b64(std::to_string(change.version - 1)), R"("})");
  }
  std::vector<std::string> ops;
  for (const StoredResource& r : change.puts) {
    ops.push_back(absl::StrCat(R"({"request_put":{"key":")", b64(resourceKey(prefix, r.kind, r.name)),
                               R"(","value":")", b64(encodeRecord(r)), R"("}})"));
  }
  for (const auto& [kind, name] : change.deletes) {
    ops.push_back(absl::StrCat(R"({"request_delete_range":{"key":")",
                               b64(resourceKey(prefix, kind, name)), R"("}})"));
  }
  ops.push_back(absl::StrCat(R"({"request_put":{"key":")", vkey, R"(","value":")",
                             b64(std::to_string(change.version)), R"("}})"));
  return absl::StrCat(R"({"compare":[)", compare, R"(],"success":[)", absl::StrJoin(ops, ","), "]}");
}

absl::StatusOr<StoredState> parseRange(const std::string& prefix, std::string_view json,
                                       int64_t* revision) {
  auto s = parseJson(json);
  if (!s.ok()) return s.status();
  if (const Value* h = field(*s, "header"); h != nullptr && h->has_struct_value() && revision) {
    *revision = int64Field(h->struct_value(), "revision");
  }
  StoredState out;
  const std::string vkey = versionKey(prefix);
  const std::string rprefix = resourcePrefix(prefix);
  const Value* kvs = field(*s, "kvs");
  if (kvs == nullptr) return out;  // nothing stored yet
  for (const Value& kv : kvs->list_value().values()) {
    if (!kv.has_struct_value()) continue;
    const Value* k = field(kv.struct_value(), "key");
    const Value* v = field(kv.struct_value(), "value");
    if (k == nullptr) continue;
    const std::string key = unb64(*k);
    const std::string value = v == nullptr ? "" : unb64(*v);
    if (key == vkey) {
      if (!absl::SimpleAtoi(value, &out.version)) {
        return absl::DataLossError(absl::StrCat(vkey, ": not a version: '", value, "'"));
      }
      continue;
    }
    absl::string_view rest(key);
    if (!absl::ConsumePrefix(&rest, rprefix)) continue;  // not ours
    const size_t slash = rest.find('/');
    ResourceKind kind;
    if (slash == absl::string_view::npos ||
        !resourceKindFromName(std::string_view(rest.data(), slash), kind)) {
      return absl::DataLossError(absl::StrCat(key, ": not a resource key"));
    }
    auto r = decodeRecord(kind, std::string_view(rest.data() + slash + 1, rest.size() - slash - 1),
                          value);
    if (!r.ok()) return r.status();
    out.resources.push_back(*std::move(r));
  }
  std::sort(out.resources.begin(), out.resources.end(),
            [](const StoredResource& a, const StoredResource& b) {
              return std::tie(a.kind, a.name) < std::tie(b.kind, b.name);
            });
  return out;
}

}  // namespace etcd

absl::StatusOr<std::unique_ptr<EtcdStore>> EtcdStore::open(const std::string& url,
                                                           absl::Duration wait) {
  auto parsed = etcd::parseUrl(url);
  if (!parsed.ok()) return parsed.status();
  std::unique_ptr<EtcdStore> store(new EtcdStore(*std::move(parsed)));
  const absl::Time end = absl::Now() + wait;
  while (true) {
    auto loaded = store->load();
    if (loaded.ok()) return store;
    if (loaded.status().code() != absl::StatusCode::kUnavailable || absl::Now() >= end) {
      return loaded.status();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

EtcdStore::~EtcdStore() {
  stopping_ = true;
  {
    std::lock_guard<std::mutex> lock(watch_mu_);
    if (watch_fd_ >= 0) shutdown(watch_fd_, SHUT_RDWR);
  }
  if (watcher_.joinable()) watcher_.join();
}

std::string EtcdStore::describe() const {
  return absl::StrCat("etcd://", url_.host, ":", url_.port, url_.prefix);
}

absl::StatusOr<std::string> EtcdStore::post(const std::string& path, const std::string& request) const {
  std::string error;
  const int fd = connectTo(url_.host, url_.port, &error);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("etcd ", describe(), ": ", error));
  std::string raw;
  bool ok = sendAll(fd, requestText(url_, path, request, /*keep_alive=*/false));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kTimeoutMs);
  char buf[16384];
  while (ok) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd p{fd, POLLIN, 0};
    if (left.count() <= 0 || poll(&p, 1, static_cast<int>(left.count())) <= 0) {
      ok = false;
      error = "timed out";
      break;
    }
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0) {
      ok = false;
      error = std::strerror(errno);
    }
    if (n <= 0) break;
    raw.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  if (!ok) return absl::UnavailableError(absl::StrCat("etcd ", describe(), " ", path, ": ", error));
  const size_t head_end = raw.find("\r\n\r\n");
  if (head_end == std::string::npos || raw.compare(0, 9, "HTTP/1.1 ") != 0) {
    return absl::UnavailableError(absl::StrCat("etcd ", describe(), " ", path, ": not an HTTP answer"));
  }
  const std::string head = absl::AsciiStrToLower(raw.substr(0, head_end));
  std::string body = raw.substr(head_end + 4);
  if (head.find("transfer-encoding: chunked") != std::string::npos) {
    std::string decoded;
    bool bad = false;
    if (!dechunk(body, decoded, &bad) || bad) {
      return absl::UnavailableError(absl::StrCat("etcd ", describe(), " ", path, ": bad chunked body"));
    }
    body = std::move(decoded);
  }
  const std::string status = raw.substr(9, 3);
  if (status != "200") {
    return absl::InternalError(absl::StrCat("etcd ", describe(), " ", path, " answered ", status, ": ",
                                            body.substr(0, 300)));
  }
  return body;
}

absl::StatusOr<StoredState> EtcdStore::load() {
  const std::string p = url_.prefix + "/";
  auto body = post("/v3/kv/range",
                   absl::StrCat(R"({"key":")", b64(p), R"(","range_end":")", b64(rangeEnd(p)), R"("})"));
  if (!body.ok()) return body.status();
  int64_t revision = 0;
  auto state = etcd::parseRange(url_.prefix, *body, &revision);
  if (state.ok()) revision_ = revision;
  return state;
}

absl::Status EtcdStore::apply(const Change& change) {
  if (change.puts.empty() && change.deletes.empty()) return absl::OkStatus();  // an empty expiry
  auto body = post("/v3/kv/txn", etcd::txnRequest(url_.prefix, change));
  if (!body.ok()) return body.status();
  auto s = parseJson(*body);
  if (!s.ok()) return s.status();
  const Value* ok = field(*s, "succeeded");
  if (ok == nullptr || !ok->bool_value()) {
    return absl::AbortedError(absl::StrCat("another turnout-cp replica changed ", describe(),
                                           " first (this change would have been version ",
                                           change.version, ")"));
  }
  return absl::OkStatus();
}

void EtcdStore::watch(std::function<void()> changed) {
  watcher_ = std::thread([this, changed = std::move(changed)] { watchLoop(changed); });
}

void EtcdStore::watchLoop(std::function<void()> changed) {
  int64_t next = revision_.load() + 1;
  bool reconnect = false;
  while (!stopping_) {
    std::string error;
    int fd = connectTo(url_.host, url_.port, &error);
    if (fd >= 0) {
      {
        std::lock_guard<std::mutex> lock(watch_mu_);
        if (stopping_) {
          close(fd);
          return;
        }
        watch_fd_ = fd;
      }
      const std::string p = url_.prefix + "/";
      const std::string body =
          absl::StrCat(R"({"create_request":{"key":")", b64(p), R"(","range_end":")", b64(rangeEnd(p)),
                       R"(","start_revision":")", next, R"("}})");
      std::string raw, lines;
      bool head_done = false, bad = false;
      if (sendAll(fd, requestText(url_, "/v3/watch", body, /*keep_alive=*/true))) {
        if (reconnect) changed();  // what happened while we were away
        char buf[16384];
        while (!stopping_) {
          ssize_t n = recv(fd, buf, sizeof buf, 0);
          if (n <= 0) break;
          raw.append(buf, static_cast<size_t>(n));
          if (!head_done) {
            const size_t end = raw.find("\r\n\r\n");
            if (end == std::string::npos) continue;
            head_done = true;
            raw.erase(0, end + 4);
          }
          if (dechunk(raw, lines, &bad) || bad) break;
          size_t nl;
          bool events = false;
          while ((nl = lines.find('\n')) != std::string::npos) {
            const std::string line = lines.substr(0, nl);
            lines.erase(0, nl + 1);
            auto s = parseJson(line);
            if (!s.ok()) continue;
            const Value* result = field(*s, "result");
            if (result == nullptr || !result->has_struct_value()) continue;
            if (const Value* c = field(result->struct_value(), "canceled");
                c != nullptr && c->bool_value()) {
              // Compacted past `next`, or refused: start again from now and reload.
              next = 0;
              bad = true;
              break;
            }
            const Value* evs = field(result->struct_value(), "events");
            if (evs != nullptr && evs->list_value().values_size() > 0) {
              events = true;
              const Value* h = field(result->struct_value(), "header");
              if (h != nullptr && h->has_struct_value()) {
                next = std::max(next, int64Field(h->struct_value(), "revision") + 1);
              }
            }
          }
          if (events) changed();
          if (bad) break;
        }
      }
      {
        std::lock_guard<std::mutex> lock(watch_mu_);
        watch_fd_ = -1;
      }
      close(fd);
    }
    if (stopping_) return;
    TURNOUT_LOG(warn, kLog, "etcd watch on {} lost ({}); reconnecting", describe(),
                error.empty() ? "stream ended" : error);
    reconnect = true;
    for (int i = 0; i < 10 && !stopping_; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

}  // namespace turnout::control_plane
