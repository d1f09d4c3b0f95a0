"""Starts the real turnout binary on a generated bootstrap and tears it down.

Everything binds 127.0.0.1 port 0; the admin address comes from
--admin-address-path and the listener ports from admin GET /listeners.
Every wait is a bounded poll with a deadline.
"""

import atexit
import http.client
import os
import shutil
import subprocess
import tempfile
import time
import unittest

START_DEADLINE_S = 10.0
POLL_INTERVAL_S = 0.02
HTTP_TIMEOUT_S = 5.0


_LIVE = set()  # started and not yet stopped; killed at interpreter exit


@atexit.register
def _kill_leftovers():
    for p in list(_LIVE):
        p.stop()


class TurnoutError(RuntimeError):
    pass


def _poll(deadline_s, predicate):
    """Returns predicate()'s first truthy value, or None once deadline_s passes."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(POLL_INTERVAL_S)
    return None


class TurnoutProcess:
    def __init__(self, binary, bootstrap_yaml, extra_args=(), wrapper=(), tmpdir_mode=None):
        """wrapper: a command prefix that execs its arguments (e.g. an unshare).
        tmpdir_mode: the mode of the temporary directory holding the bootstrap
        and the admin address file (0o777 when the wrapper drops privileges)."""
        self.binary = binary
        self.bootstrap_yaml = bootstrap_yaml
        self.extra_args = list(extra_args)
        self.wrapper = list(wrapper)
        self.tmpdir_mode = tmpdir_mode
        self.tmpdir = None
        self.proc = None
        self.admin_host = None
        self.admin_port = None
        self.listeners = {}

    # -- lifecycle ---------------------------------------------------------

    def start(self, wait_live=True):
        """wait_live=False: return once the admin address is known (the server
        may still be INITIALIZING)."""
        self.tmpdir = tempfile.mkdtemp(prefix="turnout-it-")
        if self.tmpdir_mode is not None:
            os.chmod(self.tmpdir, self.tmpdir_mode)
        config = os.path.join(self.tmpdir, "bootstrap.yaml")
        with open(config, "w") as f:
            f.write(self.bootstrap_yaml)
        self.address_path = os.path.join(self.tmpdir, "admin_address")
        self.log_path = os.path.join(self.tmpdir, "turnout.log")
        self._log = open(self.log_path, "wb")
        args = self.wrapper + [self.binary, "-c", config, "--concurrency", "2",
                "--admin-address-path", self.address_path, "-l", "warning"] + self.extra_args
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        _LIVE.add(self)
        try:
            self._wait_ready(wait_live)
        except Exception:
            self.stop()
            raise
        return self

    def _wait_ready(self, wait_live=True):
        def address():
            if self.proc.poll() is not None:
                raise TurnoutError("turnout exited with %s during start:\n%s"
                                   % (self.proc.returncode, self.log()))
            try:
                with open(self.address_path) as f:
                    text = f.read().strip()
            except OSError:
                return None
            return text if ":" in text else None

        text = _poll(START_DEADLINE_S, address)
        if not text:
            raise TurnoutError("no admin address in %s after %ss:\n%s"
                               % (self.address_path, START_DEADLINE_S, self.log()))
        host, _, port = text.rpartition(":")
        self.admin_host, self.admin_port = host.strip("[]"), int(port)
        if not wait_live:
            return

        def live():
            if self.proc.poll() is not None:
                raise TurnoutError("turnout exited with %s during start:\n%s"
                                   % (self.proc.returncode, self.log()))
            try:
                status, body, _ = self.admin("GET", "/ready")
            except OSError:
                return False
            return status == 200 and body.strip() == b"LIVE"

        if not _poll(START_DEADLINE_S, live):
            raise TurnoutError("/ready never said LIVE:\n%s" % self.log())
        self.listeners = self._read_listeners()
        if not self.listeners:
            raise TurnoutError("admin /listeners lists no listener:\n%s" % self.log())

    def _read_listeners(self):
        status, body, _ = self.admin("GET", "/listeners")
        if status != 200:
            raise TurnoutError("/listeners -> %d %r" % (status, body))
        result = {}
        for line in body.decode().splitlines():
            name, sep, addr = line.strip().partition("::")
            if not sep:
                continue
            host, _, port = addr.rpartition(":")
            result[name] = (host.strip("[]"), int(port))
        return result

    def stop(self):
        _LIVE.discard(self)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if getattr(self, "_log", None) is not None:
            self._log.close()
            self._log = None
        if self.tmpdir is not None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None

    def wait_exit(self, timeout_s):
        """Returns the exit code, or None if still running after timeout_s."""
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")[-4000:]
        except (OSError, AttributeError):
            return ""

    # -- helpers -----------------------------------------------------------

    def port(self, listener_name=None):
        if listener_name is None:
            return next(iter(self.listeners.values()))[1]
        return self.listeners[listener_name][1]

    def admin(self, method, path, body=None):
        conn = http.client.HTTPConnection(self.admin_host, self.admin_port, timeout=HTTP_TIMEOUT_S)
        try:
            conn.request(method, path, body=body)
            resp = conn.getresponse()
            return resp.status, resp.read(), resp
        finally:
            conn.close()

    def stats(self):
        """Admin /stats as a dict name -> value string."""
        status, body, _ = self.admin("GET", "/stats")
        if status != 200:
            raise TurnoutError("/stats -> %d" % status)
        out = {}
        for line in body.decode().splitlines():
            name, sep, value = line.partition(": ")
            if sep:
                out[name.strip()] = value.strip()
        return out

    def rss_kib(self):
        """The process's resident set (VmRSS), in KiB."""
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise TurnoutError("no VmRSS for pid %d" % self.proc.pid)

    def counter(self, name):
        value = self.stats().get(name)
        return None if value is None else int(value)

    def wait_stat(self, name, predicate, deadline_s=5.0):
        """Polls /stats until predicate(int value of `name`) holds and returns that value;
        raises AssertionError (naming the stat and the last value seen) at the deadline."""
        seen = [None]

        def ok():
            seen[0] = self.counter(name)
            return seen[0] is not None and predicate(seen[0])

        if not _poll(deadline_s, ok):
            raise AssertionError("stat %s: condition not met in %.1f s (last value %r)"
                                 % (name, deadline_s, seen[0]))
        return seen[0]

    def wait_counter(self, name, at_least, deadline_s=5.0):
        """Polls /stats until counter `name` >= at_least and returns its value; raises at the deadline."""
        return self.wait_stat(name, lambda v: v >= at_least, deadline_s)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


def run_suite(name, set_binary):
    """The main() of an integration suite run as `<suite>.py <turnout-binary> [unittest args]`.

    Checks the binary, hands its absolute path to `set_binary`, turns CTest's
    SIGTERM (a timeout) into SystemExit so that atexit still stops every
    turnout started, runs the suite's tests and prints its run time. Returns
    the exit code.
    """
    import signal
    import sys
    import unittest
    if len(sys.argv) < 2:
        print("usage: %s.py <turnout-binary> [unittest args]" % name, file=sys.stderr)
        return 2
    binary = os.path.abspath(sys.argv[1])
    if not os.access(binary, os.X_OK):
        print("not executable: %s" % binary, file=sys.stderr)
        return 2
    set_binary(binary)
    global BINARY
    BINARY = binary
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    start = time.monotonic()
    prog = unittest.main(module="__main__", argv=[sys.argv[0]] + sys.argv[2:], exit=False,
                         verbosity=2)
    print("%s: %.1fs" % (name, time.monotonic() - start), file=sys.stderr)
    return 0 if prog.result.wasSuccessful() else 1


# The binary run_suite() was given, for fixtures that start turnout.
BINARY = None


class ProxyWithBackend(unittest.TestCase):
    """One FakeBackend and one turnout in front of it, per test class.

    Subclasses give bootstrap_yaml(backend_port); make_backend() may be
    overridden. `port` is the ingress listener's.
    """

    proxy = None
    backend = None

    @classmethod
    def bootstrap_yaml(cls, backend_port):
        raise NotImplementedError

    @classmethod
    def make_backend(cls):
        from fake_backend import FakeBackend
        return FakeBackend("svc")

    @classmethod
    def setUpClass(cls):
        try:
            cls.backend = cls.make_backend().start()
            cls.proxy = TurnoutProcess(BINARY, cls.bootstrap_yaml(cls.backend.port)).start()
        except Exception:
            cls.tearDownClass()
            raise
        cls.port = cls.proxy.port("ingress")

    @classmethod
    def tearDownClass(cls):
        if cls.proxy is not None:
            cls.proxy.stop()
            cls.proxy = None
        if cls.backend is not None:
            cls.backend.stop()
            cls.backend = None
