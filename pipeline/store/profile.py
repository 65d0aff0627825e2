"""The profile of the stored lab results, kept: what the audit's lab tables count.

The audit describes every stored valid result (results per analyte and how each was
recognised, per reported unit, the distribution of canonical values and its tails, the tests
no rule uses). Each of those is a count over a result's coding, its canonical value and its
censoring, so the database keeps the counts (``lab_profile``, sql/state/lab_profile.sql: one
row per coding, value and censoring) and a night changes them by its own rows only: tonight's
stored rows are added, and the stored rows a correction replaced are taken off (the merge counts
them, :func:`note_removed`, just before it deletes them: pipeline/store/merge.py,
``delete_stored``). Without it, the audit read the whole history every run: its lab tables took
about 1 s of a night at 10M stored rows, and its collection 98 s at 250M (5 s with the profile,
docs/benchmarks.md).

The profile is built again from every stored row when it is missing, when its SQL has changed
(its SHA-256 is kept in ``store_state``), or when, after the night's changes, its results do
not add up to the stored rows (rows added or removed outside a run). Percentiles from it are
exact (sql/audit/value_distributions.sql).

tests/integration/test_lab_profile.py checks that the profile kept night by night equals the
profile built from scratch.
"""

from __future__ import annotations

import hashlib

import duckdb

from pipeline.resources import read_sql
from pipeline.store.catalog import table_exists

PROFILE_SQL = "state/lab_profile.sql"
PROFILE_TABLE = "lab_profile"
ROWS_TABLE = "lab_rows"  # the stored lab results, coded (pipeline/store/merge.py)
REMOVED = "lab_profile_removed"  # this run's replaced rows, counted before they are deleted
_SOURCE = "lab_profile_source"
TONIGHTS_ROWS = f"SELECT * FROM {ROWS_TABLE} WHERE run_id = getvariable('run.id')"


def _sql() -> str:
    return read_sql(PROFILE_SQL)


def profile_sha256() -> str:
    return hashlib.sha256(_sql().encode("utf-8")).hexdigest()


def _counted(con: duckdb.DuckDBPyConnection, rows: str) -> str:
    """SQL: the profile of ``rows`` (a query of lab_rows rows)."""
    con.execute(f"CREATE OR REPLACE TEMP VIEW {_SOURCE} AS {rows}")
    return f"({_sql()})"


def _removed_table(con: duckdb.DuckDBPyConnection) -> None:
    """The temporary table of the counts :func:`note_removed` takes off (empty at first)."""
    con.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {REMOVED} AS "
        f"SELECT * FROM {_counted(con, f'SELECT * FROM {ROWS_TABLE}')} WHERE false"
    )


def note_removed(con: duckdb.DuckDBPyConnection, rows: str) -> None:
    """Count ``rows`` (a query of stored lab_rows rows of earlier runs, about to be deleted)
    off the profile: kept in a temporary table until :func:`refresh`."""
    _removed_table(con)
    con.execute(f"INSERT INTO {REMOVED} SELECT * FROM {_counted(con, rows)}")


def _why_build(con: duckdb.DuckDBPyConnection) -> str | None:
    if not table_exists(con, PROFILE_TABLE):
        return "no profile yet"
    row = con.execute(
        "SELECT sql_sha256 FROM store_state WHERE name = ?", [PROFILE_TABLE]
    ).fetchone()
    if row is None or row[0] != profile_sha256():
        return "the profile's SQL has changed"
    return None


def build(con: duckdb.DuckDBPyConnection) -> None:
    """The profile of every stored lab result."""
    con.execute(
        f"CREATE OR REPLACE TABLE main.{PROFILE_TABLE} AS "
        f"SELECT * FROM {_counted(con, f'SELECT * FROM {ROWS_TABLE}')}"
    )


def update(con: duckdb.DuckDBPyConnection) -> None:
    """Add tonight's stored rows to the profile and take off those :func:`note_removed`
    counted; counts that reach zero leave it."""
    _removed_table(con)
    con.execute(
        f"CREATE OR REPLACE TABLE main.{PROFILE_TABLE} AS "
        "SELECT coding_id, value_canonical, censored, sum(results)::BIGINT AS results FROM ("
        f"SELECT * FROM {PROFILE_TABLE} "
        f"UNION ALL SELECT * FROM {_counted(con, TONIGHTS_ROWS)} "
        f"UNION ALL SELECT coding_id, value_canonical, censored, -results FROM {REMOVED}"
        ") GROUP BY ALL HAVING sum(results) <> 0"
    )


def refresh(con: duckdb.DuckDBPyConnection) -> str:
    """Bring the profile up to date with tonight's merge (in the run's transaction); returns
    what was done: ``updated``, or ``built (<reason>)``."""
    ((stored,),) = con.execute(f"SELECT count(*) FROM {ROWS_TABLE}").fetchall()
    reason = _why_build(con)
    if reason is None:
        update(con)
        ((counted,),) = con.execute(
            f"SELECT coalesce(sum(results), 0) FROM {PROFILE_TABLE}"
        ).fetchall()
        if counted != stored:
            reason = "lab results changed outside a run"
    if reason is not None:
        build(con)
    con.execute(f"DROP TABLE IF EXISTS temp.{REMOVED}")
    con.execute(f"DROP VIEW IF EXISTS {_SOURCE}")
    con.execute(
        "INSERT OR REPLACE INTO store_state "
        "VALUES (?, ?, getvariable('run.id'), now()::TIMESTAMP, ?)",
        [PROFILE_TABLE, profile_sha256(), stored],
    )
    return "updated" if reason is None else f"built ({reason})"
