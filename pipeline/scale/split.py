"""Split a run's rows by patient into N shards (the coordinator's side, in the run's transaction).

Tonight's rows are split as the readers present them (``raw_<kind>``: ``_rid``,
``source_file``, ``row_number`` and every column as text), so a shard's quarantine names the
original file and row and holds the original raw row. The kept tables the merge writes are
split the same way, so each shard holds every stored row of its patients. One
``COPY ... (PARTITION_BY ...)`` per relation: one pass over each.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

from pipeline.errors import UsageError
from pipeline.read.discover import KINDS
from pipeline.scale.shard import portable, raw_part, store_part
from pipeline.screening.models import ModelGraph, model_graph
from pipeline.sqltext import ident, path_literal
from pipeline.store.merge import KEPT, kept_ddl

# The tables a shard's validate and merge stages read and write, which the coordinator takes
# back from the shards: every kept table, and the log of corrected lab results.
KEPT_TABLES = (*(table for table, _ in KEPT.values()), "lab_result_corrections")
_GLOB = re.compile(r"[*?\[\]{}\\]")
# What a shard's run has of its own besides the kept tables: the lab state it builds, the
# rules' and reference tables (rule_*, ref_*) it loads, and the criteria's own flags.
_SHARD_MADE = ("latest_results", "criteria")


def check_shardable(graph: ModelGraph | None = None) -> None:
    """Every stored table the criteria, the measures and the flags mart read (their
    ``-- reads:`` lines, checked against the SQL when the rules load) is one the shards
    receive. A model that reads another (say the flag history) would be screened on a shard
    without it: the run stops before it splits, naming the tables, for a developer to add them
    to KEPT_TABLES (and to the combine) or to leave the model to the coordinator."""
    graph = graph or model_graph()
    need = graph.upstream([*graph.of_kind("criterion"), *graph.of_kind("measure"), "flags"])
    stored = {read for name in need for read in graph.models[name].reads if read not in graph.names}
    missing = sorted(
        read
        for read in stored
        if read not in (*KEPT_TABLES, *_SHARD_MADE) and not read.startswith(("rule_", "ref_"))
    )
    if missing:
        raise RuntimeError(
            f"the criteria or measures read {', '.join(missing)}, which the shards do not "
            "receive (pipeline/scale/split.py KEPT_TABLES)"
        )


def shard_of(column: str, count: int) -> str:
    """SQL giving the shard (0 to count - 1) of a row by its patient_id, as staging reads it
    (``nullif(trim(patient_id), '')``, sql/staging/stg_*.sql): the raw text and the stored id
    of one patient meet in one shard. A row without a patient_id goes to shard 0, where
    validation quarantines it. DuckDB's ``hash`` is stable within a DuckDB version, which is
    all a split needs: the stored rows are split again by every run."""
    return f"coalesce(hash(nullif(trim({column}::VARCHAR), '')) % {int(count)}, 0)"


def check_work_folder(work: Path) -> None:
    """The work folder is named in DuckDB's readers, which read ``*?[]{}`` as a glob."""
    if _GLOB.search(str(work)):
        raise UsageError(
            f"shard folder {work}: its path holds one of * ? [ ] {{ }} \\ ; "
            "give --shard-dir a plain path"
        )


def _copy_partitioned(con: duckdb.DuckDBPyConnection, query: str, to: Path, count: int) -> None:
    to.parent.mkdir(parents=True, exist_ok=True)
    con.execute(
        f"COPY (SELECT *, {shard_of('patient_id', count)} AS _shard FROM ({query})) "
        f"TO {path_literal(to)} (FORMAT parquet, PARTITION_BY (_shard), OVERWRITE_OR_IGNORE)"
    )


def _rows_in(folder: Path) -> int:
    if not folder.is_dir():
        return 0
    import pyarrow.parquet as pq

    return sum(pq.read_metadata(p).num_rows for p in sorted(folder.glob("*.parquet")))


def split_raw(
    con: duckdb.DuckDBPyConnection, work: Path, count: int
) -> tuple[dict[str, tuple[tuple[str, str], ...]], list[dict[str, int]]]:
    """Write each ``raw_<kind>`` by shard; return its columns and each shard's rows per kind."""
    columns: dict[str, tuple[tuple[str, str], ...]] = {}
    rows: list[dict[str, int]] = [{} for _ in range(count)]
    for kind in KINDS:
        described = con.execute(f"DESCRIBE raw_{kind}").fetchall()
        columns[kind] = tuple((name, kind_type) for name, kind_type, *_ in described)
        if "patient_id" not in {name for name, _ in columns[kind]}:
            raise RuntimeError(f"raw_{kind} has no patient_id column to split by")
        _copy_partitioned(con, portable(con, f"raw_{kind}"), work / "raw" / kind, count)
        for index in range(count):
            rows[index][kind] = _rows_in(raw_part(work, kind, index))
    return columns, rows


def split_store(
    con: duckdb.DuckDBPyConnection, work: Path, count: int
) -> tuple[tuple[str, str], ...]:
    """Write each kept table the database has by shard; return (table, CREATE statement)."""
    found = kept_ddl(con, KEPT_TABLES)
    tables = tuple(sorted(found, key=lambda t: KEPT_TABLES.index(t[0])))
    for table, _ in tables:
        _copy_partitioned(con, portable(con, f"main.{ident(table)}"), work / "store" / table, count)
    return tables


def stored_rows(work: Path, table: str, index: int) -> int:
    return _rows_in(store_part(work, table, index))
