"""sentinel-t1190: the Microsoft Sentinel T1190 detection as code, through its whole life.

The public API lives in :mod:`sentinel_t1190.api` and is re-exported here. The names are
imported on first use (module ``__getattr__``), so ``sentinel-t1190 --help`` and the
offline commands do not pay for modules they never touch (YAML, DuckDB, the Azure SDK).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
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

#: Each public name and the module that defines it.
_PUBLIC = {
    **dict.fromkeys(("classify", "deploy_to_target", "discover_targets", "fleet_status",
                     "hunt_local", "hunt_local_stored", "load_pack", "load_targets",
                     "plan_target", "run_rollout", "validate"), "api"),
    **dict.fromkeys(("AuthError", "AzureServiceError", "ExitCode", "InputError",
                     "PartialResultError", "SentinelT1190Error", "UnsupportedQueryError"),
                    "errors"),
    **dict.fromkeys(("HuntResult", "Window"), "hunt"),
    **dict.fromkeys(("Finding", "HuntingQuery", "Pack", "Rule"), "rules"),
}

__all__ = [
    "AuthError", "AzureServiceError", "ExitCode", "Finding", "HuntResult", "HuntingQuery",
    "InputError", "Pack", "PartialResultError", "Rule", "SentinelT1190Error",
    "UnsupportedQueryError", "Window", "__version__", "classify", "deploy_to_target",
    "discover_targets", "fleet_status", "hunt_local", "hunt_local_stored", "load_pack",
    "load_targets", "plan_target", "run_rollout", "validate",
]


def __getattr__(name: str) -> Any:
    """A public name, or a submodule (``sentinel_t1190.api``), imported on first use."""
    from importlib import import_module
    from importlib.util import find_spec

    module = _PUBLIC.get(name)
    if module is not None:
        if find_spec(f"{__name__}.{name}") is not None:
            # A submodule of the same name (validate): import it first, or its first import
            # (the function's own) would replace the function here with the module.
            import_module(f"{__name__}.{name}")
        value = getattr(import_module(f"{__name__}.{module}"), name)
    elif name.isidentifier() and not name.startswith("_") \
            and find_spec(f"{__name__}.{name}") is not None:
        value = import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
