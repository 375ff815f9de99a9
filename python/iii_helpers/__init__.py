"""Official package ``iii_helpers`` (iii-helpers 0.25.0), shipped inside this SDK's wheel.

iii-sdk 0.25.0 moved its helper types to this separate package. Here every module only
re-exports the objects of the ``iii`` package (``iii_helpers.observability.Logger is
iii.Logger``), so code written for either SDK generation shares one set of objects.
"""

# With the official packages, ``import iii`` imports these, so they are attributes of the
# package in any 0.25 program; importing them here gives the same result.
from . import http, observability, queue, stream  # noqa: E402, F401
