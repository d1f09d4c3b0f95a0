#pragma once

#include "absl/strings/string_view.h"
#include <cstddef>
#include <string>
#include <string_view>

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

}  // namespace turnout::config
