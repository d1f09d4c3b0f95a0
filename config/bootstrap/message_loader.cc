#include "config/bootstrap/message_loader.h"
#include "config/json_string.h"

#include <atomic>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "config/bootstrap/extensions.h"
#include "config/bootstrap/field_path.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/type.pb.h"
#include "google/protobuf/unknown_field_set.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"
#include "google/protobuf/util/type_resolver.h"
#include "google/protobuf/util/type_resolver_util.h"
#include "yaml-cpp/yaml.h"

namespace turnout::config {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::EnumDescriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

bool isQuoted(const YAML::Node& n) { return n.Tag() == "!"; }

// Envoy's reading of a plain YAML scalar (source/common/protobuf/yaml_utility.cc
// parseYamlNode): bool first, then int64, then string.
std::optional<bool> plainBool(const YAML::Node& n) {
  if (isQuoted(n)) return std::nullopt;
  bool b = false;
  if (YAML::convert<bool>::decode(n, b)) return b;
  return std::nullopt;
}
std::optional<int64_t> plainInt(const YAML::Node& n) {
  if (isQuoted(n)) return std::nullopt;
  int64_t v = 0;
  if (YAML::convert<int64_t>::decode(n, v)) return v;
  return std::nullopt;
}

absl::string_view nodeKind(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map: return "a mapping";
    case YAML::NodeType::Sequence: return "a sequence";
    case YAML::NodeType::Scalar: return "a scalar";
    case YAML::NodeType::Null: return "null";
    default: return "nothing";
  }
}

bool isWrapper(absl::string_view full_name) {
  static const absl::flat_hash_set<absl::string_view> kWrappers = {
      "google.protobuf.DoubleValue", "google.protobuf.FloatValue", "google.protobuf.Int64Value",
      "google.protobuf.UInt64Value", "google.protobuf.Int32Value", "google.protobuf.UInt32Value",
      "google.protobuf.BoolValue",   "google.protobuf.StringValue", "google.protobuf.BytesValue"};
  return kWrappers.contains(full_name);
}

// Types whose JSON form is not an object; inside an Any they sit under "value".
bool hasSpecialJson(absl::string_view full_name) {
  return isWrapper(full_name) || full_name == "google.protobuf.Duration" ||
         full_name == "google.protobuf.Timestamp" || full_name == "google.protobuf.FieldMask" ||
         full_name == "google.protobuf.Struct" || full_name == "google.protobuf.Value" ||
         full_name == "google.protobuf.ListValue" || full_name == "google.protobuf.Any";
}

bool validDuration(absl::string_view s) {
  if (s.size() < 2 || s.back() != 's') return false;
  absl::string_view num = s.substr(0, s.size() - 1);
  if (!num.empty() && num.front() == '-') num.remove_prefix(1);
  size_t dot = num.find('.');
  absl::string_view whole = num.substr(0, dot);
  absl::string_view frac = dot == absl::string_view::npos ? absl::string_view() : num.substr(dot + 1);
  if (whole.empty() && frac.empty()) return false;
  if (dot != absl::string_view::npos && frac.empty()) return false;
  if (frac.size() > 9) return false;
  for (char c : whole) if (!absl::ascii_isdigit(c)) return false;
  for (char c : frac) if (!absl::ascii_isdigit(c)) return false;
  int64_t seconds = 0;
  if (!whole.empty() && !absl::SimpleAtoi(whole, &seconds)) return false;
  return seconds <= 315576000000LL;
}

class YamlToJson {
 public:
  YamlToJson(const MessageLoadOptions& options, std::vector<std::string>* warnings, bool json_mode)
      : options_(options), warnings_(warnings), json_mode_(json_mode) {}

  // Writes the JSON object for a message of `type` read from `node`. `holder` is the field
  // through which this message was reached (for extension positions). `type_url`, when
  // set, is written first as "@type" (Any payloads) and the "@type" key is skipped.
  absl::Status message(const YAML::Node& node, const Descriptor* type,
                       const FieldDescriptor* holder, const std::string& path, std::string& out,
                       absl::string_view type_url = {}) {
    if (node.IsNull()) {
      out += type_url.empty() ? "{}" : absl::StrCat("{\"@type\":\"", type_url, "\"}");
      return absl::OkStatus();
    }
    if (!node.IsMap()) {
      return error(node, path,
                   absl::StrCat("expected a mapping for ", type->full_name(), ", got ",
                                nodeKind(node), scalarHint(node)));
    }
    out.push_back('{');
    bool first = true;
    if (!type_url.empty()) {
      out += "\"@type\":";
      appendJsonString(out, type_url);
      first = false;
    }
    absl::flat_hash_set<int> seen;
    absl::flat_hash_map<int, std::string> oneof_set;  // oneof index -> field name
    for (const auto& kv : node) {
      const YAML::Node& key = kv.first;
      const YAML::Node& value = kv.second;
      if (key.Tag() == "!ignore") continue;
      if (!key.IsScalar()) {
        return error(key, path, "mapping keys must be scalars");
      }
      const std::string& name = key.Scalar();
      if (!type_url.empty() && name == "@type") continue;
      const FieldDescriptor* f = findField(type, name);
      if (f == nullptr) {
        std::string fpath = fieldPath(path, name);
        if (name == "@type") {
          return error(key, fpath,
                       absl::StrCat("'@type' is only valid in a google.protobuf.Any; ",
                                    type->full_name(), " is not one"));
        }
        if (options_.allow_unknown_fields) {
          if (auto* sink = options_.unknown_fields ? options_.unknown_fields : warnings_) {
            sink->push_back(atPath(fpath, absl::StrCat("unknown field ignored (", type->full_name(),
                                                       " has no field named '", name, "')")));
          }
          continue;
        }
        return error(key, fpath,
                     absl::StrCat("unknown field (", type->full_name(), " has no field named '",
                                  name, "')"));
      }
      std::string fpath = fieldPath(path, f->name());
      if (!seen.insert(f->number()).second) {
        return error(key, fpath, "field is given more than once");
      }
      bool is_null_value = f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE &&
                           f->message_type()->full_name() == "google.protobuf.Value";
      if (value.IsNull() && !is_null_value) continue;  // JSON null: the field stays unset
      if (const auto* oneof = f->real_containing_oneof(); oneof != nullptr) {
        auto [it, inserted] = oneof_set.emplace(oneof->index(), f->name());
        if (!inserted) {
          return error(key, fpath,
                       absl::StrCat("oneof '", oneof->name(), "' is already set by '",
                                    it->second, "'; only one of its fields may be given"));
        }
      }
      if (!first) out.push_back(',');
      first = false;
      appendJsonString(out, f->name());
      out.push_back(':');
      if (auto s = field(value, f, holder, fpath, out); !s.ok()) return s;
    }
    out.push_back('}');
    return absl::OkStatus();
  }

 private:
  static const FieldDescriptor* findField(const Descriptor* type, const std::string& name) {
    if (const FieldDescriptor* f = type->FindFieldByName(name)) return f;
    for (int i = 0; i < type->field_count(); ++i) {
      if (type->field(i)->json_name() == name) return type->field(i);
    }
    return nullptr;
  }

  static std::string scalarHint(const YAML::Node& n) {
    if (!n.IsScalar()) return "";
    return absl::StrCat(" '", n.Scalar(), "'");
  }

  static absl::Status error(const YAML::Node& node, absl::string_view path, absl::string_view msg) {
    std::string text = atPath(path, msg);
    YAML::Mark m = node.Mark();
    if (!m.is_null()) absl::StrAppend(&text, " (line ", m.line + 1, ", column ", m.column + 1, ")");
    return absl::InvalidArgumentError(text);
  }

  // Appends the node's line and column to an error that already names its path.
  static absl::Status withLocation(const YAML::Node& node, const absl::Status& s) {
    YAML::Mark m = node.Mark();
    if (m.is_null()) return s;
    return absl::Status(s.code(), absl::StrCat(s.message(), " (line ", m.line + 1, ", column ",
                                               m.column + 1, ")"));
  }

  absl::Status field(const YAML::Node& node, const FieldDescriptor* f,
                     const FieldDescriptor* holder, const std::string& path, std::string& out) {
    if (f->is_map()) {
      if (!node.IsMap()) {
        return error(node, path, absl::StrCat("expected a mapping, got ", nodeKind(node)));
      }
      const FieldDescriptor* key_f = f->message_type()->FindFieldByNumber(1);
      const FieldDescriptor* val_f = f->message_type()->FindFieldByNumber(2);
      out.push_back('{');
      bool first = true;
      absl::flat_hash_set<std::string> keys;
      for (const auto& kv : node) {
        if (kv.first.Tag() == "!ignore") continue;
        if (!kv.first.IsScalar()) return error(kv.first, path, "map keys must be scalars");
        const std::string& key = kv.first.Scalar();
        std::string kpath = keyPath(path, key);
        if (auto s = checkMapKey(kv.first, key_f, kpath); !s.ok()) return s;
        if (!keys.insert(key).second) return error(kv.first, kpath, "map key is given twice");
        if (!first) out.push_back(',');
        first = false;
        appendJsonString(out, key);
        out.push_back(':');
        if (kv.second.IsNull() && val_f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE &&
            val_f->message_type()->full_name() != "google.protobuf.Value") {
          return error(kv.second, kpath, "map values may not be null");
        }
        absl::Status s = val_f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE &&
                                 val_f->message_type()->full_name() == "google.protobuf.Any"
                             ? any(kv.second, ExtensionSite{f, holder, key}, kpath, out)
                             : single(kv.second, val_f, f, holder, kpath, out);
        if (!s.ok()) return s;
      }
      out.push_back('}');
      return absl::OkStatus();
    }
    if (f->is_repeated()) {
      out.push_back('[');
      if (node.IsSequence()) {
        size_t i = 0;
        for (const auto& item : node) {
          if (i > 0) out.push_back(',');
          if (auto s = repeatedItem(item, f, holder, indexPath(path, i), out); !s.ok()) return s;
          ++i;
        }
      } else {
        // A single value where a list is expected: Envoy's C++ JSON parser takes it as a
        // list of one (envoy#15160), and configs in the wild rely on it.
        if (auto s = repeatedItem(node, f, holder, indexPath(path, 0), out); !s.ok()) return s;
      }
      out.push_back(']');
      return absl::OkStatus();
    }
    if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE &&
        f->message_type()->full_name() == "google.protobuf.Any") {
      return any(node, ExtensionSite{f, holder, {}}, path, out);
    }
    return single(node, f, f, holder, path, out);
  }

  absl::Status repeatedItem(const YAML::Node& node, const FieldDescriptor* f,
                            const FieldDescriptor* holder, const std::string& path,
                            std::string& out) {
    if (node.IsNull() && !(f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE &&
                           f->message_type()->full_name() == "google.protobuf.Value")) {
      return error(node, path, "list items may not be null");
    }
    if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE &&
        f->message_type()->full_name() == "google.protobuf.Any") {
      return any(node, ExtensionSite{f, holder, {}}, path, out);
    }
    return single(node, f, f, holder, path, out);
  }

  absl::Status checkMapKey(const YAML::Node& node, const FieldDescriptor* key_f,
                           const std::string& path) {
    const std::string& k = node.Scalar();
    switch (key_f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_STRING: return absl::OkStatus();
      case FieldDescriptor::CPPTYPE_BOOL:
        if (k == "true" || k == "false") return absl::OkStatus();
        return error(node, path, "map key must be true or false");
      default: {
        int64_t i = 0;
        uint64_t u = 0;
        if (absl::SimpleAtoi(k, &i) || absl::SimpleAtoi(k, &u)) return absl::OkStatus();
        return error(node, path, "map key must be an integer");
      }
    }
  }

  // One value of field `f` (its element type when repeated). `type_field` is the field
  // whose type is used (the map's value field for maps); `site_field` is the user-facing
  // field, the holder for a nested message.
  absl::Status single(const YAML::Node& node, const FieldDescriptor* type_field,
                      const FieldDescriptor* site_field, const FieldDescriptor* /*holder*/,
                      const std::string& path, std::string& out) {
    if (type_field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      return messageValue(node, type_field->message_type(), site_field, path, out);
    }
    if (type_field->cpp_type() == FieldDescriptor::CPPTYPE_ENUM) {
      return enumValue(node, type_field->enum_type(), path, out);
    }
    return scalar(node, type_field, path, out);
  }

  absl::Status messageValue(const YAML::Node& node, const Descriptor* type,
                            const FieldDescriptor* holder, const std::string& path,
                            std::string& out) {
    const std::string& name = type->full_name();
    if (name == "google.protobuf.Duration") {
      if (!node.IsScalar() || !validDuration(node.Scalar())) {
        return error(node, path,
                     absl::StrCat("invalid duration", scalarHint(node),
                                  " (expected a string such as \"5s\" or \"0.25s\")"));
      }
      appendJsonString(out, node.Scalar());
      return absl::OkStatus();
    }
    if (name == "google.protobuf.Timestamp") {
      google::protobuf::Timestamp ts;
      if (!node.IsScalar() || !google::protobuf::util::TimeUtil::FromString(node.Scalar(), &ts)) {
        return error(node, path,
                     absl::StrCat("invalid timestamp", scalarHint(node),
                                  " (expected RFC 3339, e.g. \"2024-07-19T00:00:00Z\")"));
      }
      appendJsonString(out, node.Scalar());
      return absl::OkStatus();
    }
    if (name == "google.protobuf.FieldMask") {
      if (!node.IsScalar()) return error(node, path, "expected a field mask string");
      appendJsonString(out, node.Scalar());
      return absl::OkStatus();
    }
    if (isWrapper(name)) {
      return single(node, type->FindFieldByName("value"), nullptr, nullptr, path, out);
    }
    if (name == "google.protobuf.Struct") {
      if (!node.IsMap()) {
        return error(node, path, absl::StrCat("expected a mapping, got ", nodeKind(node)));
      }
      freeValue(node, out);
      return absl::OkStatus();
    }
    if (name == "google.protobuf.ListValue") {
      if (!node.IsSequence()) {
        return error(node, path, absl::StrCat("expected a sequence, got ", nodeKind(node)));
      }
      freeValue(node, out);
      return absl::OkStatus();
    }
    if (name == "google.protobuf.Value") {
      freeValue(node, out);
      return absl::OkStatus();
    }
    return message(node, type, holder, path, out);
  }

  absl::Status any(const YAML::Node& node, const ExtensionSite& site, const std::string& path,
                   std::string& out) {
    if (!node.IsMap()) {
      return error(node, path,
                   absl::StrCat("expected a mapping with '@type' for google.protobuf.Any, got ",
                                nodeKind(node)));
    }
    std::string url;
    const YAML::Node type_node = node["@type"];
    if (type_node && !type_node.IsScalar()) {
      return error(type_node, fieldPath(path, "@type"), "must be a string");
    }
    if (type_node) url = type_node.Scalar();
    if (auto s = checkExtensionType(site, url, path); !s.ok()) {
      return withLocation(type_node ? type_node : node, s);
    }
    absl::string_view type_name = url;
    if (size_t slash = url.rfind('/'); slash != std::string::npos) {
      type_name = absl::string_view(url).substr(slash + 1);
    }
    const Descriptor* payload = google::protobuf::DescriptorPool::generated_pool()
                                    ->FindMessageTypeByName(std::string(type_name));
    if (payload == nullptr) {
      return error(type_node, path,
                   absl::StrCat("unknown type URL '", url, "' (not in turnout's descriptor pool)"));
    }
    if (hasSpecialJson(payload->full_name())) {
      out += "{\"@type\":";
      appendJsonString(out, url);
      const YAML::Node v = node["value"];
      if (v) {
        out += ",\"value\":";
        if (auto s = messageValue(v, payload, site.any_field, fieldPath(path, "value"), out);
            !s.ok()) {
          return s;
        }
      }
      out.push_back('}');
      return absl::OkStatus();
    }
    return message(node, payload, site.any_field, path, out, url);
  }

  absl::Status enumValue(const YAML::Node& node, const EnumDescriptor* type,
                         const std::string& path, std::string& out) {
    if (!node.IsScalar()) {
      return error(node, path,
                   absl::StrCat("expected an enum value of ", type->full_name(), ", got ",
                                nodeKind(node)));
    }
    const std::string& text = node.Scalar();
    int32_t number = 0;
    if (absl::SimpleAtoi(text, &number)) {
      absl::StrAppend(&out, number);
      return absl::OkStatus();
    }
    const auto* v = type->FindValueByName(text);
    if (v == nullptr) v = type->FindValueByName(absl::AsciiStrToUpper(text));
    if (v == nullptr) {
      std::vector<std::string> names;
      for (int i = 0; i < type->value_count(); ++i) names.push_back(type->value(i)->name());
      return error(node, path,
                   absl::StrCat("unknown enum value '", text, "' for ", type->full_name(),
                                " (valid: ", absl::StrJoin(names, ", "), ")"));
    }
    appendJsonString(out, v->name());
    return absl::OkStatus();
  }

  absl::Status scalar(const YAML::Node& node, const FieldDescriptor* f, const std::string& path,
                      std::string& out) {
    if (!node.IsScalar()) {
      return error(node, path,
                   absl::StrCat("expected ", typeLabel(f), ", got ", nodeKind(node)));
    }
    const std::string& text = node.Scalar();
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_STRING: {
        if (f->type() == FieldDescriptor::TYPE_BYTES) {
          std::string decoded;
          if (!absl::Base64Unescape(text, &decoded) && !absl::WebSafeBase64Unescape(text, &decoded)) {
            return error(node, path, "expected base64-encoded bytes");
          }
          appendJsonString(out, text);
          return absl::OkStatus();
        }
        // Envoy reads plain `true`/`yes`/`on` as bools and small integers as numbers, which
        // its JSON parser then refuses for a string field.
        if (plainBool(node)) {
          return error(node, path,
                       absl::StrCat("expected a string, got the plain scalar '", text,
                                    "', which YAML reads as a bool; quote it"));
        }
        if (auto i = plainInt(node);
            i && *i >= std::numeric_limits<int32_t>::min() && *i <= std::numeric_limits<int32_t>::max()) {
          return error(node, path,
                       absl::StrCat("expected a string, got the number ", text, "; quote it"));
        }
        appendJsonString(out, text);
        return absl::OkStatus();
      }
      case FieldDescriptor::CPPTYPE_BOOL: {
        if (auto b = plainBool(node)) {
          out += *b ? "true" : "false";
          return absl::OkStatus();
        }
        if (isQuoted(node) && (text == "true" || text == "false")) {
          out += text;
          return absl::OkStatus();
        }
        return error(node, path, absl::StrCat("expected a bool, got '", text, "'"));
      }
      case FieldDescriptor::CPPTYPE_INT32:
      case FieldDescriptor::CPPTYPE_INT64:
      case FieldDescriptor::CPPTYPE_UINT32:
      case FieldDescriptor::CPPTYPE_UINT64:
        return integer(node, f, path, out);
      case FieldDescriptor::CPPTYPE_FLOAT:
      case FieldDescriptor::CPPTYPE_DOUBLE: {
        if (text == "Infinity" || text == "-Infinity" || text == "NaN") {
          appendJsonString(out, text);
          return absl::OkStatus();
        }
        double d = 0;
        if (plainBool(node) || !absl::SimpleAtod(text, &d) || !std::isfinite(d)) {
          return error(node, path, absl::StrCat("expected a number, got '", text, "'"));
        }
        if (f->cpp_type() == FieldDescriptor::CPPTYPE_FLOAT &&
            std::fabs(d) > std::numeric_limits<float>::max()) {
          return error(node, path, absl::StrCat("value out of range for float: ", text));
        }
        absl::StrAppend(&out, absl::StrFormat("%.17g", d));
        return absl::OkStatus();
      }
      default:
        return error(node, path, "unsupported field type");
    }
  }

  static std::string typeLabel(const FieldDescriptor* f) {
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_STRING:
        return f->type() == FieldDescriptor::TYPE_BYTES ? "base64 bytes" : "a string";
      case FieldDescriptor::CPPTYPE_BOOL: return "a bool";
      default: return "a number";
    }
  }

  absl::Status integer(const YAML::Node& node, const FieldDescriptor* f, const std::string& path,
                       std::string& out) {
    const std::string& text = node.Scalar();
    bool is_unsigned = f->cpp_type() == FieldDescriptor::CPPTYPE_UINT32 ||
                       f->cpp_type() == FieldDescriptor::CPPTYPE_UINT64;
    bool is64 = f->cpp_type() == FieldDescriptor::CPPTYPE_INT64 ||
                f->cpp_type() == FieldDescriptor::CPPTYPE_UINT64;
    absl::string_view type_name = f->type_name();
    auto out_of_range = [&]() {
      return error(node, path, absl::StrCat("value out of range for ", type_name, ": ", text));
    };
    if (plainBool(node)) {
      return error(node, path, absl::StrCat("expected an integer, got '", text, "'"));
    }
    if (is_unsigned) {
      uint64_t u = 0;
      bool ok = absl::SimpleAtoi(text, &u);
      if (!ok) {
        int64_t neg = 0;
        if (absl::SimpleAtoi(text, &neg) || plainInt(node)) return out_of_range();
        double d = 0;
        if (absl::SimpleAtod(text, &d) && std::isfinite(d) && d == std::floor(d)) {
          if (d < 0 || d > 18446744073709549568.0) return out_of_range();
          u = static_cast<uint64_t>(d);
          ok = true;
        } else if (!isQuoted(node) && YAML::convert<uint64_t>::decode(node, u)) {
          ok = true;  // hex or octal, as yaml-cpp reads them
        }
      }
      if (!ok) return error(node, path, absl::StrCat("expected an integer, got '", text, "'"));
      if (!is64 && u > std::numeric_limits<uint32_t>::max()) return out_of_range();
      if (is64) {
        absl::StrAppend(&out, "\"", u, "\"");
      } else {
        absl::StrAppend(&out, u);
      }
      return absl::OkStatus();
    }
    int64_t i = 0;
    bool ok = absl::SimpleAtoi(text, &i);
    if (!ok) {
      uint64_t big = 0;
      if (absl::SimpleAtoi(text, &big)) return out_of_range();
      double d = 0;
      if (absl::SimpleAtod(text, &d) && std::isfinite(d) && d == std::floor(d)) {
        if (d < -9223372036854775808.0 || d >= 9223372036854775808.0) return out_of_range();
        i = static_cast<int64_t>(d);
        ok = true;
      } else if (auto p = plainInt(node)) {
        i = *p;
        ok = true;
      }
    }
    if (!ok) return error(node, path, absl::StrCat("expected an integer, got '", text, "'"));
    if (!is64 && (i < std::numeric_limits<int32_t>::min() || i > std::numeric_limits<int32_t>::max())) {
      return out_of_range();
    }
    if (is64) {
      absl::StrAppend(&out, "\"", i, "\"");
    } else {
      absl::StrAppend(&out, i);
    }
    return absl::OkStatus();
  }

  // google.protobuf.Value and friends: free-form, typed like Envoy's YAML reader.
  void freeValue(const YAML::Node& node, std::string& out) {
    switch (node.Type()) {
      case YAML::NodeType::Map: {
        out.push_back('{');
        bool first = true;
        for (const auto& kv : node) {
          if (kv.first.Tag() == "!ignore") continue;
          if (!first) out.push_back(',');
          first = false;
          appendJsonString(out, kv.first.IsScalar() ? kv.first.Scalar() : std::string());
          out.push_back(':');
          freeValue(kv.second, out);
        }
        out.push_back('}');
        return;
      }
      case YAML::NodeType::Sequence: {
        out.push_back('[');
        bool first = true;
        for (const auto& item : node) {
          if (!first) out.push_back(',');
          first = false;
          freeValue(item, out);
        }
        out.push_back(']');
        return;
      }
      case YAML::NodeType::Scalar: {
        const std::string& text = node.Scalar();
        if (isQuoted(node)) {
          appendJsonString(out, text);
          return;
        }
        if (json_mode_) {
          double d = 0;
          if (text == "true" || text == "false") {
            out += text;
          } else if (absl::SimpleAtod(text, &d) && std::isfinite(d)) {
            absl::StrAppend(&out, absl::StrFormat("%.17g", d));
          } else {
            appendJsonString(out, text);
          }
          return;
        }
        if (auto b = plainBool(node)) {
          out += *b ? "true" : "false";
          return;
        }
        if (auto i = plainInt(node); i && *i >= std::numeric_limits<int32_t>::min() &&
                                     *i <= std::numeric_limits<int32_t>::max()) {
          absl::StrAppend(&out, *i);
          return;
        }
        appendJsonString(out, text);
        return;
      }
      default:
        out += "null";
        return;
    }
  }

  const MessageLoadOptions& options_;
  std::vector<std::string>* warnings_;
  bool json_mode_;
};

bool looksLikeJson(absl::string_view text) {
  for (char c : text) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') continue;
    return c == '{' || c == '[';
  }
  return false;
}

// A google.protobuf.Any's payload as the message its type URL names, or
// null when the type is not linked in or the bytes do not parse (the
// loaders and the extension checks report those).
std::unique_ptr<Message> unpackedAny(const Message& any) {
  const auto* d = any.GetDescriptor();
  const auto* r = any.GetReflection();
  const std::string url = r->GetString(any, d->FindFieldByNumber(1));
  const auto slash = url.rfind('/');
  const Descriptor* type =
      google::protobuf::DescriptorPool::generated_pool()->FindMessageTypeByName(
          slash == std::string::npos ? url : url.substr(slash + 1));
  if (type == nullptr) return nullptr;
  const Message* prototype =
      google::protobuf::MessageFactory::generated_factory()->GetPrototype(type);
  if (prototype == nullptr) return nullptr;
  std::unique_ptr<Message> m(prototype->New());
  if (!m->ParseFromString(r->GetString(any, d->FindFieldByNumber(2)))) return nullptr;
  return m;
}

absl::Status checkUnknownFields(const Message& msg, const std::string& path,
                                const MessageLoadOptions& options,
                                std::vector<std::string>* warnings) {
  return takeUnknownFields(msg, path, !options.allow_unknown_fields,
                           options.unknown_fields ? options.unknown_fields : warnings);
}

class TextErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, int column, const std::string& message) override {
    if (first_.empty()) first_ = absl::StrCat("line ", line + 1, ":", column + 1, ": ", message);
  }
  void AddWarning(int, int, const std::string&) override {}
  const std::string& first() const { return first_; }

 private:
  std::string first_;
};

// The generated descriptor pool builds a .proto file's descriptors the first
// time something refers to it (a field's type, an Any's type, an option's
// extension), and keeps them for the life of the process. Parsing a large
// config builds them in the middle of the YAML tree's and the JSON
// converter's temporaries: each of the ~2,000 small symbol-table entries then
// pins the page of a freed temporary, which malloc_trim cannot return (about
// 6 MB of resident free heap at 10,000 sandboxes). Building them first, for
// every message the config's type can reach (extension types by the
// allowlist, as the parse would), keeps them together at the start.
constexpr size_t kPrebuildDescriptorsAbove = 64 * 1024;
std::atomic<size_t> prebuilt_types{0};

void prebuildDescriptors(const google::protobuf::Descriptor* root) {
  using google::protobuf::Descriptor;
  using google::protobuf::FieldDescriptor;
  const auto* pool = google::protobuf::DescriptorPool::generated_pool();
  std::unique_ptr<google::protobuf::util::TypeResolver> resolver(
      google::protobuf::util::NewTypeResolverForDescriptorPool("type.googleapis.com", pool));
  absl::flat_hash_set<std::pair<const Descriptor*, const FieldDescriptor*>> seen;
  absl::flat_hash_set<const Descriptor*> resolved;
  std::vector<std::pair<const Descriptor*, const FieldDescriptor*>> pending{{root, nullptr}};
  while (!pending.empty()) {
    auto [d, holder] = pending.back();
    pending.pop_back();
    if (d == nullptr || !seen.insert({d, holder}).second) continue;
    if (resolved.insert(d).second) {
      // What the JSON parse does per type: the options' extensions.
      google::protobuf::Type type;
      (void)resolver->ResolveMessageType(absl::StrCat("type.googleapis.com/", d->full_name()),
                                         &type);
    }
    prebuilt_types.store(resolved.size(), std::memory_order_relaxed);
    for (int i = 0; i < d->field_count(); ++i) {
      const FieldDescriptor* f = d->field(i);
      if (f->type() != FieldDescriptor::TYPE_MESSAGE && f->type() != FieldDescriptor::TYPE_GROUP) {
        (void)f->enum_type();
        continue;
      }
      const Descriptor* m = f->message_type();
      if (m->full_name() == "google.protobuf.Any") {
        for (absl::string_view t : supportedExtensionTypes(ExtensionSite{f, holder, {}})) {
          pending.emplace_back(pool->FindMessageTypeByName(std::string(t)), f);
        }
      } else if (f->is_map()) {
        const FieldDescriptor* value = m->map_value();
        if (value->message_type() != nullptr &&
            value->message_type()->full_name() == "google.protobuf.Any") {
          for (absl::string_view t : supportedExtensionTypes(ExtensionSite{f, holder, {}})) {
            pending.emplace_back(pool->FindMessageTypeByName(std::string(t)), f);
          }
        }
      }
      pending.emplace_back(m, f);
    }
  }
}

}  // namespace

void collectUnknownFields(const Message& msg, const std::string& path,
                          std::vector<std::string>& out) {
  const auto* r = msg.GetReflection();
  const auto& unknown = r->GetUnknownFields(msg);
  if (!unknown.empty()) {
    std::vector<int> numbers;
    for (int i = 0; i < unknown.field_count(); ++i) numbers.push_back(unknown.field(i).number());
    out.push_back(
        atPath(path, absl::StrCat("unknown field number(s) ", absl::StrJoin(numbers, ", "), " in ",
                                  msg.GetDescriptor()->full_name())));
  }
  if (msg.GetDescriptor()->full_name() == "google.protobuf.Any") {
    // Envoy checks inside an Any's payload too (typed_config).
    if (auto payload = unpackedAny(msg)) collectUnknownFields(*payload, path, out);
    return;
  }
  std::vector<const FieldDescriptor*> fields;
  r->ListFields(msg, &fields);
  for (const FieldDescriptor* f : fields) {
    if (f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) continue;
    std::string fpath = fieldPath(path, f->name());
    if (f->is_repeated()) {
      for (int i = 0; i < r->FieldSize(msg, f); ++i) {
        collectUnknownFields(r->GetRepeatedMessage(msg, f, i), indexPath(fpath, i), out);
      }
    } else {
      collectUnknownFields(r->GetMessage(msg, f), fpath, out);
    }
  }
}

absl::Status takeUnknownFields(const Message& msg, const std::string& path, bool reject,
                               std::vector<std::string>* sink, std::string_view reject_note) {
  std::vector<std::string> found;
  collectUnknownFields(msg, path, found);
  if (found.empty()) return absl::OkStatus();
  if (reject) return absl::InvalidArgumentError(found.front() + std::string(reject_note));
  if (sink != nullptr) sink->insert(sink->end(), found.begin(), found.end());
  return absl::OkStatus();
}

size_t prebuiltDescriptorTypes() { return prebuilt_types.load(std::memory_order_relaxed); }

absl::Status loadMessageFromYaml(absl::string_view text, google::protobuf::Message& message,
                                 const MessageLoadOptions& options,
                                 std::vector<std::string>* warnings, absl::string_view path) {
  message.Clear();
  // Below 64 KiB the YAML tree is too small to leave much behind, and
  // building every reachable descriptor would cost a small config ~0.3 MB.
  static std::once_flag prebuilt;
  if (text.size() >= kPrebuildDescriptorsAbove) {
    std::call_once(prebuilt, [&] { prebuildDescriptors(message.GetDescriptor()); });
  }
  std::string json;
  try {
    YAML::Node root = YAML::Load(std::string(text));
    if (root.IsNull()) {
      return absl::InvalidArgumentError(atPath(path, "the configuration is empty"));
    }
    if (!root.IsMap()) {
      return absl::InvalidArgumentError(
          atPath(path, absl::StrCat("expected a mapping at the top level (",
                                    message.GetDescriptor()->full_name(), ")")));
    }
    YamlToJson converter(options, warnings, looksLikeJson(text));
    if (auto s = converter.message(root, message.GetDescriptor(), nullptr, std::string(path), json);
        !s.ok()) {
      return s;
    }
  } catch (const YAML::Exception& e) {
    std::string where = e.mark.is_null()
                            ? std::string()
                            : absl::StrCat(" at line ", e.mark.line + 1, ", column ",
                                           e.mark.column + 1);
    return absl::InvalidArgumentError(
        atPath(path, absl::StrCat("invalid YAML", where, ": ", e.msg)));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(atPath(path, absl::StrCat("invalid YAML: ", e.what())));
  }
  google::protobuf::util::JsonParseOptions json_options;
  json_options.ignore_unknown_fields = false;
  auto status = google::protobuf::util::JsonStringToMessage(json, &message, json_options);
  if (!status.ok()) {
    // The walk above checks every value, so this is a bug in it; still never a crash.
    return absl::InvalidArgumentError(atPath(
        path, absl::StrCat("cannot convert to ", message.GetDescriptor()->full_name(), ": ",
                           std::string(status.message()))));
  }
  return absl::OkStatus();
}

absl::Status loadMessageFromBinary(absl::string_view bytes, google::protobuf::Message& message,
                                   const MessageLoadOptions& options,
                                   std::vector<std::string>* warnings) {
  message.Clear();
  if (!message.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::InvalidArgumentError(absl::StrCat("unable to parse the input as a binary protobuf (type ",
                                                   message.GetDescriptor()->full_name(), ")"));
  }
  return checkUnknownFields(message, "", options, warnings);
}

absl::Status loadMessageFromTextFormat(absl::string_view text, google::protobuf::Message& message,
                                       const MessageLoadOptions& options,
                                       std::vector<std::string>* /*warnings*/) {
  message.Clear();
  google::protobuf::TextFormat::Parser parser;
  TextErrorCollector errors;
  parser.RecordErrorsTo(&errors);
  parser.AllowUnknownField(options.allow_unknown_fields);
  parser.AllowUnknownExtension(options.allow_unknown_fields);
  if (!parser.ParseFromString(std::string(text), &message)) {
    return absl::InvalidArgumentError(
        absl::StrCat("unable to parse the input as a text protobuf (type ",
                     message.GetDescriptor()->full_name(), "): ", errors.first()));
  }
  return absl::OkStatus();
}

}  // namespace turnout::config
