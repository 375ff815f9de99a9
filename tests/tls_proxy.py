"""A TLS-terminating reverse proxy for the tests, like the one production engines sit behind:
``wss://localhost:<port>`` in front of a plain ``ws://`` engine."""

from __future__ import annotations

import asyncio
import ssl
import threading
from concurrent.futures import Future

from pki import Issued


class TlsProxy:
    """Serves TLS with ``identity`` on ``127.0.0.1:<port>`` and forwards plaintext to
    ``target_host:target_port``. ``cut()`` resets every open link; ``hold()`` keeps what the
    engine sends until ``release()`` writes it in one piece. ``accepted`` counts TCP
    connections, whether their handshake succeeded or not."""

    def __init__(self, identity: Issued, target_port: int, target_host: str = "127.0.0.1") -> None:
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(identity.cert, identity.key)
        self._target = (target_host, target_port)
        self._loop = asyncio.new_event_loop()
        self._transports: set[asyncio.BaseTransport] = set()
        self.accepted = 0
        self._held: dict[asyncio.StreamWriter, bytearray] | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server = self._call(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port: int = self._server.sockets[0].getsockname()[1]

    def url(self, host: str = "localhost") -> str:
        return f"wss://{host}:{self.port}"

    def _call(self, coro):  # type: ignore[no-untyped-def]
        future: Future = asyncio.run_coroutine_threadsafe(coro, self._loop)  # type: ignore[type-arg]
        return future.result(10)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # TLS is started here, not by the server, so refused handshakes are counted too.
        self.accepted += 1
        try:
            await writer.start_tls(self._context, ssl_handshake_timeout=5)
        except (OSError, ssl.SSLError, asyncio.TimeoutError):
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        pair = (writer.transport, up_writer.transport)
        self._transports.update(pair)
        try:
            await asyncio.gather(
                self._pump(reader, up_writer, down=False),
                self._pump(up_reader, writer, down=True),
                return_exceptions=True,
            )
        except asyncio.CancelledError:
            pass  # closing
        for t in pair:
            self._transports.discard(t)
            t.abort()

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, down: bool) -> None:
        try:
            while data := await src.read(65536):
                if down and self._held is not None:
                    self._held.setdefault(dst, bytearray()).extend(data)
                    continue
                dst.write(data)
                await dst.drain()
        finally:
            dst.transport.abort()

    def hold(self) -> None:
        """Keeps what the engine sends to the workers from now on."""

        async def start() -> None:
            self._held = {}

        self._call(start())

    def held_bytes(self) -> int:
        async def count() -> int:
            return sum(map(len, (self._held or {}).values()))

        return int(self._call(count()))

    def release(self) -> None:
        """Writes what was held, each link's in one write, and stops holding."""

        async def flush() -> None:
            held, self._held = self._held or {}, None
            for dst, data in held.items():
                dst.write(bytes(data))

        self._call(flush())

    def cut(self) -> None:
        """Resets every open link; new connections still pass."""

        async def abort_all() -> None:
            for t in list(self._transports):
                t.abort()

        self._call(abort_all())

    def close(self) -> None:
        async def stop() -> None:
            self._server.close()
            for t in list(self._transports):
                t.abort()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self._call(stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def main() -> None:
    """``python tests/tls_proxy.py <target_port> <dir>``: makes a CA and a certificate for
    localhost in ``dir`` (``dir/iii-bench-ca.pem`` is the CA), serves until stdin closes, and
    prints ``listening <port>`` first. Used by the wss benchmark."""
    import sys
    from pathlib import Path

    from pki import Authority

    target_port, directory = int(sys.argv[1]), Path(sys.argv[2])
    identity = Authority(directory, "iii-bench").issue("localhost", ["localhost", "127.0.0.1"])
    proxy = TlsProxy(identity, target_port)
    print(f"listening {proxy.port}", flush=True)
    sys.stdin.read()
    proxy.close()


if __name__ == "__main__":
    main()
