"""A loopback TCP proxy for fault injection: cut, stall or reset the link between a worker
and the engine."""

from __future__ import annotations

import socket
import struct
import threading


class Proxy:
    """Forwards ``127.0.0.1:<port>`` to ``target``. Use ``url`` as the worker's engine URL."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._flowing = threading.Event()
        self._flowing.set()
        #: When set, the next chunk from the engine is cut after this many bytes and the link reset.
        self.reset_after_bytes: int | None = None
        self.accepted = 0
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                _reset(client)
                continue
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._pairs.append((client, upstream))
                self.accepted += 1
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, from_engine: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                self._flowing.wait()
                if from_engine and self.reset_after_bytes is not None:
                    cut, self.reset_after_bytes = self.reset_after_bytes, None
                    dst.sendall(data[:cut])
                    _reset(src)
                    _reset(dst)
                    return
                dst.sendall(data)
        except OSError:
            pass
        _shut_down(src, dst)

    def cut(self) -> None:
        """Resets every open link (TCP RST, no close handshake); new connections still pass."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for a, b in pairs:
            _reset(a)
            _reset(b)

    def stall(self) -> None:
        """Stops forwarding (links stay open): a half-open, silent connection."""
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def close(self) -> None:
        self._closed = True
        self._flowing.set()
        self._listener.close()
        self.cut()


def _reset(s: socket.socket) -> None:
    # shutdown() acts at once even while a pump thread is blocked in recv() on the socket
    # (close() alone would wait for that recv); the zero linger then turns close() into a RST.
    for step in (
        lambda: s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)),
        lambda: s.shutdown(socket.SHUT_RDWR),
        s.close,
    ):
        try:
            step()
        except OSError:
            pass


class ConnectProxy:
    """An HTTP proxy that only tunnels (``CONNECT host:port``), like the forward proxies of
    corporate networks. ``targets`` lists what it was asked to reach, in order."""

    def __init__(self) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self.targets: list[str] = []
        self.authorizations: list[str | None] = []
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._tunnel, args=(client,), daemon=True).start()

    def _tunnel(self, client: socket.socket) -> None:
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            byte = client.recv(1)
            if not byte:
                client.close()
                return
            head += byte
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        auth = next(
            (
                v.strip()
                for n, _, v in (line.partition(":") for line in lines[1:])
                if n.lower() == "proxy-authorization"
            ),
            None,
        )
        self.targets.append(target)
        self.authorizations.append(auth)
        host, _, port = target.rpartition(":")
        try:
            if method != "CONNECT":
                raise OSError("not a CONNECT")
            upstream = socket.create_connection((host.strip("[]"), int(port)))
        except (OSError, ValueError):
            client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            client.close()
            return
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self._open += [client, upstream]
        for src, dst in ((client, upstream), (upstream, client)):
            threading.Thread(target=_forward, args=(src, dst), daemon=True).start()

    def close(self) -> None:
        self._listener.close()
        for s in self._open:
            _reset(s)


def _shut_down(*sockets: socket.socket) -> None:
    """Ends both directions of each socket, ignoring ones already gone."""
    for s in sockets:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _forward(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    _shut_down(src, dst)
