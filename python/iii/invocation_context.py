"""Official import path ``iii.invocation_context`` (iii-sdk 0.25.0): the invocation a handler
runs in. Re-export shim (see :mod:`iii._observe`); the context itself is kept by the core and
``iii._observe``."""

from ._observe import InvocationContext, current_invocation

__all__ = ["InvocationContext", "current_invocation"]
