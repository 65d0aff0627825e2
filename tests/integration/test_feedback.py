"""Clinician feedback holds until its date passes or new evidence arrives."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

import polars as pl

from pipeline.runner import RunConfig, run_screening

PATIENTS = "patient_id,sex,birth_date\nq1,M,1960-01-01\nq2,M,1960-01-01\n"
LABS = (
    "patient_id,collected_at,loinc,value,unit,result_id\n"
    "q1,2026-11-01,718-7,4.2,g/dL,a1\nq1,2026-11-01,2132-9,500,pg/mL,a2\n"
    "q2,2026-11-01,718-7,4.4,g/dL,b1\nq2,2026-11-01,2132-9,500,pg/mL,b2\n"
)
FEEDBACK = (
    "patient_id,criterion,action,until,note\n"
    "q1,critical_anemia,treated,2026-11-05,\n"  # until a date
    "q2,critical_anemia,not_applicable,,\n"  # until new evidence ('_' reads as '-')
)


def _run(folder: Path, out: Path, db: Path, as_of: date) -> dict[str, str]:
    run_screening(RunConfig(folder, out, as_of, db))
    with (out / "worklist.csv").open(newline="") as f:
        return {row["patient_id"]: row["criteria"] for row in csv.DictReader(f)}


def _day(tmp_path: Path, name: str, files: dict[str, str]) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    for file, text in files.items():
        (folder / file).write_text(text)
    return folder


def test_feedback_lapses_on_its_date_and_on_new_evidence(tmp_path: Path) -> None:
    out, db = tmp_path / "out", tmp_path / "db.duckdb"
    first = _day(
        tmp_path, "d1", {"patients.csv": PATIENTS, "labs.csv": LABS, "feedback.csv": FEEDBACK}
    )
    on_2nd = _run(first, out, db, date(2026, 11, 2))
    assert "q1" not in on_2nd and "q2" not in on_2nd
    flags = pl.read_parquet(out / "flags.parquet").filter(pl.col("criterion") == "critical_anemia")
    assert flags["is_suppressed"].to_list() == [True, True], (
        "suppressed flags stay in flags.parquet"
    )

    on_5th = _run(_day(tmp_path, "d2", {}), out, db, date(2026, 11, 5))
    assert "q1" not in on_5th, "feedback holds through its until date"

    new_hgb = (
        "patient_id,collected_at,loinc,value,unit,result_id\nq2,2026-11-06,718-7,4.0,g/dL,b3\n"
    )
    on_6th = _run(_day(tmp_path, "d3", {"labs_new.csv": new_hgb}), out, db, date(2026, 11, 6))
    assert "critical_anemia" in on_6th["q1"], "the until date has passed"
    assert "critical_anemia" in on_6th["q2"], "a new low result is new evidence"


def test_feedback_with_an_unknown_criterion_or_action_is_quarantined(tmp_path: Path) -> None:
    bad = (
        "patient_id,criterion,action,until,note\n"
        "q1,not_a_criterion,treated,,\nq1,critical_anemia,ignored,,\nq1,critical_anemia,treated,someday,\n"
    )
    folder = _day(tmp_path, "d1", {"patients.csv": PATIENTS, "labs.csv": LABS, "feedback.csv": bad})
    run_screening(RunConfig(folder, tmp_path / "out", date(2026, 11, 2), tmp_path / "db.duckdb"))
    with (tmp_path / "out" / "quarantine.csv").open(newline="") as f:
        reasons = [r["reason"] for r in csv.DictReader(f) if r["kind"] == "feedback"]
    assert len(reasons) == 3
    assert "criterion is not in the catalogue" in reasons[0]
    assert "action" in reasons[1]
    assert "until is not a date" in reasons[2]
