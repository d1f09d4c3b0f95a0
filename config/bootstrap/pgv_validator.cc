#include "config/bootstrap/pgv_validator.h"

#include <arpa/inet.h>

#include <cmath>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "config/bootstrap/field_path.h"
#include "google/protobuf/any.pb.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/timestamp.pb.h"
#include "google/protobuf/util/time_util.h"
#include "re2/re2.h"
#include "validate/validate.pb.h"

namespace turnout::config {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

absl::Status violation(absl::string_view path, absl::string_view msg) {
  return absl::InvalidArgumentError(atPath(path, msg));
}

// ---- value formatting (PGV prints values with Go/C++ defaults) ----
template <typename T>
std::string show(const T& v) {
  if constexpr (std::is_same_v<T, std::string>) {
    return absl::StrCat("\"", v, "\"");
  } else if constexpr (std::is_same_v<T, absl::Duration>) {
    // Protobuf's JSON form, as PGV prints durations: "0s", "0.250s", "-1.5s".
    google::protobuf::Duration d;
    absl::Duration rem;
    int64_t secs = absl::IDivDuration(v, absl::Seconds(1), &rem);
    d.set_seconds(secs);
    d.set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(rem)));
    return google::protobuf::util::TimeUtil::ToString(d);
  } else if constexpr (std::is_same_v<T, absl::Time>) {
    return absl::FormatTime(absl::RFC3339_full, v, absl::UTCTimeZone());
  } else {
    return absl::StrCat(v);
  }
}

template <typename T>
std::string showList(const std::vector<T>& items) {
  std::vector<std::string> parts;
  for (const auto& i : items) parts.push_back(show(i));
  return absl::StrCat("[", absl::StrJoin(parts, ", "), "]");
}

// ---- the common const / range / in / not_in rules ----
template <typename T>
struct Bounds {
  std::optional<T> constant, lt, lte, gt, gte;
  std::vector<T> in, not_in;
};

template <typename T>
absl::Status checkBounds(const T& v, const Bounds<T>& b, absl::string_view path) {
  if (b.constant && !(v == *b.constant)) {
    return violation(path, absl::StrCat("value must equal ", show(*b.constant)));
  }
  // Envoy's PGV wording, including the exclusive ranges (lt < gt means "outside").
  if (b.lt && b.gt) {
    if (*b.lt > *b.gt) {
      if (!(v > *b.gt && v < *b.lt)) {
        return violation(path, absl::StrCat("value must be inside range (", show(*b.gt), ", ",
                                            show(*b.lt), ")"));
      }
    } else if (v >= *b.lt && v <= *b.gt) {
      return violation(path, absl::StrCat("value must be outside range [", show(*b.lt), ", ",
                                          show(*b.gt), "]"));
    }
  } else if (b.lte && b.gt) {
    if (*b.lte > *b.gt) {
      if (!(v > *b.gt && v <= *b.lte)) {
        return violation(path, absl::StrCat("value must be inside range (", show(*b.gt), ", ",
                                            show(*b.lte), "]"));
      }
    } else if (v > *b.lte && v <= *b.gt) {
      return violation(path, absl::StrCat("value must be outside range (", show(*b.lte), ", ",
                                          show(*b.gt), "]"));
    }
  } else if (b.lt && b.gte) {
    if (*b.lt > *b.gte) {
      if (!(v >= *b.gte && v < *b.lt)) {
        return violation(path, absl::StrCat("value must be inside range [", show(*b.gte), ", ",
                                            show(*b.lt), ")"));
      }
    } else if (v >= *b.lt && v < *b.gte) {
      return violation(path, absl::StrCat("value must be outside range [", show(*b.lt), ", ",
                                          show(*b.gte), ")"));
    }
  } else if (b.lte && b.gte) {
    if (*b.lte >= *b.gte) {
      if (!(v >= *b.gte && v <= *b.lte)) {
        return violation(path, absl::StrCat("value must be inside range [", show(*b.gte), ", ",
                                            show(*b.lte), "]"));
      }
    } else if (v > *b.lte && v < *b.gte) {
      return violation(path, absl::StrCat("value must be outside range (", show(*b.lte), ", ",
                                          show(*b.gte), ")"));
    }
  } else {
    if (b.lt && !(v < *b.lt)) {
      return violation(path, absl::StrCat("value must be less than ", show(*b.lt)));
    }
    if (b.lte && !(v <= *b.lte)) {
      return violation(path, absl::StrCat("value must be less than or equal to ", show(*b.lte)));
    }
    if (b.gt && !(v > *b.gt)) {
      return violation(path, absl::StrCat("value must be greater than ", show(*b.gt)));
    }
    if (b.gte && !(v >= *b.gte)) {
      return violation(path,
                       absl::StrCat("value must be greater than or equal to ", show(*b.gte)));
    }
  }
  if (!b.in.empty() && std::find(b.in.begin(), b.in.end(), v) == b.in.end()) {
    return violation(path, absl::StrCat("value must be in list ", showList(b.in)));
  }
  if (std::find(b.not_in.begin(), b.not_in.end(), v) != b.not_in.end()) {
    return violation(path, absl::StrCat("value must not be in list ", showList(b.not_in)));
  }
  return absl::OkStatus();
}

// All numeric rule messages share the same field names.
template <typename T, typename R>
Bounds<T> numericBounds(const R& r) {
  Bounds<T> b;
  if (r.has_const_()) b.constant = static_cast<T>(r.const_());
  if (r.has_lt()) b.lt = static_cast<T>(r.lt());
  if (r.has_lte()) b.lte = static_cast<T>(r.lte());
  if (r.has_gt()) b.gt = static_cast<T>(r.gt());
  if (r.has_gte()) b.gte = static_cast<T>(r.gte());
  for (auto v : r.in()) b.in.push_back(static_cast<T>(v));
  for (auto v : r.not_in()) b.not_in.push_back(static_cast<T>(v));
  return b;
}

absl::Duration toDuration(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}
absl::Time toTime(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

// ---- strings ----
size_t codePoints(absl::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) {
    if ((c & 0xC0) != 0x80) ++n;
  }
  return n;
}

bool isIpv4(const std::string& s) {
  in_addr a;
  return inet_pton(AF_INET, s.c_str(), &a) == 1;
}
bool isIpv6(const std::string& s) {
  in6_addr a;
  return inet_pton(AF_INET6, s.c_str(), &a) == 1;
}

// PGV's hostname rule: at most 253 characters, dot-separated labels of 1..63 letters,
// digits and hyphens that neither start nor end with a hyphen; one trailing dot allowed.
bool isHostname(absl::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  if (s.back() == '.') s.remove_suffix(1);
  if (s.empty()) return false;
  for (absl::string_view label : absl::StrSplit(s, '.')) {
    if (label.empty() || label.size() > 63) return false;
    if (label.front() == '-' || label.back() == '-') return false;
    for (char c : label) {
      if (!absl::ascii_isalnum(c) && c != '-') return false;
    }
  }
  return true;
}

bool isEmail(absl::string_view s) {
  size_t at = s.rfind('@');
  if (at == absl::string_view::npos || at == 0 || at > 64) return false;
  absl::string_view domain = s.substr(at + 1);
  return isHostname(domain);
}

bool isUri(absl::string_view s) {
  // scheme ":" hier-part, no spaces or control characters (RFC 3986 shape).
  size_t colon = s.find(':');
  if (colon == absl::string_view::npos || colon == 0 || !absl::ascii_isalpha(s[0])) return false;
  for (char c : s.substr(0, colon)) {
    if (!absl::ascii_isalnum(c) && c != '+' && c != '-' && c != '.') return false;
  }
  for (unsigned char c : s) {
    if (c <= 0x20 || c == 0x7f) return false;
  }
  return true;
}

bool isUriRef(absl::string_view s) {
  for (unsigned char c : s) {
    if (c <= 0x20 || c == 0x7f) return false;
  }
  return true;
}

bool isUuid(absl::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-') return false;
    } else if (!absl::ascii_isxdigit(s[i])) {
      return false;
    }
  }
  return true;
}

// The PGV well-known header regexes, checked by character class; the patterns are the
// ones PGV prints.
constexpr absl::string_view kHeaderNamePattern = "^:?[0-9a-zA-Z!#$%&'*+-.^_|~\\x60]+$";
constexpr absl::string_view kHeaderValuePattern =
    "^[^\\u0000-\\u0008\\u000A-\\u001F\\u007F]*$";
constexpr absl::string_view kHeaderLoosePattern = "^[^\\u0000\\u000A\\u000D]*$";

bool isHeaderName(absl::string_view s) {
  if (!s.empty() && s.front() == ':') s.remove_prefix(1);
  if (s.empty()) return false;
  for (char c : s) {
    if (absl::ascii_isalnum(c)) continue;
    if (absl::string_view("!#$%&'*+-.^_|~`").find(c) == absl::string_view::npos) return false;
  }
  return true;
}
bool isHeaderValue(absl::string_view s) {
  for (unsigned char c : s) {
    if ((c <= 0x08) || (c >= 0x0A && c <= 0x1F) || c == 0x7F) return false;
  }
  return true;
}
bool isLooseHeader(absl::string_view s) {
  for (char c : s) {
    if (c == '\0' || c == '\n' || c == '\r') return false;
  }
  return true;
}

const RE2* compiled(const std::string& pattern) {
  thread_local absl::flat_hash_map<std::string, std::unique_ptr<RE2>> cache;
  auto& slot = cache[pattern];
  if (slot == nullptr) slot = std::make_unique<RE2>(pattern, RE2::Quiet);
  return slot->ok() ? slot.get() : nullptr;
}

absl::Status checkString(const std::string& v, const validate::StringRules& r,
                         absl::string_view path) {
  if (r.ignore_empty() && v.empty()) return absl::OkStatus();
  if (r.has_const_() && v != r.const_()) {
    return violation(path, absl::StrCat("value must equal ", r.const_()));
  }
  size_t chars = codePoints(v);
  if (r.has_len() && chars != r.len()) {
    return violation(path, absl::StrCat("value length must be ", r.len(), " characters"));
  }
  if (r.has_min_len() && chars < r.min_len()) {
    return violation(path,
                     absl::StrCat("value length must be at least ", r.min_len(), " characters"));
  }
  if (r.has_max_len() && chars > r.max_len()) {
    return violation(path,
                     absl::StrCat("value length must be at most ", r.max_len(), " characters"));
  }
  if (r.has_len_bytes() && v.size() != r.len_bytes()) {
    return violation(path, absl::StrCat("value length must be ", r.len_bytes(), " bytes"));
  }
  if (r.has_min_bytes() && v.size() < r.min_bytes()) {
    return violation(path, absl::StrCat("value length must be at least ", r.min_bytes(), " bytes"));
  }
  if (r.has_max_bytes() && v.size() > r.max_bytes()) {
    return violation(path, absl::StrCat("value length must be at most ", r.max_bytes(), " bytes"));
  }
  if (r.has_pattern()) {
    const RE2* re = compiled(r.pattern());
    if (re == nullptr || !RE2::PartialMatch(v, *re)) {
      return violation(path,
                       absl::StrCat("value does not match regex pattern \"", r.pattern(), "\""));
    }
  }
  if (r.has_prefix() && !absl::StartsWith(v, r.prefix())) {
    return violation(path, absl::StrCat("value does not have prefix \"", r.prefix(), "\""));
  }
  if (r.has_suffix() && !absl::EndsWith(v, r.suffix())) {
    return violation(path, absl::StrCat("value does not have suffix \"", r.suffix(), "\""));
  }
  if (r.has_contains() && !absl::StrContains(v, r.contains())) {
    return violation(path,
                     absl::StrCat("value does not contain substring \"", r.contains(), "\""));
  }
  if (r.has_not_contains() && absl::StrContains(v, r.not_contains())) {
    return violation(path,
                     absl::StrCat("value contains substring \"", r.not_contains(), "\""));
  }
  if (r.in_size() > 0 && std::find(r.in().begin(), r.in().end(), v) == r.in().end()) {
    return violation(path, absl::StrCat("value must be in list ",
                                        showList(std::vector<std::string>(r.in().begin(),
                                                                          r.in().end()))));
  }
  if (std::find(r.not_in().begin(), r.not_in().end(), v) != r.not_in().end()) {
    return violation(path, absl::StrCat("value must not be in list ",
                                        showList(std::vector<std::string>(r.not_in().begin(),
                                                                          r.not_in().end()))));
  }
  using WK = validate::StringRules;
  switch (r.well_known_case()) {
    case WK::kEmail:
      if (r.email() && !isEmail(v)) return violation(path, "value must be a valid email address");
      break;
    case WK::kHostname:
      if (r.hostname() && !isHostname(v)) return violation(path, "value must be a valid hostname");
      break;
    case WK::kIp:
      if (r.ip() && !isIpv4(v) && !isIpv6(v)) {
        return violation(path, "value must be a valid IP address");
      }
      break;
    case WK::kIpv4:
      if (r.ipv4() && !isIpv4(v)) return violation(path, "value must be a valid IPv4 address");
      break;
    case WK::kIpv6:
      if (r.ipv6() && !isIpv6(v)) return violation(path, "value must be a valid IPv6 address");
      break;
    case WK::kUri:
      if (r.uri() && !isUri(v)) return violation(path, "value must be a valid URI");
      break;
    case WK::kUriRef:
      if (r.uri_ref() && !isUriRef(v)) return violation(path, "value must be a valid URI");
      break;
    case WK::kAddress:
      if (r.address() && !isHostname(v) && !isIpv4(v) && !isIpv6(v)) {
        return violation(path, "value must be a valid hostname, or ip address");
      }
      break;
    case WK::kUuid:
      if (r.uuid() && !isUuid(v)) return violation(path, "value must be a valid UUID");
      break;
    case WK::kWellKnownRegex: {
      bool strict = r.strict();  // defaults to true
      if (r.well_known_regex() == validate::HTTP_HEADER_NAME) {
        if (strict ? !isHeaderName(v) : !isLooseHeader(v)) {
          return violation(path, absl::StrCat("value does not match regex pattern \"",
                                              strict ? kHeaderNamePattern : kHeaderLoosePattern,
                                              "\""));
        }
      } else if (r.well_known_regex() == validate::HTTP_HEADER_VALUE) {
        if (strict ? !isHeaderValue(v) : !isLooseHeader(v)) {
          return violation(path, absl::StrCat("value does not match regex pattern \"",
                                              strict ? kHeaderValuePattern : kHeaderLoosePattern,
                                              "\""));
        }
      }
      break;
    }
    case WK::WELL_KNOWN_NOT_SET:
      break;
  }
  return absl::OkStatus();
}

absl::Status checkBytes(const std::string& v, const validate::BytesRules& r,
                        absl::string_view path) {
  if (r.has_const_() && v != r.const_()) return violation(path, "value must equal the constant");
  if (r.has_len() && v.size() != r.len()) {
    return violation(path, absl::StrCat("value length must be ", r.len(), " bytes"));
  }
  if (r.has_min_len() && v.size() < r.min_len()) {
    return violation(path, absl::StrCat("value length must be at least ", r.min_len(), " bytes"));
  }
  if (r.has_max_len() && v.size() > r.max_len()) {
    return violation(path, absl::StrCat("value length must be at most ", r.max_len(), " bytes"));
  }
  if (r.has_pattern()) {
    const RE2* re = compiled(r.pattern());
    if (re == nullptr || !RE2::PartialMatch(v, *re)) {
      return violation(path,
                       absl::StrCat("value does not match regex pattern \"", r.pattern(), "\""));
    }
  }
  if (r.has_prefix() && !absl::StartsWith(v, r.prefix())) {
    return violation(path, "value does not have the required prefix");
  }
  if (r.has_suffix() && !absl::EndsWith(v, r.suffix())) {
    return violation(path, "value does not have the required suffix");
  }
  if (r.has_contains() && !absl::StrContains(v, r.contains())) {
    return violation(path, "value does not contain the required bytes");
  }
  if (r.in_size() > 0 && std::find(r.in().begin(), r.in().end(), v) == r.in().end()) {
    return violation(path, "value must be in the allowed list");
  }
  if (std::find(r.not_in().begin(), r.not_in().end(), v) != r.not_in().end()) {
    return violation(path, "value must not be in the disallowed list");
  }
  if (r.ip() && v.size() != 4 && v.size() != 16) {
    return violation(path, "value must be a valid IP address");
  }
  if (r.ipv4() && v.size() != 4) return violation(path, "value must be a valid IPv4 address");
  if (r.ipv6() && v.size() != 16) return violation(path, "value must be a valid IPv6 address");
  return absl::OkStatus();
}

// ---- reading one value of a field (index < 0: singular) ----
template <typename T>
T read(const Message& m, const FieldDescriptor* f, int index);

#define TURNOUT_PGV_READ(T, Name)                                             \
  template <>                                                                 \
  T read<T>(const Message& m, const FieldDescriptor* f, int index) {          \
    const Reflection* r = m.GetReflection();                                  \
    return index < 0 ? r->Get##Name(m, f) : r->GetRepeated##Name(m, f, index); \
  }
TURNOUT_PGV_READ(int32_t, Int32)
TURNOUT_PGV_READ(int64_t, Int64)
TURNOUT_PGV_READ(uint32_t, UInt32)
TURNOUT_PGV_READ(uint64_t, UInt64)
TURNOUT_PGV_READ(float, Float)
TURNOUT_PGV_READ(double, Double)
TURNOUT_PGV_READ(bool, Bool)
TURNOUT_PGV_READ(std::string, String)
#undef TURNOUT_PGV_READ

int readEnum(const Message& m, const FieldDescriptor* f, int index) {
  const Reflection* r = m.GetReflection();
  return index < 0 ? r->GetEnumValue(m, f) : r->GetRepeatedEnumValue(m, f, index);
}

class Validator {
 public:
  absl::Status message(const Message& m, const std::string& path) {
    const Descriptor* d = m.GetDescriptor();
    if (d->options().GetExtension(validate::disabled)) return absl::OkStatus();
    const Reflection* r = m.GetReflection();
    for (int i = 0; i < d->oneof_decl_count(); ++i) {
      const auto* oneof = d->oneof_decl(i);
      if (oneof->options().GetExtension(validate::required) &&
          !r->HasOneof(m, oneof)) {
        return violation(fieldPath(path, oneof->name()), "value is required");
      }
    }
    for (int i = 0; i < d->field_count(); ++i) {
      const FieldDescriptor* f = d->field(i);
      if (const auto* oneof = f->real_containing_oneof();
          oneof != nullptr && r->GetOneofFieldDescriptor(m, oneof) != f) {
        continue;
      }
      if (auto s = field(m, f, fieldPath(path, f->name())); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

 private:
  static const validate::FieldRules* rulesOf(const FieldDescriptor* f) {
    if (!f->options().HasExtension(validate::rules)) return nullptr;
    return &f->options().GetExtension(validate::rules);
  }

  absl::Status field(const Message& m, const FieldDescriptor* f, const std::string& path) {
    const Reflection* r = m.GetReflection();
    const validate::FieldRules* rules = rulesOf(f);
    if (f->is_map()) {
      int n = r->FieldSize(m, f);
      const FieldDescriptor* key_f = f->message_type()->FindFieldByNumber(1);
      const FieldDescriptor* val_f = f->message_type()->FindFieldByNumber(2);
      const validate::MapRules* mr =
          rules != nullptr && rules->has_map() ? &rules->map() : nullptr;
      if (mr != nullptr) {
        if (mr->has_min_pairs() && static_cast<uint64_t>(n) < mr->min_pairs()) {
          return violation(path, absl::StrCat("value must contain at least ", mr->min_pairs(),
                                              " pair(s)"));
        }
        if (mr->has_max_pairs() && static_cast<uint64_t>(n) > mr->max_pairs()) {
          return violation(path, absl::StrCat("value must contain no more than ",
                                              mr->max_pairs(), " pair(s)"));
        }
      }
      for (int i = 0; i < n; ++i) {
        const Message& entry = r->GetRepeatedMessage(m, f, i);
        std::string key = key_f->cpp_type() == FieldDescriptor::CPPTYPE_STRING
                              ? entry.GetReflection()->GetString(entry, key_f)
                              : absl::StrCat(i);
        std::string epath = keyPath(path, key);
        if (mr != nullptr && mr->has_keys()) {
          if (auto s = value(entry, key_f, -1, mr->keys(), epath); !s.ok()) return s;
        }
        static const validate::FieldRules kNone;
        if (auto s = value(entry, val_f, -1, mr != nullptr && mr->has_values() ? mr->values() : kNone,
                           epath);
            !s.ok()) {
          return s;
        }
      }
      return absl::OkStatus();
    }
    if (f->is_repeated()) {
      int n = r->FieldSize(m, f);
      const validate::RepeatedRules* rr =
          rules != nullptr && rules->has_repeated() ? &rules->repeated() : nullptr;
      if (rr != nullptr) {
        if (rr->has_min_items() && static_cast<uint64_t>(n) < rr->min_items()) {
          return violation(path, absl::StrCat("value must contain at least ", rr->min_items(),
                                              " item(s)"));
        }
        if (rr->has_max_items() && static_cast<uint64_t>(n) > rr->max_items()) {
          return violation(path, absl::StrCat("value must contain no more than ",
                                              rr->max_items(), " item(s)"));
        }
        if (rr->unique() && f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) {
          absl::flat_hash_set<std::string> seen;
          for (int i = 0; i < n; ++i) {
            if (!seen.insert(scalarKey(m, f, i)).second) {
              return violation(path, "repeated value must contain unique items");
            }
          }
        }
      }
      static const validate::FieldRules kNone;
      const validate::FieldRules& items = rr != nullptr && rr->has_items() ? rr->items() : kNone;
      for (int i = 0; i < n; ++i) {
        if (auto s = value(m, f, i, items, indexPath(path, i)); !s.ok()) return s;
      }
      return absl::OkStatus();
    }
    static const validate::FieldRules kNone;
    return value(m, f, -1, rules != nullptr ? *rules : kNone, path);
  }

  static std::string scalarKey(const Message& m, const FieldDescriptor* f, int i) {
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32: return absl::StrCat(read<int32_t>(m, f, i));
      case FieldDescriptor::CPPTYPE_INT64: return absl::StrCat(read<int64_t>(m, f, i));
      case FieldDescriptor::CPPTYPE_UINT32: return absl::StrCat(read<uint32_t>(m, f, i));
      case FieldDescriptor::CPPTYPE_UINT64: return absl::StrCat(read<uint64_t>(m, f, i));
      case FieldDescriptor::CPPTYPE_FLOAT: return absl::StrCat(read<float>(m, f, i));
      case FieldDescriptor::CPPTYPE_DOUBLE: return absl::StrCat(read<double>(m, f, i));
      case FieldDescriptor::CPPTYPE_BOOL: return absl::StrCat(read<bool>(m, f, i));
      case FieldDescriptor::CPPTYPE_ENUM: return absl::StrCat(readEnum(m, f, i));
      case FieldDescriptor::CPPTYPE_STRING: return read<std::string>(m, f, i);
      default: return "";
    }
  }

  // Checks one value (singular field, repeated item or map key/value) against `rules`
  // and recurses into messages.
  absl::Status value(const Message& m, const FieldDescriptor* f, int index,
                     const validate::FieldRules& rules, const std::string& path) {
    using FR = validate::FieldRules;
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_MESSAGE:
        return messageValue(m, f, index, rules, path);
      case FieldDescriptor::CPPTYPE_ENUM: {
        if (rules.type_case() != FR::kEnum) return absl::OkStatus();
        const auto& er = rules.enum_();
        int v = readEnum(m, f, index);
        if (er.defined_only() && f->enum_type()->FindValueByNumber(v) == nullptr) {
          return violation(path, "value must be one of the defined enum values");
        }
        Bounds<int> b;
        if (er.has_const_()) b.constant = er.const_();
        b.in.assign(er.in().begin(), er.in().end());
        b.not_in.assign(er.not_in().begin(), er.not_in().end());
        return checkBounds(v, b, path);
      }
      case FieldDescriptor::CPPTYPE_STRING: {
        std::string v = read<std::string>(m, f, index);
        if (rules.type_case() == FR::kString) return checkString(v, rules.string(), path);
        if (rules.type_case() == FR::kBytes) return checkBytes(v, rules.bytes(), path);
        return absl::OkStatus();
      }
      case FieldDescriptor::CPPTYPE_BOOL:
        if (rules.type_case() == FR::kBool && rules.bool_().has_const_() &&
            read<bool>(m, f, index) != rules.bool_().const_()) {
          return violation(path, absl::StrCat("value must equal ",
                                              rules.bool_().const_() ? "true" : "false"));
        }
        return absl::OkStatus();
      default:
        return numeric(m, f, index, rules, path);
    }
  }

  static absl::Status numeric(const Message& m, const FieldDescriptor* f, int index,
                              const validate::FieldRules& rules, const std::string& path) {
    using FR = validate::FieldRules;
    switch (rules.type_case()) {
      case FR::kInt32:
        return checkBounds(read<int32_t>(m, f, index), numericBounds<int32_t>(rules.int32()), path);
      case FR::kSint32:
        return checkBounds(read<int32_t>(m, f, index), numericBounds<int32_t>(rules.sint32()), path);
      case FR::kSfixed32:
        return checkBounds(read<int32_t>(m, f, index), numericBounds<int32_t>(rules.sfixed32()),
                           path);
      case FR::kInt64:
        return checkBounds(read<int64_t>(m, f, index), numericBounds<int64_t>(rules.int64()), path);
      case FR::kSint64:
        return checkBounds(read<int64_t>(m, f, index), numericBounds<int64_t>(rules.sint64()), path);
      case FR::kSfixed64:
        return checkBounds(read<int64_t>(m, f, index), numericBounds<int64_t>(rules.sfixed64()),
                           path);
      case FR::kUint32:
        return checkBounds(read<uint32_t>(m, f, index), numericBounds<uint32_t>(rules.uint32()),
                           path);
      case FR::kFixed32:
        return checkBounds(read<uint32_t>(m, f, index), numericBounds<uint32_t>(rules.fixed32()),
                           path);
      case FR::kUint64:
        return checkBounds(read<uint64_t>(m, f, index), numericBounds<uint64_t>(rules.uint64()),
                           path);
      case FR::kFixed64:
        return checkBounds(read<uint64_t>(m, f, index), numericBounds<uint64_t>(rules.fixed64()),
                           path);
      case FR::kFloat:
        return checkBounds(read<float>(m, f, index), numericBounds<float>(rules.float_()), path);
      case FR::kDouble:
        return checkBounds(read<double>(m, f, index), numericBounds<double>(rules.double_()), path);
      default:
        return absl::OkStatus();
    }
  }

  absl::Status messageValue(const Message& m, const FieldDescriptor* f, int index,
                            const validate::FieldRules& rules, const std::string& path) {
    using FR = validate::FieldRules;
    const Reflection* r = m.GetReflection();
    bool present = index >= 0 || r->HasField(m, f);
    bool required = rules.message().required() ||
                    (rules.type_case() == FR::kAny && rules.any().required()) ||
                    (rules.type_case() == FR::kDuration && rules.duration().required()) ||
                    (rules.type_case() == FR::kTimestamp && rules.timestamp().required());
    if (!present) {
      if (required) return violation(path, "value is required");
      return absl::OkStatus();
    }
    const Message& sub = index < 0 ? r->GetMessage(m, f) : r->GetRepeatedMessage(m, f, index);
    const std::string& type = f->message_type()->full_name();

    if (type == "google.protobuf.Duration" && rules.type_case() == FR::kDuration) {
      const auto& dr = rules.duration();
      google::protobuf::Duration d;
      d.CopyFrom(sub);
      Bounds<absl::Duration> b;
      if (dr.has_const_()) b.constant = toDuration(dr.const_());
      if (dr.has_lt()) b.lt = toDuration(dr.lt());
      if (dr.has_lte()) b.lte = toDuration(dr.lte());
      if (dr.has_gt()) b.gt = toDuration(dr.gt());
      if (dr.has_gte()) b.gte = toDuration(dr.gte());
      for (const auto& v : dr.in()) b.in.push_back(toDuration(v));
      for (const auto& v : dr.not_in()) b.not_in.push_back(toDuration(v));
      return checkBounds(toDuration(d), b, path);
    }
    if (type == "google.protobuf.Timestamp" && rules.type_case() == FR::kTimestamp) {
      const auto& tr = rules.timestamp();
      google::protobuf::Timestamp t;
      t.CopyFrom(sub);
      absl::Time v = toTime(t);
      Bounds<absl::Time> b;
      if (tr.has_const_()) b.constant = toTime(tr.const_());
      if (tr.has_lt()) b.lt = toTime(tr.lt());
      if (tr.has_lte()) b.lte = toTime(tr.lte());
      if (tr.has_gt()) b.gt = toTime(tr.gt());
      if (tr.has_gte()) b.gte = toTime(tr.gte());
      if (auto s = checkBounds(v, b, path); !s.ok()) return s;
      absl::Time now = absl::Now();
      if (tr.lt_now() && !(v < now)) return violation(path, "value must be less than now");
      if (tr.gt_now() && !(v > now)) return violation(path, "value must be greater than now");
      if (tr.has_within() && absl::AbsDuration(v - now) > toDuration(tr.within())) {
        return violation(path, absl::StrCat("value must be within ", show(toDuration(tr.within())),
                                            " of now"));
      }
      return absl::OkStatus();
    }
    if (type == "google.protobuf.Any") {
      const Descriptor* ad = sub.GetDescriptor();
      std::string url = sub.GetReflection()->GetString(sub, ad->FindFieldByNumber(1));
      if (rules.type_case() == FR::kAny) {
        const auto& ar = rules.any();
        if (ar.in_size() > 0 && std::find(ar.in().begin(), ar.in().end(), url) == ar.in().end()) {
          return violation(path, absl::StrCat("type URL must be in list ",
                                              showList(std::vector<std::string>(ar.in().begin(),
                                                                                ar.in().end()))));
        }
        if (std::find(ar.not_in().begin(), ar.not_in().end(), url) != ar.not_in().end()) {
          return violation(path,
                           absl::StrCat("type URL must not be in list ",
                                        showList(std::vector<std::string>(ar.not_in().begin(),
                                                                          ar.not_in().end()))));
        }
      }
      if (rules.message().skip()) return absl::OkStatus();
      return anyPayload(sub, url, path);
    }
    // Wrappers carry scalar rules for their `value`.
    if (absl::StartsWith(type, "google.protobuf.") && absl::EndsWith(type, "Value") &&
        f->message_type()->field_count() == 1 &&
        f->message_type()->field(0)->name() == "value") {
      return value(sub, f->message_type()->field(0), -1, rules, path);
    }
    if (rules.message().skip()) return absl::OkStatus();
    return message(sub, path);
  }

  absl::Status anyPayload(const Message& any, const std::string& url, const std::string& path) {
    if (url.empty()) return absl::OkStatus();
    absl::string_view name = url;
    if (size_t slash = name.rfind('/'); slash != absl::string_view::npos) {
      name = name.substr(slash + 1);
    }
    const Descriptor* d =
        google::protobuf::DescriptorPool::generated_pool()->FindMessageTypeByName(std::string(name));
    if (d == nullptr) {
      return violation(path, absl::StrCat("unknown type URL '", url, "'"));
    }
    std::unique_ptr<Message> payload(
        google::protobuf::MessageFactory::generated_factory()->GetPrototype(d)->New());
    const std::string bytes = any.GetReflection()->GetString(any, any.GetDescriptor()->FindFieldByNumber(2));
    if (!payload->ParseFromString(bytes)) {
      return violation(path, absl::StrCat("cannot decode the payload of type '", url, "'"));
    }
    return message(*payload, path);
  }
};

}  // namespace

absl::Status validateProtoRules(const google::protobuf::Message& message, absl::string_view path) {
  Validator v;
  return v.message(message, std::string(path));
}

}  // namespace turnout::config
