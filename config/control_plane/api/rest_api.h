#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "config/control_plane/server/proxy_status.h"
#include "config/control_plane/state.h"
#include "config/control_plane/store.h"
#include "proxy/admin/http_service.h"
#include "proxy/common/asio.h"

namespace turnout::control_plane {

using proxy::admin::HttpRequest;
using proxy::admin::HttpResponse;

// turnout-cp's REST/JSON API (docs/control_plane.md, "REST API") on the main
// thread's io_context, served by proxy::admin::HttpService. It owns the State:
// every mutation is applied to the State, written to the store (store.h) in
// one transaction and only then acknowledged with the config version it
// produced, so that what was acknowledged and what is stored never differ:
// - another replica wrote first (a shared store, Aborted): the State is
//   reloaded from the store and the mutation runs once more on it; a second
//   conflict is 409 "config changed by another replica; retry";
// - the store is unreachable (Unavailable): 503, the State goes back to what
//   it was before the mutation;
// - any other store failure: 500, the State is rebuilt from the store.
// A shared store's watch reports other replicas' writes; the State is then
// reloaded here, on the io_context. Sandboxes expire from a timer set at
// State::nextExpiry(). After every change (a mutation, an expiry or a reload)
// `on_change` gets the new State: the ADS server's hook.
class RestApi {
 public:
  struct Options {
    std::string address = "127.0.0.1";
    uint16_t port = 18080;
    std::string address_path;  // --http-address-path: gets "127.0.0.1:PORT"
    size_t max_body_bytes = 1024 * 1024;
  };
  using ChangeCallback = std::function<void(const State&)>;
  using ProxiesCallback = std::function<std::vector<ProxyStatus>()>;
  using Clock = std::function<absl::Time()>;

  // Loads the State from `store` (which must outlive the API), binds and
  // listens; call start() to serve.
  static absl::StatusOr<std::unique_ptr<RestApi>> create(asio::io_context& ioc, Store& store,
                                                         Options options, Clock clock = absl::Now);
  ~RestApi();
  RestApi(const RestApi&) = delete;
  RestApi& operator=(const RestApi&) = delete;

  void setOnChange(ChangeCallback on_change) { on_change_ = std::move(on_change); }
  // GET /v1/proxies; without it the list is empty.
  void setProxies(ProxiesCallback proxies) { proxies_ = std::move(proxies); }

  // Starts serving, the store's watch and the expiry timer (sandboxes already
  // past their TTL go now).
  void start();
  // Stops accepting, closes connections, stops the watch and cancels the timer.
  void stop();
  std::string boundAddress() const { return http_->boundAddress(); }
  const State& state() const { return state_; }

  // Dispatches one request (the HttpService handler; exposed for tests).
  HttpResponse handle(const HttpRequest& request);

 private:
  using Mutation = std::function<absl::StatusOr<MutationResult>(State&)>;

  RestApi(asio::io_context& ioc, Store& store, State state, Clock clock);

  HttpResponse handleResource(const HttpRequest& request, ResourceKind kind, std::string_view name);
  HttpResponse handleList(ResourceKind kind) const;
  HttpResponse handleProxies() const;
  // Runs `mutate` on the State and stores its change (see the class comment).
  HttpResponse commit(const Mutation& mutate, ResourceKind kind, std::string_view name, bool is_put);
  // After a failed store write: State::restore(store.load()).
  void rebuild();
  // State::restore(store.load()) after another writer changed the store; the
  // State stays as it is when that fails. True when it was reloaded.
  bool reload(std::string_view why);
  // The store's watch saw `revision` (posted to the io_context).
  void onStoreChanged(int64_t revision);
  void scheduleExpiry();
  void onExpiryTimer();

  asio::io_context& ioc_;
  Store& store_;
  State state_;
  Clock clock_;
  std::unique_ptr<proxy::admin::HttpService> http_;
  SteadyTimer expiry_timer_;
  ChangeCallback on_change_;
  ProxiesCallback proxies_;
  // The store failed and the State could not be rebuilt from it: every
  // mutation is refused (503) until a restart.
  bool store_broken_ = false;
  bool stopped_ = false;
  // Posted watch callbacks hold a weak_ptr to it: none runs after ~RestApi.
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

// {"error": message, "field": path} with the status httpStatusFor(status)
// (400 errors name their field path, taken from the message).
HttpResponse errorResponse(const absl::Status& status);
HttpResponse errorResponse(unsigned http_status, std::string_view message);

}  // namespace turnout::control_plane
