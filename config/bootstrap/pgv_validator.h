#pragma once

#include "absl/strings/string_view.h"
#include <string_view>

#include "absl/status/status.h"
#include "google/protobuf/message.h"

namespace turnout::config {

// Enforces the protoc-gen-validate rules compiled into the descriptors
// (`validate.rules` on fields, `validate.required` on oneofs, `validate.disabled` on
// messages) by reflection, for every message recursively and including Any payloads (which
// Envoy validates when it builds the extension). No rule is written by hand here: all of
// them come from the descriptors.
//
// Returns the first violation as InvalidArgument with Envoy/PGV wording prefixed by the
// field path, e.g.
// `static_resources.listeners[0].filter_chains[0].filters[0].typed_config.stat_prefix:
//  value length must be at least 1 characters`.
// `path` prefixes every path (empty for a bootstrap).
//
// Stateless apart from a per-thread cache of compiled patterns; safe from any thread.
absl::Status validateProtoRules(const google::protobuf::Message& message,
                                absl::string_view path = "");

}  // namespace turnout::config
