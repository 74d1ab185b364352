"""The pack's ATT&CK coverage as a MITRE ATT&CK Navigator layer (layer format 4.5).

Format: mitre-attack/attack-navigator ``layers/spec/v4.5/layerformat.md``. One technique
object per (technique, tactic) the pack covers — the rule's tactics that ATT&CK lists for the
technique — scored by the number of rules covering it, with the rules and the tables they
read as metadata. A sub-technique (``T1505.003``) is its own object; its parent gets one that
only opens its sub-techniques (``showSubtechniques``), so the parent is not shown as covered.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from .attack import technique_tactics
from .rules import Rule

LAYER_VERSION = "4.5"
#: The spec's minimum for layer 4.5 is 4.9.0; 5.2.0 is the release its example names.
NAVIGATOR_VERSION = "5.2.0"
DOMAIN = "enterprise-attack"
#: Sentinel tactics with no Enterprise ATT&CK tactic of their own.
_NOT_ENTERPRISE = {"PreAttack", "ImpairProcessControl", "InhibitResponseFunction"}
_COVERED = "#8ec843"  # the spec example's green


def tactic_shortname(tactic: str) -> str | None:
    """Sentinel's ``CommandAndControl`` → ATT&CK's ``command-and-control``."""
    if tactic in _NOT_ENTERPRISE:
        return None
    return re.sub(r"(?<!^)(?=[A-Z])", "-", tactic).lower()


def technique_url(technique: str) -> str:
    return "https://attack.mitre.org/techniques/" + technique.upper().replace(".", "/") + "/"


def _placements(rule: Rule, technique: str) -> list[str | None]:
    """The tactics (short names) *rule* covers *technique* under; [None] means "any"."""
    known = technique_tactics(technique) or ()
    names = [tactic_shortname(t) for t in rule.tactics if t in known]
    chosen = [n for n in names if n]
    return list(dict.fromkeys(chosen)) or [None]


def layer(rules: Sequence[Rule], name: str = "sentinel-t1190 pack") -> dict[str, Any]:
    """The Navigator layer document for *rules*."""
    covered: dict[tuple[str, str | None], list[Rule]] = {}
    for rule in rules:
        for technique in dict.fromkeys(t.upper() for t in rule.techniques):
            for tactic in _placements(rule, technique):
                covered.setdefault((technique, tactic), []).append(rule)
    techniques: list[dict[str, Any]] = []
    parents: dict[tuple[str, str | None], list[str]] = {}
    for (technique, tactic), by in sorted(covered.items(), key=lambda kv: (kv[0][0],
                                                                          kv[0][1] or "")):
        entry: dict[str, Any] = {"techniqueID": technique}
        if tactic:
            entry["tactic"] = tactic
        tables = sorted({t for r in by for t in r.tables})
        entry.update({
            "score": len(by),
            "comment": f"{len(by)} rule(s): " + "; ".join(r.name for r in by),
            "enabled": True,
            "metadata": [
                *({"name": "rule", "value": f"{r.name} ({r.id})"} for r in by),
                {"name": "tables", "value": ", ".join(tables)},
            ],
            "links": [{"label": f"ATT&CK {technique}", "url": technique_url(technique)}],
        })
        techniques.append(entry)
        if "." in technique:
            parents.setdefault((technique.split(".")[0], tactic), []).append(technique)
    for (parent, tactic), subs in sorted(parents.items(), key=lambda kv: (kv[0][0],
                                                                         kv[0][1] or "")):
        if (parent, tactic) in covered:
            next(e for e in techniques if e["techniqueID"] == parent
                 and e.get("tactic") == tactic)["showSubtechniques"] = True
            continue
        entry = {"techniqueID": parent, "showSubtechniques": True,
                 "comment": "covered through its sub-technique(s) " + ", ".join(subs)}
        if tactic:
            entry["tactic"] = tactic
        techniques.append(entry)
    top = max((e.get("score", 0) for e in techniques), default=0)
    return {
        "name": name,
        "versions": {"navigator": NAVIGATOR_VERSION, "layer": LAYER_VERSION},
        "domain": DOMAIN,
        "description": f"Microsoft Sentinel analytics rules ({len(rules)}): the techniques "
                       "they detect; the score is the number of rules.",
        "sorting": 3,
        "layout": {"layout": "side", "showID": True, "showName": True,
                   "expandedSubtechniques": "annotated"},
        "hideDisabled": False,
        "techniques": techniques,
        "gradient": {"colors": ["#d9f0c0", _COVERED], "minValue": 0, "maxValue": max(top, 1)},
        "metadata": [{"name": "rules", "value": str(len(rules))},
                     {"name": "generator", "value": "sentinel-t1190 export --format navigator"}],
    }


def layer_text(rules: Sequence[Rule]) -> str:
    return json.dumps(layer(rules), indent=2, ensure_ascii=False) + "\n"
