#!/usr/bin/env python3
"""`turnout iptables` in network namespaces the test creates, with both backends.

For each of nft and legacy, an "app" namespace (the pod: lo, veth0 with
10.77.0.1/24 and fd77::1/64) and a "peer" namespace (veth1 with 10.77.0.5,
10.77.0.6 and fd77::5) joined by a veth pair. In the app namespace a capture
server listens on 15001 and 15006 and answers with the SO_ORIGINAL_DST it reads
(getsockopt(SOL_IP / SOL_IPV6, 80)); the app itself listens on 9080 and 9443;
the peer listens on 8080 and 9999. Checked, against the real kernel:

- iptables-save after the run shows exactly the rules --dry-run printed, added
  to the namespace's own rules (kept); a re-run changes nothing; --dry-run and
  --cleanup --dry-run change nothing; --cleanup restores the nat table exactly
  (IPv4 and IPv6) and a second --cleanup succeeds;
- an app connection to 10.77.0.5:8080 (and [fd77::5]:8080) reaches 15001 with
  its original destination; as UID 1337 or GID 1337 (setpriv) it is not
  captured; an excluded port and an excluded CIDR are not captured; 127.0.0.1
  and the app calling its own address are not; the proxy (UID 1337) calling
  the pod's own address goes to inbound capture (Istio's app-to-self rule);
- a connection from the peer to 10.77.0.1:9080 (and [fd77::1]:9080) arrives at
  15006 with its original destination; an excluded inbound port reaches the app.

Also: auto picks the backend that already has rules; bad options exit 2 naming
the option. The namespaces are always deleted, the servers always killed.

Usage: iptables_test.py <turnout-binary> [unittest args]
"""

import os
import re
import select
import subprocess
import sys
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))

from turnout_process import run_suite  # noqa: E402

TURNOUT = None
CMD_TIMEOUT_S = 20
CONNECT_TIMEOUT_S = 3
READY_TIMEOUT_S = 10

# A TCP server on several ports (IPv4 and IPv6 sockets): each connection gets
# one line "<label> port=<local port> orig=<SO_ORIGINAL_DST or ->" and is closed.
SERVER = r"""
import socket, struct, sys, threading
label, ports = sys.argv[1], [int(p) for p in sys.argv[2].split(",")]
def orig(conn, v6):
    # "-" unless NAT changed the destination (conntrack may know any connection).
    try:
        if v6:
            raw = conn.getsockopt(socket.IPPROTO_IPV6, 80, 28)  # IP6T_SO_ORIGINAL_DST
            addr = (socket.inet_ntop(socket.AF_INET6, raw[8:24]), struct.unpack("!H", raw[2:4])[0])
            local = conn.getsockname()[:2]
            text = "[%s]:%d" % addr
        else:
            raw = conn.getsockopt(socket.SOL_IP, 80, 16)  # SO_ORIGINAL_DST
            addr = (socket.inet_ntoa(raw[4:8]), struct.unpack("!H", raw[2:4])[0])
            local = conn.getsockname()
            text = "%s:%d" % addr
    except OSError:
        return "-"
    return "-" if tuple(local) == addr else text
def serve(sock, port, v6):
    while True:
        conn, _ = sock.accept()
        with conn:
            conn.sendall(("%s port=%d orig=%s\n" % (label, port, orig(conn, v6))).encode())
for port in ports:
    for family in (socket.AF_INET, socket.AF_INET6):
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", port))
        s.listen(16)
        threading.Thread(target=serve, args=(s, port, family == socket.AF_INET6),
                         daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"""

# Connects, prints the server's line, or "ERR <reason>" and exits 1.
CLIENT = r"""
import socket, sys
host, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
source = (sys.argv[4], 0) if len(sys.argv) > 4 else None
try:
    with socket.create_connection((host, port), timeout=timeout, source_address=source) as c:
        c.settimeout(timeout)
        data = b""
        while not data.endswith(b"\n"):
            chunk = c.recv(256)
            if not chunk:
                break
            data += chunk
    print(data.decode().strip())
except OSError as e:
    print("ERR %s" % e)
    sys.exit(1)
"""


def sh(*args, check=True, timeout=CMD_TIMEOUT_S):
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError("%s exited %d: %s%s" % (" ".join(args), r.returncode, r.stdout,
                                                       r.stderr))
    return r


class Netns:
    """A network namespace named `name`, deleted by delete() with its processes."""

    def __init__(self, name):
        self.name = name
        self.procs = []
        if os.path.exists("/run/netns/" + name):  # left by a killed run with our pid
            sh("ip", "netns", "del", name, check=False)
        sh("ip", "netns", "add", name)
        self.ip("link", "set", "lo", "up")

    def ip(self, *args):
        return sh("ip", "-n", self.name, *args)

    def run(self, *args, check=True, prefix=()):
        return sh("ip", "netns", "exec", self.name, *prefix, *args, check=check)

    def start_server(self, label, ports):
        p = subprocess.Popen(["ip", "netns", "exec", self.name, sys.executable, "-c", SERVER,
                              label, ",".join(str(x) for x in ports)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(p)
        ready, _, _ = select.select([p.stdout], [], [], READY_TIMEOUT_S)
        line = p.stdout.readline().strip() if ready else ""
        if line != "ready":
            p.kill()
            raise AssertionError("server %s did not start: %r %s" % (label, line,
                                                                     p.stderr.read()))

    def connect(self, host, port, prefix=(), source=None):
        r = self.run(sys.executable, "-c", CLIENT, host, str(port), str(CONNECT_TIMEOUT_S),
                     *([source] if source else []), check=False, prefix=prefix)
        return r.stdout.strip()

    def delete(self):
        for p in self.procs:
            p.kill()
            p.wait(timeout=5)
            p.stdout.close()
            p.stderr.close()
        self.procs = []
        sh("ip", "netns", "del", self.name, check=False)


def program(backend, v6, tool=None):
    """program("nft", True, "save") -> "ip6tables-nft-save"; no tool: "ip6tables-nft"."""
    name = "%s-%s" % ("ip6tables" if v6 else "iptables", backend)
    return name + "-" + tool if tool else name


def nat(ns, backend, v6=False):
    """The namespace's nat table: no comments, counters zeroed."""
    out = ns.run(program(backend, v6, "save"), "-t", "nat").stdout
    lines = [re.sub(r"\[\d+:\d+\]", "[0:0]", l) for l in out.splitlines()
             if l and not l.startswith("#")]
    return lines


def rules_of(text, family):
    """The -A lines of one family's section of --dry-run output."""
    out, on = [], False
    for line in text.splitlines():
        if line.startswith("# turnout iptables: "):
            on = ("%s nat rules" % family) in line
        elif on and line.startswith("-A "):
            out.append(line)
    return out


AS_PROXY = ("setpriv", "--reuid", "1337", "--regid", "1337", "--clear-groups")
AS_PROXY_GID = ("setpriv", "--reuid", "1000", "--regid", "1337", "--clear-groups")
AS_APP = ("setpriv", "--reuid", "1000", "--regid", "1000", "--clear-groups")
FLAGS = ["--ipv6", "--exclude-outbound-ports", "9999", "--exclude-outbound-cidrs",
         "10.77.0.6/32", "--exclude-inbound-ports", "9443"]


class BackendCapture:
    """The whole check for one backend; mixed into a TestCase with BACKEND set."""

    BACKEND = None

    @classmethod
    def setUpClass(cls):
        base = "turnout-ipt-%d-%s" % (os.getpid(), cls.BACKEND)
        cls.app = cls.peer = None
        try:
            cls.app = Netns(base)
            cls.peer = Netns(base + "-peer")
            cls.app.ip("link", "add", "veth0", "type", "veth", "peer", "name", "veth1", "netns",
                       cls.peer.name)
            cls.app.ip("addr", "add", "10.77.0.1/24", "dev", "veth0")
            cls.app.ip("addr", "add", "fd77::1/64", "dev", "veth0", "nodad")
            cls.app.ip("link", "set", "veth0", "up")
            for a in ("10.77.0.5/24", "10.77.0.6/24"):
                cls.peer.ip("addr", "add", a, "dev", "veth1")
            cls.peer.ip("addr", "add", "fd77::5/64", "dev", "veth1", "nodad")
            cls.peer.ip("link", "set", "veth1", "up")
            cls.app.start_server("capture", [15001, 15006])
            cls.app.start_server("app", [9080, 9443])
            cls.peer.start_server("peer", [8080, 9999])
            # Rules of the pod's own that turnout must leave alone, in both families.
            for v6 in (False, True):
                ipt = program(cls.BACKEND, v6)
                cls.app.run(ipt, "-t", "nat", "-N", "KEEP_ME")
                cls.app.run(ipt, "-t", "nat", "-A", "KEEP_ME", "-p", "udp", "-j", "RETURN")
                cls.app.run(ipt, "-t", "nat", "-A", "POSTROUTING", "-j", "KEEP_ME")
                cls.app.run(ipt, "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "--dport", "5",
                            "-j", "RETURN")
            cls.before = {v6: nat(cls.app, cls.BACKEND, v6) for v6 in (False, True)}
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        for ns in (cls.app, cls.peer):
            if ns is not None:
                ns.delete()

    def turnout(self, *args, ns=None):
        return (ns or self.app).run(TURNOUT, "iptables", *args, check=False)

    def apply(self):
        r = self.turnout(*FLAGS, "--iptables-backend", self.BACKEND)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return r

    def test_capture_rules_apply_rerun_and_clean_up_exactly(self):
        dry = self.turnout(*FLAGS, "--dry-run", "--iptables-backend", self.BACKEND)
        self.assertEqual(dry.returncode, 0, dry.stderr)
        for v6 in (False, True):
            self.assertEqual(nat(self.app, self.BACKEND, v6), self.before[v6],
                             "--dry-run changed the table")

        out = self.apply().stdout
        self.assertIn(program(self.BACKEND, False, "restore"), out)
        after = {v6: nat(self.app, self.BACKEND, v6) for v6 in (False, True)}
        for v6, family in ((False, "IPv4"), (True, "IPv6")):
            ours = [l for l in after[v6] if l not in self.before[v6] and l.startswith("-A")]
            self.assertEqual(ours, rules_of(dry.stdout, family))
            self.assertEqual([l for l in after[v6] if l in self.before[v6]], self.before[v6],
                             "the namespace's own rules changed")
            for chain in ("TURNOUT_INBOUND", "TURNOUT_IN_REDIRECT", "TURNOUT_OUTPUT",
                          "TURNOUT_REDIRECT"):
                self.assertIn(":%s - [0:0]" % chain, after[v6])

        self.apply()
        for v6 in (False, True):
            self.assertEqual(nat(self.app, self.BACKEND, v6), after[v6], "a re-run changed it")

        # The other backend saw nothing.
        other = "legacy" if self.BACKEND == "nft" else "nft"
        self.assertFalse(any("TURNOUT" in l for l in nat(self.app, other)))

        dry_clean = self.turnout("--cleanup", "--dry-run", "--iptables-backend", self.BACKEND)
        self.assertEqual(dry_clean.returncode, 0, dry_clean.stderr)
        self.assertIn("-D OUTPUT -p tcp -j TURNOUT_OUTPUT", dry_clean.stdout)
        self.assertIn("-X TURNOUT_REDIRECT", dry_clean.stdout)
        for v6 in (False, True):
            self.assertEqual(nat(self.app, self.BACKEND, v6), after[v6])

        clean = self.turnout("--cleanup", "--iptables-backend", self.BACKEND)
        self.assertEqual(clean.returncode, 0, clean.stderr)
        for v6 in (False, True):
            self.assertEqual(nat(self.app, self.BACKEND, v6), self.before[v6])
        again = self.turnout("--cleanup", "--iptables-backend", self.BACKEND)
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertIn("no capture rules to remove", again.stdout)
        for v6 in (False, True):
            self.assertEqual(nat(self.app, self.BACKEND, v6), self.before[v6])

    def test_traffic_is_captured_as_the_rules_say(self):
        # Before: nothing is captured.
        self.assertEqual(self.app.connect("10.77.0.5", 8080), "peer port=8080 orig=-")
        self.apply()
        try:
            app, peer = self.app, self.peer
            # Outbound from the app: to the proxy with the original destination.
            self.assertEqual(app.connect("10.77.0.5", 8080),
                             "capture port=15001 orig=10.77.0.5:8080")
            self.assertEqual(app.connect("10.77.0.5", 8080, prefix=AS_APP),
                             "capture port=15001 orig=10.77.0.5:8080")
            self.assertEqual(app.connect("fd77::5", 8080),
                             "capture port=15001 orig=[fd77::5]:8080")
            # The proxy's own traffic, by UID or by GID: straight out.
            self.assertEqual(app.connect("10.77.0.5", 8080, prefix=AS_PROXY),
                             "peer port=8080 orig=-")
            self.assertEqual(app.connect("10.77.0.5", 8080, prefix=AS_PROXY_GID),
                             "peer port=8080 orig=-")
            self.assertEqual(app.connect("fd77::5", 8080, prefix=AS_PROXY),
                             "peer port=8080 orig=-")
            # Excluded port and CIDR.
            self.assertEqual(app.connect("10.77.0.5", 9999), "peer port=9999 orig=-")
            self.assertEqual(app.connect("10.77.0.6", 8080), "peer port=8080 orig=-")
            # Loopback, and the app calling its own address over lo.
            self.assertEqual(app.connect("127.0.0.1", 9080), "app port=9080 orig=-")
            self.assertEqual(app.connect("::1", 9080), "app port=9080 orig=-")
            self.assertEqual(app.connect("10.77.0.1", 9080), "app port=9080 orig=-")
            # The proxy calling its own pod's address goes through the
            # inbound capture, as Istio's rules do; its inbound passthrough
            # connects from 127.0.0.6 and is not captured again (no loop).
            self.assertEqual(app.connect("10.77.0.1", 9080, prefix=AS_PROXY),
                             "capture port=15006 orig=10.77.0.1:9080")
            self.assertEqual(app.connect("10.77.0.1", 9080, prefix=AS_PROXY, source="127.0.0.6"),
                             "app port=9080 orig=-")
            # Inbound over the veth: to 15006 with the original destination.
            self.assertEqual(peer.connect("10.77.0.1", 9080),
                             "capture port=15006 orig=10.77.0.1:9080")
            self.assertEqual(peer.connect("fd77::1", 9080),
                             "capture port=15006 orig=[fd77::1]:9080")
            # An excluded inbound port reaches the app.
            self.assertEqual(peer.connect("10.77.0.1", 9443), "app port=9443 orig=-")
        finally:
            self.turnout("--cleanup", "--iptables-backend", self.BACKEND)
        self.assertEqual(self.app.connect("10.77.0.5", 8080), "peer port=8080 orig=-")
        self.assertEqual(self.peer.connect("10.77.0.1", 9080), "app port=9080 orig=-")


class NftTest(BackendCapture, unittest.TestCase):
    BACKEND = "nft"


class LegacyTest(BackendCapture, unittest.TestCase):
    BACKEND = "legacy"


class CommandLineTest(unittest.TestCase):
    def setUp(self):
        self.ns = Netns("turnout-ipt-%d-auto" % os.getpid())

    def tearDown(self):
        self.ns.delete()

    def turnout(self, *args):
        return self.ns.run(TURNOUT, "iptables", *args, check=False)

    def has_turnout(self, backend):
        return any("TURNOUT_OUTPUT" in l for l in nat(self.ns, backend))

    def test_auto_uses_the_backend_that_already_has_rules(self):
        self.ns.run("iptables-legacy", "-t", "nat", "-A", "OUTPUT", "-d", "192.0.2.1",
                    "-j", "RETURN")
        before = nat(self.ns, "legacy")
        r = self.turnout()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("iptables-legacy-restore", r.stdout)
        self.assertTrue(self.has_turnout("legacy"))
        self.assertFalse(self.has_turnout("nft"))
        r = self.turnout("--cleanup")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(nat(self.ns, "legacy"), before)

    def test_auto_without_rules_uses_the_system_iptables(self):
        version = sh("iptables", "--version").stdout
        expected = "nft" if "nf_tables" in version else "legacy"
        r = self.turnout()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(program(expected, False, "restore"), r.stdout)
        self.assertTrue(self.has_turnout(expected))
        self.assertEqual(self.turnout("--cleanup").returncode, 0)
        self.assertFalse(self.has_turnout(expected))

    def lo6(self):
        """lo's ::6/128 lines (`ip -6 -o addr show dev lo`)."""
        out = self.ns.ip("-6", "-o", "addr", "show", "dev", "lo").stdout
        return [l for l in out.splitlines() if " ::6/128 " in l]

    def test_ipv6_puts_6_on_lo_once_and_cleanup_removes_only_its_own(self):
        dry = self.turnout("--ipv6", "--dry-run")
        self.assertEqual(dry.returncode, 0, dry.stderr)
        self.assertIn("\nip -6 addr add ::6/128 dev lo nodad\n", dry.stdout)
        self.assertEqual(self.lo6(), [], "--dry-run added it")
        for _ in range(2):  # a re-run adds nothing
            r = self.turnout("--ipv6")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(len(self.lo6()), 1, self.lo6())
            self.assertIn(" nodad", self.lo6()[0])
        # The inbound passthrough can bind it.
        self.ns.run(sys.executable, "-c", "import socket; s = socket.socket(socket.AF_INET6); "
                    "s.bind(('::6', 0))")
        dry = self.turnout("--cleanup", "--dry-run")
        self.assertIn("ip -6 addr del ::6/128 dev lo", dry.stdout)
        self.assertEqual(len(self.lo6()), 1)
        r = self.turnout("--cleanup")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("::6/128 removed from lo", r.stdout)
        self.assertEqual(self.lo6(), [])
        # A run without --ipv6 takes back what an --ipv6 run added.
        self.assertEqual(self.turnout("--ipv6").returncode, 0)
        self.assertEqual(self.turnout().returncode, 0)
        self.assertEqual(self.lo6(), [])
        # Someone else's ::6 stays.
        self.ns.ip("-6", "addr", "add", "::6/128", "dev", "lo")
        r = self.turnout("--ipv6")
        self.assertIn("::6/128 already on lo", r.stdout)
        self.assertEqual(self.turnout("--cleanup").returncode, 0)
        self.assertEqual(len(self.lo6()), 1)
        self.assertNotIn(" nodad", self.lo6()[0])

    def test_bad_options_exit_2_and_name_the_option(self):
        for args, option in ((["--proxy-port", "70000"], "--proxy-port"),
                             (["--include-outbound-cidrs", "10.0.0.0/40"],
                              "--include-outbound-cidrs"),
                             (["--inbound-ports", "x"], "--inbound-ports"),
                             (["--iptables-backend", "bpf"], "--iptables-backend"),
                             (["--no-such-flag"], "--no-such-flag")):
            r = self.turnout(*args)
            self.assertEqual(r.returncode, 2, args)
            self.assertTrue(r.stderr.startswith("turnout iptables: " + option + ": "), r.stderr)
            self.assertEqual(r.stdout, "")
        self.assertFalse(self.has_turnout("nft") or self.has_turnout("legacy"))
        r = self.turnout("--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("USAGE: turnout iptables", r.stdout)


def main():
    def set_binary(b):
        global TURNOUT
        TURNOUT = b
    return run_suite("iptables_test", set_binary)


if __name__ == "__main__":
    sys.exit(main())
