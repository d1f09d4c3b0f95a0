#!/usr/bin/env python3
"""Sidecar capture against the real turnout binary in a network namespace.

Usage: original_dst_test.py <turnout-binary> [unittest args]

The test makes its own network namespace (turnout-odst-<pid>, deleted at the
end) with a veth pair whose addresses route 10.77.0.0/16 and fd77::/16, and
installs iptables/ip6tables nat OUTPUT rules as a sidecar's init container
would: traffic from UID 1337 (the proxy) returns untouched; TCP to
10.77.1.0/24 and fd77:1::/64 is REDIRECTed to the outbound capture port
15001, TCP to 10.77.2.0/24 and fd77:2::/64 to the inbound capture port 15006.
turnout runs in the namespace as UID 1337 (setpriv); the test itself re-runs
inside it (ip netns exec) as the "app": its connections to the service
addresses are captured. Its backends are python servers on 127.0.0.1.

turnout's config is Istio's shape:
- virtualOutbound (0.0.0.0:15001, [::]:15001): use_original_dst, a catch-all
  chain to the `passthrough` backend;
- 0.0.0.0:9080 and [::]:9080 (bind_to_port: false): routes to `reviews` and
  `reviews-v6`; 10.77.1.20:9080 (bind_to_port: false) to `ratings`;
- virtualInbound (0.0.0.0:15006, [::]:15006): the original_dst and
  http_inspector listener filters, one chain per destination port (8080 to
  `app8080`, 8081 to `app8081`), one for 8080 and 10.77.2.128/25
  (`app8080-hi`), 8082 split by the detected application protocol, and a
  default chain with a direct response.

If the machine forbids network namespaces (`unshare -n true` fails) the test
says so and exits 77, which CTest reports as skipped.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import http.client

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))

from fake_backend import FakeBackend  # noqa: E402
from turnout_process import TurnoutProcess, run_suite  # noqa: E402

TURNOUT = None      # set from argv in main()
NETNS = None        # the namespace the suite runs in (inside)
CLIENT_NETNS = None  # the far end of its veth pair; empty without TPROXY
PROXY_UID = 1337
TIMEOUT_S = 5.0
SKIP = 77

HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3." \
      "HttpConnectionManager"
ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
FILE_LOG = "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog"
ORIGINAL_DST = "type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst"
HTTP_INSPECTOR = ("type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3."
                  "HttpInspector")
LOG_FORMAT = "%DOWNSTREAM_LOCAL_ADDRESS% %REQ(:PATH)% %RESPONSE_CODE%\\n"
FILTERS_TIMEOUT_S = 1  # the inbound listeners' listener_filters_timeout


# -- config ------------------------------------------------------------------------

def hcm(stat_prefix, action, log_path):
    """A filters: list with one HCM: every request gets `action`, logged to log_path."""
    return (
        "      filters:\n"
        "      - name: envoy.filters.network.http_connection_manager\n"
        "        typed_config:\n"
        "          \"@type\": %s\n"
        "          stat_prefix: %s\n"
        "          access_log:\n"
        "          - name: envoy.access_loggers.file\n"
        "            typed_config:\n"
        "              \"@type\": %s\n"
        "              path: %s\n"
        "              log_format: {text_format: \"%s\"}\n"
        "          route_config:\n"
        "            virtual_hosts:\n"
        "            - name: all\n"
        "              domains: [\"*\"]\n"
        "              routes:\n"
        "              - match: {prefix: \"/\"}\n"
        "                %s\n"
        "          http_filters:\n"
        "          - name: envoy.filters.http.router\n"
        "            typed_config: {\"@type\": %s}\n"
    ) % (HCM, stat_prefix, FILE_LOG, log_path, LOG_FORMAT, action, ROUTER)


def chain(stat_prefix, action, log_path, match=None, key="    - "):
    """One filter chain: a list item under filter_chains, or `default_filter_chain:`."""
    out = key if key.endswith("- ") else key + "\n      "
    first = True
    if match is not None:
        out += "filter_chain_match: %s\n" % match
        first = False
    body = hcm(stat_prefix, action, log_path)
    if first:
        body = body[len("      "):]  # the list item's first key follows `- `
    return out + body


def listener(name, address, port, chains, extra=""):
    return ("  - name: %s\n"
            "    stat_prefix: %s\n"
            "    address: {socket_address: {address: \"%s\", port_value: %d}}\n"
            "%s"
            "    filter_chains:\n%s") % (name, name, address, port, extra, chains)


def cluster(name, port):
    return ("  - name: %s\n"
            "    connect_timeout: 1s\n"
            "    load_assignment:\n"
            "      cluster_name: %s\n"
            "      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: "
            "{address: 127.0.0.1, port_value: %d}}}}]}]\n") % (name, name, port)


def route_to(cluster_name):
    return "route: {cluster: %s}" % cluster_name


def direct(body):
    return "direct_response: {status: 200, body: {inline_string: %s}}" % body


INBOUND_FILTERS = (
    "    listener_filters:\n"
    "    - name: envoy.filters.listener.original_dst\n"
    "      typed_config: {\"@type\": %s}\n"
    "    - name: envoy.filters.listener.http_inspector\n"
    "      typed_config: {\"@type\": %s}\n") % (ORIGINAL_DST, HTTP_INSPECTOR)


def bootstrap(backends, logs):
    def log(name):
        return os.path.join(logs, name + ".log")

    outbound_chain = chain("outbound_passthrough", route_to("passthrough"), log("outbound"))
    inbound_chains = (
        chain("in8080", route_to("app8080"), log("inbound"), match="{destination_port: 8080}") +
        chain("in8081", route_to("app8081"), log("inbound"), match="{destination_port: 8081}") +
        chain("in8080hi", route_to("app8080-hi"), log("inbound"),
              match="{destination_port: 8080, prefix_ranges: [{address_prefix: 10.77.2.128, "
                    "prefix_len: 25}, {address_prefix: \"fd77:2::8000\", prefix_len: 113}]}") +
        chain("in8082h2c", direct("h2c-chain"), log("inbound"),
              match="{destination_port: 8082, application_protocols: [h2c]}") +
        chain("in8082", direct("plain-chain"), log("inbound"), match="{destination_port: 8082}"))
    inbound_default = chain("in_default", direct("inbound-default"), log("inbound"),
                            key="    default_filter_chain:")
    listeners = (
        listener("virtualOutbound", "0.0.0.0", 15001, outbound_chain,
                 "    use_original_dst: true\n") +
        listener("virtualOutbound6", "::", 15001, outbound_chain, "    use_original_dst: true\n") +
        listener("virtual_9080", "0.0.0.0", 9080,
                 chain("reviews", route_to("reviews"), log("virtual_9080")),
                 "    bind_to_port: false\n") +
        listener("virtual6_9080", "::", 9080,
                 chain("reviews6", route_to("reviews-v6"), log("virtual_9080")),
                 "    bind_to_port: false\n") +
        listener("ratings_9080", "10.77.1.20", 9080,
                 chain("ratings", route_to("ratings"), log("virtual_9080")),
                 "    bind_to_port: false\n") +
        # Istio's virtualInbound goes on when the first bytes are late;
        # the IPv6 one here closes such connections (Envoy's default).
        listener("virtualInbound", "0.0.0.0", 15006, inbound_chains + inbound_default,
                 INBOUND_FILTERS + "    listener_filters_timeout: %ss\n"
                 "    continue_on_listener_filters_timeout: true\n" % FILTERS_TIMEOUT_S) +
        listener("virtualInbound6", "::", 15006, inbound_chains + inbound_default,
                 INBOUND_FILTERS + "    listener_filters_timeout: %ss\n" % FILTERS_TIMEOUT_S))
    clusters = "".join(cluster(name, b.port) for name, b in sorted(backends.items()))
    return ("admin:\n"
            "  address: {socket_address: {address: 127.0.0.1, port_value: 0}}\n"
            "static_resources:\n"
            "  listeners:\n" + listeners +
            "  clusters:\n" + clusters)


# -- the namespace (outside) ---------------------------------------------------------

def sh(*args, check=True):
    return subprocess.run(list(args), check=check, capture_output=True, text=True, timeout=30)


def ns_runner(ns):
    def ns_run(*args):
        r = sh("ip", "netns", "exec", ns, *args, check=False)
        if r.returncode != 0:
            raise RuntimeError("%s: %s%s" % (" ".join(args), r.stdout, r.stderr))
    return ns_run


def setup_namespace(ns, client_ns):
    """Addresses, routes and the capture rules, inside `ns`; `client_ns` is
    the far end of the veth pair (a second host for the TPROXY test)."""
    ns_run = ns_runner(ns)
    client_run = ns_runner(client_ns)
    ns_run("ip", "link", "set", "lo", "up")
    ns_run("ip", "link", "add", "odst0", "type", "veth", "peer", "name", "odst1")
    ns_run("ip", "link", "set", "odst1", "netns", client_ns)
    client_run("ip", "link", "set", "lo", "up")
    client_run("ip", "link", "set", "odst1", "up")
    client_run("ip", "addr", "add", "10.78.0.2/24", "dev", "odst1")
    client_run("ip", "route", "add", "10.79.0.0/24", "via", "10.78.0.1")
    ns_run("ip", "link", "set", "odst0", "up")
    ns_run("ip", "addr", "add", "10.77.0.1/16", "dev", "odst0")
    ns_run("ip", "addr", "add", "10.78.0.1/24", "dev", "odst0")
    ns_run("ip", "-6", "addr", "add", "fd77::1/16", "dev", "odst0", "nodad")
    for tool, exempt, captures in (
            ("iptables", [], [("10.77.1.0/24", 15001), ("10.77.2.0/24", 15006)]),
            ("ip6tables", [], [("fd77:1::/64", 15001), ("fd77:2::/64", 15006)])):
        ns_run(tool, "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-m", "owner", "--uid-owner",
               str(PROXY_UID), "-j", "RETURN")
        for cidr, port in captures:
            ns_run(tool, "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", cidr, "-j", "REDIRECT",
                   "--to-ports", str(port))


def setup_tproxy(ns):
    """TCP from the client namespace to 10.79.0.0/24 goes to port 15007 by
    TPROXY (mangle PREROUTING, a fwmark and a local route). Returns why not,
    or None."""
    ns_run = ns_runner(ns)
    try:
        ns_run("iptables", "-t", "mangle", "-A", "PREROUTING", "-p", "tcp", "-d", "10.79.0.0/24",
               "-j", "TPROXY", "--on-port", "15007", "--tproxy-mark", "0x1/0x1")
        ns_run("ip", "rule", "add", "fwmark", "0x1/0x1", "lookup", "100")
        ns_run("ip", "route", "add", "local", "0.0.0.0/0", "dev", "lo", "table", "100")
    except RuntimeError as e:
        return str(e)
    return None


def remove_stale_namespaces():
    """Deletes the namespaces of earlier runs that were killed (their pid is gone)."""
    r = sh("ip", "netns", "list", check=False)
    for line in r.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.fullmatch(r"turnout-odst-(\d+)(-c)?", name)
        if m and not os.path.exists("/proc/%s" % m.group(1)):
            sh("ip", "netns", "del", name, check=False)


def outside(binary):
    """Makes the namespace, runs this suite inside it, deletes the namespace."""
    if shutil.which("unshare") is None or sh("unshare", "-n", "true", check=False).returncode != 0:
        print("original_dst_test: SKIPPED: this machine forbids network namespaces "
              "(`unshare -n true` fails); sidecar capture cannot be tested here",
              file=sys.stderr)
        return SKIP
    for tool in ("ip", "iptables", "ip6tables", "setpriv", "curl"):
        if shutil.which(tool) is None:
            print("original_dst_test: %s is missing (scripts/setup.sh installs it)" % tool,
                  file=sys.stderr)
            return 1
    remove_stale_namespaces()
    # CTest's timeout sends SIGTERM first: the namespaces still go.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    ns = "turnout-odst-%d" % os.getpid()
    client_ns = ns + "-c"
    made = []
    try:
        for n in (ns, client_ns):
            r = sh("ip", "netns", "add", n, check=False)
            if r.returncode != 0:
                print("original_dst_test: SKIPPED: cannot create network namespace %s: %s"
                      % (n, r.stderr.strip()), file=sys.stderr)
                return SKIP
            made.append(n)
        setup_namespace(ns, client_ns)
        no_tproxy = setup_tproxy(ns)
        if no_tproxy:
            print("original_dst_test: no TPROXY here (%s); the transparent listener test is "
                  "skipped" % no_tproxy, file=sys.stderr)
        cmd = ["ip", "netns", "exec", ns, sys.executable, os.path.abspath(__file__),
               "--inside", ns, "" if no_tproxy else client_ns, binary] + sys.argv[2:]
        inner = subprocess.Popen(cmd)
        try:
            return inner.wait(timeout=280)
        finally:
            if inner.poll() is None:  # timed out, or SIGTERM: its turnouts stop with it
                inner.terminate()
                try:
                    inner.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    inner.kill()
                    inner.wait()
    finally:
        for n in made:
            sh("ip", "netns", "del", n, check=False)


# -- the suite (inside) --------------------------------------------------------------

def request(host, port, path="/", timeout=TIMEOUT_S):
    """One HTTP/1.1 GET from this process (the app, not UID 1337): captured."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        resp = conn.getresponse()
        return resp.status, dict((k.lower(), v) for k, v in resp.getheaders()), resp.read()
    finally:
        conn.close()


def recv_all(s):
    """Everything the peer sends until it closes (bounded by the socket timeout)."""
    chunks = []
    for _ in range(10000):
        data = s.recv(65536)
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def read_log(path, want, deadline_s=5.0):
    """The lines of an access log once one contains `want` (bounded poll)."""
    end = time.monotonic() + deadline_s
    lines = []
    while time.monotonic() < end:
        try:
            with open(path) as f:
                lines = f.read().splitlines()
        except OSError:
            lines = []
        if any(want in line for line in lines):
            return lines
        time.sleep(0.02)
    return lines


class CaptureTest(unittest.TestCase):
    proxy = None
    backends = {}
    logs = None

    @classmethod
    def setUpClass(cls):
        cls.logs = tempfile.mkdtemp(prefix="turnout-odst-logs-")
        os.chmod(cls.logs, 0o777)  # turnout writes its access logs here as UID 1337
        try:
            for name in ("passthrough", "reviews", "reviews-v6", "ratings", "app8080",
                         "app8081", "app8080-hi"):
                cls.backends[name] = FakeBackend(name).start()
            wrapper = ["setpriv", "--reuid", str(PROXY_UID), "--regid", str(PROXY_UID),
                       "--clear-groups"]
            cls.proxy = TurnoutProcess(TURNOUT, bootstrap(cls.backends, cls.logs),
                                       wrapper=wrapper, tmpdir_mode=0o777).start()
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.proxy is not None:
            cls.proxy.stop()
            cls.proxy = None
        for b in cls.backends.values():
            b.stop()
        cls.backends = {}
        if cls.logs is not None:
            shutil.rmtree(cls.logs, ignore_errors=True)
            cls.logs = None

    def log(self, name):
        return os.path.join(self.logs, name + ".log")

    def counter(self, name):
        return self.proxy.counter(name) or 0

    def assert_backend(self, host, port, backend, path="/"):
        status, headers, body = request(host, port, path)
        self.assertEqual(status, 200, body)
        self.assertEqual(headers.get("x-backend"), backend, body)
        return json.loads(body)

    def test_turnout_runs_as_the_exempt_uid(self):
        with open("/proc/%d/status" % self.proxy.proc.pid) as f:
            uid_line = next(line for line in f if line.startswith("Uid:"))
        self.assertEqual(uid_line.split()[1:], [str(PROXY_UID)] * 4)

    def test_a_captured_request_is_handed_to_the_port_listener_and_routed_by_it(self):
        before_target = self.counter("listener.virtual_9080.downstream_cx_total")
        before_capture = self.counter("listener.virtualOutbound.downstream_cx_total")
        seen = self.assert_backend("10.77.1.10", 9080, "reviews", "/reviews/1")
        # The app's Host header arrives as sent: the request was not re-addressed.
        self.assertIn(["host", "10.77.1.10:9080"], seen["headers"])
        lines = read_log(self.log("virtual_9080"), "/reviews/1")
        self.assertIn("10.77.1.10:9080 /reviews/1 200", lines)
        # Counted on the listener that served it, as Envoy does, not on the
        # capture listener that accepted it.
        self.assertEqual(self.proxy.wait_counter("listener.virtual_9080.downstream_cx_total",
                                                 before_target + 1), before_target + 1)
        self.assertEqual(self.counter("listener.virtualOutbound.downstream_cx_total"),
                         before_capture)

    def test_a_listener_on_the_exact_address_wins_over_the_wildcard_one(self):
        self.assert_backend("10.77.1.20", 9080, "ratings", "/ratings/1")
        self.assertIn("10.77.1.20:9080 /ratings/1 200",
                      read_log(self.log("virtual_9080"), "/ratings/1"))
        # Its neighbour still goes to the wildcard listener.
        self.assert_backend("10.77.1.21", 9080, "reviews")

    def test_a_destination_no_listener_wants_stays_on_the_capture_listener(self):
        before = self.counter("listener.virtualOutbound.downstream_cx_total")
        self.assert_backend("10.77.1.10", 7777, "passthrough", "/elsewhere")
        self.assertIn("10.77.1.10:7777 /elsewhere 200",
                      read_log(self.log("outbound"), "/elsewhere"))
        self.assertGreaterEqual(
            self.proxy.wait_counter("listener.virtualOutbound.downstream_cx_total", before + 1),
            before + 1)

    def test_ipv6_original_destinations_are_restored_and_handed_off(self):
        self.assert_backend("fd77:1::10", 9080, "reviews-v6", "/v6/reviews")
        self.assertIn("[fd77:1::10]:9080 /v6/reviews 200",
                      read_log(self.log("virtual_9080"), "/v6/reviews"))
        self.assert_backend("fd77:1::10", 7777, "passthrough", "/v6/elsewhere")
        self.assertIn("[fd77:1::10]:7777 /v6/elsewhere 200",
                      read_log(self.log("outbound"), "/v6/elsewhere"))

    def test_destination_port_chains_split_one_capture_listener(self):
        self.assert_backend("10.77.2.5", 8080, "app8080", "/in/8080")
        self.assert_backend("10.77.2.5", 8081, "app8081", "/in/8081")
        # A chain for the port and a range holding the address beats the port alone.
        self.assert_backend("10.77.2.200", 8080, "app8080-hi", "/in/8080-hi")
        self.assert_backend("fd77:2::8001", 8080, "app8080-hi", "/in/v6-8080-hi")
        self.assert_backend("fd77:2::5", 8081, "app8081", "/in/v6-8081")
        # Each line waited for on its own: the two workers' log buffers are
        # flushed apart, so one line present says nothing of the others.
        for want in ("10.77.2.5:8080 /in/8080 200", "10.77.2.5:8081 /in/8081 200",
                     "10.77.2.200:8080 /in/8080-hi 200", "[fd77:2::8001]:8080 /in/v6-8080-hi 200",
                     "[fd77:2::5]:8081 /in/v6-8081 200"):
            self.assertIn(want, read_log(self.log("inbound"), want))
        # A port without a chain: the default chain.
        status, _, body = request("10.77.2.5", 8099, "/in/8099")
        self.assertEqual((status, body), (200, b"inbound-default"))
        self.assertIn("10.77.2.5:8099 /in/8099 200", read_log(self.log("inbound"), "/in/8099"))

    def test_http_inspector_splits_http1_from_h2c_by_application_protocol(self):
        before_h1 = self.counter("http_inspector.http11_found")
        before_h2 = self.counter("http_inspector.http2_found")
        status, _, body = request("10.77.2.5", 8082, "/in/8082")
        self.assertEqual((status, body), (200, b"plain-chain"))
        r = subprocess.run(["curl", "-sS", "--max-time", "5", "--http2-prior-knowledge",
                            "-w", " %{http_version}", "http://10.77.2.5:8082/in/8082-h2c"],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(r.stdout, "h2c-chain 2", r.stderr)
        self.assertGreaterEqual(
            self.proxy.wait_counter("http_inspector.http11_found", before_h1 + 1), before_h1 + 1)
        self.assertGreaterEqual(
            self.proxy.wait_counter("http_inspector.http2_found", before_h2 + 1), before_h2 + 1)

    def test_a_client_silent_past_listener_filters_timeout_goes_on_or_is_closed(self):
        # virtualInbound: continue_on_listener_filters_timeout. The request
        # sent after the timeout is matched without an application protocol.
        before = self.counter("listener.virtualInbound.downstream_pre_cx_timeout")
        with socket.create_connection(("10.77.2.5", 8082), timeout=TIMEOUT_S) as s:
            self.assertGreaterEqual(self.proxy.wait_counter(
                "listener.virtualInbound.downstream_pre_cx_timeout", before + 1,
                deadline_s=FILTERS_TIMEOUT_S + 5), before + 1)
            s.sendall(b"GET /late HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n")
            reply = recv_all(s)
        self.assertTrue(reply.startswith(b"HTTP/1.1 200"), reply)
        self.assertTrue(reply.endswith(b"plain-chain"), reply)
        # virtualInbound6: Envoy's default, the connection is closed.
        before = self.counter("listener.virtualInbound6.downstream_pre_cx_timeout")
        with socket.create_connection(("fd77:2::5", 8082), timeout=TIMEOUT_S) as s:
            self.assertGreaterEqual(self.proxy.wait_counter(
                "listener.virtualInbound6.downstream_pre_cx_timeout", before + 1,
                deadline_s=FILTERS_TIMEOUT_S + 5), before + 1)
            try:
                s.sendall(b"GET /late HTTP/1.1\r\nHost: app\r\n\r\n")
                self.assertEqual(recv_all(s), b"")
            except (ConnectionResetError, BrokenPipeError):
                pass

    def test_a_connection_that_was_not_redirected_keeps_its_local_address(self):
        # Straight to the capture port on loopback: no REDIRECT, so the
        # connection's own address stays (and its port has no chain).
        status, _, body = request("127.0.0.1", 15006, "/direct")
        self.assertEqual((status, body), (200, b"inbound-default"))
        self.assertIn("127.0.0.1:15006 /direct 200", read_log(self.log("inbound"), "/direct"))


class TransparentListenerTest(unittest.TestCase):
    """A TPROXY listener: connections from the client namespace to
    10.79.0.0/24 arrive at 0.0.0.0:15007 still addressed as dialled."""

    def setUp(self):
        if not CLIENT_NETNS:
            self.skipTest("TPROXY is not available on this machine")
        self.logs = tempfile.mkdtemp(prefix="turnout-odst-tproxy-")
        os.chmod(self.logs, 0o777)  # also written by a turnout as UID 1337
        self.addCleanup(shutil.rmtree, self.logs, True)

    def bootstrap(self):
        log = os.path.join(self.logs, "tproxy.log")
        chains = (chain("tp80", direct("tproxy-80"), log, match="{destination_port: 80}") +
                  chain("tp_default", direct("tproxy-default"), log,
                        key="    default_filter_chain:"))
        return ("admin:\n"
                "  address: {socket_address: {address: 127.0.0.1, port_value: 0}}\n"
                "static_resources:\n"
                "  listeners:\n" +
                listener("tproxy", "0.0.0.0", 15007, chains,
                         "    transparent: true\n" + INBOUND_FILTERS))

    def client_get(self, url):
        r = subprocess.run(["ip", "netns", "exec", CLIENT_NETNS, "curl", "-sS", "--max-time", "5",
                            url], capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def test_a_transparent_listener_takes_tproxy_connections_with_their_original_destination(self):
        # IP_TRANSPARENT needs CAP_NET_ADMIN: this turnout runs as root.
        with TurnoutProcess(TURNOUT, self.bootstrap()) as proxy:
            self.assertEqual(self.client_get("http://10.79.0.5/tp"), "tproxy-80")
            self.assertEqual(self.client_get("http://10.79.0.6:81/tp81"), "tproxy-default")
            log = os.path.join(self.logs, "tproxy.log")
            self.assertIn("10.79.0.5:80 /tp 200", read_log(log, "/tp "))
            self.assertIn("10.79.0.6:81 /tp81 200", read_log(log, "/tp81"))
            self.assertGreaterEqual(proxy.counter("listener.tproxy.downstream_cx_total"), 2)

    def test_a_transparent_listener_without_cap_net_admin_fails_with_the_reason(self):
        proxy = TurnoutProcess(TURNOUT, self.bootstrap(),
                               wrapper=["setpriv", "--reuid", str(PROXY_UID), "--regid",
                                        str(PROXY_UID), "--clear-groups"],
                               tmpdir_mode=0o777)
        with self.assertRaises(Exception) as caught:
            proxy.start()
        self.assertIn("cannot make '0.0.0.0:15007' transparent (IP_TRANSPARENT needs "
                      "CAP_NET_ADMIN)", str(caught.exception))


def main():
    global TURNOUT, NETNS, CLIENT_NETNS
    if len(sys.argv) >= 5 and sys.argv[1] == "--inside":
        NETNS, CLIENT_NETNS = sys.argv[2], sys.argv[3]
        del sys.argv[1:4]

        def set_binary(b):
            global TURNOUT
            TURNOUT = b
        return run_suite("original_dst_test", set_binary)
    if len(sys.argv) < 2:
        print("usage: original_dst_test.py <turnout-binary> [unittest args]", file=sys.stderr)
        return 2
    return outside(os.path.abspath(sys.argv[1]))


if __name__ == "__main__":
    sys.exit(main())
