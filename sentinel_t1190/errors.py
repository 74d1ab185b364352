"""The exception tree and the exit-code table (docs/azure-identity.md), in one place."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    #: The command found what the user asked to fail on: findings, drift, failing tests,
    #: rule errors, failed rollout targets.
    FOUND = 1
    USAGE = 2
    AUTH = 3
    SERVICE = 4
    #: A bug: an exception that is none of ours (one line; --debug shows the traceback).
    INTERNAL = 5


class SentinelT1190Error(Exception):
    """Root of every error this package raises on purpose."""

    exit_code = ExitCode.USAGE


class InputError(SentinelT1190Error):
    """Bad user input: a missing or unreadable file, a bad option value, a bad rule file."""


class UnsupportedQueryError(InputError):
    """The local engine cannot run this KQL (it refuses rather than guessing)."""


class AuthError(SentinelT1190Error):
    """Authentication failed or the identity lacks a role (401/403)."""

    exit_code = ExitCode.AUTH


class AzureServiceError(SentinelT1190Error):
    """Azure answered with a failure, or could not be reached, after retries."""

    exit_code = ExitCode.SERVICE


class PartialResultError(AzureServiceError):
    """Some of the requested data could not be returned and partial results were not allowed."""


class ConflictError(AzureServiceError):
    """Azure refused a write because the resource changed meanwhile (409), even after a retry."""


def internal_error_message(exc: BaseException) -> str:
    """The one line an unexpected exception (a bug) prints, exit code 5."""
    kind = type(exc).__name__
    what = f"{kind}: {first_line(exc)}" if str(exc).strip() else kind
    return f"internal error: {what} (--debug shows the traceback)"


def first_line(exc: BaseException) -> str:
    """An exception's message cut to its first line (errors print one line), or its type."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
