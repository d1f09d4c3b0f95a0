#pragma once

// turnout-cp's web dashboard (docs/control_plane.md, "Dashboard"): one HTML
// page with its CSS and JavaScript inline, compiled into the binary. The page
// reads and changes the state only through the REST API on the same origin.

#include <string>

namespace turnout::control_plane {

struct DashboardAssets {
  // The whole page (UTF-8).
  std::string html;
  // The Content-Security-Policy that serves it: nothing but the page's own
  // inline <script> and <style>, allowed by their SHA-256 hashes, and fetch()
  // to the same origin.
  std::string content_security_policy;
};

// Built once, on the first call (thread-safe); valid for the program's life.
const DashboardAssets& dashboardAssets();

}  // namespace turnout::control_plane
