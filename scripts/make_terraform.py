"""Regenerate infra/terraform/rules.tf.json from analytics/ (tests fail when it is stale)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sentinel_t1190.rules import load_pack  # noqa: E402
from sentinel_t1190.terraform import render, skipped_rules  # noqa: E402

TARGET = ROOT / "infra" / "terraform" / "rules.tf.json"

if __name__ == "__main__":
    rules = load_pack(ROOT).rules
    TARGET.write_text(render(rules), encoding="utf-8")
    print(f"wrote {TARGET.relative_to(ROOT)}")
    for rule, reason in skipped_rules(rules):
        print(f"skipped {Path(rule.path).name}: {reason}")
