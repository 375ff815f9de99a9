"""Official import path ``iii.observe_types`` (iii-sdk 0.25.0): the public types of observe.
Re-export shim (see :mod:`iii._observe`); observing itself is ``III.observe`` and
``register_function(..., observe=ObserveHooks(...))``.
"""

from ._observe import (
    Caller,
    CallerParent,
    Capture,
    Delivery,
    Filter,
    Observed,
    ObserveHook,
    ObserveHooks,
    ObserveReason,
    ObserverOptions,
    ObserverState,
    ObserveSource,
    Target,
    TargetRef,
)

__all__ = [
    "Caller",
    "CallerParent",
    "Capture",
    "Delivery",
    "Filter",
    "ObserveHook",
    "ObserveHooks",
    "ObserveReason",
    "ObserveSource",
    "Observed",
    "ObserverOptions",
    "ObserverState",
    "Target",
    "TargetRef",
]
