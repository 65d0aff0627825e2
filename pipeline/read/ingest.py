"""Read the extract files into DuckDB with DuckDB's own readers (stage 1 of a run).

Each kind is presented as one raw view (``raw_labs`` …: the rows of the run's new files) with
every column of every file as read, plus ``_rid`` (a row id unique across runs),
``source_file`` and ``row_number`` (the data row in its file, counting from 1, header excluded).
A Parquet file is not copied: the view reads the file itself, so the staging SQL
(sql/staging) types and codes the rows straight from the file scan, in one pass. A CSV file is
read once into a temporary table, since DuckDB numbers the lines it rejects only in that
read; a CSV file whose line endings are mixed is read from an LF copy (pipeline/read/newlines.py).
CSV lines DuckDB cannot split into the header's columns are not dropped: they go to the quarantine table with their text. A file that cannot
be read at all, or lacks a required column, stops the run with one line naming it.
"""

from __future__ import annotations

import csv
import gzip
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import shortage
from pipeline.errors import ExtractsError, safe_message
from pipeline.facts import LoadedFile
from pipeline.read import newlines
from pipeline.read.discover import (
    KINDS,
    ONE_OF_COLUMNS,
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    Extracts,
    InputFile,
)
from pipeline.sqltext import ident, literal

QUARANTINE_DDL = """
CREATE OR REPLACE TEMP TABLE quarantine (
    kind VARCHAR, source_file VARCHAR, row_number BIGINT, reason VARCHAR, raw_row VARCHAR
)
"""
_FILE_ID_STRIDE = 1_000_000_000_000  # rows per file before _rid ranges would overlap


_CSV_DIALECT = "all_varchar = true, delim = ',', quote = '\"', escape = '\"'"


# A line may be long (a pasted report in a free-text column): DuckDB's 2 MB default would stop
# the file; a line this long is read and its row judged like any other.
_MAX_LINE_BYTES = 64 * 1024 * 1024


def _declared_columns(header: list[str]) -> str | None:
    """The header as DuckDB's ``columns`` (every one text), so the file is read without its
    sniffer: a sniffer that meets an unterminated quote or an overlong line gives up on the
    whole file, the declared read rejects those lines alone. None when the header cannot be
    declared as it stands (unread, or names equal but for case: the caller's checks name it)."""
    names = [name if name.strip() else f"column{i}" for i, name in enumerate(header)]
    keys = [n.strip().lower() for n in names]
    if not header or len(set(keys)) != len(keys) or any("\x00" in n for n in names):
        return None
    return "{" + ", ".join(f"{literal(n)}: 'VARCHAR'" for n in names) + "}"


def _load_csv(
    con: duckdb.DuckDBPyConnection, source: str, tmp: str, header: list[str] | None = None
) -> int:
    declared = _declared_columns(header or [])
    dialect = (
        f"auto_detect = false, columns = {declared}, max_line_size = {_MAX_LINE_BYTES}, "
        if declared
        else ""
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {tmp} AS
        SELECT row_number() OVER () AS _k, * FROM read_csv({source},
            header = true, {dialect}{_CSV_DIALECT},
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
    if any("\x00" in name for name in (*header, *columns)):
        raise ExtractsError(f"{f.name}: a column name holds a NUL character")
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
        if key in ("_k", "_rid", "source_file", "row_number", "file_row_number", "_identifiers"):
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


@dataclass(frozen=True)
class OpenedFile:
    """One extract file as a relation the staging can read, its data rows numbered."""

    source: str  # the relation: a temporary table (CSV) or a read_parquet() scan (Parquet)
    row_number: str  # SQL numbering the data rows from 1 in file order, header excluded
    columns: list[str]  # the file's own columns as DuckDB names them
    rows: int  # rows read (malformed CSV lines excluded)
    malformed: int  # CSV lines DuckDB could not split into the header's columns
    normalised: bool  # read from an LF copy (mixed line endings: pipeline/read/newlines.py)


@contextmanager
def reading(what: str) -> Iterator[None]:
    """Extracts that cannot be read are one line, "cannot read <what>: why" (exit 3);
    running out of memory or of spill disk is not the data's fault and passes through
    (pipeline/shortage.py)."""
    try:
        yield
    except (duckdb.Error, OSError, pa.ArrowException, UnicodeError) as exc:
        # UnicodeError: a Parquet schema whose names are not UTF-8
        if shortage.is_resource_fault(exc):
            raise
        raise ExtractsError(f"cannot read {what}: {safe_message(exc)}") from None


def as_read(f: InputFile) -> str:
    """How an error message names ``f``: its file name and format."""
    return f"{f.name} as {f.fmt.upper()}"


def open_file(
    con: duckdb.DuckDBPyConnection, f: InputFile, path: str, tmp: str, header: list[str]
) -> OpenedFile:
    """Open ``f`` (``path``: the SQL literal naming exactly that file) for reading once.

    A CSV file is read into the temporary table ``tmp`` (its malformed lines into
    ``tmp``_rej: :func:`quarantine_malformed`), from an LF copy when its line endings are
    mixed; a Parquet file is not read here, only its footer. Call inside :func:`reading`.
    """
    if f.fmt == "csv":
        with newlines.lf_source(con, f.path, path) as (lf_path, normalised):
            malformed = _load_csv(con, lf_path, tmp, header)
        # _k numbers the rows DuckDB kept, in file order (a streaming row_number over the
        # scan). Rejected lines carry their file line (header = line 1), so the k-th kept row
        # is data row k plus the rejected rows before it.
        row_number = (
            f"(_k + (SELECT count(*) FROM (SELECT line::BIGINT - row_number() OVER (ORDER BY line) AS shifted "
            f"FROM (SELECT DISTINCT line FROM {tmp}_rej)) r WHERE r.shifted <= {tmp}._k))"
            if malformed
            else "_k"
        )
        ((rows,),) = con.execute(f"SELECT count(*) FROM {tmp}").fetchall()
        # the file's own columns: without the _k before them
        return OpenedFile(tmp, row_number, _columns(con, tmp)[1:], int(rows), malformed, normalised)
    # the footer's row count: the rows are read once, by the staging SQL
    ((rows,),) = con.execute(f"SELECT num_rows FROM parquet_file_metadata({path})").fetchall()
    source = f"read_parquet({path}, file_row_number = true)"
    # the file's own columns: without the file_row_number after them
    return OpenedFile(
        source, "(file_row_number + 1)", _columns(con, source)[:-1], int(rows), 0, False
    )


def quarantine_malformed(
    con: duckdb.DuckDBPyConnection, kind: str, f: InputFile, opened: OpenedFile
) -> None:
    """Copy the CSV lines DuckDB rejected while opening ``f`` to quarantine, with their text."""
    if not opened.malformed:
        return
    con.execute(
        f"""
        INSERT INTO quarantine
        SELECT {literal(kind)}, {literal(f.name)}, line - 1,
               'malformed CSV line: ' || lower(string_agg(DISTINCT error_type::VARCHAR, ', ')),
               any_value(csv_line)
        FROM {opened.source}_rej GROUP BY line ORDER BY line
        """
    )


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
        with reading(as_read(f)):
            header = _header(f)
            opened = open_file(con, f, readable[f.path], f"_load_{file_id}", header)
            select, _ = _normalised_select(f, opened.columns, header)
        row_number = opened.row_number
        parts.append(
            f"SELECT {file_id}::BIGINT * {_FILE_ID_STRIDE} + {row_number} AS _rid, "
            f"{literal(f.name)} AS source_file, {row_number}::BIGINT AS row_number, {select} "
            f"FROM {opened.source}"
        )
        quarantine_malformed(con, kind, f, opened)
        loaded.append(
            LoadedFile(f, opened.rows + opened.malformed, opened.malformed, opened.normalised)
        )
    view = f"raw_{kind}"
    wanted = ["_rid", "source_file", "row_number", *REQUIRED_COLUMNS[kind], *OPTIONAL_COLUMNS[kind]]
    if parts:
        union = " UNION ALL BY NAME ".join(f"({part})" for part in parts)
        with reading(f"the {kind} files"):
            present = _columns(con, f"({union})")
        missing = [col for col in wanted if col not in present]
        extra = "".join(f", NULL::VARCHAR AS {ident(col)}" for col in missing)
        # raw_<kind>_files: every file of the night; raw_<kind> is what staging reads, all of
        # them or, for a large night staged in batches, a batch of them (files_batch_view)
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW {view}{FILES_SUFFIX} AS SELECT *{extra} FROM ({union})"
        )
        con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * FROM {view}{FILES_SUFFIX}")
    else:
        columns = ", ".join(
            f"NULL::{'BIGINT' if col in ('_rid', 'row_number') else 'VARCHAR'} AS {ident(col)}"
            for col in wanted
        )
        con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT {columns} WHERE false")
    return loaded


FILES_SUFFIX = "_files"


def files_batch_view(con: duckdb.DuckDBPyConnection, kind: str, names: list[str] | None) -> None:
    """Present as ``raw_<kind>`` the rows of the files ``names`` only (None: every file).

    The filter on the constant ``source_file`` of each file's part prunes the other files'
    scans whole (DuckDB pushes it into each branch of the union), so a batch reads its own
    files and nothing else. Only a kind read by :func:`load_kind` has the files view.
    """
    files = f"raw_{kind}{FILES_SUFFIX}"
    where = (
        f" WHERE source_file IN ({', '.join(literal(n) for n in names)})"
        if names is not None
        else ""
    )
    con.execute(f"CREATE OR REPLACE TEMP VIEW raw_{kind} AS SELECT * FROM {files}{where}")


def load_extracts(
    con: duckdb.DuckDBPyConnection,
    extracts: Extracts,
    readable: dict[Path, str],
    first_file_id: int = 1,
) -> list[LoadedFile]:
    """Present every kind as ``raw_<kind>``; kinds without files get empty ones with the
    documented columns (docs/inputs.md).

    ``readable`` gives, for each file's path, the SQL literal that opens exactly that file
    (:func:`pipeline.sqltext.literal_files`, whose links must outlive the run's reads of the
    raw views). ``first_file_id`` numbers this run's files after those already in the
    database, so row ids (``_rid``) stay unique across runs.
    """
    con.execute(QUARANTINE_DDL)
    loaded: list[LoadedFile] = []
    next_id = first_file_id
    for kind in KINDS:
        files = extracts.of_kind(kind)
        loaded += load_kind(con, kind, files, next_id, readable)
        next_id += len(files)
    return loaded


def present_rows(
    con: duckdb.DuckDBPyConnection, kind: str, relation: str, file_name: str, file_id: int
) -> LoadedFile:
    """Present the rows of ``relation`` (a table or a registered frame, every column text, as
    a CSV file is read) as ``raw_<kind>``, the view the staging SQL reads, as if they were the
    file ``file_name``: rows in the relation's order, numbered from 1.

    For tests that run the real staging, validation, criteria and marts on small tables in an
    in-memory database, without writing extract files (tests/harness.py).
    """
    numbered = f"(SELECT row_number() OVER () AS _k, * FROM {relation})"
    header = _columns(con, relation)
    as_file = InputFile(kind, Path(file_name), "csv", 0, "")
    select, _ = _normalised_select(as_file, header, header)
    part = (
        f"SELECT {file_id}::BIGINT * {_FILE_ID_STRIDE} + _k AS _rid, {literal(file_name)} "
        f"AS source_file, _k::BIGINT AS row_number, {select} FROM {numbered}"
    )
    wanted = ["_rid", "source_file", "row_number", *REQUIRED_COLUMNS[kind], *OPTIONAL_COLUMNS[kind]]
    present = _columns(con, f"({part})")
    extra = "".join(f", NULL::VARCHAR AS {ident(c)}" for c in wanted if c not in present)
    con.execute(f"CREATE OR REPLACE TEMP VIEW raw_{kind} AS SELECT *{extra} FROM ({part})")
    ((rows,),) = con.execute(f"SELECT count(*) FROM {relation}").fetchall()
    return LoadedFile(as_file, int(rows), 0)


def carry_identifiers(con: duckdb.DuckDBPyConnection, names: tuple[str, ...]) -> None:
    """Present ``raw_patients`` as ``raw_patients_carried``, with ``_identifiers``: the site's
    own identifier columns (the rules file's ``[identifiers]``, lower-case names) as one map of
    name to text, a column no file has giving NULL. The staging SQL reads this view, so the
    identifiers are carried whoever presented ``raw_patients`` (the readers, the tests)."""
    present = set(_columns(con, "raw_patients"))
    values = [f"{ident(n)}::VARCHAR" if n in present else "NULL::VARCHAR" for n in names]
    carried = (
        f"map([{', '.join(literal(n) for n in names)}]::VARCHAR[], [{', '.join(values)}]::VARCHAR[])"
        if names
        else "NULL::MAP(VARCHAR, VARCHAR)"
    )
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW raw_patients_carried AS "
        f"SELECT *, {carried} AS _identifiers FROM raw_patients"
    )
