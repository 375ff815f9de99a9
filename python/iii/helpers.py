"""Official import path ``iii.helpers`` (iii-sdk 0.25.0): helper free functions taking the
client first, and channel helper types. Re-export shim; the functions are defined in
:mod:`iii._helpers` and call the ``III`` methods of the same names.
"""

from ._channel_types import ChannelDirection, ChannelItem, extract_channel_refs
from ._channels import is_channel_ref
from ._helpers import create_channel, create_channel_async, create_stream

__all__ = [
    "ChannelDirection",
    "ChannelItem",
    "create_channel",
    "create_channel_async",
    "create_stream",
    "extract_channel_refs",
    "is_channel_ref",
]
