"""Network namespaces made by a test, on a private bridge, and torn down by it.

    topo = Topology("tsc%d" % os.getpid())
    topo.add("frontend", "10.88.0.10", hosts={"reviews": "10.96.0.11"})
    topo.run("frontend", ["curl", ...])          # a command inside it
    topo.popen("frontend", [...], user=1337)     # a process inside it, as a UID
    topo.close()                                 # processes, namespaces, files

The bridge lives in a namespace of its own, so nothing is added to the
namespace the test runs in. `hosts` becomes /etc/netns/<ns>/hosts, which
`ip netns exec` mounts over /etc/hosts inside it (name resolution as a pod
sees it). Every command has a timeout.
"""

import os
import shutil
import subprocess
import tempfile

CMD_TIMEOUT_S = 20


def namespaces_allowed():
    """None when network namespaces can be made here, else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root (this test runs as UID %d)" % os.geteuid()
    for tool in ("ip", "unshare", "setpriv"):
        if shutil.which(tool) is None:
            return "%s is not installed (scripts/setup.sh installs iproute2)" % tool
    r = subprocess.run(["unshare", "-n", "true"], capture_output=True, timeout=CMD_TIMEOUT_S)
    if r.returncode != 0:
        return "this machine forbids network namespaces: unshare -n: %s" % r.stderr.decode().strip()
    return None


def sh(args, check=True, **kw):
    r = subprocess.run(args, capture_output=True, timeout=kw.pop("timeout", CMD_TIMEOUT_S), **kw)
    if check and r.returncode != 0:
        raise RuntimeError("%s failed (%d): %s%s" % (" ".join(args), r.returncode,
                                                    r.stdout.decode(errors="replace"),
                                                    r.stderr.decode(errors="replace")))
    return r


class Topology:
    def __init__(self, prefix, subnet="10.88.0", extra_routes=("10.96.0.0/16",)):
        self.prefix = prefix
        self.subnet = subnet
        self.extra_routes = list(extra_routes)
        self.switch = prefix + "-sw"
        self.namespaces = []
        self.procs = []
        self.etc_dirs = []
        sh(["ip", "netns", "add", self.switch])
        self.namespaces.append(self.switch)
        sh(["ip", "-n", self.switch, "link", "add", "br0", "type", "bridge"])
        sh(["ip", "-n", self.switch, "link", "set", "br0", "up"])

    def ns(self, name):
        return "%s-%s" % (self.prefix, name)

    def add(self, name, address, hosts=None):
        ns = self.ns(name)
        sh(["ip", "netns", "add", ns])
        self.namespaces.append(ns)
        port = "p%d" % len(self.namespaces)
        sh(["ip", "-n", self.switch, "link", "add", port, "type", "veth", "peer", "name", "eth0",
            "netns", ns])
        sh(["ip", "-n", self.switch, "link", "set", port, "master", "br0", "up"])
        sh(["ip", "-n", ns, "addr", "add", address + "/24", "dev", "eth0"])
        sh(["ip", "-n", ns, "link", "set", "eth0", "up"])
        sh(["ip", "-n", ns, "link", "set", "lo", "up"])
        for route in self.extra_routes:
            sh(["ip", "-n", ns, "route", "add", route, "dev", "eth0"])
        if hosts:
            d = os.path.join("/etc/netns", ns)
            os.makedirs(d, exist_ok=True)
            self.etc_dirs.append(d)
            with open(os.path.join(d, "hosts"), "w") as f:
                f.write("127.0.0.1 localhost\n")
                for host, ip in hosts.items():
                    f.write("%s %s\n" % (ip, host))
        return ns

    def wrap(self, name, args, user=None):
        cmd = ["ip", "netns", "exec", self.ns(name)]
        if user is not None:
            cmd += ["setpriv", "--reuid", str(user), "--regid", str(user), "--clear-groups"]
        return cmd + list(args)

    def run(self, name, args, user=None, check=True, timeout=CMD_TIMEOUT_S):
        return sh(self.wrap(name, args, user), check=check, timeout=timeout)

    def popen(self, name, args, user=None, log=None):
        out = open(log, "ab") if log else subprocess.DEVNULL
        p = subprocess.Popen(self.wrap(name, args, user), stdout=out, stderr=subprocess.STDOUT)
        self.procs.append(p)
        return p

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)
        for ns in reversed(self.namespaces):
            sh(["ip", "netns", "del", ns], check=False)
        for d in self.etc_dirs:
            shutil.rmtree(d, ignore_errors=True)


class TopologyCase:
    """What the suites that run pods in a Topology share (a mixin before
    unittest.TestCase): `topo`, the turnout-cp in pod "cp" (`cp`, a
    TurnoutCp, and the `turnout_cp` binary) and the work directory `tmp`,
    all set by the suite's setUpClass."""

    topo = None
    cp = None
    tmp = None
    turnout_cp = None

    @classmethod
    def tearDownClass(cls):
        if cls.cp is not None:
            cls.cp.stop()
        if cls.topo is not None:
            cls.topo.close()
        if cls.tmp is None:
            return
        if os.environ.get("TURNOUT_KEEP_LOGS"):
            print("logs in", cls.tmp)
        else:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def _dump(cls):
        import sys
        for name in sorted(os.listdir(cls.tmp)):
            if name.endswith(".log"):
                with open(os.path.join(cls.tmp, name), errors="replace") as f:
                    sys.stderr.write("==== %s\n%s\n" % (name, f.read()[-4000:]))

    @classmethod
    def setUpTopology(cls, tmp_prefix, topo_prefix, turnout_cp):
        """setUpClass's common part: the work directory `tmp` (writable by
        the sidecars' UID 1337, which log there), `topo` (namespaces named
        `topo_prefix` + pid), then the suite's `_build()`. When that fails,
        the logs are printed and what was started is stopped."""
        cls.tmp = tempfile.mkdtemp(prefix=tmp_prefix)
        cls.turnout_cp = turnout_cp
        os.chmod(cls.tmp, 0o777)
        cls.topo = Topology("%s%d" % (topo_prefix, os.getpid() % 100000))
        cls.cp = None
        try:
            cls._build()
        except BaseException:
            cls._dump()
            if cls.cp is not None:
                cls.cp.stop()
            cls.topo.close()
            raise

    @classmethod
    def startSidecar(cls, pod, turnout, service, xds, admin_port, uid, extra_bootstrap=()):
        """A captured sidecar in `pod`: `turnout-cp bootstrap --mode capture`
        for `service` (namespace "default", ADS at `xds`, "HOST:PORT", plus
        `extra_bootstrap` flags), run as `uid`, logging into `tmp`."""
        host, port = xds.rsplit(":", 1)
        out = cls.cpctl("bootstrap", "--mode", "capture", *extra_bootstrap, "--node", pod,
                        "--service", service, "--namespace", "default", "--xds-host", host,
                        "--xds-port", port, "--admin-port", str(admin_port))
        boot = os.path.join(cls.tmp, pod + "-bootstrap.yaml")
        with open(boot, "w") as f:
            f.write(out)
        cls.topo.popen(pod, [turnout, "-c", boot, "--concurrency", "1", "-l", "info"],
                       user=uid, log=os.path.join(cls.tmp, pod + "-sidecar.log"))

    @classmethod
    def waitSidecarReady(cls, pod, admin_port, deadline_s):
        """Until the sidecar of `pod` answers /ready 200 (bounded)."""
        import time
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            r = cls.topo.run(pod, ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                   "http://127.0.0.1:%d/ready" % admin_port], check=False)
            if r.stdout == b"200":
                return
            time.sleep(0.1)
        raise AssertionError("the %s sidecar did not become ready" % pod)

    @classmethod
    def waitListening(cls, pod, port, deadline_s):
        """Until something in `pod` accepts TCP connections on 127.0.0.1:`port`
        (bounded): an app started with popen may not be listening yet when
        its sidecar is ready, and a call then fails with 503."""
        import time
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            r = cls.topo.run(pod, ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/%d" % port],
                             check=False)
            if r.returncode == 0:
                return
            time.sleep(0.05)
        raise AssertionError("nothing listens on %s:%d" % (pod, port))

    def clientJson(self, url, headers=()):
        """GET `url` with curl from the namespace "client"; the JSON body (a
        failure, with the logs dumped, when there is none)."""
        import json
        args = ["curl", "-g", "-s", "--max-time", "10", url]
        for h in headers:
            args += ["-H", h]
        r = self.topo.run("client", args, check=False, timeout=15)
        try:
            return json.loads(r.stdout)
        except ValueError:
            self._dump()
            self.fail("no JSON from %s: rc %d, %r" % (url, r.returncode, r.stdout[:500]))

    @classmethod
    def cpctl(cls, *args):
        """turnout-cp's CLI inside pod "cp", against its API (bootstrap needs none)."""
        server = [] if args[0] == "bootstrap" else ["--server", cls.cp.url]
        return cls.topo.run("cp", [cls.turnout_cp] + list(args) + server).stdout.decode()
