"""The bundled sample telemetry (made by scripts/make_sample.py) and its own clock."""

from __future__ import annotations

import json
from datetime import datetime
from importlib import resources
from pathlib import Path

from .timespan import parse_instant


def _folder() -> Path:
    return Path(str(resources.files("sentinel_t1190.data").joinpath("sample")))


def sample_files() -> list[str]:
    """The sample's telemetry files, named after their tables."""
    return sorted(str(p) for p in _folder().iterdir() if p.suffix == ".csv")


def sample_clock() -> datetime:
    """The instant the sample was recorded at: a hunt on it uses this as "now"."""
    meta = json.loads((_folder() / "sample.json").read_text(encoding="utf-8"))
    return parse_instant(meta["clock"])
