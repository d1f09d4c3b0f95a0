#include "config/control_plane/api/rest_api.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "config/control_plane/api/dashboard.h"
#include "config/json_string.h"
#include "proxy/common/log.h"

namespace turnout::control_plane {
namespace {

namespace http = beast::http;

constexpr char kJsonType[] = "application/json";
constexpr char kResourceMethods[] = "GET, PUT, DELETE";
constexpr char kReadOnlyMethods[] = "GET";
// A store that failed is retried no sooner than this (expiry timer).
constexpr absl::Duration kStoreRetry = absl::Seconds(1);
// The expiry timer never sleeps longer than this; it re-reads nextExpiry().
constexpr absl::Duration kMaxTimerSleep = absl::Hours(1);

std::string jsonString(std::string_view s) {
  std::string out;
  config::appendJsonString(out, s);
  return out;
}

std::string_view view(beast::string_view s) { return std::string_view(s.data(), s.size()); }
// Debian's abseil has its own string_view: StrCat takes this one.
absl::string_view av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

HttpResponse jsonResponse(unsigned status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.content_type = kJsonType;
  r.body = std::move(body);
  r.body += '\n';
  return r;
}

HttpResponse methodNotAllowed(std::string_view method, std::string_view path, const char* allow) {
  HttpResponse r = errorResponse(405, absl::StrCat("method ", av(method), " is not allowed on ", av(path),
                                                   " (allowed: ", allow, ")"));
  r.headers.emplace_back("Allow", allow);
  return r;
}

// The field path a model error starts with (`forks.reviews[0]: ...`): up to the
// first ": " outside quotes. Empty when the message has none.
std::string fieldOf(std::string_view message) {
  bool in_quotes = false;
  for (size_t i = 0; i + 1 < message.size(); ++i) {
    const char c = message[i];
    if (c == '\\' && in_quotes) {
      ++i;
    } else if (c == '"') {
      in_quotes = !in_quotes;
    } else if (c == ' ' && !in_quotes) {
      return "";  // a sentence, not a path
    } else if (c == ':' && !in_quotes && message[i + 1] == ' ') {
      return std::string(message.substr(0, i));
    }
  }
  return "";
}

// "application/json" or "application/json; charset=utf-8".
bool isJsonContentType(std::string_view content_type) {
  const std::string_view media = content_type.substr(0, content_type.find(';'));
  return absl::AsciiStrToLower(absl::StripAsciiWhitespace(absl::string_view(media.data(), media.size()))) ==
         kJsonType;
}

const char* collectionName(ResourceKind kind) {
  switch (kind) {
    case ResourceKind::kService: return "services";
    case ResourceKind::kSandbox: return "sandboxes";
    case ResourceKind::kRelease: return "releases";
  }
  return "services";
}

std::string timeJson(absl::Time t) {
  return jsonString(absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", t, absl::UTCTimeZone()));
}

std::string proxyJson(const ProxyStatus& p) {
  std::string out = "{\"node_id\":" + jsonString(p.node_id);
  absl::StrAppend(&out, ",\"node_cluster\":", jsonString(p.node_cluster), ",\"user_agent\":", jsonString(p.user_agent),
                  ",\"dialect\":", jsonString(p.dialect), ",\"peer\":", jsonString(p.peer),
                  ",\"connected_at\":", timeJson(p.connected_at), ",\"types\":{");
  bool first = true;
  for (const auto& [type, s] : p.types) {
    if (!first) out += ',';
    first = false;
    absl::StrAppend(&out, jsonString(type), ":{\"sent_version\":", jsonString(s.sent_version),
                    ",\"acked_version\":", jsonString(s.acked_version), ",\"nack_error\":", jsonString(s.nack_error),
                    ",\"pending\":", s.pending ? "true" : "false", "}");
  }
  out += "}}";
  return out;
}

}  // namespace

HttpResponse errorResponse(unsigned http_status, std::string_view message) {
  return jsonResponse(http_status, absl::StrCat("{\"error\":", jsonString(message), "}"));
}

HttpResponse errorResponse(const absl::Status& status) {
  const std::string_view message(status.message().data(), status.message().size());
  std::string body = absl::StrCat("{\"error\":", jsonString(message));
  if (status.code() == absl::StatusCode::kInvalidArgument) {
    if (std::string field = fieldOf(message); !field.empty()) absl::StrAppend(&body, ",\"field\":", jsonString(field));
  }
  body += '}';
  return jsonResponse(static_cast<unsigned>(httpStatusFor(status)), std::move(body));
}

RestApi::RestApi(asio::io_context& ioc, Store& store, State state, Clock clock)
    : ioc_(ioc), store_(store), state_(std::move(state)), clock_(std::move(clock)), expiry_timer_(ioc) {}

RestApi::~RestApi() { stop(); }

absl::StatusOr<std::unique_ptr<RestApi>> RestApi::create(asio::io_context& ioc, Store& store, Options options,
                                                         Clock clock) {
  auto stored = store.load();
  if (!stored.ok()) return stored.status();
  auto state = State::restore(*stored);
  if (!state.ok()) {
    return absl::Status(state.status().code(),
                        absl::StrCat(store.describe(), ": ", state.status().message()));
  }
  std::unique_ptr<RestApi> api(new RestApi(ioc, store, std::move(*state), std::move(clock)));
  proxy::admin::HttpService::Options http;
  http.address = std::move(options.address);
  http.port = options.port;
  http.address_path = std::move(options.address_path);
  http.max_request_body_bytes = options.max_body_bytes;
  http.address_name = "--http-address";
  http.address_path_name = "--http-address-path";
  http.log_component = "api";
  RestApi* self = api.get();
  auto service = proxy::admin::HttpService::create(
      ioc, std::move(http), [self](const HttpRequest& request) { return self->handle(request); },
      [](unsigned status, std::string_view message) { return errorResponse(status, message); });
  if (!service.ok()) return service.status();
  api->http_ = std::move(*service);
  return api;
}

void RestApi::start() {
  http_->start();
  std::weak_ptr<int> alive = alive_;
  store_.watch([this, alive, &ioc = ioc_](int64_t revision) {
    // The store's thread: hand the revision to the io_context.
    asio::post(ioc, [this, alive, revision] {
      if (!alive.expired()) onStoreChanged(revision);
    });
  });
  scheduleExpiry();
}

void RestApi::stop() {
  if (stopped_) return;
  stopped_ = true;
  store_.unwatch();
  if (http_) http_->stop();
  expiry_timer_.cancel();
}

HttpResponse RestApi::handle(const HttpRequest& request) {
  const std::string_view method = view(request.method_string());
  const std::string_view target = view(request.target());
  const size_t q = target.find('?');
  const std::string_view path = target.substr(0, q);
  if (q != std::string_view::npos) {
    return errorResponse(400, absl::StrCat(av(path), ": query parameters are not supported"));
  }
  if (auto page = dashboardResponse(method, path)) return *std::move(page);
  auto readOnly = [&](auto&& answer) -> HttpResponse {
    if (method != "GET") return methodNotAllowed(method, path, kReadOnlyMethods);
    return answer();
  };
  if (path == "/healthz") {
    return readOnly([&] {
      if (store_broken_) return errorResponse(503, "the store failed; restart turnout-cp");
      return jsonResponse(200, "{\"status\":\"ok\"}");
    });
  }
  if (path == "/v1/version") {
    return readOnly([&] {
      HttpResponse r = jsonResponse(200, absl::StrCat("{\"version\":", state_.version(),
                                                      ",\"etag\":", jsonString(etagFor(state_.version())), "}"));
      r.headers.emplace_back("ETag", etagFor(state_.version()));
      return r;
    });
  }
  if (path == "/v1/proxies") return readOnly([&] { return handleProxies(); });
  for (ResourceKind kind : {ResourceKind::kService, ResourceKind::kSandbox, ResourceKind::kRelease}) {
    const std::string collection = absl::StrCat("/v1/", collectionName(kind));
    if (path == collection) return readOnly([&] { return handleList(kind); });
    if (path.size() > collection.size() + 1 && path.substr(0, collection.size() + 1) == collection + "/") {
      const std::string_view name = path.substr(collection.size() + 1);
      if (name.find('/') != std::string_view::npos) break;
      return handleResource(request, kind, name);
    }
  }
  return errorResponse(404, absl::StrCat("no such endpoint: ", av(path),
                                         " (endpoints: /v1/services[/NAME], /v1/sandboxes[/KEY], "
                                         "/v1/releases[/SERVICE], /v1/proxies, /v1/version, /healthz, /dashboard/)"));
}

HttpResponse RestApi::handleResource(const HttpRequest& request, ResourceKind kind, std::string_view name) {
  const std::string_view method = view(request.method_string());
  const std::string_view path = view(request.target());
  std::optional<std::string_view> if_match;
  if (auto it = request.find(http::field::if_match); it != request.end()) if_match = view(it->value());

  if (method == "GET") {
    auto answer = [&](const auto& got) -> HttpResponse {
      if (!got.ok()) return errorResponse(got.status());
      HttpResponse r = jsonResponse(200, toJson(*got->value));
      r.headers.emplace_back("ETag", got->etag);
      return r;
    };
    switch (kind) {
      case ResourceKind::kService: return answer(state_.service(name));
      case ResourceKind::kSandbox: return answer(state_.sandbox(name));
      case ResourceKind::kRelease: return answer(state_.release(name));
    }
  }
  if (method != "PUT" && method != "DELETE") return methodNotAllowed(method, path, kResourceMethods);
  if (store_broken_) return errorResponse(503, "the store failed; restart turnout-cp");
  if (method == "DELETE") {
    switch (kind) {
      case ResourceKind::kService:
        return commit([&](State& s) { return s.deleteService(name, if_match); }, kind, name, false);
      case ResourceKind::kSandbox:
        return commit([&](State& s) { return s.deleteSandbox(name, if_match); }, kind, name, false);
      case ResourceKind::kRelease:
        return commit([&](State& s) { return s.deleteRelease(name, if_match); }, kind, name, false);
    }
  }
  const auto content_type = request.find(http::field::content_type);
  if (content_type == request.end() || !isJsonContentType(view(content_type->value()))) {
    return errorResponse(415, absl::StrCat("PUT needs Content-Type: application/json, got '",
                                           content_type == request.end() ? "" : av(view(content_type->value())),
                                           "'"));
  }
  const std::string& body = request.body();
  switch (kind) {
    case ResourceKind::kService:
      return commit([&](State& s) { return s.putService(name, body, if_match); }, kind, name, true);
    case ResourceKind::kSandbox:
      return commit([&](State& s) { return s.putSandbox(name, body, clock_(), if_match); }, kind, name, true);
    case ResourceKind::kRelease:
      return commit([&](State& s) { return s.putRelease(name, body, if_match); }, kind, name, true);
  }
  return errorResponse(500, "unreachable");
}

HttpResponse RestApi::handleList(ResourceKind kind) const {
  std::vector<std::string> items;
  const Model& model = state_.model();
  switch (kind) {
    case ResourceKind::kService:
      for (const auto& [name, service] : model.services) items.push_back(toJson(service));
      break;
    case ResourceKind::kSandbox:
      for (const auto& [key, sandbox] : model.sandboxes) items.push_back(toJson(sandbox));
      break;
    case ResourceKind::kRelease:
      for (const auto& [name, release] : model.releases) items.push_back(toJson(release));
      break;
  }
  HttpResponse r = jsonResponse(200, absl::StrCat("{\"version\":", state_.version(), ",\"", collectionName(kind),
                                                  "\":[", absl::StrJoin(items, ","), "]}"));
  r.headers.emplace_back("ETag", etagFor(state_.version()));
  return r;
}

HttpResponse RestApi::handleProxies() const {
  std::vector<std::string> items;
  if (proxies_) {
    for (const ProxyStatus& p : proxies_()) items.push_back(proxyJson(p));
  }
  return jsonResponse(200, absl::StrCat("{\"version\":", state_.version(), ",\"proxies\":[",
                                        absl::StrJoin(items, ","), "]}"));
}

HttpResponse RestApi::commit(const Mutation& mutate, ResourceKind kind, std::string_view name, bool is_put) {
  // A conflict with another replica reloads and runs the mutation once more.
  for (int attempt = 0;; ++attempt) {
    const bool created = is_put && state_.etag(kind, name).empty();
    const State::Checkpoint before = state_.checkpoint(kind, name);
    absl::StatusOr<MutationResult> result = mutate(state_);
    if (!result.ok()) return errorResponse(result.status());
    absl::Status stored = store_.apply(result->change);
    if (stored.ok()) {
      scheduleExpiry();
      if (on_change_) on_change_(state_);
      std::string body = absl::StrCat("{\"version\":", result->version);
      if (!result->etag.empty()) absl::StrAppend(&body, ",\"etag\":", jsonString(result->etag));
      body += '}';
      HttpResponse r = jsonResponse(created ? 201 : 200, std::move(body));
      if (!result->etag.empty()) r.headers.emplace_back("ETag", result->etag);
      return r;
    }
    if (stored.code() == absl::StatusCode::kAborted) {
      state_.rollback(before);
      if (!reload("another replica wrote first")) {
        return errorResponse(503, absl::StrCat("config changed by another replica and the store cannot be read "
                                               "back; retry"));
      }
      if (attempt == 0) continue;
      return errorResponse(409, "config changed by another replica; retry");
    }
    if (stored.code() == absl::StatusCode::kUnavailable) {
      TURNOUT_LOG(warn, "api", "store write of config version {} failed: {}", result->version, stored.ToString());
      state_.rollback(before);
      return errorResponse(503, absl::StrCat("the store is unavailable; nothing changed: ", stored.message()));
    }
    TURNOUT_LOG(err, "api", "store write of config version {} failed: {}", result->version, stored.ToString());
    rebuild();
    return errorResponse(500, absl::StrCat("the change was not stored: ", stored.message()));
  }
}

void RestApi::rebuild() {
  auto stored = store_.load();
  absl::StatusOr<State> state = stored.ok() ? State::restore(*stored) : absl::StatusOr<State>(stored.status());
  if (!state.ok()) {
    TURNOUT_LOG(critical, "api", "cannot rebuild the state from the store ({}); refusing mutations",
                state.status().ToString());
    store_broken_ = true;
    return;
  }
  state_ = std::move(*state);
  scheduleExpiry();
}

bool RestApi::reload(std::string_view why) {
  auto stored = store_.load();
  absl::StatusOr<State> state = stored.ok() ? State::restore(*stored) : absl::StatusOr<State>(stored.status());
  if (!state.ok()) {
    TURNOUT_LOG(err, "api", "cannot reload the state from {} ({}): {}; keeping config version {}",
                store_.describe(), why, state.status().ToString(), state_.version());
    return false;
  }
  const uint64_t old_version = state_.version();
  state_ = std::move(*state);
  TURNOUT_LOG(info, "api", "reloaded from {} ({}): config version {} -> {}", store_.describe(), why, old_version,
              state_.version());
  scheduleExpiry();
  if (on_change_) on_change_(state_);
  return true;
}

void RestApi::onStoreChanged(int64_t revision) {
  if (stopped_ || store_broken_ || !store_.isNewer(revision)) return;
  reload(revision < 0 ? "the store's watch reconnected" : "another replica wrote");
}

void RestApi::scheduleExpiry() {
  if (stopped_) return;
  const absl::Time next = state_.nextExpiry();
  if (next == absl::InfiniteFuture()) {
    expiry_timer_.cancel();
    return;
  }
  const absl::Duration delay = std::clamp(next - clock_(), absl::ZeroDuration(), kMaxTimerSleep);
  // expires_after cancels a pending wait; its handler sees operation_aborted.
  expiry_timer_.expires_after(absl::ToChronoMilliseconds(delay) + std::chrono::milliseconds(1));
  expiry_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) onExpiryTimer();
  });
}

void RestApi::onExpiryTimer() {
  if (stopped_ || store_broken_) return;
  State before = state_;
  State::Expiry expiry = state_.expire(clock_());
  if (!expiry.removed.empty()) {
    if (absl::Status stored = store_.apply(expiry.change); !stored.ok()) {
      if (stored.code() == absl::StatusCode::kAborted) {
        TURNOUT_LOG(info, "api", "the expiry of {} met another replica's write; reloading",
                    absl::StrJoin(expiry.removed, ", "));
      } else {
        TURNOUT_LOG(err, "api", "store write of the expiry of {} failed: {}", absl::StrJoin(expiry.removed, ", "),
                    stored.ToString());
      }
      if (stored.code() == absl::StatusCode::kAborted) {
        // Another replica wrote (maybe this very expiry): start again from its state.
        state_ = std::move(before);
        state_.restartJournal();  // its journal does not say the expiry was taken back
        if (reload("another replica wrote first")) return;  // reload() re-arms the timer
      } else if (stored.code() == absl::StatusCode::kUnavailable) {
        state_ = std::move(before);
        state_.restartJournal();
      } else {
        rebuild();
      }
      if (store_broken_) return;
      expiry_timer_.expires_after(absl::ToChronoMilliseconds(kStoreRetry));
      expiry_timer_.async_wait([this](const boost::system::error_code& ec) {
        if (!ec) onExpiryTimer();
      });
      return;
    }
    TURNOUT_LOG(info, "api", "sandboxes expired: {} (config version {})", absl::StrJoin(expiry.removed, ", "),
                expiry.change.version);
    if (on_change_) on_change_(state_);
  }
  scheduleExpiry();
}

}  // namespace turnout::control_plane
