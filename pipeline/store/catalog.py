"""What the database's catalog says of a name: whether it is a table or a view, and its
columns. Shared by the store's modules (merge, state, profile, validate) and the shards'
coordinator."""

from __future__ import annotations

import duckdb


def _any(con: duckdb.DuckDBPyConnection, catalog_query: str, name: str) -> bool:
    """Whether ``catalog_query`` (a count over a catalog function, ``?`` for the name) finds
    ``name``."""
    return bool(con.execute(catalog_query, [name]).fetchall()[0][0])


def is_base_table(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    """Whether ``table`` is a table of the database (not a view, not temporary)."""
    return _any(
        con,
        "SELECT count(*) FROM duckdb_tables() "
        "WHERE schema_name = 'main' AND NOT temporary AND table_name = ?",
        table,
    )


def is_temp_view(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether ``name`` is a temporary view of this connection."""
    return _any(con, "SELECT count(*) FROM duckdb_views() WHERE temporary AND view_name = ?", name)


def is_temp_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether ``name`` is a temporary table of this connection."""
    return _any(
        con, "SELECT count(*) FROM duckdb_tables() WHERE temporary AND table_name = ?", name
    )


def table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    """Whether ``table`` is a table or a view of the database (not temporary)."""
    return _any(
        con,
        "SELECT count(*) FROM information_schema.tables "
        "WHERE table_name = ? AND table_schema = 'main'",
        table,
    )


def table_columns(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    return {r[0]: r[1] for r in con.execute(f"DESCRIBE {table}").fetchall()}
