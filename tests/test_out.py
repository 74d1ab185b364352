"""``--out`` (and every other file the tool writes through files.atomic_open): FIFOs, devices
and symlink targets written in place, regular files replaced whole keeping their mode, new
files following the umask, ``-`` as stdout, no ``.partial`` left behind.

Everything here stays inside tmp_path: a FIFO stands in for devices, a symlink to it for
``/dev/stdout``."""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import Run

from sentinel_t1190.errors import InputError
from sentinel_t1190.files import atomic_open

ROOT = Path(__file__).resolve().parent.parent
posix_only = pytest.mark.skipif(os.name != "posix", reason="FIFOs, modes and signals: POSIX")


@pytest.fixture
def expected(cli: Callable[..., Run]) -> str:
    """What ``hunt --sample -o json`` prints on stdout."""
    run = cli("hunt", "--sample", "-o", "json")
    assert run.code == 0
    return run.stdout


def _partials(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".partial"))


class _Reader:
    """Reads a FIFO in a thread (opening it blocks until a writer comes)."""

    def __init__(self, fifo: Path) -> None:
        self.data = b""
        self.thread = threading.Thread(target=self._read, args=(fifo,), daemon=True)
        self.thread.start()

    def _read(self, fifo: Path) -> None:
        with fifo.open("rb") as handle:
            self.data = handle.read()

    def text(self) -> str:
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "nothing was written to the FIFO"
        return self.data.decode("utf-8")


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "pipe"
    os.mkfifo(path)
    yield path
    # A reader still waiting (the test failed before writing): let it see end of file.
    with contextlib.suppress(OSError):
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))


@posix_only
def test_a_fifo_is_written_in_place(cli: Callable[..., Run], fifo: Path, expected: str) -> None:
    reader = _Reader(fifo)
    run = cli("hunt", "--sample", "-o", "json", "--out", str(fifo))
    assert run.code == 0, run.stderr
    assert reader.text() == expected
    assert stat.S_ISFIFO(fifo.lstat().st_mode), "the FIFO was replaced by a regular file"
    assert _partials(fifo.parent) == []


@posix_only
def test_a_symlink_to_a_fifo_is_followed_like_dev_stdout(
        cli: Callable[..., Run], fifo: Path, tmp_path: Path, expected: str) -> None:
    link = tmp_path / "stdout-link"
    link.symlink_to(fifo)
    reader = _Reader(fifo)
    run = cli("hunt", "--sample", "-o", "json", "--out", str(link))
    assert run.code == 0, run.stderr
    assert reader.text() == expected
    assert link.is_symlink() and stat.S_ISFIFO(fifo.lstat().st_mode)


def test_a_symlink_to_a_file_writes_the_file_and_keeps_the_link(
        cli: Callable[..., Run], tmp_path: Path, expected: str) -> None:
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "findings.json"
    target.write_text("old", encoding="utf-8")
    link = tmp_path / "latest.json"
    link.symlink_to(target)
    run = cli("hunt", "--sample", "-o", "json", "--out", str(link))
    assert run.code == 0, run.stderr
    assert link.is_symlink() and link.resolve() == target.resolve()
    assert target.read_text(encoding="utf-8") == expected
    assert _partials(tmp_path) == _partials(target.parent) == []


def test_a_dangling_symlink_creates_its_target(cli: Callable[..., Run], tmp_path: Path,
                                               expected: str) -> None:
    link = tmp_path / "latest.json"
    link.symlink_to(tmp_path / "new.json")
    run = cli("hunt", "--sample", "-o", "json", "--out", str(link))
    assert run.code == 0, run.stderr
    assert link.is_symlink() and (tmp_path / "new.json").read_text(encoding="utf-8") == expected


@posix_only
@pytest.mark.parametrize("mode", [0o640, 0o604, 0o600])
def test_a_replaced_file_keeps_its_mode(cli: Callable[..., Run], tmp_path: Path,
                                        mode: int) -> None:
    target = tmp_path / "findings.csv"
    target.write_text("old", encoding="utf-8")
    target.chmod(mode)
    run = cli("hunt", "--sample", "-o", "csv", "--out", str(target))
    assert run.code == 0, run.stderr
    assert stat.S_IMODE(target.stat().st_mode) == mode
    assert target.read_text(encoding="utf-8").startswith("Timestamp,")


@posix_only
@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_a_new_file_follows_the_umask(cli: Callable[..., Run], tmp_path: Path, umask: int,
                                      mode: int) -> None:
    target = tmp_path / "findings.json"
    previous = os.umask(umask)
    try:
        run = cli("hunt", "--sample", "-o", "json", "--out", str(target))
    finally:
        os.umask(previous)
    assert run.code == 0, run.stderr
    assert stat.S_IMODE(target.stat().st_mode) == mode


def test_dash_is_stdout(cli: Callable[..., Run], tmp_path: Path, expected: str,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    run = cli("hunt", "--sample", "-o", "json", "--out", "-")
    assert run.code == 0 and run.stdout == expected
    assert list(tmp_path.iterdir()) == []


def test_a_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="it is a folder"), atomic_open(tmp_path):
        pass


# --- .partial files --------------------------------------------------------------------------


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@posix_only
def test_stale_partials_of_dead_runs_are_removed_live_ones_kept(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    dead = tmp_path / f".report.json.{_dead_pid()}.0123abcd.partial"
    alive = tmp_path / f".report.json.{os.getppid()}.0123abcd.partial"
    other = tmp_path / f".report.json.7.{_dead_pid()}.0123abcd.partial"  # of 'report.json.7'
    for path in (dead, alive, other):
        path.write_text("half", encoding="utf-8")
    with atomic_open(target) as handle:
        handle.write("whole")
    assert target.read_text(encoding="utf-8") == "whole"
    assert _partials(tmp_path) == sorted([alive.name, other.name])


def test_a_failing_block_leaves_the_old_file_and_no_partial(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_text("old", encoding="utf-8")
    with pytest.raises(KeyboardInterrupt), atomic_open(target) as handle:
        handle.write("new, half")
        raise KeyboardInterrupt
    assert target.read_text(encoding="utf-8") == "old"
    assert _partials(tmp_path) == []


def test_a_missing_folder_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot write"), atomic_open(tmp_path / "no" / "x"):
        pass


#: A CLI run that keeps its --out file open: a live hunt whose only query is throttled for a
#: while (the loopback Logs server answers 429 with Retry-After), then writes its result.
_SLOW_LIVE_HUNT = """
import sys
import tempfile
from pathlib import Path
from sentinel_t1190.cli import app
from sentinel_t1190.sample import sample_files
from tests.identity import signed_in
from tests.logs_server import THROTTLED, LogsServer, Scripted

with LogsServer() as server, tempfile.TemporaryDirectory() as home, signed_in(Path(home)):
    server.add_csv_workspace("11111111-1111-1111-1111-111111111111", sample_files()[0])
    server.add_reply(Scripted(429, THROTTLED, {"Retry-After": "8"}))
    import os
    os.environ["REQUESTS_CA_BUNDLE"] = server.ca_path
    app(["hunt", "--workspace-id", "11111111-1111-1111-1111-111111111111", "--now",
         "2026-01-15T12:00:00Z", "--logs-endpoint", server.url, "-o", "json",
         "--out", sys.argv[1]])
"""


@posix_only
def test_sigterm_removes_the_partial_and_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "findings.json"
    target.write_text("old", encoding="utf-8")
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_LIVE_HUNT, str(target)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not _partials(tmp_path) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _partials(tmp_path), "the run never opened its output"
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    assert stderr.strip().splitlines()[-1] == "error: terminated"
    assert _partials(tmp_path) == []
    assert target.read_text(encoding="utf-8") == "old"
