"""What every command shares: option aliases, logging, error handling and output."""

from __future__ import annotations

import functools
import logging
import sys
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from ..errors import ExitCode, SentinelT1190Error, internal_error_message
from ..render import OutputFormat
from ..safe_text import markup, one_line, visible

if TYPE_CHECKING:
    from ..rules import Rule

Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Log what is being done (stderr).")]
Debug = Annotated[bool, typer.Option("--debug", help="Log everything, and show tracebacks.")]
def _no_markdown(value: OutputFormat) -> OutputFormat:
    if value is OutputFormat.markdown:
        raise typer.BadParameter("markdown is for deploy, status and remove; use table, json, "
                                 "ndjson or csv")
    return value


Output = Annotated[
    OutputFormat,
    typer.Option(
        "--output",
        "-o",
        metavar="FORMAT",
        help="table for people; json, ndjson or csv for machines.",
        case_sensitive=False,
        callback=_no_markdown,
    ),
]
#: deploy / status / remove: also markdown (a plan with diffs for a pull-request comment).
ReportOutput = Annotated[
    OutputFormat,
    typer.Option(
        "--output",
        "-o",
        metavar="FORMAT",
        help="table for people; markdown for pull requests; json, ndjson or csv for machines.",
        case_sensitive=False,
    ),
]
Out = Annotated[
    Path | None,
    typer.Option(
        "--out",
        metavar="FILE",
        help="Write the result to this file instead of stdout ('-': stdout). A regular file "
        "is replaced whole, keeping its permissions; devices, FIFOs and symlink targets are "
        "written in place.",
        dir_okay=False,
    ),
]
RuleIds = Annotated[
    list[str] | None,
    typer.Option(
        "--rule",
        "-r",
        metavar="ID",
        help="Rule id (or file name) to act on; repeat for several. Default: the whole pack.",
    ),
]

PackDir = Annotated[
    Path | None,
    typer.Option(
        "--pack",
        envvar="SENTINEL_T1190_PACK",
        metavar="DIR",
        file_okay=False,
        help="Your own rule pack (analytics/ and hunting/, see 'init'). Default: the bundled "
        "pack.",
    ),
]

F = TypeVar("F", bound=Callable[..., Any])


def _setup_logging(verbose: bool, debug: bool) -> None:
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLineFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
    if not debug:
        # azure-core logs whole request/response headers at DEBUG, and azure-identity a long
        # per-credential WARNING on every failed token; both only with --debug.
        logging.getLogger("azure").setLevel(logging.ERROR)


class _OneLineFormatter(logging.Formatter):
    """``info: <message>``, one line per record whatever the terminal's width (CI logs, grep);
    service text in messages has its control characters shown as ``<U+XXXX>``. A --debug
    traceback follows on its own lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {one_line(record.message)}"


def _stderr() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def warn(message: str) -> None:
    _stderr().print(f"[yellow]warning:[/] {markup(message)}", markup=True, soft_wrap=True)


def note(message: str) -> None:
    """One plain line on stderr: what happened, where a file went (stdout carries results)."""
    typer.echo(visible(message), err=True)


def found(reason: str) -> ExitCode:
    """Exit code 1, saying on stderr why: every exit 1 explains itself."""
    note(f"exit 1: {reason}")
    return ExitCode.FOUND


def refused_summary(rules: Iterable[Rule]) -> str:
    """Why exit 1, naming the refused rules (their reasons are in the output, once)."""
    names = [r.short_id for r in rules]
    return (f"{len(names)} rule(s) refused: {', '.join(names)} (reasons in the output; "
            "--force deploys anyway, --allow-refused exits 0)")


def not_in_sync(states: Iterable[str]) -> str:
    """'3 rule(s) not in sync: 2 drifted, 1 missing'."""
    counts = Counter(states)
    return (f"{sum(counts.values())} rule(s) not in sync: "
            + ", ".join(f"{n} {state}" for state, n in counts.items()))


AllowRefused = Annotated[bool, typer.Option(
    "--allow-refused",
    help="Exit 0 when the only thing short of the pack is refused rules (a workspace that "
    "lacks a rule's table by design); they are still reported.")]


def command(func: F) -> F:
    """Wrap a command: logging from --verbose/--debug, errors to one ``error:`` line and exit code.

    The command returns its exit code (or None for 0).
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = bool(kwargs.get("debug"))
        _setup_logging(bool(kwargs.get("verbose")), debug)
        try:
            with _sigterm_unwinds():
                code = func(*args, **kwargs)
        except SentinelT1190Error as exc:
            if debug:
                traceback.print_exc(file=sys.stderr)
            typer.echo(f"error: {visible(str(exc))}", err=True)
            raise typer.Exit(int(exc.exit_code)) from None
        except KeyboardInterrupt:
            typer.echo("error: interrupted", err=True)
            raise typer.Exit(130) from None
        except Terminated:
            typer.echo("error: terminated", err=True)
            raise typer.Exit(143) from None
        except (typer.Exit, typer.Abort, typer.TyperException, BrokenPipeError):
            raise  # a closed pipe (`… | head`) is click's to end, as a SIGPIPE would
        except Exception as exc:  # a bug: one line and exit 5, never a traceback or exit 1
            if debug:
                traceback.print_exc(file=sys.stderr)
            typer.echo(f"error: {visible(internal_error_message(exc))}", err=True)
            raise typer.Exit(int(ExitCode.INTERNAL)) from None
        raise typer.Exit(int(code or ExitCode.OK))

    return wrapper  # type: ignore[return-value]


def from_command_line(ctx: typer.Context, name: str) -> bool:
    """Whether option *name* was typed, not filled from its environment variable or default.

    Environment variables are defaults: a command ignores one where it does not apply
    (AZURE_SUBSCRIPTION_ID beside --targets), while the same flag typed there is an error.
    """
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


class Terminated(BaseException):  # like KeyboardInterrupt: not caught as an Exception
    """SIGTERM arrived (a CI job cancelled, ``kill``): unwind like Ctrl-C does."""


@contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """While a command runs, SIGTERM raises :class:`Terminated` in the main thread, so
    ``finally`` blocks run and no temporary ``.partial`` file is left behind."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(_signum: int, _frame: object) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def output_stream(out: Path | None) -> Iterator[IO[str]]:
    """stdout (no --out, or ``--out -``), or *out* as :func:`files.atomic_open` writes it."""
    if out is None or str(out) == "-":
        yield sys.stdout
        return
    from ..files import atomic_open

    with atomic_open(out) as handle:
        yield handle
    note(f"wrote {out}")


# --- Azure options (every Azure command), each with its environment variable ----------------
CloudOpt = Annotated[
    str,
    typer.Option(
        "--cloud",
        envvar="SENTINEL_CLOUD",
        metavar="CLOUD",
        help="AzureCloud, AzureUSGovernment or AzureChinaCloud.",
    ),
]
def _tenant(ctx: typer.Context, param: typer.CallbackParam, value: str | None) -> str | None:
    """A typed --tenant-id that is no tenant: a usage error before anything runs (a rollout
    would otherwise fail every target). AZURE_TENANT_ID is checked only where it is used."""
    from ..azure.credentials import check_tenant
    from ..errors import InputError

    if not value or not from_command_line(ctx, str(param.name)):
        return value
    try:
        return check_tenant(value)
    except InputError as exc:
        raise typer.BadParameter(str(exc)) from None


TenantId = Annotated[
    str | None,
    typer.Option(
        "--tenant-id",
        envvar="AZURE_TENANT_ID",
        metavar="GUID",
        callback=_tenant,
        help="Entra ID tenant to authenticate in (default: each credential's own).",
    ),
]
ArmEndpoint = Annotated[
    str | None,
    typer.Option(
        "--arm-endpoint",
        envvar="SENTINEL_ARM_ENDPOINT",
        metavar="URL",
        help="Override the Azure Resource Manager endpoint (private clouds, test servers).",
    ),
]
LogsEndpoint = Annotated[
    str | None,
    typer.Option(
        "--logs-endpoint",
        envvar="SENTINEL_LOGS_ENDPOINT",
        metavar="URL",
        help="Override the Logs Query API base URL, including /v1.",
    ),
]
MaxRetryAfter = Annotated[
    float,
    typer.Option(
        "--max-retry-after",
        envvar="SENTINEL_MAX_RETRY_AFTER",
        metavar="SECONDS",
        min=0,
        help="Longest wait a throttled answer's Retry-After may ask for; an answer asking for "
        "longer fails that query or workspace at once, with the reason.",
    ),
]
GraphEndpoint = Annotated[
    str | None,
    typer.Option(
        "--graph-endpoint",
        envvar="SENTINEL_GRAPH_ENDPOINT",
        metavar="URL",
        help="Override the Microsoft Graph base URL (national clouds, test servers).",
    ),
]
SubscriptionId = Annotated[
    str,
    typer.Option(
        "--subscription-id",
        envvar="AZURE_SUBSCRIPTION_ID",
        metavar="GUID",
        help="Subscription of the workspace.",
    ),
]
# The single-workspace target options, optional where another form of target can stand in
# for them (status/rollout --targets or --discover; deploy/status/remove --defender).
OptSubscription = Annotated[str | None, typer.Option(
    "--subscription-id", envvar="AZURE_SUBSCRIPTION_ID", metavar="GUID",
    help="Subscription of the workspace.")]
OptResourceGroup = Annotated[str | None, typer.Option(
    "--resource-group", "-g", metavar="NAME", help="Resource group of the workspace.")]
OptWorkspace = Annotated[str | None, typer.Option(
    "--workspace", "-w", metavar="NAME", help="Log Analytics workspace name (Sentinel-enabled).")]
Defender = Annotated[bool, typer.Option(
    "--defender", help="Act on Defender XDR custom detection rules (Microsoft Graph, "
    "tenant-wide) instead of a Sentinel workspace.")]


def require_workspace(subscription_id: str | None, resource_group: str | None,
                      workspace: str | None) -> tuple[str, str, str]:
    """The three single-workspace options, all of them, or an input error."""
    if not (subscription_id and resource_group and workspace):
        from ..errors import InputError

        raise InputError("give the workspace: --subscription-id, --resource-group and "
                         "--workspace (or --defender for Defender XDR custom detections)")
    return subscription_id, resource_group, workspace


ResourceGroup = Annotated[
    str,
    typer.Option("--resource-group", "-g", metavar="NAME", help="Resource group of the workspace."),
]
Workspace = Annotated[
    str,
    typer.Option(
        "--workspace", "-w", metavar="NAME", help="Log Analytics workspace name (Sentinel-enabled)."
    ),
]
