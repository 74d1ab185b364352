"""The Typer application; each command lives in its own module and registers itself here."""

from __future__ import annotations

import importlib
import importlib.util

import typer

from .._version import __version__

app = typer.Typer(
    name="sentinel-t1190",
    help="Validate, test, deploy and hunt with the Microsoft Sentinel T1190 detection "
    "(web-server processes spawning shells and attacker tools).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

#: Command modules in the order --help lists them, imported for their @app.command
#: registrations; a module not written yet is skipped.
COMMAND_MODULES = ("pack", "test", "hunt", "deploy", "status", "remove", "rollout", "export")


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
