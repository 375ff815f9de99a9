"""Custom trigger types: the provider-side handler interface and the handles users hold.

A worker that registers a trigger type (``III.register_trigger_type``) supplies a
:class:`TriggerHandler`. The engine then tells that worker about every binding of the type:
``register_trigger`` when a binding is created (or replayed) and ``unregister_trigger`` when it
goes away. The handler decides what "firing" means and fires by calling the bound function,
e.g. with ``iii.trigger({"function_id": config.function_id, "payload": ...})``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict

from . import _deprecations

__all__ = ["Trigger", "TriggerConfig", "TriggerHandler", "TriggerTypeRef"]

TConfig = TypeVar("TConfig")
C = TypeVar("C")
R = TypeVar("R")


class TriggerConfig(BaseModel, Generic[TConfig]):
    """One binding of a trigger type, as delivered to its :class:`TriggerHandler`.

    ``id`` is the binding (trigger) id, ``function_id`` the function to fire, ``config`` the
    binder's type-specific configuration, ``metadata`` the binder's metadata if any.
    ``namespace`` is only set by newer engines, for functions outside the default namespace.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    id: str
    function_id: str
    config: TConfig
    metadata: dict[str, Any] | None = None
    namespace: str | None = None


class TriggerHandler(ABC, Generic[TConfig]):
    """Provider-side logic of a custom trigger type.

    .. deprecated:: 0.25.0
        Custom trigger types are deprecated with ``III.register_trigger_type`` (iii-sdk 0.25.0
        replaces them by functions with an observe descriptor); they keep working.

    Implement both methods, either as plain methods or as coroutines. They are called on the
    SDK's event loop thread: a plain method should return quickly. An exception raised by
    ``register_trigger`` is reported to the engine as a failed trigger registration.
    """

    @abstractmethod
    def register_trigger(self, config: TriggerConfig[TConfig]) -> None | Awaitable[None]:
        """Start serving the binding described by ``config``."""

    @abstractmethod
    def unregister_trigger(self, config: TriggerConfig[TConfig]) -> None | Awaitable[None]:
        """Stop serving the binding with id ``config.id``."""


class Trigger:
    """Handle of a trigger binding; :meth:`unregister` removes it from the engine."""

    def __init__(self, unregister_fn: Callable[[], Any]) -> None:
        self._unregister_fn = unregister_fn
        self._done = False

    def unregister(self) -> None:
        """Remove the binding. Later calls do nothing."""
        if self._done:
            return
        self._done = True
        self._unregister_fn()


class _Binder(Protocol):
    """What a :class:`TriggerTypeRef` needs of its client (``III`` provides it). Declared here
    so that this module needs nothing of ``iii.types``, which imports it."""

    def register_trigger(self, trigger: dict[str, Any], /) -> Trigger: ...

    def register_function(
        self, function_id: str, handler: Callable[..., Any], /, *, description: str | None = None
    ) -> Any: ...


def _config_to_json(config: Any) -> Any:
    if isinstance(config, BaseModel):
        return config.model_dump(mode="json")
    return config


class TriggerTypeRef(Generic[C, R]):
    """Handle of a registered trigger type, returned by ``III.register_trigger_type``.

    .. deprecated:: 0.25.0
        With ``III.register_trigger_type``: its ``register_trigger`` / ``register_function``
        warn as in iii-sdk 0.25.0.

    ``config_cls`` is the pydantic model of the binding configuration and ``request_cls`` the
    model of the payload the provider sends to bound functions; both are informational here.
    """

    def __init__(
        self,
        iii: _Binder,
        trigger_type_id: str,
        config_cls: type[C] | None = None,
        request_cls: type[R] | None = None,
    ) -> None:
        self._iii = iii
        self._trigger_type_id = trigger_type_id
        self._config_cls = config_cls
        self._request_cls = request_cls

    @property
    def trigger_type_id(self) -> str:
        return self._trigger_type_id

    def register_trigger(
        self, function_id: str, config: C, metadata: dict[str, Any] | None = None
    ) -> Trigger:
        """Bind ``function_id`` to this trigger type with ``config`` (a model or plain JSON).

        .. deprecated:: 0.25.0
            Warns as ``III.register_trigger`` does (it is the same operation).
        """
        _deprecations.warn(_deprecations.REGISTER_TRIGGER, stacklevel=2, log_key="register_trigger")
        spec = {
            "type": self._trigger_type_id,
            "function_id": function_id,
            "config": _config_to_json(config),
            "metadata": metadata,
        }
        # The SDK's client has a non-warning entry point (the warning above is the user's).
        register = getattr(self._iii, "_register_trigger", None) or self._iii.register_trigger
        result: Trigger = register(spec)
        return result

    def register_function(
        self,
        function_id: str,
        handler: Callable[[R], Any] | Callable[[R], Awaitable[Any]],
        *,
        description: str | None = None,
    ) -> Any:
        """Register ``handler`` as function ``function_id`` (formats come from its hints).

        .. deprecated:: 0.25.0
            Every call warns (``DeprecationWarning``); use ``III.register_function``.
        """
        _deprecations.warn(_deprecations.TRIGGER_TYPE_REF_REGISTER_FUNCTION, stacklevel=2)
        return self._iii.register_function(function_id, handler, description=description)

    def __repr__(self) -> str:
        return f"TriggerTypeRef({self._trigger_type_id!r})"
