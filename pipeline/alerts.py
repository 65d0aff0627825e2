"""Alerts when it matters: a run failed, or a run has patients at the most urgent priority.

Sent with apprise (the ``[alerts]`` URLs of the site config, or ``B12SCREEN_ALERT_URLS``):
e-mail (``mailto://``), a webhook (``json://``), chat services, one URL each. The CLI and the
Prefect flow call the same functions, so a run alerts the same way however it was started,
and without a Prefect server. An alert carries the run id, the as-of date, counts, the one-line
cause of a failure (a ``B12ScreenError`` message, or only an exception's type name) and where
the outputs and the log are: never a patient id, value or row. A failure to send is logged and
never fails the run.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from pipeline.errors import B12ScreenError

log = logging.getLogger("b12screen")


@dataclass(frozen=True)
class Alert:
    title: str
    body: str
    kind: str  # apprise's notify type: "failure" or "warning"


def _reason(cause: BaseException | str, log: str) -> str:
    """The one-line cause an alert gives: a user error's message, a bug's type name only (its
    message may carry data), or the text given."""
    if isinstance(cause, B12ScreenError):
        return (str(cause).splitlines() or [type(cause).__name__])[0]
    if isinstance(cause, BaseException):
        return f"{type(cause).__name__} (unexpected: a bug; the traceback is in {log})"
    return cause


def failure_alert(
    *,
    run_id: str | None,
    as_of: date | None,
    cause: BaseException | str,
    out: Path | None,
    log_file: Path | None,
    stage: str | None = None,
) -> Alert:
    """A failed run: its id, date, stage and one-line cause; where the outputs and log are."""
    reason = _reason(cause, "the log")
    where = f" in the {stage} stage" if stage else ""
    lines = [
        f"b12screen run {run_id or '(not started)'} as of {as_of or '?'} failed{where}.",
        f"Cause: {reason}",
        "Nothing was published: the previous outputs and the database are as they were.",
    ]
    if out is not None:
        lines.append(f"Output folder: {out}")
    if log_file is not None:
        lines.append(f"Run log: {log_file}")
    return Alert(f"b12screen: run failed ({as_of or '?'})", "\n".join(lines), "failure")


def report_failure_alert(
    *, month: str | None, cause: BaseException | str, out: Path | None
) -> Alert:
    """A monthly audit report that could not be written: the month, the one-line cause."""
    reason = _reason(cause, "the flow's log")
    lines = [
        f"b12screen monthly audit report {month or '?'} was not written.",
        f"Cause: {reason}",
        "The reports already in the folder are as they were.",
    ]
    if out is not None:
        lines.append(f"Audit folder: {out}")
    return Alert(f"b12screen: monthly audit failed ({month or '?'})", "\n".join(lines), "failure")


def urgent_alert(record: Mapping[str, Any], out: Path) -> Alert | None:
    """The run has patients at the most urgent priority: how many; None when it has none."""
    counts = record.get("counts") or {}
    worklist = counts.get("worklist") or {}
    levels = [p for p in worklist if p != "total"]  # the rules' scale, most urgent first
    if not levels or not worklist.get(levels[0]):
        return None
    top = levels[0]
    n = int(worklist[top])
    by_priority = ", ".join(f"{int(worklist[p])} {p}" for p in levels)
    quarantined = sum(int(v) for v in (counts.get("rows_quarantined") or {}).values())
    body = "\n".join(
        [
            f"b12screen run {record.get('run_id')} as of {record.get('as_of')}: "
            f"{n} {top} patient{'s' if n != 1 else ''} on the worklist.",
            f"Worklist: {int(worklist.get('total', 0))} patients ({by_priority}); "
            f"{int(counts.get('patients', 0))} screened; {quarantined} rows quarantined.",
            f"Worklist file: {Path(out) / 'worklist.csv'}",
            f"Output folder: {Path(out) / 'runs' / str(record.get('run_id'))}",
        ]
    )
    return Alert(
        f"b12screen: {n} {top} patient{'s' if n != 1 else ''} ({record.get('as_of')})",
        body,
        "warning",
    )


def send(urls: Iterable[str], alert: Alert) -> bool:
    """Send ``alert`` to every URL; True when all took it. Never raises."""
    urls = [u for u in urls if u]
    if not urls:
        return False
    try:
        import apprise

        notifier = apprise.Apprise()
        for url in urls:
            if not notifier.add(url):
                log.warning("alert URL not understood by apprise (scheme %s)", _scheme(url))
        if not len(notifier):
            return False
        ok = bool(notifier.notify(title=alert.title, body=alert.body, notify_type=alert.kind))
    except Exception as exc:  # an alert must never fail or hide the run's own outcome
        log.warning("alert not sent (%s)", type(exc).__name__)
        return False
    if not ok:
        log.warning("alert not delivered to every URL (%d configured)", len(urls))
    return ok


def _scheme(url: str) -> str:
    return url.split("://", 1)[0] if "://" in url else "?"


# -- with the settings of a run (pipeline/config.py) ------------------------------------------
def alert_failure(
    settings: Any,
    *,
    run_id: str | None,
    as_of: date | None,
    cause: BaseException | str,
    out: Path | None,
    log_file: Path | None,
    stage: str | None = None,
) -> bool:
    if not settings["alerts.on_failure"]:
        return False
    alert = failure_alert(
        run_id=run_id, as_of=as_of, cause=cause, out=out, log_file=log_file, stage=stage
    )
    return send(settings["alerts.urls"], alert)


def alert_run(settings: Any, record: Mapping[str, Any], out: Path) -> bool:
    if not settings["alerts.on_urgent"]:
        return False
    alert = urgent_alert(record, out)
    return send(settings["alerts.urls"], alert) if alert is not None else False


def alert_report_failure(
    settings: Any, *, month: str | None, cause: BaseException | str, out: Path | None
) -> bool:
    if not settings["alerts.on_failure"]:
        return False
    return send(settings["alerts.urls"], report_failure_alert(month=month, cause=cause, out=out))
