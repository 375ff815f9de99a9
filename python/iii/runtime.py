"""Official import path ``iii.runtime`` (iii-sdk 0.25.0): handles and states of the client.
Re-export shim."""

from ._options import FunctionRef, IIIConnectionState
from ._triggers import TriggerTypeRef

__all__ = ["FunctionRef", "IIIConnectionState", "TriggerTypeRef"]
