"""Reading the run registry (the ``runs`` table the runner writes in the DuckDB file)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from pipeline.errors import B12ScreenError, DatabaseBusyError


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
