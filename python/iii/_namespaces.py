"""Which namespace a call or a binding targets (engines after v0.11.0, docs/protocol.md B.3).

A worker's namespace is ``InitOptions.namespace``, else ``III_NAMESPACE``, else none (the
engine's ``default``), resolved as iii-sdk 0.25.0 does (a blank option is an error, a blank
``III_NAMESPACE`` is unset); the same value goes out as ``namespace`` in the worker's
``engine::workers::register`` metadata. Calls and bindings follow the worker's namespace
unless they name another; calls to the engine's own functions (``engine::*``) stay in
``default``. Engine v0.11.0 has no namespaces: with none configured, nothing is added to the
wire.
"""

from __future__ import annotations

import os

ENGINE_PREFIXES = ("engine::", "configuration::")


def worker_namespace(declared: str | None) -> str | None:
    """The worker's namespace; a blank option is a mistake, a blank ``III_NAMESPACE`` is unset."""
    if declared is not None:
        if not declared.strip():
            # iii-sdk 0.25.0's message, word for word.
            raise ValueError(
                f"namespace is empty: InitOptions.namespace was set to {declared!r}. "
                "Give it a name, or leave it unset to register in `default`."
            )
        return declared
    env = os.environ.get("III_NAMESPACE")
    return env if env and env.strip() else None


def explicit(namespace: object, source: str) -> str | None:
    """A namespace named on one call or binding: ``None`` or a non-blank string."""
    if namespace is None:
        return None
    if not isinstance(namespace, str) or not namespace.strip():
        raise ValueError(f"{source} must be a non-blank string or None, not {namespace!r}")
    return namespace


def for_call(namespace: object, function_id: str, worker: str | None) -> str | None:
    """The namespace a call resolves in (``None``: leave it to the engine, i.e. ``default``)."""
    if namespace is not None:
        return explicit(namespace, "the trigger request's namespace")
    return None if function_id.startswith(ENGINE_PREFIXES) else worker
