#include "config/control_plane/state.h"

#include <algorithm>
#include <atomic>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "config/control_plane/sidecar.h"

namespace turnout::control_plane {
namespace {

std::string str(std::string_view s) { return std::string(s); }

// Lists at most a few names in a conflict message.
std::string someNames(const std::vector<std::string>& names) {
  constexpr size_t kShown = 5;
  std::vector<std::string> shown(names.begin(),
                                 names.begin() + static_cast<long>(std::min(kShown, names.size())));
  std::string out = absl::StrCat("'", absl::StrJoin(shown, "', '"), "'");
  if (names.size() > kShown) absl::StrAppend(&out, " and ", names.size() - kShown, " more");
  return out;
}

// Journal epochs and revisions: one counter for every State in the process,
// so that neither is ever reused (a State put back from a copy, a second
// State, a restored one).
uint64_t nextJournalNumber() {
  static std::atomic<uint64_t> next{0};
  return ++next;
}

// Past this many listed changes the list starts again: a reader that fell
// that far behind makes everything, as after restartJournal().
constexpr size_t kMaxJournalEntries = 8192;

}  // namespace

std::string_view resourceKindName(ResourceKind kind) {
  switch (kind) {
    case ResourceKind::kService: return "service";
    case ResourceKind::kSandbox: return "sandbox";
    case ResourceKind::kRelease: return "release";
  }
  return "resource";
}

bool resourceKindFromName(std::string_view name, ResourceKind& out) {
  for (ResourceKind k : {ResourceKind::kService, ResourceKind::kSandbox, ResourceKind::kRelease}) {
    if (resourceKindName(k) == name) {
      out = k;
      return true;
    }
  }
  return false;
}

std::string etagFor(uint64_t resource_version) {
  return absl::StrCat("\"", resource_version, "\"");
}

void State::restartJournal() {
  ModelJournal& j = model_.journal;
  j.epoch = nextJournalNumber();
  j.revision = j.epoch;
  j.complete_since = j.revision;
  j.services.clear();
  j.forks.clear();
  for (const auto& [key, sandbox] : model_.sandboxes) {
    for (const auto& [service, endpoints] : sandbox.forks) j.forks[service].insert(key);
  }
}

void State::journalService(const std::string& service) {
  ModelJournal& j = model_.journal;
  j.revision = nextJournalNumber();
  if (j.services.size() >= kMaxJournalEntries) {
    j.services.clear();
    j.complete_since = j.revision - 1;  // this change is listed below
  }
  j.services.emplace_back(j.revision, service);
}

std::vector<std::string> State::forkedServices(const Sandbox& sandbox) {
  std::vector<std::string> out;
  out.reserve(sandbox.forks.size());
  for (const auto& [service, endpoints] : sandbox.forks) out.push_back(service);
  return out;
}

void State::journalSandbox(const std::string& key, const std::vector<std::string>& before,
                           const Sandbox* after) {
  auto& forks = model_.journal.forks;
  for (const std::string& service : before) {
    auto it = forks.find(service);
    if (it != forks.end()) {
      it->second.erase(key);
      if (it->second.empty()) forks.erase(it);
    }
    journalService(service);
  }
  if (after == nullptr) return;
  for (const auto& [service, endpoints] : after->forks) {
    forks[service].insert(key);
    journalService(service);
  }
}

std::map<std::string, uint64_t>& State::versionsOf(ResourceKind kind) {
  switch (kind) {
    case ResourceKind::kService: return service_versions_;
    case ResourceKind::kSandbox: return sandbox_versions_;
    case ResourceKind::kRelease: break;
  }
  return release_versions_;
}
const std::map<std::string, uint64_t>& State::versionsOf(ResourceKind kind) const {
  return const_cast<State*>(this)->versionsOf(kind);
}

std::string State::etag(ResourceKind kind, std::string_view name) const {
  const auto& versions = versionsOf(kind);
  auto it = versions.find(str(name));
  return it == versions.end() ? std::string() : etagFor(it->second);
}

absl::Status State::checkIfMatch(ResourceKind kind, std::string_view name,
                                 const std::optional<std::string_view>& if_match) const {
  if (!if_match.has_value()) return absl::OkStatus();
  const std::string current = etag(kind, name);
  const std::string what = absl::StrCat(str(resourceKindName(kind)), " '", str(name), "'");
  if (current.empty()) {
    return preconditionFailedError(absl::StrCat("If-Match: ", what, " does not exist"));
  }
  for (absl::string_view tag : absl::StrSplit(absl::string_view(if_match->data(), if_match->size()),
                                              ',')) {
    tag = absl::StripAsciiWhitespace(tag);
    if (tag == "*" || tag == current) return absl::OkStatus();
  }
  return preconditionFailedError(absl::StrCat("If-Match: ", what, " is at ETag ", current,
                                              ", not ", str(*if_match),
                                              " (it changed; read it again)"));
}

MutationResult State::commitPut(ResourceKind kind, const std::string& name, std::string json,
                                absl::Time expires_at) {
  ++version_;
  versionsOf(kind)[name] = version_;
  MutationResult out;
  out.version = version_;
  out.etag = etagFor(version_);
  out.change.version = version_;
  out.change.puts.push_back({kind, name, std::move(json), version_, expires_at});
  return out;
}

MutationResult State::commitDelete(ResourceKind kind, const std::string& name) {
  ++version_;
  versionsOf(kind).erase(name);
  MutationResult out;
  out.version = version_;
  out.change.version = version_;
  out.change.deletes.emplace_back(kind, name);
  return out;
}

State::Checkpoint State::checkpoint(ResourceKind kind, std::string_view name) const {
  Checkpoint c;
  c.kind = kind;
  c.name = str(name);
  c.version = version_;
  const auto& versions = versionsOf(kind);
  if (auto v = versions.find(c.name); v != versions.end()) c.resource_version = v->second;
  switch (kind) {
    case ResourceKind::kService:
      if (auto it = model_.services.find(c.name); it != model_.services.end()) c.service = it->second;
      break;
    case ResourceKind::kSandbox:
      if (auto it = model_.sandboxes.find(c.name); it != model_.sandboxes.end()) c.sandbox = it->second;
      break;
    case ResourceKind::kRelease:
      if (auto it = model_.releases.find(c.name); it != model_.releases.end()) c.release = it->second;
      break;
  }
  return c;
}

void State::rollback(const Checkpoint& c) {
  version_ = c.version;
  auto& versions = versionsOf(c.kind);
  if (c.resource_version) {
    versions[c.name] = *c.resource_version;
  } else {
    versions.erase(c.name);
  }
  auto restore = [&](auto& map, const auto& value) {
    if (value) {
      map.insert_or_assign(c.name, *value);
    } else {
      map.erase(c.name);
    }
  };
  switch (c.kind) {
    case ResourceKind::kService:
      restore(model_.services, c.service);
      journalService(c.name);
      break;
    case ResourceKind::kSandbox: {
      std::vector<std::string> before;
      if (auto it = model_.sandboxes.find(c.name); it != model_.sandboxes.end()) {
        before = forkedServices(it->second);
      }
      restore(model_.sandboxes, c.sandbox);
      journalSandbox(c.name, before, c.sandbox ? &*c.sandbox : nullptr);
      next_expiry_.reset();
      break;
    }
    case ResourceKind::kRelease:
      restore(model_.releases, c.release);
      journalService(c.name);
      break;
  }
}

// ---- reads ------------------------------------------------------------------------------

absl::StatusOr<Versioned<Service>> State::service(std::string_view name) const {
  auto it = model_.services.find(str(name));
  if (it == model_.services.end()) {
    return notFoundError(absl::StrCat("service '", str(name), "' does not exist"));
  }
  return Versioned<Service>{&it->second, etag(ResourceKind::kService, name)};
}

absl::StatusOr<Versioned<Sandbox>> State::sandbox(std::string_view key) const {
  auto it = model_.sandboxes.find(str(key));
  if (it == model_.sandboxes.end()) {
    return notFoundError(absl::StrCat("sandbox '", str(key), "' does not exist"));
  }
  return Versioned<Sandbox>{&it->second, etag(ResourceKind::kSandbox, key)};
}

absl::StatusOr<Versioned<Release>> State::release(std::string_view service) const {
  auto it = model_.releases.find(str(service));
  if (it == model_.releases.end()) {
    return notFoundError(absl::StrCat("service '", str(service), "' has no release"));
  }
  return Versioned<Release>{&it->second, etag(ResourceKind::kRelease, service)};
}

// ---- services -------------------------------------------------------------------------

absl::StatusOr<MutationResult> State::putService(std::string_view name, std::string_view json,
                                                 std::optional<std::string_view> if_match) {
  auto service = parseService(name, json);
  if (!service.ok()) return service.status();
  return putService(*std::move(service), if_match);
}

absl::StatusOr<MutationResult> State::putService(Service service,
                                                 std::optional<std::string_view> if_match) {
  // A typed put gets the same validation as a body: through its JSON.
  auto checked = parseService(service.name, toJson(service));
  if (!checked.ok()) return checked.status();
  service = *std::move(checked);
  // Checked on a put only: a service stored before the check still loads.
  if (auto s = reservedServicePort("port", service.port); !s.ok()) return s;
  if (auto s = checkIfMatch(ResourceKind::kService, service.name, if_match); !s.ok()) return s;
  const std::string name = service.name;
  std::string json = toJson(service);
  model_.services[name] = std::move(service);
  journalService(name);
  return commitPut(ResourceKind::kService, name, std::move(json), absl::InfiniteFuture());
}

absl::StatusOr<MutationResult> State::deleteService(std::string_view name,
                                                    std::optional<std::string_view> if_match) {
  if (auto s = checkIfMatch(ResourceKind::kService, name, if_match); !s.ok()) return s;
  auto it = model_.services.find(str(name));
  if (it == model_.services.end()) {
    return notFoundError(absl::StrCat("service '", str(name), "' does not exist"));
  }
  std::vector<std::string> forked_by;
  if (auto f = model_.journal.forks.find(it->first); f != model_.journal.forks.end()) {
    forked_by.assign(f->second.begin(), f->second.end());
  }
  if (!forked_by.empty()) {
    return conflictError(absl::StrCat("service '", str(name), "' is forked by sandbox",
                                      forked_by.size() > 1 ? "es " : " ", someNames(forked_by),
                                      "; delete them or their forks first"));
  }
  if (model_.releases.count(it->first) != 0) {
    return conflictError(absl::StrCat("service '", str(name),
                                      "' has a release; delete the release first"));
  }
  const std::string key = it->first;
  model_.services.erase(it);
  journalService(key);
  return commitDelete(ResourceKind::kService, key);
}

// ---- sandboxes ------------------------------------------------------------------------

absl::StatusOr<MutationResult> State::putSandbox(std::string_view key, std::string_view json,
                                                 absl::Time now,
                                                 std::optional<std::string_view> if_match) {
  auto sandbox = parseSandbox(key, json);
  if (!sandbox.ok()) return sandbox.status();
  return putSandbox(*std::move(sandbox), now, if_match);
}

absl::StatusOr<MutationResult> State::putSandbox(Sandbox sandbox, absl::Time now,
                                                 std::optional<std::string_view> if_match) {
  auto checked = parseSandbox(sandbox.key, toJson(sandbox));
  if (!checked.ok()) return checked.status();
  sandbox = *std::move(checked);
  if (auto s = checkIfMatch(ResourceKind::kSandbox, sandbox.key, if_match); !s.ok()) return s;
  if (auto s = checkSandboxReferences(model_, sandbox); !s.ok()) return s;
  sandbox.expires_at = sandbox.ttl_duration == absl::InfiniteDuration()
                           ? absl::InfiniteFuture()
                           : now + sandbox.ttl_duration;
  const std::string key = sandbox.key;
  const absl::Time expires_at = sandbox.expires_at;
  std::string json = toJson(sandbox);
  Sandbox& slot = model_.sandboxes[key];
  noteExpiry(slot.key.empty() ? std::nullopt : std::optional<absl::Time>(slot.expires_at),
             expires_at);
  const std::vector<std::string> before = forkedServices(slot);
  slot = std::move(sandbox);
  journalSandbox(key, before, &slot);
  return commitPut(ResourceKind::kSandbox, key, std::move(json), expires_at);
}

absl::StatusOr<MutationResult> State::deleteSandbox(std::string_view key,
                                                    std::optional<std::string_view> if_match) {
  if (auto s = checkIfMatch(ResourceKind::kSandbox, key, if_match); !s.ok()) return s;
  auto it = model_.sandboxes.find(str(key));
  if (it == model_.sandboxes.end()) {
    return notFoundError(absl::StrCat("sandbox '", str(key), "' does not exist"));
  }
  const std::string k = it->first;
  noteExpiry(it->second.expires_at, std::nullopt);
  const std::vector<std::string> before = forkedServices(it->second);
  model_.sandboxes.erase(it);
  journalSandbox(k, before, nullptr);
  return commitDelete(ResourceKind::kSandbox, k);
}

State::Expiry State::expire(absl::Time now) {
  Expiry out;
  for (const auto& [key, sandbox] : model_.sandboxes) {
    if (sandbox.expires_at <= now) out.removed.push_back(key);
  }
  if (out.removed.empty()) {
    out.change.version = version_;
    return out;
  }
  ++version_;
  out.change.version = version_;
  next_expiry_.reset();
  for (const auto& key : out.removed) {
    auto it = model_.sandboxes.find(key);
    const std::vector<std::string> before = forkedServices(it->second);
    model_.sandboxes.erase(it);
    journalSandbox(key, before, nullptr);
    sandbox_versions_.erase(key);
    out.change.deletes.emplace_back(ResourceKind::kSandbox, key);
  }
  return out;
}

absl::Time State::nextExpiry() const {
  if (!next_expiry_) {
    absl::Time next = absl::InfiniteFuture();
    for (const auto& [key, sandbox] : model_.sandboxes) next = std::min(next, sandbox.expires_at);
    next_expiry_ = next;
  }
  return *next_expiry_;
}

void State::noteExpiry(std::optional<absl::Time> before, std::optional<absl::Time> after) {
  if (!next_expiry_) return;  // walked at the next ask
  // The earliest one went (or one as early): walk again when asked.
  if (before && *before != absl::InfiniteFuture() && *before <= *next_expiry_) {
    next_expiry_.reset();
    return;
  }
  if (after) next_expiry_ = std::min(*next_expiry_, *after);
}

// ---- releases -------------------------------------------------------------------------

absl::StatusOr<MutationResult> State::putRelease(std::string_view service, std::string_view json,
                                                 std::optional<std::string_view> if_match) {
  auto release = parseRelease(service, json);
  if (!release.ok()) return release.status();
  return putRelease(*std::move(release), if_match);
}

absl::StatusOr<MutationResult> State::putRelease(Release release,
                                                 std::optional<std::string_view> if_match) {
  auto checked = parseRelease(release.service, toJson(release));
  if (!checked.ok()) return checked.status();
  release = *std::move(checked);
  if (auto s = checkIfMatch(ResourceKind::kRelease, release.service, if_match); !s.ok()) return s;
  if (auto s = checkReleaseReferences(model_, release); !s.ok()) return s;
  const std::string service = release.service;
  std::string json = toJson(release);
  model_.releases[service] = std::move(release);
  journalService(service);
  return commitPut(ResourceKind::kRelease, service, std::move(json), absl::InfiniteFuture());
}

absl::StatusOr<MutationResult> State::deleteRelease(std::string_view service,
                                                    std::optional<std::string_view> if_match) {
  if (auto s = checkIfMatch(ResourceKind::kRelease, service, if_match); !s.ok()) return s;
  auto it = model_.releases.find(str(service));
  if (it == model_.releases.end()) {
    return notFoundError(absl::StrCat("service '", str(service), "' has no release"));
  }
  const std::string name = it->first;
  model_.releases.erase(it);
  journalService(name);
  return commitDelete(ResourceKind::kRelease, name);
}

// ---- store ----------------------------------------------------------------------------

absl::StatusOr<State> State::restore(const StoredState& stored) {
  State state;
  state.version_ = stored.version;
  for (const StoredResource& r : stored.resources) {
    const std::string where =
        absl::StrCat("stored ", str(resourceKindName(r.kind)), " '", r.name, "'");
    auto damaged = [&](const absl::Status& s) {
      return absl::DataLossError(absl::StrCat(where, ": ", s.message()));
    };
    if (r.resource_version == 0 || r.resource_version > stored.version) {
      return absl::DataLossError(absl::StrCat(where, ": resource version ", r.resource_version,
                                              " is outside 1..", stored.version));
    }
    switch (r.kind) {
      case ResourceKind::kService: {
        auto s = parseService(r.name, r.json);
        if (!s.ok()) return damaged(s.status());
        state.model_.services[r.name] = *std::move(s);
        break;
      }
      case ResourceKind::kSandbox: {
        auto s = parseSandbox(r.name, r.json);
        if (!s.ok()) return damaged(s.status());
        s->expires_at = r.expires_at;
        state.model_.sandboxes[r.name] = *std::move(s);
        break;
      }
      case ResourceKind::kRelease: {
        auto s = parseRelease(r.name, r.json);
        if (!s.ok()) return damaged(s.status());
        state.model_.releases[r.name] = *std::move(s);
        break;
      }
    }
    if (!state.versionsOf(r.kind).emplace(r.name, r.resource_version).second) {
      return absl::DataLossError(absl::StrCat(where, ": stored twice"));
    }
  }
  if (auto s = checkReferences(state.model_); !s.ok()) {
    return absl::DataLossError(absl::StrCat("stored state: ", s.message()));
  }
  state.restartJournal();
  return state;
}

StoredState State::stored() const {
  StoredState out;
  out.version = version_;
  for (const auto& [name, s] : model_.services) {
    out.resources.push_back(
        {ResourceKind::kService, name, toJson(s), service_versions_.at(name), absl::InfiniteFuture()});
  }
  for (const auto& [key, s] : model_.sandboxes) {
    out.resources.push_back(
        {ResourceKind::kSandbox, key, toJson(s), sandbox_versions_.at(key), s.expires_at});
  }
  for (const auto& [name, r] : model_.releases) {
    out.resources.push_back({ResourceKind::kRelease, name, toJson(r), release_versions_.at(name),
                             absl::InfiniteFuture()});
  }
  return out;
}

}  // namespace turnout::control_plane
