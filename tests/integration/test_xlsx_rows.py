"""worksheet rows built a column at a time (pipeline/publish/sheet_rows.py) are the XML that
xlsxwriter writes for the same cells, hostile text included: the workbook is the same file,
member for member, whichever way its rows were written."""

from __future__ import annotations

import errno
import zipfile
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from openpyxl import load_workbook

from pipeline.demo import generate_population
from pipeline.errors import OutputError
from pipeline.publish import outputs, render, sheet_rows
from pipeline.publish.outputs import ABOUT_SHEET, OUTPUT_FILES, Stamp
from pipeline.runner import RunConfig, run_screening

STAMP = Stamp("guidance@test", "run-1", date(2026, 11, 24))
HOSTILE = [
    "P001",
    "=1+2",
    "+cmd|' /C calc'!A0",
    "-5",
    "@SUM(A1)",
    "https://example.org/x",
    "mailto:a@example.org",
    "123",
    "1e5",
    " leading",
    "trailing ",
    "\ttab first",
    "two\nlines",
    "\u00a0no-break first",
    "ideographic\u3000",
    "control\x01char\x1f",
    "_x0041_ looks escaped",
    "non-character \ufffe\uffff",
    "a & b < c > d \" e ' f",
    "",
    None,
    "µ 10^3/µL ü 😀",
    "😀" * 20_000,  # over Excel's limit in UTF-16 units, under it in characters
    "x" * (render.XLSX_CELL_LIMIT + 5),  # cut with a note
]


def _frame() -> pl.DataFrame:
    n = len(HOSTILE)
    days = [date(2026, 11, 1), None, date(1900, 1, 15), date(1900, 3, 1), date(1899, 12, 31)]
    return pl.DataFrame(
        {
            "patient_id": HOSTILE,
            "criteria": list(reversed(HOSTILE)),  # a wrapped column
            "latest_evidence_on": [days[i % len(days)] for i in range(n)],
            "age": [None if i % 7 == 3 else (i * 37 - 200) for i in range(n)],
            "big": [10**17 + i if i % 2 else -(10**16) - i for i in range(n)],
            "ratio": [None if i % 5 == 0 else i / 7 * 10 ** (i % 9 - 4) for i in range(n)],
            "flag": [None if i % 4 == 0 else i % 3 == 0 for i in range(n)],
            "nothing": pl.Series([None] * n, dtype=pl.Null),
            "as_of": [STAMP.as_of] * n,
        }
    )


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as book:
        # the creation time is the only part that differs between two writes
        return {
            i.filename: book.read(i) for i in book.infolist() if i.filename != "docProps/core.xml"
        }


def _both(tmp_path: Path, sheets: dict[str, pl.DataFrame], monkeypatch) -> tuple[dict, dict]:
    about = [("Run id", STAMP.run_id), ("As-of date", STAMP.as_of)]
    lists = [("a list", "A list", "everyone", 3)]
    built: list[int] = []
    rows_xml = sheet_rows.rows_xml

    def counted(*args, **kwargs):
        built.append(1)
        return rows_xml(*args, **kwargs)

    monkeypatch.setattr(sheet_rows, "rows_xml", counted)
    outputs._write_xlsx(sheets, tmp_path / "spliced.xlsx", STAMP, about, lists)
    assert built, "the rows were not built a column at a time"
    monkeypatch.setattr(sheet_rows, "fast", lambda frame: False)  # xlsxwriter, cell by cell
    outputs._write_xlsx(sheets, tmp_path / "cells.xlsx", STAMP, about, lists)
    return _members(tmp_path / "spliced.xlsx"), _members(tmp_path / "cells.xlsx")


def test_spliced_rows_are_xlsxwriters_rows(tmp_path: Path, monkeypatch) -> None:
    frame = _frame()
    empty_row = pl.DataFrame([[None] * frame.width], schema=frame.schema, orient="row")
    sheets = {
        "first": frame,
        "gaps": pl.concat([frame.head(3), empty_row, frame.slice(3), empty_row, empty_row]),
        "two rows": frame.head(2),
        "one column": frame.select("patient_id"),
    }
    spliced, cells = _both(tmp_path, sheets, monkeypatch)
    assert list(spliced) == list(cells)
    for name in cells:
        assert spliced[name] == cells[name], name


def test_continuation_sheets_are_spliced_alike(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(outputs, "SHEET_ROWS", 4)
    monkeypatch.setattr(sheet_rows, "CHUNK_ROWS", 3)  # rows built in several chunks
    frame = pl.concat([_frame()] * 2)
    spliced, cells = _both(tmp_path, {"worklist": frame}, monkeypatch)
    assert spliced == cells


def test_cells_read_back_as_the_text_numbers_and_dates_they_are(tmp_path: Path) -> None:
    frame = _frame().with_columns(
        pl.Series("patient_id", ["<r><t>first</t></r>", *HOSTILE[:-3], "<r><t>x</t></r>", "b"])
    )
    outputs._write_xlsx({"first": frame}, tmp_path / "w.xlsx", STAMP, [], [])
    book = load_workbook(tmp_path / "w.xlsx")
    sheet = book["first"]
    assert book.sheetnames == ["first", ABOUT_SHEET]
    assert sheet.freeze_panes == "A2" and sheet.auto_filter.ref == f"A1:I{frame.height + 1}"
    header, *rows = sheet.iter_rows()
    assert [c.value for c in header] == frame.columns
    assert len(rows) == frame.height
    for row, expected in zip(rows, frame.iter_rows(named=True), strict=True):
        by_name = dict(zip(frame.columns, row, strict=True))
        for name, cell in by_name.items():
            assert cell.data_type != "f", (name, cell.coordinate)
        text = by_name["patient_id"]
        want = expected["patient_id"]
        if want in (None, ""):
            assert text.value is None
        elif len(want) <= render.XLSX_CELL_LIMIT // 2:
            # text stays text; '<r>...</r>', which xlsxwriter would write as rich-text XML,
            # gets the neutralising apostrophe in every row, the first (xlsxwriter's) too;
            # a control character reads back as its _xHHHH_ escape (openpyxl keeps it)
            if want.startswith("<r>") and want.endswith("</r>"):
                want = "'" + want
            assert text.data_type == "s", want
            assert text.value in (want, sheet_rows._escape_control(want)), want
        day = by_name["latest_evidence_on"]
        if expected["latest_evidence_on"] is None:
            assert day.value is None
        elif expected["latest_evidence_on"] < date(1900, 3, 1):
            assert day.number_format == "yyyy-mm-dd"  # Excel's first days: read back as times
        else:
            assert day.is_date and day.number_format == "yyyy-mm-dd"
            assert day.value == datetime.combine(
                expected["latest_evidence_on"], datetime.min.time()
            )
        assert by_name["age"].value == expected["age"]
        assert by_name["big"].value == pytest.approx(expected["big"], rel=1e-15)


def test_a_float_that_is_not_a_number_fails_the_workbook(tmp_path: Path) -> None:
    frame = pl.DataFrame({"patient_id": ["a", "b", "c"], "x": [1.0, float("nan"), 2.0]})
    with pytest.raises(ValueError, match="NaN or infinity"):
        outputs._write_xlsx({"first": frame}, tmp_path / "w.xlsx", STAMP, [], [])


def test_columns_of_other_types_are_written_cell_by_cell(tmp_path: Path) -> None:
    frame = pl.DataFrame({"patient_id": ["a", "b"], "at": [datetime(2026, 1, 2, 3, 4), None]})
    assert not sheet_rows.fast(frame)
    outputs._write_xlsx({"first": frame}, tmp_path / "w.xlsx", STAMP, [], [])
    rows = list(load_workbook(tmp_path / "w.xlsx")["first"].iter_rows(values_only=True))
    # as before: a datetime column has no date format, so its cells read back as serials
    assert rows[0] == ("patient_id", "at") and rows[2] == ("b", None)
    assert rows[1][0] == "a" and rows[1][1] == pytest.approx(46024 + (3 * 60 + 4) / 1440)


def test_a_disk_full_while_the_rows_go_in_fails_the_run_and_keeps_the_outputs(
    tmp_path: Path, monkeypatch
) -> None:
    generate_population(tmp_path / "extracts", n_patients=340, truth_dir=tmp_path / "truth")
    out, db = tmp_path / "out", tmp_path / "db.duckdb"
    run_screening(RunConfig(tmp_path / "extracts", out, STAMP.as_of, db))
    before = {name: (out / name).read_bytes() for name in OUTPUT_FILES}
    put_in: list[int] = []

    def full_disk(*args, **kwargs):
        put_in.append(1)
        yield ""
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sheet_rows, "rows_xml", full_disk)
    with pytest.raises(OutputError, match="no space left on the disk.*kept as they were"):
        run_screening(RunConfig(tmp_path / "extracts", out, STAMP.as_of + timedelta(days=1), db))
    assert put_in, "no sheet was spliced"
    assert {name: (out / name).read_bytes() for name in OUTPUT_FILES} == before
    assert not [p for p in out.iterdir() if p.name.startswith(".b12screen-building")]
