"""When a Prefect task may retry: only on a cause marked transient, never on bad data.

``pipeline.errors.B12ScreenError.transient`` is True for a busy database and for file-read
OS errors that may pass (a network share that timed out); bad data (ExtractsError of a
malformed file, RulesError) is never transient, and neither is any other exception.
"""

from __future__ import annotations

from typing import Any

# A busy database is another run still at work; a timed-out share comes back within minutes.
RETRIES = 3
RETRY_DELAYS_S: list[float] = [60, 300, 900]


def is_transient(exc: object) -> bool:
    """True exactly when ``exc`` says its cause may go away by itself (``transient is True``)."""
    return isinstance(exc, BaseException) and getattr(exc, "transient", False) is True


def retry_on_transient(task: Any, task_run: Any, state: Any) -> bool:
    """``retry_condition_fn`` for Prefect tasks: retry only a transient failure.

    Prefect calls it with the failed state; the exception is the state's data (or its
    result). Anything that cannot be read as an exception is not retried.
    """
    data = getattr(state, "data", None)
    if isinstance(data, BaseException):
        return is_transient(data)
    try:
        exc = state.result(raise_on_failure=False, _sync=True)
    except Exception:
        return False
    return is_transient(exc)
