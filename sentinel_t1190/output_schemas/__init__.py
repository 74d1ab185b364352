"""JSON Schemas of every JSON document the tool writes, and their version.

Every document carries ``"schema_version": SCHEMA_VERSION``. Fields are added without a bump
(schemas allow extra properties); a rename, removal or change of meaning bumps the version.
docs/json-output.md lists the documents; tests/test_output_schemas.py validates real outputs.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

SCHEMA_VERSION = 1

#: One schema per document: ``<kind>.schema.json`` in this folder.
KINDS = ("rules", "validate", "test", "hunt", "backtest", "deploy", "status", "remove",
         "rollout", "fleet-status", "health")


def schema(kind: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the *kind* document."""
    text = resources.files(__name__).joinpath(f"{kind}.schema.json").read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def versioned(document: dict[str, Any]) -> dict[str, Any]:
    """*document* with ``schema_version`` first."""
    return {"schema_version": SCHEMA_VERSION, **document}
