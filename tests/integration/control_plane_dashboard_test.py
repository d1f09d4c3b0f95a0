#!/usr/bin/env python3
"""turnout-cp's web dashboard against the real binary and a real browser:
the routes and their headers over HTTP; the page rendered by headless
chromium (--dump-dom) showing what was put through the API, with user text
shown as text and never as markup; and the page's own sandbox form and delete
button driven through the DevTools protocol (--remote-debugging-pipe), the
API's errors shown. Loopback, port 0, temporary directories, bounded polls.

chromium is required (scripts/setup.sh installs it): without it the test
fails, it does not skip.

Usage: control_plane_dashboard_test.py <turnout-cp-binary> [unittest args]
"""

import fcntl
import html.parser
import http.client
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))

from turnout_cp_process import TurnoutCp  # noqa: E402

TURNOUT_CP = None
CHROMIUM = None
BROWSER_DEADLINE_S = 60.0

REVIEWS = {"port": 9080, "namespace": "shop", "protocol": "http2", "endpoints": ["10.0.0.5:9080"]}
FEAT_X = {"forks": {"reviews": ["10.0.0.7:9080", "10.0.0.8:9080"]}, "labels": {"team": "checkout"},
          "ttl": "2h"}
# Header-match values are free text: the one place the API stores markup.
MARKUP = "<b>x</b>"
IMG = "<img src=x onerror=\"document.title='pwned'\">"
RELEASE = {"versions": {"v1": ["10.0.1.1:9080"], "v2": ["10.0.2.1:9080"]},
           "weights": {"v1": 90, "v2": 10},
           "matches": [{"headers": {"x-canary": MARKUP}, "version": "v2"},
                       {"headers": {"x-user": {"prefix": IMG}}, "version": "v2"}]}


def find_chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def chromium_args(user_data_dir):
    # --no-sandbox: tests run as root in containers, where chromium's sandbox
    # cannot start. A fresh profile per run; no first-run UI, no network
    # services beyond the page's own fetches.
    return [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--no-first-run", "--no-default-browser-check", "--disable-extensions",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--user-data-dir=" + user_data_dir]


def chromium_env(home):
    env = dict(os.environ)
    env["HOME"] = home  # chromium writes caches under $HOME
    return env


class Dom(html.parser.HTMLParser):
    """The dumped DOM: every element's tag, the text of elements by id, and
    the rows of each table (by table id) as lists of cell texts."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.tags = []
        self.by_id = {}
        self.tables = {}
        self._open_ids = []    # (tag, id) of elements with an id, innermost last
        self._table = None
        self._row = None
        self._cell = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attrs = dict(attrs)
        if "id" in attrs:
            self._open_ids.append((tag, attrs["id"]))
            self.by_id.setdefault(attrs["id"], "")
            if tag == "table":
                self._table = attrs["id"]
                self.tables[self._table] = []
        if self._table and tag == "tr":
            self._row = []
        if self._row is not None and tag in ("td", "th"):
            self._cell = []
        if self._cell is not None and tag == "span" and self._cell:
            self._cell.append(" | ")  # one line per span

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None
        if self._open_ids and self._open_ids[-1][0] == tag:
            self._open_ids.pop()

    def handle_data(self, data):
        for _, element_id in self._open_ids:
            self.by_id[element_id] += data
        if self._cell is not None:
            self._cell.append(data)

    def rows(self, table):
        """The body rows (the header row left out)."""
        return self.tables[table][1:]


class DevTools:
    """A headless chromium driven over --remote-debugging-pipe (fd 3: our
    commands, fd 4: its answers and events, each JSON ending in NUL)."""

    def __init__(self, workdir):
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def move_fds():
            # Out of the way first: either end may already be fd 3 or 4.
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_child_r, from_child_w)]
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        self._log = open(os.path.join(workdir, "chromium.log"), "ab")
        self.proc = subprocess.Popen(
            chromium_args(os.path.join(workdir, "profile")) + ["--remote-debugging-pipe", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._log,
            env=chromium_env(workdir), preexec_fn=move_fds, pass_fds=(3, 4))
        os.close(to_child_r)
        os.close(from_child_w)
        self._buffer = b""
        self._next_id = 0
        self.session = None

    def close(self):
        if self.proc.poll() is None:
            try:
                os.write(self._to_child, json.dumps({"id": 0, "method": "Browser.close"}).encode() + b"\0")
            except OSError:
                pass  # it is already going
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        os.close(self._to_child)
        os.close(self._from_child)
        self._log.close()

    def call(self, method, params=None, session=True):
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session and self.session:
            message["sessionId"] = self.session
        os.write(self._to_child, json.dumps(message).encode() + b"\0")
        end = time.monotonic() + BROWSER_DEADLINE_S
        while True:
            for answer in self._read(end):
                if answer.get("id") == self._next_id:
                    if "error" in answer:
                        raise AssertionError("%s: %s" % (method, answer["error"]))
                    return answer["result"]

    def _read(self, end):
        left = end - time.monotonic()
        if left <= 0 or not select.select([self._from_child], [], [], left)[0]:
            raise AssertionError("chromium did not answer within %ss" % BROWSER_DEADLINE_S)
        chunk = os.read(self._from_child, 1 << 16)
        if not chunk:
            raise AssertionError("chromium closed the DevTools pipe (exit %s)" % self.proc.poll())
        self._buffer += chunk
        *messages, self._buffer = self._buffer.split(b"\0")
        return [json.loads(m) for m in messages]

    def open(self, url):
        target = self.call("Target.createTarget", {"url": url}, session=False)["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True},
                                 session=False)["sessionId"]

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                                "returnByValue": True})
        if "exceptionDetails" in result:
            raise AssertionError("%s: %s" % (expression, result["exceptionDetails"]))
        return result["result"].get("value")

    def wait_for(self, expression, what):
        """Polls `expression` (JavaScript) until it is truthy; its value. It
        may throw meanwhile (the page not loaded yet)."""
        end = time.monotonic() + 15.0
        last = None
        while time.monotonic() < end:
            try:
                value = self.evaluate(expression)
            except AssertionError as e:
                value, last = None, e
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError("the page never showed %s (%s); last error: %s" % (what, expression, last))


class DashboardTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="turnout_cp_dashboard_")
        self.cp = TurnoutCp(TURNOUT_CP, self.tmp).start()

    def tearDown(self):
        self.cp.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def raw(self, method, path):
        """(status, headers with lowercase names, body bytes)."""
        conn = http.client.HTTPConnection(self.cp.host, self.cp.port, timeout=10)
        conn.request(method, path)
        resp = conn.getresponse()
        body = resp.read()
        headers = {k.lower(): v for k, v in resp.getheaders()}
        conn.close()
        return resp.status, headers, body

    def dump_dom(self):
        """The page's DOM after it has run (5 s of virtual time)."""
        r = subprocess.run(chromium_args(os.path.join(self.tmp, "profile")) +
                           ["--virtual-time-budget=5000", "--dump-dom", self.cp.url + "/dashboard/"],
                           capture_output=True, text=True, timeout=BROWSER_DEADLINE_S,
                           env=chromium_env(self.tmp))
        self.assertEqual(r.returncode, 0, "chromium --dump-dom failed:\n" + r.stderr[-3000:])
        return r.stdout

    def seed(self):
        cp = self.cp
        self.assertEqual(cp.put("/v1/services/reviews", REVIEWS)[0], 201)
        self.assertEqual(cp.put("/v1/services/ratings", {"port": 9081})[0], 201)
        self.assertEqual(cp.put("/v1/sandboxes/feat-x", FEAT_X)[0], 201)
        status, _, body = cp.put("/v1/releases/reviews", RELEASE)
        self.assertEqual(status, 201, body)

    # ---- routes -----------------------------------------------------------------------

    def test_routes_and_headers(self):
        for path in ("/", "/dashboard"):
            status, headers, _ = self.raw("GET", path)
            self.assertEqual((status, headers.get("location")), (302, "/dashboard/"), path)
        status, headers, body = self.raw("GET", "/dashboard/")
        self.assertEqual(status, 200)
        self.assertEqual(headers["content-type"], "text/html; charset=utf-8")
        self.assertEqual(headers["cache-control"], "no-cache")
        self.assertEqual(headers["x-content-type-options"], "nosniff")
        csp = headers["content-security-policy"]
        self.assertIn("default-src 'none'", csp)
        self.assertIn("script-src 'sha256-", csp)
        self.assertNotIn("unsafe-inline", csp)
        self.assertTrue(body.startswith(b"<!DOCTYPE html>"), body[:100])
        self.assertEqual(int(headers["content-length"]), len(body))

        status, head_headers, head_body = self.raw("HEAD", "/dashboard/")
        self.assertEqual((status, head_body), (200, b""))
        for name in ("content-type", "content-length", "cache-control", "content-security-policy",
                     "x-content-type-options"):
            self.assertEqual(head_headers[name], headers[name], name)
        # No body follows a HEAD answer: the next request on the connection parses.
        conn = http.client.HTTPConnection(self.cp.host, self.cp.port, timeout=10)
        try:
            conn.request("HEAD", "/dashboard/")
            resp = conn.getresponse()
            self.assertEqual((resp.status, resp.read()), (200, b""))
            conn.request("GET", "/v1/version")
            resp = conn.getresponse()
            self.assertEqual(resp.status, 200)
            self.assertIn("version", json.loads(resp.read()))
        finally:
            conn.close()

        for method in ("POST", "PUT", "DELETE"):
            for path in ("/", "/dashboard/"):
                status, headers, body = self.raw(method, path)
                self.assertEqual((status, headers.get("allow")), (405, "GET, HEAD"), (method, path))
                self.assertIn("error", json.loads(body))
        for path in ("/dashboard/index.html", "/dashboard/x/y"):
            self.assertEqual(self.raw("GET", path)[0], 404, path)
        # The API itself is unchanged.
        self.assertEqual(self.raw("GET", "/v1/version")[0], 200)
        self.assertEqual(self.raw("HEAD", "/v1/version")[0], 405)

    # ---- the rendered page ------------------------------------------------------------------

    def test_page_shows_the_state(self):
        self.seed()
        version = self.cp.version()
        dom = Dom(self.dump_dom())
        self.assertTrue(dom.by_id["status"].startswith("updated"), dom.by_id["status"])
        self.assertEqual(dom.by_id["version"], str(version))
        self.assertEqual(dom.rows("services"), [
            ["ratings", "default", "9081", "http", "(none)"],
            ["reviews", "shop", "9080", "http2", "10.0.0.5:9080"],
        ])
        [sandbox] = dom.rows("sandboxes")
        self.assertEqual(sandbox[:4], ["feat-x", "reviews \u2192 10.0.0.7:9080, 10.0.0.8:9080", "team=checkout",
                                       "2h"])
        self.assertRegex(sandbox[4], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \| in 1h 5\dm$")
        self.assertEqual(sandbox[5], "Delete")
        [release] = dom.rows("releases")
        self.assertEqual(release[0], "reviews")
        self.assertEqual(release[2], "v1: 90% | v2: 10%")
        self.assertIn('x-canary = "%s" \u2192 v2' % MARKUP, release[3])
        self.assertIn('x-user prefix "%s" \u2192 v2' % IMG, release[3])
        self.assertEqual(dom.rows("proxies"), [["none"]])

    def test_user_text_is_never_markup(self):
        cp = self.cp
        self.seed()
        # Keys and label values that look like markup never get in: 400 naming the field.
        key = urllib.parse.quote(IMG, safe="")
        status, _, body = cp.put("/v1/sandboxes/" + key, {"forks": {"reviews": ["10.0.0.9:9080"]}})
        self.assertEqual(status, 400, body)
        status, _, body = cp.put("/v1/sandboxes/feat-y", {"forks": {"reviews": ["10.0.0.9:9080"]},
                                                          "labels": {"note": MARKUP}})
        self.assertEqual((status, body.get("field")), (400, "labels.note"), body)
        # Header-match values do, and the page shows them as text: no <b> or
        # <img> element comes out of the API's data.
        text = self.dump_dom()
        dom = Dom(text)
        self.assertNotIn("img", dom.tags)
        self.assertNotIn("b", dom.tags)
        # (assertTrue, not assertIn: a failure need not print the whole page)
        self.assertTrue("&lt;b&gt;x&lt;/b&gt;" in text, "the <b> match value is not escaped text")
        self.assertTrue("&lt;img src=x onerror=" in text, "the <img> match value is not escaped text")
        self.assertFalse(MARKUP in text, "the <b> match value became markup")
        self.assertIn(MARKUP, dom.rows("releases")[0][3])

    def test_create_and_delete_a_sandbox_from_the_page(self):
        cp = self.cp
        self.seed()
        browser = DevTools(self.tmp)
        try:
            browser.open(cp.url + "/dashboard/")
            browser.wait_for("document.getElementById('status').textContent.startsWith('updated')",
                             "its first refresh")
            fill = ("(() => { const set = (id, v) => { document.getElementById(id).value = v; };"
                    " set('sandbox-key', %s); set('sandbox-forks', %s); set('sandbox-labels', %s);"
                    " set('sandbox-ttl', %s); document.getElementById('create-sandbox').requestSubmit();"
                    " return true; })()")
            message = "document.getElementById('message')"

            # A bad endpoint: the API's 400, naming the field, is shown.
            browser.evaluate(fill % tuple(json.dumps(v) for v in ("feat-y", "reviews=nope", "", "")))
            shown = browser.wait_for(message + ".className === 'error' && " + message + ".textContent",
                                     "the API's error")
            self.assertIn("400: forks.reviews[0]: 'nope' is not host:port", shown)
            self.assertIn("(field: forks.reviews[0])", shown)
            self.assertEqual(cp.get("/v1/sandboxes/feat-y")[0], 404)
            # A fork of a service that does not exist: 409, shown.
            browser.evaluate(fill % tuple(json.dumps(v) for v in ("feat-y", "nosuch=10.0.0.9:1", "", "")))
            shown = browser.wait_for(message + ".textContent.startsWith('409') && " + message + ".textContent",
                                     "the 409")
            self.assertIn("nosuch", shown)

            # Two forks of one service, a second service, labels and a TTL.
            browser.evaluate(fill % tuple(json.dumps(v) for v in (
                "feat-y", "reviews=10.0.0.9:9080\nreviews=10.0.0.10:9080, ratings=10.0.0.11:9081",
                "team=search", "30m")))
            shown = browser.wait_for(message + ".className === 'ok' && " + message + ".textContent",
                                     "the stored message")
            status, _, body = cp.get("/v1/sandboxes/feat-y")
            self.assertEqual(status, 200, body)
            self.assertEqual(body["forks"], {"reviews": ["10.0.0.9:9080", "10.0.0.10:9080"],
                                             "ratings": ["10.0.0.11:9081"]})
            self.assertEqual((body["labels"], body["ttl"]), ({"team": "search"}, "30m"))
            self.assertEqual(shown, "sandbox feat-y stored (config version %d)" % cp.version())
            browser.wait_for("document.getElementById('sandboxes').textContent.includes('10.0.0.10:9080')",
                             "the new sandbox in its table")

            # Delete feat-x with its row's button (the confirmation accepted).
            browser.evaluate("window.confirm = () => true; [...document.querySelectorAll('#sandboxes tbody tr')]"
                             ".find((r) => r.cells[0].textContent === 'feat-x').querySelector('button').click()")
            browser.wait_for(message + ".textContent.startsWith('sandbox feat-x deleted')", "the deletion")
            self.assertEqual(cp.get("/v1/sandboxes/feat-x")[0], 404)
            keys = browser.wait_for(
                "(() => { const k = [...document.querySelectorAll('#sandboxes tbody tr')]"
                ".map((r) => r.cells[0].textContent); return k.length === 1 && k; })()", "feat-x gone")
            self.assertEqual(keys, ["feat-y"])
            self.assertEqual(browser.evaluate("document.title"), "turnout-cp")
        finally:
            browser.close()


def main():
    global TURNOUT_CP, CHROMIUM
    if len(sys.argv) < 2:
        print("usage: control_plane_dashboard_test.py <turnout-cp-binary> [unittest args]", file=sys.stderr)
        return 2
    TURNOUT_CP = os.path.abspath(sys.argv[1])
    if not os.access(TURNOUT_CP, os.X_OK):
        print("not executable: %s" % TURNOUT_CP, file=sys.stderr)
        return 2
    CHROMIUM = find_chromium()
    if CHROMIUM is None:
        print("control_plane_dashboard_test: FAIL: chromium is not installed (no chromium, chromium-browser "
              "or google-chrome on PATH); scripts/setup.sh installs it (apt-get install chromium)",
              file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    start = time.monotonic()
    prog = unittest.main(module="__main__", argv=[sys.argv[0]] + sys.argv[2:], exit=False, verbosity=2)
    print("control_plane_dashboard_test: %.1fs" % (time.monotonic() - start), file=sys.stderr)
    return 0 if prog.result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
