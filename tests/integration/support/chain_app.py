"""A stand-in microservice for the sidecar tests: answers GET / with JSON
naming itself and, when it has a next hop, what the next hop answered.

    chain_app.py --name reviews --variant baseline --port 9080 \
        [--next http://ratings:9090/] [--propagate all|traceparent] \
        [--echo-port 5432] [--tcp-target HOST:PORT] [--dual-stack]

--propagate all copies baggage, tracestate, traceparent and the plain
x-turnout-routing-key header to the next hop; traceparent copies only
traceparent (an app that drops baggage). GET /tcp connects to --tcp-target,
sends a line and answers what came back (non-HTTP traffic through the
capture). --echo-port also runs a TCP line echo server. --dual-stack
listens on :: for both families (IPv4 peers show as ::ffff:a.b.c.d). Each
answer names the peer the app saw ("peer"). Every socket operation has a
timeout: nothing here waits for ever.
"""

import argparse
import http.client
import http.server
import json
import socket
import socketserver
import threading
import urllib.parse

TIMEOUT_S = 5.0
PROPAGATED = {"all": ("baggage", "tracestate", "traceparent", "x-turnout-routing-key"),
              "traceparent": ("traceparent",)}


def call_next(url, headers):
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=TIMEOUT_S)
    try:
        conn.request("GET", u.path or "/", headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        try:
            return json.loads(body)
        except ValueError:
            return {"status": resp.status, "body": body.decode(errors="replace")}
    except OSError as e:
        return {"error": str(e)}
    finally:
        conn.close()


def tcp_roundtrip(target, line):
    host, port = target.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=TIMEOUT_S) as s:
        s.sendall(line.encode() + b"\n")
        s.shutdown(socket.SHUT_WR)
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    return data.decode(errors="replace").strip()


def make_handler(args):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def reply(self, obj):
            body = json.dumps(obj).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            seen = {h: self.headers.get(h) for h in
                    ("baggage", "tracestate", "traceparent", "x-turnout-routing-key")
                    if self.headers.get(h) is not None}
            out = {"service": args.name, "variant": args.variant, "seen": seen,
                   "peer": self.client_address[0]}
            if self.path.startswith("/tcp"):
                try:
                    out["tcp"] = tcp_roundtrip(args.tcp_target, "ping from " + args.name)
                except OSError as e:
                    out["tcp_error"] = str(e)
            elif args.next:
                headers = {h: seen[h] for h in PROPAGATED[args.propagate] if h in seen}
                out["next"] = call_next(args.next, headers)
            self.reply(out)

    return Handler


class EchoHandler(socketserver.StreamRequestHandler):
    def handle(self):
        self.connection.settimeout(TIMEOUT_S)
        line = self.rfile.readline()
        self.wfile.write(b"echo " + line)


class ThreadingTCPServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    allow_reuse_address = True
    daemon_threads = True


class DualStackHTTPServer(http.server.ThreadingHTTPServer):
    """[::]:port with IPV6_V6ONLY off: IPv6 and IPv4 peers alike."""
    address_family = socket.AF_INET6

    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--name", required=True)
    p.add_argument("--variant", default="baseline")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--next")
    p.add_argument("--propagate", choices=sorted(PROPAGATED), default="all")
    p.add_argument("--echo-port", type=int)
    p.add_argument("--tcp-target")
    p.add_argument("--dual-stack", action="store_true")
    args = p.parse_args()
    if args.echo_port:
        echo = ThreadingTCPServer(("0.0.0.0", args.echo_port), EchoHandler)
        threading.Thread(target=echo.serve_forever, daemon=True).start()
    if args.dual_stack:
        server = DualStackHTTPServer(("::", args.port), make_handler(args))
    else:
        server = http.server.ThreadingHTTPServer(("0.0.0.0", args.port), make_handler(args))
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
