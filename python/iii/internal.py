"""Official import path ``iii.internal`` (iii-sdk 0.25.0). Re-export shim."""

from ._http_trigger import InternalHttpRequest

__all__ = ["InternalHttpRequest"]
