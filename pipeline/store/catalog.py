"""What the database's catalog says of a name: whether it is a table or a view, and its
columns. Shared by the store's modules (merge, state, profile, validate) and the shards'
coordinator."""

from __future__ import annotations

import duckdb


def is_base_table(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    """Whether ``table`` is a table of the database (not a view, not temporary)."""
    return bool(
        con.execute(
            "SELECT count(*) FROM duckdb_tables() "
            "WHERE schema_name = 'main' AND NOT temporary AND table_name = ?",
            [table],
        ).fetchall()[0][0]
    )


def is_temp_view(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether ``name`` is a temporary view of this connection."""
    return bool(
        con.execute(
            "SELECT count(*) FROM duckdb_views() WHERE temporary AND view_name = ?", [name]
        ).fetchall()[0][0]
    )


def is_temp_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether ``name`` is a temporary table of this connection."""
    return bool(
        con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE temporary AND table_name = ?", [name]
        ).fetchall()[0][0]
    )


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
