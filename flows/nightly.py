"""The nightly screening flow: one Prefect task per stage of pipeline.runner.ScreeningRun.

The flow holds no screening logic of its own; the CLI (`b12screen run`) and this flow run the
same stages. Tasks take the run object, so input hashing is switched off (NO_CACHE). A failure
in any stage rolls the run back and leaves the previous outputs in place, as in the CLI.

* Retries: only ``prepare`` (rules, extracts fingerprinted, database opened; no transaction
  yet) retries, and only on a transient cause (busy database, timed-out share): 3 retries
  after 1, 5 and 15 minutes. Bad data (ExtractsError, RulesError) fails at once.
* Failure hook: makes sure the failed run is in the ``runs`` table once (see
  flows/failures.py; a busy database queues it until the next run).
* Artifacts: after publish, a markdown summary (key ``b12screen-run``: the output folder, the
  rules version, the quarantine rate, counts) and a table of patients per criterion (key
  ``b12screen-criteria``), counts only. Artifacts live in Prefect's database: never put
  patient rows or ids in them.
* Settings: the ``config`` parameter (a site config, pipeline/config.py; else
  ``B12SCREEN_CONFIG``) gives every setting a parameter leaves as None; a deployment made by
  ``b12screen init`` passes only ``config``.
* Logs: each task logs its stage's counts and timing (no patient values). A failure is one
  line: the cause (a ``B12ScreenError``'s message, or only the type name of an unexpected
  exception) and the run's own log file, ``<db>.logs/<run id>.log``, which keeps the full
  traceback; Prefect's own records of it are kept without the traceback.
* Alerts (pipeline/alerts.py, apprise): on a failed run (the failure hook) and when the run
  has patients at the most urgent priority, as the CLI sends them.

Run it locally without a server:  python -m flows.nightly --extracts DIR --out DIR --as-of DATE
Deployed with a nightly cron schedule by prefect.yaml (deployment ``nightly-screening``).
"""

from __future__ import annotations

import argparse
import logging
import threading
from datetime import date
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.logging import get_run_logger
from prefect.logging.loggers import flow_run_logger

from flows import failures
from flows.retry import RETRIES, RETRY_DELAYS_S, is_transient, retry_on_transient
from pipeline import alerts
from pipeline.config import Settings, resolve
from pipeline.errors import B12ScreenError
from pipeline.publish import render
from pipeline.rules import priority_scale
from pipeline.runner import RunConfig, ScreeningRun, failure_log_path

__all__ = ["nightly_screening", "retry_on_transient", "run_summary_markdown"]

_TASK = {"cache_policy": NO_CACHE}
RUN_ARTIFACT_KEY = "b12screen-run"
CRITERIA_ARTIFACT_KEY = "b12screen-criteria"

# Failed runs waiting for the failure hook, by flow run id (the hook runs in this process).
_failed: dict[str, tuple[ScreeningRun, BaseException]] = {}
_failed_lock = threading.Lock()


class StageError(RuntimeError):
    """An unexpected exception in a stage, told in one line without its message (which may
    carry data); ``original`` is the exception itself, for the registry and the run log."""

    def __init__(self, message: str, original: BaseException) -> None:
        super().__init__(message)
        self.original = original


class _OneLineFailures(logging.Filter):
    """Prefect logs a failed task, then the failed flow, each with the exception's traceback.
    For the run's own failures (a ``B12ScreenError``, or a ``StageError`` standing for a bug)
    those records are left out: the failure hook logs the one line (cause and log file), the
    traceback is in the run's log file, and Prefect's state lines ("Finished in state
    Failed(...)") and retry notices stay. Installed on Prefect's run loggers by this module."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, B12ScreenError | StageError)


_ONE_LINE = _OneLineFailures()
for _name in ("prefect.task_runs", "prefect.flow_runs"):
    if _ONE_LINE not in logging.getLogger(_name).filters:
        logging.getLogger(_name).addFilter(_ONE_LINE)


def _stage(run: ScreeningRun, name: str, step) -> Any:
    """Run one stage of ``run``; log its counts and timing; an unexpected error in one line."""
    logger = get_run_logger()
    try:
        result = step()
    except B12ScreenError:
        raise
    except Exception as exc:
        log_file = failure_log_path(run.config.db, run.run_id)
        raise StageError(
            f"{type(exc).__name__} in the {name} stage (unexpected: a bug); "
            f"traceback in {log_file}",
            exc,
        ) from None
    for line in run.progress.report(name):
        logger.info("%s: %s", name, line)
    return result


@task(
    name="prepare",
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS_S,
    retry_condition_fn=retry_on_transient,
    **_TASK,
)
def prepare(run: ScreeningRun) -> None:
    try:
        _stage(run, "prepare", run.prepare)
    except Exception as exc:
        if is_transient(exc):
            run.close()  # a retry opens the database afresh
        raise


@task(name="ingest", **_TASK)
def ingest(run: ScreeningRun) -> None:
    _stage(run, "ingest", run.ingest)


@task(name="validate", **_TASK)
def validate(run: ScreeningRun) -> None:
    _stage(run, "validate", run.validate)


@task(name="screen", **_TASK)
def screen(run: ScreeningRun) -> None:
    _stage(run, "screen", run.screen)


@task(name="build-outputs", **_TASK)
def build_outputs(run: ScreeningRun) -> None:
    _stage(run, "outputs", run.build_outputs)


@task(name="publish", **_TASK)
def publish(run: ScreeningRun) -> dict:
    return _stage(run, "publish", run.publish).record


# -- failure hook ----------------------------------------------------------------------------
def record_failure(flow: Any, flow_run: Any, state: Any) -> None:
    """on_failure / on_crashed hook: the failed run is in the registry exactly once, its
    failure is one line in the flow log (the cause as the registry keeps it: a
    ``B12ScreenError``'s message or an exception's type name; and the run's log file), and the
    failure alert is sent."""
    logger = flow_run_logger(flow_run, flow)
    with _failed_lock:
        entry = _failed.pop(str(flow_run.id), None)
    params = dict(flow_run.parameters or {})
    settings = _settings_or_none(params)
    if settings is not None:
        db = Path(settings["db"])
    else:  # the config itself is broken: the registry of the parameter, or the default
        db = Path(params.get("db") or "b12screen.duckdb")
    run = None
    if entry is not None:
        run, exc = entry
        failed = failures.from_run(run, exc)
    else:  # ended before the screening run started (bad parameters or config, crash)
        exc = _state_exception(state)
        cause = f": {failures.failure_reason(exc)}" if exc is not None else ""
        failed = failures.FailedRun(
            run_id=f"prefect-{flow_run.id}",
            as_of=_as_date(params.get("as_of")),
            started_at=None,
            finished_at=failures.utc_now(),
            error=f"flow run {state.name.lower()} before the screening run started{cause}",
        )
    outcome = failures.record_failed_run(db, failed)
    log_file = run.failure_log if run is not None else None
    logger.error(
        "run %s failed: %s%s",
        failed.run_id,
        failed.error,
        f"; log: {log_file}" if log_file else "",
    )
    logger.info("run %s: registry: %s", failed.run_id, outcome)
    if settings is not None:
        sent = alerts.alert_failure(
            settings,
            run_id=failed.run_id,
            as_of=failed.as_of,
            cause=entry[1] if entry is not None else failed.error,
            out=settings["out"],
            log_file=log_file,
            stage=run.progress.current if run is not None else None,
        )
        if sent:
            logger.info("run %s: failure alert sent", failed.run_id)
    try:
        create_markdown_artifact(
            markdown=_failure_markdown(failed, outcome),
            key=RUN_ARTIFACT_KEY,
            description=f"b12screen run {failed.run_id}: failed",
        )
    except Exception as exc:  # the summary is a convenience; never hide the failure
        logger.warning("run %s: failure summary not stored (%s)", failed.run_id, type(exc).__name__)


def _state_exception(state: Any) -> BaseException | None:
    try:
        exc = state.result(raise_on_failure=False, _sync=True)
    except Exception:
        return None
    return exc if isinstance(exc, BaseException) else None


def _settings_or_none(params: dict) -> Settings | None:
    try:
        return _settings(params)
    except B12ScreenError:
        return None


def _settings(params: dict) -> Settings:
    """The run's settings: the flow's parameters, then B12SCREEN_*, then the config file."""
    given = {k: params.get(k) for k in ("extracts", "out", "db", "rules")}
    return resolve(given, config=params.get("config"), given_by="parameter")


def _as_date(value: object) -> date | None:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


# -- the flow --------------------------------------------------------------------------------
@flow(
    name="nightly_screening",
    log_prints=False,
    on_failure=[record_failure],
    on_crashed=[record_failure],
)
def nightly_screening(
    extracts: str | None = None,
    out: str | None = None,
    as_of: date | None = None,
    db: str | None = None,
    rules: str | None = None,
    retry_delays_s: list[float] | None = None,
    config: str | None = None,
) -> dict:
    """Screen the extracts in ``extracts`` and publish the outputs to ``out``.

    A parameter left as None comes from ``B12SCREEN_*`` or the site config ``config`` (else
    ``B12SCREEN_CONFIG``); ``as_of`` defaults to today in the config's time zone.
    ``retry_delays_s`` overrides the waits before the retries of ``prepare`` (1, 5 and 15
    minutes). Returns the run's counts (no patient data), which Prefect stores as the flow
    result.
    """
    logger = get_run_logger()
    settings = _settings(
        {"extracts": extracts, "out": out, "db": db, "rules": rules, "config": config}
    )
    db_path = Path(settings["db"])
    moved = failures.flush_pending(db_path)
    if moved:
        logger.info("%d earlier failed run(s) moved into the registry", moved)
    run = ScreeningRun(
        RunConfig(
            extracts=settings.require("extracts", "extracts folder"),
            out=settings.require("out", "output folder"),
            as_of=as_of or settings.today(),
            db=db_path,
            rules=settings["rules"],
            progress=False,
            memory_limit=settings["memory_limit"],
        )
    )
    logger.info(
        "run %s as of %s: extracts %s, out %s, rules %s (config: %s)",
        run.run_id,
        run.config.as_of,
        run.config.extracts,
        run.config.out,
        settings["rules"],
        settings.config_file or "none",
    )
    prepare_task = (
        prepare
        if retry_delays_s is None
        else prepare.with_options(retry_delay_seconds=retry_delays_s)
    )
    try:
        prepare_task(run)
        ingest(run)
        validate(run)
        screen(run)
        build_outputs(run)
        record = publish(run)
    except BaseException as exc:
        original = exc.original if isinstance(exc, StageError) else exc
        context = FlowRunContext.get()
        if context is not None and context.flow_run is not None:
            with _failed_lock:  # for the failure hook, which runs after the flow ends
                _failed[str(context.flow_run.id)] = (run, original)
        run.fail(original)
        raise
    if alerts.alert_run(settings, record, run.config.out):
        logger.info("run %s: urgent-patients alert sent", run.run_id)
    try:
        create_markdown_artifact(
            markdown=run_summary_markdown(record, run.config.out),
            key=RUN_ARTIFACT_KEY,
            description=f"b12screen run {record.get('run_id')}: counts only",
        )
        create_table_artifact(
            table=criteria_table(record),
            key=CRITERIA_ARTIFACT_KEY,
            description=f"Patients per criterion, run {record.get('run_id')}",
        )
    except Exception as exc:  # the run is published; a missing summary must not fail it
        logger.warning("run %s: summary artifact not stored (%s)", run.run_id, type(exc).__name__)
    return {"run_id": record["run_id"], "as_of": record["as_of"], "counts": record["counts"]}


# -- summaries (counts only) -----------------------------------------------------------------
def _int(value: object) -> int:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0


def criteria_table(record: dict) -> list[dict[str, object]]:
    by_criterion = (record.get("counts") or {}).get("patients_by_criterion") or {}
    return [
        {"criterion": str(criterion), "patients": _int(n)} for criterion, n in by_criterion.items()
    ]


def _code(text: str) -> str:
    """``text`` as a markdown code span (shown as is; a backtick or a line break cannot end it)."""
    return "`" + text.replace("`", "'").replace("\n", " ").replace("|", "\\|") + "`"


def quarantine_rate(record: dict) -> str:
    """Rows quarantined of rows read, as a percentage with the counts ('0.4% (12 of 3,000)')."""
    counts = record.get("counts") or {}
    read = sum(map(_int, (counts.get("rows_read") or {}).values()))
    quarantined = sum(map(_int, (counts.get("rows_quarantined") or {}).values()))
    share = f"{100 * quarantined / read:.1f}%" if read else "-"
    return f"{share} ({quarantined:,} of {read:,} rows)"


def run_summary_markdown(record: dict, out: Path | str | None = None) -> str:
    """The run as a markdown summary: ids, versions, where and counts; never a patient row."""
    counts = record.get("counts") or {}
    rules = record.get("rules") or {}
    rows_read = counts.get("rows_read") or {}
    quarantined = counts.get("rows_quarantined") or {}
    worklist = counts.get("worklist") or {}
    kinds = list(dict.fromkeys([*rows_read, *quarantined]))
    lines = [
        f"# b12screen run `{record.get('run_id', '?')}`",
        "",
        "| | |",
        "|---|---|",
        f"| as-of date | {record.get('as_of', '?')} |",
        f"| status | {record.get('status', 'succeeded')} |",
        f"| rules | {render.markdown_text(rules.get('name', '?'))} "
        f"{render.markdown_text(rules.get('version', '?'))} |",
        f"| code version | {record.get('code_version', '?')} |",
        f"| input files | {len(record.get('inputs') or [])} |",
        f"| quarantine rate | {quarantine_rate(record)} |",
        *(
            [
                f"| output folder | {_code(str(out))} "
                f"(this run: {_code('runs/' + str(record.get('run_id', '?')) + '/')}) |"
            ]
            if out is not None
            else []
        ),
        f"| patients | {_int(counts.get('patients'))} |",
        "",
        "## Rows read and quarantined",
        "",
        "| kind | rows read | rows quarantined |",
        "|---|---:|---:|",
        *(f"| {k} | {_int(rows_read.get(k))} | {_int(quarantined.get(k))} |" for k in kinds),
        f"| **total** | {sum(map(_int, rows_read.values()))} "
        f"| {sum(map(_int, quarantined.values()))} |",
        "",
        "## Worklist",
        "",
        "| priority | patients |",
        "|---|---:|",
        *(f"| {p} | {_int(worklist.get(p))} |" for p in priority_scale()),
        f"| **total** | {_int(worklist.get('total'))} |",
        "",
        "## Patients per criterion",
        "",
        "| criterion | patients |",
        "|---|---:|",
        *(f"| {row['criterion']} | {row['patients']} |" for row in criteria_table(record)),
        "",
        "Counts only: patient-level rows are in the run's output folder, never in Prefect.",
    ]
    return "\n".join(lines) + "\n"


def _failure_markdown(failed: failures.FailedRun, outcome: str) -> str:
    return "\n".join(
        [
            f"# b12screen run `{failed.run_id}`: failed",
            "",
            "| | |",
            "|---|---|",
            f"| as-of date | {failed.as_of or '?'} |",
            f"| rules | {render.markdown_text(failed.rules_version or '?')} |",
            f"| cause | {render.markdown_text(failed.error)} |",
            f"| run registry | {outcome} |",
            "",
            "The previous outputs are unchanged; the run's database work was rolled back.",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the nightly_screening flow once, locally.")
    parser.add_argument("--extracts", default=None)
    parser.add_argument("--out", default=None)
    parser.add_argument("--as-of", type=date.fromisoformat, default=None)
    parser.add_argument("--db", default=None)
    parser.add_argument("--rules", default=None)
    parser.add_argument("--config", default=None, help="site config (b12screen.toml)")
    args = parser.parse_args()
    nightly_screening(args.extracts, args.out, args.as_of, args.db, args.rules, config=args.config)


if __name__ == "__main__":
    main()
