"""A bug is one line and exit 5, never a traceback and never exit 1 ("found")."""

from __future__ import annotations

import errno

import pytest
import typer
from typer.testing import CliRunner

from sentinel_t1190.cli.app import _OneLineErrors
from sentinel_t1190.cli.common import Debug, Verbose, command
from sentinel_t1190.errors import ExitCode, InputError


def _app(failure: BaseException, *, wrapped: bool = True, group: bool | None = None
         ) -> typer.Typer:
    """A one-command app raising *failure*: through the commands' `command` wrapper under a
    plain Typer group, or unwrapped under the real CLI's group (its last line of defence)."""
    real_group = not wrapped if group is None else group
    app = typer.Typer(cls=_OneLineErrors if real_group else None,
                      pretty_exceptions_enable=False)

    def boom(verbose: Verbose = False, debug: Debug = False) -> int:
        raise failure

    app.command("boom")(command(boom) if wrapped else boom)

    @app.command("other")
    def other() -> None:
        """Keeps `boom` a subcommand."""

    return app


def invoke(failure: BaseException, *args: str, wrapped: bool = True) -> tuple[int, str, str]:
    result = CliRunner().invoke(_app(failure, wrapped=wrapped), ["boom", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("wrapped", [True, False], ids=["command", "group"])
def test_an_unexpected_exception_is_exit_5_in_one_line(wrapped: bool) -> None:
    code, stdout, stderr = invoke(TypeError("'tenant_id' is not supported\nsecond line"),
                                  wrapped=wrapped)
    assert code == ExitCode.INTERNAL == 5
    assert stdout == ""
    assert stderr == ("error: internal error: TypeError: 'tenant_id' is not supported "
                      "(--debug shows the traceback)\n")


@pytest.mark.parametrize("wrapped", [True, False], ids=["command", "group"])
def test_debug_adds_the_traceback(wrapped: bool) -> None:
    code, _, stderr = invoke(KeyError("workspace"), "--debug", wrapped=wrapped)
    assert code == 5
    assert "Traceback (most recent call last)" in stderr
    assert stderr.rstrip().endswith("error: internal error: KeyError: 'workspace' "
                                    "(--debug shows the traceback)")


def test_an_exception_without_a_message_names_its_type() -> None:
    _, _, stderr = invoke(RuntimeError())
    assert stderr == "error: internal error: RuntimeError (--debug shows the traceback)\n"


@pytest.mark.parametrize(("failure", "code"), [(InputError("bad file"), 2),
                                               (KeyboardInterrupt(), 130)])
def test_our_errors_keep_their_exit_codes(failure: BaseException, code: int) -> None:
    assert invoke(failure)[0] == code


def test_a_closed_pipe_is_not_an_internal_error() -> None:
    # `sentinel-t1190 hunt ... | head`: exit as a process killed by SIGPIPE, no error line.
    app = _app(BrokenPipeError(errno.EPIPE, "Broken pipe"), wrapped=True, group=True)
    result = CliRunner().invoke(app, ["boom"])
    assert result.exit_code == 141
    assert "internal error" not in result.stderr
