#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace turnout::routing {

// The HTTP connection manager's path normalisation, applied to :path before
// routing (Envoy's `normalize_path` and `merge_slashes`). Pure; the query
// and fragment are kept as they are.
//
// normalize: RFC 3986 §6: percent-encodings of unreserved characters are
// decoded, other percent-encodings get uppercase hex, and `.`/`..` segments
// are removed (§5.2.4). A path that is not origin-form, has a malformed
// percent-encoding, or climbs above the root is rejected (nullopt; the
// caller answers 400, as Envoy does).
// merge_slashes: runs of '/' in the path become one.
std::optional<std::string> normalizePath(std::string_view path, bool normalize,
                                         bool merge_slashes);

}  // namespace turnout::routing
