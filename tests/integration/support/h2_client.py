"""A python3-h2 client on one raw socket to turnout (h2c with prior
knowledge), for what curl and nghttp cannot do: many streams at once, a body
sent in pieces at chosen moments, trailers, resets, a client that never
returns window. Debian's python3-h2, so /usr/bin/python3.
"""

import socket
import time

import h2.config
import h2.connection
import h2.events
import h2.settings
from hpack import NeverIndexedHeaderTuple

DEADLINE_S = 10.0


class H2Client:
    """A python3-h2 client on one socket; collects each stream's events."""

    def __init__(self, port, window=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S)
        cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        self.conn = h2.connection.H2Connection(config=cfg)
        self.conn.initiate_connection()
        if window is not None:
            self.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
        self.flush()
        self.streams = {}  # id -> {"headers", "data", "trailers", "ended", "reset"}
        self.goaway = None
        self.remote_settings = {}
        self.closed = False
        self.auto_ack = True

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(self, path, method="GET", body=None, headers=(), trailers=None, end=True):
        sid = self.conn.get_next_available_stream_id()
        hdrs = [(":method", method), (":path", path), (":scheme", "http"),
                (":authority", "svc")] + list(headers)
        no_body = body is None and trailers is None
        self.conn.send_headers(sid, hdrs, end_stream=no_body and end)
        self.streams[sid] = {"headers": None, "data": b"", "trailers": None, "ended": False,
                             "reset": None}
        if body is not None:
            self.send_body(sid, body, end=trailers is None and end)
        if trailers is not None:
            self.conn.send_headers(sid, trailers, end_stream=True)
        self.flush()
        return sid

    def connect(self, authority, headers=()):
        """A plain CONNECT (RFC 9113 §8.5: :method and :authority only), its
        stream left open for the tunnel's DATA; python3-h2 sends one only
        with its outbound header checks off."""
        sid = self.conn.get_next_available_stream_id()
        self.conn.config.validate_outbound_headers = False
        try:
            self.conn.send_headers(sid, [(":method", "CONNECT"), (":authority", authority)]
                                   + list(headers))
        finally:
            self.conn.config.validate_outbound_headers = True
        self.streams[sid] = {"headers": None, "data": b"", "trailers": None, "ended": False,
                             "reset": None}
        self.flush()
        return sid

    def send_body(self, sid, body, end):
        # Respect the peer's flow-control window, pumping events meanwhile.
        view = memoryview(body)
        while view:
            room = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size)
            if room <= 0:
                self.pump_once()
                continue
            chunk = view[:room]
            self.conn.send_data(sid, bytes(chunk))
            view = view[room:]
            self.flush()
        if end:
            self.conn.end_stream(sid)
            self.flush()

    def pump_once(self, timeout=DEADLINE_S):
        self.sock.settimeout(timeout)
        data = self.sock.recv(65536)
        if not data:
            self.closed = True
            raise ConnectionError("closed by turnout")
        for ev in self.conn.receive_data(data):
            s = self.streams.get(getattr(ev, "stream_id", None))
            if isinstance(ev, h2.events.ResponseReceived):
                s["headers"] = dict(ev.headers)
                # The fields that came as never-indexed literals (RFC 7541 §6.2.3).
                s["never_indexed"] = [h[0] for h in ev.headers
                                      if isinstance(h, NeverIndexedHeaderTuple)]
            elif isinstance(ev, h2.events.DataReceived):
                s["data"] += ev.data
                if self.auto_ack:
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.TrailersReceived):
                s["trailers"] = dict(ev.headers)
            elif isinstance(ev, h2.events.StreamEnded):
                s["ended"] = True
            elif isinstance(ev, h2.events.StreamReset):
                if s is not None:
                    s["reset"] = ev.error_code
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self.goaway = ev
            elif isinstance(ev, h2.events.RemoteSettingsChanged):
                for code, change in ev.changed_settings.items():
                    self.remote_settings[code] = change.new_value
        self.flush()

    def wait(self, pred, deadline_s=DEADLINE_S):
        end = time.monotonic() + deadline_s
        while not pred():
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError("timed out waiting; streams=%r" % self.streams)
            self.pump_once(left)

    def done(self, sid):
        s = self.streams[sid]
        return s["ended"] or s["reset"] is not None

    def close(self):
        self.sock.close()
