"""Stream model additions of iii-helpers 0.25.0 (``iii_helpers.stream``)."""

from __future__ import annotations

from typing import Union

from pydantic import BaseModel

__all__ = ["MergePath", "UpdateOpError"]

#: Where a ``merge`` / ``append`` applies: one first-level key, or a list of literal segments.
MergePath = Union[str, list[str]]


class UpdateOpError(BaseModel):
    """One op of a ``stream::update`` / ``state::update`` the engine refused (newer engines):
    its index in ``ops``, a stable ``code`` (e.g. ``merge.path.too_deep``), a message and
    possibly a documentation URL. The other ops are still applied."""

    op_index: int
    code: str
    message: str
    doc_url: str | None = None
