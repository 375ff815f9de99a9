"""State: the models of the engine's key-value state functions and an interface to implement.

The engine's state module stores JSON values by ``scope`` and ``key`` and serves them through
functions (``state::get``, ``state::set``, ...) that any worker can call with ``trigger``;
these models describe their inputs, results and change events. :class:`IState` is the
interface of a state store, mirroring :class:`iii.stream.IStream`.
"""

from ._state import (
    DeleteResult,
    IState,
    StateDeleteInput,
    StateDeleteResult,
    StateEventData,
    StateEventType,
    StateGetInput,
    StateListInput,
    StateSetInput,
    StateSetResult,
    StateUpdateInput,
    StateUpdateResult,
    TData,
    UpdateOp,
)

__all__ = [
    "DeleteResult",
    "IState",
    "StateDeleteInput",
    "StateDeleteResult",
    "StateEventData",
    "StateEventType",
    "StateGetInput",
    "StateListInput",
    "StateSetInput",
    "StateSetResult",
    "StateUpdateInput",
    "StateUpdateResult",
    "TData",
    "UpdateOp",
]
