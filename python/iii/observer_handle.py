"""Official import path ``iii.observer_handle`` (iii-sdk 0.25.0): the handle ``III.observe``
returns. Re-export shim (see :mod:`iii._observe`)."""

from ._observe import ObserveReason, ObserveRejection, ObserverHandle, ObserverState, StateListener
from ._observe import log as log

__all__ = ["ObserveReason", "ObserveRejection", "ObserverHandle", "ObserverState", "StateListener"]
