#include "config/control_plane/api/dashboard.h"

#include "absl/strings/str_cat.h"
#include "config/control_plane/api/dashboard_assets.h"
#include "config/control_plane/api/rest_api.h"

namespace turnout::control_plane {
namespace {

constexpr char kMethods[] = "GET, HEAD";

absl::string_view av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// HEAD gets the same answer: HttpService sends its headers, Content-Length
// included, without the body.
HttpResponse redirect() {
  HttpResponse r;
  r.status = 302;
  r.headers.emplace_back("Location", kDashboardPath);
  r.body = absl::StrCat("turnout-cp's dashboard is at ", kDashboardPath, "\n");
  return r;
}

HttpResponse page() {
  const DashboardAssets& assets = dashboardAssets();
  HttpResponse r;
  r.content_type = "text/html; charset=utf-8";
  r.headers.emplace_back("Cache-Control", "no-cache");
  r.headers.emplace_back("Content-Security-Policy", assets.content_security_policy);
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  r.headers.emplace_back("X-Frame-Options", "DENY");
  r.headers.emplace_back("Referrer-Policy", "no-referrer");
  r.body = assets.html;
  return r;
}

}  // namespace

std::optional<HttpResponse> dashboardResponse(std::string_view method, std::string_view path) {
  const bool is_redirect = path == "/" || path == "/dashboard";
  const bool is_page = path == kDashboardPath;
  if (!is_redirect && !is_page) {
    if (path.substr(0, sizeof(kDashboardPath) - 1) == kDashboardPath) {
      return errorResponse(404, absl::StrCat("no such dashboard page: ", av(path), " (the dashboard is ",
                                             kDashboardPath, ")"));
    }
    return std::nullopt;
  }
  if (method != "GET" && method != "HEAD") {
    HttpResponse r = errorResponse(405, absl::StrCat("method ", av(method), " is not allowed on ", av(path),
                                                     " (allowed: ", kMethods, ")"));
    r.headers.emplace_back("Allow", kMethods);
    return r;
  }
  return is_page ? page() : redirect();
}

}  // namespace turnout::control_plane
