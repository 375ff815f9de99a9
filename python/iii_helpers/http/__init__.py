"""Official path ``iii_helpers.http`` (iii-helpers 0.25.0): HTTP invocation config, the
buffered request / response models and the ``http`` streaming-handler adapter. Re-exports:
``http`` is ``iii.http`` (its callback receives ``iii.types.StreamRequest`` /
``StreamResponse``); ``HttpRequest`` / ``HttpResponse`` here are the 0.25 buffered pydantic
models (``iii._http_models``), not the 0.11 streaming ``iii.HttpRequest`` / ``iii.HttpResponse``.
"""

from iii._http_models import HttpMethod, HttpRequest, HttpResponse
from iii._http_trigger import http
from iii._models import HttpAuthApiKey, HttpAuthBearer, HttpAuthConfig, HttpAuthHmac, HttpInvocationConfig

__all__ = [
    "HttpAuthApiKey",
    "HttpAuthBearer",
    "HttpAuthConfig",
    "HttpAuthHmac",
    "HttpInvocationConfig",
    "HttpMethod",
    "HttpRequest",
    "HttpResponse",
    "http",
]
