#pragma once

#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"

namespace turnout::config {

// Fail closed: every field a config sets is either honoured by turnout, or a
// documented no-op, or rejected with its field path and the reason. The policy is
// an allowlist per message, so a field added to an Envoy proto in future is
// rejected until someone decides what turnout does with it.
//
// docs/envoy-compatibility.md lists every supported field with the test that
// proves its behaviour; tests/unit/config/field_policy_test.cc keeps the two in
// step.
//
// Stateless; the table is built once and never changes. Safe from any thread.

// Value rules for fields that are supported with some values only (an enum value
// turnout does not implement, a oneof member). `path` names the message.
using FieldValueCheck = absl::Status (*)(const google::protobuf::Message& message,
                                         absl::string_view path);

struct MessagePolicy {
  // Honoured: the walker descends into them.
  std::vector<absl::string_view> supported;
  // Accepted with no effect in turnout, as documented (stats-only knobs, labels,
  // config for filters turnout does not run). Never descended.
  std::vector<absl::string_view> inert;
  // Rejected fields with a specific reason; any other set field gets a generic one.
  std::vector<std::pair<absl::string_view, absl::string_view>> reasons;
  FieldValueCheck check = nullptr;
};

// Keys are message full names, or the full name of the field a message is
// reached through (`envoy.config.cluster.v3.Cluster.common_http_protocol_options`),
// which wins over the message's own entry: the same message can mean different
// things in different places.
using FieldPolicyTable = absl::flat_hash_map<absl::string_view, MessagePolicy>;
const FieldPolicyTable& fieldPolicyTable();

// The reason every feature of the HTTP/2, gRPC and TLS issue is rejected with.
inline constexpr absl::string_view kPendingHttp2TlsIssue =
    "is not supported by turnout yet (issue: HTTP/2, gRPC and TLS)";
// ... and the xDS issue.
inline constexpr absl::string_view kPendingXdsIssue =
    "is not supported by turnout yet (issue: xDS from the control plane)";

// Walks `message` (a Bootstrap, or any message in the table, e.g. a
// RouteConfiguration) and rejects the first set field the policy does not accept:
// `static_resources.listeners[0].filter_chains[0].transport_socket: ...`. Descends
// into supported sub-messages, repeated and map entries, and the payloads of
// supported Any fields (whose types the extension allowlist has already checked).
// `path` prefixes every error. Messages of the google.protobuf package (Duration,
// wrappers, Struct, Empty) are leaves.
absl::Status checkFieldPolicy(const google::protobuf::Message& message,
                              absl::string_view path = "");

}  // namespace turnout::config
