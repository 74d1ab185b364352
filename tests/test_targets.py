from __future__ import annotations

from pathlib import Path

import pytest

from sentinel_t1190.deploy import Target
from sentinel_t1190.errors import InputError
from sentinel_t1190.targets import dedupe, load_targets, parse_targets, target_key

SUB = "d0cfe6b2-9ac0-4464-9919-dccaee2e48c0"
SUB2 = "11111111-2222-3333-4444-555555555555"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


def test_csv_with_optional_tenant_comments_and_extra_columns() -> None:
    text = (f"# customer inventory\nsubscription_id,resource_group,workspace,tenant_id,customer\n"
            f"{SUB.upper()},rg-soc,ws-soc,,Contoso\n\n{SUB2},rg.two,ws-two,{TENANT},Fabrikam\n")
    assert parse_targets(text, fmt="csv") == [
        Target(SUB, "rg-soc", "ws-soc", None),
        Target(SUB2, "rg.two", "ws-two", TENANT),
    ]


def test_csv_camel_case_headers_as_az_and_resource_graph_print_them() -> None:
    text = f"subscriptionId,resourceGroup,workspaceName,tenantId\n{SUB},rg,ws-01,{TENANT}\n"
    assert parse_targets(text, fmt="csv") == [Target(SUB, "rg", "ws-01", TENANT)]


def test_yaml_list_and_targets_mapping(tmp_path: Path) -> None:
    listed = tmp_path / "fleet.yaml"
    listed.write_text(f"- subscription_id: {SUB}\n  resource_group: rg\n  workspace: ws-a\n")
    nested = tmp_path / "fleet.yml"
    nested.write_text(f"targets:\n  - {{subscription_id: '{SUB2}', resource_group: rg, "
                      f"workspace: ws-b, tenant_id: '{TENANT}'}}\n")
    assert load_targets(listed) == [Target(SUB, "rg", "ws-a")]
    assert load_targets(nested) == [Target(SUB2, "rg", "ws-b", TENANT)]


def test_every_problem_is_reported_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "targets.csv"
    path.write_text("subscription_id,resource_group,workspace,tenant_id\n"
                    f"{SUB},rg,ws-ok,\n"
                    "not-a-guid,rg,ws-two,\n"
                    f"{SUB},rg,-bad-,\n"
                    f"{SUB},rg.,ws-four,nope\n"
                    f"{SUB},,ws-five,\n")
    with pytest.raises(InputError) as info:
        load_targets(path)
    message = str(info.value)
    assert message.startswith("5 problem(s) in the targets file:")
    assert f"{path}:3: subscription_id 'not-a-guid' is not a GUID" in message
    assert f"{path}:4: workspace '-bad-' is not a valid workspace name" in message
    assert f"{path}:5: resource_group 'rg.' is not a valid resource group name" in message
    assert f"{path}:5: tenant_id 'nope' is not a GUID" in message
    assert f"{path}:6: resource_group is missing" in message
    assert ":2:" not in message


def test_yaml_problems_name_the_line_of_the_item(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(f"targets:\n  - subscription_id: {SUB}\n    resource_group: rg\n"
                    f"    workspace: ws-ok\n  - subscription_id: {SUB}\n    workspace: ws\n"
                    "  - just a string\n")
    with pytest.raises(InputError) as info:
        load_targets(path)
    message = str(info.value)
    assert f"{path}:5: resource_group is missing" in message
    assert f"{path}:5: workspace 'ws' is not a valid workspace name" in message
    assert f"{path}:7: a target must be a mapping" in message


def test_yaml_syntax_error_has_a_line(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("- subscription_id: [unclosed\n- b\n")
    with pytest.raises(InputError, match=r"t\.yaml:\d+: YAML syntax error"):
        load_targets(path)


def test_duplicates_are_dropped_case_insensitively_but_a_tenant_conflict_is_an_error() -> None:
    text = (f"subscription_id,resource_group,workspace,tenant_id\n{SUB},RG,WS-A,\n"
            f"{SUB.upper()},rg,ws-a,\n")
    assert parse_targets(text, fmt="csv") == [Target(SUB, "RG", "WS-A")]
    clash = text + f"{SUB},rg,ws-a,{TENANT}\n"
    with pytest.raises(InputError, match=r"<targets>:4: .* is listed on line 2 with another "
                       "tenant_id"):
        parse_targets(clash, fmt="csv")


def test_missing_columns_empty_file_and_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r":1: the header has no workspace column"):
        parse_targets(f"subscription_id,resource_group\n{SUB},rg\n", fmt="csv")
    with pytest.raises(InputError, match="no targets"):
        parse_targets("# nothing yet\n", fmt="csv")
    with pytest.raises(InputError, match="cannot read targets file"):
        load_targets(tmp_path / "absent.csv")


def test_dedupe_and_key() -> None:
    a, b = Target(SUB, "rg", "ws-a"), Target(SUB.upper(), "RG", "WS-A", TENANT)
    assert target_key(a) == target_key(b)
    assert dedupe([a, b, Target(SUB2, "rg", "ws-a")]) == [a, Target(SUB2, "rg", "ws-a")]


# --- hostile files (issue 10) ----------------------------------------------------------------


def test_a_quoted_multi_line_cell_is_an_error_with_its_line_not_a_traceback() -> None:
    text = (f"# inventory\nsubscription_id,resource_group,workspace\n{SUB},rg,\"ws-a\nws-b\"\n"
            f"{SUB2},rg,ws-c\n")
    with pytest.raises(InputError) as caught:
        parse_targets(text, fmt="csv", source="t.csv")
    assert str(caught.value) == ("1 problem(s) in the targets file:\n  t.csv:3: a quoted cell "
                                 "spans several lines (a target is one line)")


def test_lines_after_a_multi_line_cell_keep_their_numbers() -> None:
    text = (f"subscription_id,resource_group,workspace,note\n{SUB},rg,ws-a,\"two\nlines\"\n"
            f"{SUB2},rg,bad_name!,x\n")
    with pytest.raises(InputError, match=r"t\.csv:2: a quoted cell") as caught:
        parse_targets(text, fmt="csv", source="t.csv")
    assert "t.csv:4: workspace 'bad_name!'" in str(caught.value)


def test_an_unterminated_quote_is_an_error_with_its_line() -> None:
    text = f"subscription_id,resource_group,workspace\n{SUB},rg,ws-a\n{SUB2},rg,\"ws-b\n"
    with pytest.raises(InputError, match=r"t\.csv:3: not valid CSV"):
        parse_targets(text, fmt="csv", source="t.csv")


@pytest.mark.parametrize(("fmt", "text", "problem"), [
    ("csv", f"subscription_id,resource_group,workspace,workspaceName\n{SUB},rg,ws-a,ws-b\n",
     "t:1: the header names workspace more than once ('workspace', 'workspaceName')"),
    ("csv", f"subscriptionId,resource_group,workspace,Subscription\n{SUB},rg,ws-a,{SUB2}\n",
     "t:1: the header names subscription_id more than once ('subscriptionId', "
     "'Subscription')"),
    ("yaml", f"- {{subscription_id: '{SUB}', resource_group: rg, workspace: ws-a, "
     "workspaceName: ws-b}\n",
     "t:1: workspace is given more than once ('workspace', 'workspaceName')"),
])
def test_two_columns_for_one_field_are_an_error_naming_them(fmt: str, text: str,
                                                            problem: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_targets(text, fmt=fmt, source="t")
    assert problem in str(caught.value)
