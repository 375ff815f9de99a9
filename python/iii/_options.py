"""Configuration objects accepted by :func:`iii.register_worker` and friends.

All of these are plain dataclasses so they can be built with keyword arguments and compared
by value. Field names and defaults follow the public API of the official ``iii-sdk`` 0.11.0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "DEFAULT_INVOCATION_TIMEOUT_MS",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_RECONNECTION_CONFIG",
    "MAX_QUEUE_SIZE",
    "ConnectionStateCallback",
    "FunctionRef",
    "IIIConnectionState",
    "InitOptions",
    "OtelConfig",
    "ReconnectionConfig",
    "TelemetryOptions",
]

#: Connection states reported by ``III.get_connection_state()``.
IIIConnectionState = Literal["disconnected", "connecting", "connected", "reconnecting", "failed"]

#: Receives the new state on every connection state change.
ConnectionStateCallback = Callable[["IIIConnectionState"], None]

#: Largest WebSocket message the client accepts from the engine (64 MiB).
DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024 * 1024

#: Default timeout of ``trigger()`` calls (``InitOptions.invocation_timeout_ms``).
DEFAULT_INVOCATION_TIMEOUT_MS = 30000

#: Default number of calls and results kept while disconnected (``offline_queue_limit``).
MAX_QUEUE_SIZE = 1000


@dataclass
class ReconnectionConfig:
    """How the client retries after losing its engine connection.

    The delay before attempt ``n`` (starting at 0) is
    ``min(initial_delay_ms * backoff_multiplier ** n, max_delay_ms)``, spread by up to
    ``jitter_factor`` of itself in either direction. ``max_retries = -1`` retries forever.
    """

    initial_delay_ms: int = 1000
    max_delay_ms: int = 30000
    backoff_multiplier: float = 2.0
    jitter_factor: float = 0.3
    max_retries: int = -1


#: The reconnection policy used when ``InitOptions.reconnection_config`` is ``None``.
DEFAULT_RECONNECTION_CONFIG = ReconnectionConfig()


@dataclass
class TelemetryOptions:
    """Descriptive metadata sent to the engine when the worker announces itself."""

    language: str | None = None
    project_name: str | None = None
    framework: str | None = None
    amplitude_api_key: str | None = None


@dataclass
class OtelConfig:
    """OpenTelemetry settings. ``None`` fields fall back to environment variables or defaults.

    - ``enabled``: on unless ``OTEL_ENABLED`` is ``false``/``0``/``no``/``off``.
    - ``service_name``: ``OTEL_SERVICE_NAME`` or ``"iii-python-sdk"``.
    - ``service_version``: ``SERVICE_VERSION`` or ``"unknown"``.
    - ``service_namespace``: ``SERVICE_NAMESPACE``; ``service_instance_id``:
      ``SERVICE_INSTANCE_ID`` or a random UUID. ``OTEL_RESOURCE_ATTRIBUTES`` adds resource
      attributes.
    - ``engine_ws_url``: telemetry goes on the worker's own connection unless this names
      another engine (then on a telemetry-only connection); ``init_otel()`` without a worker
      uses it, else ``III_URL``, else ``"ws://localhost:49134"``.
    - ``logs_enabled``: on whenever OpenTelemetry is on.
    - ``logs_flush_interval_ms``: 100 ms when unset (``OTEL_LOGS_FLUSH_INTERVAL_MS``).
    - ``logs_batch_size``: this many waiting records are sent at once without waiting for the
      interval (``OTEL_LOGS_BATCH_SIZE``; 512 when unset). Records written within one interval
      share a frame, unlike the official SDK, which sent one frame per record.
    - ``spans_flush_interval_ms``: how long finished spans wait before they are sent
      (``OTEL_SPANS_FLUSH_INTERVAL_MS``; 100 ms when unset, as iii-helpers 0.25.0).
    - ``engine_ws_headers``: the upgrade headers of the telemetry-only connection that an
      ``engine_ws_url`` naming another engine opens (it dials ``<engine_ws_url>/otel``, or the
      URL as given when the engine has no ``/otel``, as v0.11.0). Both fields are 0.25.0's,
      after the 0.11.0 fields so that positional 0.11.0 code keeps working.
    """

    enabled: bool | None = None
    service_name: str | None = None
    service_version: str | None = None
    service_namespace: str | None = None
    service_instance_id: str | None = None
    engine_ws_url: str | None = None
    fetch_instrumentation_enabled: bool = True
    logs_enabled: bool | None = None
    logs_flush_interval_ms: int | None = None
    logs_batch_size: int | None = None
    metrics_enabled: bool = True
    metrics_export_interval_ms: int = 60000
    spans_flush_interval_ms: int | None = None
    engine_ws_headers: dict[str, str] | None = None


@dataclass
class InitOptions:
    """Options for a worker connection.

    ``worker_name`` defaults to ``"<hostname>:<pid>"`` when left as ``None``.
    ``invocation_timeout_ms`` is the default timeout of ``trigger()`` calls.
    ``otel`` may be an :class:`OtelConfig` or a dict with the same keys.
    ``headers`` are extra HTTP headers sent with the WebSocket upgrade request.

    Additions of this implementation (not in the official SDK):

    - ``max_message_size``: largest message sent or received, in bytes (64 MiB). A payload
      over it raises ``PayloadTooLargeError`` before anything is sent.
    - ``connect_timeout_ms``: how long one connection attempt may take (10 s).
    - ``ping_interval_ms`` / ``idle_timeout_ms``: WebSocket pings are sent every
      ``ping_interval_ms``; a link silent for ``idle_timeout_ms`` is treated as dead and
      replaced (10 s / 30 s), so a half-open connection is noticed within seconds.
    - ``offline_queue_limit``: calls and results kept while disconnected (1000); beyond it
      calls fail with ``OfflineQueueFullError``.

    ``namespace`` (as in the newer official SDKs; engines after v0.11.0): the namespace this
    worker registers in, else ``III_NAMESPACE``, else the engine's ``default``. Calls and
    trigger bindings follow it unless they name another namespace.

    ``worker_description`` (iii-sdk 0.25.0): a one-line summary of the worker, sent to the
    engine as the worker's ``description`` (shown by ``engine::workers::list`` / ``info``).
    Fields are kept in the 0.11.0 order, so 0.11 code that builds ``InitOptions``
    positionally keeps working; pass the 0.25 additions by keyword.
    """

    worker_name: str | None = None
    enable_metrics_reporting: bool = True
    invocation_timeout_ms: int = DEFAULT_INVOCATION_TIMEOUT_MS
    reconnection_config: ReconnectionConfig | None = None
    otel: OtelConfig | dict[str, Any] | None = None
    headers: dict[str, str] | None = None
    telemetry: TelemetryOptions | None = None
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    connect_timeout_ms: int = 10000
    ping_interval_ms: int = 10000
    idle_timeout_ms: int = 30000
    offline_queue_limit: int = MAX_QUEUE_SIZE
    namespace: str | None = None
    worker_description: str | None = None


def _not_observed() -> bool:
    return False


def _no_observers() -> list[Any]:
    return []


@dataclass
class FunctionRef:
    """Handle returned by ``register_function``: the function id and a way to remove it, and
    (iii-sdk 0.25.0) whether it is observed and by which observers."""

    id: str
    unregister: Callable[[], None]
    _is_observed: Callable[[], bool] = field(default=_not_observed, repr=False, compare=False)
    _observers: Callable[[], list[Any]] = field(default=_no_observers, repr=False, compare=False)

    def is_observed(self) -> bool:
        """Whether any observer of this function is active (one load in the core: check it
        before building an event nobody receives)."""
        return self._is_observed()

    def observers(self) -> list[Any]:
        """The active observers (:class:`iii.Observer`), as this owner sees them."""
        return self._observers()
