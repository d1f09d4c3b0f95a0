#pragma once

// Guards for JSON read from the network before protobuf's JSON parser
// (google::protobuf::util::JsonStringToMessage) sees it: turnout-cp's REST API
// bodies and the admission webhook's AdmissionReviews.

#include <cstddef>
#include <string>
#include <string_view>

namespace turnout::config {

// How deep JSON read from the network may nest arrays and objects. Kubernetes
// Pods in an AdmissionReview (managedFields included) nest about 20 deep,
// turnout-cp's resources 5. protobuf refuses much more anyway, and late: each
// object level is three nested messages in google.protobuf.Value (Value,
// Struct, the map entry) and its recursion limit is 100.
inline constexpr size_t kMaxJsonNesting = 32;

// Whether `json` nests arrays and objects at most `max_depth` deep (strings
// skipped). A linear pre-check for untrusted input: protobuf's JSON parser
// has no depth limit for google.protobuf.Value and its cost grows with the
// square of the depth, so that 40 KB of balanced brackets keep a thread busy
// for minutes.
inline bool jsonNestingWithin(std::string_view json, size_t max_depth = kMaxJsonNesting) {
  size_t depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < json.size(); ++i) {
    const char c = json[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return false;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return true;
}

// A protobuf JSON parse error made fit for an answer: its first line (what
// follows quotes the input, which may be anything), printable ASCII only.
inline std::string jsonParseReason(std::string_view message) {
  std::string reason(message.substr(0, message.find('\n')));
  for (char& c : reason) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) c = '?';
  }
  return reason;
}

}  // namespace turnout::config
