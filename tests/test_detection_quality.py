"""The companion and Linux rules on public labelled corpora (benchmarks/detection_quality.py).

Each rule's deployed KQL runs on the local engine over tests/corpus/; the thresholds are the
issue's: recall >= 0.95 on the public attack corpora and not one false alarm on real benign
traffic.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


BENCHMARK = _load("detection_quality", ROOT / "benchmarks" / "detection_quality.py")
MAKE_CORPORA = _load("make_corpora", ROOT / "scripts" / "make_corpora.py")


@functools.cache
def _results() -> dict[str, Any]:
    return {quality.rule: quality for quality in BENCHMARK.measure()}


@pytest.mark.parametrize("stem", list(BENCHMARK.RULES))
def test_rule_meets_recall_and_raises_no_false_alarm(stem: str) -> None:
    quality = _results()[stem]
    assert quality.attacks > 0 and quality.benign > 0
    assert quality.recall >= BENCHMARK.RECALL_TARGET, quality.misses[:20]
    assert quality.false_alarms == 0, quality.alarms[:20]
    assert quality.passed


def test_log4shell_strings_are_recognised_as_jndi_not_only_as_lookup_syntax() -> None:
    # Any ${lower:...} is reported as a Log4j lookup; de-obfuscation must still find the JNDI
    # behind the public bypasses (all but the base64, escaped and truncated ones).
    quality = _results()["log4shell_jndi_lookup"]
    jndi = (quality.labels["JNDI lookup in request"]
            + quality.labels["Obfuscated JNDI lookup in request"])
    assert jndi >= 0.85 * quality.attacks, quality.labels


def test_corpora_sizes() -> None:
    counts = {stem: (q.attacks, q.probes, q.benign) for stem, q in _results().items()}
    assert counts["sql_injection_in_request"][2] == 10_000
    assert counts["log4shell_jndi_lookup"][0] >= 80
    assert counts["web_shell_file_in_web_root"][0] > 1000
    assert counts["linux_web_server_child_process"] == (1, 0, 30)


def test_report_has_a_row_per_rule_and_names_the_misses() -> None:
    results = list(_results().values())
    text = BENCHMARK.report(results, misses=3)
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["rule", "attacks", "recall"]
    assert [line.split()[0] for line in lines[1:len(results) + 1]] == list(BENCHMARK.RULES)
    missed = [q for q in results if q.misses]
    for quality in missed:
        assert f"missed by {quality.rule}: {quality.misses[0]!r}" in text


def test_benign_folders_add_their_logs_common_and_combined(tmp_path: Path) -> None:
    # The larger public logs stay out of the repository: make_corpora.py --benign-out writes
    # them, detection_quality.py --benign reads them. Lines shaped like the sources' (the 1995
    # traces' common format, one with the extra spaces they have before the protocol).
    sources, out = tmp_path / "sources", tmp_path / "outside"
    (sources / "erddaplogs").mkdir(parents=True)
    (sources / "nasa").mkdir()
    erddap = ('10.1.2.3 - - [16/May/2024:00:07:20 +0000] "GET /erddap/tabledap/x.csv?time'
              '%3E=2024-05-01 HTTP/1.1" 200 10804 "-" "curl/7.54.0"\n')
    for n in range(1, 10):
        (sources / "erddaplogs" / f"tomcat-access.log.{n}").write_text(
            erddap + ' "Mozilla/5.0"\n' if n == 1 else erddap)
    (sources / "nasa" / "nasa_aug95.log").write_text(
        'a.example - - [01/Aug/1995:00:00:01 -0400] "GET /history/ HTTP/1.0" 200 1839\n'
        'b.example - - [01/Aug/1995:03:58:23 -0400] "GET /facts/a.html   HTTP/1.0" 200 3\n')
    (sources / "nasa" / "nasa_jul95.log").write_text(
        'c.example - - [01/Jul/1995:00:01:06 -0400] "GET /cgi-bin/imagemap/countdown?99,176'
        ' HTTP/1.0" 302 110\n')

    kept = MAKE_CORPORA.benign_extra(sources, out)

    assert kept == {"erddaplogs_voto_erddap_2024": 1, "nasa_ksc_aug95_first20k": 2,
                    "nasa_ksc_jul95_first4k": 1}
    rows = [(source, row) for source, _, row in BENCHMARK.benign_requests(tmp_path, [out])]
    assert [source for source, _ in rows] == [
        "erddaplogs_voto_erddap_2024", "nasa_ksc_aug95_first20k", "nasa_ksc_aug95_first20k",
        "nasa_ksc_jul95_first4k"]
    erddap_row, _, spaced, imagemap = (row for _, row in rows)
    assert erddap_row["csUriQuery"] == "time%3E=2024-05-01"
    assert erddap_row["csUserAgent"] == "curl/7.54.0"
    assert spaced["csUriStem"] == "/facts/a.html" and spaced["csUserAgent"] == "-"
    assert imagemap["csUriQuery"] == "99,176" and imagemap["csReferer"] == "-"
    benign = [s for s in BENCHMARK.sqli_samples(BENCHMARK.CORPUS, [out]) if s.label == "benign"]
    assert len(benign) == 10_000 + 4
