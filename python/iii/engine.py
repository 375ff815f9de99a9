"""Official import path ``iii.engine`` (iii-sdk 0.25.0): ids of the engine's built-in
functions and trigger types, and the remote handler type. Re-export shim (see
:mod:`iii._engine`)."""

from ._engine import EngineFunctions, EngineTriggers
from ._models import RemoteFunctionHandler

__all__ = ["EngineFunctions", "EngineTriggers", "RemoteFunctionHandler"]
