#!/usr/bin/env python3
"""The peer comparison suite: one workload, every proxy, one run.

Runs the same scenarios against a direct origin, turnout, haproxy,
nginx-as-proxy, nghttpx (and Envoy if `envoy` is on the PATH). Each proxy is
pinned with taskset to the same proxy CPUs with the same worker count; the
load generator (turnout-bench) and the nginx origin run on other CPUs.

For every scenario and proxy it measures:
  - saturation: closed-loop requests/s, and requests/s per proxy core;
  - CPU µs per request, from the proxy's /proc CPU time during that run;
  - RSS idle (after start-up and one request) and the peak under load;
  - added latency p50/p99/p99.9 in open-loop mode at 50 % of haproxy's
    saturation rate in the same run (coordinated omission corrected),
    minus the direct origin's latency at the same rate.

It writes bench/results/<date>-<machine>.{json,md,svg}. Every figure is
meant to be read as a ratio against the peers from the same run; see
bench/README.md for the 16-core scaling run (--workers 1,2,4,8).

Usage: bench/compare/run.py [--turnout PATH] [--bench PATH] [--quick] ...
"""

import argparse
import datetime
import json
import os
import platform
import resource
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

# Protocols each proxy serves on its downstream side in this suite. turnout's
# HTTP/2 and TLS listeners come with their own issue; until then its h2c and
# TLS rows say "not supported" instead of being silently absent.
PROTOCOLS = {
    "direct": {"h1", "h2c", "tls-h2"},
    "turnout": {"h1"},
    "haproxy": {"h1", "h2c", "tls-h2"},
    "nginx": {"h1", "h2c", "tls-h2"},
    "nghttpx": {"h1", "h2c", "tls-h2"},
    "envoy": {"h1", "h2c", "tls-h2"},
}
# Proxies that can route on a request header (the sandbox scenarios).
HEADER_ROUTING = {"turnout", "haproxy", "nginx", "envoy"}
SANDBOX_CLUSTERS = 8  # sandbox routes spread over this many upstream clusters

# name -> (protocol, path, extra request headers, sandboxes, connection close)
SCENARIOS = {
    "h1-keepalive-0b": ("h1", "/0", [], 0, False),
    "h1-keepalive-1k": ("h1", "/1k", [], 0, False),
    "h1-new-connection": ("h1", "/0", ["connection: close"], 0, True),
    "h2c-100-streams": ("h2c", "/0", [], 0, False),
    "tls-h2": ("tls-h2", "/0", [], 0, False),
    "sandbox-1": ("h1", "/0", [], 1, False),
    "sandbox-100": ("h1", "/0", [], 100, False),
    "sandbox-10000": ("h1", "/0", [], 10000, False),
}


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


def cpu_seconds(pid):
    total = 0
    for p in family(pid):
        try:
            with open("/proc/%d/stat" % p) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
        except (OSError, IndexError, ValueError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


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


# --------------------------------------------------------------------------
# Processes.
# --------------------------------------------------------------------------

class Proc:
    def __init__(self, name, args, cpus, workdir):
        self.name = name
        self.log_path = os.path.join(workdir, name + ".log")
        with open(self.log_path, "wb") as logf:
            self.p = subprocess.Popen(["taskset", "-c", cpu_spec(cpus)] + args,
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


def origin_conf(work, port, h2c_port, tls_port):
    return """worker_processes 1; daemon off; master_process off;
pid {w}/origin.pid; error_log {w}/origin.err;
events {{ worker_connections 8192; }}
http {{ access_log off; keepalive_requests 1000000; http2_max_requests 1000000;
  server {{ listen 127.0.0.1:{p} reuseport; root {w}/www; location / {{ }} }}
  server {{ listen 127.0.0.1:{h} http2; root {w}/www; location / {{ }} }}
  server {{ listen 127.0.0.1:{t} ssl http2; ssl_certificate {w}/cert.pem;
           ssl_certificate_key {w}/key.pem; root {w}/www; location / {{ }} }} }}
""".format(w=work, p=port, h=h2c_port, t=tls_port)


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


def haproxy_conf(work, port, proto, origin, workers, sandboxes):
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
        lines += ["backend %s" % be, "  http-reuse always", "  server o 127.0.0.1:%d" % origin]
    return "\n".join(lines) + "\n"


def envoy_style_bootstrap(port, admin, origin, sandboxes, turnout_filter):
    """Envoy v3 YAML, accepted unchanged by turnout and by Envoy."""
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
    clusters = ""
    for name in ["origin"] + ["sb%d" % i for i in range(SANDBOX_CLUSTERS if sandboxes else 0)]:
        clusters += """  - name: {n}
    circuit_breakers: {{ thresholds: [{{ max_connections: 100000, max_pending_requests: 100000, max_requests: 100000 }}] }}
    load_assignment:
      cluster_name: {n}
      endpoints: [{{ lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {o} }} }} }} }}] }}]
""".format(n=name, o=origin)
    return """admin: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {a} }} }} }}
static_resources:
  listeners:
  - name: bench
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {p} }} }}
    filter_chains:
    - filters:
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
                     filters=filters, clusters=clusters)


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
    if name == "turnout":
        conf = os.path.join(work, "turnout.yaml")
        with open(conf, "w") as f:
            f.write(envoy_style_bootstrap(port, free_port(), ctx["origin"], sandboxes, True))
        args = [ctx["turnout"], "-c", conf, "--concurrency", str(workers), "-l", "error"]
    elif name == "envoy":
        conf = os.path.join(work, "envoy.yaml")
        with open(conf, "w") as f:
            f.write(envoy_style_bootstrap(port, free_port(), ctx["origin"], sandboxes, False))
        args = ["envoy", "-c", conf, "--concurrency", str(workers), "-l", "error",
                "--base-id", str(port)]
    elif name == "haproxy":
        conf = os.path.join(work, "haproxy.cfg")
        with open(conf, "w") as f:
            f.write(haproxy_conf(work, port, proto, ctx["origin"], workers, sandboxes))
        args = ["haproxy", "-f", conf, "-q"]
    elif name == "nginx":
        conf = os.path.join(work, "nginx.conf")
        with open(conf, "w") as f:
            f.write(nginx_conf(work, port, proto, ctx["origin"], workers, sandboxes))
        args = ["nginx", "-c", conf]
    elif name == "nghttpx":
        frontend = "127.0.0.1,%d%s" % (port, "" if proto == "tls-h2" else ";no-tls")
        args = ["nghttpx", "--frontend=" + frontend, "--backend=127.0.0.1,%d" % ctx["origin"],
                "-n", str(workers), "--no-via", "--no-server-rewrite", "--no-ocsp",
                "--backend-connections-per-host=1024", "--frontend-http2-max-concurrent-streams=1000",
                "--errorlog-file=" + os.path.join(work, "nghttpx.err"), "--conf=/dev/null"]
        if proto == "tls-h2":
            args += [os.path.join(work, "key.pem"), os.path.join(work, "cert.pem")]
    else:
        raise ValueError(name)
    proc = Proc(name, args, cpus, work)
    if not wait_http(port, proto):
        proc.stop()
        raise RuntimeError("%s did not answer on port %d:\n%s" % (name, port, proc.tail()))
    return Target(name, proto, port, proc)


# --------------------------------------------------------------------------
# Load generation (turnout-bench, JSON report).
# --------------------------------------------------------------------------

def run_load(ctx, target, path, headers, key_mix, label, rate=None, duration=None, warmup=0):
    """Runs turnout-bench against target and returns its JSON report, kept as
    <label>.json (compare mode names each series after its file)."""
    report = os.path.join(ctx["work"], label + ".json")
    os.makedirs(os.path.dirname(report), exist_ok=True)
    h2 = target.proto in ("h2c", "tls-h2")
    conns = ctx["h2_connections"] if h2 else ctx["connections"]
    args = ["taskset", "-c", cpu_spec(ctx["load_cpus"]), ctx["bench"],
            "-t", str(min(ctx["threads"], conns)), "-c", str(conns),
            "-d", str(duration or ctx["duration"]), "--warmup", str(warmup),
            "--json", report, "--label", os.path.basename(label)]
    if h2:  # h2c for http://, h2 by ALPN for https:// (no certificate check)
        args += ["--h2", "-m", str(ctx["streams"])]
    if rate:
        args += ["-R", str(int(rate))]
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
        cpu0 = cpu_seconds(target.proc.pid) if target.proc else 0
        sat = run_load(ctx, target, path, headers, mix, "saturation/" + where)
        if target.proc:
            row["cpu_us_per_request"] = ((cpu_seconds(target.proc.pid) - cpu0) * 1e6
                                         / max(1, sat["requests"]))
    finally:
        if sampler:
            row["rss_load_kib"] = sampler.stop()
    row["saturation"] = summarise(sat)
    if "_path" in sat:
        row["_saturation_report"] = sat["_path"]
    row["rps_per_core"] = sat["rps"] / workers
    log("  %-8s saturation %10.0f req/s  p99 %8s us  cpu %s us/req" % (
        target.name, sat["rps"], "%.0f" % latency_us(sat, "99"),
        "%.1f" % row["cpu_us_per_request"] if "cpu_us_per_request" in row else "-"))


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


def measure_scenario(ctx, scenario, proxies, workers):
    """One row per target: saturation for each (one process at a time), then
    open-loop latency at half of haproxy's saturation rate."""
    proto, _, _, sandboxes, _ = SCENARIOS[scenario]
    rows = []
    for name in ["direct"] + proxies:
        row = {"proxy": name, "scenario": scenario, "workers": workers}
        rows.append(row)
        if proto not in PROTOCOLS[name]:
            row["skipped"] = "%s does not serve %s yet" % (name, proto)
        elif sandboxes and name not in HEADER_ROUTING and name != "direct":
            row["skipped"] = "%s cannot route on a header" % name
        else:
            with_target(ctx, row, scenario, workers,
                        lambda t, row=row: measure_saturation(ctx, row, t, scenario, workers))
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


def markdown(result):
    out = ["# Peer comparison, %s, %s" % (result["date"], result["machine"]), "",
           "Proxy CPUs %s, load generator CPUs %s, origin CPUs %s; %d s per run after %d s warm-up; "
           "%d HTTP/1.1 connections; h2: %d connections x %d streams." % (
               result["proxy_cpus"], result["load_cpus"], result["origin_cpus"], result["duration"],
               result["warmup"], result["connections"], result["h2_connections"], result["streams"]),
           "Ratios are against haproxy in the same run. Added latency is measured open-loop at 50 % "
           "of haproxy's saturation rate, minus the direct origin at the same rate.", ""]
    head = ("| scenario | workers | proxy | req/s per core | vs haproxy | CPU µs/req | vs haproxy | "
            "added p50 µs | added p99 µs | added p99.9 µs | RSS idle MiB | RSS load MiB |")
    out += [head, "|" + "---|" * 12]
    for row in result["rows"]:
        hap = next((r for r in result["rows"] if r["proxy"] == "haproxy"
                    and r["scenario"] == row["scenario"] and r["workers"] == row["workers"]), {})
        if "saturation" not in row:
            why = row.get("skipped") or "failed: " + "; ".join(row.get("failed", ["?"]))
            out.append("| %s | %d | %s | %s |%s" % (row["scenario"], row["workers"], row["proxy"],
                                                     why.replace("|", "/"), " |" * 8))
            continue

        def ratio(key):
            a, b = row.get(key), hap.get(key)
            return "%.2f" % (a / b) if a and b else "-"

        added = row.get("added_latency_us", {})
        out.append("| %s | %d | %s | %.0f | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            row["scenario"], row["workers"], row["proxy"], row.get("rps_per_core", 0),
            ratio("rps_per_core"),
            "%.1f" % row["cpu_us_per_request"] if "cpu_us_per_request" in row else "-",
            ratio("cpu_us_per_request"),
            *["%.0f" % added[q] if q in added else "-" for q in ("p50", "p99", "p99.9")],
            "%.1f" % (row["rss_idle_kib"] / 1024) if "rss_idle_kib" in row else "-",
            "%.1f" % (row["rss_load_kib"] / 1024) if "rss_load_kib" in row else "-"))
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--turnout", default=os.path.join(ROOT, "build/proxy/turnout"))
    ap.add_argument("--bench", default=os.path.join(ROOT, "build/bench/turnout_bench/turnout-bench"))
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--proxies", default="turnout,haproxy,nginx,nghttpx,envoy")
    ap.add_argument("--workers", default="1", help="comma list, e.g. 1,2,4,8 on a 16-core machine")
    n = os.cpu_count() or 2
    # Proxy on the first half of the CPUs; origin and load generator split
    # the second half (on 2 or 3 CPUs they share what is left).
    half, three_q = max(1, n // 2), max(1, (3 * n) // 4)
    ap.add_argument("--proxy-cpus", default="0-%d" % (half - 1))
    ap.add_argument("--origin-cpus", default="%d-%d" % (half, max(half, three_q - 1)))
    ap.add_argument("--load-cpus", default="%d-%d" % (three_q if n >= 4 else half, n - 1))
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--threads", type=int, default=0, help="load threads (default: load CPUs)")
    ap.add_argument("--streams", type=int, default=100, help="h2 streams per connection")
    ap.add_argument("--h2-connections", type=int, default=4, help="h2 connections")
    ap.add_argument("--quick", action="store_true", help="3 s runs, 1 s warm-up (smoke)")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench/results"))
    args = ap.parse_args()

    for tool in ("taskset", "curl", "nginx"):
        if not shutil.which(tool):
            sys.exit("compare: %s is missing (scripts/setup.sh installs it)" % tool)
    for path, what in ((args.turnout, "turnout"), (args.bench, "turnout-bench")):
        if not os.access(path, os.X_OK):
            sys.exit("compare: no %s at %s (run scripts/build.sh)" % (what, path))
    proxies = [p for p in args.proxies.split(",") if p]
    for p in proxies:
        if p not in PROTOCOLS or p == "direct":
            sys.exit("compare: unknown proxy %r (choose from turnout,haproxy,nginx,nghttpx,envoy)" % p)
    missing = [p for p in proxies if p != "turnout" and not shutil.which(p)]
    if missing:
        log("compare: not on PATH, skipped: %s" % ", ".join(missing))
        proxies = [p for p in proxies if p not in missing]
    scenarios = [s for s in args.scenarios.split(",") if s]
    for s in scenarios:
        if s not in SCENARIOS:
            sys.exit("compare: unknown scenario %r (choose from %s)" % (s, ", ".join(SCENARIOS)))
    workers_list = [int(w) for w in args.workers.split(",")]
    proxy_cpus, load_cpus = cpu_list(args.proxy_cpus), cpu_list(args.load_cpus)
    origin_cpus = cpu_list(args.origin_cpus)
    if max(workers_list) > len(proxy_cpus):
        sys.exit("compare: --workers %d needs that many --proxy-cpus (have %s)"
                 % (max(workers_list), args.proxy_cpus))
    if args.quick:
        args.duration, args.warmup = 3, 1

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
           "origin": free_port(), "origin_h2c": free_port(), "origin_tls": free_port()}
    with open(os.path.join(work, "origin.conf"), "w") as f:
        f.write(origin_conf(work, ctx["origin"], ctx["origin_h2c"], ctx["origin_tls"]))
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
              "proxy_cpus": args.proxy_cpus, "load_cpus": args.load_cpus,
              "origin_cpus": args.origin_cpus,
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
