"""The database's kept data: valid rows of every night, merged without duplicates.

After validation, the valid incoming rows of each kind (``incoming_<kind>`` less
``rejected_<kind>``) are merged into the kept table of that kind by ``record_key`` (defined in
sql/staging, where each kind says which rows are "the same"):

* a key not yet stored is inserted;
* a key stored with the same content is a re-sent row: nothing changes;
* a key stored with other content is a correction: the stored row is replaced, and for lab
  results the old and new values are written to ``lab_result_corrections``.

Within one run the last row of a key (in file order) wins. The probe of the stored rows reads
only the 64-bit key hash column, so merging a night's files costs little beyond the new rows.
"""

from __future__ import annotations

import duckdb

from pipeline.facts import MergeCounts
from pipeline.sqltext import ident

# kind -> (kept table, columns whose change makes a stored row a correction)
KEPT = {
    "patients": ("patients", ("sex", "birth_date", "site")),
    "labs": (
        "lab_results",
        ("collected_at", "value_reported", "unit_reported", "analyte", "loinc", "test_name"),
    ),
    "medications": ("medications", ()),
    "diagnoses": ("diagnoses", ()),
    "feedback": ("feedback", ()),
}
_BOOKKEEPING = {
    "record_key": "VARCHAR",
    "key_hash": "UBIGINT",
    "run_id": "VARCHAR",
    "received_on": "DATE",
}


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    return {r[0]: r[1] for r in con.execute(f"DESCRIBE {table}").fetchall()}


def _ensure_table(con: duckdb.DuckDBPyConnection, table: str, incoming: str) -> None:
    """Create the kept table from the incoming shape plus the bookkeeping columns; add columns a
    newer staging has."""
    wanted = _columns(con, incoming) | {
        name: dtype for name, dtype in _BOOKKEEPING.items() if name != "record_key"
    }
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ? AND table_schema = 'main'",
        [table],
    ).fetchall()[0][0]
    if not exists:
        # Explicit DDL, not CREATE TABLE AS ... LIMIT 0: in DuckDB 2.0 a table made that way and
        # filled with more than one row group in the same transaction reads as empty to joins
        # and DISTINCT aggregates until the commit (tests/integration/test_validation_scale.py).
        columns = ", ".join(f"{ident(name)} {dtype}" for name, dtype in wanted.items())
        con.execute(f"CREATE TABLE {table} ({columns})")
        return
    have = _columns(con, table)
    for name, dtype in wanted.items():
        if name not in have:
            con.execute(f"ALTER TABLE {table} ADD COLUMN {ident(name)} {dtype}")


def merge(con: duckdb.DuckDBPyConnection, kind: str) -> MergeCounts:
    """Merge the valid incoming rows of ``kind`` into its kept table, in one pass of writing."""
    table, compared = KEPT[kind]
    source = f"incoming_{kind}"
    # Rows not to merge: the rejected ones, and earlier copies of a key within this run.
    con.execute(f"CREATE OR REPLACE TEMP TABLE _skip AS SELECT _rid FROM rejected_{kind}")
    ((valid, distinct),) = con.execute(
        f"SELECT count(*), count(DISTINCT hash(record_key)) FROM {source} ANTI JOIN _skip USING (_rid)"
    ).fetchall()
    within_run_copies = 0
    if distinct < valid:  # (a hash collision only sends us down this exact path)
        con.execute(
            f"""
            INSERT INTO _skip
            SELECT _rid FROM (
                SELECT _rid, row_number() OVER (PARTITION BY record_key ORDER BY _rid DESC) AS copy
                FROM {source} ANTI JOIN rejected_{kind} USING (_rid)
            ) WHERE copy > 1
            """
        )
        within_run_copies = (
            valid
            - con.execute(f"SELECT count(*) FROM {source} ANTI JOIN _skip USING (_rid)").fetchall()[
                0
            ][0]
        )
    _ensure_table(con, table, source)
    changed = " OR ".join(f"o.{c} IS DISTINCT FROM i.{c}" for c in compared) or "false"
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _matched AS
        SELECT i._rid AS new_rid, o._rid AS old_rid, ({changed}) AS changed
        FROM (SELECT * FROM {source} ANTI JOIN _skip USING (_rid)) AS i
        INNER JOIN {table} AS o ON o.key_hash = hash(i.record_key) AND o.record_key = i.record_key
        """
    )
    ((matched, corrected),) = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE changed) FROM _matched"
    ).fetchall()
    counts = MergeCounts(
        kind,
        valid=valid,
        new=valid - within_run_copies - matched,
        resent=within_run_copies + (matched - corrected),
        corrected=corrected,
    )
    if counts.corrected:
        if kind == "labs":
            con.execute(
                f"""
                INSERT INTO lab_result_corrections
                SELECT getvariable('run.id'), getvariable('run.as_of')::DATE, i.record_key,
                       i.patient_id, i.analyte, i.collected_at, o.value_reported, o.unit_reported,
                       i.value_reported, i.unit_reported, o.source_file, i.source_file
                FROM _matched m
                INNER JOIN lab_results o ON o._rid = m.old_rid
                INNER JOIN {source} i ON i._rid = m.new_rid
                WHERE m.changed
                """
            )
        con.execute(
            f"DELETE FROM {table} WHERE _rid IN (SELECT old_rid FROM _matched WHERE changed)"
        )
    con.execute(
        f"""
        INSERT INTO {table} BY NAME
        SELECT *, hash(record_key) AS key_hash, getvariable('run.id') AS run_id,
               getvariable('run.as_of')::DATE AS received_on
        FROM {source}
        WHERE _rid NOT IN (SELECT _rid FROM _skip)
            AND _rid NOT IN (SELECT new_rid FROM _matched WHERE NOT changed)
        """
    )
    con.execute("DROP TABLE _skip; DROP TABLE _matched")
    return counts
