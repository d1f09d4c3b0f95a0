#pragma once

// `--xds-cache DIR` (docs/xds.md): the last accepted xDS resources of each
// type, kept on disk so that a restarted turnout serves them before (or
// without) its control plane answering. One file per type,
// DIR/<cds|eds|lds|rds|vhds>.pb: a serialized DiscoveryResponse with the
// version_info accepted and every resource of the type that turnout holds
// (CDS/LDS: the last full set; RDS/EDS: the resources of every accepted
// response, merged by name, minus those no longer asked for). Written to a
// temporary file, fsync'd and renamed into place, so a crash leaves the old
// or the new file, never a torn one. VHDS (Delta only) keeps each resource
// in its envoy.service.discovery.v3.Resource wrapper (name and version),
// as XdsClient::restore needs for an incremental type. Main thread.

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "config/snapshot/discovery_response.h"
#include "config/xds/xds_client.h"
#include "envoy/service/discovery/v3/discovery.pb.h"

namespace turnout::proxy {

class XdsCache {
 public:
  // Creates DIR if needed; an error names it.
  static absl::StatusOr<std::unique_ptr<XdsCache>> create(const std::string& dir);

  // An accepted response of `type_url` (its resources as the handler saw them).
  // `wildcard`: the set replaces the type's; else merged by resource name.
  void store(const std::string& type_url, const std::string& version,
             const config::AnyList& resources, bool wildcard);
  // A Delta type with an incremental handler: the changed resources (kept
  // wrapped, by resource name) and the removed names.
  void storeDelta(const std::string& type_url, const config::xds::DeltaUpdate& update);
  // Named types: drops the resources no longer subscribed (written at the
  // next store). `namespaces`: the names are namespaces (VHDS).
  void retain(const std::string& type_url, const std::set<std::string>& names,
              bool namespaces = false);
  // Named types: drops these resources (no longer subscribed); what
  // retain() does for the names not in a set, without the set.
  void forget(const std::string& type_url, const std::vector<std::string>& names);
  // The cached response of a type, if a readable one exists.
  std::optional<envoy::service::discovery::v3::DiscoveryResponse> load(const std::string& type_url);

 private:
  explicit XdsCache(std::string dir) : dir_(std::move(dir)) {}
  std::string pathOf(const std::string& type_url) const;
  void write(const std::string& type_url);

  struct TypeCache {
    std::string version;
    std::map<std::string, google::protobuf::Any> by_name;
  };
  std::string dir_;
  std::map<std::string, TypeCache> types_;
};

// The name of a resource of one of the four types, or of a Resource
// wrapper, or empty.
std::string resourceName(const google::protobuf::Any& resource);

}  // namespace turnout::proxy
