"""Official import path ``iii.channel`` (iii-sdk 0.25.0): the public channel types.
Re-export shim (the same objects as ``iii.channels`` and ``iii.Channel``)."""

from ._channels import Channel, ChannelReader, ChannelWriter
from ._models import StreamChannelRef

__all__ = ["Channel", "ChannelReader", "ChannelWriter", "StreamChannelRef"]
