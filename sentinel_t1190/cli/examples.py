"""Examples shown at the end of each command's --help (and in docs/cli.md).

Offline examples run as written from any folder: they use the bundled pack, `--sample` or the
files `init` writes. Azure examples take their ids from shell variables ($SUB, $WORKSPACE_ID).
tests/test_cli_help.py checks that every command has one.
"""

from __future__ import annotations

EXAMPLES: dict[str, tuple[str, ...]] = {
    "rules": (
        "sentinel-t1190 rules",
        "sentinel-t1190 rules --output json",
    ),
    "validate": (
        "sentinel-t1190 validate",
        "sentinel-t1190 init my-pack && sentinel-t1190 validate my-pack/analytics",
    ),
    "init": (
        "sentinel-t1190 init my-pack && sentinel-t1190 test --pack my-pack",
    ),
    "test": (
        "sentinel-t1190 test",
        "sentinel-t1190 test --rule sql_injection_in_request --output json",
    ),
    "hunt": (
        "sentinel-t1190 hunt --sample",
        "sentinel-t1190 hunt --sample --output json --out findings.json",
        "sentinel-t1190 init my-pack && sentinel-t1190 hunt --local "
        "my-pack/telemetry/DeviceProcessEvents.csv --now 2026-01-15T12:00:00Z --timespan 7d",
        "sentinel-t1190 hunt --workspace-id $WORKSPACE_ID --timespan 30d --fail-on-findings",
        "sentinel-t1190 hunt --defender --timespan 7d --output json",
        "sentinel-t1190 hunt --cluster $CLUSTER_URL --database Security --timespan 365d",
    ),
    "backtest": (
        "sentinel-t1190 init my-pack && sentinel-t1190 backtest --pack my-pack --baseline "
        "my-pack --local my-pack/telemetry/DeviceProcessEvents.csv --now 2026-01-15T12:00:00Z",
        "sentinel-t1190 backtest --baseline origin/main --local DeviceProcessEvents.csv "
        "--fail-on-removed",
    ),
    "deploy": (
        "sentinel-t1190 deploy --subscription-id $SUB -g rg-sec -w sentinel-ws --dry-run",
        "sentinel-t1190 deploy --subscription-id $SUB -g rg-sec -w sentinel-ws "
        "--rule sql_injection_in_request",
        "sentinel-t1190 deploy --defender --rule web_server_child_process --dry-run",
    ),
    "status": (
        "sentinel-t1190 status --subscription-id $SUB -g rg-sec -w sentinel-ws",
        "sentinel-t1190 status --targets targets.csv --output json",
        "sentinel-t1190 status --defender",
    ),
    "doctor": (
        "sentinel-t1190 doctor --tenant-id $TENANT",
        "sentinel-t1190 doctor --subscription-id $SUB -g rg-sec -w sentinel-ws",
        "sentinel-t1190 doctor --subscription-id $SUB -g rg-sec -w sentinel-ws --output json",
    ),
    "health": (
        "sentinel-t1190 health --workspace-id $WORKSPACE_ID",
        "sentinel-t1190 health --targets targets.csv --timespan 7d --fail-on-unhealthy",
    ),
    "remove": (
        "sentinel-t1190 remove --subscription-id $SUB -g rg-sec -w sentinel-ws "
        "--rule sql_injection_in_request",
    ),
    "rollout": (
        "sentinel-t1190 rollout --targets targets.csv --dry-run",
        "sentinel-t1190 rollout --targets targets.csv --report rollout.json",
        "sentinel-t1190 rollout --resume rollout.json",
    ),
    "export": (
        "sentinel-t1190 export --format arm --format bicep --out build/",
        "sentinel-t1190 export --format sigma --rule web_server_child_process",
    ),
}


def epilog(command: str) -> str | None:
    """The 'Examples:' block of *command*'s help (click keeps \\b paragraphs unwrapped)."""
    lines = EXAMPLES.get(command)
    if not lines:
        return None
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)
