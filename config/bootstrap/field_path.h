#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"

namespace turnout::config {

// Envoy-style field paths for config errors, e.g.
// `static_resources.clusters[1].load_assignment.endpoints[0]` or
// `typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]`.
// Paths always use proto field names (snake_case), whatever spelling the input used.

// `parent.field`, or `field` when parent is empty.
std::string fieldPath(absl::string_view parent, absl::string_view field);
// `parent[index]`.
std::string indexPath(absl::string_view parent, size_t index);
// `parent["key"]` (the key is escaped like a JSON string).
std::string keyPath(absl::string_view parent, absl::string_view key);
// Prefixes `path: ` to a message; a bare message when path is empty.
std::string atPath(absl::string_view path, absl::string_view message);

// One message-typed value set in a message: a singular field, one element
// of a repeated field, or one value of a map field (`map_key` set; a
// non-string key is given as its index).
struct SubMessage {
  const google::protobuf::Message& value;
  const google::protobuf::FieldDescriptor* field;        // the field of the parent
  const google::protobuf::FieldDescriptor* value_field;  // `field`, or the map's value field
  const std::string& path;                                // the value's field path
  const std::string* map_key;                             // null unless a map value
};

// Calls `visit` for every message-typed value set in `msg` (whose path is
// `path`), in field order, and returns the first error it returns. The one
// reflection walk the config checks (field policy, extensions) share.
absl::Status forEachSubMessage(const google::protobuf::Message& msg, absl::string_view path,
                               const std::function<absl::Status(const SubMessage&)>& visit);

}  // namespace turnout::config
