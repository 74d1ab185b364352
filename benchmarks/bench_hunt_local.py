"""Benchmark ``hunt --local`` end to end against hand-written DuckDB SQL of the same filter.

    python benchmarks/bench_hunt_local.py [--rows N] [--format parquet|csv] [--repeat R]
        [--match-rates 0.4,5] [--outputs ndjson,json,csv,table]

Generates an N-row DeviceProcessEvents file per match rate (deterministic, in DuckDB SQL;
cached under benchmarks/.data/), then, per match rate and output, runs in the same process
tree and alternating, R times each (after one untimed run of each):

- hunt:  ``python -m sentinel_t1190 hunt --local FILE --output FMT --out TMP --now X``
- sql:   a ``python -c`` that runs the hand-written DuckDB query with the same filter, label,
         window, projection and sort and writes it with DuckDB's own writer (COPY ... TO TMP,
         JSON lines, a JSON array or CSV);
- for ``--output table``, the hunt writing a table against the same hunt writing NDJSON.

Both are timed as subprocesses (interpreter start-up included) and their peak RSS is read from
``os.wait4``. Outputs go to a temporary folder and are deleted after each run. Prints one line
per match rate and output; exits 1 when the NDJSON finding counts differ or a run fails, and
with --enforce also when a target is missed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sentinel_t1190 import detection  # noqa: E402

DATA = Path(__file__).resolve().parent / ".data"
#: Bump when the generator changes, so cached files are regenerated.
GENERATOR_VERSION = 1
NOW = "2026-01-15T12:00:00Z"
WINDOW_START = "2026-01-14 12:00:00"  # --now minus the default 24 h lookback
WINDOW_END = "2026-01-15 12:00:00"
RATIO_TARGET = 1.5
#: A table (the first rows and counts) against the same hunt written as NDJSON.
TABLE_TARGET = 2.0
RSS_TARGET_MIB = 1024

# --- generation ----------------------------------------------------------------------------

BENIGN_PARENTS = (
    "explorer.exe", "svchost.exe", "services.exe", "chrome.exe", "msedge.exe", "outlook.exe",
    "winword.exe", "excel.exe", "taskhostw.exe", "msiexec.exe", "trustedinstaller.exe",
    "sccm.exe", "ccmexec.exe", "code.exe", "teams.exe", "wmiprvse.exe", "lsass.exe",
)
BENIGN_CHILDREN = (
    "conhost.exe", "chrome.exe", "msedge.exe", "notepad.exe", "svchost.exe", "dllhost.exe",
    "backgroundtaskhost.exe", "searchprotocolhost.exe", "werfault.exe", "csc.exe",
    "cvtres.exe", "git.exe", "msbuild.exe", "vbc.exe", "rundll32.exe", "cmd.exe",
    "powershell.exe", "whoami.exe", "sc.exe", "reg.exe",
)
#: Names one character or one suffix away from the rule's lists: the rule must ignore them.
NEAR_MISS_CHILDREN = (
    "cmd.exe.bak", "cmd", "xcmd.exe", "powershell_ise.exe", "cmd.exe ", " whoami.exe",
    "certutil.exe.mui", "netsh.exe", "regedit.exe", "schtask.exe", "curl", "net2.exe",
)
NEAR_MISS_PARENTS = (
    "w3wp.exe.old", "w3wp", "javaw.exe", "pythonw.exe", "nodejs.exe", "httpd", "php-fpm",
    "tomcat.exe", "nginx.exe ", "java.exe.config",
)
WEB_BENIGN_CHILDREN = ("csc.exe", "conhost.exe", "vbc.exe", "werfault.exe", "java.exe")
DEVICES = tuple(
    [f"web-iis-{i:02d}.corp.example" for i in range(1, 9)]
    + [f"app-linux-{i:02d}.corp.example" for i in range(1, 9)]
    + [f"ws-{i:04d}.corp.example" for i in range(1, 400)]
)
ACCOUNTS = ("DefaultAppPool", "system", "network service", "tomcat", "www-data", "alice",
            "bob", "carol", "svc_backup", "svc_sql", "administrator")
ACTIONS = ("ProcessCreated",)
INTEGRITY = ("Low", "Medium", "High", "System")
ELEVATION = ("TokenElevationTypeDefault", "TokenElevationTypeFull", "TokenElevationTypeLimited")
PARENT_PARENTS = ("svchost.exe", "services.exe", "explorer.exe", "wininit.exe", "java.exe")


def _list(values: tuple[str, ...]) -> str:
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def _pick(values: tuple[str, ...], salt: int) -> str:
    """SQL choosing one of *values* by a hash of the row number (deterministic)."""
    return f"{_list(values)}[(hash(i, {salt}) % {len(values)})::BIGINT + 1]"


def _case_variant(expr: str, salt: int) -> str:
    """*expr* as-is, upper case or capitalised: KQL's in~ must match all three."""
    return (f"(CASE hash(i, {salt}) % 4 WHEN 0 THEN upper({expr}) "
            f"WHEN 1 THEN upper({expr}[1]) || {expr}[2:] ELSE {expr} END)")


def generation_sql(rows: int, time_sorted: bool = False, matches: int = 40) -> str:
    """SELECT producing *rows* DeviceProcessEvents rows.

    Per 10,000 rows: *matches* (default 40) matches (every parent/child pair reachable, case
    variants), 60 near
    misses (a web-server parent with a near-miss child, or a near-miss parent with a listed
    child), 300 web-server parents with benign children, the rest background (which also
    runs cmd.exe, powershell.exe, whoami.exe... from non-web parents). Timestamps are spread
    over 72 h ending 12 h after --now, so about a third of the rows fall in the 24 h window;
    in generation order (no row group can be skipped) or, *time_sorted*, newest first as
    advanced hunting exports them (row groups outside the window are skipped).
    """
    parents, children = detection.WEB_SERVER_PARENTS, detection.SUSPICIOUS_CHILDREN
    kind = "hash(i, 1) % 10000"
    m = matches
    parent = f"""CASE
        WHEN {kind} < {m} THEN {_case_variant(_pick(parents, 2), 3)}
        WHEN {kind} < {m + 30} THEN {_pick(parents, 2)}
        WHEN {kind} < {m + 60} THEN {_pick(NEAR_MISS_PARENTS, 4)}
        WHEN {kind} < {m + 360} THEN {_pick(parents, 2)}
        ELSE {_pick(BENIGN_PARENTS, 5)} END"""
    child = f"""CASE
        WHEN {kind} < {m} THEN {_case_variant(_pick(children, 6), 7)}
        WHEN {kind} < {m + 30} THEN {_pick(NEAR_MISS_CHILDREN, 8)}
        WHEN {kind} < {m + 60} THEN {_pick(children, 6)}
        WHEN {kind} < {m + 360} THEN {_pick(WEB_BENIGN_CHILDREN, 9)}
        ELSE {_pick(BENIGN_CHILDREN, 10)} END"""
    hour_us = 3_600_000_000
    # Long command lines: a base64-looking payload of 0..1,000 characters (1 in 100: ~4,000).
    payload = ("repeat(md5(i::VARCHAR) || md5((i + 7)::VARCHAR), "
               "CASE WHEN hash(i, 11) % 100 = 0 THEN 64 ELSE (hash(i, 12) % 16)::BIGINT END)")
    return f"""
    WITH base AS (
        SELECT i,
               TIMESTAMP '{WINDOW_END}' + INTERVAL 12 HOUR
                 - to_microseconds((hash(i, 13) % {72 * hour_us})::BIGINT) AS ts,
               {parent} AS parent,
               {child} AS child,
               {_pick(DEVICES, 14)} AS device,
               {_pick(ACCOUNTS, 15)} AS account,
               sha256(i::VARCHAR) AS sha
        FROM range({rows}) t(i)
    )
    SELECT
        ts AS Timestamp,
        md5(device) AS DeviceId,
        device AS DeviceName,
        {_pick(ACTIONS, 16)} AS ActionType,
        child AS FileName,
        'C:\\Windows\\System32\\' || child AS FolderPath,
        substr(sha, 1, 40) AS SHA1,
        sha AS SHA256,
        substr(sha, 25, 32) AS MD5,
        (hash(i, 17) % 5000000)::BIGINT AS FileSize,
        'Microsoft Corporation' AS ProcessVersionInfoCompanyName,
        'Microsoft Windows Operating System' AS ProcessVersionInfoProductName,
        '10.0.20348.1' AS ProcessVersionInfoProductVersion,
        child AS ProcessVersionInfoOriginalFileName,
        (hash(i, 18) % 65536)::BIGINT AS ProcessId,
        child || ' /c ' || {payload} AS ProcessCommandLine,
        {_pick(INTEGRITY, 19)} AS ProcessIntegrityLevel,
        {_pick(ELEVATION, 20)} AS ProcessTokenElevation,
        ts AS ProcessCreationTime,
        'CORP' AS AccountDomain,
        account AS AccountName,
        'S-1-5-21-1004336348-1177238915-682003330-' || (hash(i, 21) % 5000)::VARCHAR
            AS AccountSid,
        (hash(i, 22) % 1000000)::BIGINT AS LogonId,
        'CORP' AS InitiatingProcessAccountDomain,
        account AS InitiatingProcessAccountName,
        sha256(parent) AS InitiatingProcessSHA256,
        parent AS InitiatingProcessFileName,
        (hash(i, 23) % 65536)::BIGINT AS InitiatingProcessId,
        parent || ' -ap "DefaultAppPool" -v "v4.0" -l "webengine4.dll" -a \\\\.\\pipe\\iisipm'
            || md5(device) || ' -h "C:\\inetpub\\temp\\apppools\\DefaultAppPool.config" '
            || repeat('-Dcatalina.base=C:\\Tomcat9 ', (hash(i, 24) % 6)::BIGINT)
            AS InitiatingProcessCommandLine,
        ts - INTERVAL 3 HOUR AS InitiatingProcessCreationTime,
        'C:\\Program Files\\' || parent AS InitiatingProcessFolderPath,
        (hash(i, 25) % 65536)::BIGINT AS InitiatingProcessParentId,
        {_pick(PARENT_PARENTS, 26)} AS InitiatingProcessParentFileName,
        ts - INTERVAL 5 HOUR AS InitiatingProcessParentCreationTime,
        'OsVendor' AS InitiatingProcessSignerType,
        'Valid' AS InitiatingProcessSignatureStatus,
        i AS ReportId,
        '{{"ProcessStartKey":' || i::VARCHAR || '}}' AS AdditionalFields
    FROM base
    """ + ("ORDER BY ts DESC" if time_sorted else "")


def dataset(rows: int, fmt: str, data: Path = DATA, time_sorted: bool = False,
            matches: int = 40) -> Path:
    """The cached N-row file in *fmt* under *data*, generated on first use.

    Generated in a child process: a child's ru_maxrss starts from its parent's peak (Linux
    carries it across fork and exec), so DuckDB's memory while writing the file (15 GB when
    sorting) must not be this process's, or every measured peak would show it.
    """
    data.mkdir(parents=True, exist_ok=True)
    order = "-sorted" if time_sorted else ""
    rate = f"-m{matches}" if matches != 40 else ""
    path = data / f"DeviceProcessEvents-g{GENERATOR_VERSION}-{rows}{rate}{order}.{fmt}"
    if not path.exists():
        subprocess.run([sys.executable, __file__, "--generate", str(path), "--rows", str(rows),
                        "--format", fmt, "--matches", str(matches),
                        *(["--sorted"] if time_sorted else [])], check=True)
    return path


def generate(path: Path, rows: int, fmt: str, time_sorted: bool, matches: int) -> None:
    """Write *rows* generated rows to *path* in *fmt* (via a temporary name)."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    select = generation_sql(rows, time_sorted, matches)
    tmp = path.with_name(path.name + ".tmp")
    if fmt == "parquet":
        con.execute(f"COPY ({select}) TO '{tmp}' (FORMAT parquet, COMPRESSION zstd)")
    else:
        # As Defender advanced hunting exports it: Kusto timestamps, 7 digits and Z.
        kusto = "strftime({c}, '%Y-%m-%dT%H:%M:%S.%f') || '0Z'"
        cols = [row[0] for row in con.execute(f"DESCRIBE {select}").fetchall()]
        time_cols = {"Timestamp", "ProcessCreationTime", "InitiatingProcessCreationTime",
                     "InitiatingProcessParentCreationTime"}
        exprs = ", ".join(kusto.format(c=f'"{c}"') + f' AS "{c}"' if c in time_cols
                          else f'"{c}"' for c in cols)
        con.execute(f"COPY (SELECT {exprs} FROM ({select})) TO '{tmp}' (FORMAT csv, HEADER)")
    con.close()
    tmp.rename(path)


# --- the two contenders --------------------------------------------------------------------


def hand_sql(path: Path, fmt: str) -> str:
    """The filter written by hand in DuckDB SQL: what a person would type for this rule."""
    def names(values: tuple[str, ...]) -> str:
        return ", ".join("'" + v.lower() + "'" for v in values)

    arms = " ".join(f"WHEN lower(FileName) IN ({names(arm.children)}) THEN '{arm.label}'"
                    for arm in detection.EVIDENCE_ARMS)
    projection = ", ".join(c if c != "ExploitEvidence" else
                           f"CASE {arms} ELSE '{detection.FALLBACK_LABEL}' END AS ExploitEvidence"
                           for c in detection.PROJECTED_COLUMNS)
    # Parquet holds TIMESTAMP; DuckDB's CSV sniffer reads "...0000000Z" as TIMESTAMPTZ.
    if fmt == "parquet":
        source, kind, zone = f"read_parquet('{path}')", "TIMESTAMP", ""
    else:
        source, kind, zone = f"read_csv('{path}', header = true)", "TIMESTAMPTZ", "+00"
    return (f"SELECT {projection} FROM {source} "
            f"WHERE Timestamp > {kind} '{WINDOW_START}{zone}' "
            f"AND Timestamp <= {kind} '{WINDOW_END}{zone}' "
            f"AND lower(InitiatingProcessFileName) IN ({names(detection.WEB_SERVER_PARENTS)}) "
            f"AND lower(FileName) IN ({names(detection.SUSPICIOUS_CHILDREN)}) "
            "ORDER BY Timestamp DESC")


#: The hand-written query written out by DuckDB's own writer, per --output of the hunt.
COPY_OPTIONS = {"ndjson": "FORMAT json", "json": "FORMAT json, ARRAY true",
                "csv": "FORMAT csv, HEADER true"}
HAND_PROGRAM = "import duckdb, sys; duckdb.connect().execute(sys.argv[1])"


def hand_copy(path: Path, fmt: str, output: str, out: str) -> str:
    """COPY of the hand-written query, timestamps as the hunt writes them (ISO 8601, Z)."""
    query = hand_sql(path, fmt).replace(
        "SELECT Timestamp,", "SELECT strftime(Timestamp, '%Y-%m-%dT%H:%M:%S.%fZ') AS Timestamp,", 1)
    return f"COPY ({query}) TO '{out}' ({COPY_OPTIONS[output]})"


def hunt_command(path: Path, output: str, out: str) -> list[str]:
    return [sys.executable, "-m", "sentinel_t1190", "hunt", "--local", str(path),
            "--output", output, "--out", out, "--now", NOW]


def hand_command(path: Path, fmt: str, output: str, out: str) -> list[str]:
    return [sys.executable, "-c", HAND_PROGRAM, hand_copy(path, fmt, output, out)]


@dataclass(frozen=True)
class Sample:
    """One subprocess run: wall seconds, CPU seconds (user + system), peak RSS in MiB."""

    wall: float
    cpu: float
    rss: float


def run(cmd: list[str]) -> Sample:
    """Run *cmd*; its wall time, and its own CPU time and peak RSS from os.wait4."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.stderr is not None
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if proc.returncode != 0:
        raise SystemExit(f"failed (exit {proc.returncode}): {cmd[1:3]}...\n{err}")
    # Linux reports ru_maxrss in KiB.
    return Sample(elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def lines(path: Path) -> int:
    """Lines in *path*, read in blocks (the benchmark's own memory must stay small)."""
    count = 0
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            count += block.count(b"\n")
    return count


@dataclass
class Contest:
    """One match rate and output: timed runs of each contender."""

    matches: int
    output: str
    findings: dict[str, int]
    runs: dict[str, list[Sample]]

    def wall(self, kind: str) -> float:
        return statistics.median(r.wall for r in self.runs[kind])

    def cpu(self, kind: str) -> float:
        return statistics.median(r.cpu for r in self.runs[kind])

    def rss(self, kind: str) -> float:
        return max(r.rss for r in self.runs[kind])


def contest(path: Path, fmt: str, matches: int, output: str, repeat: int,
            folder: Path) -> Contest:
    """Hunt against the hand-written query (a table against the hunt's own NDJSON), alternating;
    the first run of each is untimed (counts the findings, warms the page cache alike)."""
    kinds = ("hunt-ndjson", "hunt") if output == "table" else ("sql", "hunt")

    def command(kind: str, out: str) -> list[str]:
        if kind == "sql":
            return hand_command(path, fmt, output, out)
        return hunt_command(path, "ndjson" if kind == "hunt-ndjson" else output, out)

    findings: dict[str, int] = {}
    runs: dict[str, list[Sample]] = {kind: [] for kind in kinds}
    for attempt in range(repeat + 1):
        for kind in kinds:  # alternating, so load from elsewhere hits both alike
            out = folder / f"{kind}-{output}-{matches}.out"
            sample = run(command(kind, str(out)))
            if attempt == 0:
                if output == "ndjson" or kind == "hunt-ndjson":
                    findings[kind] = lines(out)
            else:
                runs[kind].append(sample)
            out.unlink()
    return Contest(matches, output, findings, runs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    parser.add_argument("--match-rates", default="0.4,5",
                        help="percent of rows that match the rule, comma-separated "
                             "(a third of them fall in the window)")
    parser.add_argument("--outputs", default="ndjson,json,csv,table",
                        help="hunt --output formats to measure, comma-separated")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each (median)")
    parser.add_argument("--sorted", action="store_true",
                        help="rows newest first, as advanced hunting exports them")
    parser.add_argument("--data", type=Path, default=DATA,
                        help="where generated files are cached (default: benchmarks/.data)")
    parser.add_argument("--enforce", action="store_true",
                        help="exit 1 when a target (ratio, hunt peak RSS) is missed")
    parser.add_argument("--work", type=Path,
                        help="where runs write their outputs (in a temporary folder, deleted "
                        "after each run; default: the system's temporary folder)")
    parser.add_argument("--generate", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--matches", type=int, default=40, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.generate:  # the child process dataset() starts
        generate(args.generate, args.rows, args.format, args.sorted, args.matches)
        return 0

    rates = [round(float(r) * 100) for r in args.match_rates.split(",")]
    outputs = args.outputs.split(",")
    contests: list[Contest] = []
    with tempfile.TemporaryDirectory(prefix="bench-hunt-", dir=args.work) as tmp:
        for matches in rates:
            started = time.perf_counter()
            path = dataset(args.rows, args.format, args.data, args.sorted, matches)
            print(f"data: {path} ({path.stat().st_size / 2**20:.0f} MiB, "
                  f"{time.perf_counter() - started:.1f} s to get)", file=sys.stderr)
            for output in outputs:
                contests.append(contest(path, args.format, matches, output, args.repeat,
                                        Path(tmp)))
    return report(args, contests)


def report(args: argparse.Namespace, contests: list[Contest]) -> int:
    """Print one line per contest and the verdicts; the exit code (see --enforce)."""
    print(f"{args.rows} rows, {args.format}{', sorted' if args.sorted else ''}; medians of "
          f"{args.repeat} runs; load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"{'match %':>7} {'output':>7} {'findings':>9} {'base':>11} {'base s':>7} "
          f"{'hunt s':>7} {'ratio':>6} {'target':>6} {'CPU ratio':>9} {'base RSS':>8} "
          f"{'hunt RSS':>8} verdict")
    ok, same = True, True
    counts = {c.matches: next(iter(c.findings.values())) for c in contests if c.findings}
    for c in contests:
        base = "hunt-ndjson" if c.output == "table" else "sql"
        target = TABLE_TARGET if c.output == "table" else RATIO_TARGET
        ratio = c.wall("hunt") / c.wall(base)
        passed = ratio <= target and c.rss("hunt") <= RSS_TARGET_MIB
        ok &= passed
        found = counts.get(c.matches, -1)
        if c.output == "ndjson":
            same &= c.findings["sql"] == c.findings["hunt"]
        print(f"{c.matches / 100:>7.1f} {c.output:>7} {found:>9} {base:>11} "
              f"{c.wall(base):>7.2f} {c.wall('hunt'):>7.2f} {ratio:>6.2f} {target:>6.1f} "
              f"{c.cpu('hunt') / c.cpu(base):>9.2f} {c.rss(base):>8.0f} {c.rss('hunt'):>8.0f} "
              f"{'PASS' if passed else 'FAIL'}")
        print(f"        wall s: {base} {_fmt([r.wall for r in c.runs[base]])} "
              f"hunt {_fmt([r.wall for r in c.runs['hunt']])}")
    print(f"targets: hunt/sql <= {RATIO_TARGET}, table/ndjson <= {TABLE_TARGET}, hunt peak RSS "
          f"<= {RSS_TARGET_MIB} MiB: {'PASS' if ok else 'FAIL'}")
    ndjson = [c for c in contests if c.output == "ndjson"]
    if ndjson:
        print("findings (NDJSON lines) " + ", ".join(
            f"{c.matches / 100:.1f}%: sql {c.findings['sql']} hunt {c.findings['hunt']}"
            for c in ndjson) + (": EQUAL" if same else ": DIFFERENT"))
    if not same:
        return 1
    return 1 if args.enforce and not ok else 0


def _fmt(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.2f}" for v in values) + "]"


if __name__ == "__main__":
    raise SystemExit(main())
