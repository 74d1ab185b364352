"""sentinel-t1190: the Microsoft Sentinel T1190 detection as code, through its whole life.

The public API lives in :mod:`sentinel_t1190.api` and is re-exported here.
"""

from __future__ import annotations

from ._version import __version__
from .api import (
    classify,
    deploy_to_target,
    discover_targets,
    fleet_status,
    hunt_local,
    hunt_local_stored,
    load_pack,
    load_targets,
    plan_target,
    run_rollout,
    validate,
)
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
    "UnsupportedQueryError", "Window", "__version__", "classify", "deploy_to_target",
    "discover_targets", "fleet_status", "hunt_local", "hunt_local_stored", "load_pack",
    "load_targets", "plan_target", "run_rollout", "validate",
]
