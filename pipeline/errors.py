"""User and data errors: shown as one line, mapped to an exit code, never a traceback.

Anything else that escapes is a bug and keeps its traceback. Messages name files, keys and
row counts; they never carry patient values or identifiers.
"""

import re


class B12ScreenError(Exception):
    """Base class for errors the user can fix. ``exit_code`` is what the CLI returns.

    ``transient`` marks a cause that may go away by itself (a busy database, a network share
    that timed out): schedulers may retry those, and only those. Bad data is never transient.
    """

    exit_code = 2
    transient = False

    def __init__(self, message: str, *, transient: bool | None = None) -> None:
        super().__init__(message)
        if transient is not None:
            self.transient = transient


class UsageError(B12ScreenError):
    """An option or argument that cannot be used as given."""

    exit_code = 2


class ExtractsError(B12ScreenError):
    """The extracts folder or one of its files cannot be used (missing, unreadable, wrong shape)."""

    exit_code = 3


class RulesError(B12ScreenError):
    """The rules file is invalid: unknown key, missing value or wrong type."""

    exit_code = 4


class OutputError(B12ScreenError):
    """The output folder cannot be written."""

    exit_code = 5


class DatabaseBusyError(B12ScreenError):
    """Another run holds the database."""

    exit_code = 6
    transient = True


class ResourceError(B12ScreenError):
    """The machine cannot give the run what it needs: memory, or room or write access for the
    database or DuckDB's spill folder (pipeline/shortage.py tells which)."""

    exit_code = 7


class OutOfMemoryError(ResourceError):
    """DuckDB could not finish a step within its memory limit."""


class ConfigError(UsageError):
    """The site config file (b12screen.toml) is invalid or cannot be read."""

    exit_code = 2


# The exit codes, stated once: `b12screen run --help` and the README show this table (a test
# checks both). 1 is Python's own for an uncaught exception: a bug, shown with its traceback.
EXIT_CODES: tuple[tuple[int, str], ...] = (
    (0, "run completed (also when rows were quarantined)"),
    (1, "unexpected error (a bug): a Python traceback"),
    (UsageError.exit_code, "usage: a bad option, argument or site config file"),
    (
        ExtractsError.exit_code,
        "extracts: missing folder, no patients or labs file, unreadable file, missing column",
    ),
    (RulesError.exit_code, "rules file: unknown key, missing value, wrong type"),
    (OutputError.exit_code, "output folder cannot be written (disk full, read-only)"),
    (DatabaseBusyError.exit_code, "database or output folder in use by another run"),
    (
        ResourceError.exit_code,
        "resources: out of memory under --memory-limit, or the database or spill folder "
        "cannot be written (disk full, read-only)",
    ),
)


def exit_code_lines() -> list[str]:
    """The table as aligned text lines: ``  3  extracts: ...``."""
    return [f"{code}  {meaning}" for code, meaning in EXIT_CODES]


def safe_message(exc: BaseException) -> str:
    """The first line of a reader's error with any quoted text removed (it may hold row
    values), short enough for one line."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", first)[:160]
