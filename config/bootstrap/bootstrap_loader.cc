#include "config/bootstrap/bootstrap_loader.h"

#include <malloc.h>

#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "config/bootstrap/extensions.h"
#include "config/bootstrap/field_policy.h"
#include "config/bootstrap/message_loader.h"
#include "config/bootstrap/pgv_validator.h"

namespace turnout::config {
namespace {

using envoy::config::bootstrap::v3::Bootstrap;

absl::StatusOr<std::string> readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("unable to read file: ", path));
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad()) return absl::NotFoundError(absl::StrCat("unable to read file: ", path));
  return buf.str();
}

absl::Status loadFile(const std::string& path, const MessageLoadOptions& options,
                      Bootstrap& out, std::vector<std::string>& warnings) {
  auto contents = readFile(path);
  if (!contents.ok()) return contents.status();
  // Envoy's MessageUtil::loadFromFile chooses the format by extension, case-insensitively.
  if (absl::EndsWithIgnoreCase(path, ".pb")) {
    return loadMessageFromBinary(*contents, out, options, &warnings);
  }
  if (absl::EndsWithIgnoreCase(path, ".pb_text")) {
    return loadMessageFromTextFormat(*contents, out, options, &warnings);
  }
  return loadMessageFromYaml(*contents, out, options, &warnings);
}

absl::Status finish(Bootstrap& bootstrap) {
  if (auto s = validateExtensions(bootstrap); !s.ok()) return s;
  // Fail closed before the PGV rules, so that a field turnout does not implement is
  // reported as such rather than by a rule inside it.
  if (auto s = checkFieldPolicy(bootstrap); !s.ok()) return s;
  return validateProtoRules(bootstrap);
}

}  // namespace

absl::StatusOr<LoadedBootstrap> loadBootstrap(const BootstrapLoadOptions& options) {
  if (options.config_path.empty() && options.config_yaml.empty()) {
    return absl::InvalidArgumentError(
        "At least one of --config-path or --config-yaml should be non-empty");
  }
  LoadedBootstrap loaded;
  MessageLoadOptions parse{.allow_unknown_fields = options.allow_unknown_static_fields};
  if (!options.config_path.empty()) {
    if (auto s = loadFile(options.config_path, parse, loaded.bootstrap, loaded.warnings); !s.ok()) {
      return s;
    }
  }
  if (!options.config_yaml.empty()) {
    Bootstrap override_bootstrap;
    if (auto s = loadMessageFromYaml(options.config_yaml, override_bootstrap, parse,
                                     &loaded.warnings);
        !s.ok()) {
      return absl::Status(s.code(), absl::StrCat(s.message(), " (in --config-yaml)"));
    }
    loaded.bootstrap.MergeFrom(override_bootstrap);
  }
  // Envoy's LocalInfoImpl: the command line wins over the bootstrap's node.
  if (!options.service_cluster.empty()) {
    loaded.bootstrap.mutable_node()->set_cluster(options.service_cluster);
  }
  if (!options.service_node.empty()) {
    loaded.bootstrap.mutable_node()->set_id(options.service_node);
  }
  if (!options.service_zone.empty()) {
    loaded.bootstrap.mutable_node()->mutable_locality()->set_zone(options.service_zone);
  }
  if (auto s = finish(loaded.bootstrap); !s.ok()) return s;
  // yaml-cpp builds ~9 KiB of nodes per route, all freed by now; glibc keeps
  // freed heap mapped, so without this a 10,000-route bootstrap leaves the
  // process ~100 MiB larger than its live data for its whole life.
  malloc_trim(0);
  return loaded;
}

absl::StatusOr<LoadedBootstrap> loadBootstrapFromYaml(const std::string& yaml,
                                                      bool allow_unknown_static_fields) {
  BootstrapLoadOptions options;
  options.config_yaml = yaml;
  options.allow_unknown_static_fields = allow_unknown_static_fields;
  LoadedBootstrap loaded;
  MessageLoadOptions parse{.allow_unknown_fields = allow_unknown_static_fields};
  if (auto s = loadMessageFromYaml(yaml, loaded.bootstrap, parse, &loaded.warnings); !s.ok()) {
    return s;
  }
  if (auto s = finish(loaded.bootstrap); !s.ok()) return s;
  // yaml-cpp builds ~9 KiB of nodes per route, all freed by now; glibc keeps
  // freed heap mapped, so without this a 10,000-route bootstrap leaves the
  // process ~100 MiB larger than its live data for its whole life.
  malloc_trim(0);
  return loaded;
}

}  // namespace turnout::config
