"""MITRE ATT&CK as Microsoft Sentinel spells it: tactic names and each technique's tactics."""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources

#: Sentinel's ``AttackTactic`` enum (REST API, api-version 2025-12-01; the same list as
#: Azure/Azure-Sentinel .script/tests/detectionTemplateSchemaValidation/Models/AttackTactic.cs,
#: plus the legacy PreAttack that older templates still carry).
TACTICS = (
    "Reconnaissance", "ResourceDevelopment", "InitialAccess", "Execution", "Persistence",
    "PrivilegeEscalation", "DefenseEvasion", "CredentialAccess", "Discovery", "LateralMovement",
    "Collection", "Exfiltration", "CommandAndControl", "Impact", "PreAttack",
    "ImpairProcessControl", "InhibitResponseFunction",
)

#: T1190 or T1505.003 (KillChainTechniquesHelper.cs: ``^T\d{4}$`` and ``^T\d{4}\.\d{3}$``).
TECHNIQUE_ID = re.compile(r"^T\d{4}(\.\d{3})?$")


@cache
def _techniques() -> dict[str, tuple[str, ...]]:
    text = resources.files("sentinel_t1190.data").joinpath("attack_techniques.json").read_text(
        encoding="utf-8")
    return {k: tuple(v) for k, v in json.loads(text)["techniques"].items()}


def technique_tactics(technique: str) -> tuple[str, ...] | None:
    """The tactics of *technique* (a sub-technique by its parent), or None if unknown."""
    return _techniques().get(technique.split(".")[0].upper())
