#include "config/snapshot/routing_key_config.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "routing/trace_key_table.h"

namespace turnout::config {

using RoutingKeyProto = turnout::extensions::filters::http::routing_key::v3::RoutingKey;
using TraceKeyRecoveryProto = RoutingKeyProto::TraceKeyRecovery;

namespace {

absl::Status toTraceKeyRecovery(const TraceKeyRecoveryProto& proto,
                                const routing::RoutingKeyConfig& extraction,
                                const std::string& path, TraceKeyRecoveryConfig& out) {
  switch (proto.mode()) {
    case TraceKeyRecoveryProto::OFF: break;
    case TraceKeyRecoveryProto::REMEMBER: out.remember = true; break;
    case TraceKeyRecoveryProto::RECOVER: out.recover = true; break;
    case TraceKeyRecoveryProto::BOTH:
      out.remember = true;
      out.recover = true;
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat(path, ".mode: ", static_cast<int>(proto.mode()), " is not a mode"));
  }
  if (proto.has_ttl()) {
    const auto& d = proto.ttl();
    constexpr std::int64_t kMaxSeconds = 86400;
    if (d.seconds() < 0 || d.nanos() < 0 || d.seconds() > kMaxSeconds ||
        (d.seconds() == kMaxSeconds && d.nanos() > 0)) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ".ttl: must be between 1ms and 24h"));
    }
    if (d.nanos() % 1'000'000 != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ".ttl: must be whole milliseconds (the table's resolution)"));
    }
    out.ttl_ms = d.seconds() * 1000 + d.nanos() / 1'000'000;
    if (out.ttl_ms < 1) {
      return absl::InvalidArgumentError(absl::StrCat(path, ".ttl: must be between 1ms and 24h"));
    }
  }
  if (proto.has_max_entries()) {
    const std::uint32_t n = proto.max_entries().value();
    if (n < 1 || n > routing::kMaxTraceKeyEntries) {
      return absl::InvalidArgumentError(absl::StrCat(path, ".max_entries: must be in [1, ",
                                                     routing::kMaxTraceKeyEntries, "], got ", n));
    }
    out.max_entries = n;
  }
  if (out.recover) {
    for (const routing::KeySource& s : extraction.sources) {
      if (s.kind == routing::KeySourceKind::kBaggage) {
        out.baggage_member = s.name;
        break;
      }
    }
    if (out.baggage_member.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ".mode: RECOVER re-attaches the key as a baggage member, and sources names no "
                "baggage_member"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

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
  if (proto.has_trace_key_recovery()) {
    if (auto st = toTraceKeyRecovery(proto.trace_key_recovery(), out.extraction,
                                     absl::StrCat(path, ".trace_key_recovery"), out.trace);
        !st.ok()) {
      return st;
    }
  }
  return out;
}

}  // namespace turnout::config
