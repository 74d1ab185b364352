"""Writing result files: ``--out``, exports, hunt state, the rollout report.

- A regular file (or a new one) is written whole: a temporary file in the same folder, renamed
  over the target, so readers (and a killed run) see the old file or the new one, never half
  of one. An existing file keeps its permission bits; a new one gets the umask's (0644 with
  the usual 022), as a shell redirection would.
- A symlink is followed: its target is written and the link stays a link.
- A device, FIFO or other special file (``/dev/null``, ``/dev/stdout``, a named pipe) is
  written in place: it is never replaced by a regular file.
- The temporary file is named ``.<name>.<pid>.<random>.partial``: it is removed when the block
  fails or is interrupted (Ctrl-C, and SIGTERM through the CLI), and one left by a run that
  was killed outright (its process is gone) is removed by the next write to that target.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from .errors import InputError

PARTIAL_SUFFIX = ".partial"
_PID_AND_TOKEN = re.compile(r"(\d+)\.[0-9a-f]{8}")


@contextmanager
def atomic_open(path: Path, what: str | None = None, *, parents: bool = False
                ) -> Iterator[IO[str]]:
    """A text handle whose content replaces *path* only when the block ends without error.

    *what* names the file in the error (``cannot write {what}: …``), default the path. The
    temporary name is unique, so threads writing the same target never share one. *parents*
    creates missing folders (otherwise a missing folder is an error, as for ``--out``).
    Devices and FIFOs are written in place (see the module's docstring).
    """
    what = what or str(path)
    target = Path(os.path.realpath(path))  # through symlinks: the link itself stays
    try:
        if parents:
            target.parent.mkdir(parents=True, exist_ok=True)
        existing = _stat(target)
    except OSError as exc:
        raise InputError(f"cannot write {what}: {exc.strerror}") from exc
    if existing is not None and stat.S_ISDIR(existing.st_mode):
        raise InputError(f"cannot write {what}: it is a folder")
    if existing is not None and not stat.S_ISREG(existing.st_mode):
        with _in_place(target, what) as handle:
            yield handle
        return
    _remove_stale_partials(target)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}"
                           f"{PARTIAL_SUFFIX}")
    try:
        # 0666 through the umask, like any new file; an existing file's own bits after.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0),
                     0o666)
    except OSError as exc:
        raise InputError(f"cannot write {what}: {exc.strerror}") from exc
    try:
        if existing is not None and hasattr(os, "fchmod"):
            os.fchmod(fd, stat.S_IMODE(existing.st_mode))
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        raise InputError(f"cannot write {what}: {exc.strerror}") from exc
    finally:
        tmp.unlink(missing_ok=True)


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except FileNotFoundError:
        return None


@contextmanager
def _in_place(target: Path, what: str) -> Iterator[IO[str]]:
    try:
        with target.open("w", encoding="utf-8", newline="") as handle:
            yield handle
    except OSError as exc:
        raise InputError(f"cannot write {what}: {exc.strerror}") from exc


def _remove_stale_partials(target: Path) -> None:
    """Remove ``.<name>.<pid>.<random>.partial`` files whose process no longer exists."""
    if os.name != "posix":  # os.kill(pid, 0) is not a liveness check elsewhere
        return
    prefix = f".{target.name}."
    try:
        entries = [e.name for e in os.scandir(target.parent)
                   if e.name.startswith(prefix) and e.name.endswith(PARTIAL_SUFFIX)]
    except OSError:
        return
    for name in entries:
        match = _PID_AND_TOKEN.fullmatch(name[len(prefix):-len(PARTIAL_SUFFIX)])
        if match and not _alive(int(match[1])):
            (target.parent / name).unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process, say: it exists
        return True
    return True
