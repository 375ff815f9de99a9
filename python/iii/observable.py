"""Official import path ``iii.observable`` (iii-sdk 0.25.0): an observer as the observed
function's owner sees it, and the owner's hooks. Re-export shim (see :mod:`iii._observe` and
:mod:`iii._owner`)."""

from ._observe import ObserveHook, ObserveHooks, Observer, ObserveRejection, strip_caller
from ._observe import log as log
from ._owner import HOOK_TIMEOUT_S as OBSERVE_HOOK_TIMEOUT_S
from .errors import InvocationError

__all__ = [
    "OBSERVE_HOOK_TIMEOUT_S",
    "InvocationError",
    "ObserveHook",
    "ObserveHooks",
    "ObserveRejection",
    "Observer",
    "strip_caller",
]
