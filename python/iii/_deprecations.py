"""Deprecations of iii-sdk 0.25.0, with its exact categories, texts and frequencies.

- ``register_trigger`` (also through ``TriggerTypeRef.register_trigger``) and
  ``register_trigger_type``: a ``DeprecationWarning`` on every call, attributed to the caller's
  line, plus one warning on the ``iii.iii`` logger per process and API.
- ``unregister_trigger_type`` and ``TriggerTypeRef.register_function``: a
  ``DeprecationWarning`` on every call, no log.
- ``iii.helpers.create_stream``: a ``FutureWarning`` on every call; subclassing ``IStream``: a
  ``FutureWarning`` at the ``class`` statement.

The "once per process" record is ``iii.iii._deprecations_warned`` (a set of API names), as in
the official package, so tests written for it can reset it with
``monkeypatch.setattr(iii.iii, "_deprecations_warned", set())``.
"""

from __future__ import annotations

import logging
import sys
import threading
import warnings

__all__ = [
    "CREATE_STREAM",
    "ISTREAM",
    "MIGRATION_GUIDE",
    "REGISTER_TRIGGER",
    "REGISTER_TRIGGER_TYPE",
    "TRIGGER_TYPE_REF_REGISTER_FUNCTION",
    "UNREGISTER_TRIGGER_TYPE",
    "warn",
    "warn_stream",
]

MIGRATION_GUIDE = "https://iii.dev/docs/upgrading/from-0-24-x"
_STREAMS_GUIDE = "https://iii.dev/docs/upgrading/migrate-from-streams"

REGISTER_TRIGGER = (
    "register_trigger is deprecated and will be removed in a future release. "
    f"Use iii.observe(source, target) instead. Migration guide: {MIGRATION_GUIDE}"
)
REGISTER_TRIGGER_TYPE = (
    "register_trigger_type is deprecated and will be removed in a future release. "
    "Register a function with an observe descriptor "
    "(register_function(id, handler, observe=ObserveHooks(...))) instead. "
    f"Migration guide: {MIGRATION_GUIDE}"
)
UNREGISTER_TRIGGER_TYPE = (
    "unregister_trigger_type is deprecated and will be removed in a future release. "
    "Trigger types are replaced by functions with an observe descriptor. "
    f"Migration guide: {MIGRATION_GUIDE}"
)
TRIGGER_TYPE_REF_REGISTER_FUNCTION = (
    "TriggerTypeRef.register_function is deprecated and will be removed in a future release. "
    f"Use iii.register_function and iii.observe(source, target) instead. Migration guide: {MIGRATION_GUIDE}"
)
ISTREAM = (
    "IStream is deprecated (iii-stream) and will be removed in an upcoming release. "
    f"Behavior is unchanged for now. Migration guide: {_STREAMS_GUIDE}"
)
CREATE_STREAM = (
    "create_stream is deprecated (iii-stream) and will be removed in an upcoming release. "
    f"Behavior is unchanged for now. Migration guide: {_STREAMS_GUIDE}"
)

#: APIs whose deprecation is also logged (once per process) on the ``iii.iii`` logger.
_LOGGED = {"register_trigger": REGISTER_TRIGGER, "register_trigger_type": REGISTER_TRIGGER_TYPE}

_lock = threading.Lock()
_fallback_warned: set[str] = set()


def _warned() -> set[str]:
    """The process-wide record, looked up on ``iii.iii`` so that tests may replace it."""
    module = sys.modules.get("iii.iii")
    record = getattr(module, "_deprecations_warned", None)
    return record if isinstance(record, set) else _fallback_warned


def warn(message: str, *, stacklevel: int, log_key: str | None = None) -> None:
    """A ``DeprecationWarning`` with ``message`` for the frame ``stacklevel`` levels above the
    caller of this function (1 = that caller); with ``log_key``, also a log warning on
    ``iii.iii`` the first time in the process."""
    warnings.warn(message, DeprecationWarning, stacklevel=stacklevel + 1)
    if log_key is None:
        return
    with _lock:
        record = _warned()
        if log_key in record:
            return
        record.add(log_key)
    logging.getLogger("iii.iii").warning(_LOGGED.get(log_key, message))


def warn_stream(message: str, *, stacklevel: int) -> None:
    """A ``FutureWarning`` (streams deprecations), attributed like :func:`warn`."""
    warnings.warn(message, FutureWarning, stacklevel=stacklevel + 1)
