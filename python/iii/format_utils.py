"""Official import path ``iii.format_utils`` (iii-sdk 0.11.0): request and response formats
from type hints. Re-export shim.

The functions are defined in :mod:`iii.format`; nothing is defined here.
"""

from ._format import extract_request_format, extract_response_format, python_type_to_format

__all__ = ["extract_request_format", "extract_response_format", "python_type_to_format"]
