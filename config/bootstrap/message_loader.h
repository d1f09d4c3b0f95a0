#pragma once

#include "absl/strings/string_view.h"
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "google/protobuf/message.h"

namespace turnout::config {

// Parses Envoy config text into protobuf messages the way Envoy does, but checks the
// input against the message descriptors first so that every error names its field
// path (`static_resources.clusters[1].connect_timeout: ...`).
//
// YAML (and JSON, which YAML reads) follows Envoy's conversion rules: plain scalars that
// read as bool or int become bools and numbers, quoted scalars stay strings, `!ignore`
// keys are skipped, a single object is accepted where a list is expected, enums match
// by name (case-insensitively, as Envoy's parser is configured) or by number, and Any
// values carry `@type` then the fields of that type. Unknown fields are errors unless
// allowed; allowed ones are dropped and reported as warnings. Every Any is checked
// against the extension allowlist of its position (see extensions.h).
//
// Stateless; safe to call from any thread. Nothing here throws: yaml-cpp is wrapped.

struct MessageLoadOptions {
  // --allow-unknown-static-fields: unknown fields become warnings.
  bool allow_unknown_fields = false;
  // Where allowed unknown fields are reported, one line each with its path;
  // null: with the warnings.
  std::vector<std::string>* unknown_fields = nullptr;
};

// Appends one line for each message in `msg` (itself, its submessages and
// the payloads of its Anys) that holds fields its type does not define,
// naming the message's path under `path` and the field numbers: what a
// binary parse keeps as unknown fields (a resource from a newer API).
void collectUnknownFields(const google::protobuf::Message& msg, const std::string& path,
                          std::vector<std::string>& out);

// collectUnknownFields(), then: with `reject`, an error naming the first
// (`reject_note` appended); else all appended to `sink` (null: dropped).
absl::Status takeUnknownFields(const google::protobuf::Message& msg, const std::string& path,
                               bool reject, std::vector<std::string>* sink,
                               std::string_view reject_note = {});

// The message types whose descriptors the first YAML/JSON text of 64 KiB or
// more had built before it was parsed (0 until then): a large config's parse
// would otherwise build them lazily amid its temporaries and leave their
// pages pinned (docs/memory.md).
size_t prebuiltDescriptorTypes();

// Replaces `message` with the content of `text` (YAML or JSON). `path` prefixes every
// error (empty for a bootstrap). Warnings, if any, are appended to `warnings`.
absl::Status loadMessageFromYaml(absl::string_view text, google::protobuf::Message& message,
                                 const MessageLoadOptions& options,
                                 std::vector<std::string>* warnings, absl::string_view path = "");

// Binary protobuf (Envoy's `.pb`). Unknown fields are reported with their path and
// number unless allowed.
absl::Status loadMessageFromBinary(absl::string_view bytes, google::protobuf::Message& message,
                                   const MessageLoadOptions& options,
                                   std::vector<std::string>* warnings);

// Protobuf text format (Envoy's `.pb_text`); errors name line:column.
absl::Status loadMessageFromTextFormat(absl::string_view text, google::protobuf::Message& message,
                                       const MessageLoadOptions& options,
                                       std::vector<std::string>* warnings);

}  // namespace turnout::config
