#include "config/control_plane/api/dashboard.h"

#include <openssl/evp.h>

#include <catch2/catch.hpp>

#include <memory>
#include <string>

#include "absl/strings/escaping.h"
#include "config/control_plane/api/dashboard_assets.h"
#include "config/control_plane/api/rest_api.h"
#include "config/control_plane/sqlite_store.h"
#include "tests/support/temp_dir.h"

namespace turnout::control_plane {
namespace {

namespace http = beast::http;

// The dashboard through the REST API's own dispatch, as the server calls it.
struct Fixture {
  test::TempDir dir;
  asio::io_context ioc;
  std::unique_ptr<SqliteStore> store;
  std::unique_ptr<RestApi> api;

  Fixture() {
    auto opened = SqliteStore::open(dir.path());
    REQUIRE(opened.ok());
    store = std::move(*opened);
    RestApi::Options options;
    options.port = 0;
    auto created = RestApi::create(ioc, *store, options);
    INFO(created.status().ToString());
    REQUIRE(created.ok());
    api = std::move(*created);
  }

  HttpResponse call(http::verb method, const std::string& target) {
    HttpRequest req{method, target, 11};
    return api->handle(req);
  }
};

std::string header(const HttpResponse& r, const std::string& name) {
  for (const auto& [k, v] : r.headers) {
    if (k == name) return v;
  }
  return "";
}

// The text between the first `open` and the next `close` in `html`.
std::string between(const std::string& html, const std::string& open, const std::string& close) {
  const size_t start = html.find(open);
  REQUIRE(start != std::string::npos);
  const size_t end = html.find(close, start + open.size());
  REQUIRE(end != std::string::npos);
  return html.substr(start + open.size(), end - start - open.size());
}

std::string sha256Base64(const std::string& text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(text.data(), text.size(), digest, &length, EVP_sha256(), nullptr);
  return absl::Base64Escape(absl::string_view(reinterpret_cast<const char*>(digest), length));
}

TEST_CASE("GET / and /dashboard redirect to /dashboard/", "[dashboard]") {
  Fixture f;
  for (const char* path : {"/", "/dashboard"}) {
    INFO(path);
    const HttpResponse r = f.call(http::verb::get, path);
    CHECK(r.status == 302);
    CHECK(header(r, "Location") == "/dashboard/");
    const HttpResponse head = f.call(http::verb::head, path);
    CHECK(head.status == 302);
    CHECK(header(head, "Location") == "/dashboard/");
    CHECK(head.body == r.body);  // HttpService sends its length, not the body
  }
}

TEST_CASE("GET /dashboard/ serves the page as HTML with no-cache and nosniff and a CSP", "[dashboard]") {
  Fixture f;
  const HttpResponse r = f.call(http::verb::get, "/dashboard/");
  CHECK(r.status == 200);
  CHECK(r.content_type == "text/html; charset=utf-8");
  CHECK(header(r, "Cache-Control") == "no-cache");
  CHECK(header(r, "X-Content-Type-Options") == "nosniff");
  CHECK(r.body == dashboardAssets().html);
  CHECK(r.body.rfind("<!DOCTYPE html>", 0) == 0);
  CHECK(r.body.find("<title>turnout-cp</title>") != std::string::npos);
  const std::string csp = header(r, "Content-Security-Policy");
  CHECK(csp.find("default-src 'none'") != std::string::npos);
  CHECK(csp.find("connect-src 'self'") != std::string::npos);
  CHECK(csp.find("unsafe-inline") == std::string::npos);
  CHECK(csp.find("unsafe-eval") == std::string::npos);
}

TEST_CASE("the CSP hashes are those of the page's inline script and style", "[dashboard]") {
  const DashboardAssets& assets = dashboardAssets();
  const std::string script = between(assets.html, "<script>", "</script>");
  const std::string style = between(assets.html, "<style>", "</style>");
  CHECK(assets.content_security_policy.find("script-src 'sha256-" + sha256Base64(script) + "'") !=
        std::string::npos);
  CHECK(assets.content_security_policy.find("style-src 'sha256-" + sha256Base64(style) + "'") !=
        std::string::npos);
  // One inline script and one style: a second would be blocked by the CSP.
  CHECK(assets.html.find("<script", assets.html.find("</script>")) == std::string::npos);
  CHECK(assets.html.find("<style", assets.html.find("</style>")) == std::string::npos);
  // Inline handlers and style attributes are blocked by a hash-only CSP too.
  CHECK(assets.html.find(" style=") == std::string::npos);
  CHECK(assets.html.find(" onclick=") == std::string::npos);
}

TEST_CASE("the page loads nothing from elsewhere and never parses API data as HTML", "[dashboard]") {
  const std::string& html = dashboardAssets().html;
  for (const char* banned : {"http://", "https://", "src=", "href=", "innerHTML", "outerHTML",
                             "insertAdjacentHTML", "document.write", "eval("}) {
    INFO(banned);
    CHECK(html.find(banned) == std::string::npos);
  }
  for (const char* endpoint : {"/v1/version", "/v1/services", "/v1/sandboxes", "/v1/releases", "/v1/proxies"}) {
    INFO(endpoint);
    CHECK(html.find(endpoint) != std::string::npos);
  }
}

TEST_CASE("HEAD /dashboard/ has the GET's headers and no body", "[dashboard]") {
  Fixture f;
  const HttpResponse get = f.call(http::verb::get, "/dashboard/");
  const HttpResponse head = f.call(http::verb::head, "/dashboard/");
  CHECK(head.status == 200);
  CHECK(head.body == get.body);  // HttpService sends its length, not the body
  CHECK(head.content_type == get.content_type);
  CHECK(head.headers == get.headers);
}

TEST_CASE("other methods on the dashboard's paths are 405 with an Allow header", "[dashboard]") {
  Fixture f;
  const auto path = GENERATE(as<std::string>{}, "/", "/dashboard", "/dashboard/");
  const auto method = GENERATE(http::verb::post, http::verb::put, http::verb::delete_, http::verb::patch);
  INFO(path << " " << http::to_string(method));
  const HttpResponse r = f.call(method, path);
  CHECK(r.status == 405);
  CHECK(header(r, "Allow") == "GET, HEAD");
  CHECK(r.content_type == "application/json");
  CHECK(r.body.find("\"error\":") != std::string::npos);
}

TEST_CASE("other paths under /dashboard/ are 404", "[dashboard]") {
  Fixture f;
  const auto path = GENERATE(as<std::string>{}, "/dashboard/index.html", "/dashboard/app.js", "/dashboard//",
                             "/dashboard/../v1/version", "/dashboard/x/y");
  INFO(path);
  const HttpResponse r = f.call(http::verb::get, path);
  CHECK(r.status == 404);
  CHECK(r.content_type == "application/json");
  CHECK(r.body.find("no such dashboard page") != std::string::npos);
}

TEST_CASE("the API's own answers do not change next to the dashboard", "[dashboard]") {
  Fixture f;
  CHECK(f.call(http::verb::get, "/v1/version").status == 200);
  CHECK(f.call(http::verb::get, "/v1/services").status == 200);
  const HttpResponse similar = f.call(http::verb::get, "/dashboards");
  CHECK(similar.status == 404);
  CHECK(similar.body.find("no such endpoint") != std::string::npos);
  CHECK(f.call(http::verb::head, "/v1/version").status == 405);
  // Query strings are refused everywhere, the dashboard included.
  CHECK(f.call(http::verb::get, "/dashboard/?x=1").status == 400);
}

TEST_CASE("dashboardResponse leaves the API's paths alone", "[dashboard]") {
  CHECK_FALSE(dashboardResponse("GET", "/v1/services").has_value());
  CHECK_FALSE(dashboardResponse("GET", "/healthz").has_value());
  CHECK_FALSE(dashboardResponse("GET", "/dashboardx").has_value());
  CHECK(dashboardResponse("GET", "/dashboard/")->status == 200);
}

}  // namespace
}  // namespace turnout::control_plane
