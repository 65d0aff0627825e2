"""A worksheet's data rows as SpreadsheetML, built a column at a time in polars.

xlsxwriter writes a cell in about 15 microseconds of Python, which made ``worklist.xlsx`` the
largest output of a run (docs/benchmarks.md). The workbook is still made by xlsxwriter (its
header rows, first data rows, column formats, panes, filters, properties and the ``about this
run`` sheet); :func:`splice` then adds the remaining rows of each data sheet to the file, as
the XML that xlsxwriter's constant-memory mode writes for them, cell for cell:

* text as an inline string (``t="inlineStr"``), never a formula, a link or a number, escaped
  as xlsxwriter escapes it (``& < >``, control characters as ``_xHHHH_``, ``xml:space`` where
  it has leading or trailing white space), within Excel's length in UTF-16 units (one
  difference: xlsxwriter writes a text that starts with ``<r>`` and ends with ``</r>`` as
  rich-text markup, unescaped; here it is escaped like any text);
* integers and floats as numbers (``%.16G``), booleans as booleans;
* dates as numbers in Excel's 1900 date system with the date format's style;
* a null or empty text as no cell, a row without a cell as no row; a column's format on every cell of it.

``tests/integration/test_xlsx_rows.py`` checks that the sheets are the same XML as
xlsxwriter's own, hostile text included. A frame with a column of another type (datetimes,
lists ...) is not spliced: :func:`fast` says so and the caller writes it cell by cell.
"""

from __future__ import annotations

import re
import shutil
import zipfile
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import polars as pl

from pipeline.publish import render

CHUNK_ROWS = 20_000  # rows of XML built at once (a 1M-row sheet is ~1 GB of text)
# zlib's level for the sheets put in: 1 compresses the bench's 57 MB sheet in 0.24 CPU-s to
# 6.0 MB, the default 6 (xlsxwriter's) in 0.72 s to 4.6 MB; the XML inside is the same.
DEFLATE_LEVEL = 1
_EPOCH = date(1899, 12, 31)  # day 0 of Excel's 1900 date system (which has a 29 Feb 1900)
# Python's \s (what xlsxwriter's leading/trailing white-space test uses), as a character class
_SPACE = "[" + "".join(f"\\x{{{c:X}}}" for c in range(0x110000) if chr(c).isspace()) + "]"
_PRESERVE = f"^{_SPACE}|{_SPACE}$"
_CONTROL = r"[\x00-\x08\x0B-\x1F\x{FFFE}\x{FFFF}]|_x[0-9a-fA-F]{4}_"
_ESCAPED_ESCAPE = re.compile("(_x[0-9a-fA-F]{4}_)")
_CONTROL_CHAR = re.compile(r"([\x00-\x08\x0b-\x1f])")
_BIG_INT = 10**16  # from here %.16G writes an exponent, which polars' cast does not


def fast(frame: pl.DataFrame) -> bool:
    """Every column is of a type this module writes (text, numbers, booleans, dates)."""
    return all(_kind(dtype) is not None for dtype in frame.dtypes)


def _kind(dtype: pl.DataType) -> str | None:
    if dtype == pl.String:
        return "text"
    if dtype.is_integer():
        return "int"
    if dtype.is_float():
        return "float"
    if dtype == pl.Boolean:
        return "bool"
    if dtype == pl.Date:
        return "date"
    if dtype == pl.Null:
        return "null"
    return None


def column_letters(col: int) -> str:
    letters = ""
    col += 1
    while col:
        col, rest = divmod(col - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def _escape_control(text: str) -> str:
    """xlsxwriter's escape of control characters (and of text that looks like one)."""
    text = _ESCAPED_ESCAPE.sub(r"_x005F\1", text)
    text = _CONTROL_CHAR.sub(lambda m: f"_x{ord(m.group(1)):04X}_", text)
    return text.replace("\ufffe", "_xFFFE_").replace("\uffff", "_xFFFF_")


def _utf16_cut(text: str, limit: int = render.XLSX_CELL_LIMIT) -> str:
    """Text within ``limit`` UTF-16 units, a character above U+FFFF never split (xlsxwriter)."""
    length = 0
    for index, char in enumerate(text):
        length += 2 if ord(char) > 0xFFFF else 1
        if length > limit:
            return text[:index]
    return text


def _patched(series: pl.Series, mask: pl.Series, fix: Callable[[object], str]) -> pl.Series:
    """``series`` with ``fix`` applied, in Python, to the few cells ``mask`` picks."""
    if not mask.any():
        return series
    where = mask.arg_true()
    return series.cast(pl.String).scatter(where, [fix(v) for v in series.gather(where).to_list()])


def _text_cells(series: pl.Series) -> pl.Series:
    """Each cell's text as xlsxwriter writes it inside ``<t>``, with its ``<t>`` attribute."""
    series = _patched(series, series.str.len_chars() > render.XLSX_CELL_LIMIT // 2, _utf16_cut)
    series = _patched(series, series.str.contains(_CONTROL), _escape_control)
    preserve = (
        pl.when(pl.lit(series).str.contains(_PRESERVE))
        .then(pl.lit(' xml:space="preserve">'))
        .otherwise(pl.lit(">"))
    )
    escaped = (
        pl.lit(series)
        .str.replace_all("&", "&amp;", literal=True)
        .str.replace_all("<", "&lt;", literal=True)
        .str.replace_all(">", "&gt;", literal=True)
    )
    return pl.select(pl.concat_str(preserve, escaped)).to_series()


def _number_text(series: pl.Series, kind: str) -> pl.Series:
    """The ``<v>`` of a number cell: Python's ``%.16G``, as xlsxwriter formats it."""
    if kind == "int":
        big = series.abs() >= _BIG_INT
        return _patched(series.cast(pl.String), big.fill_null(False), lambda v: f"{int(v):.16G}")

    def formatted(value: object) -> str | None:
        if value is None:
            return None
        if value != value or value in (float("inf"), float("-inf")):  # noqa: PLR0124 - NaN
            raise ValueError("a workbook cell cannot hold NaN or infinity")
        return f"{value:.16G}"

    return pl.Series([formatted(v) for v in series.to_list()], dtype=pl.String)


def _cells(frame: pl.DataFrame, styles: Mapping[int, int]) -> list[pl.Expr]:
    """One expression per column: the ``<c>`` element of each cell, null where it has none.
    ``styles`` maps a column to the style index (xf) its cells carry."""
    cells = []
    row = pl.col("_row")
    for col, (name, dtype) in enumerate(frame.schema.items()):
        kind = _kind(dtype)
        series = frame.get_column(name)
        if kind == "text":  # xlsxwriter writes no cell for "" (a blank without a format)
            series = pl.select(pl.when(pl.lit(series) != "").then(pl.lit(series))).to_series()
        if kind == "null" or series.null_count() == frame.height:
            continue
        style = f' s="{styles[col]}"' if col in styles else ""
        head = pl.lit(f'<c r="{column_letters(col)}'), row, pl.lit(f'"{style}')
        if kind == "text":
            body = (
                pl.lit(' t="inlineStr"><is><t'),
                pl.lit(_text_cells(series)),
                pl.lit("</t></is></c>"),
            )
        elif kind == "bool":
            value = pl.when(pl.lit(series)).then(pl.lit("1")).otherwise(pl.lit("0"))
            body = (pl.lit(' t="b"><v>'), value, pl.lit("</v></c>"))
        elif kind == "date":
            days = (pl.lit(series) - pl.lit(_EPOCH)).dt.total_days()
            serial = pl.when(days > 59).then(days + 1).otherwise(days).cast(pl.String)
            body = (pl.lit("><v>"), serial, pl.lit("</v></c>"))
        else:
            body = (pl.lit("><v>"), pl.lit(_number_text(series, kind)), pl.lit("</v></c>"))
        cell = pl.concat_str(*head, *body)
        cells.append(pl.when(pl.lit(series).is_not_null()).then(cell).alias(f"_c{col}"))
    return cells


def rows_xml(frame: pl.DataFrame, styles: Mapping[int, int], first_row: int) -> Iterator[str]:
    """``<row>`` elements for ``frame``, its first row at worksheet row ``first_row`` (0-based),
    in chunks of text; rows without a cell are left out, as xlsxwriter leaves them out."""
    for start in range(0, frame.height, CHUNK_ROWS):
        part = frame.slice(start, CHUNK_ROWS)
        number = pl.int_range(
            first_row + start + 1, first_row + start + 1 + part.height, eager=True
        )
        cells = pl.DataFrame({"_row": number.cast(pl.String)}).with_columns(_cells(part, styles))
        parts = [c for c in cells.columns if c != "_row"]
        if not parts:
            continue
        xml = cells.select(
            pl.when(pl.any_horizontal(pl.col(parts).is_not_null()))
            .then(
                pl.concat_str(
                    pl.lit('<row r="'),
                    pl.col("_row"),
                    pl.lit('">'),
                    pl.concat_str(pl.col(parts), ignore_nulls=True),
                    pl.lit("</row>"),
                )
            )
            .alias("xml")
        ).get_column("xml")
        yield "".join(xml.drop_nulls().to_list())


def last_row(frame: pl.DataFrame) -> int:
    """The 0-based index of ``frame``'s last row with a cell, -1 if none has one."""
    if frame.width == 0 or frame.height == 0:
        return -1
    has_cell = [
        (pl.col(name) != "") if dtype == pl.String else pl.col(name).is_not_null()
        for name, dtype in frame.schema.items()
    ]
    some = frame.select(pl.any_horizontal(has_cell).fill_null(False).alias("x")).get_column("x")
    hits = some.arg_true()
    return int(hits[-1]) if hits.len() else -1


def dimension(width: int, last: int) -> str:
    """The ``<dimension>`` range of a sheet with a header of ``width`` columns and data to
    worksheet row ``last`` (0-based), as xlsxwriter computes it."""
    if width == 0:
        return "A1"
    end = f"{column_letters(width - 1)}{last + 1}"
    return "A1" if end == "A1" else f"A1:{end}"


def splice(path: Path, sheets: Mapping[str, tuple[Iterator[str], str]]) -> None:
    """Rewrite the workbook at ``path``: in each member named in ``sheets`` (a worksheet's XML),
    the given rows go at the end of ``<sheetData>`` and its ``<dimension>`` becomes the given
    range (compressed at :data:`DEFLATE_LEVEL`). Other members are copied as they are."""
    path = Path(path)
    built = path.with_name(path.name + ".rows")
    with (
        zipfile.ZipFile(path) as source,
        zipfile.ZipFile(built, "w", zipfile.ZIP_DEFLATED, compresslevel=DEFLATE_LEVEL) as out,
    ):
        for info in source.infolist():
            data = source.read(info)
            if info.filename not in sheets:
                out.writestr(info, data)
                continue
            rows, ref = sheets[info.filename]
            text = data.decode("utf-8")
            # the last one: no text of ours follows it (a first row's rich text could hold one)
            head, _, tail = text.rpartition("</sheetData>")
            head = re.sub(r'<dimension ref="[^"]*"/>', f'<dimension ref="{ref}"/>', head, count=1)
            with out.open(info.filename, "w") as fh:
                fh.write(head.encode("utf-8"))
                for chunk in _ahead(rows):
                    fh.write(chunk)
                fh.write(("</sheetData>" + tail).encode("utf-8"))
    shutil.move(built, path)


def _ahead(chunks: Iterator[str]) -> Iterator[bytes]:
    """``chunks`` encoded, each built in a second thread while the caller compresses the one
    before: polars builds the XML and zlib compresses it without holding the interpreter, so
    the two overlap (at 400k rows, 1.7 s of compression beside 3.1 s of building). One chunk
    is built ahead at most; an error in building is raised here, at its chunk."""
    done = object()

    def build() -> bytes | object:
        chunk = next(chunks, done)
        return done if chunk is done else chunk.encode("utf-8")

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="b12screen-sheet") as pool:
        pending = pool.submit(build)
        while (chunk := pending.result()) is not done:
            pending = pool.submit(build)
            yield chunk
