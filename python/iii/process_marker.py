"""Official import path ``iii.process_marker`` (iii-sdk 0.25.0): the marker file ``iii ps``
reads (``~/.iii/run/worker-<pid>-<n>.json``). Re-export shim; every client writes its own
marker (see ``iii._process_marker``)."""

from ._process_marker import announce_process

__all__ = ["announce_process"]
