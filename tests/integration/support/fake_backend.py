"""A programmable HTTP/1.1 origin on 127.0.0.1:0 for integration tests.

Behaviour is chosen by the first keyword segment in the request path (the
query string is ignored; segments before the keyword, such as a route
prefix, are skipped):

  /<anything>                   200, JSON echo of what arrived (see _record)
  /status/<code>/...            <code>, JSON echo
  /delay/<ms>/...               waits <ms> then 200 JSON echo
  /fail-first/<k>/<token>       503 for the first <k> requests on this exact path, then 200
  /close/...                    closes the connection without answering
  /chunked/<n>/...              200 with a chunked body of <n> 'x' bytes
  /big/<n>/...                  200 with a content-length body of <n> 'x' bytes
  /slow-body/<ms>/...           200 head (content-length 5) at once, the body "hello" <ms> later

Each backend counts accepted TCP connections and records every request
(with its time.monotonic() arrival); extra_headers go on every response
except the chunked one.
"""

import hashlib
import http.client
import http.server
import json
import socket
import threading
import time

SOCKET_TIMEOUT_S = 10.0
_KEYWORDS = ("status", "delay", "fail-first", "close", "chunked", "big", "slow-body")

# http.server refuses requests with more than http.client._MAXHEADERS (100)
# headers; the proxy adds its own, so requests near the proxy's limit would
# be refused here with 431 and could pass for the proxy's answer.
http.client._MAXHEADERS = 1000
MAX_DELAY_MS = 10000


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = SOCKET_TIMEOUT_S
    # A response goes out as two writes (the head, then the body). With
    # Nagle on, the body waited for the ACK of the head, which a reused
    # connection's peer may delay by 40 ms: every response on a kept-alive
    # upstream connection could take 40 ms more (bench/xds's "API call to
    # routed" read 50 or 90-100 ms at random).
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def setup(self):
        super().setup()
        with self.server.lock:
            self.server.connections += 1
            self.conn_id = self.server.connections

    # -- request body --------------------------------------------------------

    def _read_body(self):
        te = self.headers.get("Transfer-Encoding", "")
        if "chunked" in te.lower():
            chunks = []
            for _ in range(1 << 20):  # bounded: at most a million chunks
                line = self.rfile.readline(1024)
                if not line:
                    break
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    for _ in range(1000):  # trailers until the empty line
                        t = self.rfile.readline(65536)
                        if t in (b"\r\n", b"\n", b""):
                            break
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline(8)
            return b"".join(chunks), True
        n = int(self.headers.get("Content-Length", "0") or 0)
        return (self.rfile.read(n) if n else b""), False

    # -- responses -----------------------------------------------------------

    def _record(self, body, chunked):
        info = {
            "backend": self.server.name,
            "method": self.command,
            "path": self.path,
            "headers": [[k.lower(), v] for k, v in self.headers.items()],
            "body_len": len(body),
            "body_sha256": hashlib.sha256(body).hexdigest(),
            "request_chunked": chunked,
            "conn_id": self.conn_id,
            "received_at": time.monotonic(),
        }
        with self.server.lock:
            self.server.requests.append(info)
            self.server.path_hits[self.path] = self.server.path_hits.get(self.path, 0) + 1
            hits = self.server.path_hits[self.path]
        return info, hits

    def _send(self, status, body, ctype="application/json", extra=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Backend", self.server.name)
        for k, v in list(self.server.extra_headers) + list(extra):
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self):
        body, chunked = self._read_body()
        info, hits = self._record(body, chunked)
        parts = self.path.split("?", 1)[0].strip("/").split("/")
        # The first behaviour keyword anywhere in the path wins, so route
        # prefixes (/retry/fail-first/1/x) can sit in front of it.
        for i, part in enumerate(parts):
            if part in _KEYWORDS:
                parts = parts[i:]
                break
        kind = parts[0]
        echo = json.dumps(info).encode()
        if self.server.force_status is not None:
            self._send(self.server.force_status, echo)
        elif kind == "status" and len(parts) > 1:
            self._send(int(parts[1]), echo)
        elif kind == "delay" and len(parts) > 1:
            time.sleep(min(int(parts[1]), MAX_DELAY_MS) / 1000.0)
            try:
                self._send(200, echo)
            except OSError:
                pass
        elif kind == "fail-first" and len(parts) > 1:
            self._send(503 if hits <= int(parts[1]) else 200, echo)
        elif kind == "close":
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        elif kind == "chunked" and len(parts) > 1:
            n = int(parts[1])
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("X-Backend", self.server.name)
            self.end_headers()
            step = 16384
            for off in range(0, n, step):
                piece = b"x" * min(step, n - off)
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        elif kind == "slow-body" and len(parts) > 1:
            self.send_response(200)
            self.send_header("Content-Length", "5")
            self.end_headers()  # written now: wfile is unbuffered
            time.sleep(min(int(parts[1]), MAX_DELAY_MS) / 1000.0)
            try:
                self.wfile.write(b"hello")
            except OSError:
                pass
        elif kind == "big" and len(parts) > 1:
            self._send(200, b"x" * int(parts[1]), ctype="application/octet-stream")
        else:
            self._send(200, echo)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _handle


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog of 5 drops SYNs when a multiplexed
    # client fans out into dozens of upstream connections at once.
    request_queue_size = 128


class FakeBackend:
    def __init__(self, name="backend", force_status=None, host="127.0.0.1", port=0,
                 extra_headers=()):
        self.server = _Server((host, port), _Handler)
        self.server.force_status = force_status  # answer every request with this
        self.server.extra_headers = list(extra_headers)  # (name, value) on every _send
        self.server.name = name
        self.server.lock = threading.Lock()
        self.server.connections = 0
        self.server.requests = []
        self.server.path_hits = {}
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def name(self):
        return self.server.name

    @property
    def port(self):
        return self.server.server_address[1]

    @property
    def connections(self):
        with self.server.lock:
            return self.server.connections

    @property
    def requests(self):
        with self.server.lock:
            return list(self.server.requests)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


def free_closed_port():
    """A loopback port that nothing listens on: bound, then closed."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def get_backend(port, path="/", headers=None):
    """GET through a proxy on 127.0.0.1:port: (status, the answering FakeBackend's
    name or None); (None, None) when the connection fails."""
    import http.client
    import json
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        body = resp.read()
        try:
            return resp.status, json.loads(body).get("backend")
        except ValueError:
            return resp.status, None
    except OSError:
        return None, None
    finally:
        conn.close()
