"""Read the extract files into DuckDB with DuckDB's own readers (stage 1 of a run).

Each kind lands in one raw table (``raw_labs`` …, replaced each run: the raw rows of the run's
new files) holding every column of every file as read,
plus ``_rid`` (a row id unique in the run), ``source_file`` and ``row_number`` (the data row
in its file, counting from 1, header excluded). CSV lines DuckDB cannot split into the header's
columns are not dropped: they go to the quarantine table with their text. A file that cannot
be read at all, or lacks a required column, stops the run with one line naming it.
"""

from __future__ import annotations

import csv
import gzip
import re
import zlib
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.errors import ExtractsError
from pipeline.facts import LoadedFile
from pipeline.read.discover import (
    KINDS,
    ONE_OF_COLUMNS,
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    Extracts,
    InputFile,
)
from pipeline.sqltext import ident, literal, literal_files

QUARANTINE_DDL = """
CREATE OR REPLACE TEMP TABLE quarantine (
    kind VARCHAR, source_file VARCHAR, row_number BIGINT, reason VARCHAR, raw_row VARCHAR
)
"""
_FILE_ID_STRIDE = 1_000_000_000_000  # rows per file before _rid ranges would overlap


def _safe_message(exc: Exception) -> str:
    """The first line of a reader error with any quoted text removed (it may hold row values)."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    first = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", first)
    return first[:160]


_CSV_DIALECT = "all_varchar = true, delim = ',', quote = '\"', escape = '\"'"


def _load_csv(con: duckdb.DuckDBPyConnection, source: str, tmp: str) -> int:
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {tmp} AS
        SELECT row_number() OVER () AS _k, * FROM read_csv({source},
            header = true, {_CSV_DIALECT},
            ignore_errors = true, store_rejects = true,
            rejects_table = '{tmp}_rej', rejects_scan = '{tmp}_scan')
        """
    )
    malformed = con.execute(f"SELECT count(DISTINCT line) FROM {tmp}_rej").fetchone()[0]
    return int(malformed)


def _columns(con: duckdb.DuckDBPyConnection, relation_sql: str) -> list[str]:
    return [row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {relation_sql}").fetchall()]


def _header(f: InputFile) -> list[str]:
    """The column names exactly as the file spells them.

    DuckDB's readers rename duplicates (``value``, ``VALUE`` become ``value``, ``VALUE_1``), so
    the names are read apart: a Parquet file's schema, a CSV file's first record (Python's csv
    module, with the dialect DuckDB is given; DuckDB's own sniffer would stop at a malformed
    line further down, which the real read quarantines).
    """
    if f.fmt == "parquet":
        return list(pq.read_schema(f.path).names)
    opener = gzip.open if f.path.name.lower().endswith(".gz") else open
    try:
        with opener(f.path, "rt", encoding="utf-8-sig", errors="replace", newline="") as text:
            return next(csv.reader(text, delimiter=",", quotechar='"', doublequote=True), [])
    except (csv.Error, zlib.error, EOFError):
        # a NUL or an overlong header cell: DuckDB's names stand; a broken gzip stream: the
        # read itself reports the file
        return []


def _shown(name: str) -> str:
    """A column name as an error message may show it: printable, short."""
    return repr(name if len(name) <= 40 else name[:40] + "…")


def _normalised_select(
    f: InputFile, columns: list[str], header: list[str]
) -> tuple[str, list[str]]:
    """SELECT list that renames the file's columns to lower case; checks required columns.

    ``columns`` are the names DuckDB gave the columns, ``header`` the file's own, in the same
    order: two header names equal but for case or spaces are an error naming the file.
    """
    if not header:
        header = columns
    seen: set[str] = set()
    for name in header:
        key = name.strip().lower()
        if not key:
            continue  # a blank header cell: DuckDB names it (column3), as it always has
        if key in seen:
            raise ExtractsError(
                f"{f.name}: column {_shown(key)} appears twice (names are case-insensitive)"
            )
        seen.add(key)
    if len(header) != len(columns):
        raise ExtractsError(
            f"{f.name}: the header names {len(header)} columns but {len(columns)} were read"
        )
    names: dict[str, str] = {}
    for col, own in zip(columns, header, strict=True):
        key = own.strip().lower() or col.lower()
        if key in ("_k", "_rid", "source_file", "row_number", "file_row_number"):
            continue
        names[key] = col
    for req in REQUIRED_COLUMNS[f.kind]:
        if req not in names:
            raise ExtractsError(
                f"{f.name}: no column {req!r} (a {f.kind} file needs {', '.join(REQUIRED_COLUMNS[f.kind])})"
            )
    one_of = ONE_OF_COLUMNS.get(f.kind)
    if one_of and not any(c in names for c in one_of):
        raise ExtractsError(f"{f.name}: needs at least one of the columns {', '.join(one_of)}")
    select = ", ".join(f"{ident(orig)} AS {ident(key)}" for key, orig in names.items())
    return select, list(names)


def load_kind(
    con: duckdb.DuckDBPyConnection,
    kind: str,
    files: list[InputFile],
    first_file_id: int,
    readable: dict[Path, str],
) -> list[LoadedFile]:
    """Create ``raw_<kind>`` from ``files`` (possibly none) and quarantine malformed CSV lines.

    ``readable`` gives, for each file's path, the SQL literal that opens exactly that file
    (:func:`pipeline.sqltext.literal_files`).
    """
    parts: list[str] = []
    loaded: list[LoadedFile] = []
    for offset, f in enumerate(files):
        file_id = first_file_id + offset
        tmp = f"_load_{file_id}"
        path = readable[f.path]
        try:
            header = _header(f)
            if f.fmt == "csv":
                malformed = _load_csv(con, path, tmp)
                source = tmp
                # _k numbers the rows DuckDB kept, in file order (a streaming row_number over
                # the scan). Rejected lines carry their file line (header = line 1), so the
                # k-th kept row is data row k plus the rejected rows before it.
                row_number = (
                    f"(_k + (SELECT count(*) FROM (SELECT line::BIGINT - row_number() OVER (ORDER BY line) AS shifted "
                    f"FROM (SELECT DISTINCT line FROM {tmp}_rej)) r WHERE r.shifted <= {tmp}._k))"
                    if malformed
                    else "_k"
                )
            else:
                malformed = 0
                con.execute(f"SELECT 1 FROM read_parquet({path}) LIMIT 0")
                source = f"read_parquet({path}, file_row_number = true)"
                row_number = "(file_row_number + 1)"
            # the file's own columns: without the _k before them or the file_row_number after
            columns = _columns(con, source)
            columns = columns[1:] if f.fmt == "csv" else columns[:-1]
            select, _ = _normalised_select(f, columns, header)
        except (duckdb.Error, OSError, pa.ArrowException) as exc:
            raise ExtractsError(
                f"cannot read {f.name} as {f.fmt.upper()}: {_safe_message(exc)}"
            ) from None
        parts.append(
            f"SELECT {file_id}::BIGINT * {_FILE_ID_STRIDE} + {row_number} AS _rid, "
            f"{literal(f.name)} AS source_file, {row_number}::BIGINT AS row_number, {select} FROM {source}"
        )
        if malformed:
            con.execute(
                f"""
                INSERT INTO quarantine
                SELECT {literal(kind)}, {literal(f.name)}, line - 1,
                       'malformed CSV line: ' || lower(string_agg(DISTINCT error_type::VARCHAR, ', ')),
                       any_value(csv_line)
                FROM {tmp}_rej GROUP BY line ORDER BY line
                """
            )
        loaded.append(LoadedFile(f, 0, malformed))
    table = f"raw_{kind}"
    if parts:
        try:
            con.execute(f"CREATE OR REPLACE TABLE {table} AS " + " UNION ALL BY NAME ".join(parts))
        except duckdb.Error as exc:
            raise ExtractsError(f"cannot read the {kind} files: {_safe_message(exc)}") from None
    else:
        con.execute(
            f"CREATE OR REPLACE TABLE {table} (_rid BIGINT, source_file VARCHAR, row_number BIGINT)"
        )
    present = set(_columns(con, table))
    for col in REQUIRED_COLUMNS[kind] + OPTIONAL_COLUMNS[kind]:
        if col not in present:
            con.execute(f"ALTER TABLE {table} ADD COLUMN {ident(col)} VARCHAR")
    counts = dict(
        con.execute(f"SELECT source_file, count(*) FROM {table} GROUP BY source_file").fetchall()
    )
    loaded = [
        LoadedFile(
            item.file,
            int(counts.get(item.file.name, 0)) + item.malformed_lines,
            item.malformed_lines,
        )
        for item in loaded
    ]
    for offset in range(len(files)):
        con.execute(f"DROP TABLE IF EXISTS _load_{first_file_id + offset}")
    return loaded


def load_extracts(
    con: duckdb.DuckDBPyConnection, extracts: Extracts, first_file_id: int = 1
) -> list[LoadedFile]:
    """Load every kind; kinds without files get empty raw tables with the documented columns.

    ``first_file_id`` numbers this run's files after those already in the database, so row ids
    (``_rid``) stay unique across runs.
    """
    con.execute(QUARANTINE_DDL)
    loaded: list[LoadedFile] = []
    next_id = first_file_id
    paths = [f.path for f in extracts.files]
    with literal_files(paths) as sources:
        readable = dict(zip(paths, sources, strict=True))
        for kind in KINDS:
            files = extracts.of_kind(kind)
            loaded += load_kind(con, kind, files, next_id, readable)
            next_id += len(files)
    return loaded
