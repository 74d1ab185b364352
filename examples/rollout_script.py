"""Roll the pack out from your own inventory with the Python API (no CLI, no shelling out).

The inventory is whatever your team keeps; here, a JSON list of customers as an MSSP might
hold it (a customer's ``tenant_id`` is used to authenticate there, e.g. a multi-tenant app):

    [{"customer": "Contoso", "tenant_id": null,
      "workspaces": [{"subscription_id": "…", "resource_group": "soc-rg", "name": "soc-ws"}]}]

    python examples/rollout_script.py inventory.json                 # plan only: writes nothing
    python examples/rollout_script.py inventory.json --apply         # deploy; report.json
    python examples/rollout_script.py inventory.json --apply --resume  # finish an interrupted run

Authentication is DefaultAzureCredential (environment, workload identity, managed identity,
Azure CLI…), per tenant when the inventory names tenants.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import sentinel_t1190 as st
from sentinel_t1190.deploy import Target
from sentinel_t1190.rollout import TargetResult


def load_inventory(path: Path) -> list[Target]:
    """Your inventory → targets (validated the same way as a --targets file)."""
    rows = ["subscription_id,resource_group,workspace,tenant_id"]
    for customer in json.loads(path.read_text(encoding="utf-8")):
        for ws in customer["workspaces"]:
            tenant = customer.get("tenant_id") or ""
            rows.append(f"{ws['subscription_id']},{ws['resource_group']},{ws['name']},{tenant}")
    from sentinel_t1190.targets import parse_targets

    return parse_targets("\n".join(rows), fmt="csv", source=str(path))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Roll the T1190 pack out to an inventory.")
    parser.add_argument("inventory", type=Path)
    parser.add_argument("--apply", action="store_true", help="deploy (default: plan only)")
    parser.add_argument("--resume", action="store_true", help="redo only what --report lists "
                        "as failed or not done")
    parser.add_argument("--report", type=Path, default=Path("report.json"))
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--arm-endpoint", help="private cloud or test server")
    parser.add_argument("--logs-endpoint", help="private cloud or test server")
    args = parser.parse_args(argv)

    targets = load_inventory(args.inventory)
    azure = {"arm_endpoint": args.arm_endpoint, "logs_endpoint": args.logs_endpoint}

    # 1. The plan: per workspace and rule, would-create / would-update / unchanged / refused.
    plan = st.run_rollout(targets, dry_run=True, concurrency=args.concurrency, **azure)
    for result in plan.targets:
        for rule in result.rules:
            print(f"{result.target.workspace:30} {rule['action']:13} {rule['name']}")
        if result.error:
            print(f"{result.target.workspace:30} {result.status.value:13} {result.error}")
    if not args.apply:
        return 1 if plan.failed else 0

    # 2. The rollout. The report is rewritten after every workspace, so a crash loses
    #    nothing and --resume finishes the job without touching finished workspaces.
    def progress(result: TargetResult) -> None:
        print(f"{result.status.value:9} {result.target.workspace}", file=sys.stderr)

    report = st.run_rollout(targets, concurrency=args.concurrency, report_path=args.report,
                        resume_from=args.report if args.resume else None,
                        on_result=progress, **azure)
    print(json.dumps(report.summary()))
    for failed in report.failed:
        print(f"FAILED {failed.target.workspace}: {failed.error}", file=sys.stderr)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
