#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "config/control_plane/state.h"

namespace turnout::control_plane {

// EtcdStore's pure half: the `--store etcd://` URL, the key layout, the
// requests and answers of etcd's v3 JSON gateway (etcd 3.4: POST /v3/kv/range,
// /v3/kv/txn, /v3/watch; keys and values base64, int64s as JSON strings) and
// the HTTP/1.1 framing of its answers. No I/O; unit-tested without etcd.
//
// Layout under the prefix (default /turnout-cp):
//   <prefix>/version            the config version, decimal
//   <prefix>/r/<kind>/<name>    one resource: {"json":"<its JSON>",
//                               "resource_version":"<n>"[,"expires_at_ns":"<n>"]}
// Every mutation is one txn guarded by the mod_revision of <prefix>/version,
// which every mutation writes: a txn whose guard fails wrote nothing because
// another replica wrote first.

// `etcd://HOST:PORT[/PREFIX]`.
struct EtcdEndpoint {
  std::string host;
  uint16_t port = 0;
  std::string prefix = "/turnout-cp";  // no trailing '/'

  std::string url() const;  // etcd://HOST:PORT/PREFIX
};
absl::StatusOr<EtcdEndpoint> parseEtcdUrl(std::string_view url);

std::string etcdVersionKey(std::string_view prefix);
std::string etcdResourceKey(std::string_view prefix, ResourceKind kind, std::string_view name);
// The range_end that makes [key, end) every key starting with `key`.
std::string etcdPrefixEnd(std::string_view key);

// A resource's value, and back (DataLoss naming `key` when damaged).
std::string encodeEtcdRecord(const StoredResource& resource);
absl::StatusOr<StoredResource> decodeEtcdRecord(std::string_view key, ResourceKind kind,
                                                std::string_view name, std::string_view value);

// POST /v3/kv/range: everything under the prefix, at one revision.
std::string etcdRangeRequest(std::string_view prefix);
struct EtcdSnapshot {
  StoredState state;                 // resources ordered by kind then name
  int64_t revision = 0;              // the store revision it was read at
  int64_t version_mod_revision = 0;  // the guard; 0 when nothing was ever written
};
absl::StatusOr<EtcdSnapshot> parseEtcdRange(std::string_view prefix, std::string_view body);

// POST /v3/kv/txn: if <prefix>/version's mod_revision is still `guard`, the
// change's puts and deletes and the new version; else nothing.
std::string etcdTxnRequest(std::string_view prefix, const Change& change, int64_t guard);
struct EtcdTxnResult {
  bool succeeded = false;
  int64_t revision = 0;  // after a success: the revision the txn wrote
};
absl::StatusOr<EtcdTxnResult> parseEtcdTxn(std::string_view body);

// POST /v3/watch: every change under the prefix from `start_revision`. The
// answer is a stream of JSON messages, one a line.
std::string etcdWatchRequest(std::string_view prefix, int64_t start_revision);
struct EtcdWatchMessage {
  bool created = false;
  bool canceled = false;
  int64_t revision = 0;             // header.revision
  int64_t last_event_revision = 0;  // the highest mod_revision of its events; 0: none
  int64_t compact_revision = 0;     // canceled because start_revision was compacted
  std::string reason;               // canceled or an error: why
};
absl::StatusOr<EtcdWatchMessage> parseEtcdWatchMessage(std::string_view line);

// An error answer's message ({"error": ..., "message": ..., "code": n}), or
// the body itself, shortened.
std::string etcdErrorMessage(std::string_view body);

// HTTP/1.1 framing of an answer.
struct HttpHead {
  unsigned status = 0;
  bool chunked = false;
  std::optional<size_t> content_length;
  size_t size = 0;  // bytes of the head, the blank line included
};
// std::nullopt while the head is incomplete; InvalidArgument when malformed.
absl::StatusOr<std::optional<HttpHead>> parseHttpHead(std::string_view data);

// Decodes a chunked body as it arrives.
class ChunkedDecoder {
 public:
  // Appends the decoded bytes of `in` to `out`. InvalidArgument when malformed.
  absl::Status feed(std::string_view in, std::string& out);
  bool done() const { return state_ == State::kDone; }

 private:
  enum class State { kSize, kData, kDataEnd, kTrailer, kDone };
  State state_ = State::kSize;
  std::string line_;
  size_t remaining_ = 0;
};

// A whole answer read until the server closed: its status and body.
struct HttpAnswer {
  unsigned status = 0;
  std::string body;
};
absl::StatusOr<HttpAnswer> parseHttpAnswer(std::string_view data);

}  // namespace turnout::control_plane
