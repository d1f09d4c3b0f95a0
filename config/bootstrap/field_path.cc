#include "config/bootstrap/field_path.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/escaping.h"

#include <vector>

namespace turnout::config {

std::string fieldPath(absl::string_view parent, absl::string_view field) {
  if (parent.empty()) return std::string(field);
  return absl::StrCat(parent, ".", field);
}

std::string indexPath(absl::string_view parent, size_t index) {
  return absl::StrCat(parent, "[", index, "]");
}

std::string keyPath(absl::string_view parent, absl::string_view key) {
  return absl::StrCat(parent, "[\"", absl::CEscape(key), "\"]");
}

std::string atPath(absl::string_view path, absl::string_view message) {
  if (path.empty()) return std::string(message);
  return absl::StrCat(path, ": ", message);
}

absl::Status forEachSubMessage(const google::protobuf::Message& msg, absl::string_view path,
                               const std::function<absl::Status(const SubMessage&)>& visit) {
  using google::protobuf::FieldDescriptor;
  const google::protobuf::Reflection* r = msg.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  r->ListFields(msg, &fields);
  for (const FieldDescriptor* f : fields) {
    if (f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) continue;
    const std::string fpath = fieldPath(path, f->name());
    if (f->is_map()) {
      const FieldDescriptor* key_f = f->message_type()->FindFieldByNumber(1);
      const FieldDescriptor* val_f = f->message_type()->FindFieldByNumber(2);
      if (val_f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) continue;
      for (int i = 0; i < r->FieldSize(msg, f); ++i) {
        const google::protobuf::Message& entry = r->GetRepeatedMessage(msg, f, i);
        const google::protobuf::Reflection* er = entry.GetReflection();
        const std::string key = key_f->cpp_type() == FieldDescriptor::CPPTYPE_STRING
                                    ? er->GetString(entry, key_f)
                                    : absl::StrCat(i);
        const std::string epath = keyPath(fpath, key);
        if (auto s = visit(SubMessage{er->GetMessage(entry, val_f), f, val_f, epath, &key});
            !s.ok()) {
          return s;
        }
      }
    } else if (f->is_repeated()) {
      for (int i = 0; i < r->FieldSize(msg, f); ++i) {
        const std::string ipath = indexPath(fpath, static_cast<size_t>(i));
        if (auto s = visit(SubMessage{r->GetRepeatedMessage(msg, f, i), f, f, ipath, nullptr});
            !s.ok()) {
          return s;
        }
      }
    } else if (auto s = visit(SubMessage{r->GetMessage(msg, f), f, f, fpath, nullptr}); !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

}  // namespace turnout::config
