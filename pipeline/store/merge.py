"""The database's kept data: valid rows of every night, merged without duplicates.

After validation, the valid incoming rows of each kind (``incoming_<kind>`` less
``rejected_<kind>``) are merged into the kept table of that kind by ``record_key`` (defined in
sql/staging, where each kind says which rows are "the same"):

* a key not yet stored is inserted;
* a key stored with the same content is a re-sent row: nothing changes;
* a key stored with other content is a correction: the stored row is replaced, and for lab
  results the old and new values are written to ``lab_result_corrections``.

Lab results are stored coded: ``lab_rows`` holds each result with the id of its coding
(``lab_codings``: the code, test name and unit as written, and what they were coded as:
analyte, unit key, conversion factor, canonical unit), and the view ``lab_results`` joins the
two back, so every reader sees one table of results. A few hundred codings serve millions of
rows, and writing a small integer instead of eight mostly text columns is about a third of the
cost of storing a night (docs/benchmarks.md).

Within one run the last row of a key (in file order) wins. Keys are 128-bit numbers (the MD5
of the text key staging builds), so the probe of the stored rows reads one fixed-width column
and merging a night's files costs little beyond the new rows. The columns only validation
reads (:data:`VALIDATION_ONLY`) are not stored.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb

from pipeline.facts import MergeCounts
from pipeline.registry import registry_ddl
from pipeline.sqltext import ident, literal
from pipeline.store import profile
from pipeline.store.catalog import (
    is_base_table,
    is_temp_table,
    is_temp_view,
    table_columns,
    table_exists,
)

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

# The coded kinds: kind -> (the table that stores the rows, the run's staged codings). The
# kept name of KEPT is then a view of the rows with their coding.
CODED = {"labs": ("lab_rows", "staged_lab_codings")}
# Kinds written to their kept table straight from the staging SQL (one pass from the file to
# the store): their staged rows are never held or written elsewhere first, and the merge then
# works on the rows as stored. Every coded kind is one (CODED).
WRITTEN_ONCE = ("labs",)
_THIS_RUN = "getvariable('run.id')"  # SQL: this run's id
# What the merge lists of each stored row a correction supersedes (``_superseded_<kind>``): its
# _rid, and for the labs what the kept lab state needs (pipeline/store/state.py, ``removals``):
# the _rid of the row that replaced it, the patient, and the old row's analyte, time, file and
# line (what tells whether it was the patient's kept latest result), from what the match of the
# keys read anyway (no second read of the stored rows). The labs' list outlives the merge: the
# state reads it and drops it (forget_replaced).
_SUPERSEDED = "_superseded_{}"
_SUPERSEDED_COLUMNS = {
    "labs": (
        "old_rid BIGINT, new_rid BIGINT, patient_id VARCHAR, analyte VARCHAR, "
        "collected_at TIMESTAMP, source_file VARCHAR, row_number BIGINT"
    )
}
# What _settle's match keeps of the new row (column -> name) and of the old one, for the labs.
_LOGGED = (
    {
        "patient_id": "patient_id",
        "analyte": "analyte",
        "collected_at": "collected_at",
        "value_reported": "new_value",
        "unit_reported": "new_unit",
        "source_file": "new_source_file",
    },
    {
        "value_reported": "old_value",
        "unit_reported": "old_unit",
        "source_file": "old_source_file",
        "analyte": "old_analyte",
        "collected_at": "old_collected_at",
        "row_number": "old_row_number",
    },
)
# the list's columns from _settle's match (_matched): the old row's, by the names _LOGGED gives
_SUPERSEDED_FROM_MATCH = {
    "labs": "old_rid, new_rid, patient_id, "
    + ", ".join(_LOGGED[1][c] for c in ("analyte", "collected_at", "source_file", "row_number"))
}


# What a coding holds, besides its id (sql/registry/tables.sql lab_codings).
CODING_COLUMNS = {
    "loinc": "VARCHAR",
    "test_name": "VARCHAR",
    "unit_reported": "VARCHAR",
    "unit_key": "VARCHAR",
    "analyte": "VARCHAR",
    "coded_by": "VARCHAR",
    "factor_to_canonical": "DOUBLE",
    "canonical_unit": "VARCHAR",
}
# the view of a coded kind -> the table of its rows (lab_results -> lab_rows)
_ROWS_OF_VIEW = {KEPT[kind][0]: rows for kind, (rows, _) in CODED.items()}
LAB_RESULTS_VIEW = (
    "CREATE VIEW lab_results AS SELECT lab_rows.* EXCLUDE (coding_id), "
    f"{', '.join(f'lab_codings.{c}' for c in CODING_COLUMNS)} "
    "FROM lab_rows INNER JOIN lab_codings USING (coding_id)"
)


def _kept(kind: str) -> str:
    """The staged columns a kept table stores: all but the validation-only ones."""
    dropped = VALIDATION_ONLY[kind] + (("analyte",) if kind in CODED else ())
    return f"* EXCLUDE ({', '.join(dropped)})" if dropped else "*"


def upgrade_store(con: duckdb.DuckDBPyConnection) -> None:
    """Bring a database written by an earlier version to this one's storage, in the run's
    transaction: record keys as 128-bit numbers (the MD5 of the text key they were, which is
    what staging computes now; the separate 64-bit key hash is gone), and no stored copy of
    the last night's raw rows (raw_<kind> is a view over the files now)."""
    for table, _ in KEPT.values():
        table = rows_table(con, table)
        have = table_columns(con, table) if table_exists(con, table) else {}
        if have.get("record_key") == "VARCHAR":
            con.execute(f"ALTER TABLE {table} ADD COLUMN _key UHUGEINT")
            con.execute(f"UPDATE {table} SET _key = md5_number(record_key)")
            con.execute(f"ALTER TABLE {table} DROP COLUMN record_key")
            con.execute(f"ALTER TABLE {table} RENAME COLUMN _key TO record_key")
        if "key_hash" in have:
            con.execute(f"ALTER TABLE {table} DROP COLUMN key_hash")
    if is_base_table(con, "lab_results"):  # stored before lab results were coded
        _code_lab_results(con)
    # store_state (pipeline/store/state.py) before it counted the rows its state reflects
    con.execute("ALTER TABLE store_state ADD COLUMN IF NOT EXISTS source_rows BIGINT")
    for (name,) in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' AND NOT temporary "
        "AND table_name LIKE 'raw\\_%' ESCAPE '\\'"
    ).fetchall():
        con.execute(f"DROP TABLE main.{ident(name)}")


def _code_lab_results(con: duckdb.DuckDBPyConnection) -> None:
    """Store the lab results of an earlier version coded: their codings into lab_codings, the
    rows with their coding_id into lab_rows, and lab_results the view of the two."""
    kept = {
        c: t for c, t in table_columns(con, "lab_results").items() if c not in CODING_COLUMNS
    } | {"coding_id": "INTEGER"}
    con.execute(f"CREATE TABLE lab_rows ({', '.join(f'{ident(c)} {t}' for c, t in kept.items())})")
    insert_coded(con, "lab_results")
    con.execute("DROP TABLE lab_results")
    con.execute(LAB_RESULTS_VIEW)


def insert_coded(con: duckdb.DuckDBPyConnection, source: str) -> None:
    """Store the rows of ``source`` (a relation with columns of lab_results, any of them) coded:
    their codings not yet in lab_codings join it, and the rows go to lab_rows with the id of
    their coding. (A run's merge codes its rows in staging; this is for rows that come whole.)"""
    have = table_columns(con, f"(SELECT * FROM {source})")
    values = {
        c: (f"s.{ident(c)}" if c in have else f"NULL::{t}") for c, t in CODING_COLUMNS.items()
    }
    (start,) = con.execute("SELECT coalesce(max(coding_id), 0) FROM lab_codings").fetchone()
    con.execute(
        f"""
        INSERT INTO lab_codings
        SELECT {start} + row_number() OVER (ORDER BY {", ".join(CODING_COLUMNS)}),
               {", ".join(CODING_COLUMNS)}, getvariable('run.id')
        FROM (SELECT DISTINCT {", ".join(f"{v} AS {c}" for c, v in values.items())}
              FROM {source} AS s) AS s
        WHERE NOT EXISTS (
            SELECT 1 FROM lab_codings AS c WHERE {_same_coding({c: f"s.{c}" for c in CODING_COLUMNS})}
        )
        """
    )
    present = [c for c in CODING_COLUMNS if c in have]
    rows = f"s.* EXCLUDE ({', '.join(present)})" if present else "s.*"
    con.execute(
        f"""
        INSERT INTO lab_rows BY NAME
        SELECT {rows}, c.coding_id
        FROM {source} AS s INNER JOIN lab_codings AS c ON {_same_coding(values)}
        """
    )


def _same_coding(values: dict[str, str]) -> str:
    """SQL: the coding ``c`` (lab_codings) has these ``values`` (column -> expression), NULLs
    equal."""
    return " AND ".join(f"c.{c} IS NOT DISTINCT FROM {v}" for c, v in values.items())


def kept_ddl(con: duckdb.DuckDBPyConnection, tables: Sequence[str]) -> list[tuple[str, str]]:
    """(table, CREATE statement) of each of ``tables`` the database has; for the view of a
    coded kind, the statement of the table of its rows (:func:`create_kept` makes both)."""
    wanted = [_ROWS_OF_VIEW.get(t, t) for t in tables]
    found = dict(
        con.execute(
            "SELECT table_name, sql FROM duckdb_tables() WHERE schema_name = 'main' "
            f"AND NOT temporary AND table_name IN ({', '.join('?' for _ in wanted)})",
            wanted,
        ).fetchall()
    )
    out = []
    for table in tables:
        name = _ROWS_OF_VIEW.get(table, table)
        if name in found and rows_table(con, table) == name:
            out.append((table, found[name]))
    return out


def create_kept(con: duckdb.DuckDBPyConnection, table: str, ddl: str) -> None:
    """Create a kept table from its :func:`kept_ddl` statement (with the view and the codings
    of a coded kind)."""
    con.execute(ddl)
    if table in _ROWS_OF_VIEW:
        con.execute(registry_ddl()["lab_codings"])  # if not there: the registry's statement
        con.execute(LAB_RESULTS_VIEW)


def store_rows(con: duckdb.DuckDBPyConnection, table: str, source: str) -> None:
    """Append the rows of ``source`` (a relation with the kept table's columns) to a kept table;
    a coded kind's are coded on the way (:func:`insert_coded`)."""
    if rows_table(con, table) != table:
        insert_coded(con, source)
    else:
        con.execute(f"INSERT INTO main.{ident(table)} BY NAME SELECT * FROM {source}")


def rows_table(con: duckdb.DuckDBPyConnection, table: str) -> str:
    """The table that holds the rows of the kept ``table``: ``lab_rows`` under the view
    lab_results, the table itself otherwise (and in a database from before lab results were
    coded, where lab_results is still a table)."""
    if table in _ROWS_OF_VIEW and not is_base_table(con, table):
        return _ROWS_OF_VIEW[table]
    return table


def _ensure_table(con: duckdb.DuckDBPyConnection, kind: str, table: str, incoming: str) -> None:
    """Create the kept table from the stored part of the incoming shape plus the bookkeeping
    columns; add columns a newer staging has."""
    wanted = table_columns(con, f"(SELECT {_kept(kind)} FROM {incoming})") | _BOOKKEEPING
    rows = rows_table(con, table)
    coded, table = rows != table, rows
    if not table_exists(con, table):
        # Explicit DDL, not CREATE TABLE AS ... LIMIT 0: in DuckDB 2.0 a table made that way and
        # filled with more than one row group in the same transaction reads as empty to joins
        # and DISTINCT aggregates until the commit (tests/integration/test_validation_scale.py).
        columns = ", ".join(f"{ident(name)} {dtype}" for name, dtype in wanted.items())
        con.execute(f"CREATE TABLE {table} ({columns})")
        if coded:
            con.execute(LAB_RESULTS_VIEW)
        return
    have = table_columns(con, table)
    for name, dtype in wanted.items():
        if name not in have:
            con.execute(f"ALTER TABLE {table} ADD COLUMN {ident(name)} {dtype}")


def merge(con: duckdb.DuckDBPyConnection, kind: str) -> MergeCounts:
    """Merge the valid incoming rows of ``kind`` into its kept table, in one pass of writing."""
    first_fill = is_first_fill(con, kind)
    counts = merge_batch(con, kind, first_fill=first_fill)
    return MergeCounts.total(kind, [counts, finish_merge(con, kind, first_fill)])


def _superseded(con: duckdb.DuckDBPyConnection, kind: str) -> str:
    """The run's list of the stored rows of ``kind`` its corrections supersede (made if absent)."""
    name = _SUPERSEDED.format(kind)
    columns = _SUPERSEDED_COLUMNS.get(kind, "old_rid BIGINT")
    con.execute(f"CREATE TEMP TABLE IF NOT EXISTS {name} ({columns})")
    return name


def note_superseded(con: duckdb.DuckDBPyConnection, kind: str, rows: str) -> None:
    """Add ``rows`` (a query of the columns of :data:`_SUPERSEDED_COLUMNS`) to the run's list of
    superseded rows of ``kind``."""
    con.execute(f"INSERT INTO {_superseded(con, kind)} {rows}")


def merge_batch(
    con: duckdb.DuckDBPyConnection,
    kind: str,
    later_batch: bool = False,
    files: Sequence[str] | None = None,
    first_fill: bool = False,
) -> MergeCounts:
    """Merge one batch of a run's rows of ``kind`` (``incoming_<kind>``, less
    ``rejected_<kind>``); :func:`finish_merge` ends the kind's merge after its last batch.
    ``later_batch``: an earlier batch of this run was merged (the first, or only, batch
    cannot meet this run's own rows, and skips looking for them).

    A large night is staged, validated and merged in batches of files, in file order
    (pipeline/store/validate.py), and the outcome is that of merging the whole night at once:
    the last copy of a key in the run wins, and a stored row is corrected or re-sent by what
    that last copy holds. So a batch's row whose key an earlier batch of this run stored (its
    run_id is this run's) replaces that copy, and the earlier copy counts as re-sent; a stored
    row of an earlier run that this run corrects stays in the table (listed in
    ``_superseded_<kind>``) until the kind's last batch, so that a later copy is still compared
    with it and not with the copy that replaced it. Each copy's outcome is counted once, and an
    earlier copy's is taken back when a later one supersedes it: the counts of the batches add
    up to those of one merge, and the corrections log holds the last copy.

    A kind of :data:`WRITTEN_ONCE` is stored first and settled after
    (:func:`_merge_written`; ``files`` names the batch's files, None: all of this run's rows);
    any other kind is settled first and stored after (:func:`_merge_staged`). Both settle the
    keys the same way (:func:`_settle`). ``first_fill`` (a kind of :data:`WRITTEN_ONCE` of
    which nothing was stored before this run): the batch is only stored, and
    :func:`settle_first_fill` settles the run's keys once after its last batch.
    """
    if kind in WRITTEN_ONCE:
        return _merge_written(con, kind, later_batch, files, first_fill)
    return _merge_staged(con, kind, later_batch)


def _merge_staged(con: duckdb.DuckDBPyConnection, kind: str, later_batch: bool) -> MergeCounts:
    """Merge a batch of staged rows (``incoming_<kind>``, a table or a view of a file): the
    rows not to store are found first, and the others stored."""
    table, _ = KEPT[kind]
    source = f"incoming_{kind}"
    # Rows not to merge: the rejected ones, and earlier copies of a key within this batch.
    con.execute(f"CREATE OR REPLACE TEMP TABLE _skip AS SELECT _rid FROM rejected_{kind}")
    ((valid, distinct),) = con.execute(
        f"SELECT count(*), count(DISTINCT record_key) FROM {source} ANTI JOIN _skip USING (_rid)"
    ).fetchall()
    if distinct < valid:
        con.execute(
            f"INSERT INTO _skip {_earlier_copies(f'{source} ANTI JOIN rejected_{kind} USING (_rid)')}"
        )
    _ensure_table(con, kind, table, source)
    counts = _settle(
        con,
        kind,
        survivors=f"(SELECT * FROM {source} ANTI JOIN _skip USING (_rid))",
        others=table,
        valid=valid,
        copies=valid - distinct,
        later_batch=later_batch,
    )
    con.execute(
        f"""
        INSERT INTO {table} BY NAME
        SELECT {_kept(kind)}, {_THIS_RUN} AS run_id,
               getvariable('run.as_of')::DATE AS received_on
        FROM {source}
        WHERE _rid NOT IN (SELECT _rid FROM _skip)
            AND _rid NOT IN (
                SELECT new_rid FROM _matched WHERE old_rid IS NOT NULL AND NOT changed
            )
        """
    )
    con.execute("DROP TABLE _skip; DROP TABLE _matched")
    # the staged rows are merged: their memory goes back to the screening (at 10M rows a
    # staged table left alive made the screen spill)
    # a table, or a view of a batch's staged rows in a file (pipeline/store/validate.py)
    con.execute(f"DROP {'VIEW' if is_temp_view(con, source) else 'TABLE'} {source}")
    return counts


def _merge_written(
    con: duckdb.DuckDBPyConnection,
    kind: str,
    later_batch: bool,
    files: Sequence[str] | None,
    first_fill: bool = False,
) -> MergeCounts:
    """Merge a batch of a kind of :data:`WRITTEN_ONCE`: ``incoming_<kind>`` is a view of the
    staging SQL, read once here, by the statement that stores its valid rows; what a merge
    would not have stored is then taken back from the stored rows of the batch (this run's
    rows from ``files``, or all of this run's rows when None).

    Why: staging the rows into a table or a file first and storing them from there wrote every
    row twice (at 10M rows, 6.7 s to stage to a file, then 9.1 s to store; storing straight
    from staging costs 9.4 s). Taken back after storing, by deleting them: the earlier copies
    of a key within the batch, and the copies equal to a stored row (re-sent). Deleting rows of
    the run's own transaction costs little, and a night rarely re-sends many rows (a file seen
    before is skipped whole). tests/integration/test_staging_batches.py checks that the
    outcome, counts and corrections log are those of one merge of the night."""
    table, _ = KEPT[kind]
    source = f"incoming_{kind}"
    _ensure_table(con, kind, table, source)
    stored = rows_table(con, table)
    ((before,),) = con.execute(f"SELECT count(*) FROM {stored}").fetchall()
    if kind in CODED:  # the codings first seen tonight join the dictionary before the rows
        con.execute(
            f"INSERT INTO lab_codings SELECT DISTINCT coding_id, {', '.join(CODING_COLUMNS)}, "
            f"{_THIS_RUN} FROM {CODED[kind][1]} WHERE is_new"
        )
    ((inserted,),) = con.execute(
        f"""
        INSERT INTO {stored} BY NAME
        SELECT {_kept(kind)}, {_THIS_RUN} AS run_id,
               getvariable('run.as_of')::DATE AS received_on
        FROM {source}
        WHERE _rid NOT IN (SELECT _rid FROM rejected_{kind})
        """
    ).fetchall()
    if first_fill:  # settled once after the last batch (settle_first_fill)
        if kind in CODED:
            con.execute(f"DROP TABLE {CODED[kind][1]}")
        con.execute(f"DROP VIEW {source}")
        return MergeCounts(kind, valid=inserted, new=inserted)
    batch = f"run_id = {_THIS_RUN}"  # this batch's stored rows (an equality: the scan skips
    if files is not None:  # the row groups of earlier runs by their run_id ranges)
        batch += f" AND source_file IN ({', '.join(literal(f) for f in files)})"
    ((valid, distinct),) = con.execute(
        f"SELECT count(*), count(DISTINCT record_key) FROM {stored} WHERE {batch}"
    ).fetchall()
    # earlier copies of a key within this batch (the last in file order wins)
    con.execute("CREATE OR REPLACE TEMP TABLE _skip (_rid BIGINT)")
    if distinct < valid:
        con.execute(f"INSERT INTO _skip {_earlier_copies(f'{stored} WHERE {batch}')}")
    counts = _settle(
        con,
        kind,
        survivors=f"(SELECT * FROM {table} ANTI JOIN _skip USING (_rid) WHERE {batch})",
        # every other stored row, those without a run_id too
        others=f"(SELECT * FROM {table} WHERE NOT coalesce({batch}, false))",
        valid=valid,
        copies=valid - distinct,
        later_batch=later_batch,
        nothing_stored=before == 0,
    )
    # take back what a merge would not have stored: earlier copies, and rows re-sent unchanged
    if distinct < valid or counts.resent:
        con.execute(
            f"""
            DELETE FROM {stored}
            WHERE {batch} AND (
                _rid IN (SELECT _rid FROM _skip)
                OR _rid IN (SELECT new_rid FROM _matched WHERE old_rid IS NOT NULL AND NOT changed)
            )
            """
        )
    if kind in CODED:
        con.execute(f"DROP TABLE {CODED[kind][1]}")
    con.execute(f"DROP TABLE _skip; DROP TABLE _matched; DROP VIEW {source}")
    return counts


def stored_rows(con: duckdb.DuckDBPyConnection, kind: str) -> int:
    """How many rows of ``kind`` are stored (0 when its table is not made yet)."""
    table = KEPT[kind][0]
    if not table_exists(con, table):
        return 0
    return con.execute(f"SELECT count(*) FROM {rows_table(con, table)}").fetchall()[0][0]


def is_first_fill(con: duckdb.DuckDBPyConnection, kind: str) -> bool:
    """Whether this run's merge of ``kind`` is a first fill: a kind of :data:`WRITTEN_ONCE` of
    which nothing is stored yet, whose keys :func:`settle_first_fill` settles after the last
    batch."""
    return kind in WRITTEN_ONCE and stored_rows(con, kind) == 0


def settle_first_fill(con: duckdb.DuckDBPyConnection, kind: str) -> MergeCounts:
    """Settle the keys of a first fill (batches of a kind of :data:`WRITTEN_ONCE` stored into
    an empty table, ``first_fill`` of :func:`merge_batch`) once, after its last batch; returns
    what that changes in the batches' counts.

    With nothing stored before the run, a key can only meet this run's own copies: the last
    copy in file order stays (the highest _rid) and every earlier one goes and counts as
    re-sent instead of new, as in one merge of the whole night. Finding the copies once over
    the run's keys (one aggregate) replaces every later batch's probe of the rows the batches
    before it stored and each batch's own count of distinct keys: at 250M rows in five
    batches, 240.9 s of probes and 47.3 s of counts (docs/benchmarks.md), where one aggregate
    over 250M keys cost about as much as the five counts."""
    stored = rows_table(con, KEPT[kind][0])
    this_run = f"run_id = {_THIS_RUN}"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _copied AS SELECT record_key FROM {stored} "
        f"WHERE {this_run} GROUP BY record_key HAVING count(*) > 1"
    )
    ((keys,),) = con.execute("SELECT count(*) FROM _copied").fetchall()
    copies = 0
    if keys:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _skip AS "
            + _earlier_copies(
                f"{stored} WHERE {this_run} AND record_key IN (SELECT record_key FROM _copied)"
            )
        )
        ((copies,),) = con.execute(
            f"DELETE FROM {stored} WHERE {this_run} AND _rid IN (SELECT _rid FROM _skip)"
        ).fetchall()
        con.execute("DROP TABLE _skip")
    con.execute("DROP TABLE _copied")
    return MergeCounts(kind, new=-copies, resent=copies)


def _earlier_copies(rows: str) -> str:
    """SQL: the _rid of every copy of a key in ``rows`` but its last (the highest _rid)."""
    return f"""
        SELECT _rid FROM (
            SELECT _rid, row_number() OVER (PARTITION BY record_key ORDER BY _rid DESC) AS copy
            FROM {rows}
        ) WHERE copy > 1
        """


def _settle(
    con: duckdb.DuckDBPyConnection,
    kind: str,
    *,
    survivors: str,
    others: str,
    valid: int,
    copies: int,
    later_batch: bool,
    nothing_stored: bool = False,
) -> MergeCounts:
    """Settle the batch's ``survivors`` (its valid rows less earlier copies) against the stored
    rows ``others`` by key, into ``_matched``: for each
    survivor whose key is stored, old_rid (the row of an earlier run, and whether it
    changed: a correction) and earlier_rid (this run's copy from an earlier batch). Log the
    corrections, list the rows they supersede, take back what earlier batches did with the
    copies this one supersedes, and return the batch's counts. ``nothing_stored``: no row was
    stored before the batch, so no key can meet one and nothing is probed."""
    table, compared = KEPT[kind]
    stored = rows_table(con, table)
    superseded = _superseded(con, kind)
    changed = " OR ".join(f"o.{c} IS DISTINCT FROM i.{c}" for c in compared) or "false"
    # for the labs, what the corrections log and the lab state need of both rows, read by this
    # match (a join of the log's rows by _rid afterwards read every stored row again: 0.67 s
    # of a night's 4 s of validation at 10M rows)
    new_cols, old_cols = _LOGGED if kind == "labs" else ({}, {})
    earlier_run = f"o.run_id IS DISTINCT FROM {_THIS_RUN}"
    if later_batch:
        logged = "".join(
            [f", any_value(i.{c}) AS {a}" for c, a in new_cols.items()]
            + [
                f", any_value(o.{c}) FILTER (WHERE {earlier_run}) AS {a}"
                for c, a in old_cols.items()
            ]
        )
        matched = f"""
            SELECT i._rid AS new_rid, i.record_key,
                   max(o._rid) FILTER (WHERE {earlier_run}) AS old_rid,
                   max(o._rid) FILTER (WHERE o.run_id = {_THIS_RUN}) AS earlier_rid,
                   coalesce(bool_or({changed}) FILTER (WHERE {earlier_run}), false) AS changed
                   {logged}
            FROM {survivors} AS i INNER JOIN {others} AS o ON o.record_key = i.record_key
            GROUP BY i._rid, i.record_key
            """
    else:
        logged = "".join(
            [f", i.{c} AS {a}" for c, a in new_cols.items()]
            + [f", o.{c} AS {a}" for c, a in old_cols.items()]
        )
        matched = f"""
            SELECT i._rid AS new_rid, i.record_key, o._rid AS old_rid,
                   NULL::BIGINT AS earlier_rid, ({changed}) AS changed {logged}
            FROM {survivors} AS i INNER JOIN {others} AS o ON o.record_key = i.record_key
            """
    if nothing_stored:
        matched = f"SELECT * FROM ({matched}) WHERE false"
    con.execute(f"CREATE OR REPLACE TEMP TABLE _matched AS {matched}")
    ((corrected, equal, earlier_new, earlier_corrected),) = con.execute(
        """
        SELECT count(*) FILTER (WHERE old_rid IS NOT NULL AND changed),
               count(*) FILTER (WHERE old_rid IS NOT NULL AND NOT changed),
               count(*) FILTER (WHERE earlier_rid IS NOT NULL AND old_rid IS NULL),
               count(*) FILTER (WHERE earlier_rid IS NOT NULL AND old_rid IS NOT NULL)
        FROM _matched
        """
    ).fetchall()
    # An earlier batch's copy counted as new (no stored row) or as a correction (there is one):
    # superseded by tonight's later copy, it is a re-sent copy, as in a merge of the whole night.
    counts = MergeCounts(
        kind,
        valid=valid,
        new=valid - copies - corrected - equal - earlier_new,
        resent=copies + equal + earlier_new + earlier_corrected,
        corrected=corrected - earlier_corrected,
    )
    if earlier_new or earlier_corrected:
        _take_back_earlier_copies(con, kind, stored, superseded)
    if corrected:
        if kind == "labs":  # the log, and the replaced rows as the lab state needs them
            con.execute(
                f"""
                INSERT INTO lab_result_corrections
                SELECT {_THIS_RUN}, getvariable('run.as_of')::DATE, record_key::VARCHAR,
                       patient_id, analyte, collected_at, old_value, old_unit, new_value,
                       new_unit, old_source_file, new_source_file
                FROM _matched WHERE changed
                """
            )
        columns = _SUPERSEDED_FROM_MATCH.get(kind, "old_rid")
        note_superseded(con, kind, f"SELECT {columns} FROM _matched WHERE changed")
    return counts


_LAB_SUPERSEDED = _SUPERSEDED.format("labs")  # the labs' list, kept after the merge for the state


def replaced_lab_rows(con: duckdb.DuckDBPyConnection) -> str | None:
    """SQL of the stored lab results tonight's merge superseded (:data:`_SUPERSEDED_COLUMNS`),
    None when no merge of labs ran on this connection since :func:`forget_replaced` (or when
    the rows were replaced otherwise: a sharded run's combine)."""
    return f"SELECT * FROM temp.{_LAB_SUPERSEDED}" if is_temp_table(con, _LAB_SUPERSEDED) else None


def forget_replaced(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"DROP TABLE IF EXISTS temp.{_LAB_SUPERSEDED}")


def _take_back_earlier_copies(
    con: duckdb.DuckDBPyConnection, kind: str, stored: str, superseded: str
) -> None:
    """Undo what an earlier batch did with the copies this batch supersedes (``_matched``
    rows with an ``earlier_rid``): the copies leave the table, their corrections leave the
    log, and the stored rows they corrected are no longer superseded (this batch's copy is
    compared with them afresh)."""
    if kind == "labs":
        con.execute(
            "DELETE FROM lab_result_corrections WHERE run_id = getvariable('run.id') AND "
            "record_key IN (SELECT record_key::VARCHAR FROM _matched "
            "WHERE earlier_rid IS NOT NULL AND old_rid IS NOT NULL)"
        )
    con.execute(
        f"DELETE FROM {superseded} WHERE old_rid IN "
        "(SELECT old_rid FROM _matched WHERE earlier_rid IS NOT NULL)"
    )
    con.execute(
        f"DELETE FROM {stored} WHERE _rid IN "
        "(SELECT earlier_rid FROM _matched WHERE earlier_rid IS NOT NULL)"
    )


def finish_merge(
    con: duckdb.DuckDBPyConnection, kind: str, first_fill: bool = False
) -> MergeCounts:
    """End the merge of ``kind`` after its last batch: a first fill's keys are settled
    (:func:`settle_first_fill`), and the stored rows this run corrected go. Returns what that
    changes in the batches' counts. The labs' list of superseded rows stays for the lab state
    (:func:`replaced_lab_rows`)."""
    settled = settle_first_fill(con, kind) if first_fill else MergeCounts(kind)
    superseded = _superseded(con, kind)
    stored = rows_table(con, KEPT[kind][0])
    ((replaced,),) = con.execute(f"SELECT count(*) FROM {superseded}").fetchall()
    if replaced and table_exists(con, stored):  # (none: no scan of the stored rows' ids)
        delete_stored(con, stored, f"_rid IN (SELECT old_rid FROM {superseded})")
    if superseded != _LAB_SUPERSEDED:
        con.execute(f"DROP TABLE {superseded}")
    return settled


def delete_stored(con: duckdb.DuckDBPyConnection, stored: str, where: str) -> None:
    """Delete the rows of earlier runs ``where`` (a condition) from the kept table ``stored``
    (a name); stored lab results are first counted off the kept profile the audit reads
    (pipeline/store/profile.py). Every deletion of earlier runs' rows goes through here."""
    table = f"main.{ident(stored)}"
    if stored == profile.ROWS_TABLE:
        profile.note_removed(con, f"SELECT * FROM {table} WHERE {where}")
    con.execute(f"DELETE FROM {table} WHERE {where}")
