"""`test`: each rule's fixture cases through the local engine, with the deployed KQL."""

from .. import render
from ..errors import ExitCode
from ..render import OutputFormat
from .app import app
from .common import (
    Debug,
    Out,
    Output,
    PackDir,
    RuleIds,
    Verbose,
    command,
    found,
    output_stream,
)


@app.command("test")
@command
def test_command(
    rule: RuleIds = None,
    pack_dir: PackDir = None,
    output: Output = OutputFormat.table,
    out: Out = None,
    verbose: Verbose = False,
    debug: Debug = False,
) -> int:
    """Run each rule's fixture cases (analytics/fixtures/<rule>.yaml) on the local engine.

    The query is the one deploy sends, exclusions included. A rule fails without at least
    one positive and one negative case. Exits 1 when any case or rule fails.
    """
    from .. import api

    document = api.test_rules(rule, pack=api.load_pack(pack_dir))
    with output_stream(out) as stream:
        render.rule_tests(document, output, stream)
    if document["passed"]:
        return ExitCode.OK
    s = document["summary"]
    return found(f"{s['cases_failed']} case(s) failed, {s['rules_failed']} rule(s) failed")
