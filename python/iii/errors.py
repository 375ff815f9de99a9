"""Exceptions raised by the SDK. Everything derives from :class:`IIIError`."""

from __future__ import annotations


class IIIError(Exception):
    """Base class of every error raised by the iii SDK."""


class IIIConnectionError(IIIError, ConnectionError):
    """The engine could not be reached, or the link to it was lost."""


class ConnectionLostError(IIIConnectionError):
    """The link dropped while the call was in flight; it may or may not have run."""


class NotConnectedError(IIIConnectionError):
    """The client is not connected and will not be (it gave up, or the engine refused it)."""


class RegistrationRejectedError(NotConnectedError):
    """The engine refused this worker's registration (``registrationrejected``), e.g. because
    another live worker already owns ``(namespace, worker_name)``; as in iii-sdk 0.25.0.

    Fatal: the client does not reconnect, its state is ``failed``, and
    ``register_worker()``, ``_wait_until_connected()`` and every call raise it. A
    :class:`NotConnectedError` (so a ``ConnectionError``), which is what code written for
    0.11 catches here. ``code``, ``namespace``, ``worker_name`` and ``owner_worker_id`` are
    the engine's (``""`` when it did not say).
    """

    def __init__(self, code: str, namespace: str, worker_name: str, owner_worker_id: str) -> None:
        super().__init__(
            f"{code}: worker '{worker_name}' rejected in namespace '{namespace}' (owned by '{owner_worker_id}')"
        )
        self.code = code
        self.namespace = namespace
        self.worker_name = worker_name
        self.owner_worker_id = owner_worker_id


class OfflineQueueFullError(NotConnectedError):
    """The client is reconnecting and its queue of outgoing messages is full."""


class ClientShutdownError(IIIConnectionError):
    """``shutdown()`` was called on the client."""


class ChannelError(IIIConnectionError):
    """A channel socket could not be opened, or failed while streaming."""


class InvocationError(IIIError):
    """The called function (or the engine) answered with an error.

    ``code`` is machine-readable (``invocation_failed``, ``function_not_found``, ...),
    ``message`` is for humans, ``stacktrace`` is the remote traceback when there is one.
    ``function_id`` and ``invocation_id`` (iii-sdk 0.25.0 keywords) name the call when known,
    else ``None``.
    """

    def __init__(
        self,
        code: str,
        message: str,
        stacktrace: str | None = None,
        *,
        function_id: str | None = None,
        invocation_id: str | None = None,
    ) -> None:
        super().__init__(code, message, stacktrace)
        self.code = code
        self.message = message
        self.stacktrace = stacktrace
        self.function_id = function_id
        self.invocation_id = invocation_id

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def __repr__(self) -> str:
        return f"InvocationError(code={self.code!r}, message={self.message!r})"


class InvocationTimeoutError(InvocationError, TimeoutError):
    """No result arrived within the call's timeout.

    Both generations of the official SDK's handlers catch it: 0.11 code catches the built-in
    ``TimeoutError``, 0.25 code an ``InvocationError`` with ``code == "TIMEOUT"``.
    ``invocation_id`` is the call's id (on the wire, or of a local call), ``None`` when
    unknown; ``str()`` is the message alone.
    """

    def __init__(
        self, message: str, function_id: str = "", timeout_ms: int = 0, *, invocation_id: str | None = None
    ) -> None:
        super().__init__("TIMEOUT", message, invocation_id=invocation_id)
        self.function_id: str | None = function_id
        self.timeout_ms = timeout_ms

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"InvocationTimeoutError({self.message!r}, function_id={self.function_id!r})"


class QueueUnavailableError(InvocationError):
    """An enqueue found no queue to take the message.

    On engines after v0.11.0 the ``enqueue`` action goes through ``engine::queue::enqueue``,
    which the standalone queue worker provides; without it every enqueue fails this way.
    ``code`` stays the engine's (``enqueue_error``).
    """


def enqueue_error(exc: InvocationError) -> InvocationError:
    """The error to raise for a failed enqueue: :class:`QueueUnavailableError` when the engine
    says no queue provider is installed, else ``exc`` itself."""
    text = exc.message or ""
    missing = "No queue provider" in text or ("engine::queue::enqueue" in text and "not found" in text)
    if exc.code != "enqueue_error" or not missing or isinstance(exc, QueueUnavailableError):
        return exc
    message = f"no queue worker is installed on the engine (engine::queue::enqueue is missing): {text}"
    return QueueUnavailableError(
        exc.code, message, exc.stacktrace, function_id=exc.function_id, invocation_id=exc.invocation_id
    )


class ProtocolError(IIIError):
    """The engine sent something this SDK cannot make sense of."""


class PayloadError(IIIError, ValueError):
    """A payload or result cannot be sent."""


class PayloadNotSerializableError(PayloadError, TypeError):
    """A value in the payload has no JSON representation."""


class PayloadTooLargeError(PayloadError, InvocationError):
    """The encoded message is larger than ``InitOptions.max_message_size``. Also an
    :class:`InvocationError` with code ``payload_too_large``, as iii-sdk 0.25.0 raises it."""

    def __init__(
        self,
        message: str,
        size: int = 0,
        limit: int = 0,
        *,
        function_id: str | None = None,
        invocation_id: str | None = None,
    ) -> None:
        InvocationError.__init__(
            self, "payload_too_large", message, function_id=function_id, invocation_id=invocation_id
        )
        self.size = size
        self.limit = limit


# iii-sdk 0.25.0 addition (defined with the observe family, re-exported here as there).
from ._observe import ObserveRejection  # noqa: E402

__all__ = [
    "ObserveRejection",
    "RegistrationRejectedError",
    "IIIError",
    "IIIConnectionError",
    "ConnectionLostError",
    "NotConnectedError",
    "OfflineQueueFullError",
    "ClientShutdownError",
    "ChannelError",
    "InvocationTimeoutError",
    "InvocationError",
    "QueueUnavailableError",
    "ProtocolError",
    "PayloadError",
    "PayloadNotSerializableError",
    "PayloadTooLargeError",
]
