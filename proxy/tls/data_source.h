#pragma once

// envoy.config.core.v3.DataSource for TLS material: filename, inline_string,
// inline_bytes or environment_variable. Reads files synchronously: call it on
// the main thread (config load, certificate reload), never on a worker.

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "envoy/config/core/v3/base.pb.h"

namespace turnout::proxy::tls {

// The bytes `source` names. `field_path` is the DataSource's path; errors name
// it (`...private_key.filename: cannot read '/x': No such file or directory`).
// A filename source is appended to `files` when it is given.
absl::StatusOr<std::string> readDataSource(const envoy::config::core::v3::DataSource& source,
                                           std::string_view field_path,
                                           std::vector<std::string>* files = nullptr);

}  // namespace turnout::proxy::tls
