"""``init DIR``: a starter pack repository, ready for ``--pack DIR`` and for CI.

It copies the bundled pack (rules, exclusion starters, fixtures, hunting queries) and its
shipped-ids list, the sample telemetry the pull-request backtest runs over, and writes a
README, an example targets file, and CI for GitHub Actions and Azure DevOps that validate,
test and backtest pull requests and roll out on merge (templates in ``data/starter/``).
"""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

from ._version import __version__
from .alert_rule import SHIPPED_IDS_FILE
from .errors import InputError
from .rules import default_pack_dir

#: Template in data/starter/ -> where init writes it in the new pack.
TEMPLATES = {
    "README.md": "README.md",
    "targets.yaml": "targets.yaml",
    "github-workflow.yml": ".github/workflows/sentinel-t1190.yml",
    "azure-pipelines.yml": "azure-pipelines.yml",
}
PACK_FOLDERS = ("analytics", "hunting")
TELEMETRY_DIR = "telemetry"


def _data(name: str) -> Path:
    return Path(str(resources.files("sentinel_t1190.data").joinpath(name)))


def init_pack(target: Path) -> list[Path]:
    """Write a starter pack into *target* (new or empty); return the files written."""
    from .sample import sample_clock, sample_files

    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise InputError(f"{target} already exists and is not an empty folder; init writes "
                         "a new pack only")
    source = default_pack_dir()
    try:
        target.mkdir(parents=True, exist_ok=True)
        for folder in PACK_FOLDERS:
            shutil.copytree(source / folder, target / folder,
                            ignore=shutil.ignore_patterns("__pycache__", ".*"))
        shutil.copyfile(_data(SHIPPED_IDS_FILE), target / SHIPPED_IDS_FILE)
        (target / TELEMETRY_DIR).mkdir()
        for sample in sample_files():
            shutil.copyfile(sample, target / TELEMETRY_DIR / Path(sample).name)
        clock = sample_clock().strftime("%Y-%m-%dT%H:%M:%SZ")
        for name, dest in TEMPLATES.items():
            text = (_data("starter") / name).read_text(encoding="utf-8")
            path = target / dest
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text.replace("@VERSION@", __version__)
                            .replace("@SAMPLE_CLOCK@", clock), encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write the pack into {target}: {exc}") from exc
    return sorted(p for p in target.rglob("*") if p.is_file())
