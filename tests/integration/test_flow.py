"""The Prefect flows: same stages as the CLI, retries only on transient causes, failed runs in
the registry exactly once, and run summaries (artifacts) with counts only.

Flow runs share one temporary Prefect backend (the session-scoped ``prefect_harness``); the
retry condition and the summaries are tested as plain functions.
"""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest

from flows import failures
from flows.nightly import (
    build_outputs,
    ingest,
    nightly_screening,
    prepare,
    publish,
    run_summary_markdown,
    screen,
    validate,
)
from flows.retry import is_transient, retry_on_transient
from pipeline.errors import (
    B12ScreenError,
    DatabaseBusyError,
    ExtractsError,
    OutputError,
    RulesError,
)
from pipeline.publish.outputs import OUTPUT_FILES
from pipeline.runner import RunConfig, run_screening

AS_OF = date(2026, 11, 24)


def _flags(out: Path) -> list[tuple[str, str]]:
    frame = pl.read_parquet(out / "flags.parquet")
    return sorted(zip(frame["patient_id"], frame["criterion"], strict=True))


def _patient_ids(extracts: Path) -> list[str]:
    return pl.read_csv(extracts / "patients.csv")["patient_id"].to_list()


def _assert_no_patient_id(text: str, extracts: Path) -> None:
    for pid in _patient_ids(extracts):
        assert not re.search(rf"(?<![\w-]){re.escape(pid)}(?![\w-])", text), pid


def _runs(db: Path) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(
            "SELECT run_id, status, error, CAST(record AS VARCHAR) FROM runs ORDER BY started_at"
        ).fetchall()


def _task_runs(flow_run_id) -> dict[str, object]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    return {run.name.rsplit("-", 1)[0]: run for run in runs}


def _artifacts(flow_run_id) -> dict[str, object]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {a.key: a for a in found}


# -- retry condition (plain functions, no Prefect backend) -----------------------------------
@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (DatabaseBusyError("database is in use by another run"), True),
        (ExtractsError("cannot read labs.csv: Connection timed out", transient=True), True),
        (ExtractsError("cannot read labs.csv: bad magic"), False),
        (ExtractsError("labs.csv: missing column collected_at", transient=False), False),
        (RulesError("unknown key: b12_deficient.treshold"), False),
        (OutputError("cannot write to output folder"), False),
        (B12ScreenError("anything else"), False),
        (OSError(110, "Connection timed out"), False),
        (ValueError("plain"), False),
        (duckdb.IOException("Could not set lock on file"), False),
    ],
)
def test_retry_condition_retries_transient_causes_only(exc: Exception, expected: bool) -> None:
    from prefect.states import Failed

    assert is_transient(exc) is expected
    assert retry_on_transient(prepare, None, Failed(data=exc)) is expected


def test_retry_condition_does_not_retry_what_it_cannot_read() -> None:
    from prefect.states import Failed

    assert retry_on_transient(prepare, None, Failed(data="not an exception")) is False
    assert retry_on_transient(prepare, None, object()) is False


def test_only_prepare_retries() -> None:
    assert prepare.retries == 3
    assert prepare.retry_condition_fn is retry_on_transient
    for stage in (ingest, validate, screen, build_outputs, publish):
        assert not stage.retries, stage.name


def test_run_summary_is_counts_only() -> None:
    record = {
        "run_id": "r1",
        "as_of": "2026-11-24",
        "rules": {"name": "guidance", "version": "1"},
        "inputs": [{"file": "labs.csv", "sha256": "x"}],
        "counts": {
            "rows_read": {"patients": 3, "labs": 5},
            "rows_quarantined": {"labs": 1},
            "patients": 3,
            "patients_by_criterion": {"b12_deficient": 1, "anemia": 2},
            "worklist": {"urgent": 2, "high": 0, "routine": 0, "total": 2},
        },
        "flags": [{"patient_id": "SECRET-ID"}],  # anything else in a record is left out
    }
    text = run_summary_markdown(record)
    assert "| labs | 5 | 1 |" in text
    assert "| urgent | 2 |" in text
    assert "| b12_deficient | 1 |" in text
    assert "| input files | 1 |" in text
    assert "SECRET-ID" not in text and "labs.csv" not in text


def test_run_summary_names_the_output_folder_the_rules_and_the_quarantine_rate() -> None:
    record = {
        "run_id": "20261124T023000Z-abcd1234",
        "as_of": "2026-11-24",
        "rules": {"name": "site", "version": "2026.12.1"},
        "counts": {
            "rows_read": {"patients": 3, "labs": 5},
            "rows_quarantined": {"labs": 1},
            "worklist": {"urgent": 2, "high": 0, "routine": 0, "total": 2},
        },
    }
    text = run_summary_markdown(record, Path("/srv/site/worklists"))
    assert "| rules | site 2026\\.12\\.1 |" in text  # markdown-escaped
    assert "| quarantine rate | 12.5% (1 of 8 rows) |" in text
    assert (
        "| output folder | `/srv/site/worklists` (this run: `runs/20261124T023000Z-abcd1234/`) |"
        in text
    )


def test_failed_run_is_recorded_once_and_queued_while_the_database_is_busy(
    hold_database,
    tmp_path: Path,
) -> None:
    db = tmp_path / "db.duckdb"

    def failed(run_id: str) -> failures.FailedRun:
        return failures.FailedRun(
            run_id=run_id,
            as_of=AS_OF,
            started_at=None,
            finished_at=failures.utc_now(),
            error=failures.failure_reason(DatabaseBusyError("database in use by another run")),
        )

    assert failures.record_failed_run(db, failed("a")) == failures.RECORDED  # creates `runs`
    assert failures.record_failed_run(db, failed("a")) == failures.ALREADY_RECORDED
    with hold_database(db):
        assert failures.record_failed_run(db, failed("b")) == failures.QUEUED
        assert failures.flush_pending(db) == 0  # still busy: left queued
    assert [f.run_id for f in failures.pending(db)] == ["b"]
    assert failures.flush_pending(db) == 1
    assert failures.pending(db) == []
    assert [(r[0], r[1]) for r in _runs(db)] == [("a", "failed"), ("b", "failed")]
    assert failures.failure_reason(ValueError("patient p1 value 154")) == "ValueError"


# -- flow runs (under prefect_test_harness) --------------------------------------------------
@pytest.mark.prefect
def test_flow_gives_the_same_flags_as_the_cli_path_and_a_counts_only_summary(
    prefect_harness, tmp_path: Path, small_extracts: Path
) -> None:
    state = nightly_screening(
        str(small_extracts),
        str(tmp_path / "flow_out"),
        AS_OF,
        str(tmp_path / "flow.duckdb"),
        return_state=True,
    )
    assert state.is_completed(), state.message
    counts = state.result()
    for name in OUTPUT_FILES:
        assert (tmp_path / "flow_out" / name).is_file(), name
    run_screening(RunConfig(small_extracts, tmp_path / "cli_out", AS_OF, tmp_path / "cli.duckdb"))
    assert _flags(tmp_path / "flow_out") == _flags(tmp_path / "cli_out")
    assert counts["counts"]["worklist"]["total"] == 2
    _assert_no_patient_id(json.dumps(counts), small_extracts)

    artifacts = _artifacts(state.state_details.flow_run_id)
    summary = artifacts["b12screen-run"]
    assert summary.type == "markdown"
    assert counts["run_id"] in summary.data and "2026-11-24" in summary.data
    assert "| urgent | 2 |" in summary.data
    assert "| labs | 5 | 1 |" in summary.data  # rows read, rows quarantined ('pending' Hgb)
    _assert_no_patient_id(summary.data, small_extracts)
    table = artifacts["b12screen-criteria"]
    assert table.type == "table"
    rows = json.loads(table.data) if isinstance(table.data, str) else table.data
    assert {"criterion": "b12_deficient", "patients": 1} in rows
    _assert_no_patient_id(json.dumps(rows), small_extracts)


@pytest.mark.prefect
def test_flow_failure_keeps_previous_outputs_and_is_recorded_once(
    prefect_harness, tmp_path: Path, small_extracts: Path
) -> None:
    out, db = tmp_path / "out", tmp_path / "db.duckdb"
    nightly_screening(str(small_extracts), str(out), AS_OF, str(db))
    before = (out / "worklist.csv").read_bytes()
    (small_extracts / "labs_broken.parquet").write_bytes(b"PAR1 garbage")
    state = nightly_screening(str(small_extracts), str(out), AS_OF, str(db), return_state=True)
    assert state.is_failed()
    with pytest.raises(ExtractsError, match="labs_broken.parquet"):
        state.result()
    assert (out / "worklist.csv").read_bytes() == before

    runs = _runs(db)
    assert [r[1] for r in runs] == ["succeeded", "failed"]  # the hook added no second row
    assert "labs_broken.parquet" in runs[1][2]
    summary = _artifacts(state.state_details.flow_run_id)["b12screen-run"]
    assert "already recorded" in summary.data and "failed" in summary.data


@pytest.mark.prefect
def test_bad_data_is_not_retried_and_the_hook_records_it(
    prefect_harness, tmp_path: Path, small_extracts: Path
) -> None:
    """A missing extracts folder stops ``prepare`` before the database is opened: no retry,
    and the runner cannot record the failure, so the hook does."""
    db = tmp_path / "db.duckdb"
    run_screening(RunConfig(small_extracts, tmp_path / "out", AS_OF, db))  # registry exists
    state = nightly_screening(
        str(tmp_path / "nope"), str(tmp_path / "out"), AS_OF, str(db), return_state=True
    )
    assert state.is_failed()
    assert _task_runs(state.state_details.flow_run_id)["prepare"].run_count == 1
    runs = _runs(db)
    assert [r[1] for r in runs] == ["succeeded", "failed"]
    assert "not found" in runs[1][2]
    assert json.loads(runs[1][3])["recorded_by"] == "flow failure hook"


@pytest.mark.prefect
def test_busy_database_is_retried_then_the_failure_is_recorded(
    hold_database, prefect_harness, tmp_path: Path, small_extracts: Path
) -> None:
    from flows.monthly import monthly_audit

    db, out = tmp_path / "db.duckdb", tmp_path / "out"
    with hold_database(db):
        state = nightly_screening(
            str(small_extracts), str(out), AS_OF, str(db), retry_delays_s=[0.05], return_state=True
        )
        assert state.is_failed()
        with pytest.raises(DatabaseBusyError, match="in use by another run"):
            state.result()
        assert _task_runs(state.state_details.flow_run_id)["prepare"].run_count == 4  # 1 + 3
        # the registry is locked: the failure waits beside the database
        (queued,) = failures.pending(db)
        assert "in use by another run" in queued.error and queued.as_of == AS_OF
        summary = _artifacts(state.state_details.flow_run_id)["b12screen-run"]
        assert "| run registry | queued |" in summary.data
    assert not out.exists() or not any(out.iterdir()), "a failed run must publish nothing"

    # once the database is free, the next flow run moves the failure into the registry
    html = monthly_audit(str(db), str(tmp_path / "audit"), "2026-11")
    assert failures.pending(db) == []
    ((run_id, status, error, _),) = _runs(db)
    assert (run_id, status) == (queued.run_id, "failed") and "in use by another run" in error
    report = json.loads(Path(html).with_suffix(".json").read_text())
    assert report["totals"]["failed"] == 1 and report["totals"]["succeeded"] == 0
    assert report["failures"][0]["run_id"] == queued.run_id


@pytest.mark.prefect
def test_monthly_flow_writes_the_period_reports_of_the_month(
    prefect_harness, tmp_path: Path, small_extracts: Path
) -> None:
    from flows.monthly import monthly_audit

    db = tmp_path / "db.duckdb"
    for day in (date(2026, 11, 2), date(2026, 11, 9)):
        extracts = small_extracts if day.day == 2 else None
        run_screening(RunConfig(extracts, tmp_path / "runs" / str(day), day, db, progress=False))
    state = monthly_audit(str(db), str(tmp_path / "audit"), "2026-11", return_state=True)
    assert state.is_completed()
    period = tmp_path / "audit" / "report-2026-11"
    population = json.loads((period / "population.json").read_text())
    assert population["period"] == {"from": "2026-11-01", "to": "2026-11-30"}
    assert population["runs"] == 2
    assert (period / "audit.html").is_file() and (period / "audit" / "measures.csv").is_file()
    summary = _artifacts(state.state_details.flow_run_id)["b12screen-monthly-audit"]
    assert "report-2026-11/" in summary.data and "2 run(s)" in summary.data
