#pragma once

// Static secrets by name (bootstrap static_resources.secrets[]), the only
// source of SdsSecretConfig references turnout resolves: a reference that
// names an SDS server (sds_config) is rejected by the field policy.
//
// Built once on the main thread with the bootstrap; immutable afterwards, so
// it is safe to read from any thread. Contexts copy what they need from it.

#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "envoy/extensions/transport_sockets/tls/v3/secret.pb.h"
#include "google/protobuf/repeated_field.h"

namespace turnout::proxy::tls {

namespace tls_v3 = envoy::extensions::transport_sockets::tls::v3;

class SecretResolver {
 public:
  // An empty resolver: every reference is unknown.
  SecretResolver() = default;

  // `secrets` is static_resources.secrets; `field_path` its path
  // ("static_resources.secrets"). Rejects an empty or duplicate name, a
  // secret type turnout does not honour and any field the policy refuses.
  static absl::StatusOr<SecretResolver> create(
      const google::protobuf::RepeatedPtrField<tls_v3::Secret>& secrets,
      std::string_view field_path);

  // The secret named `name` and the path it was configured at; null if none.
  struct Entry {
    tls_v3::Secret secret;
    std::string path;  // e.g. static_resources.secrets[2]
  };
  const Entry* find(std::string_view name) const;

 private:
  absl::flat_hash_map<std::string, Entry> secrets_;
};

}  // namespace turnout::proxy::tls
