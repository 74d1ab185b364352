"""Writing files whole: a temporary file in the same folder, renamed over the target.

Readers (and a killed run) see the old file or the new one, never half of one: the report a
rollout resumes from, the state of incremental hunts, exports, ``--out`` results.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from .errors import InputError


@contextmanager
def atomic_open(path: Path, what: str | None = None, *, parents: bool = False
                ) -> Iterator[IO[str]]:
    """A text handle whose content replaces *path* only when the block ends without error.

    *what* names the file in the error (``cannot write {what}: …``), default the path. The
    temporary name is unique, so threads writing the same target never share one. *parents*
    creates missing folders (otherwise a missing folder is an error, as for ``--out``).
    """
    what = what or str(path)
    try:
        if parents:
            path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    except OSError as exc:
        raise InputError(f"cannot write {what}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise InputError(f"cannot write {what}: {exc.strerror}") from exc
    finally:
        Path(tmp).unlink(missing_ok=True)
