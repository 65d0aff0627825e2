"""One shard: its patients' rows validated, merged and screened in a DuckDB of its own.

The coordinator (pipeline/scale/split.py) writes, in a work folder every worker can read:

    <work>/raw/<kind>/_shard=<k>/*.parquet     tonight's rows of shard k's patients, as read
    <work>/store/<table>/_shard=<k>/*.parquet  their kept rows before tonight

:func:`screen_shard` builds a throw-away database in ``<work>/shard-<k>/`` with the kept rows,
presents the raw rows as ``raw_<kind>``, runs the engine's own validate and screen stages
(pipeline/runner.py, through :class:`ShardRun`), and writes what the coordinator combines to
``<work>/shard-<k>/result/``. It returns counts only (a Prefect task's result must hold no
patient data). The shard's transaction is never committed: its database is discarded.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from pipeline.errors import B12ScreenError, UsageError
from pipeline.facts import MergeCounts, Read, ValidationResult
from pipeline.read.discover import KINDS
from pipeline.read.ingest import QUARANTINE_DDL
from pipeline.runner import RunConfig, ScreeningRun
from pipeline.sqltext import ident, path_literal
from pipeline.store.merge import create_kept, kept_ddl, store_rows

# what a shard hands back besides its kept rows (temporary tables of its run)
RESULT_TABLES = ("quarantine", "run_flags", "run_measure_members")


@dataclass(frozen=True)
class ShardSpec:
    """Everything a worker needs to screen one shard: paths, dates, settings, no data."""

    index: int
    count: int
    run_id: str
    as_of: date
    work: str  # the run's work folder (on a filesystem every worker sees)
    rules: str | None  # the rules file or profile, as the coordinator was given it
    rules_sha256: str  # the coordinator's: a worker that reads other rules stops
    memory_limit: str | None
    threads: int | None
    # per kind, the raw columns (name, DuckDB type) in the coordinator's order, and the rows
    raw_columns: dict[str, tuple[tuple[str, str], ...]]
    raw_rows: dict[str, int]
    # the kept tables (name, CREATE statement) the coordinator's database has
    tables: tuple[tuple[str, str], ...]
    failure_log: str | None = None  # where a bug's traceback goes (beside the run's log)


@dataclass(frozen=True)
class ShardResult:
    index: int
    validation: dict[str, ValidationResult]
    merged: dict[str, MergeCounts]
    criterion_counts: dict[str, int]
    measures: tuple[dict, ...]  # counts and definitions (the coordinator recounts them)
    # the kept tables after the merge: name and CREATE statement (a table the merge created)
    tables: tuple[tuple[str, str], ...] = field(default=())
    # the columns (name, DuckDB type) of each of RESULT_TABLES, as the shard's run made them
    result_columns: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)


class ShardFailed(RuntimeError):
    """A shard met a bug: one line (no data), the traceback in the shard's failure log."""


def raw_part(work: Path, kind: str, index: int) -> Path:
    """Shard ``index``'s raw rows of ``kind`` (a folder of Parquet files; absent when none)."""
    return work / "raw" / kind / f"_shard={index}"


def store_part(work: Path, table: str, index: int) -> Path:
    return work / "store" / table / f"_shard={index}"


def shard_folder(work: Path, index: int) -> Path:
    return work / f"shard-{index}"


def result_file(work: Path, index: int, table: str) -> Path:
    return shard_folder(work, index) / "result" / f"{table}.parquet"


# Types Parquet cannot hold exactly: DuckDB writes a 128-bit integer (the record keys) as a
# DOUBLE. They cross as text and are cast back by the typed table they are inserted into.
_AS_TEXT = ("HUGEINT", "UHUGEINT")


def portable(con, relation: str) -> str:
    """``SELECT`` of ``relation`` whose Parquet file gives back every value exactly."""
    described = con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
    columns = [
        f"{ident(name)}::VARCHAR AS {ident(name)}" if kind in _AS_TEXT else ident(name)
        for name, kind, *_ in described
    ]
    return f"SELECT {', '.join(columns)} FROM {relation}"


def _parquet_glob(folder: Path) -> str:
    return path_literal(folder / "*.parquet")


class ShardRun(ScreeningRun):
    """The engine's stages on one shard's database.

    Differs from a run in three places only, each a method of pipeline/runner.py overridden
    here: the run id is the coordinator's (rows merged tonight carry it); it reads no extract
    folder (ingest presents the shard's raw rows instead); and it neither repairs an output
    folder nor registers itself, nor asks for patients and labs ever received (the
    coordinator checked its own database)."""

    def __init__(self, config: RunConfig, spec: ShardSpec) -> None:
        super().__init__(config)
        self.spec = spec
        self.run_id = spec.run_id

    def _repair_publish(self) -> None:
        pass

    def _mark_running(self) -> None:
        pass

    def _check_required_kinds(self, extracts) -> None:
        pass

    def ingest(self) -> Read:
        work, index = Path(self.spec.work), self.spec.index
        con = self.con
        con.execute(QUARANTINE_DDL)
        rows: dict[str, int] = {}
        for kind in KINDS:
            columns = self.spec.raw_columns[kind]
            ddl = ", ".join(f"{ident(name)} {kind_type}" for name, kind_type in columns)
            con.execute(f"CREATE OR REPLACE TEMP TABLE raw_{kind} ({ddl})")
            part = raw_part(work, kind, index)
            if part.is_dir():  # in file order, as the readers present them
                names = ", ".join(ident(name) for name, _ in columns)
                con.execute(
                    f"INSERT INTO raw_{kind} SELECT {names} FROM read_parquet({_parquet_glob(part)}, hive_partitioning = false) "
                    "ORDER BY _rid"
                )
            ((rows[kind],),) = con.execute(f"SELECT count(*) FROM raw_{kind}").fetchall()
            if rows[kind] != self.spec.raw_rows.get(kind, 0):
                raise RuntimeError(
                    f"shard {self.spec.index}: {kind}: {rows[kind]} rows read back, "
                    f"{self.spec.raw_rows.get(kind, 0)} written"
                )
        self.read = Read((), rows_by_kind=rows)
        return self.read


def _seed_database(spec: ShardSpec, db: Path) -> None:
    """The shard's database before the run: the kept tables, as the coordinator's, holding
    the shard's patients' rows (committed: the run itself is never committed)."""
    import duckdb

    work = Path(spec.work)
    con = duckdb.connect(str(db))
    try:
        for table, ddl in spec.tables:
            create_kept(con, table, ddl)
            part = store_part(work, table, spec.index)
            if part.is_dir():
                store_rows(
                    con, table, f"read_parquet({_parquet_glob(part)}, hive_partitioning = false)"
                )
    finally:
        con.close()


def _export(
    run: ShardRun, kept: list[str]
) -> tuple[tuple[tuple[str, str], ...], dict[str, tuple[tuple[str, str], ...]]]:
    """Write the run's result tables, and of each kept table the rows tonight's merge wrote
    (a new row, and the new value of a corrected one, carry the run's id: what the merge
    replaced or left alone the coordinator holds already). A kept table without a ``run_id``
    column is written whole."""
    con, work, index = run.con, Path(run.spec.work), run.spec.index
    (shard_folder(work, index) / "result").mkdir(exist_ok=True)
    for table in (*RESULT_TABLES, *kept):
        relation = ident(table)
        if table in kept and "run_id" in _column_names(con, table):
            relation = f"(SELECT * FROM {relation} WHERE run_id = getvariable('run.id'))"
        path = path_literal(result_file(work, index, table))
        con.execute(f"COPY ({portable(con, relation)}) TO {path} (FORMAT parquet)")
    ddl = kept_ddl(con, kept)
    columns = {
        table: tuple(
            (name, kind) for name, kind, *_ in con.execute(f"DESCRIBE {ident(table)}").fetchall()
        )
        for table in RESULT_TABLES
    }
    return tuple((name, sql) for name, sql in ddl), columns


def _column_names(con, table: str) -> set[str]:
    return {row[0] for row in con.execute(f"DESCRIBE {ident(table)}").fetchall()}


def screen_shard(spec: ShardSpec, kept: list[str]) -> ShardResult:
    """Validate, merge and screen one shard; write its results beside its inputs.

    ``kept`` names the tables the coordinator takes back (the kept tables the merge writes).
    A data or user error passes as it is (its message is one line without data); any other
    exception is written, with its traceback, to ``spec.failure_log`` and raised as
    :class:`ShardFailed`, whose message names only the shard, the type and the log."""
    folder = shard_folder(Path(spec.work), spec.index)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        db = folder / "shard.duckdb"
        _seed_database(spec, db)
        config = RunConfig(
            extracts=None,
            out=folder / "out",
            as_of=spec.as_of,
            db=db,
            rules=spec.rules,
            progress=False,
            memory_limit=spec.memory_limit,
        )
        run = ShardRun(config, spec)
        try:
            run.prepare()
            if run.rules.sha256 != spec.rules_sha256:
                raise UsageError(
                    f"shard {spec.index}: the rules read on this worker differ from the "
                    "coordinator's (give every worker the same rules file)"
                )
            if spec.threads:
                run.con.execute(f"SET threads = {int(spec.threads)}")
            run.ingest()
            validated = run.validate()
            screened = run.screen()
            tables, result_columns = _export(run, kept)
        finally:
            run.close()
        return ShardResult(
            index=spec.index,
            validation=dict(validated.validation),
            merged=dict(validated.merged),
            criterion_counts=dict(screened.criterion_counts),
            measures=tuple(dict(m) for m in screened.measures),
            tables=tables,
            result_columns=result_columns,
        )
    except B12ScreenError:
        raise
    except Exception as exc:
        where = _write_failure(spec, exc)
        raise ShardFailed(
            f"shard {spec.index + 1} of {spec.count} failed ({type(exc).__name__})"
            + (f"; traceback in {where}" if where else "")
        ) from None


def _write_failure(spec: ShardSpec, exc: BaseException) -> str | None:
    if not spec.failure_log:
        return None
    path = Path(spec.failure_log)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(traceback.format_exception(exc)), encoding="utf-8")
    except OSError:
        return None
    return str(path)
