#include "proxy/tls/secret_resolver.h"

#include "absl/strings/str_cat.h"
#include "config/bootstrap/field_policy.h"
#include "proxy/tls/tls_field_path.h"

namespace turnout::proxy::tls {

absl::StatusOr<SecretResolver> SecretResolver::create(
    const google::protobuf::RepeatedPtrField<tls_v3::Secret>& secrets,
    std::string_view field_path) {
  SecretResolver resolver;
  for (int i = 0; i < secrets.size(); ++i) {
    const tls_v3::Secret& s = secrets[i];
    std::string path = indexPath(field_path, static_cast<size_t>(i));
    if (auto st = config::checkFieldPolicy(s, asAbsl(path)); !st.ok()) return st;
    if (s.name().empty()) {
      return absl::InvalidArgumentError(
          atPath(fieldPath(path, "name"), "a static secret needs a name"));
    }
    if (s.type_case() == tls_v3::Secret::TYPE_NOT_SET) {
      return absl::InvalidArgumentError(
          atPath(path, "a static secret needs tls_certificate or validation_context"));
    }
    auto [it, inserted] = resolver.secrets_.try_emplace(s.name(), Entry{s, path});
    if (!inserted) {
      return absl::InvalidArgumentError(atPath(
          fieldPath(path, "name"),
          absl::StrCat("duplicate secret name '", s.name(), "' (first at ", it->second.path, ")")));
    }
  }
  return resolver;
}

const SecretResolver::Entry* SecretResolver::find(std::string_view name) const {
  auto it = secrets_.find(absl::string_view(name.data(), name.size()));
  return it == secrets_.end() ? nullptr : &it->second;
}

}  // namespace turnout::proxy::tls
