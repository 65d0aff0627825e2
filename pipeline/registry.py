"""The run registry: its tables (sql/registry/tables.sql, their one definition) and reading it.

The registry is what every run leaves in the DuckDB file besides the kept extract tables:
``runs``, ``flags_history``, ``worklist_history``, ``quarantine_log``, ``measures_history``,
``audit_history``, ``ingested_files`` and ``lab_result_corrections``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from pipeline.errors import B12ScreenError, DatabaseBusyError
from pipeline.resources import read_sql


def registry_ddl() -> dict[str, str]:
    """Each registry table's CREATE statement, by table name (sql/registry/tables.sql)."""
    text = "\n".join(
        line for line in read_sql("registry/tables.sql").splitlines() if not line.startswith("--")
    )
    out = {}
    for statement in (s.strip() for s in text.split(";")):
        if statement:
            out[re.match(r"CREATE TABLE IF NOT EXISTS (\w+)", statement)[1]] = statement
    return out


def ensure_registry(con: duckdb.DuckDBPyConnection) -> None:
    """Create every registry table that does not exist yet."""
    for ddl in registry_ddl().values():
        con.execute(ddl)


def connect(db: Path, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the database; another process holding it is a (transient) DatabaseBusyError."""
    try:
        return duckdb.connect(str(db), read_only=read_only)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise DatabaseBusyError(
                f"database {db} is in use by another run; try again when it has finished"
            ) from None
        raise B12ScreenError(f"cannot open database {db}: {str(exc).splitlines()[0]}") from None


@contextmanager
def reading(db: Path) -> Iterator[duckdb.DuckDBPyConnection | None]:
    """A read-only connection to an existing database; None when it has no run registry yet."""
    db = Path(db)
    if not db.exists():
        raise B12ScreenError(f"database not found: {db}")
    con = connect(db, read_only=True)
    try:
        has_runs = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'runs'"
        ).fetchall()[0][0]
        yield con if has_runs else None
    finally:
        con.close()


def list_runs(db: Path, limit: int = 20) -> list[dict]:
    """The newest runs first, with their counts (no patient data)."""
    with reading(db) as con:
        if con is None:
            return []
        cur = con.execute(
            """
            SELECT run_id, as_of, started_at, finished_at, status, error, rules_version,
                   TRY_CAST(json_extract(record, '$.counts.worklist.total') AS INTEGER) AS worklist,
                   (SELECT coalesce(sum(TRY_CAST(v AS INTEGER)), 0) FROM (
                       SELECT unnest(json_extract(record, '$.counts.rows_quarantined.*')) AS v)) AS quarantined,
                   date_diff('millisecond', started_at, finished_at) / 1000.0 AS seconds
            FROM runs ORDER BY started_at DESC LIMIT ?
            """,
            [limit],
        )
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
