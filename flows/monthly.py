"""The monthly audit flow: thin wrappers around pipeline.reports.monthly and pipeline.report.

For the previous calendar month unless ``month`` is given, from the run registry:
OUT/audit-YYYY-MM.html, .json and .csv (every run of the month, failures and missing dates;
counts only), and OUT/report-YYYY-MM/ with the period reports of ``b12screen report``
(audit.html with the funnel, care-process measures and data quality; population.html, the
shareable prevalence report with small numbers suppressed). A month without a succeeded run
gets the first and a warning instead of the second. Failed runs queued while the database was
busy (flows/failures.py) are moved into the registry first. Reading the registry retries only
when the database is busy (another run at work), as the nightly flow's ``prepare`` does.

Run it locally without a server:  python -m flows.monthly --db screening.duckdb --out audit
Deployed with a monthly cron schedule by prefect.yaml (deployment ``monthly-audit``).
"""

from __future__ import annotations

import argparse
from datetime import timedelta
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger
from prefect.logging.loggers import flow_run_logger

from flows import failures
from flows.retry import RETRIES, RETRY_DELAYS_S, retry_on_transient
from pipeline import alerts
from pipeline.config import resolve
from pipeline.errors import B12ScreenError
from pipeline.reports.monthly import (
    build_month_report,
    month_bounds,
    previous_month,
    read_month_runs,
    write_report_files,
)
from pipeline.reports.period import write_period_report
from pipeline.rules import priority_scale

MONTHLY_ARTIFACT_KEY = "b12screen-monthly-audit"


@task(
    name="write-month-report",
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS_S,
    retry_condition_fn=retry_on_transient,
    cache_policy=NO_CACHE,
)
def write_report(db: Path, month: str, out: Path) -> dict:
    report = build_month_report(read_month_runs(db, month), month)
    report["database"] = db.name
    path = write_report_files(report, out)
    return {"html": str(path), "totals": report["totals"]}


@task(
    name="write-period-report",
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS_S,
    retry_condition_fn=retry_on_transient,
    cache_policy=NO_CACHE,
)
def write_period(db: Path, month: str, out: Path) -> dict:
    start, next_month = month_bounds(month)
    result = write_period_report(db, start, next_month - timedelta(days=1), out)
    return {"folder": str(result.out), "runs": result.runs, "seconds": result.seconds}


def alert_failure(flow: Any, flow_run: Any, state: Any) -> None:
    """on_failure / on_crashed hook: the failure alert of a monthly report (counts only)."""
    logger = flow_run_logger(flow_run, flow)
    params = dict(flow_run.parameters or {})
    try:
        settings = resolve(
            {"db": params.get("db"), "audit": params.get("out")},
            config=params.get("config"),
            given_by="parameter",
        )
    except B12ScreenError:
        return  # the config itself is broken: nowhere known to send to
    try:
        cause = state.result(raise_on_failure=False, _sync=True)
    except Exception:
        cause = None
    if not isinstance(cause, BaseException):
        cause = f"flow run {state.name.lower()}"
    month = params.get("month") or previous_month(settings.today())
    if alerts.alert_report_failure(settings, month=month, cause=cause, out=settings["audit"]):
        logger.info("audit %s: failure alert sent", month)


@flow(
    name="monthly_audit",
    log_prints=False,
    on_failure=[alert_failure],
    on_crashed=[alert_failure],
)
def monthly_audit(
    db: str | None = None,
    out: str | None = None,
    month: str | None = None,
    retry_delays_s: list[float] | None = None,
    config: str | None = None,
) -> str:
    """Write the audit report of ``month`` ('YYYY-MM'; default: the previous calendar month).

    ``db`` and ``out`` left as None come from ``B12SCREEN_DB`` / ``B12SCREEN_AUDIT`` or the
    site config (``paths.database``, ``paths.audit``)."""
    logger = get_run_logger()
    settings = resolve({"db": db, "audit": out}, config=config, given_by="parameter")
    db = str(settings["db"])
    out = str(settings.require("audit", "audit folder"))
    month = month or previous_month(settings.today())
    moved = failures.flush_pending(Path(db))
    if moved:
        logger.info("%d queued failed run(s) moved into the registry", moved)
    write = (
        write_report
        if retry_delays_s is None
        else write_report.with_options(retry_delay_seconds=retry_delays_s)
    )
    result = write(Path(db), month, Path(out))
    totals = result["totals"]
    period = None
    if totals["succeeded"]:
        period_task = (
            write_period
            if retry_delays_s is None
            else write_period.with_options(retry_delay_seconds=retry_delays_s)
        )
        try:
            period = period_task(Path(db), month, Path(out) / f"report-{month}")
        except B12ScreenError as exc:  # the month's run report is written; say why not this
            logger.warning("period report %s not written: %s", month, exc)
    else:
        logger.warning("period report %s not written: no succeeded run in the month", month)
    logger.info(
        "audit %s: %d run(s), %d succeeded, %d failed",
        month,
        totals["runs"],
        totals["succeeded"],
        totals["failed"],
    )
    try:
        create_markdown_artifact(
            markdown=month_summary_markdown(month, totals, Path(result["html"]).name, period),
            key=MONTHLY_ARTIFACT_KEY,
            description=f"b12screen audit {month}: counts only",
        )
    except Exception as exc:  # the report is written; a missing summary must not fail it
        logger.warning("audit %s: summary artifact not stored (%s)", month, type(exc).__name__)
    return result["html"]


def month_summary_markdown(
    month: str, totals: dict, report_name: str, period: dict | None = None
) -> str:
    worklist = totals["worklist"]
    return "\n".join(
        [
            f"# b12screen monthly audit {month}",
            "",
            "| | |",
            "|---|---|",
            f"| runs | {totals['runs']} |",
            f"| succeeded | {totals['succeeded']} |",
            f"| failed | {totals['failed']} |",
            f"| rows quarantined (sum) | {totals['rows_quarantined']} |",
            *(f"| worklist {p} (sum) | {worklist[p]} |" for p in priority_scale()),
            "",
            f"Report: `{report_name}` (with .json and .csv) in the audit folder. "
            "Sums are over the month's succeeded runs. Counts only.",
            "",
            (
                f"Period reports: `report-{month}/` (audit.html for the team; population.html, "
                f"shareable), {period['runs']} run(s), built in {period['seconds']:.1f} s."
                if period
                else "Period reports: not written (no succeeded run in the month)."
            ),
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the monthly_audit flow once, locally.")
    parser.add_argument("--db", default=None)
    parser.add_argument("--out", default=None)
    parser.add_argument("--month", default=None, help="YYYY-MM; default: the previous month")
    parser.add_argument("--config", default=None, help="site config (b12screen.toml)")
    args = parser.parse_args()
    print(monthly_audit(args.db, args.out, args.month, config=args.config))


if __name__ == "__main__":
    main()
