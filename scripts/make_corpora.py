"""Rebuild tests/corpus/ from local copies of the public sources it names.

    python scripts/make_corpora.py SOURCES_DIR
    python scripts/make_corpora.py SOURCES_DIR --benign-out DIR

SOURCES_DIR holds the upstream files under these names (tests/corpus/README.md says where
each comes from): payload-box/README.md and payload-box/*-payloads.txt, ncsc-nl/README.md
(detection_mitigation/README.md), puliczek/README.md, pat/extensions-php.lst,
pat/extensions-asp.lst, plaso/iis7_sqli.log, elastic/apache_logs,
otrf/syslog_sysmon_log4shell*.json, otrf/proxylogon_ssrf_rce_poc*.json.

``--benign-out DIR`` instead writes the larger benign access logs that stay out of the
repository (``detection_quality.py --benign DIR`` reads them) from erddaplogs/tomcat-access.log.*,
nasa/nasa_aug95.log and nasa/nasa_jul95.log: real lines as logged, exact duplicates dropped.

Labels are decided here, from the source alone, never from what a rule matches:
SQL-injection lines that are prose (the README explains metacharacters) are dropped, and
payloads with no letters except true/false (a lone quote, a comma, ``1*56``) are labelled
``probe``: a metacharacter a scanner tries, not an injection a rule can tell from text.
"""

from __future__ import annotations

import gzip
import html
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "corpus"

_BLOCK = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
_HEADING = re.compile(r"^(#{2,3} .*)$", re.M)
# README lines that describe a metacharacter instead of being a payload.
_PROSE = re.compile(r"(addition|concatenate|wildcard|variable|comment|Nullbyte|Backtick)\b")
_PROBE = re.compile(r"[^A-Za-z]*|[^A-Za-z]*(true|false)[^A-Za-z]*", re.I)


def _payload_box(src: Path) -> list[str]:
    text = (src / "README.md").read_text(encoding="utf-8")
    lines: list[str] = []
    section = top = ""
    for part in _HEADING.split(text):
        if _HEADING.fullmatch(part):
            section, top = part, part if part.startswith("## ") else top
            continue
        if any(s in top for s in ("Prevention", "Quick Links")) or "How to Use" in section:
            continue
        lines += [line for block in _BLOCK.findall(part) for line in block.splitlines()]
    for extra in sorted(src.glob("*-payloads.txt")):
        lines += extra.read_text(encoding="utf-8").splitlines()
    kept: list[str] = []
    for line in lines:
        if (not line.strip() or line.lstrip().startswith(("#", "... ")) or _PROSE.search(line)
                or line.strip() in ("-- or #", "/*…*/") or line in kept):
            continue
        kept.append(line)
    return kept


def _sqli(sources: Path) -> None:
    out = CORPUS / "sqli"
    out.mkdir(parents=True, exist_ok=True)
    rows = [f"{'probe' if _PROBE.fullmatch(p) else 'attack'}\t{p}"
            for p in _payload_box(sources / "payload-box")]
    (out / "payload_box.tsv").write_text("label\tpayload\n" + "\n".join(rows) + "\n",
                                         encoding="utf-8")
    (out / "plaso_iis7_sqli.log").write_bytes((sources / "plaso" / "iis7_sqli.log").read_bytes())


def _log4shell(sources: Path) -> None:
    out = CORPUS / "log4shell"
    out.mkdir(parents=True, exist_ok=True)
    ncsc = (sources / "ncsc-nl" / "README.md").read_text(encoding="utf-8")
    wild = ncsc.split("Used in the wild obfuscation examples:", 1)[1]
    payloads = [line for line in _BLOCK.findall(wild)[0].splitlines() if line.strip()]
    puliczek = (sources / "puliczek" / "README.md").read_text(encoding="utf-8")
    # The README's exploit strings all name its placeholder host; the others explain syntax.
    payloads += [p for p in re.findall(r"`(\$\{[^`]+\})`", puliczek)
                 if "somesitehackerofhell" in p]
    rows = [f"attack\t{p}" for p in dict.fromkeys(payloads)]
    (out / "payloads.tsv").write_text("label\tpayload\n" + "\n".join(rows) + "\n",
                                      encoding="utf-8")


def _web_shell(sources: Path) -> None:
    out = CORPUS / "web_shell"
    out.mkdir(parents=True, exist_ok=True)
    exts = []
    for name in ("extensions-php.lst", "extensions-asp.lst"):
        exts += (sources / "pat" / name).read_text(encoding="utf-8").split()
    (out / "upload_extensions.txt").write_text("\n".join(dict.fromkeys(exts)) + "\n",
                                               encoding="utf-8")
    [log] = sorted((sources / "otrf").glob("proxylogon_ssrf_rce_poc*.json"))
    rows = []
    for line in log.read_text(encoding="utf-8").splitlines():
        event = json.loads(line)
        if event.get("EventID") != 11 or "Sysmon" not in str(event.get("Channel")):
            continue
        path = str(event["TargetFilename"])
        rows.append({
            "Timestamp": event["UtcTime"].replace(" ", "T") + "Z",
            "DeviceName": str(event["Hostname"]).lower(), "ActionType": "FileCreated",
            "FileName": path.rsplit("\\", 1)[-1], "FolderPath": path,
            "InitiatingProcessFileName": str(event["Image"]).rsplit("\\", 1)[-1],
            "InitiatingProcessFolderPath": event["Image"],
            "InitiatingProcessAccountName": event.get("User"),
            "InitiatingProcessId": int(event["ProcessId"]),
        })
    rows.sort(key=lambda r: r["Timestamp"])
    (out / "otrf_proxylogon_file_events.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def _benign(sources: Path) -> None:
    out = CORPUS / "benign"
    out.mkdir(parents=True, exist_ok=True)
    data = (sources / "elastic" / "apache_logs").read_bytes()
    with gzip.GzipFile(out / "elastic_apache_logs.gz", "wb", mtime=0) as handle:
        handle.write(data)


#: Out-of-repository benign logs: output name -> the source files, in order.
BENIGN_EXTRA = {
    "erddaplogs_voto_erddap_2024": [f"erddaplogs/tomcat-access.log.{n}" for n in range(1, 10)],
    "nasa_ksc_aug95_first20k": ["nasa/nasa_aug95.log"],
    "nasa_ksc_jul95_first4k": ["nasa/nasa_jul95.log"],
}


def benign_extra(sources: Path, out: Path) -> dict[str, int]:
    """Write each BENIGN_EXTRA log as OUT/NAME.log.gz; returns the request lines kept per log.

    Only request lines are kept (the ERDDAP example files also hold stray User-Agent-only
    lines), each once.
    """
    out.mkdir(parents=True, exist_ok=True)
    kept: dict[str, int] = {}
    for name, files in BENIGN_EXTRA.items():
        lines: dict[str, None] = {}
        for file in files:
            text = (sources / file).read_text(encoding="utf-8", errors="replace")
            lines.update(dict.fromkeys(line for line in text.splitlines() if '] "' in line))
        with gzip.GzipFile(out / f"{name}.log.gz", "wb", mtime=0) as handle:
            handle.write("".join(line + "\n" for line in lines).encode("utf-8"))
        kept[name] = len(lines)
    return kept


def _otrf_log4shell(sources: Path) -> None:
    out = CORPUS / "otrf_log4shell_ubuntu"
    out.mkdir(parents=True, exist_ok=True)
    [log] = sorted((sources / "otrf").glob("syslog_sysmon_log4shell*.json"))
    rows = []
    for line in log.read_text(encoding="utf-8").splitlines():
        message = json.loads(line)["SyslogMessage"]
        if "<EventID>1<" not in message:
            continue
        data = {k: html.unescape(v) for k, v in
                re.findall(r'<Data Name="(\w+)">([^<]*)</Data>', message)}
        parent = data.get("ParentImage") if data.get("ParentImage") != "-" else None
        rows.append({
            "Timestamp": data["UtcTime"].replace(" ", "T") + "Z",
            "DeviceName": json.loads(line)["Computer"].lower(),
            "AccountName": data.get("User"),
            "FileName": data["Image"].rsplit("/", 1)[-1], "FolderPath": data["Image"],
            "ProcessId": int(data["ProcessId"]), "ProcessCommandLine": data.get("CommandLine"),
            "InitiatingProcessFileName": parent.rsplit("/", 1)[-1] if parent else None,
            "InitiatingProcessFolderPath": parent,
            "InitiatingProcessId": (int(data["ParentProcessId"])
                                    if data.get("ParentProcessId", "-").isdigit() else None),
            "InitiatingProcessCommandLine": None,
            "InitiatingProcessParentFileName": None, "SHA256": None,
        })
    rows.sort(key=lambda r: r["Timestamp"])
    (out / "DeviceProcessEvents.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[2] == "--benign-out":
        for log, count in benign_extra(Path(sys.argv[1]), Path(sys.argv[3])).items():
            print(f"built {log}: {count} requests")
        raise SystemExit(0)
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    root = Path(sys.argv[1])
    for build in (_sqli, _log4shell, _web_shell, _benign, _otrf_log4shell):
        build(root)
        print(f"built {build.__name__.lstrip('_')}")
