"""sentinel-t1190: the Microsoft Sentinel T1190 detection as code, through its whole life.

The public API lives in :mod:`sentinel_t1190.api` and is re-exported here.
"""

from __future__ import annotations

from ._version import __version__
from .api import classify, hunt_local, load_pack, validate
from .errors import (
    AuthError,
    AzureServiceError,
    ExitCode,
    InputError,
    PartialResultError,
    SentinelT1190Error,
    UnsupportedQueryError,
)
from .hunt import HuntResult, Window
from .rules import Finding, HuntingQuery, Pack, Rule

__all__ = [
    "AuthError", "AzureServiceError", "ExitCode", "Finding", "HuntResult", "HuntingQuery",
    "InputError", "Pack", "PartialResultError", "Rule", "SentinelT1190Error",
    "UnsupportedQueryError", "Window", "__version__", "classify", "hunt_local", "load_pack",
    "validate",
]
