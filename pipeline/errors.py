"""User and data errors: shown as one line, mapped to an exit code, never a traceback.

Anything else that escapes is a bug and keeps its traceback. Messages name files, keys and
row counts; they never carry patient values or identifiers.
"""


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


class OutOfMemoryError(B12ScreenError):
    """DuckDB could not finish a step within its memory limit."""

    exit_code = 7
