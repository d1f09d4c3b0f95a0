#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace turnout::control_plane {

// turnout-cp's model: what an operator declares through the REST API, the CLI
// or the store, before any Envoy resource is made from it (generator.h). Plain
// values, validated on the way in; pure, no I/O. docs/control_plane.md has the
// JSON shapes and every rule.
//
// Errors are absl::Status whose code is the error's kind, so that the REST
// layer can map it with httpStatusFor():
//   InvalidArgument    -> 400  the message starts with the field path:
//                             `forks.reviews[0]: 'x' is not host:port`
//   NotFound           -> 404
//   Aborted            -> 409  conflict with other resources (a sandbox forks an
//                             unknown service, a service still forked, ...)
//   FailedPrecondition -> 412  a stale If-Match
// Anything else (Internal: the store) -> 500.

absl::Status invalidArgument(std::string_view path, std::string_view message);
absl::Status conflictError(std::string_view message);
absl::Status notFoundError(std::string_view message);
absl::Status preconditionFailedError(std::string_view message);
// The HTTP status for `status` (200 when OK).
int httpStatusFor(const absl::Status& status);

inline constexpr char kDefaultNamespace[] = "default";
inline constexpr char kHttpProtocol[] = "http";
// Routing keys: 1..40 characters of [A-Za-z0-9._-] (routing::isValidRoutingKey).
// 40, not the proxy's 128, because stock Envoy refuses regexes whose RE2 program
// is larger than 100 (runtime re2.max_program_size.error_level) and the baggage
// matcher of the envoy dialect (generator.h) spends 56 on its grammar.
inline constexpr std::size_t kMaxRoutingKeyLength = 40;
// Envoy's default re2.max_program_size.error_level; user regexes are held to it.
inline constexpr int kMaxRegexProgramSize = 100;
// The longest TTL a sandbox may have.
inline constexpr absl::Duration kMaxTtl = absl::Hours(24 * 366);

// One upstream address: an IPv4 literal, a bracketed IPv6 literal or a DNS name,
// and a port in 1..65535. Written "host:port" ("[::1]:9080" for IPv6).
struct Endpoint {
  std::string host;  // without brackets
  uint32_t port = 0;

  bool isIp() const;
  std::string toString() const;
  bool operator==(const Endpoint&) const = default;
};
using Endpoints = std::vector<Endpoint>;

struct Service {
  std::string name;  // DNS label without "--"
  uint32_t port = 0;
  std::string ns = kDefaultNamespace;  // DNS label
  // The baseline; may be empty (a service only sandboxes run so far).
  Endpoints endpoints;
  // What the service's endpoints speak (its forks' and versions' too), as
  // Istio names ports: "http" (HTTP/1.1, the default), "http2" or "grpc"
  // (HTTP/2 with prior knowledge, h2c). A sidecar opens upstream connections
  // with it; gRPC's own clients speak HTTP/2 whatever it says.
  std::string protocol = kHttpProtocol;

  bool operator==(const Service&) const = default;
  bool isHttp2() const { return protocol != kHttpProtocol; }
};

struct Sandbox {
  std::string key;  // the routing key
  // service -> the fork's endpoints (at least one each); at least one fork.
  std::map<std::string, Endpoints> forks;
  std::map<std::string, std::string> labels;
  // As written ("24h"), empty for no TTL; ttl_duration is its value.
  std::string ttl;
  absl::Duration ttl_duration = absl::InfiniteDuration();
  // Set by State when the sandbox is stored: the time of the put plus the TTL
  // (InfiniteFuture without a TTL).
  absl::Time expires_at = absl::InfiniteFuture();

  bool operator==(const Sandbox&) const = default;
};

struct HeaderMatch {
  enum class Kind { kExact, kPrefix, kRegex, kPresent };
  std::string name;  // lowercase HTTP token
  Kind kind = Kind::kExact;
  std::string value;  // empty for kPresent

  bool operator==(const HeaderMatch&) const = default;
};

// Requests whose headers all match go to `version`.
struct ReleaseMatch {
  std::vector<HeaderMatch> headers;  // sorted by name, at least one
  std::string version;

  bool operator==(const ReleaseMatch&) const = default;
};

// Release routing for one service: named versions, each with its own endpoints
// (cluster `<service>--<version>`), header-match routes to a version, and a
// weighted split across versions (canary; blue/green is 100/0). Header matches
// are tried first, in order, then the weights; without weights the rest goes
// to the service's baseline.
struct Release {
  std::string service;
  std::map<std::string, Endpoints> versions;  // at least one; DNS-label names
  std::map<std::string, uint32_t> weights;    // empty, or summing to 100
  std::vector<ReleaseMatch> matches;

  bool operator==(const Release&) const = default;
};

// Which services' generated config a change to the model may have changed,
// and the sandboxes forking each service: kept by State as it changes the
// model, so that IncrementalGenerator remakes only those services instead of
// walking every sandbox at every change (at 10,000 sandboxes the walks were
// most of turnout-cp's CPU for one). Not part of the model's value: two
// models with the same resources are equal whatever their journals.
struct ModelJournal {
  // Who keeps it (a State, from a process-wide counter); 0: nobody (a model
  // put together by hand), and a reader makes everything at every update.
  uint64_t epoch = 0;
  // The revision of the last change (process-wide, never reused).
  uint64_t revision = 0;
  // Every change after this revision is listed in `services`; a reader that
  // last saw an older one makes everything.
  uint64_t complete_since = 0;
  // (revision, service), in revision order; a service may repeat.
  std::vector<std::pair<uint64_t, std::string>> services;
  // Service name -> the keys of the sandboxes forking it.
  std::map<std::string, std::set<std::string>> forks;

  bool operator==(const ModelJournal&) const { return true; }
};

// Keyed by name / routing key / service name; std::map so that everything made
// from a model (JSON lists, Envoy resources) comes out in one order.
struct Model {
  std::map<std::string, Service> services;
  std::map<std::string, Sandbox> sandboxes;
  std::map<std::string, Release> releases;
  ModelJournal journal;

  bool operator==(const Model&) const = default;
};

// ---- names --------------------------------------------------------------------------

// A service, namespace or version name: an RFC 1123 DNS label (1..63 of
// [a-z0-9-], alphanumeric at both ends). Service and version names may not
// contain "--", the separator of generated cluster names.
absl::Status validateDnsLabel(std::string_view path, std::string_view name);
absl::Status validateServiceName(std::string_view path, std::string_view name);
absl::Status validateRoutingKey(std::string_view path, std::string_view key);
absl::StatusOr<Endpoint> parseEndpoint(std::string_view path, std::string_view text);
// "30m", "24h", "7d", "90s", or a sum of them ("1h30m"); > 0 and <= kMaxTtl.
absl::StatusOr<absl::Duration> parseTtl(std::string_view path, std::string_view text);

// Generated cluster names: `<service>` and `<service>--<key or version>`.
std::string clusterName(std::string_view service);
std::string clusterName(std::string_view service, std::string_view suffix);
// clusterName(service, suffix), appended to `out` (no string of its own).
void appendClusterName(std::string& out, std::string_view service, std::string_view suffix);

// ---- JSON (docs/control_plane.md) ------------------------------------------------------

// Parse one resource body. `name` is the resource's name from the URL; a body
// may repeat it ("name" / "key" / "service") but must then agree. Unknown fields
// are errors. Only this resource is checked; references to other resources are
// State's business (checkReferences).
absl::StatusOr<Service> parseService(std::string_view name, std::string_view json);
// expires_at is left at InfiniteFuture (an "expires_at" in the body is output
// only and ignored, so that GET -> PUT round-trips).
absl::StatusOr<Sandbox> parseSandbox(std::string_view key, std::string_view json);
absl::StatusOr<Release> parseRelease(std::string_view service, std::string_view json);

// Compact JSON, keys in a fixed order; parse(toJson(x)) == x (but expires_at).
std::string toJson(const Service& service);
std::string toJson(const Sandbox& sandbox);
std::string toJson(const Release& release);

// ---- whole-model checks ------------------------------------------------------------

// Conflicts between resources (409): a sandbox forks an unknown service, a
// release for an unknown service, a sandbox key equal to a version name of a
// release of a service it forks (both would be cluster `<service>--<name>`).
absl::Status checkReferences(const Model& model);
// The conflicts `sandbox` would have in `model` (which need not hold it).
absl::Status checkSandboxReferences(const Model& model, const Sandbox& sandbox);
absl::Status checkReleaseReferences(const Model& model, const Release& release);

}  // namespace turnout::control_plane
