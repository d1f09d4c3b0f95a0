#include "proxy/tls/data_source.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "proxy/tls/tls_field_path.h"

namespace turnout::proxy::tls {

absl::StatusOr<std::string> readDataSource(const envoy::config::core::v3::DataSource& source,
                                           std::string_view field_path,
                                           std::vector<std::string>* files) {
  using DS = envoy::config::core::v3::DataSource;
  switch (source.specifier_case()) {
    case DS::kFilename: {
      const std::string path = fieldPath(field_path, "filename");
      if (files != nullptr) files->push_back(source.filename());
      auto fail = [&](int err) {
        return absl::InvalidArgumentError(atPath(
            path, absl::StrCat("cannot read '", source.filename(), "': ", std::strerror(err))));
      };
      int fd = ::open(source.filename().c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) return fail(errno);
      std::string out;
      char buf[16384];
      for (;;) {
        ssize_t n = ::read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
          int err = errno;
          ::close(fd);
          return fail(err);  // EISDIR for a directory
        }
        if (n == 0) break;
        out.append(buf, static_cast<size_t>(n));
      }
      ::close(fd);
      return out;
    }
    case DS::kInlineString:
      return source.inline_string();
    case DS::kInlineBytes:
      return source.inline_bytes();
    case DS::kEnvironmentVariable: {
      const char* value = std::getenv(source.environment_variable().c_str());
      if (value == nullptr) {
        return absl::InvalidArgumentError(atPath(
            fieldPath(field_path, "environment_variable"),
            absl::StrCat("environment variable '", source.environment_variable(), "' is not set")));
      }
      return std::string(value);
    }
    case DS::SPECIFIER_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError(
      atPath(field_path,
             "one of filename, inline_string, inline_bytes or environment_variable is required"));
}

}  // namespace turnout::proxy::tls
