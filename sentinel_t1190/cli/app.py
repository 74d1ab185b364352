"""The Typer application; each command lives in its own module and registers itself here."""

import importlib
import importlib.util
import sys
import traceback
from typing import Any

import typer
from typer.core import TyperArgument, TyperGroup

from .._version import __version__
from ..errors import ExitCode, internal_error_message
from ..safe_text import visible
from .examples import epilog


class _Completed(Exception):
    """Shell completion answered (click ends that with sys.exit): exit with its code."""

    def __init__(self, code: Any) -> None:
        super().__init__(code)
        self.code = code if isinstance(code, int) else 0


def _absent_flag_is_false(process: Any) -> Any:
    """The group's flags not given (--help, --install-completion, --show-completion) are
    False, as given ones are True: typer (0.29) leaves them None, and coerces None through a
    pydantic TypeAdapter it builds first, so ``sentinel-t1190 COMMAND --help`` imported
    pydantic (0.2 s) to learn that an absent flag is absent. Their callbacks treat None and
    False alike."""

    def process_value(ctx: Any, value: Any) -> Any:
        return process(ctx, False if value is None else value)

    return process_value


class _OneLineErrors(TyperGroup):
    """Usage errors as one ``error: …`` line on stderr (exit 2), like every other error.

    Also: each command's help ends with its examples (cli/examples.py), and arguments show
    their metavar without a Python type.
    """

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            command.epilog = command.epilog or epilog(cmd_name)
            for param in command.params:
                if isinstance(param, TyperArgument) and param.metavar:
                    # An instance attribute: this argument's help shows its metavar alone.
                    param.display_type_rich = lambda ctx: None  # type: ignore[method-assign]
        return command

    def get_params(self, ctx: Any) -> Any:
        params = super().get_params(ctx)
        for param in params:
            if (getattr(getattr(param, "type_descriptor", None), "annotation", None) is bool
                    and "process_value" not in vars(param)):
                param.process_value = _absent_flag_is_false(  # type: ignore[method-assign]
                    param.process_value)
        return params

    def _main_shell_completion(self, ctx_args: Any, prog_name: str,
                               complete_var: str | None = None) -> None:
        try:
            super()._main_shell_completion(ctx_args, prog_name, complete_var)
        except SystemExit as done:  # not a broken pipe: see main()
            raise _Completed(done.code) from None

    def main(self, args: Any = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             windows_expand_args: bool = True, **extra: Any) -> Any:
        try:
            code = super().main(args, prog_name, complete_var, False, windows_expand_args,
                                **extra)
        except typer.TyperException as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":
                typer.echo(exc.format_message(), err=True)
            else:
                ctx = getattr(exc, "ctx", None)
                where = ctx.command_path if ctx is not None else self.name
                hint = f" (see '{where} --help')" if exc.exit_code == 2 else ""
                typer.echo(f"error: {exc.format_message()}{hint}", err=True)
            code = exc.exit_code
        except typer.Abort:
            typer.echo("error: aborted", err=True)
            code = 130
        except _Completed as done:
            code = done.code
        except SystemExit as exc:
            # --install-completion ends with sys.exit(0); otherwise only a broken pipe
            # (`… | head`) ends here without standalone mode: exit as a process killed by
            # SIGPIPE would, not with 1 ("found something").
            code = 0 if exc.code in (0, None) else 141
        except Exception as exc:  # a bug outside any command (parsing, callbacks): exit 5
            if "--debug" in (sys.argv[1:] if args is None else list(args)):
                traceback.print_exc(file=sys.stderr)
            typer.echo(f"error: {visible(internal_error_message(exc))}", err=True)
            code = ExitCode.INTERNAL
        code = int(code) if isinstance(code, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(
    cls=_OneLineErrors,
    name="sentinel-t1190",
    help="Validate, test, deploy and hunt with the Microsoft Sentinel T1190 detection "
    "(web-server processes spawning shells and attacker tools).",
    epilog="\b\nExamples:\n  sentinel-t1190 hunt --sample\n  sentinel-t1190 deploy -h\n"
    "  sentinel-t1190 --install-completion   (for the shell it runs in: bash, zsh, fish, "
    "PowerShell)",
    no_args_is_help=True,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

#: Command modules in the order --help lists them, imported for their @app.command
#: registrations; a module not written yet is skipped.
COMMAND_MODULES = ("pack", "test", "hunt", "backtest", "deploy", "status", "remove", "rollout",
                   "health", "export", "doctor")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"sentinel-t1190 {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Validate, test, deploy and hunt with the Microsoft Sentinel T1190 detection."""


for _name in COMMAND_MODULES:
    if importlib.util.find_spec(f"{__package__}.{_name}") is not None:
        importlib.import_module(f"{__package__}.{_name}")


def main() -> None:
    app()
