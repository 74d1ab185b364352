"""Detection quality on public labelled corpora: recall, false alarms and the misses, per rule.

    python benchmarks/detection_quality.py [--corpus DIR] [--benign DIR] [--misses N] [--enforce]

Each rule's deployed KQL (exclusions included, as ``deploy`` sends it) runs on the local
engine over table rows built from tests/corpus/ (tests/corpus/README.md names the sources):

- sql_injection_in_request: payload-box's payloads in an IIS query string, form-encoded
  (``+`` for spaces, as browsers and IIS logs write them), percent-encoded and double
  percent-encoded; plaso's real IIS 7 SQL-injection lines.
- log4shell_jndi_lookup: the public bypass strings in the User-Agent (raw, as IIS logs it)
  and in the query string, percent-encoded once and twice.
- web_shell_file_in_web_root: every upload extension of PayloadsAllTheThings' lists written
  into IIS, Exchange, Tomcat and Apache web roots by web servers, Exchange processes (incl.
  ProxyShell's MSExchangeMailboxReplication.exe), shells and download tools; OTRF's real
  ProxyLogon shell, written by ``System``.
- linux_web_server_child_process: OTRF's Log4Shell run on Tomcat/Ubuntu.

Benign rows: the real Apache access log (elastic/examples) as IIS requests for the two
request rules, and the ``*.gz`` access logs of each ``--benign DIR`` (public logs that are not
in the repository; tests/corpus/README.md names them and how to build them); for the web-shell
rule, OTRF's other real file events of the ProxyLogon run and Tomcat expanding a WAR; for the
Linux rule, OTRF's other process events.

Prints one table and the misses; exits 1 with --enforce when a rule is below its target.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CORPUS = ROOT / "tests" / "corpus"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
RECALL_TARGET = 0.95


@dataclass(frozen=True)
class Sample:
    """One labelled row: ``attack`` and ``probe`` rows should fire, ``benign`` ones not."""

    label: str
    source: str
    shown: str
    row: dict[str, Any]


@dataclass
class Quality:
    rule: str
    table: str
    attacks: int = 0
    detected: int = 0
    probes: int = 0
    probes_detected: int = 0
    benign: int = 0
    false_alarms: int = 0
    misses: list[str] = field(default_factory=list)
    alarms: list[str] = field(default_factory=list)
    #: ExploitEvidence of the detected attack rows.
    labels: Counter[str] = field(default_factory=Counter)
    #: Benign rows per source (the access log's name for the request rules).
    benign_sources: Counter[str] = field(default_factory=Counter)

    @property
    def recall(self) -> float:
        return self.detected / self.attacks if self.attacks else 0.0

    @property
    def false_positive_rate(self) -> float:
        return self.false_alarms / self.benign if self.benign else 0.0

    @property
    def passed(self) -> bool:
        return self.recall >= RECALL_TARGET and self.false_alarms == 0


# --- corpora -------------------------------------------------------------------------------


def _tsv(path: Path) -> list[tuple[str, str]]:
    # Only "\n" ends a row: payloads may hold \x0b, \x0c or \x1c, which splitlines() splits on.
    lines = path.read_text(encoding="utf-8").split("\n")[1:]
    return [(label, payload) for label, payload in (line.split("\t", 1) for line in lines if line)]


_COMBINED = re.compile(
    r'^(?P<ip>\S+) \S+ \S+ \[[^\]]+\] "(?P<method>\S+) (?P<target>\S+)(?: +\S+)?" '
    r'(?P<status>\d{3}) \S+(?: "(?P<referer>[^"]*)" "(?P<agent>[^"]*)")?')


def benign_requests(corpus: Path,
                    extra: Sequence[Path] = ()) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Real access logs' requests as (log name, request, W3CIISLog columns).

    Reads benign/*.gz of *corpus* and every *.gz in the *extra* folders: Apache/nginx combined
    lines, or common ones (no Referer or User-Agent, as the 1995 NASA traces). IIS writes
    spaces in a logged field as ``+``, so the User-Agent and Referer do too.
    """
    for folder in (corpus / "benign", *extra):
        for path in sorted(folder.glob("*.gz")):
            yield from _combined_log(path)


def _combined_log(path: Path) -> Iterator[tuple[str, str, dict[str, Any]]]:
    source = path.name.removesuffix(".gz").removesuffix(".log")
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as handle:
        for line in handle:
            match = _COMBINED.match(line)
            if not match:
                continue
            stem, _, query = match["target"].partition("?")
            yield source, match["target"], {
                "cIP": match["ip"], "csMethod": match["method"], "csUriStem": stem,
                "csUriQuery": query or "-", "scStatus": match["status"],
                "csUserAgent": (match["agent"] or "-").replace(" ", "+"),
                "csReferer": (match["referer"] or "-").replace(" ", "+"),
            }


def _w3c(path: Path) -> Iterator[dict[str, Any]]:
    fields: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#Fields:"):
            fields = line.split()[1:]
        elif line and not line.startswith("#"):
            row = dict(zip(fields, line.split(" "), strict=False))
            yield {"cIP": row.get("c-ip"), "csMethod": row.get("cs-method"),
                   "csUriStem": row.get("cs-uri-stem"), "csUriQuery": row.get("cs-uri-query"),
                   "csUserAgent": row.get("cs(User-Agent)"), "scStatus": row.get("sc-status")}


SQLI_ENCODINGS: dict[str, Callable[[str], str]] = {
    "form": quote_plus,
    "percent": lambda p: quote(p, safe=""),
    "double": lambda p: quote(quote(p, safe=""), safe=""),
}


def sqli_samples(corpus: Path, benign: Sequence[Path] = ()) -> list[Sample]:
    samples = []
    for label, payload in _tsv(corpus / "sqli" / "payload_box.tsv"):
        for name, encode in SQLI_ENCODINGS.items():
            samples.append(Sample(label, f"payload-box/{name}", payload, {
                "csUriStem": "/products.aspx", "csUriQuery": "id=" + encode(payload)}))
    for row in _w3c(corpus / "sqli" / "plaso_iis7_sqli.log"):
        samples.append(Sample("attack", "plaso-iis7", str(row["csUriQuery"]), row))
    samples += [Sample("benign", source, shown, row)
                for source, shown, row in benign_requests(corpus, benign)]
    return samples


def log4shell_samples(corpus: Path, benign: Sequence[Path] = ()) -> list[Sample]:
    samples = []
    for label, payload in _tsv(corpus / "log4shell" / "payloads.tsv"):
        placements = {
            "user-agent": {"csUriStem": "/", "csUriQuery": "-",
                           "csUserAgent": payload.replace(" ", "+")},
            "query": {"csUriStem": "/api", "csUriQuery": "q=" + quote(payload, safe="")},
            "double": {"csUriStem": "/api",
                       "csUriQuery": "q=" + quote(quote(payload, safe=""), safe="")},
        }
        samples += [Sample(label, f"bypass/{name}", payload, row)
                    for name, row in placements.items()]
    samples += [Sample("benign", source, shown, row)
                for source, shown, row in benign_requests(corpus, benign)]
    return samples


#: Where web shells land, and who writes them (by the rule's three writer classes).
WEB_ROOTS = (
    "C:\\inetpub\\wwwroot",
    "C:\\Program Files\\Microsoft\\Exchange Server\\V15\\FrontEnd\\HttpProxy\\owa\\auth",
    "C:\\Program Files\\Microsoft\\Exchange Server\\V15\\ClientAccess\\ecp\\auth",
    "/opt/tomcat/webapps/ROOT", "/var/www/html", "/usr/share/nginx/html/uploads",
)
WRITERS = ("w3wp.exe", "System", "MSExchangeMailboxReplication.exe", "php-fpm8.1", "java",
           "powershell.exe", "bash", "certutil.exe", "curl")


def web_shell_samples(corpus: Path, benign: Sequence[Path] = ()) -> list[Sample]:
    samples = []
    extensions = (corpus / "web_shell" / "upload_extensions.txt").read_text().split()
    for ext in extensions:
        for root in WEB_ROOTS:
            for writer in WRITERS:
                sep = "\\" if root.startswith("C:") else "/"
                name = f"shell{ext}"
                samples.append(Sample("attack", "pat-extensions", f"{writer} {root}{sep}{name}", {
                    "ActionType": "FileCreated", "FileName": name,
                    "FolderPath": f"{root}{sep}{name}", "InitiatingProcessFileName": writer}))
    for line in (corpus / "web_shell" / "otrf_proxylogon_file_events.jsonl").open():
        row = json.loads(line)
        shell = row["FileName"].lower() == "ohyeah.aspx"
        samples.append(Sample("attack" if shell else "benign", "otrf-proxylogon",
                              f"{row['InitiatingProcessFileName']} {row['FolderPath']}", row))
    # Tomcat expanding a deployed WAR: java writes the app's JSPs next to its WEB-INF.
    app = "/opt/tomcat/webapps/shop"
    for name in ("WEB-INF/web.xml", "META-INF/MANIFEST.MF", "index.jsp", "cart.jsp",
                 "WEB-INF/jsp/order.jsp"):
        folder = f"{app}/{name}"
        samples.append(Sample("benign", "war-unpack", f"java {folder}", {
            "ActionType": "FileCreated", "FileName": name.rsplit("/", 1)[-1],
            "FolderPath": folder, "InitiatingProcessFileName": "java",
            "InitiatingProcessId": 4242}))
    return samples


def linux_samples(corpus: Path, benign: Sequence[Path] = ()) -> list[Sample]:
    samples = []
    for line in (corpus / "otrf_log4shell_ubuntu" / "DeviceProcessEvents.jsonl").open():
        row = json.loads(line)
        shell = row["InitiatingProcessFileName"] == "java"
        samples.append(Sample("attack" if shell else "benign", "otrf-log4shell",
                              f"{row['InitiatingProcessFileName']} -> {row['FileName']}", row))
    return samples


#: rule stem -> (table, the input column that carries the row id, the output column that
#: shows it, the samples from the corpus and the extra benign folders). The web-shell rule joins
#: on DeviceName, so its id is in SHA256.
RULES: dict[str, tuple[str, str, str, Callable[[Path, Sequence[Path]], list[Sample]]]] = {
    "sql_injection_in_request": ("W3CIISLog", "Computer", "Computer", sqli_samples),
    "log4shell_jndi_lookup": ("W3CIISLog", "Computer", "HostName", log4shell_samples),
    "web_shell_file_in_web_root": ("DeviceFileEvents", "SHA256", "SHA256", web_shell_samples),
    "linux_web_server_child_process": ("DeviceProcessEvents", "DeviceName", "DeviceName",
                                       linux_samples),
}
_HOST_COLUMN = {"W3CIISLog": "Computer", "DeviceFileEvents": "DeviceName",
                "DeviceProcessEvents": "DeviceName"}
_TIME_COLUMN = {"W3CIISLog": "TimeGenerated", "DeviceFileEvents": "Timestamp",
                "DeviceProcessEvents": "Timestamp"}


# --- measuring -----------------------------------------------------------------------------


def measure_rule(stem: str, corpus: Path = CORPUS, benign: Sequence[Path] = ()) -> Quality:
    """Run *stem*'s deployed query over its labelled samples and count hits and misses.

    *benign* folders add their access logs to the request rules' benign rows.
    """
    from sentinel_t1190.compile import deployed_query
    from sentinel_t1190.engine import LocalEngine, LocalFile
    from sentinel_t1190.rules import load_pack

    table, id_input, id_column, build = RULES[stem]
    [rule] = load_pack(ROOT).select([stem])
    samples = build(corpus, benign)
    host, time = _HOST_COLUMN[table], _TIME_COLUMN[table]
    with tempfile.TemporaryDirectory(prefix="st1190-quality-") as folder:
        path = Path(folder) / f"{table}.jsonl"
        with path.open("w", encoding="utf-8") as handle:
            for index, sample in enumerate(samples):
                # Every row inside the rule's 1 h window, with its id in the id column.
                at = NOW - timedelta(seconds=1 + index % 3000)
                row = {host: "host-1", **sample.row,
                       time: at.isoformat().replace("+00:00", "Z"), id_input: f"row{index}"}
                handle.write(json.dumps(row) + "\n")
        with LocalEngine() as engine:
            engine.load([LocalFile(table, path)], {})
            for other in set(rule.tables) - {table}:
                engine.load_empty(other)
            columns, rows = engine.query(deployed_query(rule), now=NOW)
            evidence = columns.index("ExploitEvidence")
            hits = {row[columns.index(id_column)]: row[evidence] for row in rows}
    quality = Quality(stem, table)
    for index, sample in enumerate(samples):
        hit = f"row{index}" in hits
        if sample.label == "attack":
            quality.attacks += 1
            quality.detected += hit
            if hit:
                quality.labels[hits[f"row{index}"]] += 1
            else:
                quality.misses.append(f"{sample.source}: {sample.shown}")
        elif sample.label == "probe":
            quality.probes += 1
            quality.probes_detected += hit
        else:
            quality.benign += 1
            quality.benign_sources[sample.source] += 1
            quality.false_alarms += hit
            if hit:
                quality.alarms.append(f"{sample.source}: {sample.shown}")
    return quality


def measure(corpus: Path = CORPUS, benign: Sequence[Path] = ()) -> list[Quality]:
    return [measure_rule(stem, corpus, benign) for stem in RULES]


def report(results: list[Quality], misses: int) -> str:
    lines = [f"{'rule':<32} {'attacks':>8} {'recall':>7} {'probes':>9} "
             f"{'benign':>7} {'false alarms':>12} {'FP rate':>8}"]
    for q in results:
        probes = f"{q.probes_detected}/{q.probes}" if q.probes else "-"
        lines.append(f"{q.rule:<32} {q.attacks:>8} {q.recall:>7.3f} {probes:>9} "
                     f"{q.benign:>7} {q.false_alarms:>12} {q.false_positive_rate:>8.5f}")
    for q in results:
        for title, items in (("missed", q.misses), ("false alarm", q.alarms)):
            for item in items[:misses]:
                lines.append(f"{title} by {q.rule}: {item!r}")
            if len(items) > misses:
                lines.append(f"... {len(items) - misses} more {title}s by {q.rule}")
    for q in results:
        shown = ", ".join(f"{label} {n}" for label, n in q.labels.most_common())
        lines.append(f"labels of {q.rule}: {shown}")
    for q in results:
        shown = ", ".join(f"{source} {n}" for source, n in sorted(q.benign_sources.items()))
        lines.append(f"benign rows of {q.rule}: {shown}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--benign", type=Path, action="append", default=[], metavar="DIR",
                        help="also read every *.gz access log in DIR as benign requests "
                             "(repeatable)")
    parser.add_argument("--misses", type=int, default=20, help="misses shown per rule")
    parser.add_argument("--enforce", action="store_true",
                        help=f"exit 1 when a rule has recall < {RECALL_TARGET} or a false alarm")
    args = parser.parse_args()
    for folder in args.benign:
        if not folder.is_dir():
            parser.error(f"--benign {folder}: not a folder")
    results = measure(args.corpus, args.benign)
    print(report(results, args.misses))
    return 1 if args.enforce and not all(q.passed for q in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
