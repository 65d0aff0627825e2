"""The kept lab state (pipeline/store/state.py) gives exactly what the history gives.

The screening reads the latest result of each analyte per patient, kept in the database and
updated each night for the patients with new or corrected rows only. Two laws must hold:

1. The state kept up to date night by night equals the state built from scratch over the same
   stored rows (here after every night of a drop sequence, and as a property over random
   sequences of inserts, re-sends and corrections).
2. The flags of a run screened from the kept state equal those of a fresh database given every
   file at once (a full recomputation), and a backfill to an earlier as-of date, which cannot
   use the state, equals a fresh database screened at that date.
"""

from __future__ import annotations

import shutil
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.demo.generate import generate_population
from pipeline.resources import read_sql
from pipeline.runner import RunConfig, run_screening
from pipeline.sqltext import optimizer_disabled
from pipeline.store import state
from pipeline.store.merge import LAB_RESULTS_VIEW, delete_stored, forget_replaced, note_superseded
from pipeline.store.validate import SCRATCH_PREFIX

DEMO_AS_OF = date(2026, 11, 24)  # the demo's as-of date: its first night
NIGHTS = {1: DEMO_AS_OF, 2: DEMO_AS_OF + timedelta(days=1), 3: DEMO_AS_OF + timedelta(days=2)}
# flags.parquet columns left out of the comparison: the run, and the provenance of a result
# sent twice, which is its first file across nights (a re-sent row changes nothing) but its
# last copy within one run (the fresh databases get every file at once)
NOT_COMPARED = ("run_id", "source_file", "row_number")


def _rebuilt(con: duckdb.DuckDBPyConnection, table: str = "lab_results") -> str:
    """The state SQL over every row of ``table``: what a build from scratch gives."""
    con.execute(f"CREATE OR REPLACE TEMP VIEW state_lab_source AS SELECT * FROM {table}")
    return f"({read_sql(state.STATE_SQL)})"


def _same_rows(con: duckdb.DuckDBPyConnection, left: str, right: str) -> tuple[int, int, int]:
    """(rows only in left, rows only in right, rows of left); (0, 0, n) when equal."""
    only_left = con.execute(
        f"SELECT count(*) FROM (FROM {left} EXCEPT ALL FROM {right})"
    ).fetchone()[0]
    only_right = con.execute(
        f"SELECT count(*) FROM (FROM {right} EXCEPT ALL FROM {left})"
    ).fetchone()[0]
    rows = con.execute(f"SELECT count(*) FROM {left}").fetchone()[0]
    return only_left, only_right, rows


def _flags(out: Path) -> pl.DataFrame:
    frame = pl.read_parquet(out / "flags.parquet").drop(NOT_COMPARED)
    return frame.sort(frame.columns)


def _run(extracts: Path | None, out: Path, db: Path, as_of: date):
    return run_screening(RunConfig(extracts=extracts, out=out, as_of=as_of, db=db))


@pytest.fixture(scope="module")
def nights(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The demo population as three nights into one database: the whole demo on its as-of
    date, then a file a night with new results of that day, re-sent rows and corrected
    values. Beside it, the files of all three nights in one folder, for fresh databases."""
    root = tmp_path_factory.mktemp("lab_state")
    demo = root / "demo"
    generate_population(demo, n_patients=1200, truth_dir=root / "truth")
    north = pl.read_csv(demo / "labs_site_north.csv", infer_schema=False)
    with_ids = north.filter(pl.col("result_id").is_not_null() & pl.col("value").is_not_null())
    files: dict[int, dict[str, pl.DataFrame]] = {2: {}, 3: {}}
    for night, seed in ((2, 1), (3, 2)):
        day = NIGHTS[night].isoformat()
        arrived = with_ids.sample(n=200, seed=seed + 20).with_columns(
            collected_at=pl.lit(f"{day}T07:30:00"),
            result_id=pl.lit(f"N{night}-") + pl.col("result_id"),
        )
        resent = with_ids.sample(n=150, seed=seed)
        # a corrected value: the same result id, the value halved (deficient B12 and low counts
        # appear, flags move), and some of them corrected again the next night
        corrected = with_ids.sample(n=120, seed=seed + 10).with_columns(
            value=(pl.col("value").cast(pl.Float64, strict=False) / 2).round(1).cast(pl.String)
        )
        # (named to sort after the demo's files: within one run the last copy of a key wins)
        files[night] = {"labs_update": pl.concat([arrived, resent, corrected])}
    folders = {1: demo}
    everything = root / "all"
    shutil.copytree(demo, everything)
    for night in (2, 3):
        folder = root / f"night{night}"
        folder.mkdir()
        for name, frame in files[night].items():
            frame.write_csv(folder / f"{name}_{night}.csv")
            frame.write_csv(everything / f"{name}_{night}.csv")
        folders[night] = folder
    db = root / "kept.duckdb"
    kept_states = {}
    outs = {}
    records = {}
    for night, folder in folders.items():
        outs[night] = root / f"out{night}"
        records[night] = _run(folder, outs[night], db, NIGHTS[night]).record["lab_state"]
        con = duckdb.connect(str(db), read_only=True)
        try:
            kept_states[night] = _same_rows(con, "lab_latest", _rebuilt(con))
        finally:
            con.close()
    return {
        "root": root,
        "db": db,
        "outs": outs,
        "states": kept_states,
        "records": records,
        "everything": everything,
    }


def test_kept_state_equals_a_build_from_scratch_after_every_night(nights: dict) -> None:
    for night, (only_kept, only_rebuilt, rows) in nights["states"].items():
        assert (only_kept, only_rebuilt) == (0, 0), f"night {night}"
        assert rows > 1000, f"night {night}: the state holds {rows} rows"


def test_the_first_night_builds_the_state_and_later_nights_update_it(nights: dict) -> None:
    records = nights["records"]
    assert records[1]["action"] == "built"
    assert [records[n]["action"] for n in (2, 3)] == ["updated", "updated"]
    assert 0 < records[2]["patients"] < 1200
    assert not any(r["from_history"] for r in records.values())


def test_the_nights_changed_results(nights: dict) -> None:
    """The drop sequence is a real test: corrections reached the store and moved flags."""
    con = duckdb.connect(str(nights["db"]), read_only=True)
    try:
        (corrected,) = con.execute("SELECT count(*) FROM lab_result_corrections").fetchone()
        (arrived,) = con.execute(
            "SELECT count(*) FROM lab_results WHERE result_id LIKE 'N_-%'"
        ).fetchone()
    finally:
        con.close()
    assert corrected >= 150
    assert arrived == 400
    assert not _flags(nights["outs"][1]).equals(_flags(nights["outs"][3]))


def test_flags_from_the_kept_state_equal_a_full_recomputation(nights: dict, tmp_path: Path) -> None:
    fresh = tmp_path / "out"
    _run(nights["everything"], fresh, tmp_path / "fresh.duckdb", NIGHTS[3])
    kept, full = _flags(nights["outs"][3]), _flags(fresh)
    assert kept.height > 300
    assert kept.equals(full)
    worklist = ["patient_id", "priority", "criteria", "evidence"]
    assert (
        pl.read_csv(nights["outs"][3] / "worklist.csv")
        .select(worklist)
        .equals(pl.read_csv(fresh / "worklist.csv").select(worklist))
    )


def test_a_backfill_screens_from_the_history_as_a_fresh_database_would(
    nights: dict, tmp_path: Path
) -> None:
    db = tmp_path / "kept.duckdb"
    shutil.copy(nights["db"], db)
    back = tmp_path / "back"
    result = _run(None, back, db, NIGHTS[1])
    assert result.record["lab_state"]["from_history"] is True
    fresh = tmp_path / "fresh"
    _run(nights["everything"], fresh, tmp_path / "fresh.duckdb", NIGHTS[1])
    assert _flags(back).height > 300
    assert _flags(back).equals(_flags(fresh))
    con = duckdb.connect(str(db), read_only=True)
    try:  # the backfill read the history; the kept state is still tonight's
        assert _same_rows(con, "lab_latest", _rebuilt(con))[:2] == (0, 0)
    finally:
        con.close()


def test_rows_removed_outside_a_run_make_the_next_run_build_the_state_again(
    nights: dict, tmp_path: Path
) -> None:
    """A data team deleting a result by hand between runs: the kept state reflected it, so the
    next run must not trust the state; it sees the count differ and builds it again."""
    db = tmp_path / "kept.duckdb"
    shutil.copy(nights["db"], db)
    con = duckdb.connect(str(db))
    try:
        (patient,) = con.execute(
            "SELECT patient_id FROM lab_latest WHERE analyte = 'b12' ORDER BY patient_id LIMIT 1"
        ).fetchone()
        con.execute(  # lab_results is a view of lab_rows and their codings (store/merge.py)
            "DELETE FROM lab_rows WHERE _rid IN (SELECT _rid FROM lab_results "
            "WHERE patient_id = ? AND analyte = 'b12')",
            [patient],
        )
    finally:
        con.close()
    result = _run(None, tmp_path / "out", db, NIGHTS[3])
    assert result.record["lab_state"]["action"] == "built"
    assert result.record["lab_state"]["reason"] == "lab_results changed outside a run"
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert _same_rows(con, "lab_latest", _rebuilt(con))[:2] == (0, 0)
        assert not con.execute(
            "SELECT count(*) FROM lab_latest WHERE patient_id = ? AND analyte = 'b12'", [patient]
        ).fetchone()[0]
    finally:
        con.close()
    again = _run(None, tmp_path / "out", db, NIGHTS[3])  # and then it is trusted again
    assert again.record["lab_state"]["action"] == "unchanged"


# -- the law over random histories -----------------------------------------------------------
# Few patients and days, so that results often share a patient, analyte and time, where the
# result id, then the value, then the file and line decide which is the latest.
_PATIENTS = st.sampled_from(["a", "b"])
_ANALYTES = st.sampled_from(["b12", "mma", "hgb"])
_ROW = st.tuples(
    _PATIENTS,
    _ANALYTES,
    st.integers(min_value=0, max_value=3),  # day
    st.sampled_from([None, None, "1", "2", "10", "x"]),  # result id: ties broken by it
    st.sampled_from([100.0, 150.0, 400.0]),
)
# A correction's new row: the same result with another value, and sometimes another time or
# another analyte (a correction can move a result, or recode it).
_CORRECTION = st.tuples(
    st.integers(min_value=0, max_value=40),  # which stored row
    st.sampled_from([None, -3, -1, 2]),  # days moved (None: the same time)
    st.sampled_from([None, "b12", "hgb"]),  # recoded to (None: the same analyte)
    st.sampled_from([1.0, 150.0, 400.0]),
)
_NIGHT = st.tuples(st.lists(_ROW, max_size=8), st.lists(_CORRECTION, max_size=3))
_CODINGS = {"b12": 1, "mma": 2, "hgb": 3}


def _coded_store(con: duckdb.DuckDBPyConnection) -> None:
    """lab_rows and lab_codings under the view lab_results, as a run stores them."""
    con.execute(read_sql("registry/tables.sql"))
    con.execute(
        "CREATE TABLE lab_rows (_rid BIGINT, record_key VARCHAR, source_file VARCHAR, "
        "row_number BIGINT, patient_id VARCHAR, coding_id INTEGER, collected_at TIMESTAMP, "
        "result_id VARCHAR, value_canonical DOUBLE, censor VARCHAR, "
        "reference_low_canonical DOUBLE, reference_high_canonical DOUBLE, "
        "value_reported VARCHAR, run_id VARCHAR)"
    )
    for analyte, coding in _CODINGS.items():
        con.execute(
            "INSERT INTO lab_codings (coding_id, test_name, unit_reported, analyte, "
            "factor_to_canonical, canonical_unit) VALUES (?, ?, 'u', ?, 1, 'u')",
            [coding, analyte, analyte],
        )
    con.execute(LAB_RESULTS_VIEW)


# (rid, record key, file, line, patient, coding, time, result id, value), tonight's run id
_INSERT = (
    "INSERT INTO lab_rows VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL, '1', "
    "getvariable('run.id'))"
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_NIGHT, min_size=1, max_size=5))
def test_updating_the_patients_of_a_night_equals_building_from_scratch(nights_list) -> None:
    """As a run does it: rows are stored coded (lab_rows and lab_codings under the view
    lab_results), each with its record key (the patient and result id, else the row); new
    rows carry the night's run id; a corrected row's stored copy is deleted by the merge's
    delete_stored (which keeps it for the state) and its new value comes, with the same key,
    as one of tonight's rows. The update (tonight's rows, the history of only the patients
    whose latest a correction deleted other than in place) must equal a build from scratch."""
    con = duckdb.connect()
    _coded_store(con)
    con.execute("SET VARIABLE \"run.id\" = 'night-0'")
    state.build(con)
    rid = 0
    for night, (rows, corrections) in enumerate(nights_list, start=1):
        con.execute('SET VARIABLE "run.id" = ?', [f"night-{night}"])
        file = f"labs{night}.csv"
        for patient, analyte, day, result_id, value in rows:
            rid += 1
            key = f"id:{patient}|{result_id}" if result_id else f"row:{rid}"
            if con.execute("SELECT count(*) FROM lab_rows WHERE record_key = ?", [key]).fetchone()[
                0
            ]:
                continue  # a stored key: a correction, drawn below
            at = datetime(2026, 11, 1) + timedelta(days=day)
            values = [rid, key, file, rid, patient, _CODINGS[analyte], at, result_id, value]
            con.execute(_INSERT, values)
        for pick, moved, recoded, value in corrections:
            earlier = "FROM lab_results WHERE run_id <> getvariable('run.id')"
            ((count,),) = con.execute(f"SELECT count(*) {earlier}").fetchall()
            if not count:
                continue
            stored = con.execute(
                "SELECT _rid, record_key, patient_id, analyte, collected_at, result_id "
                f"{earlier} ORDER BY _rid LIMIT 1 OFFSET ?",
                [pick % count],
            ).fetchone()
            old_rid, key, patient, analyte, at, result_id = stored
            rid += 1
            note_superseded(  # as the merge notes it, from what its match read
                con,
                "labs",
                f"SELECT _rid, {rid}, patient_id, analyte, collected_at, source_file, "
                f"row_number FROM lab_results WHERE _rid = {old_rid}",
            )
            delete_stored(con, "lab_rows", f"_rid = {old_rid}")
            at += timedelta(days=moved or 0)
            coding = _CODINGS[recoded or analyte]
            con.execute(_INSERT, [rid, key, file, rid, patient, coding, at, result_id, value])
            con.execute(
                "INSERT INTO lab_result_corrections (run_id, patient_id) "
                "VALUES (getvariable('run.id'), ?)",
                [patient],
            )
        history, replaced = state.removals(con)
        state.update(con, history, state.TONIGHTS_ROWS, replaced)
        forget_replaced(con)
        assert _same_rows(con, "lab_latest", _rebuilt(con))[:2] == (0, 0)
    con.close()


def test_only_a_latest_result_not_replaced_in_place_has_its_history_read() -> None:
    """What tonight's deletions change (state.removals): a deleted older result changes
    nothing kept; a deleted latest result whose new row has its id, analyte and a time no
    earlier is replaced in place; one moved earlier, or one without a result id (whose place
    the value and the file decide), has its patient's history read again."""
    con = duckdb.connect()
    _coded_store(con)
    con.execute("SET VARIABLE \"run.id\" = 'r0'")
    for rid, patient, day, result_id, value in [
        (1, "older", 1, "1", 100),
        (2, "older", 5, "2", 100),
        (3, "kept", 5, "3", 100),
        (4, "moved", 5, "4", 100),
        (5, "no id", 5, None, 100),  # the latest: the lower value of two at the same time
        (6, "no id", 5, None, 150),
    ]:
        values = [rid, f"k{rid}", "a.csv", rid, patient, 1, f"2026-11-0{day}", result_id, value]
        con.execute(_INSERT, values)
    state.build(con)
    assert state.removals(con) == (state.CORRECTED_TONIGHT, None)  # none noted
    con.execute("SET VARIABLE \"run.id\" = 'r1'")
    for rid, old, patient, day, result_id in [
        (7, 1, "older", 1, "1"),
        (8, 3, "kept", 5, "3"),
        (9, 4, "moved", 4, "4"),
        (10, 5, "no id", 5, None),  # now 400: the other result at that time is the latest
    ]:
        note_superseded(
            con,
            "labs",
            f"SELECT _rid, {rid}, patient_id, analyte, collected_at, source_file, row_number "
            f"FROM lab_results WHERE _rid = {old}",
        )
        delete_stored(con, "lab_rows", f"_rid = {old}")
        values = [rid, f"k{old}", "b.csv", 1, patient, 1, f"2026-11-0{day}", result_id, 400]
        con.execute(_INSERT, values)
    history, replaced = state.removals(con)
    assert sorted(con.execute(history).fetchall()) == [("moved",), ("no id",)]
    assert con.execute(replaced).fetchall() == [("kept", "b12")]
    state.update(con, history, state.TONIGHTS_ROWS, replaced)
    assert _same_rows(con, "lab_latest", _rebuilt(con))[:2] == (0, 0)
    forget_replaced(con)
    assert state.removals(con) == (state.CORRECTED_TONIGHT, None)
    con.close()


@pytest.mark.parametrize("parts", [2, 3, 7])
def test_a_state_built_in_parts_of_patients_equals_one_built_at_once(
    nights: dict, tmp_path: Path, parts: int
) -> None:
    """A large history is built in parts of patients (state.build_parts); each part is its own
    statement, and together they are the state of one statement, both for the kept state and
    for a backfill's state of the history up to an earlier date."""
    db = tmp_path / "kept.duckdb"
    shutil.copy(nights["db"], db)
    con = duckdb.connect(str(db))
    try:
        con.execute("SET VARIABLE \"run.id\" = 'parts'")
        con.execute("BEGIN")
        rows = state.build(con, parts=parts)
        assert rows > 1000
        assert _same_rows(con, "lab_latest", _rebuilt(con)) == (0, 0, rows)
        (in_parts,) = con.execute(
            f"SELECT count(DISTINCT hash(patient_id) % {parts}) FROM lab_latest"
        ).fetchone()
        assert in_parts == parts  # every part held patients
        state._build_into(
            con, "CREATE TEMP TABLE back_parts", "collected_at::DATE <= DATE '2026-06-01'", parts
        )
        state._build_into(
            con, "CREATE TEMP TABLE back_whole", "collected_at::DATE <= DATE '2026-06-01'", 1
        )
        only_parts, only_whole, back_rows = _same_rows(con, "back_parts", "back_whole")
        assert (only_parts, only_whole) == (0, 0) and 1000 < back_rows < rows
        con.execute("ROLLBACK")
    finally:
        con.close()


def test_parts_without_patients_and_a_history_without_rows(nights: dict, tmp_path: Path) -> None:
    """More parts than patients leave parts empty (they are skipped), and no rows at all give
    an empty state of the same columns; the parts' files go in the folder given, and go, with
    those a killed run left there."""
    db = tmp_path / "kept.duckdb"
    shutil.copy(nights["db"], db)
    scratch = tmp_path / "scratch"
    stale = scratch / f"{SCRATCH_PREFIX}state-killed"  # what a killed run left
    stale.mkdir(parents=True)
    (stale / "part.parquet").write_bytes(b"left over")
    con = duckdb.connect(str(db))
    try:
        con.execute("SET VARIABLE \"run.id\" = 'parts'")
        con.execute("BEGIN")
        (patients,) = con.execute("SELECT count(DISTINCT patient_id) FROM lab_results").fetchone()
        rows = state.build(con, parts=patients * 4, scratch_dir=scratch)
        assert _same_rows(con, "lab_latest", _rebuilt(con)) == (0, 0, rows)
        assert list(scratch.iterdir()) == []
        state._build_into(con, "CREATE TEMP TABLE nothing", "false", 3, scratch)
        assert con.execute("SELECT count(*) FROM nothing").fetchone() == (0,)
        assert state.table_columns(con, "nothing") == state.table_columns(con, "lab_latest")
        con.execute("ROLLBACK")
    finally:
        con.close()


def test_the_parts_of_a_build_follow_the_memory_limit() -> None:
    con = duckdb.connect()
    try:
        con.execute("SET memory_limit = '3GB'")
        assert state.build_parts(con, 10_000_000) == 1
        assert state.build_parts(con, 250_000_000) > 1
        con.execute("SET memory_limit = '1GB'")
        assert state.build_parts(con, 250_000_000) > state.build_parts(con, 50_000_000) > 1
    finally:
        con.close()


def test_the_split_into_parts_writes_in_pieces_the_memory_limit_holds() -> None:
    """At 10M rows under 120MB, DuckDB's default row groups and flush threshold for the 5
    parts ran out of memory; below about 1GB they shrink with the limit, above it they are
    DuckDB's own."""
    con = duckdb.connect()
    try:
        con.execute("SET threads = 2")
        con.execute("SET memory_limit = '3GB'")
        assert state._split_sizes(con, 3) == (state.DEFAULT_ROW_GROUP, state.DEFAULT_FLUSH_ROWS)
        con.execute("SET memory_limit = '120MB'")
        row_group, flush = state._split_sizes(con, 5)
        assert 2_048 <= row_group < state.DEFAULT_ROW_GROUP
        assert row_group <= flush < state.DEFAULT_FLUSH_ROWS
        # what every thread holds open, a row group of each part and its gathered rows, fits
        assert 2 * (5 * row_group + flush) * 100 < 120 * 1000**2
    finally:
        con.close()


def _stored_out_of_order(con: duckdb.DuckDBPyConnection, table: str = "lab_latest") -> int:
    """How many of ``table``'s rows, in the order they are stored (rowid), come after a row of
    a later analyte: 0 when it is stored in runs of one analyte."""
    return con.execute(
        f"SELECT count(*) FROM (SELECT analyte < lag(analyte) OVER (ORDER BY rowid) AS back "
        f"FROM {table}) WHERE back"
    ).fetchone()[0]


def test_the_kept_state_is_stored_in_runs_of_one_analyte(nights: dict, tmp_path: Path) -> None:
    """Built at once or in parts, the state is stored by analyte (in parts: by analyte within
    each part), so a criterion's read of one analyte skips the others' rows."""
    db = tmp_path / "kept.duckdb"
    shutil.copy(nights["db"], db)
    con = duckdb.connect(str(db))
    try:
        con.execute("SET VARIABLE \"run.id\" = 'order'")
        con.execute("BEGIN")
        state.build(con, parts=1)
        assert _stored_out_of_order(con) == 0
        (analytes,) = con.execute("SELECT count(DISTINCT analyte) FROM lab_latest").fetchone()
        assert analytes > 5
        state.build(con, parts=3)
        # each of the three parts is one run of every analyte in order: two steps back at most
        assert 0 < _stored_out_of_order(con) <= 2
        con.execute("ROLLBACK")
    finally:
        con.close()


def test_a_state_in_no_order_is_written_again_in_order_with_the_same_rows() -> None:
    """recluster writes the table again by analyte once reading each analyte reads more than
    REORDER_READS times the table, and leaves a table in order alone; the rows stay the same."""
    con = duckdb.connect()
    try:
        con.execute(
            "CREATE TABLE lab_latest AS SELECT 'P' || (range // 6) AS patient_id, "
            "['wbc', 'anc', 'mcv', 'b12', 'hgb', 'folate'][range % 6 + 1] AS analyte, "
            "range::DOUBLE AS value_canonical FROM range(600000)"
        )
        con.execute(
            "CREATE TABLE lab_codings AS SELECT DISTINCT analyte FROM lab_latest "
            "UNION ALL SELECT NULL"  # a spelling coded to no analyte
        )
        con.execute("CREATE TABLE before AS FROM lab_latest")
        assert state.read_amplification(con) > 5.9  # six analytes: each read reads all
        assert state.recluster(con) is True
        assert _stored_out_of_order(con) == 0
        assert state.read_amplification(con) < 1.5
        assert _same_rows(con, "lab_latest", "before") == (0, 0, 600000)
        assert state.recluster(con) is False
        # a bound above what the reads in no order cost leaves the table as it is
        con.execute("CREATE OR REPLACE TABLE lab_latest AS FROM before")
        assert state.recluster(con, reads=6.0) is False
        assert _stored_out_of_order(con) > 0
    finally:
        con.close()


def test_a_refresh_reorders_a_state_stored_out_of_order_and_says_so(
    nights: dict, tmp_path: Path
) -> None:
    """A kept state whose rows are no longer in runs of one analyte (here shuffled by hand) is
    written again in order by the next refresh that updates it, and equals the history's."""
    db = tmp_path / "kept.duckdb"
    shutil.copy(nights["db"], db)
    con = duckdb.connect(str(db))
    try:
        con.execute("CREATE TABLE shuffled AS SELECT * FROM lab_latest ORDER BY hash(rowid)")
        con.execute("DROP TABLE lab_latest")
        con.execute("ALTER TABLE shuffled RENAME TO lab_latest")
        assert _stored_out_of_order(con) > 0
        con.execute("SET VARIABLE \"run.id\" = 'reorder'")
        con.execute("BEGIN")
        done = state.refresh(con, NIGHTS[3], reread="SELECT patient_id FROM lab_results LIMIT 5")
        assert (done.action, done.reordered) == ("updated", True)
        assert "stored again in order of analyte" in done.note()
        assert _stored_out_of_order(con) == 0
        assert _same_rows(con, "lab_latest", _rebuilt(con))[:2] == (0, 0)
        con.execute("ROLLBACK")
    finally:
        con.close()


class _PlanWatch:
    """A connection that, before running a statement that reads the state SQL, asks DuckDB for
    its plan and notes whether the plan holds a subplan once for two reads (a materialised
    common subplan); everything else goes to the connection as it is."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con
        self.held: list[bool] = []

    def execute(self, statement: str, *args):
        if read_sql(state.STATE_SQL) in statement:
            plan = "\n".join(row[1] for row in self._con.execute(f"EXPLAIN {statement}").fetchall())
            self.held.append("__common_subplan" in plan)
        return self._con.execute(statement, *args)

    def __getattr__(self, name: str):
        return getattr(self._con, name)


def test_the_state_sql_never_holds_the_history_it_reads_twice(nights: dict, tmp_path: Path) -> None:
    """The state SQL reads its source twice, and DuckDB left to itself plans one copy of the
    whole source for both reads (at 50M rows, 8.4 GB held and spilled): every statement of a
    build (at once and in parts) and of a night's update runs without that, and the setting
    is back as it was after."""
    db = tmp_path / "kept.duckdb"
    shutil.copy(nights["db"], db)
    con = duckdb.connect(str(db))
    try:
        con.execute("SET VARIABLE \"run.id\" = 'held'")
        con.execute("BEGIN")
        # a spelling coded to no analyte, as real extracts have (a test the site does not
        # screen): DuckDB then keeps the state SQL's `analyte is not null` and shares the reads
        con.execute("INSERT INTO lab_codings (coding_id, test_name) VALUES (1000000, 'Sodium')")
        state._source(con, "SELECT * FROM lab_results")
        plan = con.execute(f"EXPLAIN {read_sql(state.STATE_SQL)}").fetchall()
        assert "__common_subplan" in "\n".join(row[1] for row in plan)  # the guard is needed
        watch = _PlanWatch(con)
        state.build(watch, parts=1)
        state.build(watch, parts=3)
        state.update(watch, "SELECT patient_id FROM lab_results LIMIT 5", None)
        assert len(watch.held) == 1 + 3 + 1 and not any(watch.held)
        assert con.execute("SELECT current_setting('disabled_optimizers')").fetchone() == ("",)
        con.execute("ROLLBACK")
    finally:
        con.close()


def test_a_disabled_optimizer_pass_is_restored_after_a_failure() -> None:
    con = duckdb.connect()
    try:
        con.execute("SET disabled_optimizers = 'top_n'")
        with pytest.raises(duckdb.Error), optimizer_disabled(con, "common_subplan"):
            setting = con.execute("SELECT current_setting('disabled_optimizers')").fetchone()
            assert setting == ("top_n,common_subplan",)
            con.execute("SELECT * FROM no_such_table")
        assert con.execute("SELECT current_setting('disabled_optimizers')").fetchone() == ("top_n",)
    finally:
        con.close()
