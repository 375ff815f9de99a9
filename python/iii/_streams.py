"""Streams: the custom-stream interface and the models of stream inputs, results and events.

``III.create_stream(name, impl)`` serves the engine's ``stream::get/set/delete/list/list_groups``
calls for stream ``name`` with an :class:`IStream` implementation instead of the engine's own
storage. Stream triggers (``stream``, ``stream:join``, ``stream:leave``) deliver the event
models defined at the end of this module.
"""

from __future__ import annotations

import builtins
from abc import ABC, abstractmethod
from typing import Any, Generic, Literal, Optional, TypeVar, Union

from pydantic import BaseModel, ConfigDict, SerializerFunctionWrapHandler, model_serializer

from . import _deprecations

__all__ = [
    "IStream",
    "StreamAuthInput",
    "StreamAuthResult",
    "StreamChangeEvent",
    "StreamChangeEventDetail",
    "StreamContext",
    "StreamDeleteInput",
    "StreamDeleteResult",
    "StreamGetInput",
    "StreamJoinLeaveEvent",
    "StreamJoinLeaveTriggerConfig",
    "StreamJoinResult",
    "StreamListGroupsInput",
    "StreamListInput",
    "StreamSetInput",
    "StreamSetResult",
    "StreamTriggerConfig",
    "StreamUpdateInput",
    "StreamUpdateResult",
    "UpdateAppend",
    "UpdateDecrement",
    "UpdateIncrement",
    "UpdateMerge",
    "UpdateOp",
    "UpdateRemove",
    "UpdateSet",
]

TData = TypeVar("TData")

#: A field path: one top-level key, or (newer engines) a list of nested keys.
Path = Union[str, list[str]]


# --------------------------------------------------------------------------- update ops


class UpdateSet(BaseModel):
    """Set key ``path`` to ``value``; an empty path replaces the whole item."""

    type: Literal["set"] = "set"
    path: Path
    value: Any


class UpdateIncrement(BaseModel):
    """Add ``by`` to the number at ``path`` (created if missing). Engines expect an integer."""

    type: Literal["increment"] = "increment"
    path: Path
    by: int | float


class UpdateDecrement(BaseModel):
    """Subtract ``by`` from the number at ``path``. Engines expect an integer."""

    type: Literal["decrement"] = "decrement"
    path: Path
    by: int | float


class UpdateRemove(BaseModel):
    """Delete key ``path``."""

    type: Literal["remove"] = "remove"
    path: Path


def _without_null_path(dumped: dict[str, Any]) -> dict[str, Any]:
    """Merge and append at the root: no ``path`` key at all, as iii-sdk 0.25.0 dumps them (and
    as the engine's own ``UpdateOp`` serializes them), rather than ``"path": null``."""
    if dumped.get("path") is None:
        dumped.pop("path", None)
    return dumped


class UpdateMerge(BaseModel):
    """Shallow-merge the object ``value`` into the item (engine 0.11.0: root only)."""

    type: Literal["merge"] = "merge"
    #: ``None`` (left out of the dump), ``""`` or ``[]``: the root.
    path: Optional[Path] = None
    value: Any

    @model_serializer(mode="wrap")
    def _root_path_left_out(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return _without_null_path(handler(self))


class UpdateAppend(BaseModel):
    """Append ``value`` to the array at ``path`` (newer engines only)."""

    type: Literal["append"] = "append"
    #: ``None`` (left out of the dump), ``""`` or ``[]``: the root.
    path: Optional[Path] = None
    value: Any

    @model_serializer(mode="wrap")
    def _root_path_left_out(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return _without_null_path(handler(self))


UpdateOp = Union[UpdateSet, UpdateIncrement, UpdateDecrement, UpdateRemove, UpdateMerge, UpdateAppend]


# --------------------------------------------------------------------------- custom streams


class StreamGetInput(BaseModel):
    stream_name: str
    group_id: str
    item_id: str


class StreamSetInput(BaseModel):
    stream_name: str
    group_id: str
    item_id: str
    data: Any


class StreamDeleteInput(BaseModel):
    stream_name: str
    group_id: str
    item_id: str


class StreamListInput(BaseModel):
    stream_name: str
    group_id: str


class StreamListGroupsInput(BaseModel):
    stream_name: str


class StreamUpdateInput(BaseModel):
    stream_name: str
    group_id: str
    item_id: str
    ops: list[UpdateOp]


class StreamSetResult(BaseModel, Generic[TData]):
    """Result of a set: the previous value (``None`` if the item is new) and the new one."""

    model_config = ConfigDict(extra="allow")

    old_value: Optional[TData] = None
    new_value: TData


class StreamUpdateResult(BaseModel, Generic[TData]):
    """Result of an update; newer engines may add per-op ``errors`` (kept as an extra)."""

    model_config = ConfigDict(extra="allow")

    old_value: Optional[TData] = None
    new_value: TData


class StreamDeleteResult(BaseModel):
    """Result of a delete: the value that was removed, if any."""

    model_config = ConfigDict(extra="allow")

    old_value: Any | None = None


class IStream(ABC, Generic[TData]):
    """A stream backend. All methods are coroutines; ``get`` returns ``None`` for a missing item.

    ``III.create_stream`` registers ``get``, ``set``, ``delete``, ``list`` and ``list_groups``
    with the engine; ``update`` is part of the interface but the engine applies updates itself.

    .. deprecated:: 0.25.0
        As in iii-sdk 0.25.0, defining a subclass emits a ``FutureWarning`` at the ``class``
        statement (importing never warns). Behaviour is unchanged.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Frames: this method, ABCMeta.__new__, the class statement.
        _deprecations.warn_stream(_deprecations.ISTREAM, stacklevel=3)

    @abstractmethod
    async def get(self, input: StreamGetInput) -> TData | None: ...

    @abstractmethod
    async def set(self, input: StreamSetInput) -> StreamSetResult[TData] | None: ...

    @abstractmethod
    async def delete(self, input: StreamDeleteInput) -> StreamDeleteResult: ...

    @abstractmethod
    async def list(self, input: StreamListInput) -> builtins.list[TData]: ...

    @abstractmethod
    async def list_groups(self, input: StreamListGroupsInput) -> builtins.list[str]: ...

    @abstractmethod
    async def update(self, input: StreamUpdateInput) -> StreamUpdateResult[TData] | None: ...


# --------------------------------------------------------------------------- stream clients


class StreamAuthInput(BaseModel):
    """Input of a stream authentication function (a browser client's upgrade request)."""

    headers: dict[str, str]
    path: str
    query_params: dict[str, list[str]]
    addr: str


class StreamAuthResult(BaseModel):
    context: Any | None = None


#: What a stream authentication function hands on to the stream's functions: any JSON value.
StreamContext = Any


class StreamJoinResult(BaseModel):
    unauthorized: bool


# --------------------------------------------------------------------------- trigger configs / events


class StreamTriggerConfig(BaseModel):
    """Config of a ``stream`` trigger; unset filters match everything."""

    stream_name: str
    group_id: str | None = None
    item_id: str | None = None
    condition_function_id: str | None = None


class StreamJoinLeaveTriggerConfig(BaseModel):
    """Config of a ``stream:join`` / ``stream:leave`` trigger."""

    condition_function_id: str | None = None


class StreamJoinLeaveEvent(BaseModel):
    """Payload of ``stream:join`` / ``stream:leave`` triggers."""

    subscription_id: str
    stream_name: str
    group_id: str
    id: str | None = None
    context: Any | None = None


class StreamChangeEventDetail(BaseModel):
    """The ``event`` of a stream change: the new value, or the old one for ``delete``.

    Custom events sent with ``stream::send`` have type ``event`` and carry the custom event
    under the extra key ``event``.
    """

    model_config = ConfigDict(extra="allow")

    type: Literal["create", "update", "delete", "event"]
    data: Any = None


class StreamChangeEvent(BaseModel):
    """Payload of a ``stream`` trigger (note the camelCase keys, as sent by the engine)."""

    model_config = ConfigDict(extra="allow")

    type: Literal["stream"]
    timestamp: int
    streamName: str  # noqa: N815 - wire name
    groupId: str  # noqa: N815 - wire name
    id: str | None = None
    event: StreamChangeEventDetail
