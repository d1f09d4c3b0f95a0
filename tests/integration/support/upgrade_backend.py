"""An HTTP/1.1 origin that upgrades every request and then echoes bytes.

It answers any request head with 101 Switching Protocols (Upgrade:
websocket) and then sends back each chunk it reads as b"echo:" + chunk;
with upgrade=False it is a plain TCP echo from the first byte (the far end
of a CONNECT that turnout terminates).
When the client ends its side (a FIN, or close_notify over TLS) it sends
b"eof:<bytes it received after the head>" and closes: a test sees that a
half-close went through a tunnel and that no byte was lost. With
`tls_context` (an ssl.SSLContext for the server side) it speaks TLS.
"""

import socket
import threading

from turnout_process import TurnoutProcess

TIMEOUT_S = 10


class UpgradeEchoBackend:
    def __init__(self, tls_context=None, upgrade=True):
        self.tls_context = tls_context
        self.upgrade = upgrade
        self.connections = 0
        self.heads = []  # the request heads it upgraded, as bytes
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._handle, args=(c,), daemon=True).start()

    def _handle(self, c):
        c.settimeout(TIMEOUT_S)
        try:
            self.connections += 1
            if self.tls_context is not None:
                c = self.tls_context.wrap_socket(c, server_side=True)
            rest = b""
            if self.upgrade:
                data = b""
                while b"\r\n\r\n" not in data:
                    d = c.recv(4096)
                    if not d:
                        return
                    data += d
                head, rest = data.split(b"\r\n\r\n", 1)
                self.heads.append(head)
                c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          b"Connection: Upgrade\r\n\r\n")
            received = len(rest)
            if rest:
                c.sendall(b"echo:" + rest)
            while True:
                d = c.recv(65536)
                if not d:
                    break
                received += len(d)
                c.sendall(b"echo:" + d)
            c.sendall(b"eof:%d" % received)
        except OSError:
            pass
        finally:
            c.close()

    def stop(self):
        self.stopping = True
        self.sock.close()
        self.thread.join(timeout=2)


def recv_until(sock, marker, limit=65536):
    """Reads from `sock` until `marker` is in what was read, EOF or `limit`."""
    data = b""
    while marker not in data and len(data) < limit:
        d = sock.recv(4096)
        if not d:
            break
        data += d
    return data


def recv_all(sock):
    """Reads from `sock` until EOF."""
    data = b""
    while True:
        d = sock.recv(65536)
        if not d:
            return data
        data += d


def h1_connect(port, target, early=b""):
    """Sends an authority-form CONNECT for `target` (and `early` right
    behind it) to 127.0.0.1:port; returns (socket, head, bytes after it)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S)
    s.sendall(b"CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target) + early)
    data = recv_until(s, b"\r\n\r\n")
    head, _, rest = data.partition(b"\r\n\r\n")
    return s, head, rest


def expect_echo(testcase, s, got, payload):
    """Reads from `s` (after `got`) until the echo of `payload` has arrived:
    b"echo:" before each chunk the far end read (`payload` has no b"echo:")."""
    data = got
    while len(data.replace(b"echo:", b"")) < len(payload):
        d = s.recv(65536)
        testcase.assertTrue(d, "closed after %r" % data[-64:])
        data += d
    testcase.assertTrue(data.startswith(b"echo:"), data[:64])
    testcase.assertEqual(data.replace(b"echo:", b""), payload)


def check_connect_tunnel(testcase, port, target, payload):
    """An HTTP/1.1 CONNECT for `target` through 127.0.0.1:port to a TCP echo
    (UpgradeEchoBackend(upgrade=False)): a 2xx without framing fields (RFC
    9110 §9.3.6), the bytes sent right behind the CONNECT and then `payload`
    echoed, and the client's FIN reaching the far end, whose count and FIN
    come back."""
    s, head, rest = h1_connect(port, target, early=b"early")
    try:
        testcase.assertTrue(head.startswith(b"HTTP/1.1 200 "), head)
        lower = head.lower()
        testcase.assertNotIn(b"content-length", lower)
        testcase.assertNotIn(b"transfer-encoding", lower)
        expect_echo(testcase, s, rest, b"early")
        s.sendall(payload)
        expect_echo(testcase, s, b"", payload)
        s.shutdown(socket.SHUT_WR)
        testcase.assertEqual(recv_all(s), b"eof:%d" % (5 + len(payload)))
    finally:
        s.close()


class UpgradeProxyCase:
    """A unittest mixin: an UpgradeEchoBackend and a turnout in front of it.

    Subclasses set TURNOUT_BINARY() and bootstrap_yaml(backend_port), and may
    override backend_tls() to give the origin an ssl.SSLContext. Sets
    cls.backend, cls.proxy and cls.port (the "ingress" listener).
    """

    @classmethod
    def backend_tls(cls):
        return None

    @classmethod
    def setUpClass(cls):
        cls.backend = UpgradeEchoBackend(cls.backend_tls())
        try:
            cls.proxy = TurnoutProcess(cls.TURNOUT_BINARY(),
                                       cls.bootstrap_yaml(cls.backend.port)).start()
        except Exception:
            cls.backend.stop()
            raise
        cls.port = cls.proxy.port("ingress")

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        cls.backend.stop()
