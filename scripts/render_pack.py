"""Rewrite the `query: |` blocks of the process-tree rules from detection.py and linux_detection.py.

    python scripts/render_pack.py

Everything else in the YAML files (comments included) is left as it is; tests/test_pack.py
fails when the committed queries differ from what this writes.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

from sentinel_t1190 import detection, linux_detection

ROOT = Path(__file__).resolve().parent.parent
FILES = {
    ROOT / "analytics" / "web_server_child_process.yaml": detection.rule_query,
    ROOT / "hunting" / "web_server_child_process.yaml": detection.hunting_query,
    ROOT / "analytics" / "linux_web_server_child_process.yaml": linux_detection.rule_query,
    ROOT / "hunting" / "linux_web_server_child_process.yaml": linux_detection.hunting_query,
}
# The block scalar: "query: |" and every following line that is indented or empty.
BLOCK = re.compile(r"^query: \|\n(?:(?:  .*)?\n)*", re.M)


def main() -> None:
    for path, render in FILES.items():
        text = path.read_text(encoding="utf-8")
        block = "query: |\n" + textwrap.indent(render(), "  ")
        new, count = BLOCK.subn(lambda _, block=block: block, text, count=1)
        if count != 1:
            raise SystemExit(f"{path}: no `query: |` block found")
        path.write_text(new, encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
