"""Official import path ``iii.filter`` (iii-sdk 0.25.0): the observer filter language
(``iii-filter`` v1). Re-export shim (see :mod:`iii._filter`): filters are compiled and
evaluated by the official ``iii-filter`` crate, the one the engine uses.

Examples:
    >>> from iii.filter import compile_filter
    >>> f = compile_filter({"input.amount": {"$gte": 500}})
    >>> f.matches({"input": {"amount": 750}})
    True
"""

from ._filter import MATCH_ALL, CompiledFilter, FilterError, FilterErrorCode, compile_filter

__all__ = ["CompiledFilter", "FilterError", "FilterErrorCode", "MATCH_ALL", "compile_filter"]
