"""The kept profile of the stored lab results (pipeline/store/profile.py) gives exactly what
the stored results give.

The audit's lab tables count every stored result by coding, canonical value and censoring;
the database keeps those counts and each night adds its own stored rows and takes off the rows
its corrections replaced. The law: the profile kept night by night equals the profile built
from scratch over the same stored rows, after every night of a drop sequence (new results,
re-sent rows, corrections, a correction corrected again, a night in several batches), and as a
property over random sequences of inserts and corrections.
"""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.demo.generate import generate_population
from pipeline.resources import read_sql
from pipeline.runner import RunConfig, run_screening
from pipeline.store import profile

AS_OF = date(2026, 11, 24)


def _rebuilt(con: duckdb.DuckDBPyConnection) -> str:
    con.execute("CREATE OR REPLACE TEMP VIEW lab_profile_source AS SELECT * FROM lab_rows")
    return f"({read_sql(profile.PROFILE_SQL)})"


def _differences(con: duckdb.DuckDBPyConnection) -> tuple[int, int, int]:
    """(rows only kept, rows only rebuilt, results counted by the kept profile)."""
    rebuilt = _rebuilt(con)
    only = [
        con.execute(f"SELECT count(*) FROM (FROM {a} EXCEPT ALL FROM {b})").fetchone()[0]
        for a, b in (("lab_profile", rebuilt), (rebuilt, "lab_profile"))
    ]
    (counted,) = con.execute("SELECT sum(results) FROM lab_profile").fetchone()
    return only[0], only[1], counted


@pytest.fixture(scope="module")
def nights(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The demo population on its as-of date, then three nights into the same database, each
    with new results, re-sent and corrected ones; the third in files of a few rows each, so
    that it is merged in batches."""
    root = tmp_path_factory.mktemp("lab_profile")
    demo = root / "demo"
    generate_population(demo, n_patients=600, truth_dir=root / "truth")
    north = pl.read_csv(demo / "labs_site_north.csv", infer_schema=False)
    with_ids = north.filter(pl.col("result_id").is_not_null() & pl.col("value").is_not_null())
    folders = [demo]
    for night in (1, 2, 3):
        day = (AS_OF + timedelta(days=night)).isoformat()
        arrived = with_ids.sample(n=120, seed=night).with_columns(
            collected_at=pl.lit(f"{day}T07:30:00"),
            result_id=pl.lit(f"N{night}-") + pl.col("result_id"),
        )
        resent = with_ids.sample(n=60, seed=night + 10)
        # the same result ids each night, so that some corrections are corrected again
        corrected = with_ids.sample(n=80, seed=night % 2).with_columns(
            value=(pl.col("value").cast(pl.Float64, strict=False) / (night + 1))
            .round(1)
            .cast(pl.String)
        )
        folder = root / f"night{night}"
        folder.mkdir()
        rows = pl.concat([arrived, resent, corrected])
        pieces = 4 if night == 3 else 1
        for i, piece in enumerate(rows.iter_slices(n_rows=-(-rows.height // pieces))):
            piece.write_csv(folder / f"labs_update_{night}_{i}.csv")
        folders.append(folder)
    db = root / "kept.duckdb"
    checks, actions, corrections = [], [], []
    for night, folder in enumerate(folders):
        config = RunConfig(
            folder,
            root / "out",
            AS_OF + timedelta(days=night),
            db,
            progress=False,
            staging_batch_rows=1 if night == 3 else None,  # a batch a file
        )
        result = run_screening(config)
        actions.append(result.record["lab_profile"])
        corrections.append(result.record["counts"]["merged"]["labs"]["corrected"])
        with duckdb.connect(str(db), read_only=True) as con:
            checks.append(_differences(con))
    return {"root": root, "db": db, "checks": checks, "actions": actions, "fixed": corrections}


def test_the_kept_profile_equals_a_build_from_scratch_after_every_night(nights: dict) -> None:
    for night, (only_kept, only_rebuilt, counted) in enumerate(nights["checks"]):
        assert (only_kept, only_rebuilt) == (0, 0), f"night {night}"
        assert counted > 3000, f"night {night}: the profile counts {counted} results"


def test_the_first_run_builds_the_profile_and_the_nights_update_it(nights: dict) -> None:
    assert nights["actions"][0] == "built (no profile yet)"
    assert nights["actions"][1:] == ["updated"] * 3
    assert all(n > 0 for n in nights["fixed"][1:])  # corrections reached the store


def test_rows_changed_outside_a_run_make_the_next_run_build_the_profile(
    nights: dict, tmp_path: Path
) -> None:
    db = tmp_path / "kept.duckdb"
    shutil.copy(nights["db"], db)
    with duckdb.connect(str(db)) as con:
        con.execute("DELETE FROM lab_rows WHERE _rid IN (SELECT _rid FROM lab_rows LIMIT 7)")
    result = run_screening(
        RunConfig(None, tmp_path / "out", AS_OF + timedelta(days=3), db, progress=False)
    )
    assert result.record["lab_profile"] == "built (lab results changed outside a run)"
    with duckdb.connect(str(db), read_only=True) as con:
        assert _differences(con)[:2] == (0, 0)


# -- the law over random histories -----------------------------------------------------------
_ROW = st.tuples(
    st.integers(min_value=1, max_value=3),  # coding
    st.sampled_from([None, 0.0, 1.5, 150.0, 150.0, 400.0]),  # canonical value
    st.sampled_from([None, "<", ">"]),  # censoring
)
_NIGHT = st.tuples(
    st.lists(_ROW, max_size=6),  # new rows
    st.lists(st.integers(min_value=0, max_value=40), max_size=4),  # stored rows replaced
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_NIGHT, min_size=1, max_size=5))
def test_counting_a_night_on_equals_counting_from_scratch(nights_list) -> None:
    """As the merge does it: tonight's stored rows carry the run id; a replaced stored row is
    counted off (note_removed) before it is deleted."""
    con = duckdb.connect()
    try:
        con.execute(read_sql("registry/tables.sql"))
        con.execute(
            "CREATE TABLE lab_rows (_rid BIGINT, coding_id INTEGER, value_canonical DOUBLE, "
            "censor VARCHAR, run_id VARCHAR)"
        )
        rid = 0
        for night, (rows, replaced) in enumerate(nights_list):
            con.execute('SET VARIABLE "run.id" = ?', [f"r{night}"])
            stored = [
                r for (r,) in con.execute("SELECT _rid FROM lab_rows ORDER BY _rid").fetchall()
            ]
            gone = sorted({stored[i % len(stored)] for i in replaced}) if stored else []
            if gone:
                where = f"_rid IN ({', '.join(map(str, gone))})"
                profile.note_removed(con, f"SELECT * FROM lab_rows WHERE {where}")
                con.execute(f"DELETE FROM lab_rows WHERE {where}")
            for coding, value, censor in rows:
                rid += 1
                con.execute(
                    "INSERT INTO lab_rows VALUES (?, ?, ?, ?, ?)",
                    [rid, coding, value, censor, f"r{night}"],
                )
            action = profile.refresh(con)
            assert action == ("built (no profile yet)" if night == 0 else "updated")
            assert _differences(con)[:2] == (0, 0)
    finally:
        con.close()
