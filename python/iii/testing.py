"""An in-process iii engine for tests and examples: :class:`Engine`.

It implements the engine behaviour the SDK relies on (worker registration, function routing,
void and enqueue calls, trigger types, listings, notifications) as observed on the real engine
v0.11.0. It is a test tool, not a production engine: run the real iii engine for that.

    with Engine() as engine:
        iii = register_worker(engine.url)

``python -m iii.testing --port 49134`` runs one in the foreground.
"""

from __future__ import annotations

import argparse
import signal
import threading
from typing import Any

from ._iii import TestEngine


class Engine:
    """A test engine on a free loopback port (or ``port``). Stop it with :meth:`close`."""

    def __init__(
        self,
        port: int = 0,
        *,
        host: str = "127.0.0.1",
        queues: list[str | dict[str, Any]] | None = None,
        functions_poll_interval_ms: int = 5000,
    ) -> None:
        self._engine = TestEngine(host, port, queues, functions_poll_interval_ms)
        self._closed = False

    @property
    def url(self) -> str:
        """``ws://host:port`` to pass to :func:`iii.register_worker`."""
        return self._engine.url

    @property
    def port(self) -> int:
        return self._engine.port

    def stop(self) -> None:
        """Drops every connection abruptly and stops listening, like a crashed engine."""
        self._engine.stop()

    def restart(self) -> None:
        """Listens again on the same port with empty state, like a restarted engine."""
        self._engine.restart()

    def disconnect_all(self) -> None:
        """Drops every worker connection abruptly; the engine keeps listening."""
        self._engine.disconnect_all()

    def connection_count(self) -> int:
        return self._engine.connection_count()

    def worker_ids(self) -> list[str]:
        return self._engine.worker_ids()

    def function_ids(self) -> list[str]:
        return self._engine.function_ids()

    def trigger_ids(self) -> list[str]:
        return self._engine.trigger_ids()

    def received_kinds(self) -> list[str]:
        """Message types received from workers, oldest first."""
        return self._engine.received_kinds()

    def logs(self) -> list[str]:
        return self._engine.logs()

    def dead_letters(self, queue: str = "default") -> list[str]:
        return self._engine.dead_letters(queue)

    def send_raw(self, worker_id: str, frame: str | bytes) -> bool:
        """Sends one raw frame (text for ``str``, binary for ``bytes``) to a worker."""
        if isinstance(frame, bytes):
            return self._engine.send_raw_binary(worker_id, frame)
        return self._engine.send_raw(worker_id, frame)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._engine.stop()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the iii test engine (not a production engine).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=49134)
    parser.add_argument("--queue", action="append", help="queue name to declare (default: 'default')")
    args = parser.parse_args(argv)
    engine = Engine(args.port, host=args.host, queues=args.queue)
    print(f"iii test engine listening on {engine.url}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    engine.close()


if __name__ == "__main__":
    main()
