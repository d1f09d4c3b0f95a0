"""An h2c (HTTP/2 over plaintext, prior knowledge) backend for the
integration tests, on python3-h2 (Debian's python3-h2, so /usr/bin/python3).

One thread accepts on 127.0.0.1:0 and one thread serves each connection.
Every request is answered with a JSON echo of what arrived:

    {"method", "path", "headers": [[name, value], ...], "body_len",
     "body_sha256", "trailers": [[name, value], ...], "conn": <connection index>,
     "stream": <stream id>, "never_indexed": [names of the fields that came as
     never-indexed literals (RFC 7541 §6.2.3)]}

Paths:
    /big/<n>        the body is n bytes of "x" (sent as the flow-control
                    windows allow) instead of the echo
    /trailers       the echo, then response trailers x-resp-trailer: done
    /reset          no response: RST_STREAM(INTERNAL_ERROR) on the stream
    /never-indexed  the echo, with x-session: s3cr3t among the response
                    fields as a never-indexed literal, and x-plain: 1 not
Options:
    max_concurrent_streams  our SETTINGS_MAX_CONCURRENT_STREAMS
    refuse_first            the first request of the whole backend is
                            refused with RST_STREAM(REFUSED_STREAM)
    hold_window_s           streams get a 1-byte window (SETTINGS_INITIAL_WINDOW_SIZE)
                            and no WINDOW_UPDATE until this long after their
                            headers arrived: the proxy's request body waits on
                            flow control meanwhile
    http1                   a connection that does not open with the HTTP/2
                            preface is served as HTTP/1.1: each request gets
                            {"protocol": "HTTP/1.1", "method", "path"} (a
                            backend for both sides of use_downstream_protocol_config)
    tunnels                 SETTINGS_ENABLE_CONNECT_PROTOCOL is sent, and a
                            CONNECT (plain or extended, RFC 8441) is answered
                            at its HEADERS: a 200 with no content-length, the
                            echo as the first DATA, then b"echo:" + each DATA
                            received, and END_STREAM after the client's
"""

import hashlib
import json
import socket
import threading
import time

import h2.config
import h2.connection
import h2.events
import h2.errors
import h2.exceptions
import h2.settings
from hpack import NeverIndexedHeaderTuple


class H2Backend:
    def __init__(self, max_concurrent_streams=100, refuse_first=False, hold_window_s=None,
                 http1=False, tunnels=False):
        self.http1 = http1
        self.tunnels = tunnels
        self.max_concurrent_streams = max_concurrent_streams
        self.refuse_first = refuse_first
        self.hold_window_s = hold_window_s
        self.lock = threading.Lock()
        self.connections = 0
        self.requests = []  # echo dicts, in arrival order
        self.client_settings = {}  # the last SETTINGS values a client sent
        self.refused = 0
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(128)
        self.port = self._sock.getsockname()[1]
        self._stopped = False
        self._conns = []
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stopped = True
        try:
            self._sock.close()
        except OSError:
            pass
        for c in list(self._conns):
            try:
                c.shutdown(socket.SHUT_RDWR)
                c.close()
            except OSError:
                pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    def _accept(self):
        while not self._stopped:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with self.lock:
                index = self.connections
                self.connections += 1
            self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn, index), daemon=True).start()

    def _serve_http1(self, sock, data):
        """HTTP/1.1 keep-alive, bodiless requests: a JSON line per request."""
        sock.settimeout(10)
        try:
            while True:
                while b"\r\n\r\n" not in data:
                    d = sock.recv(65536)
                    if not d:
                        return
                    data += d
                head, data = data.split(b"\r\n\r\n", 1)
                method, path, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
                echo = {"protocol": "HTTP/1.1", "method": method, "path": path}
                with self.lock:
                    self.requests.append(echo)
                body = json.dumps(echo).encode()
                sock.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                             b"content-length: %d\r\n\r\n" % len(body) + body)
        except OSError:
            pass
        finally:
            sock.close()

    def _serve(self, sock, index):
        if self.http1:
            preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
            first = b""
            while len(first) < len(preface) and preface.startswith(first):
                d = sock.recv(len(preface) - len(first))
                if not d:
                    sock.close()
                    return
                first += d
            if first != preface:
                self._serve_http1(sock, first)
                return
            self._serve_h2(sock, index, first)
            return
        self._serve_h2(sock, index, b"")

    def _serve_h2(self, sock, index, received):
        config = h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        h2c = h2.connection.H2Connection(config=config)
        h2c.initiate_connection()
        settings = {h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: self.max_concurrent_streams}
        if self.hold_window_s is not None:
            settings[h2.settings.SettingCodes.INITIAL_WINDOW_SIZE] = 1
        if self.tunnels:
            settings[h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL] = 1
        h2c.update_settings(settings)
        tunnels = set()  # ids of open CONNECT streams
        sock.sendall(h2c.data_to_send())
        streams = {}   # id -> request state
        outgoing = {}  # id -> [bytes left, trailers or None]
        held = {}      # id -> [monotonic time its window opens, bytes not acknowledged]
        try:
            while True:
                self._open_held(h2c, held)
                out = h2c.data_to_send()
                if out:
                    sock.sendall(out)
                sock.settimeout(30 if not held else
                                max(0.01, min(h[0] for h in held.values()) - time.monotonic()))
                try:
                    # What _serve read to tell the protocol comes first.
                    data, received = (received, b"") if received else (sock.recv(65536), b"")
                except socket.timeout:
                    if held:
                        continue
                    raise
                if not data:
                    return
                for ev in h2c.receive_data(data):
                    if isinstance(ev, h2.events.RequestReceived):
                        streams[ev.stream_id] = {"headers": list(ev.headers), "body": b"",
                                                 "trailers": []}
                        if self.hold_window_s is not None and not ev.stream_ended:
                            held[ev.stream_id] = [time.monotonic() + self.hold_window_s, 0]
                        if self.tunnels and dict(ev.headers).get(":method") == "CONNECT":
                            self._open_tunnel(h2c, ev.stream_id, streams, index)
                            tunnels.add(ev.stream_id)
                        elif ev.stream_ended:
                            self._respond(h2c, ev.stream_id, streams, outgoing, index)
                    elif isinstance(ev, h2.events.DataReceived) and ev.stream_id in tunnels:
                        h2c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                        if ev.data:
                            h2c.send_data(ev.stream_id, b"echo:" + ev.data)
                        if ev.stream_ended:
                            h2c.end_stream(ev.stream_id)
                            tunnels.discard(ev.stream_id)
                    elif isinstance(ev, h2.events.DataReceived):
                        if ev.stream_id in streams:
                            streams[ev.stream_id]["body"] += ev.data
                        if ev.stream_id in held:
                            held[ev.stream_id][1] += ev.flow_controlled_length
                        else:
                            h2c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                        if ev.stream_ended:
                            self._respond(h2c, ev.stream_id, streams, outgoing, index)
                    elif isinstance(ev, h2.events.TrailersReceived):
                        if ev.stream_id in streams:
                            streams[ev.stream_id]["trailers"] = list(ev.headers)
                        if ev.stream_ended:
                            self._respond(h2c, ev.stream_id, streams, outgoing, index)
                    elif isinstance(ev, h2.events.StreamReset):
                        outgoing.pop(ev.stream_id, None)
                        streams.pop(ev.stream_id, None)
                    elif isinstance(ev, h2.events.RemoteSettingsChanged):
                        with self.lock:
                            for code, change in ev.changed_settings.items():
                                self.client_settings[code] = change.new_value
                    elif isinstance(ev, h2.events.ConnectionTerminated):
                        sock.sendall(h2c.data_to_send())
                        return
                self._pump(h2c, outgoing)
                out = h2c.data_to_send()
                if out:
                    sock.sendall(out)
        except (OSError, h2.exceptions.ProtocolError):
            return
        finally:
            try:
                sock.close()
            except OSError:
                pass

    @staticmethod
    def _open_held(h2c, held):
        now = time.monotonic()
        for sid, (at, unacked) in list(held.items()):
            if at > now:
                continue
            del held[sid]
            try:
                h2c.increment_flow_control_window(1 << 20, stream_id=sid)
                if unacked:
                    h2c.acknowledge_received_data(unacked, sid)
            except h2.exceptions.StreamClosedError:
                pass

    def _open_tunnel(self, h2c, sid, streams, index):
        req = streams.pop(sid)
        echo = {"method": "CONNECT", "headers": req["headers"], "conn": index, "stream": sid}
        with self.lock:
            self.requests.append(echo)
        h2c.send_headers(sid, [(":status", "200")])
        h2c.send_data(sid, json.dumps(echo).encode() + b"\n")

    def _respond(self, h2c, sid, streams, outgoing, index):
        req = streams.pop(sid)
        hdrs = dict(req["headers"])
        with self.lock:
            refuse = self.refuse_first and self.refused == 0
            if refuse:
                self.refused += 1
        if refuse:
            h2c.reset_stream(sid, error_code=h2.errors.ErrorCodes.REFUSED_STREAM)
            return
        path = hdrs.get(":path", "")
        if path == "/reset":
            h2c.reset_stream(sid, error_code=h2.errors.ErrorCodes.INTERNAL_ERROR)
            return
        echo = {
            "method": hdrs.get(":method"),
            "path": path,
            "headers": req["headers"],
            "body_len": len(req["body"]),
            "body_sha256": hashlib.sha256(req["body"]).hexdigest(),
            "trailers": req["trailers"],
            "conn": index,
            "stream": sid,
            "never_indexed": [h[0] for h in req["headers"] if isinstance(h, NeverIndexedHeaderTuple)],
        }
        with self.lock:
            self.requests.append(echo)
        trailers = None
        if path.startswith("/big/"):
            body = b"x" * int(path[len("/big/"):])
            ctype = "application/octet-stream"
        else:
            body = json.dumps(echo).encode()
            ctype = "application/json"
        if path == "/trailers":
            trailers = [("x-resp-trailer", "done")]
        head = ([(":status", "200"), ("content-type", ctype),
                 ("content-length", str(len(body)))] if trailers is None else
                [(":status", "200"), ("content-type", ctype)])
        if path == "/never-indexed":
            head += [NeverIndexedHeaderTuple("x-session", "s3cr3t"), ("x-plain", "1")]
        h2c.send_headers(sid, head)
        outgoing[sid] = [body, trailers]

    @staticmethod
    def _pump(h2c, outgoing):
        for sid in list(outgoing):
            body, trailers = outgoing[sid]
            while body:
                window = min(h2c.local_flow_control_window(sid), h2c.max_outbound_frame_size)
                if window <= 0:
                    break
                chunk, body = body[:window], body[window:]
                h2c.send_data(sid, chunk)
            outgoing[sid][0] = body
            if not body:
                if trailers:
                    h2c.send_headers(sid, trailers, end_stream=True)
                else:
                    h2c.send_data(sid, b"", end_stream=True)
                del outgoing[sid]
