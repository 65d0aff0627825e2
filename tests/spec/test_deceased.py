"""Deceased patients (contract section 2, patients.death_date): not screened, counted, resolved.

A patient whose death date is on or before the as-of date gets no flag (so is on no list) and
is counted in the audit funnel's ``deceased`` row; a death date after the as-of date (a backfill
run as of an earlier day) leaves the patient screened as of then. Unreadable death dates and
deaths before birth are quarantined with a reason. Every expectation below is written out by
hand from the contract, never read from the code under test.
"""

from __future__ import annotations

import csv
import json
from datetime import timedelta

from tests.harness import AS_OF, parse_table, screen, screen_through_files

DEFICIENT = {"analyte": "b12", "value": "150"}  # below 200 pg/mL: deficient and untreated
LISTED = {"b12_deficient", "deficiency_untreated"}

CASES = f"""
patient_id           | death_date                            | expect
died-yesterday       | {AS_OF - timedelta(days=1)}           | -
died-on-as-of        | {AS_OF}                               | -
dies-tomorrow        | {AS_OF + timedelta(days=1)}           | b12_deficient deficiency_untreated
alive                |                                       | b12_deficient deficiency_untreated
died-time-of-day     | {AS_OF - timedelta(days=3)}T23:10:00  | -
"""


def _inputs():
    rows = parse_table(CASES)
    patients = [
        {"patient_id": r["patient_id"], "death_date": r["death_date"] or None} for r in rows
    ]
    labs = [{"patient_id": r["patient_id"], **DEFICIENT} for r in rows]
    return rows, patients, labs


def test_death_on_or_before_the_as_of_date_means_not_screened(tmp_path) -> None:
    rows, patients, labs = _inputs()
    result = screen(patients, labs, workdir=tmp_path)
    worklist = result.worklist()
    for r in rows:
        expected = set((r["expect"] or "").split()) - {"-"}
        assert result.criteria(r["patient_id"]) == expected, result.explain(r["patient_id"])
        assert (r["patient_id"] in worklist) == bool(expected)
    assert not result.quarantine


def test_the_audit_counts_the_deceased_and_the_summary_says_so(tmp_path) -> None:
    rows, patients, labs = _inputs()
    result = screen_through_files(patients, labs, workdir=tmp_path)
    with (result.out / "audit" / "funnel.csv").open(encoding="utf-8", newline="") as fh:
        funnel = {r["item"]: int(r["patients"]) for r in csv.DictReader(fh)}
    assert funnel["deceased"] == 3  # yesterday, on the as-of day, three days ago
    assert funnel["patients"] == len(rows)
    record = json.loads((result.out / "run.json").read_text(encoding="utf-8"))
    assert record["counts"]["patients_not_screened"] == {"under_minimum_age": 0, "deceased": 3}


def test_a_backfill_before_the_death_screens_the_patient(tmp_path) -> None:
    died = AS_OF - timedelta(days=10)
    patients = [{"patient_id": "later-died", "death_date": died.isoformat()}]
    labs = [
        {"patient_id": "later-died", **DEFICIENT, "collected_at": f"{died - timedelta(days=30)}"}
    ]
    before = screen(patients, labs, workdir=tmp_path / "a", as_of=died - timedelta(days=1))
    assert before.criteria("later-died") == LISTED
    after = screen(patients, labs, workdir=tmp_path / "b", as_of=died)
    assert after.criteria("later-died") == set()


def test_bad_death_dates_are_quarantined(tmp_path) -> None:
    patients = [
        {"patient_id": "no-such-day", "death_date": "2025-02-30"},
        {"patient_id": "words", "death_date": "unknown"},
        {"patient_id": "before-birth", "birth_date": "1950-06-01", "death_date": "1950-05-31"},
        {"patient_id": "on-birth-day", "birth_date": "1950-06-01", "death_date": "1950-06-01"},
        {"patient_id": "blank", "death_date": "  "},
    ]
    result = screen(patients, [], workdir=tmp_path)
    assert result.reasons("no-such-day") == ["death_date is not a date"]
    assert result.reasons("words") == ["death_date is not a date"]
    assert result.reasons("before-birth") == ["death_date before birth_date"]
    assert result.reasons("on-birth-day") == []  # at the boundary: a death on the day of birth
    assert result.reasons("blank") == []  # an empty cell is no death date


def test_a_patient_who_died_leaves_the_worklist_as_resolved(tmp_path) -> None:
    labs = [{"patient_id": "p1", **DEFICIENT}]
    first = screen_through_files([{"patient_id": "p1"}], labs, workdir=tmp_path)
    assert "p1" in first.worklist()
    died = AS_OF + timedelta(days=2)
    second = screen_through_files(
        [{"patient_id": "p1", "death_date": died.isoformat()}],
        labs,
        workdir=tmp_path,
        as_of=AS_OF + timedelta(days=3),
    )
    assert "p1" not in second.worklist()
    with (second.out / "resolved.csv").open(encoding="utf-8", newline="") as fh:
        resolved = {r["patient_id"]: r for r in csv.DictReader(fh)}
    assert resolved["p1"]["reason"] == "deceased"
    assert resolved["p1"]["detail"] == f"died on {died}"
