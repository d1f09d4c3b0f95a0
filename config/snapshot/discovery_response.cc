#include "config/snapshot/discovery_response.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <functional>
#include <string_view>

#include "absl/hash/hash.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "config/bootstrap/extensions.h"
#include "config/bootstrap/field_policy.h"
#include "config/bootstrap/message_loader.h"
#include "config/bootstrap/pgv_validator.h"
#include "config/snapshot/endpoint_translator.h"
#include "config/snapshot/route_config_translator.h"
#include "config/snapshot/snapshot_builder.h"
#include "envoy/config/bootstrap/v3/bootstrap.pb.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/wire_format_lite.h"

namespace turnout::config {
namespace {

using envoy::config::bootstrap::v3::Bootstrap;

struct RawResponse {
  std::string version_info;
  std::vector<std::string> resources;  // each resource as YAML, without @type
};

absl::StatusOr<RawResponse> splitResponse(const std::string& text, absl::string_view type_url) {
  RawResponse out;
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("cannot parse the DiscoveryResponse: ", e.what()));
  }
  if (!root.IsMap()) {
    return absl::InvalidArgumentError("a DiscoveryResponse must be a mapping");
  }
  for (const auto& kv : root) {
    const std::string key = kv.first.as<std::string>("");
    if (key != "version_info" && key != "resources" && key != "type_url" && key != "nonce") {
      return absl::InvalidArgumentError(
          absl::StrCat(key, ": not supported in a DiscoveryResponse read from a file"));
    }
  }
  if (root["version_info"]) {
    if (!root["version_info"].IsScalar()) {
      return absl::InvalidArgumentError("version_info: must be a string");
    }
    out.version_info = root["version_info"].Scalar();
  }
  if (root["type_url"] && root["type_url"].IsScalar() && root["type_url"].Scalar() != type_url) {
    return absl::InvalidArgumentError(absl::StrCat("type_url: expected '", type_url, "', got '",
                                                   root["type_url"].Scalar(), "'"));
  }
  const YAML::Node resources = root["resources"];
  if (resources && !resources.IsNull() && !resources.IsSequence()) {
    return absl::InvalidArgumentError("resources: must be a list");
  }
  if (!resources) return out;
  for (size_t i = 0; i < resources.size(); ++i) {
    const std::string path = absl::StrCat("resources[", i, "]");
    YAML::Node r = YAML::Clone(resources[i]);
    if (!r.IsMap()) return absl::InvalidArgumentError(absl::StrCat(path, ": must be a mapping"));
    const YAML::Node type = r["@type"];
    if (!type || !type.IsScalar() || type.Scalar() != type_url) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ".@type: expected '", type_url, "', got '",
                       type && type.IsScalar() ? type.Scalar() : std::string(), "'"));
    }
    r.remove("@type");
    YAML::Emitter emit;
    emit << YAML::DoubleQuoted << r;
    out.resources.emplace_back(emit.c_str());
  }
  return out;
}

// Errors of the synthetic bootstrap name the file's resources.
absl::Status inFile(const absl::Status& s, absl::string_view bootstrap_field) {
  if (s.ok()) return s;
  std::string msg = absl::StrReplaceAll(
      s.message(), {{absl::StrCat("static_resources.", bootstrap_field, "["), "resources["}});
  return absl::Status(s.code(), msg);
}

// The checks every resource set goes through once loaded into the
// synthetic bootstrap's static_resources.<field>.
absl::StatusOr<DiscoverySnapshot> finishBootstrap(Bootstrap bootstrap, absl::string_view field,
                                                  DiscoverySnapshot out) {
  if (auto s = validateExtensions(bootstrap); !s.ok()) return inFile(s, field);
  if (auto s = checkFieldPolicy(bootstrap); !s.ok()) return inFile(s, field);
  if (auto s = validateProtoRules(bootstrap); !s.ok()) return inFile(s, field);
  // Routes of dynamic listeners may name clusters that CDS delivers.
  bootstrap.mutable_dynamic_resources()->mutable_cds_config()->mutable_path_config_source()->set_path(
      "-");
  auto snapshot = SnapshotBuilder::build(std::move(bootstrap));
  if (!snapshot.ok()) return inFile(snapshot.status(), field);
  out.snapshot = *std::move(snapshot);
  return out;
}

template <typename Add>
absl::StatusOr<DiscoverySnapshot> parseIntoBootstrap(const std::string& text,
                                                     absl::string_view type_url,
                                                     absl::string_view field, Add add,
                                                     UnknownFields unknown) {
  auto raw = splitResponse(text, type_url);
  if (!raw.ok()) return raw.status();
  DiscoverySnapshot out;
  out.version_info = raw->version_info;
  Bootstrap bootstrap;
  std::vector<std::string> found;
  MessageLoadOptions opts{.allow_unknown_fields = unknown != UnknownFields::kReject,
                          .unknown_fields = &found};
  for (size_t i = 0; i < raw->resources.size(); ++i) {
    // Loaded as `static_resources.<field>[i]` of a bootstrap, so that every
    // check is the bootstrap's; the error paths are rewritten to resources[i].
    const std::string wrapped =
        absl::StrCat("static_resources: {", field, ": [", raw->resources[i], "]}");
    Bootstrap one;
    if (auto s = loadMessageFromYaml(wrapped, one, opts, &out.warnings); !s.ok()) {
      return inFile(absl::Status(s.code(), absl::StrReplaceAll(
                                               s.message(), {{absl::StrCat(field, "[0]"),
                                                              absl::StrCat(field, "[", i, "]")}})),
                    field);
    }
    const std::string wrapped_path = absl::StrCat("static_resources.", field, "[0]");
    if (unknown == UnknownFields::kIgnore) found.clear();
    for (const std::string& f : found) {
      out.unknown_fields.push_back(
          absl::StrReplaceAll(f, {{wrapped_path, absl::StrCat("resources[", i, "]")}}));
    }
    found.clear();
    add(one, bootstrap);
  }
  return finishBootstrap(std::move(bootstrap), field, std::move(out));
}

// With --reject-unknown-dynamic-fields, the first unknown field's error says
// why it is refused.
constexpr std::string_view kRejectNote =
    " (unknown fields are refused: --reject-unknown-dynamic-fields)";

// Unpacks resources[i] of an xDS response into `msg`; the Any's type was
// checked by the XdsClient. Unknown fields go by `unknown`: refused, listed
// in `list`, or not looked for.
absl::Status unpackResource(const google::protobuf::Any& any, google::protobuf::Message& msg,
                            size_t i, UnknownFields unknown, std::vector<std::string>& list) {
  const std::string path = absl::StrCat("resources[", i, "]");
  if (!any.UnpackTo(&msg)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": cannot parse a ", msg.GetDescriptor()->full_name()));
  }
  if (unknown == UnknownFields::kIgnore) return absl::OkStatus();
  return takeUnknownFields(msg, path, unknown == UnknownFields::kReject, &list, kRejectNote);
}

// The text loaders' options for `unknown`; what is ignored goes to `discard`.
MessageLoadOptions loadOptions(UnknownFields unknown, std::vector<std::string>& list,
                               std::vector<std::string>& discard) {
  return MessageLoadOptions{.allow_unknown_fields = unknown != UnknownFields::kReject,
                            .unknown_fields = unknown == UnknownFields::kIgnore ? &discard : &list};
}

absl::Status checkRouteConfiguration(envoy::config::route::v3::RouteConfiguration rc,
                                     const std::string& path, DiscoveryRoutes& out,
                                     VhdsSource vhds) {
  if (auto s = validateExtensions(rc, path); !s.ok()) return s;
  if (auto s = checkFieldPolicy(rc, path); !s.ok()) return s;
  if (auto s = validateProtoRules(rc, path); !s.ok()) return s;
  if (auto s = checkVhds(rc, path, vhds); !s.ok()) return s;
  for (const auto& [name, table] : out.tables) {
    if (name == rc.name()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ".name: duplicate route configuration '", name, "'"));
    }
  }
  absl::StatusOr<std::shared_ptr<const routing::RouteTable>> table;
  if (rc.has_vhds()) {
    // Accepted above: the inline virtual hosts now; VHDS adds the others.
    envoy::config::route::v3::RouteConfiguration inline_only = rc;
    inline_only.clear_vhds();
    table = translateRouteConfiguration(inline_only, path);
  } else {
    table = translateRouteConfiguration(rc, path);
  }
  if (!table.ok()) return table.status();
  out.tables.emplace_back(rc.name(), *std::move(table));
  out.configs.push_back(std::move(rc));
  return absl::OkStatus();
}

// Appends `cla` to `out`, indexed by name (a linear find made a
// 20,000-assignment response quadratic, and so did looking each cluster's
// assignment up afterwards).
absl::Status checkLoadAssignment(const envoy::config::endpoint::v3::ClusterLoadAssignment& cla,
                                 const std::string& path, DiscoveryEndpoints& out) {
  if (auto s = validateExtensions(cla, path); !s.ok()) return s;
  if (auto s = checkFieldPolicy(cla, path); !s.ok()) return s;
  if (auto s = validateProtoRules(cla, path); !s.ok()) return s;
  if (!out.index.emplace(cla.cluster_name(), out.assignments.size()).second) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ".cluster_name: duplicate ClusterLoadAssignment '", cla.cluster_name(), "'"));
  }
  auto localities = translateLoadAssignment(cla, path, ClusterConfig::Type::Eds);
  if (!localities.ok()) return localities.status();
  out.assignments.push_back({cla.cluster_name(), *std::move(localities)});
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<DiscoverySnapshot> parseClusterResponse(const std::string& text,
                                                       UnknownFields unknown) {
  return parseIntoBootstrap(
      text, kClusterTypeUrl, "clusters",
      [](Bootstrap& one, Bootstrap& all) {
        all.mutable_static_resources()->add_clusters()->Swap(
            one.mutable_static_resources()->mutable_clusters(0));
      },
      unknown);
}

absl::StatusOr<DiscoverySnapshot> parseListenerResponse(const std::string& text,
                                                        UnknownFields unknown) {
  return parseIntoBootstrap(
      text, kListenerTypeUrl, "listeners",
      [](Bootstrap& one, Bootstrap& all) {
        all.mutable_static_resources()->add_listeners()->Swap(
            one.mutable_static_resources()->mutable_listeners(0));
      },
      unknown);
}

absl::StatusOr<DiscoveryRoutes> parseRouteResponse(const std::string& text, UnknownFields unknown) {
  auto raw = splitResponse(text, kRouteConfigurationTypeUrl);
  if (!raw.ok()) return raw.status();
  DiscoveryRoutes out;
  out.version_info = raw->version_info;
  std::vector<std::string> discard;
  const MessageLoadOptions opts = loadOptions(unknown, out.unknown_fields, discard);
  for (size_t i = 0; i < raw->resources.size(); ++i) {
    const std::string path = absl::StrCat("resources[", i, "]");
    envoy::config::route::v3::RouteConfiguration rc;
    if (auto s = loadMessageFromYaml(raw->resources[i], rc, opts, &out.warnings, path); !s.ok()) {
      return s;
    }
    if (auto s = checkRouteConfiguration(std::move(rc), path, out, VhdsSource::kNone); !s.ok()) {
      return s;
    }
  }
  return out;
}

namespace {

absl::Status validateVirtualHost(const envoy::config::route::v3::VirtualHost& vh,
                                 const std::string& path) {
  if (auto s = validateExtensions(vh, path); !s.ok()) return s;
  if (auto s = checkFieldPolicy(vh, path); !s.ok()) return s;
  return validateProtoRules(vh, path);
}

// The payloads of length-delimited field `field` of a serialized message,
// in order, and the other fields' bytes as they came (`head`); false when
// malformed.
bool splitRepeatedField(std::string_view bytes, uint32_t field, std::string& head,
                        std::vector<absl::string_view>& items) {
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()),
                                            static_cast<int>(bytes.size()));
  const uint32_t wanted = (field << 3) | 2u;  // length-delimited
  while (true) {
    const int start = in.CurrentPosition();
    const uint32_t tag = in.ReadTag();
    if (tag == 0) return in.CurrentPosition() == static_cast<int>(bytes.size());
    if (tag == wanted) {
      uint32_t size = 0;
      if (!in.ReadVarint32(&size)) return false;
      const int at = in.CurrentPosition();
      if (!in.Skip(static_cast<int>(size))) return false;
      items.emplace_back(bytes.data() + at, size);
      continue;
    }
    if (!google::protobuf::internal::WireFormatLite::SkipField(&in, tag)) return false;
    head.append(bytes.data() + start, static_cast<size_t>(in.CurrentPosition() - start));
  }
}

constexpr uint32_t kVirtualHostsField = 2;  // RouteConfiguration.virtual_hosts
constexpr uint32_t kRoutesField = 3;        // VirtualHost.routes

// Two unrelated hash functions of a route's bytes: a route is taken as
// known only when both agree (an accidental match of 128 bits is not a
// concern).
absl::uint128 routeKey(absl::string_view bytes) {
  const std::string_view b(bytes.data(), bytes.size());
  return absl::MakeUint128(absl::Hash<std::string_view>{}(b), std::hash<std::string_view>{}(b));
}

void keysOf(const std::vector<absl::string_view>& routes, RouteKeys& keys) {
  keys.clear();
  keys.reserve(routes.size());
  for (const absl::string_view r : routes) keys.push_back(routeKey(r));
}

}  // namespace

RouteKeys routeKeys(std::string_view bytes) {
  std::string head;
  std::vector<absl::string_view> routes;
  RouteKeys keys;
  if (splitRepeatedField(bytes, kRoutesField, head, routes)) keysOf(routes, keys);
  return keys;
}

absl::StatusOr<routing::RouteTable::VirtualHostConstSharedPtr> checkVirtualHost(
    const envoy::config::route::v3::VirtualHost& vh, const std::string& path,
    std::vector<std::string>* unknown_fields) {
  if (auto s = takeUnknownFields(vh, path, unknown_fields == nullptr, unknown_fields, kRejectNote);
      !s.ok()) {
    return s;
  }
  if (auto s = validateVirtualHost(vh, path); !s.ok()) return s;
  return compileVirtualHost(vh, path);
}

absl::StatusOr<routing::RouteTable::VirtualHostConstSharedPtr> checkVirtualHost(
    std::string_view bytes, const std::string& path,
    const routing::RouteTable::CompiledVirtualHost* previous, const RouteKeys& previous_keys,
    RouteKeys& keys, std::vector<std::string>* unknown_fields) {
  keys.clear();
  auto whole = [&]() -> absl::StatusOr<routing::RouteTable::VirtualHostConstSharedPtr> {
    envoy::config::route::v3::VirtualHost vh;
    if (!vh.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
      keys.clear();
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": cannot parse a envoy.config.route.v3.VirtualHost"));
    }
    return checkVirtualHost(vh, path, unknown_fields);
  };
  std::string head;
  std::vector<absl::string_view> routes;
  if (!splitRepeatedField(bytes, kRoutesField, head, routes)) return whole();
  keysOf(routes, keys);
  if (previous == nullptr || previous_keys.size() != routing::RouteTable::routeCount(*previous)) {
    return whole();
  }
  // Each route whose bytes the last version had is kept; the host's own
  // fields and the other routes are parsed, checked and compiled.
  absl::flat_hash_map<absl::uint128, int32_t> known;
  known.reserve(previous_keys.size());
  for (size_t i = 0; i < previous_keys.size(); ++i) {
    known.try_emplace(previous_keys[i], static_cast<int32_t>(i));
  }
  std::vector<int32_t> reuse(routes.size(), -1);
  std::string partial = std::move(head);
  for (size_t i = 0; i < routes.size(); ++i) {
    if (auto it = known.find(keys[i]); it != known.end()) {
      reuse[i] = it->second;
      continue;
    }
    google::protobuf::io::StringOutputStream out(&partial);
    google::protobuf::io::CodedOutputStream coded(&out);
    coded.WriteTag((kRoutesField << 3) | 2u);
    coded.WriteVarint32(static_cast<uint32_t>(routes[i].size()));
    coded.WriteRaw(routes[i].data(), static_cast<int>(routes[i].size()));
  }
  envoy::config::route::v3::VirtualHost vh;
  // Unknown fields go the whole way, which names their routes by their
  // place in this version.
  std::vector<std::string> unknown;
  if (!vh.ParseFromString(partial) || !validateVirtualHost(vh, path).ok() ||
      (collectUnknownFields(vh, path, unknown), !unknown.empty())) {
    return whole();
  }
  auto compiled = compileVirtualHost(vh, path, *previous, reuse);
  // An error names a new route by its place among the new ones: the whole
  // check names it in this version.
  if (!compiled.ok()) return whole();
  return compiled;
}

absl::Status checkVhds(const envoy::config::route::v3::RouteConfiguration& rc,
                       const std::string& path, VhdsSource available) {
  if (!rc.has_vhds()) return absl::OkStatus();
  constexpr char kEnvoy[] =
      "only 'DELTA_GRPC' or 'ADS' (which uses Delta xDS) is supported as a config source";
  const auto& cs = rc.vhds().config_source();
  if (cs.has_api_config_source()) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ".vhds.config_source.api_config_source: ", kEnvoy,
        "; turnout takes VHDS only over the ADS stream (ads: {} with ads_config.api_type "
        "DELTA_GRPC), not from a separate source"));
  }
  if (!cs.has_ads()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ".vhds.config_source: ", kEnvoy));
  }
  switch (available) {
    case VhdsSource::kDeltaAds:
      return absl::OkStatus();
    case VhdsSource::kSotwAds:
      return absl::InvalidArgumentError(absl::StrCat(
          path, ".vhds.config_source.ads: ", kEnvoy,
          "; this ADS stream is State of the World (dynamic_resources.ads_config.api_type "
          "GRPC), VHDS needs DELTA_GRPC"));
    case VhdsSource::kNone:
      break;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      path, ".vhds: ", kEnvoy,
      "; turnout takes VHDS only for a route configuration delivered by RDS over ADS with "
      "dynamic_resources.ads_config.api_type DELTA_GRPC"));
}

const DiscoveryEndpoints::Assignment* DiscoveryEndpoints::find(
    const std::string& cluster_name) const {
  auto it = index.find(cluster_name);
  return it == index.end() ? nullptr : &assignments[it->second];
}

absl::StatusOr<DiscoveryEndpoints> parseEndpointResponse(const std::string& text,
                                                         UnknownFields unknown) {
  auto raw = splitResponse(text, kClusterLoadAssignmentTypeUrl);
  if (!raw.ok()) return raw.status();
  DiscoveryEndpoints out;
  out.version_info = raw->version_info;
  std::vector<std::string> discard;
  const MessageLoadOptions opts = loadOptions(unknown, out.unknown_fields, discard);
  for (size_t i = 0; i < raw->resources.size(); ++i) {
    const std::string path = absl::StrCat("resources[", i, "]");
    envoy::config::endpoint::v3::ClusterLoadAssignment cla;
    if (auto s = loadMessageFromYaml(raw->resources[i], cla, opts, &out.warnings, path); !s.ok()) {
      return s;
    }
    if (auto s = checkLoadAssignment(cla, path, out); !s.ok()) return s;
  }
  return out;
}

// ---- from an xDS DiscoveryResponse ----

absl::StatusOr<DiscoverySnapshot> parseClusterResources(const std::string& version_info,
                                                        const AnyList& resources,
                                                        UnknownFields unknown) {
  DiscoverySnapshot out;
  out.version_info = version_info;
  Bootstrap bootstrap;
  for (int i = 0; i < resources.size(); ++i) {
    auto* c = bootstrap.mutable_static_resources()->add_clusters();
    if (auto s = unpackResource(resources.Get(i), *c, static_cast<size_t>(i), unknown,
                                out.unknown_fields);
        !s.ok()) {
      return s;
    }
  }
  return finishBootstrap(std::move(bootstrap), "clusters", std::move(out));
}

absl::StatusOr<DiscoverySnapshot> parseListenerResources(const std::string& version_info,
                                                         const AnyList& resources,
                                                         UnknownFields unknown) {
  DiscoverySnapshot out;
  out.version_info = version_info;
  Bootstrap bootstrap;
  for (int i = 0; i < resources.size(); ++i) {
    auto* l = bootstrap.mutable_static_resources()->add_listeners();
    if (auto s = unpackResource(resources.Get(i), *l, static_cast<size_t>(i), unknown,
                                out.unknown_fields);
        !s.ok()) {
      return s;
    }
  }
  return finishBootstrap(std::move(bootstrap), "listeners", std::move(out));
}

absl::StatusOr<DiscoveryRoutes> parseRouteResources(const std::string& version_info,
                                                    const AnyList& resources, VhdsSource vhds,
                                                    UnknownFields unknown) {
  DiscoveryRoutes out;
  out.version_info = version_info;
  for (int i = 0; i < resources.size(); ++i) {
    const std::string path = absl::StrCat("resources[", i, "]");
    envoy::config::route::v3::RouteConfiguration rc;
    if (auto s = unpackResource(resources.Get(i), rc, static_cast<size_t>(i), unknown,
                                out.unknown_fields);
        !s.ok()) {
      return s;
    }
    if (auto s = checkRouteConfiguration(std::move(rc), path, out, vhds); !s.ok()) return s;
  }
  return out;
}

absl::StatusOr<DiscoveryRoutes> parseRouteResourcesReusing(
    const std::string& version_info, const AnyList& resources, VhdsSource vhds,
    const CompiledVirtualHosts& reuse, CompiledVirtualHosts& compiled, UnknownFields unknown) {
  auto whole = [&] {
    compiled.clear();
    return parseRouteResources(version_info, resources, vhds, unknown);
  };
  // What this path checks (the head, new and changed virtual hosts) is
  // checked for unknown fields; a held one was when it came.
  std::vector<std::string> found;
  DiscoveryRoutes out;
  out.version_info = version_info;
  CompiledVirtualHosts next;
  for (int i = 0; i < resources.size(); ++i) {
    const google::protobuf::Any& any = resources.Get(i);
    const std::string path = absl::StrCat("resources[", i, "]");
    envoy::config::route::v3::RouteConfiguration rc;  // kept whole for /config_dump
    std::string head_bytes;
    std::vector<absl::string_view> vhost_bytes;
    if (any.type_url() != kRouteConfigurationTypeUrl || !any.UnpackTo(&rc) || rc.has_vhds() ||
        !splitRepeatedField(any.value(), kVirtualHostsField, head_bytes, vhost_bytes) ||
        static_cast<int>(vhost_bytes.size()) != rc.virtual_hosts_size()) {
      return whole();
    }
    envoy::config::route::v3::RouteConfiguration head;
    if (!head.ParseFromString(head_bytes) || !takeUnknownFields(head, path, false, &found).ok() ||
        !validateExtensions(head, path).ok() || !checkFieldPolicy(head, path).ok() ||
        !validateProtoRules(head, path).ok() || next.contains(rc.name())) {
      return whole();
    }
    auto& mine = next[rc.name()];
    const auto held = reuse.find(rc.name());
    // The held virtual hosts by name, made when one changed.
    absl::flat_hash_map<std::string_view, const HeldVirtualHost*> by_name;
    std::vector<routing::RouteTable::VirtualHostConstSharedPtr> hosts;
    hosts.reserve(vhost_bytes.size());
    for (size_t k = 0; k < vhost_bytes.size(); ++k) {
      const uint64_t hash = absl::HashOf(vhost_bytes[k]);
      HeldVirtualHost host;
      if (held != reuse.end()) {
        if (auto it = held->second.find(hash); it != held->second.end()) host = it->second;
      }
      if (host.compiled == nullptr) {
        if (held != reuse.end() && by_name.empty()) {
          for (const auto& [h, v] : held->second) {
            by_name.emplace(routing::RouteTable::virtualHostName(*v.compiled), &v);
          }
        }
        static const RouteKeys kNone;
        const HeldVirtualHost* previous = nullptr;
        if (auto p = by_name.find(rc.virtual_hosts(static_cast<int>(k)).name());
            p != by_name.end()) {
          previous = p->second;
        }
        const std::string_view bytes(vhost_bytes[k].data(), vhost_bytes[k].size());
        const std::string vh_path = absl::StrCat(path, ".virtual_hosts[", k, "]");
        auto keys = std::make_shared<RouteKeys>();
        absl::StatusOr<routing::RouteTable::VirtualHostConstSharedPtr> checked;
        if (previous == nullptr) {
          // New: rc has it parsed already.
          checked = checkVirtualHost(rc.virtual_hosts(static_cast<int>(k)), vh_path, &found);
          *keys = routeKeys(bytes);
        } else {
          checked =
              checkVirtualHost(bytes, vh_path, previous->compiled.get(),
                               previous->route_keys ? *previous->route_keys : kNone, *keys, &found);
        }
        if (!checked.ok()) return whole();
        host = HeldVirtualHost{*std::move(checked), std::move(keys)};
      }
      hosts.push_back(host.compiled);
      mine.emplace(hash, std::move(host));
    }
    auto table = translateRouteConfiguration(head, path, std::move(hosts));
    if (!table.ok()) return whole();
    out.tables.emplace_back(rc.name(), *std::move(table));
    out.configs.push_back(std::move(rc));
  }
  // Refused: the whole path says where.
  if (!found.empty() && unknown == UnknownFields::kReject) return whole();
  if (unknown == UnknownFields::kReport) out.unknown_fields = std::move(found);
  compiled = std::move(next);
  return out;
}

absl::StatusOr<DiscoveryEndpoints> parseEndpointResources(const std::string& version_info,
                                                          const AnyList& resources,
                                                          UnknownFields unknown) {
  DiscoveryEndpoints out;
  out.version_info = version_info;
  for (int i = 0; i < resources.size(); ++i) {
    const std::string path = absl::StrCat("resources[", i, "]");
    envoy::config::endpoint::v3::ClusterLoadAssignment cla;
    if (auto s = unpackResource(resources.Get(i), cla, static_cast<size_t>(i), unknown,
                                out.unknown_fields);
        !s.ok()) {
      return s;
    }
    if (auto s = checkLoadAssignment(cla, path, out); !s.ok()) return s;
  }
  return out;
}

}  // namespace turnout::config
