"""What the screening reads, kept per patient: the latest stored result of each analyte.

The criteria ask of a patient's labs only questions about the latest result of an analyte on
or before the as-of date: which is the latest in a look-back window (int_latest_labs), when the
patient was last tested (tested_within), whether an MMA, CBC or B12 came on or after some date
(b12_indeterminate, monitoring_overdue), when the latest result came (resolved). Each is
answered by the latest result per patient and analyte, so that is what the database keeps
(``lab_latest``, built by sql/state/lab_latest.sql) and what a night updates, for the patients
with rows tonight only: an analyte with new rows needs its kept latest and tonight's rows, and
only a patient whose kept latest result a correction replaced, other than in place (the same
result at the same time or later: :func:`removals`), has their history read again. The
screening reads the per-run view ``latest_results`` and never the whole history.

When the state is the answer and when it is not:

* Every stored row is on or before the as-of date of the run that stored it (a later date is
  quarantined), so for a run whose as-of date is on or after every stored result, the kept
  state is exactly "the latest on or before the as-of date".
* A backfill to an earlier as-of date than some stored result cannot use it:
  ``latest_results`` is then built from the history up to that date, by the same SQL.
* The state is built again from the whole history when it is missing (a new database, or one
  from an earlier version), when its SQL has changed since it was built (its SHA-256 is kept in
  ``store_state``), when a column it keeps has changed type in lab_results, or when lab_results
  holds other than the rows the state reflected plus tonight's (rows added or removed outside a
  run, by hand).

tests/integration/test_lab_state.py checks that the state kept up to date night by night equals
the state built from scratch, and that the flags are those of the history.
"""

from __future__ import annotations

import hashlib
import math
import shutil
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb

from pipeline.resources import read_sql
from pipeline.sqltext import (
    literal_files,
    memory_limit_bytes,
    optimizer_disabled,
    path_literal,
)
from pipeline.store.catalog import table_columns, table_exists
from pipeline.store.merge import forget_replaced, replaced_lab_rows, stored_rows
from pipeline.store.validate import SCRATCH_PREFIX, remove_stale_scratch

STATE_SQL = "state/lab_latest.sql"
STATE_TABLE = "lab_latest"
RUN_VIEW = "latest_results"
_SOURCE = "state_lab_source"  # the rows the state SQL reads (a temporary view)
_PAIRS = "_state_pairs"  # the (patient_id, analyte) of tonight's new rows, outside the rereads
_KEPT = "_state_kept"  # the kept rows of those pairs, with their rowids
_REREAD = "_state_reread"
_REMOVED = "_state_replaced"  # the kept latest results tonight's corrections replaced (removals)
# Tonight's rows: every row the merge wrote carries this run's id (a new row, and the new value
# of a corrected one); a re-sent row changes nothing and is not written. Rows are appended in
# run order, so the scan skips the row groups of earlier runs by their run_id ranges.
TONIGHTS_ROWS = "SELECT * FROM lab_results WHERE run_id = getvariable('run.id')"
# The patients of tonight's corrections (each replaced one stored row): what the check of the
# stored rows counts, and whose history a sharded run's combine reads again (removals).
CORRECTED_TONIGHT = (
    "SELECT patient_id FROM lab_result_corrections WHERE run_id = getvariable('run.id')"
)
# What building the state from the history holds in memory per stored row, about (the latest
# time of each patient and analyte, the rows at that time and their ordering): at 10M rows the
# build completed within 200MB (20 bytes a row) and ran out of memory at 120MB, and at 250M
# rows one build ran out of 3GB. A larger history is built in parts of patients (build_parts).
# 30 bytes, half as cautious as the 60 of session 12: one statement at 50M rows and 3GB, three
# parts at 250M (1,546 s for the whole run, docs/benchmarks.md), and three parts pass at 10M
# under 120MB.
STATE_ROW_BYTES = 30


@dataclass(frozen=True)
class StateRefresh:
    """What the refresh did: ``built`` (from the whole history, with the reason),
    ``updated`` (for ``patients`` with rows tonight) or ``unchanged``; and whether this run screens from
    the kept state or, as a backfill, from the history up to its as-of date."""

    action: str
    reason: str
    patients: int
    rows: int
    from_history: bool
    reordered: bool = False  # written again in runs of one analyte (recluster)

    def note(self) -> str:
        if self.action == "built":
            kept = f"lab state built from the whole history ({self.reason}): {self.rows:,} rows"
        elif self.action == "updated":
            kept = f"lab state updated for {self.patients:,} patient(s) with new rows"
        else:
            kept = "lab state unchanged (no new lab rows)"
        if self.reordered:
            kept += "; stored again in order of analyte"
        if self.from_history:
            kept += "; as-of date before the latest stored result: screened from the history"
        return kept


def _sql() -> str:
    return read_sql(STATE_SQL)


# The state SQL reads its source twice (the latest time of each group, then the rows at that
# time) and asks DuckDB not to hold it (`not materialized`). DuckDB 2.0's common-subplan pass
# finds the two reads anyway and materialises the source once for both: at 50M rows the whole
# history with its 13 columns (8.4 GB) was held and spilled (9.9 GB written), 57 s of a 62 s
# build; with the pass off, 18.7 s and nothing spilled (docs/benchmarks.md, session 18).
_NOT_HELD = "common_subplan"


def _run_state_sql(con: duckdb.DuckDBPyConnection, statement: str) -> None:
    """Run a statement that reads the state SQL, its source read twice and never held."""
    with optimizer_disabled(con, _NOT_HELD):
        con.execute(statement)


def state_sha256() -> str:
    return hashlib.sha256(_sql().encode("utf-8")).hexdigest()


def _why_build(con: duckdb.DuckDBPyConnection, check_rows: bool) -> str | None:
    """Why the kept state must be built from the whole history, or None when it is current.

    With ``check_rows``, lab_results must hold the rows the state reflected plus tonight's
    rows less tonight's corrections (each replaced one row): otherwise rows were added or
    removed outside a run, and the state could be silently wrong."""
    if not table_exists(con, STATE_TABLE):
        return "no state yet"
    row = con.execute(
        "SELECT sql_sha256, source_rows FROM store_state WHERE name = ?", [STATE_TABLE]
    ).fetchone()
    if row is None or row[0] != state_sha256():
        return "the state's SQL has changed"
    _source(con, "SELECT * FROM lab_results")
    if table_columns(con, STATE_TABLE) != table_columns(con, f"({_sql()})"):
        return "lab_results has changed shape"
    if check_rows:
        ((tonight, corrected),) = con.execute(
            f"SELECT (SELECT count(*) FROM ({TONIGHTS_ROWS})), "
            f"(SELECT count(*) FROM ({CORRECTED_TONIGHT}))"
        ).fetchall()
        expected = (row[1] or 0) + tonight - corrected
        if row[1] is None or stored_rows(con, "labs") != expected:
            return "lab_results changed outside a run"
    return None


def _record(con: duckdb.DuckDBPyConnection) -> None:
    """Note what the kept state now reflects: its SQL and the rows of lab_results."""
    con.execute(
        "INSERT OR REPLACE INTO store_state "
        "VALUES (?, ?, getvariable('run.id'), now()::TIMESTAMP, ?)",
        [STATE_TABLE, state_sha256(), stored_rows(con, "labs")],
    )


def _source(con: duckdb.DuckDBPyConnection, query: str) -> None:
    con.execute(f"CREATE OR REPLACE TEMP VIEW {_SOURCE} AS {query}")


def build_parts(con: duckdb.DuckDBPyConnection, rows: int) -> int:
    """In how many parts (of patients) a state over ``rows`` stored rows is built: as many as
    keep each part's working memory (:data:`STATE_ROW_BYTES` a row) within the memory limit."""
    size = memory_limit_bytes(con)
    if not size:
        return 1
    return max(1, math.ceil(rows * STATE_ROW_BYTES / size))


# What a part's rows are written with: the columns of lab_rows the state SQL reads, the
# coding's id instead of its texts (the codings are joined again when a part is read: writing
# the texts of the view lab_results cost 5.4 s at 10M rows, these columns 3.9 s).
_PART_COLUMNS = (
    "patient_id, coding_id, collected_at, result_id, value_canonical, censor, "
    "reference_low_canonical, reference_high_canonical, value_reported, source_file, row_number"
)
_CODING_COLUMNS = "analyte, unit_reported, canonical_unit"
_PART = "_state_part"


# What the split holds per row while it writes: each thread gathers rows (DuckDB's
# partitioned_write_flush_threshold, 524,288 by default) and keeps a row group of every part
# open, about 100 bytes a row and several times that with their buffers. At 10M rows under
# 120MB the defaults ran out of memory; both are made smaller when the limit is small, and
# stay DuckDB's defaults from about 1GB up.
_SPLIT_ROW_BYTES = 1_000
DEFAULT_ROW_GROUP = 122_880  # DuckDB's
DEFAULT_FLUSH_ROWS = 524_288  # DuckDB's


def _split_sizes(con: duckdb.DuckDBPyConnection, parts: int) -> tuple[int, int]:
    """(rows per row group of the split's files, rows a thread gathers before it writes):
    small enough for the memory limit (:data:`_SPLIT_ROW_BYTES` a row)."""
    size = memory_limit_bytes(con)
    ((threads,),) = con.execute("SELECT current_setting('threads')").fetchall()
    if not size:
        return DEFAULT_ROW_GROUP, DEFAULT_FLUSH_ROWS
    per_thread = size // (int(threads) * _SPLIT_ROW_BYTES)
    return (
        max(2_048, min(DEFAULT_ROW_GROUP, per_thread // parts)),
        max(2_048, min(DEFAULT_FLUSH_ROWS, per_thread)),
    )


# The kept state is stored in runs of one analyte (ordered by analyte when it is written), so
# that a question about one analyte reads only that analyte's rows: every criterion, and
# tested_within, asks about one analyte, and DuckDB skips a stretch of rows whose smallest and
# largest analyte (its zone map) rule it out. Stored in the order the state SQL made it, every
# stretch held every analyte, and each of the twelve reads decompressed every column of every
# row (docs/benchmarks.md, session 17). A night appends its rows, in order too, at the end;
# once the one-analyte reads together read more than REORDER_READS times the table's rows
# (read_amplification), the refresh writes the table again in order: a state from an earlier
# version on its first night, or one after many nights' appends and deletes.
REORDER_READS = 2.0


def _clustered(query: str) -> str:
    return f"SELECT * FROM ({query}) ORDER BY analyte"


def read_amplification(con: duckdb.DuckDBPyConnection, table: str = STATE_TABLE) -> float:
    """How many times its rows reading each analyte of ``table`` once by itself reads, going by
    the smallest and largest analyte of each stored stretch (column segment) of the committed
    table: about 1 when stored in runs of one analyte, the number of analytes in no order.
    The analytes are the lab codings' (the state's rows are coded by them), not a scan."""
    ((reads, rows),) = con.execute(
        """
        WITH segments AS (
            SELECT stats.min::VARCHAR AS low, stats.max::VARCHAR AS high, count
            FROM pragma_storage_info(?)
            WHERE column_name = 'analyte' AND segment_type <> 'VALIDITY'
        ),
        analytes AS (SELECT DISTINCT analyte FROM lab_codings WHERE analyte IS NOT NULL)
        SELECT
            (SELECT coalesce(sum(count), 0) FROM segments INNER JOIN analytes
                ON analytes.analyte BETWEEN segments.low AND segments.high),
            (SELECT coalesce(sum(count), 0) FROM segments)
        """,
        [table],
    ).fetchall()
    return reads / rows if rows else 1.0


def recluster(con: duckdb.DuckDBPyConnection, reads: float = REORDER_READS) -> bool:
    """Write the kept state again in runs of one analyte when reading each analyte by itself
    reads more than ``reads`` times its rows (:func:`read_amplification`); returns whether it
    did. The rows are the same, only where they are stored changes."""
    if read_amplification(con) <= reads:
        return False
    scratch = f"_{STATE_TABLE}_ordered"
    con.execute(f"DROP TABLE IF EXISTS main.{scratch}")
    con.execute(f"CREATE TABLE main.{scratch} AS {_clustered(f'FROM main.{STATE_TABLE}')}")
    con.execute(f"DROP TABLE main.{STATE_TABLE}")
    con.execute(f"ALTER TABLE main.{scratch} RENAME TO {STATE_TABLE}")
    return True


def _build_into(
    con: duckdb.DuckDBPyConnection,
    create: str,
    rows_where: str,
    parts: int | None = None,
    scratch_dir: Path | None = None,
) -> None:
    """``create`` (``CREATE [TEMP] TABLE name``) the state of the lab_results rows
    ``rows_where`` (a condition on the columns of lab_rows), in :func:`build_parts` parts of
    patients, one statement each: the state is per patient, so the parts together are the
    state of all of them.

    In parts, the history is read once: its rows (only the columns the state reads) are
    written to Parquet files split by part (in a folder made in ``scratch_dir``, deleted
    after), and each part reads its own files. Each part reading the whole history instead
    cost 5 of 6 parts' reads for nothing: at 250M rows, 1,546 s of a 2,754 s run
    (docs/benchmarks.md). Files, not a temporary table: a table holds its memory until the
    run's transaction ends, dropped or not."""
    if parts is None:
        parts = build_parts(con, stored_rows(con, "labs"))
    table = create.split()[-1]
    if parts == 1:
        _source(con, f"SELECT * FROM lab_results WHERE {rows_where}")
        _run_state_sql(con, f"{create} AS {_clustered(_sql())}")
        return
    remove_stale_scratch(scratch_dir)  # a killed run's parts (one run holds the database)
    folder = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}state-", dir=scratch_dir))
    try:
        row_group, flush = _split_sizes(con, parts)
        ((was,),) = con.execute(
            "SELECT current_setting('partitioned_write_flush_threshold')"
        ).fetchall()
        con.execute(f"SET partitioned_write_flush_threshold = {flush}")
        try:
            con.execute(
                f"COPY (SELECT {_PART_COLUMNS}, hash(patient_id) % {parts} AS {_PART} "
                f"FROM lab_rows WHERE ({rows_where}) AND coding_id IN "
                "(SELECT coding_id FROM lab_codings WHERE analyte IS NOT NULL)) "
                f"TO {path_literal(folder)} "
                f"(FORMAT parquet, COMPRESSION lz4_raw, PARTITION_BY ({_PART}), OVERWRITE, "
                f"ROW_GROUP_SIZE {row_group})"
            )
        finally:
            con.execute(f"SET partitioned_write_flush_threshold = {int(was)}")
        created = False
        for part in range(parts):
            files = sorted((folder / f"{_PART}={part}").glob("*.parquet"))
            if not files:  # a part without patients
                continue
            with literal_files(files) as names:
                _source(
                    con,
                    f"SELECT part.*, {_CODING_COLUMNS} FROM read_parquet([{', '.join(names)}], "
                    "hive_partitioning = false) AS part INNER JOIN lab_codings USING (coding_id)",
                )
                if not created:
                    _run_state_sql(con, f"{create} AS {_clustered(_sql())}")
                    created = True
                else:
                    _run_state_sql(con, f"INSERT INTO {table} BY NAME {_clustered(_sql())}")
        if not created:  # no rows at all
            _source(con, "SELECT * FROM lab_results WHERE false")
            con.execute(f"{create} AS {_sql()}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def build(
    con: duckdb.DuckDBPyConnection, parts: int | None = None, scratch_dir: Path | None = None
) -> int:
    """Build the kept state from the whole history (in ``parts`` parts of patients, default
    :func:`build_parts`, their rows written in ``scratch_dir``); returns its rows."""
    con.execute(f"DROP TABLE IF EXISTS main.{STATE_TABLE}")
    _build_into(con, f"CREATE TABLE main.{STATE_TABLE}", "true", parts, scratch_dir)
    _record(con)
    return con.execute(f"SELECT count(*) FROM {STATE_TABLE}").fetchone()[0]


def removals(con: duckdb.DuckDBPyConnection) -> tuple[str, str | None]:
    """What tonight's corrections change in the kept state, as SQL: (the patients whose history
    must be read again, the (patient_id, analyte) whose kept row tonight's rows replace, or
    None).

    A correction replaces a stored row with a new one (pipeline/store/merge.py records both,
    ``replaced_lab_rows``). An old row that was not the patient's kept latest leaves the latest
    where it was, and the new row is one of tonight's rows, which the update compares with the
    kept state like any other. A kept latest result is replaced in place when its new row has a
    result id, the same analyte and a time no earlier: it then comes before every row the old
    one came before (they share the time and the result id, which decide the order before the
    value does), so it is the latest of its analyte and no history is needed; the kept row just
    leaves the comparison. Any other replaced latest (moved earlier, recoded, or a row without
    an id, whose place the value and the file decide) has its patient's history read again.

    The old row is taken for the kept one when they share the patient, analyte, time, file and
    line: a row that only looks the same costs a needless reread, never a wrong state. Reading
    the history of every corrected patient, as before, was a scan of every stored row (about
    1 s a night at 10M rows, growing with the history: docs/benchmarks.md); that is still
    what a sharded run's combine does, whose merges ran in the shards."""
    replaced = replaced_lab_rows(con)
    if replaced is None:
        return CORRECTED_TONIGHT, None
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {_REMOVED} AS
        SELECT old.patient_id, old.analyte,
               bool_and(coalesce(
                   new.result_id IS NOT NULL
                   AND new.analyte = old.analyte
                   AND new.collected_at >= old.collected_at, false)) AS in_place
        FROM ({replaced}) AS old
        INNER JOIN {STATE_TABLE} AS kept
            ON kept.patient_id = old.patient_id
            AND kept.analyte = old.analyte
            AND kept.collected_at = old.collected_at
            AND kept.source_file IS NOT DISTINCT FROM old.source_file
            AND kept.row_number IS NOT DISTINCT FROM old.row_number
        LEFT JOIN ({TONIGHTS_ROWS}) AS new ON new._rid = old.new_rid
        GROUP BY ALL
        """
    )
    return (
        f"SELECT patient_id FROM {_REMOVED} WHERE NOT in_place",
        f"SELECT patient_id, analyte FROM {_REMOVED} WHERE in_place",
    )


def update(
    con: duckdb.DuckDBPyConnection,
    reread: str | None,
    new_rows: str | None = TONIGHTS_ROWS,
    replaced: str | None = None,
) -> int:
    """Replace the kept state of the patients with ``new_rows`` (a query of lab_results rows
    appended tonight) or in ``reread`` (a query of patient_id whose history changed otherwise);
    ``replaced`` (a query of patient_id, analyte) are kept rows that ``new_rows`` replace and
    that leave the comparison (after a merge, both from :func:`removals`); returns how many
    patients.

    A patient with new rows only needs no history, and only the analytes of those rows: the
    latest result of such an analyte is the later of the kept one and tonight's, and the kept
    latest of every other analyte stays as it is. (Recomputing all of the patient's analytes
    read some fifteen kept rows for each new one: 2.7 s of a night at 50M rows.) Only the
    patients in ``reread`` have their history read again, every analyte of theirs."""
    reread_sql = f"SELECT patient_id FROM ({reread})" if reread else "SELECT NULL::VARCHAR"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {_REREAD} AS SELECT DISTINCT patient_id "
        f"FROM ({reread_sql}) AS r (patient_id) WHERE patient_id IS NOT NULL"
    )
    pairs_sql = (
        f"SELECT DISTINCT patient_id, analyte FROM ({new_rows}) AS n "
        f"ANTI JOIN {_REREAD} USING (patient_id) WHERE n.analyte IS NOT NULL"
        if new_rows
        else "SELECT NULL::VARCHAR AS patient_id, NULL::VARCHAR AS analyte WHERE false"
    )
    con.execute(f"CREATE OR REPLACE TEMP TABLE {_PAIRS} AS {pairs_sql}")
    ((patients, reread_patients, pairs),) = con.execute(
        f"SELECT (SELECT count(*) FROM (SELECT patient_id FROM {_PAIRS} "
        f"UNION SELECT patient_id FROM {_REREAD})), "
        f"(SELECT count(*) FROM {_REREAD}), (SELECT count(*) FROM {_PAIRS})"
    ).fetchall()
    if patients:
        sources = []
        if reread_patients:  # (none: no scan of the history at all)
            sources.append(f"SELECT * FROM lab_results SEMI JOIN {_REREAD} USING (patient_id)")
        if pairs:
            # the pairs' kept rows, read once, with where they are: the delete below goes
            # by rowid (which a run's transaction keeps), not by a second join of the state
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE {_KEPT} AS SELECT {STATE_TABLE}.rowid AS _row, "
                f"{STATE_TABLE}.* FROM {STATE_TABLE} SEMI JOIN {_PAIRS} USING (patient_id, analyte)"
            )
            kept = f"SELECT * EXCLUDE (_row) FROM {_KEPT}"
            if replaced:
                kept += f" ANTI JOIN ({replaced}) USING (patient_id, analyte)"
            sources += [
                kept,
                f"SELECT * FROM ({new_rows}) SEMI JOIN {_PAIRS} USING (patient_id, analyte)",
            ]
        _source(con, " UNION ALL BY NAME ".join(f"({q})" for q in sources))
        _run_state_sql(con, f"CREATE OR REPLACE TEMP TABLE _state_rows AS {_sql()}")
        if reread_patients:
            con.execute(
                f"DELETE FROM {STATE_TABLE} WHERE patient_id IN (SELECT patient_id FROM {_REREAD})"
            )
        if pairs:
            con.execute(f"DELETE FROM {STATE_TABLE} WHERE rowid IN (SELECT _row FROM {_KEPT})")
            con.execute(f"DROP TABLE {_KEPT}")
        con.execute(f"INSERT INTO {STATE_TABLE} BY NAME {_clustered('SELECT * FROM _state_rows')}")
        con.execute("DROP TABLE _state_rows")
    con.execute(f"DROP TABLE {_PAIRS}; DROP TABLE {_REREAD}; DROP TABLE IF EXISTS {_REMOVED}")
    return patients


def refresh(
    con: duckdb.DuckDBPyConnection,
    as_of: date,
    reread: str | None = None,
    scratch_dir: Path | None = None,
) -> StateRefresh:
    """Bring the kept state up to date with tonight's merge (in the run's transaction) and
    define ``latest_results``, the relation the screening reads, for ``as_of``.

    ``reread`` (a query of patient_id) replaces tonight's rows and corrections as what changed:
    those patients' history is read again. A state built in parts writes its parts' rows in
    ``scratch_dir`` (the database's folder; None: the system's temporary folder)."""
    reason = _why_build(con, check_rows=reread is None)
    patients = rows = 0
    reordered = False
    if reason is not None:
        rows = build(con, scratch_dir=scratch_dir)
        action = "built"
    else:
        if reread is None:  # after a merge: tonight's rows, and what its corrections deleted
            history, replaced = removals(con)
            patients = update(con, history, TONIGHTS_ROWS, replaced)
        else:
            patients = update(con, reread, None)
        action = "updated" if patients else "unchanged"
        reordered = bool(patients) and recluster(con)
        _record(con)
    (latest,) = con.execute(f"SELECT max(collected_at)::DATE FROM {STATE_TABLE}").fetchone()
    from_history = latest is not None and latest > as_of
    con.execute(f"DROP VIEW IF EXISTS temp.{RUN_VIEW}")
    con.execute(f"DROP TABLE IF EXISTS temp.{RUN_VIEW}")
    if from_history:  # a backfill: the same SQL over the history up to the as-of date
        _build_into(
            con,
            f"CREATE TEMP TABLE {RUN_VIEW}",
            "collected_at::DATE <= getvariable('run.as_of')::DATE",
            scratch_dir=scratch_dir,
        )
    else:
        con.execute(f"CREATE TEMP VIEW {RUN_VIEW} AS SELECT * FROM {STATE_TABLE}")
    con.execute(f"DROP VIEW IF EXISTS {_SOURCE}")
    forget_replaced(con)
    return StateRefresh(action, reason or "", patients, rows, from_history, reordered)
