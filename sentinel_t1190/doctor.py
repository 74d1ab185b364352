"""`doctor`: who is signed in, and what it may do in a workspace, one check at a time.

Each check is one line: ok, failed (with a hint naming the fix, usually the missing role) or
skipped (an earlier check failed). Nothing here prints; the CLI renders :class:`Diagnosis`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from .errors import AuthError, SentinelT1190Error

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

    from .azure.arm import SentinelWorkspaceClient
    from .azure.clouds import Cloud
    from .azure.credentials import SignIn
    from .deploy import Target

#: The ARM action deploy, remove and rollout need (in Microsoft Sentinel Contributor).
WRITE_RULES = "Microsoft.SecurityInsights/alertRules/write"
READ_ROLE = "Microsoft Sentinel Reader"
WRITE_ROLE = "Microsoft Sentinel Contributor"
QUERY_ROLE = "Log Analytics Reader (or Microsoft Sentinel Reader)"


@dataclass(frozen=True)
class Check:
    name: str
    #: True ok, False failed, None skipped.
    ok: bool | None
    detail: str
    hint: str = ""

    def to_dict(self) -> dict[str, Any]:
        state = {True: "ok", False: "failed", None: "skipped"}[self.ok]
        return {"check": self.name, "status": state, "detail": self.detail, "hint": self.hint}


@dataclass
class Diagnosis:
    """What doctor found: the identity, the cloud, and the checks in order."""

    sign_in: SignIn
    cloud: Cloud
    tenant_asked: str | None
    workspace: dict[str, Any] | None = None
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok is not False for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "identity": {"credential": self.sign_in.credential,
                         "tenant_id": self.sign_in.tenant_id,
                         "object_id": self.sign_in.object_id, "name": self.sign_in.name,
                         "tenant_asked": self.tenant_asked},
            "cloud": {"name": self.cloud.name, "authority": self.cloud.authority_host,
                      "arm_endpoint": self.cloud.arm_endpoint,
                      "logs_endpoint": self.cloud.logs_endpoint,
                      "graph_endpoint": self.cloud.graph_endpoint},
            "workspace": self.workspace,
            "ok": self.ok,
            "checks": [c.to_dict() for c in self.checks],
        }


def diagnose(cloud: Cloud, *, tenant_id: str | None = None, target: Target | None = None,
             tables: Sequence[str] = (), credential: TokenCredential | None = None,
             defender: bool = False, **client_kwargs: Any) -> Diagnosis:
    """Sign in (DefaultAzureCredential in *tenant_id*, unless *credential*) and check the
    identity; with *target*, also the workspace and the pack's *tables* in it.

    Raises AuthError when no credential can sign in: there is nothing else to check then.
    *client_kwargs* go to the Azure SDK clients.
    """
    from .azure import arm, credentials

    token = credential or credentials.default_credential(cloud, tenant_id)
    diagnosis = Diagnosis(credentials.sign_in(token, cloud), cloud, tenant_id)
    identity_checks(diagnosis)
    if target is not None:
        with arm.workspace_client_for(target, token, cloud, **client_kwargs) as client:
            workspace_checks(diagnosis, client, tables)
    if defender:
        defender_checks(diagnosis, token)
    return diagnosis


def defender_checks(diagnosis: Diagnosis, credential: TokenCredential) -> None:
    """Defender XDR through Graph: advanced hunting answers (a one-row query), and custom
    detection rules can be read; a failure names the Graph permission that is missing."""
    from .azure.graph import (
        HUNTING_PERMISSION,
        RULES_PERMISSION,
        DefenderHuntingClient,
        DetectionRulesClient,
    )

    cloud = diagnosis.cloud
    with DefenderHuntingClient(cloud, credential, retry_total=1) as hunting:
        _rows, failed = _attempt(
            "defender hunting", f"the Microsoft Graph permission {HUNTING_PERMISSION}",
            partial(hunting.query, "defender", "DeviceProcessEvents | take 1",
                    timespan="P1D", on_rows=lambda _rows: None))
    diagnosis.checks.append(failed or Check(
        "defender hunting", True, f"advanced hunting answers at {cloud.graph_endpoint}"))
    with DetectionRulesClient(cloud, credential, retry_total=1) as rules:
        found, failed = _attempt(
            "defender rules", f"the Microsoft Graph permission {RULES_PERMISSION}",
            rules.list_rules)
    diagnosis.checks.append(failed or Check(
        "defender rules", True, f"{len(found)} custom detection rule(s) readable"))


def allowed(action: str, permissions: Iterable[Mapping[str, Any]]) -> bool:
    """Whether ARM's permissions (one ``{actions, notActions}`` per role assignment) grant
    *action*: some role's ``actions`` match it and that same role's ``notActions`` do not.
    Patterns use ``*`` as a wildcard and compare without case, as ARM does."""
    return any(
        _matches(action, p.get("actions")) and not _matches(action, p.get("notActions"))
        for p in permissions)


def _matches(action: str, patterns: Any) -> bool:
    if not isinstance(patterns, list):
        return False
    return any(isinstance(p, str) and re.fullmatch(
        ".*".join(re.escape(part) for part in p.split("*")), action, re.IGNORECASE)
        for p in patterns)


def identity_checks(diagnosis: Diagnosis) -> None:
    """The sign-in itself, and that its token comes from the tenant asked for."""
    who = diagnosis.sign_in
    diagnosis.checks.append(Check(
        "sign-in", True, f"{who.credential} as {who.name or who.object_id or 'unknown'} "
        f"(object id {who.object_id or 'unknown'}) in tenant {who.tenant_id or 'unknown'}"))
    asked = diagnosis.tenant_asked
    if asked and who.tenant_id and who.tenant_id.lower() != asked.lower():
        diagnosis.checks.append(Check(
            "tenant", False, f"asked for tenant {asked}, the token is from {who.tenant_id}",
            "a managed identity signs in only in its own tenant: leave --tenant-id/"
            "AZURE_TENANT_ID out, or use a credential of that tenant"))


def workspace_checks(diagnosis: Diagnosis, client: SentinelWorkspaceClient,
                     tables: Sequence[str]) -> None:
    """The workspace, Sentinel on it, reading and writing rules, querying it, its tables."""
    add = diagnosis.checks.append
    info, failed = _attempt("workspace", "Reader (or any Microsoft Sentinel role) on the "
                            "workspace", client.workspace_info)
    if failed:
        add(failed)
        for name in ("sentinel", "read rules", "write rules", "query"):
            add(Check(name, None, "skipped: the workspace could not be read"))
        return
    diagnosis.workspace = info.to_dict()
    add(Check("workspace", True, f"{info.workspace} (customerId {info.customer_id}, "
              f"{info.location or 'no location'})"))
    onboarded, failed = _attempt("sentinel", READ_ROLE, client.sentinel_onboarded)
    if failed:
        add(failed)
    elif onboarded:
        add(Check("sentinel", True, "Microsoft Sentinel is onboarded"))
    else:
        add(Check("sentinel", False, "Microsoft Sentinel is not enabled on this workspace",
                  "onboard it: Microsoft Sentinel > Add workspace"))
    rules, failed = _attempt("read rules", READ_ROLE, client.list_rules)
    add(failed or Check("read rules", True, f"{len(rules)} alert rule(s)"))
    permissions, failed = _attempt("write rules", WRITE_ROLE, client.caller_permissions)
    if failed:
        add(failed)
    elif allowed(WRITE_RULES, permissions):
        add(Check("write rules", True, f"{WRITE_RULES} granted"))
    else:
        add(Check("write rules", False, f"{WRITE_RULES} not granted (deploy, remove and "
                  f"rollout need it)", f"assign {WRITE_ROLE} on the workspace"))
    _table_checks(add, client, tables)


def _table_checks(add: Callable[[Check], None], client: SentinelWorkspaceClient,
                  tables: Sequence[str]) -> None:
    """One cheap query (the first table's schema) proves the Logs API answers; then whether
    each table the pack reads is there."""
    for index, table in enumerate(tables):
        found, failed = _attempt("query" if index == 0 else f"table {table}", QUERY_ROLE,
                                 partial(client.table_schema, table))
        if failed:
            add(failed)
            if index == 0:
                return
            continue
        if index == 0:
            add(Check("query", True, "the Logs API answers for this workspace"))
        if found.columns is None:
            add(Check(f"table {table}", False, found.reason or "not found",
                      "connect the data connector that fills it, or leave out the rules "
                      "that read it (--rule)"))
        else:
            add(Check(f"table {table}", True, f"{len(found.columns)} columns"))


def _attempt(name: str, role: str, call: Callable[[], Any]) -> tuple[Any, Check | None]:
    """(*call*'s result, None), or (None, a failed check) on our errors: for 401/403 the
    hint names *role*, the one the call needs."""
    try:
        return call(), None
    except AuthError as exc:
        return None, Check(name, False, str(exc), f"assign {role}")
    except SentinelT1190Error as exc:
        return None, Check(name, False, str(exc))
