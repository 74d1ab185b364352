"""The one translation from an Azure-Sentinel YAML rule to the Sentinel REST API, and back.

``to_api_properties`` turns a :class:`~sentinel_t1190.rules.Rule` into the ``properties`` of a
``Microsoft.SecurityInsights/alertRules`` resource (``1h`` → ``PT1H``, ``gt`` →
``GreaterThan``, ``T1505.003`` → technique ``T1505`` + sub-technique ``T1505.003``).
``normalise`` makes what the service returns comparable with what we send, and ``diff``
lists the fields that differ. Pure functions: no ``azure.*`` import, no I/O except reading
the bundled list of shipped rule ids.

Ownership: the tool deploys each rule under the rule's own fixed GUID as the resource name
(so a deploy is an idempotent PUT), and ``data/shipped_rule_ids.txt`` lists every GUID the
pack has ever shipped. A deployed rule belongs to the tool exactly when its resource name is
in that list; ``rollout --prune`` must never touch any other rule (docs/decisions.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from .compile import deployed_query
from .errors import InputError
from .rules import Pack, Rule
from .timespan import parse_duration, to_iso

#: The Microsoft.SecurityInsights api-version every call and export uses. The newest stable
#: (2025-12-01) has ``techniques`` but no ``subTechniques`` on Scheduled rules; this preview
#: has both, and is the default of the pinned azure-mgmt-securityinsight 2.0.0b4.
API_VERSION = "2025-10-01-preview"
RESOURCE_TYPE = "Microsoft.SecurityInsights/alertRules"

#: Sentinel requires a suppression duration even when suppression is off.
DEFAULT_SUPPRESSION = "PT5H"

_OPERATORS = {
    "gt": "GreaterThan", "lt": "LessThan", "eq": "Equal", "ne": "NotEqual",
    "greaterthan": "GreaterThan", "lessthan": "LessThan", "equal": "Equal",
    "notequal": "NotEqual",
}

# Closed value sets the service may hand back in another case (enum case folding).
_SEVERITIES = ("High", "Medium", "Low", "Informational")
_TACTICS = (
    "Reconnaissance", "ResourceDevelopment", "InitialAccess", "Execution", "Persistence",
    "PrivilegeEscalation", "DefenseEvasion", "CredentialAccess", "Discovery", "LateralMovement",
    "Collection", "Exfiltration", "CommandAndControl", "Impact", "PreAttack",
    "ImpairProcessControl", "InhibitResponseFunction",
)
_ENTITY_TYPES = (
    "Account", "Host", "IP", "Malware", "File", "Process", "CloudApplication", "DNS",
    "AzureResource", "FileHash", "RegistryKey", "RegistryValue", "SecurityGroup", "URL",
    "Mailbox", "MailCluster", "MailMessage", "SubmissionMail",
)
_AGGREGATION = ("SingleAlert", "AlertPerResult")
_MATCHING = ("AllEntities", "AnyAlert", "Selected")
_ALERT_DETAILS = ("DisplayName", "Severity")
_ENUMS: dict[str, tuple[str, ...]] = {
    "severity": _SEVERITIES,
    "triggerOperator": tuple(sorted(set(_OPERATORS.values()))),
    "tactics": _TACTICS,
    "entityMappings.entityType": _ENTITY_TYPES,
    "eventGroupingSettings.aggregationKind": _AGGREGATION,
    "incidentConfiguration.groupingConfiguration.matchingMethod": _MATCHING,
    "incidentConfiguration.groupingConfiguration.groupByEntities": _ENTITY_TYPES,
    "incidentConfiguration.groupingConfiguration.groupByAlertDetails": _ALERT_DETAILS,
}
_DURATIONS = (
    "queryFrequency", "queryPeriod", "suppressionDuration",
    "incidentConfiguration.groupingConfiguration.lookbackDuration",
)
#: Lists whose order carries no meaning: compared as sorted sets.
_SETS = (
    "tactics", "techniques", "subTechniques",
    "incidentConfiguration.groupingConfiguration.groupByEntities",
    "incidentConfiguration.groupingConfiguration.groupByAlertDetails",
    "incidentConfiguration.groupingConfiguration.groupByCustomDetails",
)
_TEXTS = ("query", "description", "displayName",
          "alertDetailsOverride.alertDisplayNameFormat",
          "alertDetailsOverride.alertDescriptionFormat")
#: Set by the service, never by us: ignored when comparing.
_READ_ONLY = ("lastModifiedUtc", "alertRuleTemplateName", "etag", "id", "name", "type",
              "systemData")
#: Sent for information only: compared when the service returns them, never reported as
#: missing (a service that stores no template version must not make every rule "drifted").
_ADVISORY = ("templateVersion",)
#: Values the service assumes when a field is absent.
_DEFAULTS: dict[str, Any] = {"eventGroupingSettings.aggregationKind": "SingleAlert"}


def _duration(value: Any, field: str, rule: Rule) -> str:
    try:
        return to_iso(parse_duration(str(value)))
    except InputError:
        raise InputError(f"{rule.path}: {field}: not a duration: {value!r} "
                         "(use e.g. 1h, 1d, PT5H)") from None


def split_techniques(relevant: Iterable[str]) -> tuple[list[str], list[str]]:
    """``["T1190", "T1505.003"]`` → techniques ``["T1190", "T1505"]``, subs ``["T1505.003"]``."""
    techniques: list[str] = []
    subs: list[str] = []
    for item in relevant:
        text = str(item).strip().upper()
        parent = text.split(".", 1)[0]
        if parent and parent not in techniques:
            techniques.append(parent)
        if "." in text and text not in subs:
            subs.append(text)
    return techniques, subs


def _operator(value: Any, rule: Rule) -> str:
    api = _OPERATORS.get(str(value).strip().lower())
    if api is None:
        raise InputError(f"{rule.path}: triggerOperator: {value!r} is not one of gt, lt, eq, ne")
    return api


def _threshold(value: Any, rule: Rule) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InputError(f"{rule.path}: triggerThreshold: {value!r} is not a whole number")
    try:
        return int(value)
    except ValueError:
        raise InputError(f"{rule.path}: triggerThreshold: {value!r} is not a whole "
                         "number") from None


def _copy(value: Any) -> Any:
    """A plain JSON copy of YAML data (mappings to dicts, sequences to lists)."""
    if isinstance(value, Mapping):
        return {str(k): _copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_copy(v) for v in value]
    return value


def to_api_properties(rule: Rule, *, enabled: bool = True) -> dict[str, Any]:
    """The ``properties`` of the alert-rule resource for *rule*, as the REST API wants them."""
    data = rule.data
    if rule.kind not in ("Scheduled", "NRT"):
        raise InputError(f"{rule.path}: kind {rule.kind!r} cannot be deployed "
                         "(Scheduled or NRT)")
    props: dict[str, Any] = {
        "displayName": rule.name,
        "description": str(data.get("description") or "").strip(),
        "severity": _canonical(rule.severity, _SEVERITIES),
        "enabled": enabled,
        "query": deployed_query(rule),
    }
    if rule.kind == "Scheduled":
        props["queryFrequency"] = _duration(data.get("queryFrequency"), "queryFrequency", rule)
        props["queryPeriod"] = _duration(data.get("queryPeriod"), "queryPeriod", rule)
        props["triggerOperator"] = _operator(data.get("triggerOperator", "gt"), rule)
        props["triggerThreshold"] = _threshold(data.get("triggerThreshold", 0), rule)
    props["suppressionEnabled"] = bool(data.get("suppressionEnabled", False))
    props["suppressionDuration"] = _duration(
        data.get("suppressionDuration", DEFAULT_SUPPRESSION), "suppressionDuration", rule)
    props["tactics"] = [_canonical(t, _TACTICS) for t in rule.tactics]
    techniques, subs = split_techniques(rule.techniques)
    props["techniques"] = techniques
    if subs:
        props["subTechniques"] = subs
    for key in ("entityMappings", "customDetails", "alertDetailsOverride",
                "eventGroupingSettings", "sentinelEntitiesMappings"):
        if data.get(key):
            props[key] = _copy(data[key])
    if data.get("incidentConfiguration"):
        incident = _copy(data["incidentConfiguration"])
        grouping = incident.get("groupingConfiguration")
        if isinstance(grouping, dict) and grouping.get("lookbackDuration") is not None:
            grouping["lookbackDuration"] = _duration(
                grouping["lookbackDuration"], "incidentConfiguration.groupingConfiguration."
                "lookbackDuration", rule)
        props["incidentConfiguration"] = incident
    if data.get("version"):
        props["templateVersion"] = str(data["version"])
    return props


def to_api_body(rule: Rule, *, enabled: bool = True) -> dict[str, Any]:
    """The whole PUT body: ``{"kind": ..., "properties": ...}``."""
    return {"kind": rule.kind, "properties": to_api_properties(rule, enabled=enabled)}


def resource_name(rule: Rule) -> str:
    """The alert rule's resource name: the rule's fixed GUID, lower case."""
    return rule.id.strip().lower()


#: A pack's own list of every rule GUID it has ever shipped, beside analytics/ (``init``
#: writes it); the bundled pack's list is package data of the same name.
SHIPPED_IDS_FILE = "shipped_rule_ids.txt"


def _ids(text: str) -> frozenset[str]:
    return frozenset(
        line.split("#", 1)[0].strip().lower() for line in text.splitlines()
        if line.split("#", 1)[0].strip()
    )


def shipped_rule_ids(pack_root: Path | None = None) -> frozenset[str]:
    """Every rule GUID a pack has ever shipped (lower case): the rules the tool owns.

    *pack_root* None (or the bundled pack): the bundled list; else ``pack_root/``
    :data:`SHIPPED_IDS_FILE` (empty when the pack has none).
    """
    from importlib.resources import files

    from .rules import default_pack_dir

    if pack_root is None or pack_root.resolve() == default_pack_dir():
        return _ids(files("sentinel_t1190.data").joinpath(SHIPPED_IDS_FILE).read_text("utf-8"))
    path = pack_root / SHIPPED_IDS_FILE
    try:
        return _ids(path.read_text("utf-8")) if path.is_file() else frozenset()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc


def owned_ids(pack: Pack) -> frozenset[str]:
    """The deployed rule names ``--prune`` may delete for *pack*: its shipped-ids list plus
    its current rules (a rule is owned from its first deploy even before it is listed)."""
    return shipped_rule_ids(pack.root) | {resource_name(r) for r in pack.rules}


def is_owned(name: str, pack_root: Path | None = None) -> bool:
    """Whether a deployed alert rule named *name* was created by this tool from the pack."""
    return name.strip().lower() in shipped_rule_ids(pack_root)


# --- comparing deployed and desired -----------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One field that differs: ``from_`` is the deployed value, ``to`` the pack's value."""

    field: str
    from_: Any
    to: Any

    def to_dict(self) -> dict[str, Any]:
        from .fielddiff import describe

        return {"field": self.field, "from": self.from_, "to": self.to,
                "diff": describe(self.from_, self.to)}


def _canonical(value: Any, known: tuple[str, ...]) -> Any:
    if not isinstance(value, str):
        return value
    folded = value.strip().lower()
    for name in known:
        if name.lower() == folded:
            return name
    return value


def _text(value: str) -> str:
    lines = value.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(line.rstrip() for line in lines).strip("\n").strip()


def _canonical_duration(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        delta: timedelta = parse_duration(value)
    except InputError:
        return value
    return to_iso(delta)


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, list | dict | str) and not value)


def _walk(value: Any, path: str) -> Any:
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            sub = f"{path}.{key}" if path else str(key)
            if not path and key in _READ_ONLY:
                continue
            item = _walk(item, sub)
            if _empty(item) or _DEFAULTS.get(sub, object()) == item:
                continue
            out[str(key)] = item
        return out
    if isinstance(value, list):
        items = [_walk(v, path) for v in value]
        items = [v for v in items if not _empty(v)]
        if path in _SETS:
            items = sorted(items, key=str)
        elif path == "entityMappings":
            items = sorted(items, key=lambda m: str(m.get("entityType", "")))
        return items
    if path in _ENUMS:
        return _canonical(value, _ENUMS[path])
    if path in _DURATIONS:
        return _canonical_duration(value)
    if path in _TEXTS and isinstance(value, str):
        return _text(value)
    return value


def normalise(properties: Mapping[str, Any]) -> dict[str, Any]:
    """*properties* (sent or returned by GET) in a canonical form for comparison.

    Accepts the ``properties`` object or the whole resource (then ``properties`` is used).
    Durations become canonical ISO 8601 (``PT24H`` → ``P1D``); enum values get their API
    case; query, description and alert formats lose CRLF and trailing spaces; tactics,
    techniques, sub-techniques and group-by lists are sorted, entity mappings ordered by type;
    read-only fields (``lastModifiedUtc``, ``alertRuleTemplateName``…), nulls, empty lists and
    service defaults (``aggregationKind: SingleAlert``) are dropped. Idempotent.
    """
    if "properties" in properties and isinstance(properties["properties"], Mapping):
        properties = properties["properties"]
    result = _walk(properties, "")
    assert isinstance(result, dict)
    return result


def _diff(desired: Any, actual: Any, path: str, out: list[Change]) -> None:
    if isinstance(desired, dict) and isinstance(actual, dict):
        for key in [*desired, *(k for k in actual if k not in desired)]:
            sub = f"{path}.{key}" if path else key
            _diff(desired.get(key), actual.get(key), sub, out)
        return
    if (isinstance(desired, list) and isinstance(actual, list) and path not in _SETS
            and any(isinstance(v, dict) for v in [*desired, *actual])):
        for index in range(max(len(desired), len(actual))):
            _diff(desired[index] if index < len(desired) else None,
                  actual[index] if index < len(actual) else None, f"{path}[{index}]", out)
        return
    if desired != actual:
        out.append(Change(path, actual, desired))


def diff(desired: Mapping[str, Any], actual: Mapping[str, Any]) -> list[Change]:
    """The fields where *actual* (deployed) differs from *desired*, after normalising both.

    Paths are dotted (``incidentConfiguration.groupingConfiguration.lookbackDuration``) with
    list positions in brackets (``entityMappings[3].fieldMappings[1].columnName``). Each
    Change goes from the deployed value to the desired one (None = absent). Empty when equal.
    ``templateVersion`` is compared only when the deployed rule has one.
    """
    changes: list[Change] = []
    wanted, deployed = normalise(desired), normalise(actual)
    for key in _ADVISORY:
        if key not in deployed:
            wanted.pop(key, None)
    _diff(wanted, deployed, "", changes)
    return changes


def _lost(sent: Any, returned: Any, path: str, out: list[str]) -> None:
    if isinstance(sent, dict):
        if not isinstance(returned, dict):
            out.append(path)
            return
        for key, value in sent.items():
            _lost(value, returned.get(key), f"{path}.{key}" if path else key, out)
    elif isinstance(sent, list):
        if not isinstance(returned, list) or any(item not in returned for item in sent):
            out.append(path)
    elif returned is None:
        out.append(path)


def dropped(sent: Mapping[str, Any], returned: Mapping[str, Any]) -> list[str]:
    """Fields sent but missing from what the service returned (the read-back check).

    A list counts as dropped when any sent item (a technique, an entity mapping) is absent;
    changed scalar values are not reported here (``diff`` shows them).
    """
    lost: list[str] = []
    kept = normalise(returned)
    _lost({k: v for k, v in normalise(sent).items() if k not in _ADVISORY}, kept, "", lost)
    return lost
