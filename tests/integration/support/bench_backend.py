"""An HTTP/1.1 keep-alive origin on 127.0.0.1:0 for the turnout-bench tests.

  python3 bench_backend.py PORT_FILE [--stall-at S --stall-for D] [--silent]

Writes its port to PORT_FILE once listening. Every request gets 200 with a
small body, except:
  GET /__counts   JSON {"requests": n, "keys": {"<routing key>|-": n}}: how
                  many requests carried which routing key (baggage member
                  turnout-routing-key, else x-turnout-routing-key, else "-").
With --stall-at/--stall-for, the server freezes once: a response that would
be sent between S and S+D seconds after the first request arrived is held
until S+D, like a stop-the-world pause. With --silent it accepts
connections and never answers (for timeouts).
"""

import http.server
import json
import os
import socket
import sys
import threading
import time

args = sys.argv[1:]
port_file = args[0]
stall_at = float(args[args.index("--stall-at") + 1]) if "--stall-at" in args else None
stall_for = float(args[args.index("--stall-for") + 1]) if "--stall-for" in args else 0.0
silent = "--silent" in args

lock = threading.Lock()
state = {"first": None, "requests": 0, "keys": {}}


def routing_key(headers):
    for member in headers.get("baggage", "").split(","):
        name, _, value = member.strip().partition("=")
        if name == "turnout-routing-key":
            return value
    return headers.get("x-turnout-routing-key", "-")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30
    # Headers and body go out as two writes; with Nagle on, the body would
    # wait for the client's delayed ACK (40 ms).
    disable_nagle_algorithm = True

    def log_message(self, *a):
        pass

    def do_GET(self):
        n = int(self.headers.get("Content-Length", "0") or 0)
        if n:
            self.rfile.read(n)
        if self.path == "/__counts":
            with lock:
                body = json.dumps({"requests": state["requests"], "keys": state["keys"]}).encode()
        else:
            now = time.monotonic()
            with lock:
                if state["first"] is None:
                    state["first"] = now
                state["requests"] += 1
                key = routing_key(self.headers)
                state["keys"][key] = state["keys"].get(key, 0) + 1
                first = state["first"]
            if stall_at is not None:
                start, end = first + stall_at, first + stall_at + stall_for
                if start <= now < end:
                    time.sleep(end - now)
            body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def handle_error(self, request, client_address):
        pass  # the load generator closes connections mid-response when a run ends


def serve_silent(sock):
    conns = []
    while True:
        c, _ = sock.accept()
        conns.append(c)  # held open, never answered


if silent:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    port = s.getsockname()[1]
else:
    srv = Server(("127.0.0.1", 0), Handler)
    port = srv.server_address[1]
with open(port_file + ".tmp", "w") as f:
    f.write(str(port))
os.rename(port_file + ".tmp", port_file)
if silent:
    serve_silent(s)
else:
    srv.serve_forever()
