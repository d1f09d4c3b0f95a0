"""Starts a real `turnout-cp serve` on loopback (REST API and ADS on port 0)
and tears it down; for the tests and benchmarks that drive turnout-cp.

Every wait is a bounded poll; the addresses come from --http-address-path and
--xds-address-path.
"""

import http.client
import json
import os
import signal
import subprocess
import time

START_DEADLINE_S = 10.0


def _read(path):
    with open(path) as f:
        return f.read().strip()


class TurnoutCp:
    def __init__(self, binary, workdir, store_args=None, extra_args=(), command_prefix=(),
                 http_address="127.0.0.1:0", xds_address="127.0.0.1:0"):
        """store_args: the store flags (default: --data-dir <workdir>/data);
        command_prefix: what runs it (["ip", "netns", "exec", NS] for a network
        namespace, where the REST helpers below cannot reach it)."""
        self.command_prefix = list(command_prefix)
        self.http_address = http_address
        self.xds_address = xds_address
        self.binary = binary
        self.workdir = workdir
        self.store_args = (list(store_args) if store_args is not None
                           else ["--data-dir", os.path.join(workdir, "data")])
        self.extra_args = list(extra_args)
        self.log_path = os.path.join(workdir, "cp.log")
        self.proc = None
        self.api = None       # "127.0.0.1:PORT" of the REST API
        self.host = None
        self.port = None
        self.url = None       # "http://" + api
        self.xds_port = None

    def start(self):
        http_path = os.path.join(self.workdir, "http.addr")
        xds_path = os.path.join(self.workdir, "xds.addr")
        for p in (http_path, xds_path):
            if os.path.exists(p):
                os.unlink(p)
        if getattr(self, "_log", None) is not None:
            self._log.close()  # a previous run that was killed, not stopped
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.command_prefix + [self.binary, "serve"] + self.store_args +
            ["--http-address", self.http_address, "--http-address-path", http_path,
             "--xds-address", self.xds_address, "--xds-address-path", xds_path] + self.extra_args,
            stdout=self._log, stderr=subprocess.STDOUT)
        end = time.monotonic() + START_DEADLINE_S
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("turnout-cp exited with %s:\n%s"
                                   % (self.proc.returncode, self.output()))
            if os.path.exists(http_path) and os.path.exists(xds_path):
                api, xds = _read(http_path), _read(xds_path)
                if api and xds:
                    self.api, self.url = api, "http://" + api
                    host, port = api.rsplit(":", 1)
                    self.host, self.port = host, int(port)
                    self.xds_port = int(xds.rsplit(":", 1)[1])
                    return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("turnout-cp did not start:\n" + self.output())

    def output(self):
        if os.path.exists(self.log_path):
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        return ""

    def stop(self):
        """Stops it (SIGTERM, then SIGKILL after 5 s); its exit status."""
        rc = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            rc = self.proc.returncode
            self._log.close()
            self._log = None
            self.proc = None
        return rc

    def request(self, method, path, body=None, headers=None, conn=None):
        """One REST API call: (status, headers (lowercase names), the JSON body
        parsed, or the raw text). `body` may be a dict (sent as JSON) or text."""
        own = conn is None
        conn = conn or http.client.HTTPConnection(self.host, self.port, timeout=10)
        hdrs = dict(headers or {})
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
            hdrs.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        raw = resp.read().decode()
        out_headers = {k.lower(): v for k, v in resp.getheaders()}
        if own:
            conn.close()
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = raw
        return resp.status, out_headers, parsed

    def get(self, path):
        return self.request("GET", path)

    def put(self, path, body, **kw):
        return self.request("PUT", path, body, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def version(self):
        status, _, body = self.get("/v1/version")
        assert status == 200, body
        return body["version"]

    def snapshot(self):
        """Everything the API shows, to compare before and after a bad call."""
        return [self.get(p)[2] for p in ("/v1/services", "/v1/sandboxes", "/v1/releases")]

    def kill(self):
        """SIGKILL: no clean shutdown."""
        self.proc.kill()
        self.proc.wait()
        self.proc = None
        self._log.close()
        self._log = None

    def sidecar_bootstrap(self, node, outbound_port, admin_port):
        """`turnout-cp bootstrap` for a sidecar of this control plane (YAML)."""
        r = subprocess.run([self.binary, "bootstrap", "--node", node, "--xds-host", "127.0.0.1",
                            "--xds-port", str(self.xds_port), "--admin-port", str(admin_port),
                            "--outbound-port", str(outbound_port)],
                           capture_output=True, text=True, timeout=10)
        if r.returncode != 0:
            raise RuntimeError("turnout-cp bootstrap failed: " + r.stderr)
        return r.stdout
