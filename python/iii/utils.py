"""Official import path ``iii.utils`` (iii-sdk 0.11.0): the ``http`` handler adapter and
helpers. Re-export shim.

The objects are defined in :mod:`iii.http_trigger`, :mod:`iii.channels` and
:mod:`iii.logger` (``iii.utils.http is iii.http``); nothing is defined here.
"""

from ._channels import is_channel_ref
from ._format import extract_request_format, extract_response_format, python_type_to_format
from ._http_trigger import HttpRequest, HttpResponse, InternalHttpRequest, http
from ._logger import safe_stringify

__all__ = [
    "HttpRequest",
    "HttpResponse",
    "InternalHttpRequest",
    "extract_request_format",
    "extract_response_format",
    "http",
    "is_channel_ref",
    "python_type_to_format",
    "safe_stringify",
]
