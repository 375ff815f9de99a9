"""Streams: the custom-stream interface and the models of stream inputs, results and events.

``III.create_stream(name, impl)`` serves the engine's ``stream::get/set/delete/list/list_groups``
calls for stream ``name`` with an :class:`IStream` implementation instead of the engine's own
storage. Stream triggers (``stream``, ``stream:join``, ``stream:leave``) deliver the event
models defined at the end of this module.
"""

from ._streams import (
    IStream,
    StreamAuthInput,
    StreamAuthResult,
    StreamChangeEvent,
    StreamChangeEventDetail,
    StreamContext,
    StreamDeleteInput,
    StreamDeleteResult,
    StreamGetInput,
    StreamJoinLeaveEvent,
    StreamJoinLeaveTriggerConfig,
    StreamJoinResult,
    StreamListGroupsInput,
    StreamListInput,
    StreamSetInput,
    StreamSetResult,
    StreamTriggerConfig,
    StreamUpdateInput,
    StreamUpdateResult,
    TData,
    UpdateAppend,
    UpdateDecrement,
    UpdateIncrement,
    UpdateMerge,
    UpdateOp,
    UpdateRemove,
    UpdateSet,
)

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
    "TData",
    "UpdateAppend",
    "UpdateDecrement",
    "UpdateIncrement",
    "UpdateMerge",
    "UpdateOp",
    "UpdateRemove",
    "UpdateSet",
]
