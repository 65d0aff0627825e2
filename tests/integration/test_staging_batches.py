"""A large night is staged, validated and merged in batches of files (pipeline/store/validate.py,
stage_validate_merge): the outcome must be that of one batch, whatever the batches.

Each test screens the same nights into two databases: one staging every file of a night as
its own batch (``staging_batch_rows=1``), one staging the whole night at once (the default at
this size), and requires the same stored rows, corrections log, quarantine, row counts and
flags. The first test's expectations are also written by hand from its data.
"""

from __future__ import annotations

import io
import logging
import shutil
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.runner import RunConfig, ScreeningRun, run_screening

NIGHT1 = date(2026, 11, 20)
NIGHT2 = date(2026, 11, 21)
PATIENTS = """patient_id,sex,birth_date,site
p1,M,1950-03-01,north
p2,F,1962-07-12,south
p3,F,1971-01-30,north
"""
HEADER = "patient_id,collected_at,loinc,test_name,value,unit,result_id\n"


def _night(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def _screen(tmp: Path, nights: list[tuple[date, dict[str, str]]], batch_rows: int | None):
    """Screen the nights into one database; return what the last night left."""
    db = tmp / "b12.duckdb"
    record = {}
    for number, (as_of, files) in enumerate(nights, start=1):
        extracts = _night(tmp / f"night{number}", files)
        result = run_screening(
            RunConfig(
                extracts, tmp / "out", as_of, db, memory_limit=None, staging_batch_rows=batch_rows
            )
        )
        record = result.record
    con = duckdb.connect(str(db), read_only=True)
    try:
        stored = con.sql("SELECT * EXCLUDE (run_id) FROM lab_results ORDER BY _rid").fetchall()
        corrections = con.sql(
            "SELECT * EXCLUDE (run_id) FROM lab_result_corrections ORDER BY ALL"
        ).fetchall()
    finally:
        con.close()
    out = tmp / "out"
    flags = pl.read_parquet(out / "flags.parquet").drop("run_id", strict=False)
    return {
        "stored": stored,
        "corrections": corrections,
        "quarantine": _without_run_id(out / "quarantine.csv"),
        "worklist": _without_run_id(out / "worklist.csv"),
        "counts": {k: v for k, v in record["counts"].items() if k in ("merged", "rows_read")},
        "flags": sorted(map(str, flags.sort(flags.columns).rows())),
    }


def _without_run_id(path: Path) -> str:
    """A CSV output as text, without the run's id (the two databases' runs differ in it)."""
    frame = pl.read_csv(path, infer_schema=False)
    return frame.drop("run_id", strict=False).write_csv()


def _batched_notes(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "labs: batch " in r.getMessage()]


# Night 1 stores r1 = 150, r3 = 300 and r5 = 400. Night 2's three files, in order:
#   r1: 200 (corrects 150), then 150 again: the last copy equals the stored row -> re-sent,
#       no correction logged, 150 stays stored.
#   r2: 100 (new), then 120: new once, re-sent once; 120 stored.
#   r3: 300 (re-sent), then 310: corrected once (300 -> 310), re-sent once.
#   r5: 410, 420, 430: corrected once (400 -> 430), re-sent twice.
#   r6: "abc" in file 2 (quarantined), 250 in file 3: new.
NIGHT1_LABS = HEADER + (
    "p1,2026-11-15,2132-9,,150,pg/mL,r1\n"
    "p2,2026-11-15,2132-9,,300,pg/mL,r3\n"
    "p3,2026-11-15,2132-9,,400,pg/mL,r5\n"
)
NIGHT2_FILES = {
    "patients.csv": PATIENTS,
    "labs_1.csv": HEADER
    + (
        "p1,2026-11-15,2132-9,,200,pg/mL,r1\n"
        "p1,2026-11-16,2132-9,,100,pg/mL,r2\n"
        "p2,2026-11-15,2132-9,,300,pg/mL,r3\n"
        "p3,2026-11-15,2132-9,,410,pg/mL,r5\n"
    ),
    "labs_2.csv": HEADER
    + (
        "p1,2026-11-15,2132-9,,150,pg/mL,r1\n"
        "p2,2026-11-15,2132-9,,310,pg/mL,r3\n"
        "p3,2026-11-15,2132-9,,420,pg/mL,r5\n"
        "p3,2026-11-16,2132-9,,abc,pg/mL,r6\n"
    ),
    "labs_3.csv": HEADER
    + (
        "p1,2026-11-16,2132-9,,120,pg/mL,r2\n"
        "p3,2026-11-15,2132-9,,430,pg/mL,r5\n"
        "p3,2026-11-16,2132-9,,250,pg/mL,r6\n"
    ),
}


def test_batches_of_files_merge_as_one_night(tmp_path: Path, caplog) -> None:
    nights = [(NIGHT1, {"patients.csv": PATIENTS, "labs.csv": NIGHT1_LABS}), (NIGHT2, NIGHT2_FILES)]
    with caplog.at_level(logging.INFO, logger="b12screen"):
        batched = _screen(tmp_path / "batched", nights, batch_rows=1)
    notes = _batched_notes(caplog)
    assert any("batch 3 of 3" in n for n in notes), notes
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="b12screen"):
        whole = _screen(tmp_path / "whole", nights, batch_rows=None)
    assert not _batched_notes(caplog)
    assert batched == whole

    # and what both hold, from the data above
    labs = batched["counts"]["merged"]["labs"]
    assert (labs["new"], labs["resent"], labs["corrected"]) == (2, 6, 2)
    con = duckdb.connect(str(tmp_path / "batched" / "b12.duckdb"), read_only=True)
    try:
        stored = dict(con.sql("SELECT result_id, value_reported FROM lab_results").fetchall())
        logged = con.sql(
            "SELECT old_value, new_value FROM lab_result_corrections ORDER BY old_value"
        ).fetchall()
    finally:
        con.close()
    assert stored == {"r1": "150", "r2": "120", "r3": "310", "r5": "430", "r6": "250"}
    assert logged == [("300", "310"), ("400", "430")]
    quarantined = pl.read_csv(io.StringIO(batched["quarantine"]), infer_schema=False)
    assert quarantined.select("source_file", "row_number").rows() == [("labs_2.csv", "4")]


def test_a_first_night_in_batches_keeps_the_last_copy_of_each_key(tmp_path: Path, caplog) -> None:
    """Nothing stored before: the batches are only stored and the run's keys settled once after
    the last (merge.settle_first_fill). Night 2's files alone, into an empty database: each key's
    last copy in file order stays, every earlier copy is re-sent, nothing is a correction."""
    nights = [(NIGHT2, NIGHT2_FILES)]
    with caplog.at_level(logging.INFO, logger="b12screen"):
        batched = _screen(tmp_path / "batched", nights, batch_rows=1)
    assert any("batch 3 of 3" in n for n in _batched_notes(caplog))
    whole = _screen(tmp_path / "whole", nights, batch_rows=None)
    assert batched == whole
    labs = batched["counts"]["merged"]["labs"]
    # r1, r2, r3, r5, r6 new; the earlier copies of r1, r2, r3 (one each) and r5 (two) re-sent
    assert (labs["valid"], labs["new"], labs["resent"], labs["corrected"]) == (10, 5, 5, 0)
    con = duckdb.connect(str(tmp_path / "batched" / "b12.duckdb"), read_only=True)
    try:
        stored = dict(con.sql("SELECT result_id, value_reported FROM lab_results").fetchall())
        ((logged,),) = con.sql("SELECT count(*) FROM lab_result_corrections").fetchall()
    finally:
        con.close()
    assert stored == {"r1": "150", "r2": "120", "r3": "310", "r5": "430", "r6": "250"}
    assert logged == 0


def test_the_merge_lists_what_each_correction_replaced_for_the_lab_state(tmp_path: Path) -> None:
    """After night 2's merge (batched or not) the lab state finds its corrections in the merge's
    list of superseded rows: r3 and r5 are corrected in place (same result id, analyte and
    time), so no patient's history is to be read again (state.removals)."""
    from pipeline.store import state

    for batch_rows in (1, None):
        folder = tmp_path / str(batch_rows)
        db = folder / "b12.duckdb"
        night1 = _night(folder / "night1", {"patients.csv": PATIENTS, "labs.csv": NIGHT1_LABS})
        run_screening(RunConfig(night1, folder / "out", NIGHT1, db, memory_limit=None))
        night2 = _night(folder / "night2", NIGHT2_FILES)
        run = ScreeningRun(
            RunConfig(
                night2, folder / "out", NIGHT2, db, memory_limit=None, staging_batch_rows=batch_rows
            )
        )
        try:
            run.prepare()
            run.ingest()
            run.validate()
            history, replaced = state.removals(run.con)
            assert run.con.execute(history).fetchall() == []
            assert sorted(run.con.execute(replaced).fetchall()) == [("p2", "b12"), ("p3", "b12")]
        finally:
            run.close()


def _validated(db: Path, extracts: Path, batch_rows: int | None) -> dict:
    """Night 2's prepare, ingest and validate stages on ``db``: what they stored, logged,
    quarantined and counted (seen inside the run's transaction, then rolled back)."""
    run = ScreeningRun(
        RunConfig(
            extracts,
            db.parent / "out",
            NIGHT2,
            db,
            memory_limit=None,
            staging_batch_rows=batch_rows,
        )
    )
    try:
        run.prepare()
        run.ingest()
        run.validate()
        con = run.con
        return {
            "stored": con.sql(
                "SELECT * EXCLUDE (run_id) FROM lab_results ORDER BY _rid"
            ).fetchall(),
            "corrections": con.sql(
                "SELECT * EXCLUDE (run_id) FROM lab_result_corrections ORDER BY ALL"
            ).fetchall(),
            "quarantine": con.sql("SELECT * FROM quarantine").fetchall(),
            "counts": {k: m.as_dict() for k, m in run.validated.merged.items()},
        }
    finally:
        run.close()


# Few keys, so that one key often has copies in several files of a night and a stored row.
_row = st.tuples(
    st.sampled_from(["p1", "p2"]),
    st.sampled_from(["2026-11-15", "2026-11-16"]),
    st.sampled_from(["150", "180", "abc"]),
    st.sampled_from(["r1", "r2", ""]),  # "": keyed by the row's content
)
_file = st.lists(_row, min_size=1, max_size=6)


def _labs(rows) -> str:
    return HEADER + "".join(f"{p},{d},2132-9,,{v},pg/mL,{r}\n" for p, d, v, r in rows)


def _lab_files(files) -> dict[str, str]:
    """A night's lab files, each different (a file seen before is skipped whole, never
    staged)."""
    return {
        f"labs_{k}.csv": _labs(rows) + f"p1,2026-11-14,2132-9,,500,pg/mL,f{k}\n"
        for k, rows in enumerate(files, start=1)
    }


def _batched_and_whole(tmp: Path, night: Path, base: Path | None = None) -> tuple[dict, dict]:
    """What validating ``night`` a file per batch and all at once, each into a copy of the
    database ``base`` (None: a new one), stores, logs, quarantines and counts (_validated)."""
    outcomes = []
    for name, batch_rows in (("batched", 1), ("whole", None)):
        db = tmp / name / "b12.duckdb"
        db.parent.mkdir()
        if base is not None:
            shutil.copy(base, db)
        outcomes.append(_validated(db, night, batch_rows))
    return outcomes[0], outcomes[1]


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(first=_file, files=st.lists(_file, min_size=2, max_size=4))
def test_any_batches_give_the_outcome_of_one(tmp_path_factory, first, files) -> None:
    """Random nights of re-sent, corrected, repeated and invalid rows across files."""
    tmp = tmp_path_factory.mktemp("night")
    base = tmp / "base" / "b12.duckdb"
    base.parent.mkdir()
    night1 = _night(tmp / "night1", {"patients.csv": PATIENTS, "labs.csv": _labs(first)})
    run_screening(RunConfig(night1, tmp / "base" / "out", NIGHT1, base, memory_limit=None))
    night2 = _night(tmp / "night2", _lab_files(files))
    batched, whole = _batched_and_whole(tmp, night2, base)
    assert batched == whole


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(files=st.lists(_file, min_size=2, max_size=4))
def test_any_first_night_in_batches_gives_the_outcome_of_one(tmp_path_factory, files) -> None:
    """Random first nights (nothing stored) of repeated and invalid rows across files."""
    tmp = tmp_path_factory.mktemp("first")
    night = _night(tmp / "night", {"patients.csv": PATIENTS} | _lab_files(files))
    batched, whole = _batched_and_whole(tmp, night)
    assert batched == whole


MEDICATIONS = (
    "patient_id,medication,rxnorm,atc,start_date,end_date,route\n"
    "p1,metformin,,,2020-01-01,,oral\n"
    "p2,omeprazole,,,2021-05-01,2022-01-01,oral\n"
    "p2,omeprazole,,,2021-05-01,2022-01-01,oral\n"
    "p9,metformin,,,2020-01-01,,oral\n"
    "p3,,,,2020-01-01,,oral\n"
)


def test_a_night_staged_whole_to_a_file_gives_the_outcome_of_a_table(
    tmp_path: Path, caplog, monkeypatch
) -> None:
    """A kind staged before it is stored (all but the labs, which go from the file to the
    store in one pass), when too large to hold staged in memory until the commit, is staged
    to a file as one batch (pipeline/store/validate.py, HELD_STAGED_SHARE): the outcome of a
    table. The medications hold a repeated row, an unknown patient and an unnamed drug."""
    from pipeline.store import validate

    night1 = {"patients.csv": PATIENTS, "labs.csv": NIGHT1_LABS}
    nights = [(NIGHT1, night1), (NIGHT2, {**NIGHT2_FILES, "medications.csv": MEDICATIONS})]

    def notes(caplog) -> list[str]:
        return [r.getMessage() for r in caplog.records if "medications: batch " in r.getMessage()]

    with caplog.at_level(logging.INFO, logger="b12screen"):
        table = _screen(tmp_path / "table", nights, batch_rows=None)
    assert not notes(caplog)
    caplog.clear()
    monkeypatch.setattr(validate, "HELD_STAGED_SHARE", 0.0)  # any night counts as large
    with caplog.at_level(logging.INFO, logger="b12screen"):
        in_file = _screen(tmp_path / "file", nights, batch_rows=None)
    assert any("batch 1 of 1" in n for n in notes(caplog)), notes(caplog)
    assert in_file == table
    quarantined = pl.read_csv(io.StringIO(table["quarantine"]), infer_schema=False)
    medications = quarantined.filter(pl.col("source_file") == "medications.csv")
    assert sorted(medications["row_number"].to_list()) == ["4", "5"]  # p9 unknown, p3 no drug


def test_a_stored_row_without_a_run_id_is_still_met_by_its_key(tmp_path: Path) -> None:
    """Rows stored with no run_id (a database filled by hand or by an early version) are
    compared with tonight's rows like any other: re-sent unchanged, corrected, never doubled."""
    db = tmp_path / "b12.duckdb"
    night1 = _night(tmp_path / "n1", {"patients.csv": PATIENTS, "labs.csv": NIGHT1_LABS})
    run_screening(RunConfig(night1, tmp_path / "out", NIGHT1, db, memory_limit=None))
    con = duckdb.connect(str(db))
    con.execute("UPDATE lab_rows SET run_id = NULL")
    con.close()
    labs = HEADER + (
        "p1,2026-11-15,2132-9,,150,pg/mL,r1\n"  # re-sent unchanged
        "p2,2026-11-15,2132-9,,305,pg/mL,r3\n"  # corrected (300)
        "p3,2026-11-16,2132-9,,420,pg/mL,r7\n"  # new
    )
    night2 = _night(tmp_path / "n2", {"labs_2.csv": labs})
    record = run_screening(
        RunConfig(night2, tmp_path / "out", NIGHT2, db, memory_limit=None)
    ).record
    merged = record["counts"]["merged"]["labs"]
    assert (merged["new"], merged["resent"], merged["corrected"]) == (1, 1, 1)
    con = duckdb.connect(str(db), read_only=True)
    try:
        stored = sorted(con.sql("SELECT result_id, value_reported FROM lab_results").fetchall())
    finally:
        con.close()
    assert stored == [("r1", "150"), ("r3", "305"), ("r5", "400"), ("r7", "420")]
