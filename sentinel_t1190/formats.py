"""Format names the CLI offers, apart from the modules that write them.

``export --help`` lists these choices; defining them here keeps it from importing the
exporters (and through them the rule model and YAML) just to print its help.
"""

from __future__ import annotations

from enum import StrEnum


class ExportFormat(StrEnum):
    arm = "arm"
    bicep = "bicep"
    yaml = "yaml"
    sigma = "sigma"
    navigator = "navigator"
