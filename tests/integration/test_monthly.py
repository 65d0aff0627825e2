"""The monthly audit report (pipeline/reports/monthly.py) read from the run registry; no Prefect."""

from __future__ import annotations

import csv
import json
import re
from datetime import date, datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest

from pipeline.errors import B12ScreenError, DatabaseBusyError
from pipeline.reports.monthly import (
    build_month_report,
    month_bounds,
    previous_month,
    read_month_runs,
    write_month_report,
    write_report_files,
)
from pipeline.runner import RunConfig, run_screening

RUNS_DDL = """CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY, as_of DATE, started_at TIMESTAMP, finished_at TIMESTAMP,
    status VARCHAR, error VARCHAR, code_version VARCHAR, rules_version VARCHAR,
    rules_sha256 VARCHAR, record JSON)"""


def _record(run_id: str, urgent: int, b12: int, quarantined: int) -> str:
    return json.dumps(
        {
            "run_id": run_id,
            "status": "succeeded",
            "inputs": [{"file": "patients.csv"}, {"file": "labs.csv"}],
            "counts": {
                "rows_read": {"patients": 10, "labs": 20},
                "rows_quarantined": {"labs": quarantined} if quarantined else {},
                "patients": 10,
                "patients_by_criterion": {"b12_deficient": b12, "anemia": 1},
                "worklist": {"urgent": urgent, "high": 1, "routine": 0, "total": urgent + 1},
            },
        }
    )


def _registry(db: Path, rows: list[tuple]) -> Path:
    with duckdb.connect(str(db)) as con:
        con.execute(RUNS_DDL)
        for run_id, as_of, started, status, error, record in rows:
            con.execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, '0.1.0', 'r1', 'sha', ?)",
                [run_id, as_of, started, started, status, error, record],
            )
    return db


def _no_patient_id(text: str, ids: list[str]) -> None:
    for pid in ids:
        assert not re.search(rf"(?<![\w-]){re.escape(pid)}(?![\w-])", text), pid


@pytest.mark.parametrize(
    ("today", "month"),
    [
        (date(2026, 1, 15), "2025-12"),
        (date(2026, 3, 1), "2026-02"),
        (date(2026, 12, 31), "2026-11"),
    ],
)
def test_previous_month(today: date, month: str) -> None:
    assert previous_month(today) == month


@pytest.mark.parametrize("month", ["2026-13", "2026-1", "26-11", "2026/11", "", "2026-11-01"])
def test_month_must_be_yyyy_mm(month: str) -> None:
    with pytest.raises(B12ScreenError, match="YYYY-MM"):
        month_bounds(month)


def test_month_bounds() -> None:
    assert month_bounds("2024-02") == (date(2024, 2, 1), date(2024, 3, 1))
    assert month_bounds("2026-12") == (date(2026, 12, 1), date(2027, 1, 1))


def test_report_over_real_runs_counts_them_and_holds_no_patient_id(
    tmp_path: Path, small_extracts: Path
) -> None:
    db, out = tmp_path / "db.duckdb", tmp_path / "out"
    run_screening(RunConfig(small_extracts, out, date(2026, 11, 23), db))
    run_screening(RunConfig(small_extracts, out, date(2026, 11, 24), db))
    (small_extracts / "labs_broken.parquet").write_bytes(b"PAR1 garbage")
    with pytest.raises(B12ScreenError):
        run_screening(RunConfig(small_extracts, out, date(2026, 11, 25), db))
    with duckdb.connect(str(db)) as con:  # runs of other months are left out
        con.execute(
            "INSERT INTO runs (run_id, as_of, started_at, status, record) VALUES "
            "('oct', DATE '2026-10-31', TIMESTAMP '2026-10-31 02:30:00', 'succeeded', ?), "
            "('dec', DATE '2026-12-01', TIMESTAMP '2026-12-01 02:30:00', 'succeeded', ?)",
            [_record("oct", 9, 9, 9), _record("dec", 9, 9, 9)],
        )

    html_path = write_month_report(db, "2026-11", tmp_path / "audit", today=date(2026, 12, 1))
    assert html_path == tmp_path / "audit" / "audit-2026-11.html"
    report = json.loads(html_path.with_suffix(".json").read_text())
    totals = report["totals"]
    assert (totals["runs"], totals["succeeded"], totals["failed"]) == (3, 2, 1)
    assert [r["as_of"] for r in report["runs"]] == ["2026-11-23", "2026-11-24", "2026-11-25"]
    assert [r["status"] for r in report["runs"]] == ["succeeded", "succeeded", "failed"]
    # each run's counts are its record's (the record the runner wrote), totals their sums
    with duckdb.connect(str(db), read_only=True) as con:
        records = {
            run_id: json.loads(record)["counts"]
            for run_id, record in con.execute(
                "SELECT run_id, CAST(record AS VARCHAR) FROM runs WHERE status = 'succeeded'"
            ).fetchall()
        }
    ok = [r for r in report["runs"] if r["status"] == "succeeded"]
    for run in ok:
        counts = records[run["run_id"]]
        assert run["worklist"] == counts["worklist"]
        assert run["rows_quarantined_by_kind"] == counts["rows_quarantined"]
        assert run["rows_quarantined"] == sum(counts["rows_quarantined"].values())
        assert run["patients_by_criterion"] == counts["patients_by_criterion"]
    assert ok[0]["worklist"] == {"urgent": 2, "high": 0, "routine": 0, "total": 2}
    assert ok[0]["rows_quarantined"] == 1  # p3's 'pending' Hgb
    assert ok[0]["patients_by_criterion"]["b12_deficient"] == 1
    assert totals["worklist"] == {
        p: sum(r["worklist"][p] for r in ok) for p in ("urgent", "high", "routine", "total")
    }
    assert totals["worklist"]["total"] == 4  # p1 and p3 on the worklist both nights
    assert totals["rows_quarantined"] == sum(r["rows_quarantined"] for r in ok)
    assert totals["patients_by_criterion"]["b12_deficient"] == 2
    assert totals["patients_by_criterion"]["critical_anemia"] == 2
    (failure,) = report["failures"]
    assert failure["as_of"] == "2026-11-25" and "labs_broken.parquet" in failure["cause"]
    assert report["runs"][2]["worklist"] == {} and report["runs"][2]["rows_quarantined"] is None
    assert len(report["dates_without_a_succeeded_run"]) == 30 - 2

    rows = list(csv.DictReader(html_path.with_suffix(".csv").open()))
    assert [r["run_id"] for r in rows][-1] == "total" and len(rows) == 4
    assert [r["worklist_urgent"] for r in rows] == ["2", "2", "", "4"]
    assert rows[2]["status"] == "failed" and "labs_broken.parquet" in rows[2]["cause"]
    assert rows[3]["criterion_b12_deficient"] == "2"
    assert rows[3]["quarantined_labs"] == str(totals["rows_quarantined_by_kind"]["labs"])

    html = html_path.read_text()
    assert "care / QI team only" in html and "not for sharing outside it" in html
    lowered = html.lower()  # opens offline: no script, no outside address
    assert "<script" not in lowered and "http://" not in lowered and "https://" not in lowered
    assert "labs_broken.parquet" in html
    ids = pl.read_csv(small_extracts / "patients.csv")["patient_id"].to_list()
    for suffix in (".html", ".json", ".csv"):
        _no_patient_id(html_path.with_suffix(suffix).read_text(), ids)


def test_failed_runs_are_not_counted_and_causes_are_escaped(tmp_path: Path) -> None:
    db = _registry(
        tmp_path / "db.duckdb",
        [
            (
                "a",
                date(2026, 11, 1),
                datetime(2026, 11, 1, 2, 30),
                "succeeded",
                None,
                _record("a", 3, 2, 5),
            ),
            # failed while publishing: its record carries counts that were never published
            (
                "b",
                date(2026, 11, 2),
                datetime(2026, 11, 2, 2, 30),
                "failed",
                "cannot write to output folder <out>\nsecond line",
                _record("b", 7, 7, 7),
            ),
            # no as-of date (recorded before the run started): the start date places it
            ("c", None, datetime(2026, 11, 3, 2, 30), "failed", "flow run failed", None),
            (
                "d",
                date(2026, 11, 4),
                datetime(2026, 11, 4, 2, 30),
                "succeeded",
                None,
                _record("d", 1, 0, 0),
            ),
        ],
    )
    html_path = write_month_report(db, "2026-11", tmp_path / "audit", today=date(2026, 11, 10))
    report = json.loads(html_path.with_suffix(".json").read_text())
    totals = report["totals"]
    assert (totals["runs"], totals["succeeded"], totals["failed"]) == (4, 2, 2)
    assert totals["worklist"] == {"urgent": 4, "high": 2, "routine": 0, "total": 6}
    assert totals["rows_quarantined"] == 5 and totals["rows_quarantined_by_kind"] == {"labs": 5}
    assert totals["patients_by_criterion"] == {"b12_deficient": 2, "anemia": 2}
    assert [f["run_id"] for f in report["failures"]] == ["b", "c"]
    assert report["failures"][0]["cause"] == "cannot write to output folder <out>"
    assert report["dates_without_a_succeeded_run"][:3] == ["2026-11-02", "2026-11-03", "2026-11-05"]
    assert report["dates_without_a_succeeded_run"][-1] == "2026-11-10"  # not after today
    html = html_path.read_text()
    assert "&lt;out&gt;" in html and "<out>" not in html
    assert "second line" not in html


def test_month_without_runs(tmp_path: Path) -> None:
    db = _registry(tmp_path / "db.duckdb", [])
    html = write_month_report(db, "2026-11", tmp_path / "audit", today=date(2027, 1, 1))
    report = json.loads(html.with_suffix(".json").read_text())
    assert report["runs"] == [] and report["totals"]["runs"] == 0
    assert len(report["dates_without_a_succeeded_run"]) == 30
    assert "No run in the registry" in html.read_text()


def test_database_without_registry_and_missing_database(tmp_path: Path) -> None:
    duckdb.connect(str(tmp_path / "empty.duckdb")).close()
    assert read_month_runs(tmp_path / "empty.duckdb", "2026-11") == []
    with pytest.raises(B12ScreenError, match="database not found"):
        write_month_report(tmp_path / "nope.duckdb", "2026-11", tmp_path / "audit")


def test_busy_database_is_a_transient_error(tmp_path: Path, hold_database) -> None:
    db = _registry(tmp_path / "db.duckdb", [])
    with hold_database(db), pytest.raises(DatabaseBusyError) as caught:
        read_month_runs(db, "2026-11")
    assert caught.value.transient is True


def test_a_report_that_fails_half_way_leaves_the_previous_one_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The three files are built aside and replace the old ones together, or not at all."""
    from pipeline.reports import monthly

    out = tmp_path / "audit"
    report = build_month_report([], "2026-10", today=date(2026, 11, 2))
    first = write_report_files(report, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(before) == ["audit-2026-10.csv", "audit-2026-10.html", "audit-2026-10.json"]

    def broken(_report: dict) -> str:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(monthly, "_html", broken)  # the last of the three files to be written
    report["generated_at"] = "a later run"
    with pytest.raises(B12ScreenError, match="cannot write the audit report to .*No space left"):
        write_report_files(report, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no half-new set, no debris
    assert first.exists()
