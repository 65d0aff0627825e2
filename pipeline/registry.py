"""Reading the run registry (the ``runs`` table the runner writes in the DuckDB file)."""

from __future__ import annotations

from pathlib import Path

import duckdb

from pipeline.errors import B12ScreenError, DatabaseBusyError


def list_runs(db: Path, limit: int = 20) -> list[dict]:
    """The newest runs first, with their counts (no patient data)."""
    if not db.exists():
        raise B12ScreenError(f"database not found: {db}")
    try:
        con = duckdb.connect(str(db), read_only=True)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise DatabaseBusyError(
                f"database {db} is in use by a run; try again when it has finished"
            ) from None
        raise
    try:
        if not con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'runs'"
        ).fetchone()[0]:
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
    finally:
        con.close()
