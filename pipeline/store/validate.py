"""Stage and validate each extract (stage 2 of a run).

For each kind the staging SQL (sql/staging/stg_<kind>.sql) types, codes and converts the raw
rows of this run's new files into ``incoming_<kind>``; the pandera schema of that kind
(schemas/extracts.py) then checks it in batches, lazily, with data checks really run. Every
failing row is copied to the quarantine table with its reasons and raw row, and its id goes to
``rejected_<kind>``, which the merge into the database leaves out (pipeline/store/merge.py). Nothing
is dropped without a trace.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from datetime import date
from pathlib import Path

import duckdb
import pandera.polars as pandera
import polars as pl
import pyarrow as pa
from pandera.config import ValidationDepth, config_context

from pipeline import shortage
from pipeline.errors import ExtractsError, safe_message
from pipeline.facts import LoadedFile, MergeCounts, ValidationResult
from pipeline.read.ingest import FILES_SUFFIX, carry_identifiers, files_batch_view
from pipeline.resources import read_sql
from pipeline.sqltext import ident, memory_limit_bytes, path_literal
from pipeline.store.catalog import is_temp_view
from pipeline.store.merge import WRITTEN_ONCE, finish_merge, is_first_fill, merge, merge_batch
from schemas.extracts import MODELS, schema_for, validation_columns

BATCH_ROWS = 1_000_000
# What a staged row of a batch costs in memory, about: a batch's staged rows are written to a
# file (stage_to_file), so what it holds in memory is the merge's hash tables of the batch's
# record keys (16 bytes), row ids (8) and their overhead. A batch of a large night is sized so
# that these fit the memory limit (stage_validate_merge). Every batch after the first probes
# the rows the earlier batches stored, so fewer, larger batches cost less: at 250M rows,
# 20M-row batches (150 bytes a row) spent 298 s in that probe (docs/benchmarks.md).
STAGED_ROW_BYTES = 50
MIN_STAGING_BATCH_ROWS = 1_000_000
# A night staged as a temporary table holds it until the run's transaction ends, dropped or not
# (DuckDB keeps a dropped table for a rollback): about 190 bytes a staged lab row (1.9 GB at
# 10M rows), which the screening then lacks (at 10M under 3GB, the lab state spilled and took
# 12.5 s instead of 4.5). A night whose staged rows would hold more than this share of the
# memory limit is staged to a file, as a batch is.
HELD_STAGED_ROW_BYTES = 200
HELD_STAGED_SHARE = 0.1
# Kinds whose checks look across rows of the whole night (a duplicate patient id): never batched.
WHOLE_NIGHT_KINDS = ("patients",)


def failing_rows(
    frame: pl.DataFrame, schema: pandera.DataFrameSchema, model_name: str
) -> pl.DataFrame:
    """(_rid, reason) for every failed check of every row of ``frame``; empty when all pass."""
    try:
        with config_context(validation_depth=ValidationDepth.SCHEMA_AND_DATA):
            schema.validate(frame, lazy=True)
    except pandera.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        # Never log `cases` whole: its failure_case column holds row values.
        whole_frame = cases.filter(pl.col("index").is_null())
        if whole_frame.height:
            problems = sorted(set(whole_frame["check"].cast(pl.String).to_list()))
            raise RuntimeError(f"staged frame does not match its schema: {problems}") from None
        column, check = pl.col("column").cast(pl.String), pl.col("check").cast(pl.String)
        reason = (
            pl.when(column.is_null() | (column == model_name))
            .then(check)
            .when(check == "not_nullable")
            .then(column + " missing or unreadable")
            .otherwise(column + ": " + check)
            .alias("reason")
        )
        return pl.DataFrame(
            {
                "_rid": frame["_rid"].gather(cases["index"].cast(pl.Int64)),
                "reason": cases.select(reason)["reason"],
            }
        )
    return pl.DataFrame(schema={"_rid": pl.Int64, "reason": pl.String})


def _frames(relation: duckdb.DuckDBPyRelation, rows: int | None) -> Iterator[pl.DataFrame]:
    """The relation as frames of about ``rows`` rows, or as one frame when ``rows`` is None.

    DuckDB 2.0 hands Arrow batches of one row group (122,880 rows) whatever size is asked, so
    batches are regrouped here: checks across rows (a duplicate patient_id) must see the whole
    frame they are meant for.
    """
    if rows is None:
        yield pl.from_arrow(relation.to_arrow_table())
        return
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in relation.to_arrow_reader(rows):
        pending.append(batch)
        count += batch.num_rows
        if count >= rows:
            yield pl.from_arrow(pa.Table.from_batches(pending))
            pending, count = [], 0
    if pending:
        yield pl.from_arrow(pa.Table.from_batches(pending))


# Raw columns a quarantined row's raw_row leaves out: the bookkeeping, and the identifiers the
# format adapters offer (FHIR Patient.identifier and name, OMOP person_source_value, Synthea's
# ssn, names...), which only the clinician worklists may hold.
_NOT_RAW = ("_rid", "source_file", "row_number", "_identifiers", "_source_identifiers")


def _raw_json(
    con: duckdb.DuckDBPyConnection, raw_table: str, identifiers: tuple[str, ...] = ()
) -> str:
    """The raw row as JSON, without the site's own identifier columns (``identifiers``, the
    rules' [identifiers] keys: an MRN or a name goes to the worklists and nowhere else)."""
    hidden = {*_NOT_RAW, *identifiers}
    cols = [
        r[0]
        for r in con.execute(f"DESCRIBE {raw_table}").fetchall()
        if r[0] not in hidden and r[0].strip().lower() not in hidden
    ]
    inner = ", ".join(f"{ident(c)} := raw.{ident(c)}" for c in cols)
    return f"to_json(struct_pack({inner}))::VARCHAR"


# What a kind's staging joins, staged just before it: (temporary table, its SQL); the labs'
# codings, once per spelling of code, test name and unit.
PRE_STAGING = {"labs": (("staged_lab_codings", "staging/stg_lab_codings.sql"),)}


def stage_and_validate(
    con: duckdb.DuckDBPyConnection,
    kind: str,
    as_of: date,
    batch_rows: int = BATCH_ROWS,
    rows_read: int | None = None,
    identifiers: tuple[str, ...] = (),
    scratch: Path | None = None,
) -> ValidationResult:
    """Stage the raw rows of ``kind`` and validate them; ``rows_read`` (the rows the read
    stage counted, malformed CSV lines excluded) is checked against what staging made.
    ``identifiers`` are the site's own patients columns to carry (the rules' [identifiers]).
    With ``scratch`` (a Parquet file to write), the staged rows go there and
    ``incoming_<kind>`` is a view of it (:func:`stage_to_file`)."""
    table = f"incoming_{kind}"
    if kind == "patients":
        carry_identifiers(con, identifiers)
    with reading(kind):  # a Parquet file is read by the staging SQL, first past its footer
        for first, sql in PRE_STAGING.get(kind, ()):
            con.execute(f"CREATE OR REPLACE TEMP TABLE {first} AS {read_sql(sql)}")
        staging = read_sql(f"staging/stg_{kind}.sql")
        if kind in WRITTEN_ONCE:  # read by the checks, then once by the merge that stores it
            con.execute(f"CREATE OR REPLACE TEMP VIEW {table} AS {staging}")
        elif scratch is None:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS {staging}")
        else:
            stage_to_file(con, staging, scratch, table)
    con.execute(f"CREATE OR REPLACE TEMP TABLE rejected_{kind} (_rid BIGINT)")
    analytes = (
        dict(con.execute("SELECT analyte, label FROM rule_analytes ORDER BY analyte").fetchall())
        if kind == "labs"
        else None
    )
    schema = schema_for(kind, as_of, analytes)
    model_name = MODELS[kind].__name__
    columns = ", ".join(ident(c) for c in validation_columns(kind))
    # Patients are checked in one piece, in file order, so "first of a duplicate id" is global.
    order = " ORDER BY _rid" if kind == "patients" else ""
    size = None if kind == "patients" else batch_rows
    with reading(kind):
        checked, failing = check_rows(
            con, f"SELECT {columns} FROM {table}{order}", schema, model_name, size, kind
        )
    if rows_read is not None and checked != rows_read:  # the checks read every staged row
        # a join in the staging SQL fanned rows out or lost some: a bug, never data
        raise RuntimeError(f"staging {kind} turned {rows_read} rows into {checked}")
    if not failing:
        return ValidationResult(kind, checked, 0)
    reasons = f"reasons_{kind}"
    con.execute(
        f"""
        INSERT INTO quarantine
        SELECT '{kind}', raw.source_file, raw.row_number, r.reason, {_raw_json(con, f"raw_{kind}", identifiers)}
        FROM {reasons} AS r INNER JOIN raw_{kind} AS raw ON raw._rid = r._rid
        ORDER BY raw._rid
        """
    )
    con.execute(f"INSERT INTO rejected_{kind} SELECT _rid FROM {reasons}")
    con.execute(f"DROP TABLE {reasons}")
    return ValidationResult(kind, checked, failing)


@contextlib.contextmanager
def reading(kind: str) -> Iterator[None]:
    """Where the extracts of ``kind`` are read: a file DuckDB cannot read is the extract's
    problem (:class:`ExtractsError`, one line), a full spill disk is not (re-raised)."""
    try:
        yield
    except (duckdb.IOException, duckdb.InvalidInputException) as exc:
        if shortage.is_resource_fault(exc):
            raise  # the spill disk, not the files (pipeline/shortage.py)
        raise ExtractsError(f"cannot read the {kind} files: {safe_message(exc)}") from None


# A file keeps what Parquet cannot hold as it is: a 128-bit integer is written as DOUBLE, so the
# record key (UHUGEINT) goes as its two 64-bit halves and a signed one (none is staged today) as
# text, each put together again when read.
_LOW_64 = "18446744073709551615::UHUGEINT"


def stage_to_file(con: duckdb.DuckDBPyConnection, select: str, path: Path, view: str) -> None:
    """Write the rows of ``select`` to the Parquet file ``path`` and present them as the
    temporary view ``view``, with the same columns, types and order.

    Why not a temporary table: a batch's staged rows must leave memory before the next batch
    is staged, and a table dropped inside the run's transaction keeps its data until the
    transaction ends (DuckDB must be able to roll the drop back). Seen at 250M lab rows:
    each batch's dropped table stayed, and the spill grew as if the night were staged whole. A
    file written by COPY is outside the transaction and is deleted after the batch.
    """
    described = con.sql(select).description
    columns = [(name, str(kind).upper()) for name, kind, *_ in described]
    written, read = [], []
    for name, kind in columns:
        col = ident(name)
        if kind == "UHUGEINT":
            hi, lo = ident(f"{name}__hi"), ident(f"{name}__lo")
            written += [
                f"({col} >> 64)::UBIGINT AS {hi}",
                f"({col} & {_LOW_64})::UBIGINT AS {lo}",
            ]
            read.append(f"(({hi}::UHUGEINT << 64) + {lo}::UHUGEINT) AS {col}")
        elif kind == "HUGEINT":
            written.append(f"{col}::VARCHAR AS {col}")
            read.append(f"{col}::HUGEINT AS {col}")
        else:
            written.append(col)
            read.append(col)
    con.execute(
        f"COPY (SELECT {', '.join(written)} FROM ({select})) TO {path_literal(path)} "
        "(FORMAT parquet, COMPRESSION lz4_raw)"
    )
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW {view} AS "
        f"SELECT {', '.join(read)} FROM read_parquet({path_literal(path)})"
    )


def check_rows(
    con: duckdb.DuckDBPyConnection,
    select: str,
    schema: pandera.DataFrameSchema,
    model_name: str,
    batch_rows: int | None,
    kind: str,
) -> tuple[int, int]:
    """Run ``schema`` over the rows of the query ``select`` in frames of ``batch_rows`` (one
    frame when None); return (rows checked, rows failing). When rows fail, the temp table
    ``reasons_<kind>`` holds one row per failing row: its _rid and its reasons, sorted and
    joined by "; ".

    Only the frame being checked and the (_rid, reason) pairs of the failures stay in Python,
    the reasons as a Categorical (a few distinct texts): 12 bytes a failed check rather than
    its text. DuckDB groups the pairs into reasons and spills past its memory limit
    (docs/benchmarks.md, "validation in the database").
    """
    failures: list[pl.DataFrame] = []
    checked = 0
    for frame in _frames(con.sql(select), batch_rows):
        checked += frame.height
        bad = failing_rows(frame, schema, model_name)
        if bad.height:
            failures.append(bad.with_columns(pl.col("reason").cast(pl.Categorical)))
        del frame, bad  # the next batch is fetched while these would still be held
    if not failures:
        return checked, 0
    pairs = pl.concat(failures)
    del failures
    con.register("_failed_checks", pairs)
    try:
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE reasons_{kind} AS
            SELECT _rid, string_agg(reason, '; ' ORDER BY reason) AS reason
            FROM (SELECT DISTINCT _rid, reason::VARCHAR AS reason FROM _failed_checks)
            GROUP BY _rid
            """
        )
    finally:
        # after a failed statement unregister() raises too; keep the first error visible
        with contextlib.suppress(duckdb.Error):
            con.unregister("_failed_checks")
    ((failing,),) = con.execute(f"SELECT count(*) FROM reasons_{kind}").fetchall()
    return checked, failing


def staging_batch_rows(con: duckdb.DuckDBPyConnection) -> int:
    """Rows of a night staged at once: as many as the memory limit holds staged
    (:data:`STAGED_ROW_BYTES` each), at least :data:`MIN_STAGING_BATCH_ROWS`."""
    size = memory_limit_bytes(con)
    if size is None:  # DuckDB spells it "2.7 GiB"; anything else: one batch, as before
        return 2**62
    return max(MIN_STAGING_BATCH_ROWS, size // STAGED_ROW_BYTES)


def _held_staged_is_large(con: duckdb.DuckDBPyConnection, files: Sequence[LoadedFile]) -> bool:
    """Whether ``files`` staged as a temporary table would hold a notable share of the memory
    limit until the run's transaction ends (:data:`HELD_STAGED_ROW_BYTES` a row, more than
    :data:`HELD_STAGED_SHARE` of the limit): then they are staged to a file, as a batch is."""
    size = memory_limit_bytes(con)
    rows = sum(f.rows_staged for f in files)
    return size is not None and rows * HELD_STAGED_ROW_BYTES > size * HELD_STAGED_SHARE


def file_batches(files: Sequence[LoadedFile], batch_rows: int) -> list[list[LoadedFile]]:
    """``files`` (one kind's, in file order) in consecutive groups of about ``batch_rows``
    rows: a group closes once it holds ``batch_rows`` or more; a file is never split."""
    groups: list[list[LoadedFile]] = []
    rows = 0
    for f in files:
        if not groups or rows >= batch_rows:
            groups.append([])
            rows = 0
        groups[-1].append(f)
        rows += f.rows_staged
    return groups


SCRATCH_PREFIX = ".b12screen-staged-"


def remove_stale_scratch(folder: Path | None) -> None:
    """Remove the staged batches a killed run left in ``folder`` (one run holds the database
    at a time, so none is in use)."""
    if folder is None or not folder.is_dir():
        return
    for stale in folder.glob(f"{SCRATCH_PREFIX}*"):
        shutil.rmtree(stale, ignore_errors=True)


def stage_validate_merge(
    con: duckdb.DuckDBPyConnection,
    kind: str,
    as_of: date,
    files: Sequence[LoadedFile] | None,
    rows_read: int | None,
    identifiers: tuple[str, ...] = (),
    batch_rows: int | None = None,
    note: Callable[[str], None] = lambda _: None,
    scratch_dir: Path | None = None,
) -> tuple[ValidationResult, MergeCounts]:
    """Stage, validate and merge the night's rows of ``kind``, in batches of its files when
    the night is larger than ``batch_rows`` (default: :func:`staging_batch_rows`).

    A batch is staged, validated, quarantined and merged before the next is staged, so what a
    night holds in memory at once is one batch's staged rows, whatever the night's size (at
    250M lab rows, staging the whole night at once spilled past 40 GiB: docs/benchmarks.md).
    All of it is in the run's one transaction, and the outcome is that of one batch: the
    merge takes the last copy of a key across batches (pipeline/store/merge.py, merge_batch);
    quarantine rows come in file order. ``files`` are the kind's files as read (None when a
    format adapter presented the rows: one batch). A batch's staged rows are written to a
    Parquet file in a folder made in ``scratch_dir`` (the database's folder; None: the
    system's temporary folder) and deleted after its merge (:func:`stage_to_file`).
    """
    if batch_rows is None:
        batch_rows = staging_batch_rows(con)
    groups = (
        file_batches(files, batch_rows)
        if files
        and kind not in WHOLE_NIGHT_KINDS
        and is_temp_view(con, f"raw_{kind}{FILES_SUFFIX}")
        else []
    )
    if not groups or (
        len(groups) == 1 and (kind in WRITTEN_ONCE or not _held_staged_is_large(con, groups[0]))
    ):
        result = stage_and_validate(con, kind, as_of, rows_read=rows_read, identifiers=identifiers)
        with reading(kind):
            return result, merge(con, kind)
    results: list[ValidationResult] = []
    counts: list[MergeCounts] = []
    # nothing of the kind stored yet (a first run): the batches are only stored, and the run's
    # keys settled once after the last (merge.settle_first_fill)
    first_fill = is_first_fill(con, kind)
    remove_stale_scratch(scratch_dir)
    folder = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=scratch_dir))
    try:
        for number, group in enumerate(groups, start=1):
            rows = sum(f.rows_staged for f in group)
            note(f"{kind}: batch {number} of {len(groups)}: {len(group)} file(s), {rows:,} rows")
            files_batch_view(con, kind, [f.file.name for f in group])
            staged = folder / f"incoming_{kind}_{number}.parquet"
            results.append(
                stage_and_validate(
                    con, kind, as_of, rows_read=rows, identifiers=identifiers, scratch=staged
                )
            )
            with reading(kind):  # a kind written once reads its files again here
                counts.append(
                    merge_batch(
                        con,
                        kind,
                        later_batch=number > 1,
                        files=[f.file.name for f in group],
                        first_fill=first_fill,
                    )
                )
            staged.unlink(missing_ok=True)  # (a kind written once writes none)
    finally:
        files_batch_view(con, kind, None)
        shutil.rmtree(folder, ignore_errors=True)
    counts.append(finish_merge(con, kind, first_fill))
    return ValidationResult.total(kind, results), MergeCounts.total(kind, counts)
