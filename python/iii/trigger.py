"""Official import path ``iii.trigger`` (iii-sdk 0.25.0): trigger types. Re-export shim."""

from ._models import TriggerActionVoid
from ._triggers import Trigger, TriggerConfig, TriggerHandler

__all__ = ["Trigger", "TriggerActionVoid", "TriggerConfig", "TriggerHandler"]
