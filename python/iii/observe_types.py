"""Official import path ``iii.observe_types`` (iii-sdk 0.25.0): the public types of observe.
Re-export shim (see :mod:`iii._observe`). These are plain types; observing itself
(``iii.observe``, observe hooks taking effect) is not implemented by this SDK yet.
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
