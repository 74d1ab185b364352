"""Rule validation: Sentinel's limits, the KQL, and the columns it reads and outputs.

Every check is a function from a rule to findings (data with file and line); it never
raises. ``validate_paths`` loads rule and hunting files and runs them all, including the
checks across files (duplicate ids, hunting queries pointing at rules).

Sources for the limits (docs/validate.md lists them per check):
- Azure/Azure-Sentinel ``.script/tests/detectionTemplateSchemaValidation/Models/`` — the CI
  every contributed rule passes: AnalyticsTemplateInternalModelBase.cs (name <= 256,
  description <= 5000), ScheduledTemplateInternalModel.cs (query 1..10,000 characters,
  durations 5 min..14 days, threshold 0..10,000, customDetails <= 20 with key
  ``^[a-zA-Z]+\\w*$`` <= 20 characters and value ``^[a-zA-Z_]+\\w*$``),
  FrequencyLimitationForLongPeriodQuery.cs, EntityMappingIdentifiers.cs,
  ValidEntityMappingsAttribute.cs, AlertDetailsOverride.cs, KillChainTechniquesHelper.cs.
- The Microsoft.SecurityInsights alertRules REST API and Sentinel's documented limits
  (the service limits): <= 10 entity mappings of <= 3 identifiers, <= 20 custom details.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from . import attack
from .compile import deployed_query
from .errors import InputError, first_line
from .rules import (
    GUID,
    Finding,
    HuntingQuery,
    Level,
    Rule,
    hunting_files,
    load_hunting,
    load_rule,
    rule_files,
)

REQUIRED_FIELDS = ("id", "name", "description", "severity", "query", "tactics",
                   "relevantTechniques", "kind")

NAME_MAX = 256  # AnalyticsTemplateInternalModelBase.cs: [StringLength(256)] on name
DESCRIPTION_MAX = 5000  # ibid.: [StringLength(5000)] on description
QUERY_MAX = 10_000  # ScheduledTemplateInternalModel.cs: [StringLength(10000, MinimumLength = 1)]
SEVERITIES = ("Informational", "Low", "Medium", "High")
KINDS = ("Scheduled", "NRT")
#: Template status values seen in Azure-Sentinel rule files and the API's template status.
STATUSES = ("Available", "Experimental", "Deprecated", "Preview")
DURATION_MIN = timedelta(minutes=5)  # RangeTimeSpanIsoFormat("00:05:00", "14.00:00:00")
DURATION_MAX = timedelta(days=14)
#: ScheduledTemplateTriggerOperatorConverter.cs accepts both spellings.
TRIGGER_OPERATORS = ("gt", "lt", "eq", "ne", "GreaterThan", "LessThan", "Equal", "NotEqual")
THRESHOLD_MAX = 10_000  # ScheduledTemplateInternalModel.cs: [Range(0, 10000)]
ENTITY_MAPPINGS_MAX = 10  # REST API / Sentinel docs (Azure-Sentinel's template CI allows 5)
IDENTIFIERS_MAX = 3  # ValidEntityMappingsAttribute: fieldMappingsMaxLength 3
CUSTOM_DETAILS_MAX = 20  # DictionaryLength(20)
CUSTOM_KEY = re.compile(r"^[a-zA-Z]+\w*$")  # DictionaryKeyMatchesRegex
CUSTOM_KEY_MAX = 20  # DictionaryMaxKeyAndValueLengths(maxKeyLength: 20, maxValueLength: 500)
COLUMN_NAME = re.compile(r"^[a-zA-Z_]+\w*$")  # column names in mappings and custom details
COLUMN_NAME_MAX = 500  # "500 is the max length of a column name in LA"
PLACEHOLDERS_MAX = 3  # AlertDetailsOverride.cs: MaxAmountOfDynamicContentPlaceHolders(3)
PLACEHOLDER = re.compile(r"\{\{\s*([^{}\s]+)\s*\}\}")
HUNT_PLACEHOLDERS = ("{{StartTimeISO}}", "{{EndTimeISO}}")
VERSION = re.compile(r"^\d+\.\d+\.\d+$")  # QueryBasedTemplateVersionValidator: x.y.z

#: Entity type -> (valid identifiers, identifier sets of which one must be mapped).
#: Azure-Sentinel EntityMappingIdentifiers.cs (the same map Sentinel's API enforces).
ENTITY_IDENTIFIERS: dict[str, tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]] = {
    "Account": (("Name", "FullName", "NTDomain", "DnsDomain", "UPNSuffix", "Sid", "AadTenantId",
                 "AadUserId", "PUID", "IsDomainJoined", "DisplayName", "ObjectGuid"),
                (("FullName",), ("Sid",), ("Name",), ("AadUserId",), ("PUID",), ("ObjectGuid",))),
    "AzureResource": (("ResourceId",), (("ResourceId",),)),
    "CloudApplication": (("AppId", "Name", "InstanceName"), (("AppId",), ("Name",))),
    "DNS": (("DomainName",), (("DomainName",),)),
    "File": (("Directory", "Name"), (("Name",),)),
    "FileHash": (("Algorithm", "Value"), (("Algorithm", "Value"),)),
    "Host": (("DnsDomain", "NTDomain", "HostName", "FullName", "NetBiosName", "AzureID",
              "OMSAgentID", "OSFamily", "OSVersion", "IsDomainJoined"),
             (("FullName",), ("HostName",), ("NetBiosName",), ("AzureID",), ("OMSAgentID",))),
    "IoTDevice": (("DeviceId", "DeviceName", "Manufacturer", "Model", "FirmwareVersion",
                   "OperatingSystem", "MacAddress", "Protocols", "SerialNumber", "Source",
                   "IoTSecurityAgentId", "DeviceType"), (("DeviceId",),)),
    "IP": (("Address",), (("Address",),)),
    "Mailbox": (("MailboxPrimaryAddress", "DisplayName", "Upn", "ExternalDirectoryObjectId",
                 "RiskLevel"), (("MailboxPrimaryAddress",),)),
    "MailCluster": (("NetworkMessageIds", "CountByDeliveryStatus", "CountByThreatType",
                     "CountByProtectionStatus", "Threats", "Query", "QueryTime", "MailCount",
                     "IsVolumeAnomaly", "Source", "ClusterSourceIdentifier", "ClusterSourceType",
                     "ClusterQueryStartTime", "ClusterQueryEndTime", "ClusterGroup"),
                    (("Query",), ("Source",))),
    "MailMessage": (("Recipient", "Urls", "Threats", "Sender", "P1Sender", "P1SenderDisplayName",
                     "P1SenderDomain", "SenderIP", "P2Sender", "P2SenderDisplayName",
                     "P2SenderDomain", "ReceivedDate", "NetworkMessageId", "InternetMessageId",
                     "Subject", "BodyFingerprintBin1", "BodyFingerprintBin2",
                     "BodyFingerprintBin3", "BodyFingerprintBin4", "BodyFingerprintBin5",
                     "AntispamDirection", "DeliveryAction", "DeliveryLocation", "Language",
                     "ThreatDetectionMethods"), (("NetworkMessageId",), ("Recipient",))),
    "Malware": (("Name", "Category"), (("Name",),)),
    "Process": (("ProcessId", "CommandLine", "ElevationToken", "CreationTimeUtc"),
                (("CommandLine",), ("ProcessId",))),
    "RegistryKey": (("Hive", "Key"), (("Key",), ("Hive",))),
    "RegistryValue": (("Name", "Value", "ValueType"), (("Name",),)),
    "SecurityGroup": (("DistinguishedName", "SID", "ObjectGuid"),
                      (("DistinguishedName",), ("SID",), ("ObjectGuid",))),
    "SubmissionMail": (("NetworkMessageId", "Timestamp", "Recipient", "Sender", "SenderIp",
                        "Subject", "ReportType", "SubmissionId", "SubmissionDate", "Submitter"),
                       (("SubmissionId",), ("NetworkMessageId",), ("Recipient",),
                        ("Submitter",))),
    "URL": (("Url",), (("Url",),)),
}

Check = Callable[[Rule], Iterable[Finding]]


# --- finding helpers -------------------------------------------------------------------------


def _error(rule: Rule, code: str, message: str, *key: str | int) -> Finding:
    return Finding(Level.ERROR, code, message, rule.path, rule.line_of(*key), rule.id)


def _warning(rule: Rule, code: str, message: str, *key: str | int) -> Finding:
    return Finding(Level.WARNING, code, message, rule.path, rule.line_of(*key), rule.id)


def _get(rule: Rule, key: str) -> Any:
    return rule.data.get(key)


# --- identity and text -------------------------------------------------------------------------


def check_required(rule: Rule) -> Iterator[Finding]:
    for key in REQUIRED_FIELDS:
        if rule.data.get(key) in (None, "", []):
            yield _error(rule, "missing-field", f"{key} is required", key)
    if rule.kind == "Scheduled" and not rule.data.get("requiredDataConnectors"):
        # ScheduledTemplateInternalModel.cs: requiredDataConnectors is Required.Always.
        yield _error(rule, "missing-field", "requiredDataConnectors is required", "kind")


def is_guid(value: Any) -> bool:
    return isinstance(value, str) and bool(GUID.fullmatch(value.strip("{}")))


def check_id(rule: Rule) -> Iterator[Finding]:
    value = _get(rule, "id")
    if value not in (None, "") and not is_guid(value):
        yield _error(rule, "bad-id", f"id {value!r} is not a GUID", "id")


def check_text(rule: Rule) -> Iterator[Finding]:
    for key, limit in (("name", NAME_MAX), ("description", DESCRIPTION_MAX)):
        value = _get(rule, key)
        if value is not None and not isinstance(value, str):
            yield _error(rule, f"bad-{key}", f"{key} must be text", key)
        elif isinstance(value, str) and len(value) > limit:
            yield _error(rule, f"{key}-too-long",
                         f"{key} is {len(value)} characters; Sentinel allows {limit}", key)
    version = _get(rule, "version")
    if version is not None and not VERSION.match(str(version)):
        yield _warning(rule, "bad-version",
                       f"version {version!r} is not major.minor.patch (e.g. 1.0.0)", "version")


def check_enums(rule: Rule) -> Iterator[Finding]:
    severity = _get(rule, "severity")
    if severity not in (None, "") and severity not in SEVERITIES:
        yield _error(rule, "bad-severity",
                     f"severity {severity!r} is not one of {', '.join(SEVERITIES)}", "severity")
    kind = _get(rule, "kind")
    if kind not in (None, "") and kind not in KINDS:
        yield _error(rule, "bad-kind", f"kind {kind!r} is not one of {', '.join(KINDS)}", "kind")
    status = _get(rule, "status")
    if status is not None and status not in STATUSES:
        yield _warning(rule, "bad-status",
                       f"status {status!r} is not one of {', '.join(STATUSES)}", "status")


# --- schedule ------------------------------------------------------------------------------


def _duration(rule: Rule, key: str, findings: list[Finding]) -> timedelta | None:
    from .errors import InputError
    from .timespan import parse_duration

    value = _get(rule, key)
    if value is None:
        findings.append(_error(rule, "missing-field", f"{key} is required for a Scheduled rule",
                               "kind"))
        return None
    try:
        delta = parse_duration(str(value))
    except InputError:
        findings.append(_error(rule, "bad-duration",
                               f"{key} {value!r} is not a duration (use 5m, 1h, 14d or PT1H)",
                               key))
        return None
    if not DURATION_MIN <= delta <= DURATION_MAX:
        findings.append(_error(rule, "duration-out-of-range",
                               f"{key} {value!r} is outside Sentinel's 5 minutes to 14 days", key))
    return delta


def check_schedule(rule: Rule) -> list[Finding]:
    if rule.kind != "Scheduled":
        return []
    findings: list[Finding] = []
    frequency = _duration(rule, "queryFrequency", findings)
    period = _duration(rule, "queryPeriod", findings)
    if frequency is not None and period is not None:
        if period < frequency:
            findings.append(_error(
                rule, "period-shorter-than-frequency",
                f"queryPeriod {_get(rule, 'queryPeriod')} is shorter than queryFrequency "
                f"{_get(rule, 'queryFrequency')}: events between runs would never be queried",
                "queryPeriod"))
        if period >= timedelta(days=2) and frequency < timedelta(hours=1):
            # FrequencyLimitationForLongPeriodQuery.cs
            findings.append(_error(
                rule, "frequency-too-short",
                "when queryPeriod is 2 days or more, queryFrequency must be at least 1 hour",
                "queryFrequency"))
    operator = _get(rule, "triggerOperator")
    if operator is None:
        findings.append(_error(rule, "missing-field", "triggerOperator is required", "kind"))
    elif operator not in TRIGGER_OPERATORS:
        findings.append(_error(rule, "bad-trigger-operator",
                               f"triggerOperator {operator!r} is not one of "
                               + ", ".join(TRIGGER_OPERATORS), "triggerOperator"))
    threshold = _get(rule, "triggerThreshold")
    if threshold is None:
        findings.append(_error(rule, "missing-field", "triggerThreshold is required", "kind"))
    elif (not isinstance(threshold, int) or isinstance(threshold, bool)
          or not 0 <= threshold <= THRESHOLD_MAX):
        findings.append(_error(rule, "bad-trigger-threshold",
                               f"triggerThreshold {threshold!r} is not an integer from 0 to "
                               f"{THRESHOLD_MAX}", "triggerThreshold"))
    return findings


# --- ATT&CK --------------------------------------------------------------------------------


def check_attack(rule: Rule) -> Iterator[Finding]:
    raw_tactics = _get(rule, "tactics")
    tactics = raw_tactics if isinstance(raw_tactics, list) else []
    for i, tactic in enumerate(tactics):
        if tactic not in attack.TACTICS:
            yield _error(rule, "unknown-tactic",
                         f"tactic {tactic!r} is not a Sentinel tactic name (e.g. InitialAccess)",
                         "tactics", i)
    raw_techniques = _get(rule, "relevantTechniques")
    techniques = raw_techniques if isinstance(raw_techniques, list) else []
    for i, technique in enumerate(techniques):
        if not isinstance(technique, str) or not attack.TECHNIQUE_ID.match(technique):
            yield _error(rule, "bad-technique",
                         f"technique {technique!r} is not an ATT&CK id like T1190 or T1505.003",
                         "relevantTechniques", i)
            continue
        expected = attack.technique_tactics(technique)
        if expected is None:
            yield _warning(rule, "unknown-technique",
                           f"technique {technique} is not in the bundled ATT&CK map; its tactic "
                           "cannot be checked", "relevantTechniques", i)
        elif not set(expected) & set(tactics):
            yield _error(rule, "technique-without-tactic",
                         f"technique {technique} belongs to {', '.join(expected)}, none of which "
                         "is in tactics", "relevantTechniques", i)


# --- entity mappings, custom details, alert details ------------------------------------------


def check_entity_mappings(rule: Rule) -> Iterator[Finding]:
    mappings = _get(rule, "entityMappings")
    if mappings is None:
        return
    if not isinstance(mappings, list):
        yield _error(rule, "bad-entity-mappings", "entityMappings must be a list",
                     "entityMappings")
        return
    if len(mappings) > ENTITY_MAPPINGS_MAX:
        yield _error(rule, "too-many-entity-mappings",
                     f"{len(mappings)} entity mappings; Sentinel allows {ENTITY_MAPPINGS_MAX}",
                     "entityMappings")
    for i, mapping in enumerate(mappings):
        yield from _check_entity(rule, i, mapping)


def _check_entity(rule: Rule, i: int, mapping: Any) -> Iterator[Finding]:
    where = ("entityMappings", i)
    entity = mapping.get("entityType") if isinstance(mapping, dict) else None
    if entity not in ENTITY_IDENTIFIERS:
        yield _error(rule, "bad-entity-type",
                     f"entityType {entity!r} is not a Sentinel entity type (e.g. Host, Account, "
                     "IP, URL, FileHash, Process)", *where, "entityType")
        return
    fields = mapping.get("fieldMappings")
    if not isinstance(fields, list) or not fields:
        yield _error(rule, "bad-entity-mappings", f"{entity}: fieldMappings must be a non-empty "
                     "list", *where)
        return
    if len(fields) > IDENTIFIERS_MAX:
        yield _error(rule, "too-many-identifiers",
                     f"{entity}: {len(fields)} identifiers; Sentinel allows {IDENTIFIERS_MAX}",
                     *where, "fieldMappings")
    valid, required = ENTITY_IDENTIFIERS[entity]
    used: set[str] = set()
    for j, field in enumerate(fields):
        at = (*where, "fieldMappings", j)
        identifier = field.get("identifier") if isinstance(field, dict) else None
        column = field.get("columnName") if isinstance(field, dict) else None
        if identifier not in valid:
            yield _error(rule, "bad-identifier",
                         f"{entity}: identifier {identifier!r} is not one of {', '.join(valid)}",
                         *at)
        elif identifier in used:
            yield _error(rule, "duplicate-identifier",
                         f"{entity}: identifier {identifier} is mapped twice", *at)
        else:
            used.add(identifier)
        if not column:
            yield _error(rule, "missing-column-name", f"{entity}: columnName is required", *at)
        elif not isinstance(column, str) or not COLUMN_NAME.match(column) or len(
                column) > COLUMN_NAME_MAX:
            yield _error(rule, "bad-column-name",
                         f"{entity}: columnName {column!r} is not a column name", *at,
                         "columnName")
    if not any(all(r in used for r in combo) for combo in required):
        combos = "; ".join(" + ".join(c) for c in required)
        yield _error(rule, "missing-strong-identifier",
                     f"{entity}: map one of these identifier sets: {combos}", *where)


def check_custom_details(rule: Rule) -> Iterator[Finding]:
    details = _get(rule, "customDetails")
    if details is None:
        return
    if not isinstance(details, dict):
        yield _error(rule, "bad-custom-details", "customDetails must be a mapping",
                     "customDetails")
        return
    if len(details) > CUSTOM_DETAILS_MAX:
        yield _error(rule, "too-many-custom-details",
                     f"{len(details)} custom details; Sentinel allows {CUSTOM_DETAILS_MAX}",
                     "customDetails")
    for key, value in details.items():
        if not CUSTOM_KEY.match(str(key)) or len(str(key)) > CUSTOM_KEY_MAX:
            yield _error(rule, "bad-custom-detail-key",
                         f"custom detail key {key!r} must start with a letter, hold only "
                         f"letters, digits and _, and be at most {CUSTOM_KEY_MAX} characters",
                         "customDetails", str(key))
        if not isinstance(value, str) or not COLUMN_NAME.match(value):
            yield _error(rule, "bad-custom-detail-value",
                         f"custom detail {key}: {value!r} is not a column name",
                         "customDetails", str(key))


def check_alert_details(rule: Rule) -> Iterator[Finding]:
    override = _get(rule, "alertDetailsOverride")
    if not isinstance(override, dict):
        return
    for key, limit in (("alertDisplayNameFormat", NAME_MAX),
                       ("alertDescriptionFormat", DESCRIPTION_MAX)):
        text = override.get(key)
        if not isinstance(text, str):
            continue
        if len(text) > limit:
            yield _error(rule, "alert-details-too-long",
                         f"{key} is {len(text)} characters; Sentinel allows {limit}",
                         "alertDetailsOverride", key)
        count = len(PLACEHOLDER.findall(text))
        if count > PLACEHOLDERS_MAX:
            yield _error(rule, "too-many-placeholders",
                         f"{key} has {count} {{{{column}}}} placeholders; Sentinel allows "
                         f"{PLACEHOLDERS_MAX}", "alertDetailsOverride", key)


# --- the query -------------------------------------------------------------------------------


def check_kql_parses(rule: Rule) -> Iterator[Finding]:
    yield from _parse_findings(rule.query, rule.path, rule.line_of("query"), rule.id)


def _parse_findings(query: str, path: str, key_line: int | None,
                    rule_id: str | None) -> Iterator[Finding]:
    import duckdb_kql

    for diagnostic in duckdb_kql.validate(query)[:1]:
        yield Finding(Level.ERROR, "kql-syntax", f"the KQL does not parse: {diagnostic.message}",
                      path, _query_line(path, key_line, diagnostic.span.line), rule_id)


def _deployed(rule: Rule) -> str:
    """The deployed query; the bare query when the exclusions are broken (check_exclusions
    reports those), so the other checks still run."""
    try:
        return deployed_query(rule)
    except InputError:
        return rule.query


def check_query_length(rule: Rule) -> Iterator[Finding]:
    length = len(_deployed(rule))
    if length > QUERY_MAX:
        yield _error(rule, "query-too-long",
                     f"the deployed query is {length:,} characters; Sentinel allows "
                     f"{QUERY_MAX:,}", "query")


@dataclass(frozen=True)
class QueryFacts:
    """What the local engine and duckdb-kql's IR say about a query.

    ``unknown`` are the columns it reads that no table or earlier operator provides (checked
    case-sensitively, as Kusto does, by walking the IR operator by operator); ``output`` the
    columns it returns (from running it over empty tables), None when it could not run.
    """

    parsed: bool
    tables: tuple[str, ...] = ()
    unsupported: str | None = None
    unknown: tuple[str, ...] = ()
    engine_error: str | None = None
    output: tuple[str, ...] | None = None
    unsupported_line: int | None = None


@lru_cache(maxsize=64)
def query_facts(kql: str) -> QueryFacts:
    """Analyse *kql* once (several checks share the answer)."""
    import duckdb_kql
    from duckdb_kql.lower import lower

    from .schema import known_tables

    try:
        tree = lower(kql)
    except duckdb_kql.KqlUnsupportedError as exc:
        return QueryFacts(True, unsupported=first_line(exc), unsupported_line=_span_line(exc))
    except duckdb_kql.KqlError:
        return QueryFacts(False)
    # A tabular `let` name is read like a table but is defined by the query itself.
    bound = {name for name, _ in getattr(tree, "lets", ())}
    tables = tuple(dict.fromkeys(t for t in _table_refs(tree) if t not in bound))
    schemas = known_tables()
    if not all(t in schemas for t in tables):
        return QueryFacts(True, tables)
    unknown, static_output = _scope_walk(tree, {t: list(schemas[t].columns) for t in tables})
    output, error, unsupported = _run_empty(kql, tables)
    return QueryFacts(True, tables, first_line(unsupported) if unsupported else None,
                      tuple(unknown),
                      error, output if output is not None else static_output,
                      _span_line(unsupported.__cause__) if unsupported else None)


def _run_empty(kql: str, tables: Sequence[str]
               ) -> tuple[tuple[str, ...] | None, str | None, Exception | None]:
    """Run *kql* over empty tables: (output columns, binder error, what it cannot run)."""
    import duckdb

    from .engine import LocalEngine
    from .errors import InputError, UnsupportedQueryError

    with LocalEngine() as engine:
        for table in tables:
            engine.load_empty(table)
        try:
            columns, _rows = engine.query(kql)
        except UnsupportedQueryError as exc:
            return None, None, exc
        except InputError as exc:
            binder = isinstance(exc.__cause__, duckdb.BinderException)
            return None, str(exc) if binder else None, None if binder else exc
    return tuple(columns), None, None


def _span_line(exc: BaseException | None) -> int | None:
    span = getattr(exc, "span", None)
    line = getattr(span, "line", None)
    return line if isinstance(line, int) else None


def _table_refs(node: Any) -> Iterator[str]:
    from duckdb_kql import ir

    if isinstance(node, ir.TableRef):
        yield node.name
    elif isinstance(node, list | tuple):
        for item in node:
            yield from _table_refs(item)
    elif hasattr(node, "__dataclass_fields__"):
        for name in node.__dataclass_fields__:
            yield from _table_refs(getattr(node, name))


def _reads(node: Any) -> Iterator[str]:
    """Column names an expression reads (not inside sub-queries or let-bound values)."""
    from duckdb_kql import ir

    if isinstance(node, ir.ColumnRef):
        yield node.name
    elif isinstance(node, ir.Query | ir.LetRef):
        return
    elif isinstance(node, list | tuple):
        for item in node:
            yield from _reads(item)
    elif hasattr(node, "__dataclass_fields__"):
        for name in node.__dataclass_fields__:
            yield from _reads(getattr(node, name))


#: Operators whose column reads the walk understands (anything else ends the walk).
_WALKED = ("Where", "Sort", "Top", "Take", "Extend", "Project", "Distinct", "Summarize",
           "ProjectAway", "ProjectRename", "Count")


def _scope_walk(tree: Any, schemas: dict[str, list[str]]
                ) -> tuple[list[str], tuple[str, ...] | None]:
    """Columns read but never in scope, and the output columns, walking operator by operator.

    Each operator's reads are checked against the columns its input has; its output columns
    come from duckdb-kql's own column tracking (``duckdb_kql.schema.output_columns``, which
    reproduces Kusto's naming: ``count_``, ``max_X``, ``Column1``). The walk stops, keeping
    what it found so far, at any operator it does not model, so it never reports a column
    that is in fact there; the run over empty tables backs it up.
    """
    from dataclasses import replace

    import duckdb_kql
    from duckdb_kql import ir
    from duckdb_kql.schema import output_columns

    unknown: list[str] = []
    if not isinstance(tree.source, ir.TableRef) or tree.source.name not in schemas:
        return unknown, None
    columns: list[str] = list(schemas[tree.source.name])

    def read(node: Any, scope: Sequence[str]) -> None:
        for name in _reads(node):
            if name not in scope and name not in unknown:
                unknown.append(name)

    for i, op in enumerate(tree.operators):
        if type(op).__name__ not in _WALKED:
            return unknown, None
        if isinstance(op, ir.Extend | ir.Project):
            # `extend a = 1, b = a + 1`: later expressions see the earlier ones.
            scope = list(columns)
            for named in op.expressions:
                read(named.expr, scope)
                if named.name:
                    scope.append(named.name)
        elif isinstance(op, ir.ProjectRename):
            read([ir.ColumnRef(old) for old, _new in op.renames], columns)
        elif not isinstance(op, ir.ProjectAway):
            read(op, columns)
        try:
            columns = output_columns(replace(tree, operators=tree.operators[: i + 1]), schemas)
        except duckdb_kql.KqlError:
            return unknown, None
    return unknown, tuple(columns)


def _facts(rule: Rule) -> QueryFacts:
    return query_facts(_deployed(rule))


def check_query_columns(rule: Rule) -> Iterator[Finding]:
    """Tables have a schema and a connector; every column read exists; KQL runs locally."""
    if not rule.query:
        return
    facts = _facts(rule)
    if not facts.parsed:
        return  # check_kql_parses reports it
    if facts.unsupported:
        line = (_query_line(rule.path, rule.line_of("query"), facts.unsupported_line)
                if facts.unsupported_line else rule.line_of("query"))
        yield Finding(Level.WARNING, "kql-unsupported-locally",
                      f"{facts.unsupported} — the rule may still be valid in Sentinel, but "
                      "its columns and outputs are not checked", rule.path, line, rule.id)
    from .schema import known_tables

    for table in facts.tables:
        if table not in known_tables():
            yield Finding(Level.WARNING, "no-table-schema",
                          f"no bundled schema for table {table}: its columns are not checked",
                          rule.path, _query_name_line(rule, table), rule.id)
        if table not in rule.tables:
            line = (rule.line_of("requiredDataConnectors")
                    if "requiredDataConnectors" in rule.data else _query_name_line(rule, table))
            yield Finding(Level.ERROR, "table-not-in-connectors",
                          f"the query reads {table}, which no requiredDataConnectors dataTypes "
                          "lists", rule.path, line, rule.id)
    tables = ", ".join(facts.tables)
    for name in facts.unknown:
        yield Finding(Level.ERROR, "unknown-column",
                      f"column {name} is not in {tables} (nor defined by the query)",
                      rule.path, _query_name_line(rule, name), rule.id)
    if facts.engine_error and not facts.unknown:
        yield _error(rule, "unknown-column", facts.engine_error, "query")


def check_output_columns(rule: Rule) -> Iterator[Finding]:
    """Columns named by entity mappings, custom details and alert details are query output."""
    if not rule.query:
        return
    output = _facts(rule).output
    if output is None:
        return
    have = ", ".join(output)
    mappings = _get(rule, "entityMappings")
    for i, mapping in enumerate(mappings if isinstance(mappings, list) else []):
        fields = mapping.get("fieldMappings") if isinstance(mapping, dict) else None
        for j, field in enumerate(fields if isinstance(fields, list) else []):
            column = field.get("columnName") if isinstance(field, dict) else None
            if isinstance(column, str) and column and column not in output:
                yield _error(rule, "entity-column-not-in-output",
                             f"entity mapping column {column} is not an output column of the "
                             f"query ({have})",
                             "entityMappings", i, "fieldMappings", j, "columnName")
    details = _get(rule, "customDetails")
    for key, value in (details.items() if isinstance(details, dict) else []):
        if isinstance(value, str) and value not in output:
            yield _error(rule, "custom-detail-not-in-output",
                         f"custom detail {key} names column {value}, which the query does not "
                         f"output ({have})", "customDetails", str(key))
    override = _get(rule, "alertDetailsOverride")
    for key, text in (override.items() if isinstance(override, dict) else []):
        if key in ("alertTacticsColumnName", "alertSeverityColumnName"):
            names = [text] if isinstance(text, str) else []
        elif isinstance(text, str):
            names = PLACEHOLDER.findall(text)
        else:
            names = []
        for name in names:
            if name not in output:
                yield _error(rule, "alert-column-not-in-output",
                             f"{key} uses column {name}, which the query does not output "
                             f"({have})", "alertDetailsOverride", key)


def check_exclusions(rule: Rule) -> Iterator[Finding]:
    """The rule's exclusions file: malformed entries (errors) and expired ones (warnings)."""
    from datetime import UTC, datetime

    from .errors import InputError
    from .exclusions import apply, exclusions_path, load_exclusions

    entries, findings = load_exclusions(rule)
    yield from findings
    path, today = str(exclusions_path(rule)), datetime.now(UTC).date()
    for entry in entries:
        if entry.expired(today):
            yield Finding(Level.WARNING, "exclusion-expired",
                          f"exclusion {entry.name!r} expired on {entry.expires} and is no "
                          "longer compiled into the rule; renew or delete it", path,
                          entry.line, rule.id)
    try:
        apply(rule.query, entries, rule.tables)
    except InputError as exc:
        yield Finding(Level.ERROR, "exclusion-unplaceable", str(exc), path, None, rule.id)


CHECKS: tuple[Check, ...] = (
    check_required, check_id, check_text, check_enums, check_schedule, check_attack,
    check_entity_mappings, check_custom_details, check_alert_details, check_kql_parses,
    check_query_length, check_query_columns, check_output_columns, check_exclusions,
)


# --- lines inside the query --------------------------------------------------------------------


def _file_lines(path: str) -> tuple[str, ...]:
    try:
        return tuple(Path(path).read_text(encoding="utf-8").splitlines())
    except (OSError, UnicodeDecodeError):
        return ()


def _query_line(path: str, key_line: int | None, line_in_query: int) -> int | None:
    """The file line of line *line_in_query* (1-based) of the query whose key is on *key_line*."""
    if key_line is None:
        return None
    lines = _file_lines(path)
    text = lines[key_line - 1] if 0 < key_line <= len(lines) else ""
    value = text.split(":", 1)[1].strip() if ":" in text else ""
    block = value.startswith(("|", ">")) or value == ""
    return key_line + line_in_query - (0 if block else 1)


_STRING = re.compile(r'@?"(?:[^"\\]|\\.)*"|@?\'(?:[^\'\\]|\\.)*\'')


def _query_name_line(rule: Rule, name: str) -> int | None:
    """The file line where *name* first appears in the query as a word outside strings."""
    word = re.compile(rf"(?<![\w$]){re.escape(name)}(?!\w)")
    for n, text in enumerate(rule.query.splitlines(), start=1):
        if word.search(_STRING.sub('""', text.split("//", 1)[0])):
            return _query_line(rule.path, rule.line_of("query"), n)
    return rule.line_of("query")


# --- across files ------------------------------------------------------------------------------


def check_duplicate_ids(items: Sequence[Rule | HuntingQuery]) -> Iterator[Finding]:
    """Each file whose id another file validated with it also uses."""
    by_id: dict[str, list[Rule | HuntingQuery]] = {}
    for item in items:
        if item.id:
            by_id.setdefault(item.id.lower(), []).append(item)
    for group in by_id.values():
        if len(group) < 2:
            continue
        for item in group:
            others = ", ".join(f"{o.path}:{o.line_of('id')}" for o in group if o is not item)
            yield Finding(Level.ERROR, "duplicate-id", f"id {item.id} is also used by {others}",
                          item.path, item.line_of("id"), item.id)


def validate_rules(rules: Iterable[Rule]) -> list[Finding]:
    """Every finding for *rules*, including the checks across the pack (duplicate ids)."""
    rules = list(rules)
    findings: list[Finding] = []
    for rule in rules:
        for check in CHECKS:
            findings.extend(check(rule))
    findings.extend(check_duplicate_ids(rules))
    return findings


def validate_hunting(queries: Iterable[HuntingQuery],
                     rule_ids: Iterable[str] = ()) -> list[Finding]:
    """Hunting queries: GUID id, KQL parses, the window placeholders, the rule they hunt for."""
    queries = list(queries)
    known = {r.lower() for r in rule_ids}
    findings: list[Finding] = []
    for q in queries:
        def error(code: str, message: str, *key: str, q: HuntingQuery = q) -> None:
            findings.append(Finding(Level.ERROR, code, message, q.path, q.line_of(*key), q.id))

        if not q.id:
            error("missing-field", "id is required", "id")
        elif not is_guid(q.id):
            error("bad-id", f"id {q.id!r} is not a GUID", "id")
        if not q.query:
            error("missing-field", "query is required", "query")
            continue
        findings.extend(_parse_findings(q.query, q.path, q.line_of("query"), q.id))
        missing = [p for p in HUNT_PLACEHOLDERS if p not in q.query]
        if missing:
            error("missing-time-placeholder",
                  f"the query lacks {' and '.join(missing)}: the caller could not choose its "
                  "window", "query")
        if q.rule_id is not None and q.rule_id.lower() not in known:
            error("unknown-analytic-rule",
                  f"analyticRuleId {q.rule_id} is not the id of any analytic rule",
                  "analyticRuleId")
    findings.extend(check_duplicate_ids(queries))
    return findings


def _is_hunting(path: Path, data: Mapping[str, Any]) -> bool:
    """A hunting query lives in a folder named ``hunting`` or names its ``analyticRuleId``."""
    return path.resolve().parent.name.lower() == "hunting" or "analyticRuleId" in data


def validate_paths(paths: Iterable[Path] | None = None, *, root: Path | None = None
                   ) -> tuple[int, list[Finding]]:
    """Load and validate rule and hunting files; return (files checked, findings).

    Without *paths*: ``analytics/`` and ``hunting/`` of the pack at *root* (default bundled).
    A file is a hunting query when it lies under a folder named ``hunting`` or has a
    top-level ``analyticRuleId``.
    """
    paths = list(paths or [])
    files = rule_files(paths) if paths else [*rule_files(root=root), *hunting_files(root)]
    rules: list[Rule] = []
    hunts: list[HuntingQuery] = []
    findings: list[Finding] = []
    for path in files:
        if not path.exists():
            findings.append(Finding(Level.ERROR, "no-such-file", "no such file", str(path)))
            continue
        rule, problems = load_rule(path)
        findings.extend(problems)
        if rule is not None and _is_hunting(path, rule.data):
            hunt, _ = load_hunting(path)
            if hunt is not None:
                hunts.append(hunt)
        elif rule is not None:
            rules.append(rule)
    findings.extend(validate_rules(rules))
    if hunts:
        pack_ids = [] if not paths else [r.id for r in _pack_rules(root)]
        findings.extend(validate_hunting(hunts, [*(r.id for r in rules), *pack_ids]))
    if not paths:
        findings.extend(unlisted_ids(rules, root))
    return len(files), findings


def unlisted_ids(rules: Sequence[Rule], root: Path | None) -> list[Finding]:
    """Rules whose id the pack's shipped-ids list lacks: once such a rule is deleted from
    the pack, ``rollout --prune`` would no longer know the deployed copy is the pack's."""
    from .alert_rule import SHIPPED_IDS_FILE, resource_name, shipped_rule_ids

    listed = shipped_rule_ids(root)
    return [Finding(Level.WARNING, "not-in-shipped-ids",
                    f"rule id {r.id} is not in {SHIPPED_IDS_FILE}: append it (and never remove "
                    "a line), or rollout --prune cannot delete this rule once it is retired",
                    r.path, r.line_of("id"), r.id)
            for r in rules if resource_name(r) not in listed]


def _pack_rules(root: Path | None) -> list[Rule]:
    loaded = (load_rule(p)[0] for p in rule_files(root=root))
    return [r for r in loaded if r is not None]
