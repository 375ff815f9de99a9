"""An in-process iii engine for tests and examples: :class:`Engine`.

It implements the engine behaviour the SDK relies on (worker registration, function routing,
void and enqueue calls, trigger types, listings, notifications, channels, ``stream::*`` and
``state::*`` with custom-stream redirection, HTTP-invoked functions over plain ``http://``) as
observed on the real engine v0.11.0, with ``generation="head"`` as on the newer engines
(docs/protocol.md Part B), or with ``generation="0.25"`` as on engine 0.25. It is a test tool, not a
production engine: run the real iii engine for that.

    with Engine() as engine:
        iii = register_worker(engine.url)

``python -m iii.testing --port 49134`` runs one in the foreground.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
from typing import Any

from ._iii import TestEngine

#: Engine generations the test engine can behave like.
GENERATIONS = ("v0.11", "head", "0.25")
#: Other spellings accepted for ``generation``.
_ALIASES = {"0.11": "v0.11", "v0.25": "0.25"}


class Engine:
    """A test engine on a free loopback port (or ``port``). Stop it with :meth:`close`.

    ``queues`` declares the queues usable with the ``enqueue`` action (names, or dicts with
    ``name``, ``max_retries``, ``backoff_ms``, ``concurrency``; default: one named
    ``default``). ``functions_poll_interval_ms`` is how often ``engine::functions-available``
    looks for changes (5000 on the real engine).

    ``generation="head"`` (or ``head_protocol=True``) behaves like the engines after v0.11.0
    (docs/protocol.md Part B): ``workerregistered`` carries a ``reattach_token``, a matching
    ``reattach`` message cleans up the previous connection first, a worker ``name`` or a
    function id already held by another live worker gets ``registrationrejected``
    (``WORKER_NAMESPACE_CONFLICT`` then closes the connection; ``FUNCTION_NAMESPACE_CONFLICT``
    only refuses the function); registrations wait for ``engine::workers::register`` or
    ``registration_grace_ms``; the listings take HEAD's functions and shapes; calls resolve in
    their ``namespace``; and ``enqueue`` goes through ``engine::queue::enqueue``, which some
    worker must provide (else ``enqueue_error``: no queue provider), or, with
    ``queue_worker=True``, the engine's own queues as if the standalone queue worker were
    installed. Ids are unique across
    namespaces here, unlike on the real engine.

    ``generation="0.25"`` (or ``"v0.25"``) is HEAD plus engine 0.25's behaviours outside
    observers: ``workerregistered`` is sent once the connection's first
    ``engine::workers::register`` was accepted (not at connect) and carries the engine's
    ``features`` (``observe.v1``, ``local-dispatch.v1``); the features a worker declared there are
    recorded (:meth:`worker_features`); forwarded calls carry the ``caller`` stamped with the
    calling worker's id and name, its ``observe_depth`` (when above 0) and its ``metadata``; the
    upgrade response has ``x-iii-capabilities: tcp-nodelay``; ``/otel`` takes telemetry-only
    sockets; and observers are routed as the real engine routes them (docs/protocol.md C.9-C.25):
    filters through ``iii-filter``, the ``Observed`` envelope, owner delivery, local dispatch
    confirmed in ``functionregistered``, and the reports of locally dispatched calls.

    ``generation="head"`` and later also apply ``stream::update`` / ``state::update`` by the
    newer engines' rules (``append``, nested paths, ops that cannot apply reported in
    ``errors``). Every generation has ``publish`` to ``subscribe`` triggers.

    ``token`` (any generation): every WebSocket upgrade must carry ``Authorization: Bearer
    <token>``, else it is refused with HTTP 401. A blank token is no token.

    ``observer_grace_ms`` (0.25): how long the observers of a worker that went away are kept
    (``suspended``) for it to come back; 30 s as the real engine keeps them.
    """

    def __init__(
        self,
        port: int = 0,
        *,
        host: str = "127.0.0.1",
        queues: list[str | dict[str, Any]] | None = None,
        functions_poll_interval_ms: int = 5000,
        head_protocol: bool = False,
        generation: str = "v0.11",
        registration_grace_ms: int = 5000,
        queue_worker: bool = False,
        token: str | None = None,
        observer_grace_ms: int = 30000,
    ) -> None:
        generation = _ALIASES.get(generation, generation)
        if generation not in GENERATIONS:
            raise ValueError(f"generation must be one of {GENERATIONS}, not {generation!r}")
        if head_protocol and generation == "v0.11":
            generation = "head"
        self.generation = generation
        self._engine = TestEngine(
            host,
            port,
            queues,
            functions_poll_interval_ms,
            head_protocol,
            registration_grace_ms,
            queue_worker,
            generation=generation,
            token=token,
            observer_grace_ms=observer_grace_ms,
        )
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

    def close_all_gracefully(self) -> None:
        """Sends every worker a WebSocket Close frame (code 1000) and drops the connection, like
        a proxy or an engine shutting down cleanly. Returns once they are cleaned up (at most
        about 5 s); the engine keeps listening."""
        self._engine.close_all_gracefully()

    def pause_reading(self, paused: bool = True) -> None:
        """Stops (or, with ``False``, resumes) reading every worker socket without closing it:
        calls, protocol pings and WebSocket pings go unanswered, so clients see a stalled link.
        Frames sent meanwhile are handled after resuming. Reset by :meth:`restart`."""
        self._engine.pause_reading(paused)

    def channel_count(self) -> int:
        """Channels created with ``engine::channels::create`` (they live until restart)."""
        return self._engine.channel_count()

    def connection_count(self) -> int:
        return self._engine.connection_count()

    def worker_ids(self) -> list[str]:
        return self._engine.worker_ids()

    def function_ids(self) -> list[str]:
        return self._engine.function_ids()

    def trigger_ids(self) -> list[str]:
        return self._engine.trigger_ids()

    def worker_features(self) -> dict[str, list[str]]:
        """Worker id -> the ``features`` it declared in ``engine::workers::register``, for the
        live workers that declared any (an empty list when the value was not a list)."""
        return dict(self._engine.worker_features())

    def received_kinds(self) -> list[str]:
        """Message types received from workers, oldest first."""
        return self._engine.received_kinds()

    def observed_items(self) -> list[dict[str, Any]]:
        """The items of the ``invocationsobserved`` reports workers sent (observed local calls
        and owners' emits), oldest first (the last 1000)."""
        return [json.loads(item) for item in self._engine.reported_items()]

    def local_stats(self) -> dict[str, tuple[int, int]]:
        """What workers reported in ``localinvocationstats``, summed per function:
        ``{function_id: (calls, failed calls)}``."""
        return {fid: (calls, errors) for fid, calls, errors in self._engine.local_stats()}

    def logs(self) -> list[str]:
        return self._engine.logs()

    def upgrade_requests(self) -> list[tuple[str, dict[str, str]]]:
        """Path and query, and headers (names in lower case), of every WebSocket upgrade so far,
        oldest first: worker links and channel ends."""
        return [(resource, dict(headers)) for resource, headers in self._engine.upgrade_requests()]

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
    parser.add_argument(
        "--generation",
        choices=GENERATIONS + tuple(_ALIASES),
        default="v0.11",
        help="behave like this engine generation",
    )
    parser.add_argument("--head-protocol", action="store_true", help="at least --generation head")
    parser.add_argument("--token", help="require 'Authorization: Bearer TOKEN' on every upgrade")
    parser.add_argument(
        "--observer-grace-ms", type=int, default=30000, help="keep a departed worker's observers this long"
    )
    args = parser.parse_args(argv)
    engine = Engine(
        args.port,
        host=args.host,
        queues=args.queue,
        generation=args.generation,
        head_protocol=args.head_protocol,
        token=args.token,
        observer_grace_ms=args.observer_grace_ms,
    )
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
