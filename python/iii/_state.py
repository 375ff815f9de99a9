"""State: the models of the engine's key-value state functions and an interface to implement.

The engine's state module stores JSON values by ``scope`` and ``key`` and serves them through
functions (``state::get``, ``state::set``, ...) that any worker can call with ``trigger``;
these models describe their inputs, results and change events. :class:`IState` is the
interface of a state store, mirroring :class:`iii.stream.IStream`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from enum import Enum
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from ._streams import UpdateOp

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

TData = TypeVar("TData")


class StateGetInput(BaseModel):
    """Read the value at ``scope`` / ``key``."""

    scope: str
    key: str


class StateSetInput(BaseModel):
    """Create or replace the value at ``scope`` / ``key``."""

    scope: str
    key: str
    value: Any


class StateDeleteInput(BaseModel):
    """Remove the value at ``scope`` / ``key``."""

    scope: str
    key: str


class StateListInput(BaseModel):
    """List every value in ``scope``."""

    scope: str


class StateUpdateInput(BaseModel):
    """Apply ``ops`` to the value at ``scope`` / ``key`` in one atomic step."""

    scope: str
    key: str
    ops: list[UpdateOp]


class StateSetResult(BaseModel, Generic[TData]):
    """The value before (``None`` if new) and after a set."""

    old_value: TData | None = None
    new_value: TData


class StateUpdateResult(BaseModel, Generic[TData]):
    """The value before (``None`` if new) and after an update."""

    old_value: TData | None = None
    new_value: TData


class StateDeleteResult(BaseModel):
    """The value a delete removed (``None`` if there was none)."""

    old_value: Any | None = None


class DeleteResult(BaseModel):
    """What :meth:`IState.delete` returns: the removed value, if any."""

    old_value: Any | None = None


class StateEventType(str, Enum):
    """Kinds of state change delivered to ``state`` triggers."""

    CREATED = "state:created"
    UPDATED = "state:updated"
    DELETED = "state:deleted"


class StateEventData(BaseModel, Generic[TData]):
    """Payload of a ``state`` trigger: which value changed, and how."""

    type: str = "state"
    event_type: StateEventType
    scope: str
    key: str
    old_value: TData | None = None
    new_value: TData | None = None


class IState(ABC, Generic[TData]):
    """A state store: get, set, delete, list and atomically update values by scope and key."""

    @abstractmethod
    async def get(self, input: StateGetInput) -> TData | None:
        """The value at ``input.scope`` / ``input.key``, or ``None``."""

    @abstractmethod
    async def set(self, input: StateSetInput) -> StateSetResult[TData] | None:
        """Stores ``input.value``; returns the old and new values."""

    @abstractmethod
    async def delete(self, input: StateDeleteInput) -> DeleteResult:
        """Removes the value; returns what was removed."""

    @abstractmethod
    async def list(self, input: StateListInput) -> list[TData]:
        """Every value in ``input.scope``."""

    @abstractmethod
    async def update(self, input: StateUpdateInput) -> StateUpdateResult[TData] | None:
        """Applies ``input.ops`` atomically; returns the old and new values."""
