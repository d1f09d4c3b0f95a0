#include "proxy/xds/xds_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "envoy/config/cluster/v3/cluster.pb.h"
#include "envoy/config/endpoint/v3/endpoint.pb.h"
#include "envoy/config/listener/v3/listener.pb.h"
#include "envoy/config/route/v3/route.pb.h"
#include "proxy/common/log.h"

namespace turnout::proxy {
namespace {
constexpr const char* kLog = "xds";
}  // namespace

namespace {
constexpr char kResourceWrapperTypeUrl[] = "type.googleapis.com/envoy.service.discovery.v3.Resource";
}  // namespace

std::string resourceName(const google::protobuf::Any& resource) {
  const std::string& t = resource.type_url();
  if (t == kResourceWrapperTypeUrl) {
    envoy::service::discovery::v3::Resource r;
    return resource.UnpackTo(&r) ? r.name() : std::string();
  }
  if (t == config::kClusterTypeUrl) {
    envoy::config::cluster::v3::Cluster c;
    return resource.UnpackTo(&c) ? c.name() : std::string();
  }
  if (t == config::kListenerTypeUrl) {
    envoy::config::listener::v3::Listener l;
    return resource.UnpackTo(&l) ? l.name() : std::string();
  }
  if (t == config::kRouteConfigurationTypeUrl) {
    envoy::config::route::v3::RouteConfiguration r;
    return resource.UnpackTo(&r) ? r.name() : std::string();
  }
  if (t == config::kClusterLoadAssignmentTypeUrl) {
    envoy::config::endpoint::v3::ClusterLoadAssignment a;
    return resource.UnpackTo(&a) ? a.cluster_name() : std::string();
  }
  return {};
}

absl::StatusOr<std::unique_ptr<XdsCache>> XdsCache::create(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return absl::InvalidArgumentError(
        absl::StrCat("--xds-cache: cannot create '", dir, "': ", std::strerror(errno)));
  }
  struct stat st{};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || ::access(dir.c_str(), W_OK) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--xds-cache: '", dir, "' is not a writable directory"));
  }
  return std::unique_ptr<XdsCache>(new XdsCache(dir));
}

std::string XdsCache::pathOf(const std::string& type_url) const {
  const char* name = "other";
  if (type_url == config::kClusterTypeUrl) name = "cds";
  if (type_url == config::kClusterLoadAssignmentTypeUrl) name = "eds";
  if (type_url == config::kListenerTypeUrl) name = "lds";
  if (type_url == config::kRouteConfigurationTypeUrl) name = "rds";
  if (type_url == config::kVirtualHostTypeUrl) name = "vhds";
  return absl::StrCat(dir_, "/", name, ".pb");
}

void XdsCache::store(const std::string& type_url, const std::string& version,
                     const config::AnyList& resources, bool wildcard) {
  TypeCache& t = types_[type_url];
  t.version = version;
  if (wildcard) t.by_name.clear();
  for (const auto& r : resources) t.by_name[resourceName(r)] = r;
  write(type_url);
}

void XdsCache::storeDelta(const std::string& type_url, const config::xds::DeltaUpdate& update) {
  TypeCache& t = types_[type_url];
  t.version = update.version_info;
  for (const auto* r : update.changed) t.by_name[r->name()].PackFrom(*r);
  for (const auto& name : update.removed) t.by_name.erase(name);
  write(type_url);
}

void XdsCache::retain(const std::string& type_url, const std::set<std::string>& names,
                      bool namespaces) {
  auto it = types_.find(type_url);
  if (it == types_.end()) return;
  for (auto r = it->second.by_name.begin(); r != it->second.by_name.end();) {
    if (names.contains(namespaces ? config::xds::namespaceOf(r->first) : r->first)) {
      ++r;
    } else {
      it->second.by_name.erase(r++);
    }
  }
}

void XdsCache::forget(const std::string& type_url, const std::vector<std::string>& names) {
  auto it = types_.find(type_url);
  if (it == types_.end()) return;
  for (const auto& n : names) it->second.by_name.erase(n);
}

void XdsCache::write(const std::string& type_url) {
  const TypeCache& t = types_[type_url];
  envoy::service::discovery::v3::DiscoveryResponse out;
  out.set_type_url(type_url);
  out.set_version_info(t.version);
  for (const auto& [name, r] : t.by_name) *out.add_resources() = r;
  const std::string bytes = out.SerializeAsString();
  const std::string path = pathOf(type_url);
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  bool ok = fd >= 0;
  size_t done = 0;
  while (ok && done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) done += static_cast<size_t>(n);
  }
  if (ok) ok = ::fsync(fd) == 0;
  if (fd >= 0) ::close(fd);
  if (ok) ok = ::rename(tmp.c_str(), path.c_str()) == 0;
  if (!ok) {
    TURNOUT_LOG(warn, kLog, "--xds-cache: cannot write '{}': {}", path, std::strerror(errno));
    ::unlink(tmp.c_str());
  }
}

std::optional<envoy::service::discovery::v3::DiscoveryResponse> XdsCache::load(
    const std::string& type_url) {
  const std::string path = pathOf(type_url);
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream buf;
  buf << in.rdbuf();
  envoy::service::discovery::v3::DiscoveryResponse r;
  if (!r.ParseFromString(buf.str()) || r.type_url() != type_url) {
    TURNOUT_LOG(warn, kLog, "--xds-cache: '{}' is not a cached {} response; ignored", path, type_url);
    return std::nullopt;
  }
  TypeCache& t = types_[type_url];
  t.version = r.version_info();
  t.by_name.clear();
  for (const auto& res : r.resources()) t.by_name[resourceName(res)] = res;
  return r;
}

}  // namespace turnout::proxy
