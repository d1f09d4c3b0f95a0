#pragma once

// The dashboard's routes on turnout-cp's REST API server (rest_api.h calls
// this first; docs/control_plane.md, "Dashboard"):
// - GET/HEAD `/` and `/dashboard`: 302 to `/dashboard/`;
// - GET/HEAD `/dashboard/`: the page (dashboard_assets.h), text/html, with
//   its Content-Security-Policy, Cache-Control: no-cache, nosniff;
// - any other method on those: 405 with `Allow: GET, HEAD`;
// - any other path under `/dashboard/`: 404.
// Runs on the API's io_context thread; pure.

#include <optional>
#include <string_view>

#include "proxy/admin/http_service.h"

namespace turnout::control_plane {

inline constexpr char kDashboardPath[] = "/dashboard/";

// The answer when `path` (without query) is one of the dashboard's, else
// nullopt (the API's own endpoints). A HEAD answer has the GET's headers and
// no body.
std::optional<proxy::admin::HttpResponse> dashboardResponse(std::string_view method, std::string_view path);

}  // namespace turnout::control_plane
