#!/usr/bin/env python3
"""The peer comparison suite: one workload, every proxy, one run.

Runs the same scenarios against a direct origin, turnout, haproxy,
nginx-as-proxy, nghttpx (and Envoy if `envoy` is on the PATH). Each proxy runs
alone on --cpus-proxy with the same worker count; the load generator
(turnout-bench) and the nginx origin share --cpus-load, so the proxy, not the
load side, is the bottleneck. On 2 CPUs: proxy on CPU 1, the rest on CPU 0.

For every scenario, the direct origin is measured first with the same load-side
pinning: its rate is what the load side can do. Then for every proxy:
  - saturation: closed-loop requests/s, and requests/s per proxy core; the row
    is marked load-bound when the direct rate is under 1.3x the proxy's
    (--load-bound-ratio), i.e. the load side may have set the pace;
  - CPU µs per request, from the proxy's /proc CPU time during that run, and
    the proxy's busy share of its CPUs;
  - syscalls per request: strace -c -f attached to the proxy's processes for
    one closed-loop run at 8 connections, divided by the responses
    turnout-bench completed in that run (by name too);
  - RSS idle (after start-up and one request) and the peak under load;
  - added latency p50/p99/p99.9 in open-loop mode at 50 % of haproxy's
    saturation rate in the same run (coordinated omission corrected),
    minus the direct origin's latency at the same rate.

It writes bench/results/<date>-<machine>.{json,md,svg}. Every figure is
meant to be read as a ratio against the peers from the same run; see
bench/README.md for the method and the 16-core run (--workers 1,2,4,8).

Usage: bench/compare/run.py [--turnout PATH] [--bench PATH] [--quick] ...
"""

import argparse
import datetime
import json
import math
import os
import platform
import resource
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

# Protocols each proxy serves on its downstream side in this suite (a
# proxy without one gets a "not supported" row instead of a silent gap).
# Every proxy speaks HTTP/1.1 to the origin, but in the h2-upstream
# scenarios (H2_UPSTREAM_SCENARIOS).
PROTOCOLS = {
    "direct": {"h1", "h2c", "tls-h2"},
    "turnout": {"h1", "h2c", "tls-h2"},
    "haproxy": {"h1", "h2c", "tls-h2"},
    "nginx": {"h1", "h2c", "tls-h2"},
    "nghttpx": {"h1", "h2c", "tls-h2"},
    "envoy": {"h1", "h2c", "tls-h2"},
}
# Proxies that can speak HTTP/2 to the origin (the h2-upstream scenarios,
# a sidecar carrying gRPC: h2c in, h2c out). nginx's proxy_pass speaks
# HTTP/1.x only (grpc_pass is for gRPC), so it gets a "not supported" row.
H2_UPSTREAM = {"direct", "turnout", "haproxy", "nghttpx", "envoy"}
# Proxies that can route on a request header (the sandbox scenarios).
HEADER_ROUTING = {"turnout", "haproxy", "nginx", "envoy"}
SANDBOX_CLUSTERS = 8  # sandbox routes spread over this many upstream clusters
# A proxy busy under this share of its CPUs during the saturation run was not
# the bottleneck (or shared its CPUs with something else): flagged in the table.
BUSY_SATURATED = 0.8

# name -> (protocol, path, extra request headers, sandboxes, connection close)
SCENARIOS = {
    "h1-keepalive-0b": ("h1", "/0", [], 0, False),
    "h1-keepalive-1k": ("h1", "/1k", [], 0, False),
    "h1-new-connection": ("h1", "/0", ["connection: close"], 0, True),
    "h2c-100-streams": ("h2c", "/0", [], 0, False),
    "tls-h2": ("tls-h2", "/0", [], 0, False),
    "h2c-1-stream": ("h2c", "/0", [], 0, False),
    "tls-h2-1-stream": ("tls-h2", "/0", [], 0, False),
    "h2c-h2-upstream-1-stream": ("h2c", "/0", [], 0, False),
    "h2c-h2-upstream-100-streams": ("h2c", "/0", [], 0, False),
    "sandbox-1": ("h1", "/0", [], 1, False),
    "sandbox-100": ("h1", "/0", [], 100, False),
    "sandbox-10000": ("h1", "/0", [], 10000, False),
}

# h2 scenarios with their own shape: (connections, streams per connection),
# where the others use --h2-connections x --streams. One stream per
# connection is the HTTP/1-like load (a client per request in flight).
H2_SHAPE = {"h2c-1-stream": (64, 1), "tls-h2-1-stream": (64, 1),
            "h2c-h2-upstream-1-stream": (64, 1)}
# Scenarios whose proxies reach the origin over HTTP/2 (its h2c port).
H2_UPSTREAM_SCENARIOS = {"h2c-h2-upstream-1-stream", "h2c-h2-upstream-100-streams"}


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def cpu_list(spec):
    """'0-3,8' -> [0, 1, 2, 3, 8]"""
    out = []
    for part in spec.split(","):
        if "-" in part:
            a, b = part.split("-")
            out.extend(range(int(a), int(b) + 1))
        elif part:
            out.append(int(part))
    return out


def cpu_spec(cpus):
    return ",".join(str(c) for c in cpus)


# --------------------------------------------------------------------------
# /proc accounting: a process and its children (nginx/nghttpx workers).
# --------------------------------------------------------------------------

def family(pid):
    pids = [pid]
    try:
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % entry) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    pids.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    except OSError:
        pass
    return pids


def cpu_times(pid):
    """(user, system) CPU seconds of a process and its children."""
    user = system = 0
    for p in family(pid):
        try:
            with open("/proc/%d/stat" % p) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            user += int(fields[11])  # utime
            system += int(fields[12])  # stime
        except (OSError, IndexError, ValueError):
            pass
    tick = os.sysconf("SC_CLK_TCK")
    return user / tick, system / tick


def cpu_seconds(pid):
    return sum(cpu_times(pid))


def cpu_ticks(cpus):
    """(busy, total) jiffies of these CPUs from /proc/stat, every process and
    interrupt included; the difference of two readings gives their busy share."""
    busy = total = 0
    want = {"cpu%d" % c for c in cpus}
    try:
        with open("/proc/stat") as f:
            for line in f:
                fields = line.split()
                if fields and fields[0] in want:
                    v = [int(x) for x in fields[1:9]]  # user nice system idle iowait irq softirq steal
                    busy += v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
                    total += sum(v)
    except (OSError, ValueError):
        pass
    return busy, total


def busy_share(before, after):
    d_total = after[1] - before[1]
    return (after[0] - before[0]) / d_total if d_total > 0 else None


def rss_kib(pid):
    total = 0
    for p in family(pid):
        try:
            with open("/proc/%d/status" % p) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except (OSError, ValueError):
            pass
    return total


class RssSampler(threading.Thread):
    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self._done = pid, 0, threading.Event()

    def run(self):
        while not self._done.wait(0.1):
            self.peak = max(self.peak, rss_kib(self.pid))

    def stop(self):
        self._done.set()
        self.join(2)
        return self.peak


class CpuQuota:
    """A CPU cgroup that limits the processes in it to `share` of each of
    `cpus` CPUs (CFS bandwidth control; cgroup v2 `cpu.max` or v1
    `cpu.cfs_quota_us`). With --proxy-cpu-quota the proxy runs in one: it is
    then the bottleneck even where the load CPUs cannot outrun a whole proxy
    CPU (a 2-core machine), and CPU time per request is measured with work
    always queued for it, as at saturation."""

    PERIOD_US = 10000  # short periods keep the throttled pauses short

    def __init__(self, name, share, cpus):
        quota = max(1000, int(share * self.PERIOD_US * cpus))
        v2 = "/sys/fs/cgroup"
        try:
            with open(os.path.join(v2, "cgroup.subtree_control")) as f:
                has_v2_cpu = "cpu" in f.read().split()
        except OSError:
            has_v2_cpu = False
        if has_v2_cpu:
            self.path = os.path.join(v2, name)
            files = {"cpu.max": "%d %d" % (quota, self.PERIOD_US)}
        else:
            v1 = next((d for d in ("/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct")
                       if os.path.exists(os.path.join(d, "cpu.cfs_quota_us"))), None)
            if v1 is None:
                raise RuntimeError("--proxy-cpu-quota: no CPU cgroup controller (cgroup v2 "
                                   "with +cpu in the root's subtree_control, or v1 cpu)")
            self.path = os.path.join(v1, name)
            files = {"cpu.cfs_period_us": str(self.PERIOD_US), "cpu.cfs_quota_us": str(quota)}
        try:
            os.makedirs(self.path, exist_ok=True)
            for f, v in files.items():
                with open(os.path.join(self.path, f), "w") as out:
                    out.write(v)
        except OSError as e:
            raise RuntimeError("--proxy-cpu-quota: cannot set up %s: %s (needs root)"
                               % (self.path, e))
        self.procs_file = os.path.join(self.path, "cgroup.procs")

    def throttled(self):
        """(periods, throttled periods) so far, from cpu.stat."""
        stat = {}
        try:
            with open(os.path.join(self.path, "cpu.stat")) as f:
                for line in f:
                    k, v = line.split()
                    stat[k] = int(v)
        except (OSError, ValueError):
            pass
        return stat.get("nr_periods", 0), stat.get("nr_throttled", 0)

    def remove(self):
        for _ in range(50):  # the killed processes leave it a moment later
            try:
                os.rmdir(self.path)
                return
            except OSError:
                time.sleep(0.1)


# --------------------------------------------------------------------------
# Processes.
# --------------------------------------------------------------------------

class Proc:
    def __init__(self, name, args, cpus, workdir, cgroup=None):
        self.name = name
        self.log_path = os.path.join(workdir, name + ".log")
        self.cgroup = cgroup
        with open(self.log_path, "wb") as logf:
            pin = ["taskset", "-c", cpu_spec(cpus)] if cpus else []
            # Into the CPU cgroup before the exec, so that every process the
            # proxy forks (nginx and nghttpx workers) is in it too.
            enter = (["sh", "-c", 'echo $$ > "$0" && exec "$@"', cgroup.procs_file]
                     if cgroup else [])
            self.p = subprocess.Popen(enter + pin + args,
                                      stdout=logf, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True)

    @property
    def pid(self):
        return self.p.pid

    def alive(self):
        return self.p.poll() is None

    def stop(self):
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, signal.SIGTERM)
                self.p.wait(timeout=10)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                try:
                    os.killpg(self.p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.p.wait(timeout=10)
        if self.cgroup:
            self.cgroup.remove()
            self.cgroup = None

    def tail(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-2000:]
        except OSError:
            return ""


def wait_http(port, proto="h1", deadline_s=15.0):
    scheme = "https" if proto == "tls-h2" else "http"
    flags = {"h1": [], "h2c": ["--http2-prior-knowledge"], "tls-h2": ["--http2"]}[proto]
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        r = subprocess.run(["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", "-m", "2"] + flags
                           + ["%s://127.0.0.1:%d/0" % (scheme, port)],
                           capture_output=True, check=False)
        if r.stdout.strip() == b"200":
            return True
        time.sleep(0.1)
    return False


# --------------------------------------------------------------------------
# Configurations. The origin is nginx serving /0 and /1k over HTTP/1.1;
# every proxy talks HTTP/1.1 to it with keep-alive.
# --------------------------------------------------------------------------

def sandbox_keys(n):
    return ["feat-%d" % i for i in range(n)]


def origin_conf(work, port, h2c_port, tls_port, workers=1):
    # One worker runs without a master (nothing else to stop); more need one.
    return """worker_processes {n}; daemon off; master_process {m};
pid {w}/origin.pid; error_log {w}/origin.err;
events {{ worker_connections 8192; }}
http {{ access_log off; keepalive_requests 1000000; http2_max_requests 1000000;
  server {{ listen 127.0.0.1:{p} reuseport; root {w}/www; location / {{ }} }}
  server {{ listen 127.0.0.1:{h} http2; root {w}/www; location / {{ }} }}
  server {{ listen 127.0.0.1:{t} ssl http2; ssl_certificate {w}/cert.pem;
           ssl_certificate_key {w}/key.pem; root {w}/www; location / {{ }} }} }}
""".format(w=work, p=port, h=h2c_port, t=tls_port, n=workers, m="on" if workers > 1 else "off")


def nginx_conf(work, port, proto, origin, workers, sandboxes):
    listen = {"h1": "", "h2c": " http2", "tls-h2": " ssl http2"}[proto]
    upstreams = "".join("  upstream sb%d { server 127.0.0.1:%d; keepalive 64; }\n" % (i, origin)
                        for i in range(SANDBOX_CLUSTERS if sandboxes else 0))
    mapping, target = "", "origin"
    if sandboxes:
        entries = "".join("    %s sb%d;\n" % (k, i % SANDBOX_CLUSTERS)
                          for i, k in enumerate(sandbox_keys(sandboxes)))
        mapping = ("  map_hash_max_size 65536; map_hash_bucket_size 128;\n"
                   "  map $http_x_turnout_routing_key $sandbox {\n    default origin;\n%s  }\n"
                   % entries)
        target = "$sandbox"
    return """worker_processes {n}; daemon off; pid {w}/nginx.pid; error_log {w}/nginx.err;
events {{ worker_connections 8192; }}
http {{ access_log off; keepalive_requests 1000000; http2_max_requests 1000000;
  upstream origin {{ server 127.0.0.1:{o}; keepalive 64; }}
{ups}{map}  server {{ listen 127.0.0.1:{p}{l}; ssl_certificate {w}/cert.pem;
    ssl_certificate_key {w}/key.pem;
    location / {{ proxy_pass http://{t}; proxy_http_version 1.1;
                 proxy_set_header Connection ""; }} }} }}
""".format(n=workers, w=work, o=origin, ups=upstreams, map=mapping, p=port, l=listen, t=target)


def haproxy_conf(work, port, proto, origin, workers, sandboxes, h2_upstream=False):
    bind = {"h1": "", "h2c": " proto h2",
            "tls-h2": " ssl crt %s/combined.pem alpn h2,http/1.1" % work}[proto]
    # haproxy needs two descriptors per connection and refuses to start
    # when maxconn does not fit the hard RLIMIT_NOFILE.
    fds = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    maxconn = 20000 if fds == resource.RLIM_INFINITY else max(256, min(20000, (fds - 200) // 2))
    lines = ["global", "  nbthread %d" % workers, "  maxconn %d" % maxconn,
             "defaults", "  mode http", "  timeout connect 5s", "  timeout client 30s",
             "  timeout server 30s", "  option http-keep-alive",
             "frontend fe", "  bind 127.0.0.1:%d%s" % (port, bind)]
    if sandboxes:
        with open(os.path.join(work, "sandboxes.map"), "w") as f:
            for i, k in enumerate(sandbox_keys(sandboxes)):
                f.write("%s sb%d\n" % (k, i % SANDBOX_CLUSTERS))
        lines.append("  use_backend %%[req.hdr(x-turnout-routing-key),map(%s/sandboxes.map,origin)]"
                     % work)
    lines.append("  default_backend origin")
    for be in ["origin"] + ["sb%d" % i for i in range(SANDBOX_CLUSTERS if sandboxes else 0)]:
        lines += ["backend %s" % be, "  http-reuse always",
                  "  server o 127.0.0.1:%d%s" % (origin, " proto h2" if h2_upstream else "")]
    return "\n".join(lines) + "\n"


def envoy_style_bootstrap(port, admin, origin, sandboxes, turnout_filter, tls_dir=None,
                          h2_upstream=False):
    """Envoy v3 YAML, accepted unchanged by turnout and by Envoy. tls_dir: serve
    TLS (ALPN h2, http/1.1) with its cert.pem and key.pem; else AUTO (h1, h2c).
    h2_upstream: the clusters speak HTTP/2 (h2c) to the origin."""
    routes = []
    for i, k in enumerate(sandbox_keys(sandboxes)):
        routes.append('{ match: { prefix: "/", headers: [{ name: x-turnout-routing-key, '
                      'string_match: { exact: "%s" } }] }, route: { cluster: sb%d } }'
                      % (k, i % SANDBOX_CLUSTERS))
    routes.append('{ match: { prefix: "/" }, route: { cluster: origin } }')
    filters = ""
    if turnout_filter:
        filters = ("          - name: rk\n            typed_config: { \"@type\": type.googleapis.com/"
                   "turnout.extensions.filters.http.routing_key.v3.RoutingKey }\n")
    tls = ""
    if tls_dir:
        tls = ("transport_socket:\n"
               "        name: envoy.transport_sockets.tls\n"
               "        typed_config:\n"
               "          \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."
               "DownstreamTlsContext\n"
               "          common_tls_context:\n"
               "            alpn_protocols: [h2, http/1.1]\n"
               "            tls_certificates:\n"
               "            - certificate_chain: {{ filename: {d}/cert.pem }}\n"
               "              private_key: {{ filename: {d}/key.pem }}\n"
               "      ").format(d=tls_dir)
    clusters = ""
    for name in ["origin"] + ["sb%d" % i for i in range(SANDBOX_CLUSTERS if sandboxes else 0)]:
        clusters += """  - name: {n}
    circuit_breakers: {{ thresholds: [{{ max_connections: 100000, max_pending_requests: 100000, max_requests: 100000 }}] }}
{h2}    load_assignment:
      cluster_name: {n}
      endpoints: [{{ lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {o} }} }} }} }}] }}]
""".format(n=name, o=origin, h2=(
            "    typed_extension_protocol_options:\n"
            "      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n"
            "        \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3."
            "HttpProtocolOptions\n"
            "        explicit_http_config: { http2_protocol_options: {} }\n")
            if h2_upstream else "")
    return """admin: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {a} }} }} }}
static_resources:
  listeners:
  - name: bench
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {p} }} }}
    filter_chains:
    - {tls}filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: bench
          generate_request_id: false
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
{routes}
          http_filters:
{filters}          - name: envoy.filters.http.router
            typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }}
  clusters:
{clusters}""".format(a=admin, p=port, routes="".join("              - %s\n" % r for r in routes),
                     filters=filters, clusters=clusters, tls=tls)


class Target:
    """One proxy (or the direct origin) started for one scenario."""

    def __init__(self, name, proto, port, proc=None, note=""):
        self.name, self.proto, self.port, self.proc, self.note = name, proto, port, proc, note

    def url(self, path):
        scheme = "https" if self.proto == "tls-h2" else "http"
        return "%s://127.0.0.1:%d%s" % (scheme, self.port, path)


def start_target(name, proto, sandboxes, ctx, cpus, workers):
    work = ctx["work"]
    if name == "direct":
        port = {"h1": ctx["origin"], "h2c": ctx["origin_h2c"], "tls-h2": ctx["origin_tls"]}[proto]
        return Target(name, proto, port)
    port = free_port()
    h2_up = bool(ctx.get("h2_upstream"))
    origin = ctx["origin_h2c"] if h2_up else ctx["origin"]
    if name == "turnout":
        conf = os.path.join(work, "turnout.yaml")
        with open(conf, "w") as f:
            f.write(envoy_style_bootstrap(port, free_port(), origin, sandboxes, True,
                                          work if proto == "tls-h2" else None, h2_up))
        args = [ctx["turnout"], "-c", conf, "--concurrency", str(workers), "-l", "error"]
    elif name == "envoy":
        conf = os.path.join(work, "envoy.yaml")
        with open(conf, "w") as f:
            f.write(envoy_style_bootstrap(port, free_port(), origin, sandboxes, False,
                                          h2_upstream=h2_up))
        args = ["envoy", "-c", conf, "--concurrency", str(workers), "-l", "error",
                "--base-id", str(port)]
    elif name == "haproxy":
        conf = os.path.join(work, "haproxy.cfg")
        with open(conf, "w") as f:
            f.write(haproxy_conf(work, port, proto, origin, workers, sandboxes, h2_up))
        args = ["haproxy", "-f", conf, "-q"]
    elif name == "nginx":
        conf = os.path.join(work, "nginx.conf")
        with open(conf, "w") as f:
            f.write(nginx_conf(work, port, proto, ctx["origin"], workers, sandboxes))
        args = ["nginx", "-c", conf]
    elif name == "nghttpx":
        frontend = "127.0.0.1,%d%s" % (port, "" if proto == "tls-h2" else ";no-tls")
        args = ["nghttpx", "--frontend=" + frontend,
                "--backend=127.0.0.1,%d%s" % (origin, ";;proto=h2" if h2_up else ""),
                "-n", str(workers), "--no-via", "--no-server-rewrite", "--no-ocsp",
                "--backend-connections-per-host=1024", "--frontend-http2-max-concurrent-streams=1000",
                "--errorlog-file=" + os.path.join(work, "nghttpx.err"), "--conf=/dev/null"]
        if proto == "tls-h2":
            args += [os.path.join(work, "key.pem"), os.path.join(work, "cert.pem")]
    else:
        raise ValueError(name)
    quota = (CpuQuota("turnout-compare-%s-%d" % (name, port), ctx["cpu_quota"], len(cpus))
             if ctx.get("cpu_quota") else None)
    proc = Proc(name, args, cpus, work, quota)
    if not wait_http(port, proto):
        proc.stop()
        raise RuntimeError("%s did not answer on port %d:\n%s" % (name, port, proc.tail()))
    return Target(name, proto, port, proc)


# --------------------------------------------------------------------------
# Load generation (turnout-bench, JSON report).
# --------------------------------------------------------------------------

def run_load(ctx, target, path, headers, key_mix, label, rate=None, duration=None, warmup=0,
             connections=None, requests=None):
    """Runs turnout-bench against target and returns its JSON report, kept as
    <label>.json (compare mode names each series after its file)."""
    report = os.path.join(ctx["work"], label + ".json")
    os.makedirs(os.path.dirname(report), exist_ok=True)
    h2 = target.proto in ("h2c", "tls-h2")
    h2_conns, streams = ctx.get("h2_shape") or (ctx["h2_connections"], ctx["streams"])
    conns = connections or (h2_conns if h2 else ctx["connections"])
    args = ["taskset", "-c", cpu_spec(ctx["load_cpus"]), ctx["bench"],
            "-t", str(min(ctx["threads"], conns)), "-c", str(conns),
            "-d", str(duration or ctx["duration"]), "--warmup", str(warmup),
            "--json", report, "--label", os.path.basename(label)]
    if h2:  # h2c for http://, h2 by ALPN for https:// (no certificate check)
        args += ["--h2", "-m", str(streams)]
    if rate:
        args += ["-R", str(int(rate))]
    if requests:  # with -d too, whichever limit comes first ends the window
        args += ["-n", str(int(requests))]
    for h in headers:
        args += ["-H", h]
    if key_mix:
        args += ["--key-header", "x-turnout-routing-key", "--key-mix", key_mix]
    args.append(target.url(path))
    budget = (duration or ctx["duration"]) + warmup + 60
    r = subprocess.run(args, capture_output=True, timeout=budget, check=False)
    if r.returncode != 0 or not os.path.exists(report):
        raise RuntimeError("turnout-bench failed (%d): %s" % (r.returncode, r.stderr.decode()[-1500:]))
    with open(report) as f:
        data = json.load(f)
    data["_path"] = report
    return data


def latency_us(report, q):
    return report["latency"]["us"]["p" + q]


def key_mix_for(sandboxes):
    """90 % baseline, 10 % spread over up to 10 sandbox keys (first, last, middle)."""
    if not sandboxes:
        return None
    keys = sorted({0, sandboxes - 1, sandboxes // 2} | set(range(0, sandboxes, max(1, sandboxes // 7))))
    keys = keys[:10]
    return ",".join(["baseline=%d" % (9 * len(keys))] + ["feat-%d=1" % k for k in keys])


# --------------------------------------------------------------------------
# The run.
# --------------------------------------------------------------------------

def measure_saturation(ctx, row, target, scenario, workers):
    """Warm-up run, then the closed-loop run with the proxy's CPU and RSS."""
    proto, path, headers, sandboxes, _ = SCENARIOS[scenario]
    mix = key_mix_for(sandboxes)
    where = "%s-w%d/%s" % (scenario, workers, target.name)
    sampler = None
    if target.proc:
        row["rss_idle_kib"] = rss_kib(target.proc.pid)
        sampler = RssSampler(target.proc.pid)
        sampler.start()
    try:
        # The warm-up is its own run, so the CPU window below is the measured one.
        run_load(ctx, target, path, headers, mix, "warmup/" + where, duration=ctx["warmup"])
        cpu0 = cpu_times(target.proc.pid) if target.proc else (0, 0)
        proxy_cpus = ctx["proxy_cpus"][:workers]
        ticks0 = cpu_ticks(proxy_cpus), cpu_ticks(ctx["load_cpus"])
        periods0 = target.proc.cgroup.throttled() if target.proc and target.proc.cgroup else None
        t0 = time.monotonic()
        sat = run_load(ctx, target, path, headers, mix, "saturation/" + where)
        wall = time.monotonic() - t0
        ticks1 = cpu_ticks(proxy_cpus), cpu_ticks(ctx["load_cpus"])
        # Whole-CPU busy shares (every process, interrupts included): the
        # load CPUs near 100 % and the proxy's own share far below its CPUs'
        # say who set the pace, and whether something else ran on the proxy's.
        row["load_cpus_busy"] = busy_share(ticks0[1], ticks1[1])
        if target.proc:
            row["proxy_cpus_busy"] = busy_share(ticks0[0], ticks1[0])
        if target.proc and target.proc.cgroup:
            periods = target.proc.cgroup.throttled()
            row["cpu_quota"] = ctx["cpu_quota"]
            row["throttled_share"] = ((periods[1] - periods0[1]) / (periods[0] - periods0[0])
                                      if periods[0] > periods0[0] else None)
        if target.proc:
            cpu1 = cpu_times(target.proc.pid)
            cpu = sum(cpu1) - sum(cpu0)
            row["cpu_us_per_request"] = cpu * 1e6 / max(1, sat["requests"])
            # The kernel's share (system time, the loopback TCP stack's softirq
            # work included) apart from the proxy's own code.
            row["cpu_user_us_per_request"] = (cpu1[0] - cpu0[0]) * 1e6 / max(1, sat["requests"])
            # Busy share of the proxy's CPUs over the run (turnout-bench's
            # start and its connects included): near 100 % when saturated
            # (near the quota under --proxy-cpu-quota).
            row["proxy_cpu_busy"] = cpu / (wall * workers)
    finally:
        if sampler:
            row["rss_load_kib"] = sampler.stop()
    row["saturation"] = summarise(sat)
    if "_path" in sat:
        row["_saturation_report"] = sat["_path"]
    row["rps_per_core"] = sat["rps"] / workers
    log("  %-8s saturation %10.0f req/s  p99 %8s us  cpu %s us/req  busy %s" % (
        target.name, sat["rps"], "%.0f" % latency_us(sat, "99"), cpu_cell(row),
        "%.0f %%" % (100 * row["proxy_cpu_busy"]) if "proxy_cpu_busy" in row else "-"))


# --------------------------------------------------------------------------
# Syscalls per request: strace -c -f attached to the proxy for one load run.
# --------------------------------------------------------------------------

def parse_strace_summary(text):
    """strace -c's table -> {syscall: {"calls": n, "errors": n}}. The columns
    are % time, seconds, usecs/call, calls, [errors,] syscall; errors is blank
    when there were none."""
    out, in_table = {}, False
    for line in text.splitlines():
        if line.startswith("------"):
            in_table = True
            continue
        tokens = line.split()
        if not in_table or len(tokens) < 5 or tokens[-1] == "total" or tokens[0] == "%":
            continue
        try:
            nums = [float(t) for t in tokens[:-1]]
        except ValueError:
            continue
        calls = int(nums[3])
        errors = int(nums[4]) if len(nums) >= 5 else 0
        out[tokens[-1]] = {"calls": calls, "errors": errors}
    return out


def wait_attached(proc, count, deadline_s=10.0):
    """Reads strace's stderr until it has said "attached" count times (one line
    per -p, whatever its thread count), or raises."""
    end, seen, buf = time.monotonic() + deadline_s, 0, b""
    fd = proc.stderr.fileno()
    while seen < count:
        left = end - time.monotonic()
        if left <= 0 or proc.poll() is not None:
            raise RuntimeError("strace did not attach: %s" % buf.decode(errors="replace")[-500:])
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                continue
            buf += chunk
            seen = buf.count(b"attached")
    # Keep draining stderr so that strace never blocks on a full pipe.
    threading.Thread(target=lambda: proc.stderr.read(), daemon=True).start()


def measure_syscalls(ctx, row, target, scenario, workers):
    """Attaches strace -c -f to every process of the proxy, runs one closed-loop
    window of --strace-connections connections (--strace-requests responses, or
    --strace-duration seconds if that comes first), detaches, and divides each
    syscall's count by the responses turnout-bench completed in that window.
    Syscalls outside the window (the connects before it, the requests still in
    flight when it closes) are a few per connection: `edge` in the result bounds
    their share (connections / requests)."""
    proto, path, headers, sandboxes, _ = SCENARIOS[scenario]
    pids = family(target.proc.pid)
    summary = os.path.join(ctx["work"], "strace-%s-%s.txt" % (scenario, target.name))
    args = ["strace", "-c", "-f", "-o", summary]
    for p in pids:
        args += ["-p", str(p)]
    st = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE)
    try:
        wait_attached(st, len(pids))
        conns = ctx["strace_connections"]
        rep = run_load(ctx, target, path, headers, key_mix_for(sandboxes),
                       "strace/%s-w%d/%s" % (scenario, workers, target.name),
                       duration=ctx["strace_duration"], connections=conns,
                       requests=ctx["strace_requests"])
    finally:
        if st.poll() is None:
            st.send_signal(signal.SIGINT)  # detaches and writes the summary
        try:
            st.wait(timeout=30)
        except subprocess.TimeoutExpired:
            st.kill()
            st.wait()
    with open(summary) as f:
        counts = parse_strace_summary(f.read())
    if not counts:
        raise RuntimeError("strace wrote no summary for %s" % target.name)
    n = max(1, rep["requests"])
    total = sum(c["calls"] for c in counts.values())
    row["syscalls"] = {
        "requests": rep["requests"], "rps_traced": rep["rps"], "connections": conns,
        "duration_s": rep["duration_s"], "calls": total, "per_request": total / n,
        "edge": conns / n,
        "by_name": {k: {"calls": c["calls"], "errors": c["errors"], "per_request": c["calls"] / n,
                        "errors_per_request": c["errors"] / n}
                    for k, c in sorted(counts.items(), key=lambda kv: -kv[1]["calls"])}}
    log("  %-8s strace: %d syscalls / %d requests = %.2f per request (%s)" % (
        target.name, total, rep["requests"], total / n, syscall_breakdown(row["syscalls"], 5)))


def syscall_breakdown(sc, limit=None, floor=0.01):
    """'recvmsg 2.90 (1.00 EAGAIN...), sendmsg 2.00, ...' for one row."""
    parts = []
    for name, c in sc["by_name"].items():
        if c["per_request"] < floor:
            continue
        err = " (%.2f err)" % c["errors_per_request"] if c["errors_per_request"] >= floor else ""
        parts.append("%s %.2f%s" % (name, c["per_request"], err))
    return ", ".join(parts[:limit] if limit else parts)


def measure_proxy(ctx, row, target, scenario, workers):
    """Saturation, then (for a proxy, when strace is on) syscalls per request
    on the same process. A failed strace step leaves the saturation figures."""
    measure_saturation(ctx, row, target, scenario, workers)
    if target.proc and ctx["strace"]:
        try:
            measure_syscalls(ctx, row, target, scenario, workers)
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
            row["syscalls_failed"] = str(e).splitlines()[0] if str(e) else repr(e)
            log("  %s: strace: %s" % (target.name, row["syscalls_failed"]))


def cpu_cell(row):
    """'32.3 (12.1 user)': CPU µs per request, and the share spent in the proxy's
    own code rather than in the kernel."""
    if "cpu_us_per_request" not in row:
        return "-"
    user = row.get("cpu_user_us_per_request")
    cell = "%.1f" % row["cpu_us_per_request"] + (" (%.1f user)" % user if user is not None else "")
    spread = [r["cpu_us_per_request"] for r in row.get("rounds", [])
              if r.get("cpu_us_per_request") is not None]
    if len(spread) > 1:
        cell += " [%.1f-%.1f]" % (min(spread), max(spread))
    return cell


def floor2(x):
    """Two decimals rounded down, so that 1.2987 never reads as 1.30."""
    return "%.2f" % (math.floor(x * 100) / 100)


def mark_load_bound(rows, ratio):
    """The direct row's saturation rate is what the load CPUs (turnout-bench
    and the origin) can do on their own. A proxy row is load-bound when that is
    under ratio x the proxy's rate: the load side, not the proxy, may then have
    set the pace, and the row's req/s and CPU/req are not the proxy's at
    saturation."""
    direct = next((r for r in rows if r["proxy"] == "direct" and "saturation" in r), None)
    for row in rows:
        if row["proxy"] == "direct" or "saturation" not in row:
            continue
        if direct is None:
            row["load_bound"] = None  # unknown: the direct run failed
            continue
        headroom = direct["saturation"]["rps"] / max(1e-9, row["saturation"]["rps"])
        row["direct_ratio"] = headroom
        row["load_bound"] = headroom < ratio
        if row["load_bound"]:
            log("  %-8s LOAD-BOUND: the direct origin did %sx its rate (want >= %.2fx)"
                % (row["proxy"], floor2(headroom), ratio))


def measure_open_loop(ctx, row, target, scenario, workers, rate):
    proto, path, headers, sandboxes, _ = SCENARIOS[scenario]
    rep = run_load(ctx, target, path, headers, key_mix_for(sandboxes),
                   "open-loop/%s-w%d/%s" % (scenario, workers, target.name),
                   rate=rate, warmup=ctx["warmup"])
    row["open_loop"] = summarise(rep)
    row["open_loop"]["rate"] = rate
    row["_report"] = rep["_path"]
    log("  %-8s open loop @%.0f/s  p50 %.0f  p99 %.0f  p99.9 %.0f us" % (
        target.name, rate, latency_us(rep, "50"), latency_us(rep, "99"), latency_us(rep, "99.9")))


def with_target(ctx, row, scenario, workers, measure):
    """Starts row's proxy alone on the proxy CPUs, runs measure(target), stops it.
    A failure is recorded in the row (never silently dropped)."""
    proto, _, _, sandboxes, _ = SCENARIOS[scenario]
    target = None
    try:
        target = start_target(row["proxy"], proto, sandboxes, ctx, ctx["proxy_cpus"][:workers],
                              workers)
        measure(target)
        return True
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        row.setdefault("failed", []).append(str(e).splitlines()[0] if str(e) else repr(e))
        log("  %s: %s" % (row["proxy"], row["failed"][-1]))
        return False
    finally:
        if target and target.proc:
            target.proc.stop()


# What one saturation run gives a row (measure_saturation).
ROUND_FIELDS = ("saturation", "rps_per_core", "cpu_us_per_request", "cpu_user_us_per_request",
                "proxy_cpu_busy", "proxy_cpus_busy", "load_cpus_busy", "throttled_share",
                "cpu_quota", "_saturation_report", "rss_idle_kib", "rss_load_kib")


def take_median_round(row, rounds):
    """The row's figures become those of its median round: by CPU per request
    for a proxy, by req/s for the direct origin (the lower median of an even
    count). Every round's req/s and CPU per request stay in row["rounds"]."""
    if any("cpu_us_per_request" in r for r in rounds):
        ordered = sorted(rounds, key=lambda r: r.get("cpu_us_per_request", math.inf))
    else:
        ordered = sorted(rounds, key=lambda r: -r["saturation"]["rps"])
    mid = ordered[(len(ordered) - 1) // 2]
    for f in ROUND_FIELDS:
        if f in mid:
            row[f] = mid[f]
    row["rounds"] = [{"rps": r["saturation"]["rps"],
                      "cpu_us_per_request": r.get("cpu_us_per_request")} for r in rounds]


def per_round_ratios(rows):
    """turnout's CPU per request over each peer's, round by round (round i of
    every proxy ran in the same pass), and the median of those ratios in
    row["vs_per_round"][peer]. On a machine whose speed drifts between
    minutes, the ratio of two medians can pair one proxy's fast round with
    another's slow one; a pass's ratio compares the two in the same minutes."""
    turnout = next((r for r in rows if r["proxy"] == "turnout" and r.get("rounds")), None)
    if turnout is None:
        return
    mine = [x.get("cpu_us_per_request") for x in turnout["rounds"]]
    for row in rows:
        if row is turnout or row["proxy"] == "direct" or not row.get("rounds"):
            continue
        theirs = [x.get("cpu_us_per_request") for x in row["rounds"]]
        ratios = sorted(a / b for a, b in zip(mine, theirs) if a and b)
        if len(ratios) > 1:
            turnout.setdefault("vs_per_round", {})[row["proxy"]] = {
                "median": ratios[(len(ratios) - 1) // 2], "ratios": ratios}


def measure_scenario(ctx, scenario, proxies, workers):
    """One row per target: saturation for each (one process at a time), then
    open-loop latency at half of haproxy's saturation rate."""
    proto, _, _, sandboxes, _ = SCENARIOS[scenario]
    ctx["h2_shape"] = H2_SHAPE.get(scenario)
    ctx["h2_upstream"] = scenario in H2_UPSTREAM_SCENARIOS
    rows = []
    for name in ["direct"] + proxies:
        row = {"proxy": name, "scenario": scenario, "workers": workers}
        rows.append(row)
        if proto not in PROTOCOLS[name]:
            row["skipped"] = "%s does not serve %s yet" % (name, proto)
        elif ctx["h2_upstream"] and name not in H2_UPSTREAM:
            row["skipped"] = "%s does not proxy to an HTTP/2 origin" % name
        elif sandboxes and name not in HEADER_ROUTING and name != "direct":
            row["skipped"] = "%s cannot route on a header" % name
    # --rounds: every target once per round, in turn, so that a shared
    # machine's slow minutes fall on all of them; strace in the first only.
    samples = {}
    for rnd in range(ctx.get("rounds", 1)):
        if rnd > 0:
            log("%s, round %d of %d:" % (scenario, rnd + 1, ctx["rounds"]))
        for row in rows:
            if "skipped" in row or (rnd > 0 and id(row) not in samples):
                continue
            if rnd == 0:
                with_target(ctx, row, scenario, workers,
                            lambda t, row=row: measure_proxy(ctx, row, t, scenario, workers))
                if "saturation" in row:
                    samples[id(row)] = [{f: row[f] for f in ROUND_FIELDS if f in row}]
                continue
            extra = {"proxy": row["proxy"]}
            with_target(ctx, extra, scenario, workers,
                        lambda t, extra=extra: measure_saturation(ctx, extra, t, scenario, workers))
            if "saturation" in extra:
                samples[id(row)].append({f: extra[f] for f in ROUND_FIELDS if f in extra})
            else:
                row.setdefault("failed_rounds", []).extend(extra.get("failed", ["?"]))
    if ctx.get("rounds", 1) > 1:
        for row in rows:
            if id(row) in samples:
                take_median_round(row, samples[id(row)])
        # Only rounds every proxy completed line up pass by pass.
        if all(len(samples.get(id(r), [])) == ctx["rounds"] for r in rows if id(r) in samples):
            per_round_ratios(rows)
    mark_load_bound(rows, ctx["load_bound_ratio"])
    measured = [r for r in rows if "saturation" in r]
    ref = next((r for r in measured if r["proxy"] == "haproxy"), None) or next(
        (r for r in measured if r["proxy"] != "direct"), None)
    if ref is None:
        return rows
    rate = 0.5 * ref["saturation"]["rps"]
    for row in measured:
        with_target(ctx, row, scenario, workers,
                    lambda t, row=row: measure_open_loop(ctx, row, t, scenario, workers, rate))
    direct = next((r["open_loop"] for r in rows if r["proxy"] == "direct" and "open_loop" in r), None)
    for row in rows:
        if direct and "open_loop" in row and row["proxy"] != "direct":
            row["added_latency_us"] = {q: row["open_loop"]["latency_us"][q] - direct["latency_us"][q]
                                       for q in ("p50", "p99", "p99.9")}
    return rows


def summarise(report):
    out = {"rps": report["rps"], "requests": report["requests"],
           "errors": report["errors"]["total"], "status": report["status"],
           "late": report.get("late", 0)}
    lat = report["latency"]["us"]
    out["latency_us"] = {k: lat[k] for k in ("p50", "p99", "p99.9", "max")}
    return out


def pct(x):
    return "%.0f %%" % (100 * x)


def busy_of_allowance(row):
    """The proxy's busy share of the CPU it was allowed: its CPUs, or its
    quota of them under --proxy-cpu-quota."""
    return row.get("proxy_cpu_busy", 1) / row.get("cpu_quota", 1)


def busy_cell(row):
    """'97 %', or '19 % of CPU 98 % (not saturated)': the proxy's own share,
    then its CPUs' share when that says more (something else ran there).
    Under a quota: '39 % = 98 % of its 40 % quota (throttled in 95 % of the
    periods)'."""
    if "proxy_cpu_busy" not in row:
        return "-"
    own, cpus = row["proxy_cpu_busy"], row.get("proxy_cpus_busy")
    cell = pct(own)
    if "cpu_quota" in row:
        cell += " = %s of its %s quota" % (pct(busy_of_allowance(row)), pct(row["cpu_quota"]))
        if row.get("throttled_share") is not None:
            cell += " (throttled in %s of periods)" % pct(row["throttled_share"])
    if busy_of_allowance(row) < BUSY_SATURATED:
        if cpus is not None:
            cell += " of CPU %s" % pct(cpus)
        cell += " (not saturated)"
    return cell


def markdown(result):
    ratio_min = result.get("load_bound_ratio", 1.3)
    out = ["# Peer comparison, %s, %s" % (result["date"], result["machine"]), "",
           "Proxy CPUs %s (alone); load generator CPUs %s, origin CPUs %s; %d s per run after %d s "
           "warm-up; %d HTTP/1.1 connections; h2: %d connections x %d streams (the *-1-stream "
           "scenarios: 64 connections x 1 stream)." % (
               result["proxy_cpus"], result["load_cpus"], result["origin_cpus"], result["duration"],
               result["warmup"], result["connections"], result["h2_connections"], result["streams"]),
           "",
           "Ratios are against haproxy in the same run. **Load side**: the direct origin's "
           "saturation rate on the load CPUs over the proxy's; under %.1fx the row is "
           "**load-bound**: the load generator and origin may have set the pace, so its req/s "
           "is a lower bound and its CPU/req is not measured at saturation. **Busy**: the "
           "proxy's CPU time over the run's wall time and its cores (about 100 %% when "
           "saturated; when not, how busy its CPUs were with everything); `load CPUs`: how "
           "busy the load side's CPUs were. Added latency is measured open-loop at 50 %% of haproxy's saturation "
           "rate, minus the direct origin at the same rate." % ratio_min]
    if result.get("rounds", 1) > 1:
        out += ["", "**Rounds**: %d saturation runs per proxy, taken in turn (every proxy once, "
                "then again), so that a shared machine's slow minutes fall on all of them. Each "
                "row shows its median round by CPU µs/req (the direct origin's by req/s); the "
                "CPU column adds the range [min-max] over the rounds." % result["rounds"]]
    if result.get("proxy_cpu_quota"):
        out += ["", "**CPU quota**: every proxy ran in a CPU cgroup limited to %s of each of its "
                "CPUs (CFS bandwidth control, %d ms periods), so that it, not the load side, is "
                "the bottleneck on a machine whose load CPUs cannot outrun a whole proxy CPU. "
                "Its CPU µs/req is measured with work always queued for it, as at saturation; "
                "its req/s is the quota's, not the CPU's; its latency includes the throttled "
                "pauses, so read latency from a run without a quota." % (
                    pct(result["proxy_cpu_quota"]), CpuQuota.PERIOD_US // 1000)]
    if result.get("strace"):
        out.append("Syscalls/req: `strace -c -f` attached to every process of the proxy for one "
                   "closed-loop run at %d connections that ends after %d responses or %d s, "
                   "divided by the responses turnout-bench completed in that run (strace slows "
                   "the proxy; the counts per request, not the rate, are the figure)."
                   % (result["strace_connections"], result["strace_requests"],
                      result["strace_duration"]))
    else:
        out.append("Syscalls/req: not measured (%s)." % result.get("strace_off", "--no-strace"))
    bound = [r for r in result["rows"] if r.get("load_bound")]
    if bound:
        out += ["", "**%d row(s) load-bound** (%s): their req/s and CPU µs/req are not "
                "saturation figures; rerun with more load CPUs (`--cpus-load`)." % (
                    len(bound), ", ".join("%s/%s" % (r["scenario"], r["proxy"]) for r in bound))]
    idle = [r for r in result["rows"] if busy_of_allowance(r) < BUSY_SATURATED]
    if idle:
        out += ["", "**%d row(s) not saturated** (%s): the proxy was busy under %.0f %% of its "
                "CPUs, so something else set the pace: other processes on the proxy's CPUs "
                "when those were busy anyway, else the load side; their CPU µs/req is not "
                "measured at saturation." % (
                    len(idle), ", ".join("%s/%s" % (r["scenario"], r["proxy"]) for r in idle),
                    100 * BUSY_SATURATED)]
    out.append("")
    head = ("| scenario | workers | proxy | load side | req/s per core | vs haproxy | busy | "
            "CPU µs/req (user) | vs haproxy | syscalls/req | vs haproxy | added p50 µs | added p99 µs | "
            "added p99.9 µs | RSS idle MiB | RSS load MiB |")
    cols = head.count("|") - 1
    out += [head, "|" + "---|" * cols]
    for row in result["rows"]:
        hap = next((r for r in result["rows"] if r["proxy"] == "haproxy"
                    and r["scenario"] == row["scenario"] and r["workers"] == row["workers"]), {})
        if "saturation" not in row:
            why = row.get("skipped") or "failed: " + "; ".join(row.get("failed", ["?"]))
            out.append("| %s | %d | %s | %s |%s" % (row["scenario"], row["workers"], row["proxy"],
                                                     why.replace("|", "/"), " |" * (cols - 4)))
            continue

        def ratio(a, b):
            return "%.2f" % (a / b) if a and b else "-"

        load = (", load CPUs %s" % pct(row["load_cpus_busy"])
                if row.get("load_cpus_busy") is not None else "")
        if row["proxy"] == "direct":
            side = "capacity" + load
        elif row.get("load_bound") is None:
            side = "unknown (no direct run)"
        else:
            side = "%s (%sx%s)" % ("**load-bound**" if row["load_bound"] else "ok",
                                   floor2(row["direct_ratio"]), load)
        sc, hsc = row.get("syscalls"), hap.get("syscalls")
        sys_cell = "%.2f" % sc["per_request"] if sc else (
            "strace failed" if row.get("syscalls_failed") else "-")
        added = row.get("added_latency_us", {})
        out.append("| %s | %d | %s | %s | %.0f | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            row["scenario"], row["workers"], row["proxy"], side, row.get("rps_per_core", 0),
            ratio(row.get("rps_per_core"), hap.get("rps_per_core")),
            busy_cell(row),
            cpu_cell(row),
            ratio(row.get("cpu_us_per_request"), hap.get("cpu_us_per_request")),
            sys_cell, ratio(sc and sc["per_request"], hsc and hsc["per_request"]),
            *["%.0f" % added[q] if q in added else "-" for q in ("p50", "p99", "p99.9")],
            "%.1f" % (row["rss_idle_kib"] / 1024) if "rss_idle_kib" in row else "-",
            "%.1f" % (row["rss_load_kib"] / 1024) if "rss_load_kib" in row else "-"))
    paired = [r for r in result["rows"] if r.get("vs_per_round")]
    if paired:
        out += ["", "## turnout against each peer, pass by pass", "",
                "turnout's CPU µs/req over the peer's in each pass of the rounds (both "
                "measured within the same minutes), the median of those, and every pass's "
                "ratio: steadier than the ratio of the two median rounds above when the "
                "machine's speed drifts.", "",
                "| scenario | workers | peer | median ratio | per pass |", "|---|---|---|---|---|"]
        for r in paired:
            for peer, v in r["vs_per_round"].items():
                out.append("| %s | %d | %s | %.2f | %s |" % (
                    r["scenario"], r["workers"], peer, v["median"],
                    " ".join("%.2f" % x for x in v["ratios"])))
    traced = [r for r in result["rows"] if r.get("syscalls")]
    if traced:
        out += ["", "## Syscalls per request by name", "",
                "Per response in the traced run; `err` counts the calls that failed (EAGAIN "
                "for a read that found nothing). Names under 0.01 per request are left out "
                "(the JSON has them all).", "",
                "| scenario | workers | proxy | traced req/s | syscalls/req | by name |",
                "|---|---|---|---|---|---|"]
        for r in traced:
            sc = r["syscalls"]
            out.append("| %s | %d | %s | %.0f | %.2f | %s |" % (
                r["scenario"], r["workers"], r["proxy"], sc["rps_traced"], sc["per_request"],
                syscall_breakdown(sc)))
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--turnout", default=os.path.join(ROOT, "build/proxy/turnout"))
    ap.add_argument("--bench", default=os.path.join(ROOT, "build/bench/turnout_bench/turnout-bench"))
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--proxies", default="turnout,haproxy,nginx,nghttpx,envoy")
    ap.add_argument("--workers", default="1", help="comma list, e.g. 1,2,4,8 on a 16-core machine")
    n = os.cpu_count() or 2
    # The proxy must be the bottleneck: it gets the upper half of the CPUs to
    # itself; turnout-bench and the origin share the lower half (on 2 CPUs:
    # proxy on CPU 1, load and origin on CPU 0).
    half = max(1, n // 2)
    ap.add_argument("--cpus-proxy", "--proxy-cpus", dest="cpus_proxy",
                    default="%d-%d" % (half, n - 1) if n > 1 else "0",
                    help="CPUs the proxy runs on, alone (default: the upper half)")
    ap.add_argument("--cpus-load", "--load-cpus", dest="cpus_load",
                    default="0-%d" % (half - 1) if n > 1 else "0",
                    help="CPUs of turnout-bench (default: the lower half)")
    ap.add_argument("--cpus-origin", "--origin-cpus", dest="cpus_origin", default=None,
                    help="CPUs of the nginx origin, one worker each (default: --cpus-load)")
    ap.add_argument("--load-bound-ratio", type=float, default=1.3,
                    help="a proxy row is load-bound when the direct origin's rate is under "
                         "this times the proxy's (default 1.3)")
    ap.add_argument("--no-strace", dest="strace", action="store_false",
                    help="skip the syscalls-per-request step (default: on when strace is installed)")
    ap.add_argument("--strace-requests", type=int, default=20000,
                    help="responses traced per proxy (the window ends at this count ...)")
    ap.add_argument("--strace-duration", type=int, default=10,
                    help="... or after this many seconds, whichever comes first")
    ap.add_argument("--strace-connections", type=int, default=8)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--threads", type=int, default=0, help="load threads (default: load CPUs)")
    ap.add_argument("--streams", type=int, default=100, help="h2 streams per connection")
    ap.add_argument("--h2-connections", type=int, default=4, help="h2 connections")
    ap.add_argument("--quick", action="store_true", help="3 s runs, 1 s warm-up (smoke)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="saturation runs per proxy, taken in turn (direct, turnout, haproxy, "
                    "direct, ...); each row shows its median round, the CPU column the range")
    ap.add_argument("--proxy-cpu-quota", type=float, default=0,
                    help="run each proxy in a CPU cgroup limited to this share (0-1] of each "
                    "of its CPUs, so that the proxy is the bottleneck where the load CPUs cannot "
                    "outrun a whole proxy CPU (root; e.g. 0.4 on a 2-core machine)")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench/results"))
    args = ap.parse_args()
    if not 0 <= args.proxy_cpu_quota <= 1:
        sys.exit("compare: --proxy-cpu-quota must be in (0, 1] (0: no quota)")

    for tool in ("taskset", "curl", "nginx"):
        if not shutil.which(tool):
            sys.exit("compare: %s is missing (scripts/setup.sh installs it)" % tool)
    proxies = [p for p in args.proxies.split(",") if p]
    for p in proxies:
        if p not in PROTOCOLS or p == "direct":
            sys.exit("compare: unknown proxy %r (choose from turnout,haproxy,nginx,nghttpx,envoy)" % p)
    for path, what in ((args.turnout, "turnout"), (args.bench, "turnout-bench")):
        if not os.access(path, os.X_OK):
            sys.exit("compare: no %s at %s (run scripts/build.sh)" % (what, path))
    missing = [p for p in proxies if p != "turnout" and not shutil.which(p)]
    if missing:
        log("compare: not on PATH, skipped: %s" % ", ".join(missing))
        proxies = [p for p in proxies if p not in missing]
    scenarios = [s for s in args.scenarios.split(",") if s]
    for s in scenarios:
        if s not in SCENARIOS:
            sys.exit("compare: unknown scenario %r (choose from %s)" % (s, ", ".join(SCENARIOS)))
    workers_list = [int(w) for w in args.workers.split(",")]
    args.cpus_origin = args.cpus_origin or args.cpus_load
    proxy_cpus, load_cpus = cpu_list(args.cpus_proxy), cpu_list(args.cpus_load)
    origin_cpus = cpu_list(args.cpus_origin)
    if max(workers_list) > len(proxy_cpus):
        sys.exit("compare: --workers %d needs that many --cpus-proxy (have %s)"
                 % (max(workers_list), args.cpus_proxy))
    if set(proxy_cpus) & (set(load_cpus) | set(origin_cpus)):
        log("compare: WARNING: the proxy shares CPUs with the load side; no row measures the "
            "proxy at saturation")
    strace_off = None
    if not args.strace:
        strace_off = "--no-strace"
    elif not shutil.which("strace"):
        strace_off = "strace is not installed (scripts/setup.sh installs it)"
    elif subprocess.run(["strace", "-c", "-o", "/dev/null", "true"], capture_output=True,
                        check=False).returncode != 0:
        strace_off = "strace cannot trace here (ptrace not permitted?)"
    if strace_off and args.strace:
        log("compare: no syscalls per request: %s" % strace_off)
    args.strace = strace_off is None
    if args.quick:
        args.duration, args.warmup, args.strace_requests, args.strace_duration = 3, 1, 2000, 3

    work = tempfile.mkdtemp(prefix="turnout-compare-")
    os.makedirs(os.path.join(work, "www"))
    with open(os.path.join(work, "www", "0"), "w"):
        pass
    with open(os.path.join(work, "www", "1k"), "w") as f:
        f.write("x" * 1024)
    os.chmod(work, 0o755)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-keyout", os.path.join(work, "key.pem"),
                    "-out", os.path.join(work, "cert.pem")], capture_output=True, check=True)
    with open(os.path.join(work, "combined.pem"), "w") as out:
        for part in ("cert.pem", "key.pem"):
            with open(os.path.join(work, part)) as f:
                out.write(f.read())

    ctx = {"work": work, "turnout": os.path.abspath(args.turnout), "bench": os.path.abspath(args.bench),
           "duration": args.duration, "warmup": args.warmup, "connections": args.connections,
           "threads": args.threads or len(load_cpus), "streams": args.streams,
           "h2_connections": args.h2_connections,
           "proxy_cpus": proxy_cpus, "load_cpus": load_cpus,
           "load_bound_ratio": args.load_bound_ratio, "strace": args.strace,
           "strace_duration": args.strace_duration, "strace_connections": args.strace_connections,
           "strace_requests": args.strace_requests, "cpu_quota": args.proxy_cpu_quota,
           "rounds": max(1, args.rounds),
           "origin": free_port(), "origin_h2c": free_port(), "origin_tls": free_port()}
    with open(os.path.join(work, "origin.conf"), "w") as f:
        f.write(origin_conf(work, ctx["origin"], ctx["origin_h2c"], ctx["origin_tls"],
                            len(origin_cpus)))
    origin = Proc("origin", ["nginx", "-c", os.path.join(work, "origin.conf")], origin_cpus, work)
    rows = []
    try:
        if not wait_http(ctx["origin"]):
            sys.exit("compare: the nginx origin did not start:\n" + origin.tail())
        for workers in workers_list:
            for scenario in scenarios:
                log("%s, %d worker(s):" % (scenario, workers))
                rows += measure_scenario(ctx, scenario, proxies, workers)
    finally:
        origin.stop()

    date = datetime.date.today().isoformat()
    machine = "%dcpu-%s" % (os.cpu_count(), platform.machine())
    result = {"date": date, "machine": machine, "cpu_model": cpu_model(),
              "proxy_cpus": args.cpus_proxy, "load_cpus": args.cpus_load,
              "origin_cpus": args.cpus_origin, "load_bound_ratio": args.load_bound_ratio,
              "proxy_cpu_quota": args.proxy_cpu_quota, "rounds": max(1, args.rounds),
              "strace": args.strace, "strace_off": strace_off,
              "strace_duration": args.strace_duration, "strace_requests": args.strace_requests,
              "strace_connections": args.strace_connections,
              "duration": args.duration, "warmup": args.warmup, "connections": args.connections,
              "h2_connections": args.h2_connections, "streams": args.streams,
              "versions": versions(ctx), "rows": rows}
    os.makedirs(args.out, exist_ok=True)
    base = os.path.join(args.out, "%s-%s" % (date, machine))
    # Charts for the first scenario: open-loop latency by percentile (<base>.svg)
    # and saturation throughput (<base>-saturation.svg).
    first = (rows[0]["scenario"], rows[0]["workers"]) if rows else None
    charts = {"": [], "-saturation": []}
    for r in rows:
        for key, suffix in (("_report", ""), ("_saturation_report", "-saturation")):
            report = r.pop(key, None)
            if report and (r["scenario"], r["workers"]) == first:
                charts[suffix].append(report)
    with open(base + ".json", "w") as f:
        json.dump(result, f, indent=2)
    with open(base + ".md", "w") as f:
        f.write(markdown(result))
    for suffix, reports in charts.items():
        if not reports:
            continue
        title = "%s, %s: %s" % (first[0], machine,
                                "saturation (closed loop)" if suffix else
                                "open loop at half of haproxy's saturation rate")
        r = subprocess.run([ctx["bench"], "compare", "--svg", base + suffix + ".svg",
                            "--title", title] + reports, check=False, capture_output=True)
        if r.returncode != 0:
            log("compare: chart failed: %s" % r.stderr.decode()[-500:])
    shutil.rmtree(work, ignore_errors=True)
    print(markdown(result))
    log("wrote %s.{json,md,svg} and %s-saturation.svg" % (base, base))


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def versions(ctx):
    out = {}
    for name, cmd in (("haproxy", ["haproxy", "-v"]), ("nginx", ["nginx", "-v"]),
                      ("nghttpx", ["nghttpx", "--version"]), ("envoy", ["envoy", "--version"]),
                      ("turnout", [ctx["turnout"], "--version"])):
        if shutil.which(cmd[0]) or os.path.exists(cmd[0]):
            r = subprocess.run(cmd, capture_output=True, check=False)
            text = (r.stdout or r.stderr).decode(errors="replace").strip().splitlines()
            out[name] = text[0] if text else ""
    return out


if __name__ == "__main__":
    main()
