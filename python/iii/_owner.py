"""The owner side of observe (docs/protocol.md C.13, C.14): this worker's functions as observed
functions. The core keeps each function's observers (``FunctionState``), compiles their filters,
acks them and reports matching calls; Python keeps one :class:`iii.Observer` object per observer
(the same object for its whole life) and runs the owner's hooks.

Hooks (``ObserveHooks.on_observer_added`` / ``on_observer_removed``, sync or async) run on the
SDK loop, one at a time per function, in the order the engine sent the changes, in an empty
``contextvars`` context (no invocation is current), a sync one on a thread of the loop's
executor. ``on_observer_added`` has :data:`HOOK_TIMEOUT_S` (30 s) before the observer is refused
with ``OWNER_TIMEOUT``; raising :class:`iii.ObserveRejection` refuses it with that code, any
other exception with ``OBSERVE_REJECTED``. The answer goes to the core
(``FunctionState.hook_done``), which acks the observer. A hook that returns after its timeout is
undone with ``on_observer_removed``.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ._dispatch import _error_text, _is_async, awaited
from ._observe import ObserveHook, ObserveHooks, Observer, ObserveRejection, _OwnerHost

if TYPE_CHECKING:
    from . import _iii

log = logging.getLogger("iii.observe")

#: How long ``on_observer_added`` may run before the observer is refused with ``OWNER_TIMEOUT``.
HOOK_TIMEOUT_S = 30.0


class OwnedFunction:
    """One function of this worker with a ``FunctionState``: its :class:`Observer` objects and,
    when it has hooks, the queue that runs them."""

    def __init__(
        self,
        function_id: str,
        state: _iii.FunctionState,
        hooks: ObserveHooks | None,
        host: _OwnerHost,
    ) -> None:
        self.function_id = function_id
        self.state = state
        self.hooks = hooks
        self._host = host
        self._observers: dict[str, Observer] = {}
        self._tail: asyncio.Future[Any] | None = None

    def observer(self, view: dict[str, Any]) -> Observer:
        """The object of the observer ``view`` describes (made once, then kept up to date)."""
        obs = self._observers.get(view["id"])
        if obs is None:
            obs = self._observers[view["id"]] = Observer(self.function_id, view, self.state, self._host)
        else:
            obs._update(view)
        return obs

    def is_observed(self) -> bool:
        return self.state.is_observed()

    def observers(self) -> list[Observer]:
        """The active observers, as :class:`Observer` objects (``FunctionRef.observers()``)."""
        views = self.state.observers()
        current = [self.observer(view) for view in views]
        if len(self._observers) > len(current):
            ids = {obs.id for obs in current}
            for gone in [k for k in self._observers if k not in ids]:
                del self._observers[gone]
        return current

    # -- hooks (SDK loop) ------------------------------------------------------------------

    def on_hook(self, event: _iii.OwnerHook) -> None:
        """An ``OwnerHook`` from the core: queues its hook behind the earlier ones."""
        if event.added:
            obs = self.observer(event.observer)
            self._enqueue(lambda: self._added(obs, event))
        else:
            gone = self._observers.pop(event.observer["id"], None)
            if gone is not None and gone._removing:
                return  # already undone (see _added)
            obs = gone or Observer(self.function_id, event.observer, self.state, self._host)
            obs._removing = True
            pending = event.pending
            self._enqueue(lambda: self._removed(obs, pending))

    def _enqueue(self, job: Callable[[], Awaitable[None]]) -> None:
        previous = self._tail

        async def run() -> None:
            if previous is not None:
                await asyncio.wait({previous})
            try:
                await job()
            except Exception:
                log.exception("observe hook of %s failed", self.function_id)

        # An empty context: no invocation is current in a hook (as in iii-sdk 0.25.0).
        loop = asyncio.get_running_loop()
        if sys.version_info >= (3, 11):
            self._tail = loop.create_task(run(), context=contextvars.Context())
        else:
            self._tail = contextvars.Context().run(loop.create_task, run())

    async def _added(self, obs: Observer, event: _iii.OwnerHook) -> None:
        if event.generation != self.state.generation():
            return  # the function was released before this hook's turn: it never runs
        hook = self.hooks.on_observer_added if self.hooks is not None else None
        code = message = None
        if hook is not None:
            code, message, late = await self._run(hook, obs, "on_observer_added")
            if late is not None:
                late.add_done_callback(lambda f: self._undo_late(f, obs))
        outcome = self.state.hook_done(event, code, message)
        if code is None:
            obs._accepted = True
            if outcome in ("released", "rejected") and hook is not None and not obs._removing:
                # Released or rejected while its hook ran: what the hook set up is undone now,
                # before the hooks queued behind it, as iii-sdk 0.25.0 does.
                if self._observers.get(obs.id) is obs:
                    del self._observers[obs.id]
                obs._removing = True
                await self._removed(obs)

    def _undo_late(self, future: asyncio.Future[Any], obs: Observer) -> None:
        """An ``on_observer_added`` that finished after its timeout: the observer was refused,
        so whatever the hook set up is undone by its removal hook."""
        if not future.cancelled() and future.exception() is None and not obs._removing:
            obs._removing = True
            self._enqueue(lambda: self._removed(obs))

    async def _removed(self, obs: Observer, pending: bool = False) -> None:
        hook = self.hooks.on_observer_removed if self.hooks is not None else None
        if hook is None or (pending and not obs._accepted):
            return  # a pending removal follows an addition its hook refused
        code, message, _ = await self._run(hook, obs, "on_observer_removed")
        if code is not None:
            log.error(
                "on_observer_removed of %s failed for observer %s: %s", self.function_id, obs.id, message
            )

    async def _run(
        self, hook: ObserveHook, obs: Observer, name: str
    ) -> tuple[str | None, str | None, asyncio.Future[Any] | None]:
        """Runs one hook with its time limit: ``(code, message, still_running)``, code None when
        it accepted the observer."""
        loop = asyncio.get_running_loop()
        if _is_async(hook):
            future: asyncio.Future[Any] = asyncio.ensure_future(_call_async(hook, obs))
        else:
            future = loop.run_in_executor(None, contextvars.Context().run, hook, obs)
            future = asyncio.ensure_future(_settled(future))
        done, _ = await asyncio.wait({future}, timeout=HOOK_TIMEOUT_S)
        if not done:
            message = f"{name} of {self.function_id} still running after {int(HOOK_TIMEOUT_S * 1000)}ms"
            return "OWNER_TIMEOUT", message, future
        if future.cancelled():
            return "OBSERVE_REJECTED", f"{name} was cancelled", None
        exc = future.exception()
        if exc is None:
            return None, None, None
        if isinstance(exc, ObserveRejection):
            return exc.code, exc.message, None
        return "OBSERVE_REJECTED", _error_text(exc), None


async def _call_async(hook: ObserveHook, obs: Observer) -> None:
    await awaited(hook(obs))


async def _settled(future: Awaitable[Any]) -> None:
    """A sync hook's result, awaited too when it returned an awaitable."""
    await awaited(await future)
