#include "config/snapshot/routing_key_config.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace turnout::config {

using RoutingKeyProto = turnout::extensions::filters::http::routing_key::v3::RoutingKey;

absl::StatusOr<RoutingKeyFilterConfig> toRoutingKeyFilterConfig(const RoutingKeyProto& proto,
                                                                const std::string& path) {
  RoutingKeyFilterConfig out;
  if (proto.sources_size() == 0) {
    out.extraction = routing::RoutingKeyConfig::defaults();
  }
  for (const auto& s : proto.sources()) {
    switch (s.source_case()) {
      case RoutingKeyProto::Source::kBaggageMember:
        out.extraction.sources.push_back({routing::KeySourceKind::kBaggage, s.baggage_member()});
        break;
      case RoutingKeyProto::Source::kTracestateKey:
        out.extraction.sources.push_back(
            {routing::KeySourceKind::kTracestate, s.tracestate_key()});
        break;
      case RoutingKeyProto::Source::kHeader:
        // Header names are case-insensitive; the request view holds them lowercase.
        out.extraction.sources.push_back(
            {routing::KeySourceKind::kHeader, absl::AsciiStrToLower(s.header())});
        break;
      default:
        return absl::InvalidArgumentError(absl::StrCat(
            path, ".sources[", out.extraction.sources.size(), "]: a source is required"));
    }
  }
  if (proto.has_max_key_length()) out.extraction.max_key_length = proto.max_key_length().value();
  if (auto st = out.extraction.validate(); !st.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ".", st.message()));
  }
  if (!proto.output_header().empty()) {
    out.output_header = absl::AsciiStrToLower(proto.output_header());
    if (out.output_header.front() == ':' || out.output_header == "host") {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ".output_header: '", proto.output_header(), "' is not a writable header"));
    }
    for (char c : out.output_header) {
      if (!(absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' ||
            c == '.')) {
        return absl::InvalidArgumentError(absl::StrCat(
            path, ".output_header: '", proto.output_header(), "' is not a valid header name"));
      }
    }
  }
  return out;
}

}  // namespace turnout::config
