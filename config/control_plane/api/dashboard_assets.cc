#include "config/control_plane/api/dashboard_assets.h"

#include <openssl/evp.h>

#include <string_view>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace turnout::control_plane {
namespace {

// The page is kHead + <style>kStyle</style> + kBody + <script>kScript</script>
// + kTail: the CSP hashes are taken over exactly kStyle and kScript.
//
// Every piece of API data reaches the DOM through textContent (el() below),
// never innerHTML: sandbox labels, header-match values and NACK messages are
// written by users and proxies.

constexpr std::string_view kHead = R"html(<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>turnout-cp</title>
)html";

constexpr std::string_view kStyle = R"css(
:root { color-scheme: light dark; --fg: #1d232a; --muted: #66707a; --line: #d6dbe0; --bg: #fff;
  --head: #f3f5f7; --ok: #1a7f37; --warn: #9a6700; --warnbg: #fff8c5; --bad: #cf222e; --badbg: #ffebe9; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e6edf3; --muted: #8d96a0; --line: #30363d; --bg: #0d1117; --head: #161b22;
    --ok: #3fb950; --warn: #d29922; --warnbg: #3b2e00; --bad: #f85149; --badbg: #4b1113; }
}
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg);
  background: var(--bg); }
header { display: flex; gap: 1.5em; align-items: baseline; padding: .8em 1.5em;
  border-bottom: 1px solid var(--line); background: var(--head); }
header h1 { font-size: 1.2em; margin: 0; }
main { padding: 0 1.5em 2em; max-width: 90em; }
h2 { font-size: 1.05em; margin: 1.6em 0 .4em; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: .3em .6em; border-bottom: 1px solid var(--line); }
th { background: var(--head); font-weight: 600; }
td.empty { color: var(--muted); font-style: italic; }
.mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: .95em; }
.muted { color: var(--muted); }
.line { display: block; }
#status.ok { color: var(--ok); }
#status.error, #message.error { color: var(--bad); font-weight: 600; }
#message.ok { color: var(--ok); }
tr.pending td { background: var(--warnbg); }
tr.nack td { background: var(--badbg); }
.tag-pending { color: var(--warn); font-weight: 600; }
.tag-nack { color: var(--bad); font-weight: 600; }
form { display: grid; grid-template-columns: max-content minmax(12em, 36em); gap: .4em .8em;
  align-items: center; margin: .4em 0; }
form label { font-weight: 600; }
input, textarea, button { font: inherit; color: inherit; background: var(--bg); border: 1px solid var(--line);
  border-radius: 4px; padding: .25em .5em; }
textarea { min-height: 3.2em; resize: vertical; }
button { cursor: pointer; background: var(--head); }
button.danger { color: var(--bad); }
form .actions { grid-column: 2; display: flex; gap: 1em; align-items: center; }
)css";

constexpr std::string_view kBody = R"html(</head>
<body>
<header>
  <h1>turnout-cp</h1>
  <span>config version <strong id="version" class="mono">?</strong></span>
  <span id="status" role="status">loading…</span>
</header>
<main>
<section>
  <h2>Services</h2>
  <table id="services">
    <thead><tr><th>Name</th><th>Namespace</th><th>Port</th><th>Protocol</th><th>Endpoints</th></tr></thead>
    <tbody></tbody>
  </table>
</section>
<section>
  <h2>Sandboxes</h2>
  <table id="sandboxes">
    <thead><tr><th>Key</th><th>Forks</th><th>Labels</th><th>TTL</th><th>Expires</th><th></th></tr></thead>
    <tbody></tbody>
  </table>
  <h2>Create or replace a sandbox</h2>
  <form id="create-sandbox" autocomplete="off">
    <label for="sandbox-key">Key</label>
    <input id="sandbox-key" class="mono" required maxlength="40" placeholder="feat-x">
    <label for="sandbox-forks">Forks</label>
    <textarea id="sandbox-forks" class="mono" required
      placeholder="reviews=10.0.0.7:9080 (one SERVICE=HOST:PORT per line or comma)"></textarea>
    <label for="sandbox-labels">Labels</label>
    <input id="sandbox-labels" class="mono" placeholder="team=checkout, owner=ana (optional)">
    <label for="sandbox-ttl">TTL</label>
    <input id="sandbox-ttl" class="mono" placeholder="24h (optional)">
    <div class="actions"><button type="submit">Put sandbox</button><span id="message" role="alert"></span></div>
  </form>
</section>
<section>
  <h2>Releases</h2>
  <table id="releases">
    <thead><tr><th>Service</th><th>Versions</th><th>Weights</th><th>Header matches</th></tr></thead>
    <tbody></tbody>
  </table>
</section>
<section>
  <h2>Connected proxies</h2>
  <table id="proxies">
    <thead><tr><th>Node</th><th>Dialect</th><th>Peer</th><th>Connected</th><th>Resources (ACKed / pending / NACK)</th></tr></thead>
    <tbody></tbody>
  </table>
</section>
</main>
)html";

constexpr std::string_view kScript = R"js(
"use strict";
const REFRESH_MS = 3000;
const $ = (id) => document.getElementById(id);

// Every text goes in through textContent: API data is user input.
function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}
function cell(children, cls) {
  const td = el("td", null, cls);
  for (const c of children) td.appendChild(typeof c === "string" ? el("span", c, "line") : c);
  return td;
}
function fill(table, rows, columns) {
  const body = $(table).tBodies[0];
  if (rows.length === 0) {
    const td = el("td", "none", "empty");
    td.colSpan = columns;
    const tr = el("tr");
    tr.appendChild(td);
    body.replaceChildren(tr);
  } else {
    body.replaceChildren(...rows);
  }
}
function row(cells, cls) {
  const tr = el("tr", null, cls);
  for (const c of cells) tr.appendChild(c);
  return tr;
}
function text(value, cls) { return el("td", value, cls); }
function endpointLines(map) {
  return Object.keys(map).map((name) => name + " \u2192 " + (map[name].length ? map[name].join(", ") : "(none)"));
}

async function apiError(resp) {
  let message = resp.status + " " + resp.statusText;
  try {
    const body = await resp.json();
    if (body && body.error) {
      message = resp.status + ": " + body.error;
      if (body.field) message += " (field: " + body.field + ")";
    }
  } catch (e) { /* not JSON: keep the status line */ }
  return message;
}
async function getJson(path) {
  const resp = await fetch(path, {cache: "no-store", headers: {"Accept": "application/json"}});
  if (!resp.ok) throw new Error(path + ": " + await apiError(resp));
  return resp.json();
}

function renderServices(services) {
  fill("services", services.map((s) => row([
    text(s.name, "mono"), text(s.namespace), text(s.port, "mono"), text(s.protocol || "http"),
    cell(s.endpoints.length ? s.endpoints : [el("span", "(none)", "muted")], "mono"),
  ])), 5);
}

function remaining(iso) {
  const ms = Date.parse(iso) - Date.now();
  if (!(ms > 0)) return "now";
  const m = Math.floor(ms / 60000), h = Math.floor(m / 60), d = Math.floor(h / 24);
  if (d > 0) return "in " + d + "d " + (h % 24) + "h";
  if (h > 0) return "in " + h + "h " + (m % 60) + "m";
  if (m > 0) return "in " + m + "m";
  return "in " + Math.ceil(ms / 1000) + "s";
}

function renderSandboxes(sandboxes) {
  fill("sandboxes", sandboxes.map((s) => {
    const del = el("button", "Delete", "danger");
    del.type = "button";
    del.addEventListener("click", () => deleteSandbox(s.key));
    const labels = Object.keys(s.labels || {}).map((k) => k + "=" + s.labels[k]);
    return row([
      text(s.key, "mono"),
      cell(endpointLines(s.forks), "mono"),
      cell(labels.length ? labels : [el("span", "-", "muted")], "mono"),
      text(s.ttl || "-", "mono"),
      cell(s.expires_at ? [s.expires_at, el("span", remaining(s.expires_at), "line muted")] : ["never"]),
      cell([del]),
    ]);
  }), 6);
}

function headerMatch(name, m) {
  if (typeof m === "string") return name + " = \"" + m + "\"";
  if (m.present) return name + " present";
  for (const kind of ["exact", "prefix", "regex"]) {
    if (kind in m) return name + " " + kind + " \"" + m[kind] + "\"";
  }
  return name + " " + JSON.stringify(m);
}

function renderReleases(releases) {
  fill("releases", releases.map((r) => {
    const weights = Object.keys(r.weights || {}).map((v) => v + ": " + r.weights[v] + "%");
    const matches = (r.matches || []).map((m) =>
      Object.keys(m.headers).map((h) => headerMatch(h, m.headers[h])).join(" and ") + " \u2192 " + m.version);
    return row([
      text(r.service, "mono"),
      cell(endpointLines(r.versions), "mono"),
      cell(weights.length ? weights : [el("span", "baseline", "muted")], "mono"),
      cell(matches.length ? matches : [el("span", "-", "muted")], "mono"),
    ]);
  }), 4);
}

function renderProxies(proxies) {
  fill("proxies", proxies.map((p) => {
    let cls = "";
    const lines = Object.keys(p.types).sort().map((type) => {
      const t = p.types[type];
      const line = el("span", null, "line");
      line.appendChild(el("span", type + ": ACKed " + (t.acked_version || "none")));
      if (t.pending) {
        line.appendChild(el("span", " pending " + t.sent_version, "tag-pending"));
        if (!cls) cls = "pending";
      }
      if (t.nack_error) {
        line.appendChild(el("span", " NACK: " + t.nack_error, "tag-nack"));
        cls = "nack";
      }
      return line;
    });
    const node = cell([p.node_id], "mono");
    if (p.node_cluster) node.appendChild(el("span", p.node_cluster, "line muted"));
    if (p.user_agent) node.appendChild(el("span", p.user_agent, "line muted"));
    return row([node, text(p.dialect), text(p.peer, "mono"), text(p.connected_at, "mono"),
                cell(lines.length ? lines : [el("span", "nothing sent yet", "muted")], "mono")], cls);
  }), 5);
}

function setStatus(kind, message) {
  const s = $("status");
  s.className = kind;
  s.textContent = message;
}
function setMessage(kind, message) {
  const m = $("message");
  m.className = kind;
  m.textContent = message;
}

// Only the latest refresh renders and re-arms the timer: one started by a
// change must not be overwritten by an older one that answers later.
let timer = null;
let generation = 0;
async function refresh() {
  clearTimeout(timer);
  const mine = ++generation;
  try {
    const [version, services, sandboxes, releases, proxies] = await Promise.all(
      ["/v1/version", "/v1/services", "/v1/sandboxes", "/v1/releases", "/v1/proxies"].map(getJson));
    if (mine !== generation) return;
    $("version").textContent = String(version.version);
    renderServices(services.services);
    renderSandboxes(sandboxes.sandboxes);
    renderReleases(releases.releases);
    renderProxies(proxies.proxies);
    setStatus("ok", "updated " + new Date().toLocaleTimeString());
  } catch (e) {
    if (mine === generation) setStatus("error", "cannot read the API: " + e.message);
  } finally {
    if (mine === generation) timer = setTimeout(refresh, REFRESH_MS);
  }
}

// "a=b, c=d" or one per line -> [[a, b], [c, d]]; throws naming the bad item.
function pairs(input, what, example) {
  return input.split(/[\s,]+/).filter(Boolean).map((item) => {
    const eq = item.indexOf("=");
    if (eq <= 0 || (what === "fork" && eq === item.length - 1)) {
      throw new Error(what + " '" + item + "': write " + example);
    }
    return [item.slice(0, eq), item.slice(eq + 1)];
  });
}

async function putSandbox(ev) {
  ev.preventDefault();
  const key = $("sandbox-key").value.trim();
  const body = {forks: {}};
  try {
    for (const [service, endpoint] of pairs($("sandbox-forks").value, "fork", "SERVICE=HOST:PORT")) {
      (body.forks[service] = body.forks[service] || []).push(endpoint);
    }
    const labels = pairs($("sandbox-labels").value, "label", "KEY=VALUE");
    if (labels.length) body.labels = Object.fromEntries(labels);
  } catch (e) {
    setMessage("error", e.message);
    return;
  }
  const ttl = $("sandbox-ttl").value.trim();
  if (ttl) body.ttl = ttl;
  setMessage("", "saving…");
  try {
    const resp = await fetch("/v1/sandboxes/" + encodeURIComponent(key), {
      method: "PUT", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
    if (!resp.ok) {
      setMessage("error", await apiError(resp));
      return;
    }
    const answer = await resp.json();
    setMessage("ok", "sandbox " + key + " stored (config version " + answer.version + ")");
  } catch (e) {
    setMessage("error", "cannot reach the API: " + e.message);
  }
  refresh();
}

async function deleteSandbox(key) {
  if (!window.confirm("Delete sandbox " + key + "?")) return;
  try {
    const resp = await fetch("/v1/sandboxes/" + encodeURIComponent(key), {method: "DELETE"});
    if (!resp.ok) {
      setMessage("error", await apiError(resp));
    } else {
      const answer = await resp.json();
      setMessage("ok", "sandbox " + key + " deleted (config version " + answer.version + ")");
    }
  } catch (e) {
    setMessage("error", "cannot reach the API: " + e.message);
  }
  refresh();
}

$("create-sandbox").addEventListener("submit", putSandbox);
refresh();
)js";

constexpr std::string_view kTail = R"html(
</body>
</html>
)html";

// 'sha256-<base64>' of `source`, as CSP 3 hashes an inline element's text.
std::string cspHash(std::string_view source) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(source.data(), source.size(), digest, &length, EVP_sha256(), nullptr);
  return absl::StrCat("'sha256-",
                      absl::Base64Escape(absl::string_view(reinterpret_cast<const char*>(digest), length)), "'");
}

DashboardAssets build() {
  DashboardAssets a;
  a.html.append(kHead).append("<style>").append(kStyle).append("</style>\n").append(kBody);
  a.html.append("<script>").append(kScript).append("</script>").append(kTail);
  a.content_security_policy =
      absl::StrCat("default-src 'none'; script-src ", cspHash(kScript), "; style-src ", cspHash(kStyle),
                   "; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; "
                   "frame-ancestors 'none'");
  return a;
}

}  // namespace

const DashboardAssets& dashboardAssets() {
  static const DashboardAssets assets = build();
  return assets;
}

}  // namespace turnout::control_plane
