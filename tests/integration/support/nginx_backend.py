"""Real nginx backends for the integration tests, started on loopback.

One nginx process serves several named servers, each on its own port. nginx
cannot bind port 0 and report it, so ports are picked free by the kernel,
released, and handed to nginx; a collision (another process took the port in
between) makes nginx fail to start, and start() retries with new ports.

Every server answers:
  /healthz          200 "ok"             (or 503 if the server is `unhealthy`)
  /flaky/...        503                  (if the server is `flaky`), else as /
  /slow/...         proxied to a socket that never answers (timeout tests)
  anything else     200 "<name> <uri> key=<x-turnout-routing-key>"
with `x-served-by: <name>`. The access log (one line per request: server
name, uri, the x-turnout-routing-key and baggage headers) is read back with
requests().
"""

import os
import shutil
import socket
import subprocess
import tempfile
import time

START_DEADLINE_S = 10.0


def wait_listening(proc, ports, deadline_s=START_DEADLINE_S):
    """True once every port accepts a connection; False if `proc` exits or
    the deadline passes first."""
    end = time.monotonic() + deadline_s
    pending = set(ports)
    while pending and time.monotonic() < end:
        if proc.poll() is not None:
            return False
        for port in list(pending):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                pending.discard(port)
            except OSError:
                pass
        time.sleep(0.02)
    return not pending


def stop_process(proc):
    """Terminates `proc` (killed after 5 s) if it is still running."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _free_ports(n):
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Blackhole:
    """A listening socket that accepts nothing: connects succeed (the kernel
    completes the handshake into the backlog) and no byte ever comes back."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]

    def close(self):
        self.sock.close()


class NginxBackends:
    def __init__(self, names, unhealthy=(), flaky=()):
        self.names = list(names)
        self.unhealthy = set(unhealthy)
        self.flaky = set(flaky)
        self.ports = {}
        self.proc = None
        self.tmpdir = None
        self.blackhole = None

    def _config(self):
        servers = []
        for name in self.names:
            health = "return 503 \"down\\n\";" if name in self.unhealthy else "return 200 \"ok\\n\";"
            flaky = ("location /flaky/ { return 503 \"%s flaky\\n\"; }" % name
                     if name in self.flaky else "")
            servers.append("""
  server {
    listen 127.0.0.1:%(port)d;
    set $server_label %(name)s;
    add_header x-served-by %(name)s always;
    location = /healthz { %(health)s }
    %(flaky)s
    location /slow/ { proxy_pass http://127.0.0.1:%(blackhole)d; proxy_read_timeout 30s; }
    location / { return 200 "%(name)s $uri key=$http_x_turnout_routing_key\\n"; }
  }""" % {"port": self.ports[name], "name": name, "health": health, "flaky": flaky,
          "blackhole": self.blackhole.port})
        d = self.tmpdir
        return """
daemon off;
master_process off;
worker_processes 1;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log warn;
events { worker_connections 1024; }
http {
  client_body_temp_path %(d)s/body;
  proxy_temp_path %(d)s/proxy;
  fastcgi_temp_path %(d)s/fastcgi;
  uwsgi_temp_path %(d)s/uwsgi;
  scgi_temp_path %(d)s/scgi;
  default_type text/plain;
  keepalive_requests 100000;
  log_format it '$server_label|$request_method|$uri|$http_x_turnout_routing_key|$http_baggage';
  access_log %(d)s/access.log it;
%(servers)s
}
""" % {"d": d, "servers": "".join(servers)}

    def start(self):
        self.tmpdir = tempfile.mkdtemp(prefix="turnout-nginx-")
        self.blackhole = Blackhole()
        last_error = ""
        for _ in range(5):
            self.ports = dict(zip(self.names, _free_ports(len(self.names))))
            conf = os.path.join(self.tmpdir, "nginx.conf")
            with open(conf, "w") as f:
                f.write(self._config())
            log = open(os.path.join(self.tmpdir, "stderr.log"), "wb")
            self.proc = subprocess.Popen(["nginx", "-p", self.tmpdir, "-c", conf],
                                         stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
            log.close()
            if self._wait_listening():
                return self
            last_error = self._stderr()
            self._kill()
        self.stop()
        raise RuntimeError("nginx did not start:\n" + last_error)

    def _wait_listening(self):
        return wait_listening(self.proc, self.ports.values())

    def _stderr(self):
        try:
            with open(os.path.join(self.tmpdir, "stderr.log")) as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def _kill(self):
        stop_process(self.proc)
        self.proc = None

    def stop(self):
        self._kill()
        if self.blackhole is not None:
            self.blackhole.close()
            self.blackhole = None
        if self.tmpdir is not None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None

    def port(self, name):
        return self.ports[name]

    def requests(self):
        """The access log so far: a list of dicts (server, method, uri, key, baggage).
        nginx writes each line when the response is done, before the next read."""
        try:
            with open(os.path.join(self.tmpdir, "access.log")) as f:
                lines = f.read().splitlines()
        except OSError:
            return []
        out = []
        for line in lines:
            server, method, uri, key, baggage = (line.split("|") + [""] * 5)[:5]
            out.append({"server": server, "method": method, "uri": uri,
                        "key": "" if key == "-" else key,
                        "baggage": "" if baggage == "-" else baggage})
        return out

    def wait_requests(self, keep, count, deadline_s=5.0):
        """The logged requests for which keep(r) holds, once there are at least
        `count` of them (or whatever there is after deadline_s). nginx writes a
        line after it has sent the response, so a client can see the answer
        before the line is in the file."""
        end = time.monotonic() + deadline_s
        while True:
            seen = [r for r in self.requests() if keep(r)]
            if len(seen) >= count or time.monotonic() >= end:
                return seen
            time.sleep(0.02)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
