#include "proxy/filters/grpc_stats_filter.h"

#include <algorithm>
#include <utility>

#include "proxy/stream/local_reply.h"

namespace turnout::proxy {
namespace {

// Envoy's Grpc::Common::resolveServiceAndMethod: the path without its query,
// split on '/' with empty segments dropped; a service path has exactly two.
bool splitServicePath(std::string_view path, std::string_view& service, std::string_view& method) {
  path = path.substr(0, path.find('?'));
  std::string_view parts[2];
  int tokens = 0;
  size_t i = 0;
  while (i < path.size()) {
    if (path[i] == '/') {
      ++i;
      continue;
    }
    const size_t end = std::min(path.find('/', i), path.size());
    if (tokens == 2) return false;
    parts[tokens++] = path.substr(i, end - i);
    i = end;
  }
  if (tokens != 2) return false;
  service = parts[0];
  method = parts[1];
  return true;
}

bool statNameSafe(std::string_view segment) {
  return segment.size() <= GrpcStatsFilterConfig::kMaxMethodNameLength &&
         std::all_of(segment.begin(), segment.end(), [](char c) { return c > ' ' && c < 0x7f; });
}

}  // namespace

bool isGrpcServicePath(std::string_view path) {
  std::string_view service, method;
  return splitServicePath(path, service, method);
}

std::optional<std::string_view> GrpcStatsFilterConfig::methodStatName(
    std::string_view path, MethodNameBuffer& buffer) const {
  if (!all_methods && allowlist.empty()) return std::nullopt;
  std::string_view service, method;
  if (!splitServicePath(path, service, method)) return std::nullopt;
  if (!statNameSafe(service) || !statNameSafe(method)) return std::nullopt;
  // "<service>/<method>" for the allowlist, then the stat name in place.
  char* out = buffer.data();
  std::copy(service.begin(), service.end(), out);
  out[service.size()] = '/';
  std::copy(method.begin(), method.end(), out + service.size() + 1);
  const std::string_view name(buffer.data(), service.size() + 1 + method.size());
  if (!all_methods && !allowlist.contains(absl::string_view(name.data(), name.size()))) {
    return std::nullopt;
  }
  out[service.size()] = '.';
  if (all_methods && replace_dots) std::replace(out, out + service.size(), '.', '_');
  return name;
}

GrpcMethodStatsSharedPtr requestGrpcMethodStats(stats::Store& store, Mailbox& worker,
                                                std::string prefix) {
  auto entry = std::make_shared<GrpcMethodStats>();
  entry->prefix = std::move(prefix);
  entry->store = &store;
  // The entry's prefix is read on the main thread: it is not written again.
  store.runOnMainThread([&store, &worker, entry] {
    stats::ScopeRef scope = store.scope(entry->prefix, stats::grpcMethodStatSchema());
    worker.post([entry, scope = std::move(scope)]() mutable {
      entry->ids = stats::grpcMethodStats(scope);
      entry->scope = std::move(scope);
      entry->ready = true;
    });
  });
  return entry;
}

void PendingGrpcCharges::inc(stats::StatId offset, uint64_t n) {
  for (Charge& c : charges_) {
    if (!c.histogram && c.offset == offset.index) {
      c.value += n;
      return;
    }
  }
  charges_.push_back(Charge{offset.index, false, n});
}

void PendingGrpcCharges::record(stats::StatId offset, uint64_t value_ms) {
  charges_.push_back(Charge{offset.index, true, value_ms});
}

void PendingGrpcCharges::replay(stats::Shard& shard, const stats::ScopeRef& scope) {
  for (const Charge& c : charges_) {
    if (c.histogram) {
      shard.record(scope.at(c.offset), c.value);
    } else {
      shard.inc(scope.at(c.offset), c.value);
    }
  }
  charges_.clear();
}

GrpcStatsTracker::~GrpcStatsTracker() {
  if (pending_.empty()) return;
  if (method_->ready) {
    pending_.replay(shard_, method_->scope);
    return;
  }
  // The main thread registered this scope (or will, first: the request was
  // posted before) and hands it to the worker; registering it again finds it.
  stats::Store* store = method_->store;
  store->runOnMainThread([store, method = method_, pending = std::move(pending_)]() mutable {
    const stats::ScopeRef scope = store->scope(method->prefix, stats::grpcMethodStatSchema());
    pending.replay(store->mainShard(), scope);
  });
}

template <class F>
void GrpcStatsTracker::charge(F&& fn) {
  if (method_ == nullptr) {
    fn(shard_, stats_);
  } else if (method_->ready) {
    if (!pending_.empty()) pending_.replay(shard_, method_->scope);
    fn(shard_, method_->ids);
  } else {
    fn(pending_, stats::grpcMethodStatOffsets());
  }
}

void GrpcStatsTracker::onRequestData(std::span<const char> data) {
  if (const uint64_t n = request_frames_.inspect(data); n > 0) {
    charge([n](auto& sink, const stats::GrpcClusterStats& ids) {
      sink.inc(ids.request_message_count, n);
    });
  }
}

void GrpcStatsTracker::onResponseHeaders(uint16_t status, const HeaderMap& headers,
                                         bool end_stream) {
  // Envoy's Grpc::Common::isGrpcResponseHeader.
  grpc_response_ = !end_stream && status == 200 &&
                   isGrpcContentType(headers.get("content-type"));
  chargeStatus(headers);
}

void GrpcStatsTracker::onResponseData(std::span<const char> data) {
  if (!grpc_response_) return;
  if (const uint64_t n = response_frames_.inspect(data); n > 0) {
    charge([n](auto& sink, const stats::GrpcClusterStats& ids) {
      sink.inc(ids.response_message_count, n);
    });
  }
}

void GrpcStatsTracker::onResponseTrailers(const HeaderMap& trailers) { chargeStatus(trailers); }

void GrpcStatsTracker::onUpstreamComplete(std::chrono::milliseconds elapsed) {
  if (!config_.upstream_stats) return;
  const auto ms = static_cast<uint64_t>(elapsed.count());
  charge([ms](auto& sink, const stats::GrpcClusterStats& ids) {
    sink.record(ids.upstream_rq_time, ms);
  });
}

void GrpcStatsTracker::chargeStatus(const HeaderMap& headers) {
  const std::string_view status = headers.get("grpc-status");
  if (status.data() == nullptr) return;
  charge(
      [status](auto& sink, const stats::GrpcClusterStats& ids) { ids.chargeStatus(sink, status); });
}

}  // namespace turnout::proxy
