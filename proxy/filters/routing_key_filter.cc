#include "proxy/filters/routing_key_filter.h"

#include <chrono>
#include <mutex>
#include <string>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "proxy/stats/store.h"
#include "routing/baggage.h"
#include "routing/routing_key.h"
#include "routing/traceparent.h"

namespace turnout::proxy {

std::int64_t RoutingKeyFilter::steadyNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

absl::StatusOr<std::shared_ptr<routing::TraceKeyTable>> processTraceKeyTable(
    std::size_t entries, const std::string& path) {
  // Config time only (never per request): the one table of the process and
  // the lock that guards creating it. The table outlives the mutex's scope
  // through the filters' shared_ptrs; when the last filter goes, a later
  // config may choose another size.
  static std::mutex mu;
  static std::weak_ptr<routing::TraceKeyTable> live;
  std::lock_guard<std::mutex> lock(mu);
  if (auto table = live.lock()) {
    if (table->capacity() == entries) return table;
    return absl::InvalidArgumentError(absl::StrCat(
        path, ".max_entries: ", entries, ", but the process's trace-key table has ",
        table->capacity(), " entries and a listener still uses it; the table is one per process "
        "and cannot be resized while in use (restart turnout to resize it)"));
  }
  auto table = std::make_shared<routing::TraceKeyTable>(entries);
  live = table;
  return table;
}

absl::StatusOr<std::shared_ptr<const RoutingKeyFilter>> RoutingKeyFilter::create(
    config::RoutingKeyFilterConfig config, const std::string& path, NowMs now) {
  std::shared_ptr<routing::TraceKeyTable> table;
  if (config.trace.enabled()) {
    auto t = processTraceKeyTable(config.trace.max_entries,
                                  absl::StrCat(path, ".trace_key_recovery"));
    if (!t.ok()) return t.status();
    table = *std::move(t);
  }
  return std::make_shared<const RoutingKeyFilter>(std::move(config), std::move(table), now);
}

void RoutingKeyFilter::remember(const routing::RequestView& view, std::string_view key,
                                StreamDecoderFilterCallbacks& cb) const {
  const routing::TraceparentParse tp = routing::parseTraceparentHeader(view);
  if (!tp.ok()) return;  // none, or invalid: nothing to remember it by
  const stats::HttpConnManagerStats& stats = cb.hcmStats();
  stats::Shard& shard = cb.shard();
  const std::int64_t now = now_();
  switch (trace_table_->remember(tp.value.trace_id, key, now, now + config_.trace.ttl_ms)) {
    case routing::RememberResult::kInserted:
    case routing::RememberResult::kUpdated:
      shard.inc(stats.routing_key_remembered_for_trace);
      break;
    case routing::RememberResult::kEvicted:
      shard.inc(stats.routing_key_remembered_for_trace);
      shard.inc(stats.routing_key_trace_memory_evicted);
      break;
    case routing::RememberResult::kKeyTooLong:
      shard.inc(stats.routing_key_trace_memory_key_too_long);
      break;
    case routing::RememberResult::kBusy:
      shard.inc(stats.routing_key_trace_memory_busy);
      break;
    case routing::RememberResult::kInvalid:
      break;  // an extracted key is never empty, a parsed trace id never zero
  }
}

bool RoutingKeyFilter::recover(const routing::RequestView& view,
                               StreamDecoderFilterCallbacks& cb) const {
  const routing::TraceparentParse tp = routing::parseTraceparentHeader(view);
  if (!tp.ok()) return false;
  routing::RememberedKey remembered;
  if (!trace_table_->recall(tp.value.trace_id, now_(), config_.trace.ttl_ms, remembered)) {
    return false;
  }
  // A remembered key was valid under the remembering filter's config; this
  // filter's may be stricter.
  const std::string_view key = remembered.view();
  if (!routing::isValidRoutingKey(key, config_.extraction.max_key_length)) return false;

  // The new baggage value is built from views into the header map, so
  // before the map changes. One buffer per worker thread keeps its capacity.
  thread_local std::string baggage;
  absl::InlinedVector<std::string_view, 4> lines;
  view.forEachValue("baggage", [&](std::string_view v) { lines.push_back(v); });
  const bool add_baggage = routing::appendBaggageMember(lines, config_.trace.baggage_member, key,
                                                        baggage) ==
                           routing::BaggageAppend::kAppended;
  RequestHead& head = cb.requestHead();
  head.headers.set(config_.output_header, key);
  if (add_baggage) head.headers.set("baggage", baggage);
  cb.setRoutingKey(key);
  cb.shard().inc(cb.hcmStats().routing_key_recovered_from_trace);
  return true;
}

FilterHeadersStatus RoutingKeyFilter::decodeHeaders(StreamDecoderFilterCallbacks& cb) const {
  const stats::HttpConnManagerStats& stats = cb.hcmStats();
  stats::Shard& shard = cb.shard();
  std::string scratch;
  routing::RequestView view = cb.requestView();
  auto k = routing::extractRoutingKey(view, config_.extraction, scratch);
  if (k.error != routing::KeyError::kNone) {
    shard.inc(stats.routing_key_error[static_cast<size_t>(k.error)]);
  }
  RequestHead& head = cb.requestHead();
  if (k.found()) {
    // The view is still the request as received: remember first.
    if (config_.trace.remember) remember(view, k.key, cb);
    // `k.key` may view the header about to be replaced: copy it first.
    const std::string key(k.key);
    shard.inc(stats.routing_key_found);
    head.headers.set(config_.output_header, key);
    cb.setRoutingKey(key);
  } else if (config_.trace.recover && recover(view, cb)) {
    // recover() wrote the key.
  } else {
    shard.inc(stats.routing_key_missing);
    head.headers.remove(config_.output_header);
    cb.setRoutingKey({});
  }
  return FilterHeadersStatus::Continue;
}

}  // namespace turnout::proxy
