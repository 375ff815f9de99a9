"""Official path ``iii_helpers.queue`` (iii-helpers 0.25.0). Re-export of ``iii.EnqueueResult``."""

from iii._models import EnqueueResult

__all__ = ["EnqueueResult"]
