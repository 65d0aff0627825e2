"""The database's kept data: valid rows of every night, merged without duplicates.

After validation, the valid incoming rows of each kind (``incoming_<kind>`` less
``rejected_<kind>``) are merged into the kept table of that kind by ``record_key`` (defined in
sql/staging, where each kind says which rows are "the same"):

* a key not yet stored is inserted;
* a key stored with the same content is a re-sent row: nothing changes;
* a key stored with other content is a correction: the stored row is replaced, and for lab
  results the old and new values are written to ``lab_result_corrections``.

Within one run the last row of a key (in file order) wins. Keys are 128-bit numbers (the MD5
of the text key staging builds), so the probe of the stored rows reads one fixed-width column
and merging a night's files costs little beyond the new rows. The columns only validation
reads (:data:`VALIDATION_ONLY`) are not stored.
"""

from __future__ import annotations

import duckdb

from pipeline.facts import MergeCounts
from pipeline.sqltext import ident

# kind -> (kept table, columns whose change makes a stored row a correction)
KEPT = {
    "patients": ("patients", ("sex", "birth_date", "site", "death_date", "identifiers")),
    "labs": (
        "lab_results",
        ("collected_at", "value_reported", "unit_reported", "analyte", "loinc", "test_name"),
    ),
    "medications": ("medications", ()),
    "diagnoses": ("diagnoses", ()),
    "feedback": ("feedback", ()),
}
# Staged columns that only validation reads (schemas/extracts.py): checked, never stored.
VALIDATION_ONLY = {
    "patients": ("is_implausibly_old", "has_death_date_text"),
    "labs": (
        "is_known_patient",
        "value_number",
        "reference_low",
        "reference_high",
        "implausible_analyte",
    ),
    "medications": ("is_known_patient", "has_end_date_text"),
    "diagnoses": ("is_known_patient",),
    "feedback": ("is_known_patient", "is_known_criterion", "has_until_text"),
}
_BOOKKEEPING = {"run_id": "VARCHAR", "received_on": "DATE"}


def _kept(kind: str) -> str:
    """The staged columns a kept table stores: all but the validation-only ones."""
    dropped = VALIDATION_ONLY[kind]
    return f"* EXCLUDE ({', '.join(dropped)})" if dropped else "*"


def upgrade_store(con: duckdb.DuckDBPyConnection) -> None:
    """Bring a database written by an earlier version to this one's storage, in the run's
    transaction: record keys as 128-bit numbers (the MD5 of the text key they were, which is
    what staging computes now; the separate 64-bit key hash is gone), and no stored copy of
    the last night's raw rows (raw_<kind> is a view over the files now)."""
    for table, _ in KEPT.values():
        have = table_columns(con, table) if table_exists(con, table) else {}
        if have.get("record_key") == "VARCHAR":
            con.execute(f"ALTER TABLE {table} ADD COLUMN _key UHUGEINT")
            con.execute(f"UPDATE {table} SET _key = md5_number(record_key)")
            con.execute(f"ALTER TABLE {table} DROP COLUMN record_key")
            con.execute(f"ALTER TABLE {table} RENAME COLUMN _key TO record_key")
        if "key_hash" in have:
            con.execute(f"ALTER TABLE {table} DROP COLUMN key_hash")
    # store_state (pipeline/store/state.py) before it counted the rows its state reflects
    con.execute("ALTER TABLE store_state ADD COLUMN IF NOT EXISTS source_rows BIGINT")
    for (name,) in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' AND NOT temporary "
        "AND table_name LIKE 'raw\\_%' ESCAPE '\\'"
    ).fetchall():
        con.execute(f"DROP TABLE main.{ident(name)}")


def table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_name = ? AND table_schema = 'main'",
            [table],
        ).fetchall()[0][0]
    )


def table_columns(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    return {r[0]: r[1] for r in con.execute(f"DESCRIBE {table}").fetchall()}


def _ensure_table(con: duckdb.DuckDBPyConnection, kind: str, table: str, incoming: str) -> None:
    """Create the kept table from the stored part of the incoming shape plus the bookkeeping
    columns; add columns a newer staging has."""
    wanted = table_columns(con, f"(SELECT {_kept(kind)} FROM {incoming})") | _BOOKKEEPING
    if not table_exists(con, table):
        # Explicit DDL, not CREATE TABLE AS ... LIMIT 0: in DuckDB 2.0 a table made that way and
        # filled with more than one row group in the same transaction reads as empty to joins
        # and DISTINCT aggregates until the commit (tests/integration/test_validation_scale.py).
        columns = ", ".join(f"{ident(name)} {dtype}" for name, dtype in wanted.items())
        con.execute(f"CREATE TABLE {table} ({columns})")
        return
    have = table_columns(con, table)
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
        f"SELECT count(*), count(DISTINCT record_key) FROM {source} ANTI JOIN _skip USING (_rid)"
    ).fetchall()
    within_run_copies = 0
    if distinct < valid:
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
    _ensure_table(con, kind, table, source)
    changed = " OR ".join(f"o.{c} IS DISTINCT FROM i.{c}" for c in compared) or "false"
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _matched AS
        SELECT i._rid AS new_rid, o._rid AS old_rid, ({changed}) AS changed
        FROM (SELECT * FROM {source} ANTI JOIN _skip USING (_rid)) AS i
        INNER JOIN {table} AS o ON o.record_key = i.record_key
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
                SELECT getvariable('run.id'), getvariable('run.as_of')::DATE, i.record_key::VARCHAR,
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
        SELECT {_kept(kind)}, getvariable('run.id') AS run_id,
               getvariable('run.as_of')::DATE AS received_on
        FROM {source}
        WHERE _rid NOT IN (SELECT _rid FROM _skip)
            AND _rid NOT IN (SELECT new_rid FROM _matched WHERE NOT changed)
        """
    )
    # the staged rows are merged: their memory goes back to the screening (at 10M rows a
    # staged table left alive made the screen spill)
    con.execute(f"DROP TABLE _skip; DROP TABLE _matched; DROP TABLE {source}")
    return counts
