"""The coordinator of a sharded run: one run, one registry entry, one run folder.

    prepare, ingest          the engine's own stages on the run's database (pipeline/runner.py)
    split                    tonight's rows and the kept tables by patient (split.py)
    shards                   validate, merge, screen per shard (shard.py), by ``screen_shards``
    combine                  kept tables, quarantine, flags, measure members, counts
    build_outputs, publish   the engine's own stages, over the combined tables

Everything after ``combine`` reads the same tables a single-node run leaves on its connection
(the kept tables, ``quarantine``, ``run_flags``, ``run_measure_members``, ``latest_results``
and the intermediate tables the marts and the audit read), so the outputs are made, counted and
passed through disclosure control exactly as a single-node run makes them, from all patients.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from pipeline.facts import MergeCounts, Screened, Validated, ValidationResult, frozen_map
from pipeline.read.discover import KINDS
from pipeline.runner import STAGES, RunConfig, RunResult, ScreeningRun, failure_log_path
from pipeline.scale.shard import ShardResult, ShardSpec, result_file, screen_shard
from pipeline.scale.split import (
    KEPT_TABLES,
    check_shardable,
    check_work_folder,
    split_raw,
    split_store,
)
from pipeline.screening.criteria import build_inputs
from pipeline.screening.models import ModelRun
from pipeline.sqltext import ident, path_literal
from pipeline.store import profile, state
from pipeline.store.catalog import table_exists
from pipeline.store.merge import create_kept, delete_stored, rows_table, store_rows

# screen_shards(specs, kept tables) -> one result per spec, in order; raises if any shard failed
ScreenShards = Callable[[Sequence[ShardSpec], list[str]], list[ShardResult]]


def screen_in_turn(specs: Sequence[ShardSpec], kept: list[str]) -> list[ShardResult]:
    """The shards one after another in this process (no Prefect, no Dask)."""
    return [screen_shard(spec, kept) for spec in specs]


def work_folder(config: RunConfig, run_id: str, shard_dir: Path | None = None) -> Path:
    """Where the split rows and the shards' databases go: ``shard_dir`` (a folder every
    worker sees, for a real cluster), else ``<db>.shards/`` beside the database."""
    base = Path(shard_dir) if shard_dir else config.db.with_name(config.db.name + ".shards")
    return base.resolve() / run_id


def _rules_argument(rules: str | Path | None) -> str | None:
    """The rules as a worker reads them: a file by its absolute path, a profile by name."""
    if rules is None:
        return None
    path = Path(rules)
    return str(path.resolve()) if path.exists() else str(rules)


def run_sharded(
    config: RunConfig,
    shards: int,
    screen_shards: ScreenShards | None = None,
    *,
    shard_dir: Path | None = None,
    threads: int | None = None,
    shard_memory_limit: str | None = None,
    on_failure: Callable[[ScreeningRun, BaseException], None] | None = None,
) -> RunResult:
    """One run whose validate, merge and screen stages run on ``shards`` shards of patients.

    As :func:`pipeline.runner.run_screening`: on any failure (a shard's included) the run is
    rolled back, the previous outputs stay, ``on_failure(run, error)`` is called, the error
    raised. The work folder is removed whatever happens.

    ``threads`` and ``shard_memory_limit`` are each shard's DuckDB settings (default: DuckDB's
    threads, the run's ``memory_limit``): give shards that run at once on one machine their
    share of it."""
    if shards < 1:
        raise ValueError("shards must be at least 1")
    screen_shards = screen_shards or screen_in_turn
    run = ScreeningRun(config)
    run.progress.total = STAGES + 1  # split, shards and combine in place of validate and screen
    work = work_folder(config, run.run_id, shard_dir)
    try:
        check_work_folder(work)
        run.prepare()
        _sweep(run, work.parent)
        run.ingest()
        with (
            run._resource_faults(),
            run.progress.stage("split", f"splitting by patient into {shards} shards"),
        ):
            memory = shard_memory_limit or config.memory_limit
            specs = _split(run, work, shards, threads, memory)
        with (
            run._resource_faults(),
            run.progress.stage("shards", f"validating, merging and screening {shards} shards"),
        ):
            results = screen_shards(specs, list(KEPT_TABLES))
            if [r.index for r in results] != [s.index for s in specs]:
                raise RuntimeError("the shards' results do not match the shards sent")
        with run._resource_faults(), run.progress.stage("combine", "combining the shards"):
            _combine(run, work, results)
        run.build_outputs()
        # run.json (and the registry's record): how the run was split; nothing else differs
        run.record["shards"] = {"count": shards, "by": "hash of the staged patient_id"}
        return run.publish()
    except BaseException as exc:
        run.fail(exc)
        if on_failure is not None and isinstance(exc, Exception):
            on_failure(run, exc)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
        # the base folder too when this run was its only user
        if not shard_dir:
            with contextlib.suppress(OSError):
                work.parent.rmdir()


def _sweep(run: ScreeningRun, base: Path) -> None:
    """Remove the work folders that earlier runs of this database left (a run killed before
    its end removes nothing). The run holds the database now, so no other run of it is alive;
    folders named after no run of this database (another database's, in a shared
    ``--shard-dir``) are left alone."""
    if not base.is_dir():
        return
    ours = {r[0] for r in run.con.execute("SELECT run_id FROM runs").fetchall()}
    for folder in base.iterdir():
        if folder.name in ours and folder.name != run.run_id and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
            run.progress.note(f"removed the work folder {folder.name} a stopped run left")


def _split(
    run: ScreeningRun, work: Path, shards: int, threads: int | None, memory: str | None
) -> list[ShardSpec]:
    con = run.con
    check_shardable()
    work.mkdir(parents=True)
    columns, rows = split_raw(con, work, shards)
    for kind in KINDS:
        written = sum(r[kind] for r in rows)
        if written != run.read.rows_of(kind):  # nothing lost or doubled by the split
            raise RuntimeError(f"split {kind}: {written} rows written of {run.read.rows_of(kind)}")
    tables = split_store(con, work, shards)
    run.progress.note(
        f"{shards} shard(s) in {work}: "
        + ", ".join(f"{sum(r[k] for r in rows):,} {k}" for k in KINDS)
        + f"; {len(tables)} kept table(s) split"
    )
    return [
        ShardSpec(
            index=index,
            count=shards,
            run_id=run.run_id,
            as_of=run.config.as_of,
            work=str(work),
            rules=_rules_argument(run.config.rules),
            rules_sha256=run.rules.sha256,
            memory_limit=memory,
            threads=threads,
            raw_columns=columns,
            raw_rows=rows[index],
            tables=tables,
            failure_log=str(
                failure_log_path(run.config.db, run.run_id).with_suffix(f".shard-{index}.log")
            ),
        )
        for index in range(shards)
    ]


def _files(work: Path, results: Sequence[ShardResult], table: str) -> str:
    return "[" + ", ".join(path_literal(result_file(work, r.index, table)) for r in results) + "]"


def _result_table(con, work: Path, results: Sequence[ShardResult], table: str) -> None:
    """The shards' ``table`` (a temporary table of their runs) as one, with their column types
    (text in the Parquet files for what Parquet cannot hold exactly)."""
    columns = ", ".join(f"{ident(n)} {kind}" for n, kind in results[0].result_columns[table])
    con.execute(f"DROP TABLE IF EXISTS temp.{ident(table)}")
    con.execute(f"CREATE TEMP TABLE {ident(table)} ({columns})")
    con.execute(
        f"INSERT INTO {ident(table)} BY NAME SELECT * FROM read_parquet({_files(work, results, table)})"
    )


def _combine(run: ScreeningRun, work: Path, results: Sequence[ShardResult]) -> None:
    """Lay the shards' results into the run's database, where a single-node run has its own."""
    con = run.con
    # each shard wrote the kept rows its merge wrote tonight (new rows, and the new values of
    # corrected ones): the stored rows they replace (by record key) go, tonight's come in
    created = dict(results[0].tables)
    for table in KEPT_TABLES:
        files = _files(work, results, table)
        if not table_exists(con, table):
            if table not in created:
                continue
            create_kept(con, table, created[table])  # the first run: the shards' merge made it
        have = dict(
            (name, kind)
            for name, kind, *_ in con.execute(f"DESCRIBE main.{ident(table)}").fetchall()
        )
        # the rows' own table (lab_rows under the view lab_results)
        stored = rows_table(con, table)
        if "run_id" not in have:  # written whole by the shards
            con.execute(f"DELETE FROM main.{ident(stored)}")
        elif "record_key" in have:
            delete_stored(
                con,
                stored,
                f"record_key IN (SELECT record_key::{have['record_key']} FROM read_parquet({files}))",
            )
        store_rows(con, table, f"read_parquet({files})")
    # after the lines the coordinator's read quarantined (malformed CSV lines)
    con.execute(
        f"INSERT INTO quarantine BY NAME SELECT * FROM read_parquet({_files(work, results, 'quarantine')})"
    )
    validation = {
        kind: ValidationResult.total(kind, (r.validation[kind] for r in results)) for kind in KINDS
    }
    merged = {kind: MergeCounts.total(kind, (r.merged[kind] for r in results)) for kind in KINDS}
    for kind in KINDS:
        result, m = validation[kind], merged[kind]
        run.progress.note(
            f"{kind}: {result.rows_quarantined:,} of {result.rows_checked:,} quarantined; "
            f"{m.new:,} new, {m.resent:,} re-sent, {m.corrected:,} corrected"
        )
    run.validated = Validated(frozen_map(validation), frozen_map(merged))

    # what the marts and the audit read, over all patients: the lab state and the
    # intermediate tables; the flags and the measures' members are the shards'
    run.lab_state = state.refresh(con, run.config.as_of)
    run.progress.note(run.lab_state.note())
    run.lab_profile = profile.refresh(con)
    run.progress.note(f"lab profile {run.lab_profile}")
    models = run.models = ModelRun(con, run.rules.criteria_order)
    build_inputs(models)
    _result_table(con, work, results, "run_flags")
    models.built.update(models.graph.of_kind("criterion"))
    models.built.add("flags")
    measures = list(run.rules.spec.measures)
    for model in models.plan(measures):
        if model.kind != "measure":
            models.materialize(model)
    _result_table(con, work, results, "run_measure_members")
    models.built.update(measures)
    counts = {
        cid: sum(r.criterion_counts.get(cid, 0) for r in results)
        for cid in results[0].criterion_counts
    }
    run.screened = Screened(frozen_map(counts), tuple(_measures(run, results)))
    met = sum(1 for n in counts.values() if n)
    run.progress.note(
        f"{len(counts)} criteria applied ({met} met by at least one patient), "
        f"{len(measures)} care-process measures"
    )


def _measures(run: ScreeningRun, results: Sequence[ShardResult]):
    """Each measure's counts over all patients (from the combined members), in the shape
    pipeline/screening/measures.py gives them."""
    counts = {
        mid: (int(num), int(den))
        for mid, num, den in run.con.execute(
            "SELECT measure, count(*) FILTER (WHERE in_numerator), count(*) "
            "FROM run_measure_members GROUP BY measure"
        ).fetchall()
    }
    for template in results[0].measures:
        num, den = counts.get(template["measure"], (0, 0))
        yield frozen_map(
            {**template, "numerator": num, "denominator": den, "rate": num / den if den else None}
        )
