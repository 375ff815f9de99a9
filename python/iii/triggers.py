"""Custom trigger types: the provider-side handler interface and the handles users hold.

A worker that registers a trigger type (``III.register_trigger_type``) supplies a
:class:`TriggerHandler`. The engine then tells that worker about every binding of the type:
``register_trigger`` when a binding is created (or replayed) and ``unregister_trigger`` when it
goes away. The handler decides what "firing" means and fires by calling the bound function,
e.g. with ``iii.trigger({"function_id": config.function_id, "payload": ...})``.
"""

from ._triggers import (
    C,
    R,
    TConfig,
    Trigger,
    TriggerConfig,
    TriggerHandler,
    TriggerTypeRef,
)

__all__ = [
    "C",
    "R",
    "TConfig",
    "Trigger",
    "TriggerConfig",
    "TriggerHandler",
    "TriggerTypeRef",
]
