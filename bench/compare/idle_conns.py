#!/usr/bin/env python3
"""Memory per idle relayed connection: turnout against haproxy.

Usage: idle_conns.py <turnout-binary> [--conns N] [--json FILE]

Three modes, each through turnout and through haproxy, one worker each:
  tcp        a TCP proxy listener (turnout: envoy.filters.network.tcp_proxy;
             haproxy: mode tcp) to an origin that echoes;
  http       an HTTP/1.1 keep-alive connection after one GET (its upstream
             connection pooled);
  h2c        an HTTP/2 connection (prior knowledge) after one GET (needs
             python3-h2; haproxy: bind ... proto h2);
  https      an HTTP/1.1 keep-alive connection over TLS after one GET (a
             self-signed certificate made with the openssl CLI);
  websocket  an HTTP listener that upgrades (turnout: upgrade_configs
             websocket; haproxy: mode http, which tunnels after the 101) to an
             origin that answers 101 and then echoes.
For each, N connections are opened, each sends one byte and reads its echo
(http: one request and its response), so that the path is set up end to
end, and then they stay open and idle. The
figure is the proxy's RSS growth over those N connections, per connection
(/proc/<pid>/smaps_rollup Rss, after the proxy served one warm-up connection).
The origin is an asyncio server in its own process. Loopback only; every
wait is bounded.
"""

import argparse
import json
import os
import resource
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

ORIGIN = r'''
import asyncio, base64, hashlib, sys
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
def accept(head):
    for line in head.split(b"\r\n"):
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"sec-websocket-key":
            return base64.b64encode(hashlib.sha1(v.strip() + GUID).digest())
    return b""
async def handle(reader, writer):
    try:
        head = b""
        first = await reader.read(65536)
        if first.startswith(b"GET "):
            head = first
            while b"\r\n\r\n" not in head:
                more = await reader.read(65536)
                if not more:
                    return
                head += more
            if b"upgrade: websocket" not in head.lower():
                # Plain keep-alive HTTP/1.1: a 200 for each request head.
                while True:
                    while head.count(b"\r\n\r\n") > 0:
                        head = head.split(b"\r\n\r\n", 1)[1]
                        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    more = await reader.read(65536)
                    if not more:
                        return
                    head += more
            writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept(head) +
                         b"\r\n\r\n")
            first = head.split(b"\r\n\r\n", 1)[1]
        if first:
            writer.write(first)
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=4096)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()
asyncio.run(main())
'''


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            if line.startswith("Rss:"):
                return int(line.split()[1])
    raise RuntimeError("no Rss in smaps_rollup")


def wait_port(port, proc, deadline_s=10):
    end = time.time() + deadline_s
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError("the proxy exited: %s" % proc.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("port %d did not open" % port)


def turnout_yaml(mode, port, origin, cert_dir=None):
    if mode == "tcp":
        filt = ("      - name: envoy.filters.network.tcp_proxy\n"
                "        typed_config:\n"
                "          \"@type\": type.googleapis.com/envoy.extensions.filters.network."
                "tcp_proxy.v3.TcpProxy\n"
                "          stat_prefix: tcp\n"
                "          cluster: origin\n")
    else:
        filt = ("      - name: envoy.filters.network.http_connection_manager\n"
                "        typed_config:\n"
                "          \"@type\": type.googleapis.com/envoy.extensions.filters.network."
                "http_connection_manager.v3.HttpConnectionManager\n"
                "          stat_prefix: ingress\n"
                "          upgrade_configs: [{upgrade_type: websocket}]\n"
                "          route_config:\n"
                "            virtual_hosts:\n"
                "            - name: all\n"
                "              domains: [\"*\"]\n"
                "              routes:\n"
                "              - match: { prefix: \"/\" }\n"
                "                route: { cluster: origin }\n"
                "          http_filters:\n"
                "          - name: envoy.filters.http.router\n"
                "            typed_config:\n"
                "              \"@type\": type.googleapis.com/envoy.extensions.filters.http."
                "router.v3.Router\n")
    return ("static_resources:\n"
            "  listeners:\n"
            "  - name: in\n"
            "    address: { socket_address: { address: 127.0.0.1, port_value: %d } }\n"
            "    filter_chains:\n"
            "    - %sfilters:\n%s"
            "  clusters:\n"
            "  - name: origin\n"
            "    connect_timeout: 2s\n"
            "    type: STATIC\n"
            "    circuit_breakers:\n"  # Envoy's default max_connections is 1024
            "      thresholds: [{max_connections: 1000000, max_pending_requests: 1000000,"
            " max_requests: 1000000}]\n"
            "    load_assignment:\n"
            "      cluster_name: origin\n"
            "      endpoints:\n"
            "      - lb_endpoints:\n"
            "        - endpoint: { address: { socket_address: { address: 127.0.0.1, "
            "port_value: %d } } }\n") % (port, tls_chain(cert_dir) if mode == "https" else "",
                                          filt, origin)


def tls_chain(cert_dir):
    return ("transport_socket:\n"
            "        name: envoy.transport_sockets.tls\n"
            "        typed_config:\n"
            "          \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."
            "DownstreamTlsContext\n"
            "          common_tls_context:\n"
            "            alpn_protocols: [http/1.1]\n"
            "            tls_certificates:\n"
            "            - certificate_chain: {filename: %s/cert.pem}\n"
            "              private_key: {filename: %s/key.pem}\n"
            "      ") % (cert_dir, cert_dir)


def haproxy_cfg(mode, port, origin, conns, cert_dir=None):
    return ("global\n  maxconn %d\n  nbthread 1\n"
            "defaults\n  mode %s\n  timeout connect 2s\n  timeout client 60s\n"
            "  timeout server 60s\n  timeout tunnel 60s\n"
            "frontend f\n  bind 127.0.0.1:%d%s\n  default_backend b\n"
            "backend b\n  server o 127.0.0.1:%d\n") % (
                conns * 2 + 100, "tcp" if mode == "tcp" else "http", port,
                " proto h2" if mode == "h2c" else
                " ssl crt %s/both.pem" % cert_dir if mode == "https" else "", origin)


_H2_STATES = []


def read_until(s, got, done):
    """Reads from `s` onto `got` until done(got); EOF first is an error."""
    while not done(got):
        d = s.recv(4096)
        if not d:
            raise RuntimeError("closed early: %r" % got[:200])
        got += d
    return got


def open_conn(port, mode):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    if mode == "https":
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        s = ctx.wrap_socket(s)
        mode = "http"
    if mode == "h2c":
        import h2.config
        import h2.connection
        import h2.events
        c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        c.initiate_connection()
        c.send_headers(1, [(":method", "GET"), (":path", "/k"), (":scheme", "http"),
                           (":authority", "o")], end_stream=True)
        s.sendall(c.data_to_send())
        ended = False
        while not ended:
            d = s.recv(65536)
            if not d:
                raise RuntimeError("closed before the h2 response")
            for e in c.receive_data(d):
                ended = ended or isinstance(e, h2.events.StreamEnded)
            s.sendall(c.data_to_send())
        _H2_STATES.append(c)  # kept while the connection is held
    elif mode == "http":
        s.sendall(b"GET /k HTTP/1.1\r\nHost: o\r\n\r\n")
        got = read_until(s, b"", lambda got: got.endswith(b"ok"))
        if not got.startswith(b"HTTP/1.1 200"):
            raise RuntimeError("not 200: %r" % got[:200])
    elif mode == "websocket":
        # haproxy checks the RFC 6455 handshake fields.
        s.sendall(b"GET /ws HTTP/1.1\r\nHost: o\r\nUpgrade: websocket\r\n"
                  b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        got = read_until(s, b"", lambda got: b"\r\n\r\n" in got)
        s.sendall(b"x")
        got = read_until(s, got, lambda got: got.endswith(b"x"))
        if not got.startswith(b"HTTP/1.1 101"):
            raise RuntimeError("not upgraded: %r" % got[:200])
    else:
        s.sendall(b"x")
        if s.recv(16) != b"x":
            raise RuntimeError("no echo")
    return s


def measure(name, args, port, mode, conns, work):
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=open(
        os.path.join(work, name + "-" + mode + ".log"), "w"))
    held = []
    try:
        wait_port(port, proc)
        open_conn(port, mode).close()  # warm-up: the first connection's one-time costs
        time.sleep(0.3)
        before = rss_kib(proc.pid)
        for _ in range(conns):
            held.append(open_conn(port, mode))
        time.sleep(0.5)
        after = rss_kib(proc.pid)
        return {"proxy": name, "mode": mode, "conns": conns, "rss_before_kib": before,
                "rss_after_kib": after, "kib_per_conn": round((after - before) / conns, 2)}
    finally:
        for s in held:
            s.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("turnout")
    ap.add_argument("--conns", type=int, default=2000)
    ap.add_argument("--json")
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = a.conns * 4 + 256
    if hard < need:
        sys.exit("idle_conns: needs %d descriptors, the hard limit is %d" % (need, hard))
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, need), hard))
    work = tempfile.mkdtemp(prefix="idle-conns-")
    origin = subprocess.Popen([sys.executable, "-c", ORIGIN], stdout=subprocess.PIPE, text=True)
    rows = []
    try:
        origin_port = int(origin.stdout.readline())
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                        os.path.join(work, "key.pem"), "-out", os.path.join(work, "cert.pem"),
                        "-days", "1", "-subj", "/CN=localhost"], check=True, capture_output=True)
        with open(os.path.join(work, "both.pem"), "w") as both:
            for name in ("cert.pem", "key.pem"):
                with open(os.path.join(work, name)) as part:
                    both.write(part.read())
        modes = ["tcp", "http", "websocket", "https"]
        try:
            import h2  # noqa: F401
            modes.append("h2c")
        except ImportError:
            print("idle_conns: no python3-h2 here, skipping h2c (run it with /usr/bin/python3)")
        for mode in modes:
            port = free_port()
            conf = os.path.join(work, "turnout-%s.yaml" % mode)
            with open(conf, "w") as f:
                f.write(turnout_yaml(mode, port, origin_port, work))
            rows.append(measure("turnout", [a.turnout, "-c", conf, "--concurrency", "1",
                                            "-l", "error"], port, mode, a.conns, work))
            if shutil.which("haproxy"):
                port = free_port()
                conf = os.path.join(work, "haproxy-%s.cfg" % mode)
                with open(conf, "w") as f:
                    f.write(haproxy_cfg(mode, port, origin_port, a.conns, work))
                rows.append(measure("haproxy", ["haproxy", "-f", conf, "-q"], port, mode,
                                    a.conns, work))
    finally:
        origin.terminate()
        origin.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    print("| proxy | mode | idle connections | RSS before | RSS after | KiB per connection |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print("| %s | %s | %d | %.1f MiB | %.1f MiB | %.2f |" % (
            r["proxy"], r["mode"], r["conns"], r["rss_before_kib"] / 1024,
            r["rss_after_kib"] / 1024, r["kib_per_conn"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
