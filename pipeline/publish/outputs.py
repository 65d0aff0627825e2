"""Outputs of a run (docs/outputs.md): written into a hidden folder, then published at once.

worklist.csv / worklist.xlsx, flags.parquet, quarantine.csv, audit.html and run.json are all
built in ``OUT/.b12screen-building-<run id>/``; only when every one is written and the
database has committed is the folder published, in one atomic switch (pipeline/publish/switch.py).

Every table the run writes ends with the same three columns, its :class:`Stamp`:
``rules_version``, ``run_id`` and ``as_of`` (a date). A copied or renamed file still says which
run, which date and which rules made it, and a CSV reader sees an ordinary header row (no
comment line before it) whose contract columns come first. The workbook carries the stamp on
every row of every sheet, in its document properties, and on a last sheet, ``about this run``.
Dates in the workbook are date cells, not text.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path

import duckdb
import polars as pl

from pipeline import __version__
from pipeline.facts import Prepared, Read, Screened, Validated
from pipeline.publish import render, sheet_rows
from pipeline.read.discover import sha256_of
from pipeline.reports import audit
from pipeline.resources import data_dir
from pipeline.rules import Identifiers, WorklistSpec
from pipeline.sqltext import ident, literal, path_literal

OUTPUT_FILES = (
    "worklist.csv",
    "worklist.xlsx",
    "flags.parquet",
    "quarantine.csv",
    "resolved.csv",
    "audit.html",
    "audit.json",
    "run.json",
)  # plus worklist_<name>.csv for each audience list of the rules file, and audit/<table>.csv
REFERENCE_FILES = (
    "lab_units.csv",
    "lab_test_names.csv",
    "drug_codes.csv",
    "diagnosis_codes.csv",
    "diagnosis_codes_snomed.csv",
)
FLAG_COLUMNS = (
    "patient_id, criterion, value, unit, observed_at, detail, source_file, row_number, "
    "feedback_action, is_suppressed"
)
# flags.parquet and quarantine.csv, as queries over the run's tables (parameters: rules
# version, run id); tests read the same queries in memory, without writing the files.
FLAGS_SQL = f"""SELECT {FLAG_COLUMNS}, ?::VARCHAR AS rules_version, ?::VARCHAR AS run_id,
    getvariable('run.as_of')::DATE AS as_of FROM run_flags ORDER BY patient_id, criterion"""
QUARANTINE_SQL = (
    "SELECT source_file, row_number, kind, reason, raw_row FROM quarantine "
    "ORDER BY kind, source_file, row_number"
)
ABOUT_SHEET = "about this run"  # the workbook's last sheet (a list of that name would clash)
DATE_FORMAT = "yyyy-mm-dd"
# Rows below the header a worksheet can hold (Excel's limit is 1,048,576 rows in all); a longer
# list goes on in continuation sheets ("screening (2)" ...), since a row past the limit would
# be dropped without a word.
SHEET_ROWS = 1_048_575


@dataclass(frozen=True)
class Stamp:
    """The last columns of every table the run writes: which rules, which run, which date."""

    rules_version: str
    run_id: str
    as_of: date

    COLUMNS = ("rules_version", "run_id", "as_of")

    def sql(self) -> str:
        """The stamp as select-list items (text as literals: a site's rules version is data)."""
        return (
            f"{literal(self.rules_version)} AS rules_version, {literal(self.run_id)} AS run_id, "
            f"DATE {literal(self.as_of.isoformat())} AS as_of"
        )

    def frame(self, frame: pl.DataFrame) -> pl.DataFrame:
        return frame.with_columns(
            pl.lit(self.rules_version, pl.String).alias("rules_version"),
            pl.lit(self.run_id, pl.String).alias("run_id"),
            pl.lit(self.as_of, pl.Date).alias("as_of"),
        )

    def row(self) -> dict[str, str]:
        return {
            "rules_version": self.rules_version,
            "run_id": self.run_id,
            "as_of": self.as_of.isoformat(),
        }


def build_record(
    con: duckdb.DuckDBPyConnection,
    prepared: Prepared,
    read: Read,
    validated: Validated,
    screened: Screened,
) -> dict:
    """The provenance record (run.json and the runs table)."""
    quarantined_by_file = dict(
        con.execute("SELECT source_file, count(*) FROM quarantine GROUP BY source_file").fetchall()
    )
    inputs = [
        {
            "kind": item.file.kind,
            "file": item.file.name,
            "format": item.file.fmt,
            "size_bytes": item.file.size,
            "sha256": item.file.sha256,
            "rows_read": item.rows_read,
            "rows_quarantined": int(quarantined_by_file.get(item.file.name, 0)),
        }
        for item in read.loaded
    ]
    worklist = dict(
        con.execute("SELECT priority, count(*) FROM run_worklist GROUP BY 1").fetchall()
    )
    rules = prepared.rules
    return {
        "run_id": prepared.run_id,
        "as_of": prepared.as_of.isoformat(),
        "status": "succeeded",
        "started_at": prepared.started_at.isoformat(),
        "code_version": __version__,
        "rules": {
            "name": rules.spec.ruleset.name,
            "version": rules.spec.ruleset.version,
            "sha256": rules.sha256,
            "file": rules.path.name,
        },
        "reference_data": [
            {"file": name, "sha256": sha256_of(data_dir() / name)} for name in REFERENCE_FILES
        ],
        "extracts_folder": str(prepared.extracts_folder),
        "inputs": inputs,
        "ignored_files": list(prepared.extracts.ignored),
        "ignored_reasons": dict(prepared.extracts.ignored_reasons),
        "skipped_files": [
            {"kind": f.kind, "file": f.name, "sha256": f.sha256, "reason": "already ingested"}
            for f in prepared.skipped
        ],
        "counts": {
            "rows_read": {
                k: sum(i["rows_read"] for i in inputs if i["kind"] == k)
                for k in validated.validation
            },
            "rows_quarantined": dict(
                con.execute(
                    "SELECT kind, count(*) FROM quarantine GROUP BY kind ORDER BY kind"
                ).fetchall()
            ),
            "merged": {kind: m.as_dict() for kind, m in validated.merged.items()},
            "patients": con.execute("SELECT count(*) FROM patients").fetchone()[0],
            "patients_not_screened": dict(
                zip(
                    ("under_minimum_age", "deceased"),
                    con.execute(
                        "SELECT count(*) FILTER (WHERE below_minimum_age(birth_date)), "
                        "count(*) FILTER (WHERE deceased_by_as_of(death_date)) FROM patients"
                    ).fetchone(),
                    strict=True,
                )
            ),
            "patients_by_criterion": dict(screened.criterion_counts),
            "worklist": {p: int(worklist.get(p, 0)) for p in rules.priorities}
            | {"total": int(sum(worklist.values()))},
        },
        "outputs": list(OUTPUT_FILES),
    }


def worklist_frame(
    con: duckdb.DuckDBPyConnection, stamp: Stamp, identifiers: Identifiers | None = None
) -> pl.DataFrame:
    """The worklist as worklist.csv holds it (before its cells are neutralised), with the
    site's own identifier columns (the rules file's ``[identifiers]``) after patient_id.

    The identifiers are joined here, at the last step, so that nothing else the run writes
    (flags, history, reports) ever holds them."""
    worklist = pl.from_arrow(con.sql("SELECT * FROM run_worklist").to_arrow_table())
    if identifiers and identifiers.columns:
        names = [c.strip() for c in identifiers.columns]
        picks = ", ".join(
            f"identifiers[{literal(key)}] AS {ident(name)}"
            for key, name in zip(identifiers.keys, names, strict=True)
        )
        carried = pl.from_arrow(
            con.sql(
                f"SELECT patient_id, {picks} FROM patients "
                "WHERE patient_id IN (SELECT patient_id FROM run_worklist)"
            ).to_arrow_table()
        )
        worklist = worklist.join(
            carried, on="patient_id", how="left", maintain_order="left"
        ).select("patient_id", *names, pl.exclude("patient_id", *names))
    return stamp.frame(worklist)


def write_all(con: duckdb.DuckDBPyConnection, prepared: Prepared, folder: Path) -> None:
    rules = prepared.rules
    stamp = Stamp(rules.version, prepared.run_id, prepared.as_of)
    con.execute(
        f"COPY ({FLAGS_SQL}) TO {path_literal(folder / 'flags.parquet')} (FORMAT parquet)",
        [rules.version, prepared.run_id],
    )
    copy_csv(con, QUARANTINE_SQL, folder / "quarantine.csv", stamp)
    copy_csv(con, "SELECT * FROM run_resolved", folder / "resolved.csv", stamp)
    as_of = prepared.as_of
    doc = audit.audit_document(
        con,
        as_of,
        as_of,
        run_id=prepared.run_id,
        trend_start=as_of - timedelta(days=rules.spec.report.trend_days),
    )
    # The audit's charts (matplotlib, about a second of Python) are drawn in a second thread
    # while the worklist files are written, which is mostly polars, zlib and DuckDB, none of
    # which holds the interpreter.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="b12screen-charts") as pool:
        charts = pool.submit(audit.audit_charts, doc)
        _write_worklists(con, prepared, stamp, folder)
        svg = charts.result()
    audit.write_audit(doc, folder, stamp=stamp.row(), svg=svg)


def _write_worklists(
    con: duckdb.DuckDBPyConnection, prepared: Prepared, stamp: Stamp, folder: Path
) -> None:
    """worklist.csv, worklist_<list>.csv for each audience list, and worklist.xlsx."""
    rules = prepared.rules
    worklist = worklist_frame(con, stamp, rules.spec.identifiers)
    render.neutral_frame(worklist).write_csv(folder / "worklist.csv")
    sheets: dict[str, pl.DataFrame] = {}
    lists = []
    listed: set[str] = set()
    for name, spec in rules.spec.worklists.items():
        members = _list_members(con, spec)
        listed.update(members)
        mine = worklist.filter(pl.col("patient_id").is_in(members))
        render.neutral_frame(mine).write_csv(folder / f"worklist_{name}.csv")
        sheets[name[:31]] = mine
        lists.append((name[:31], spec.title, spec.audience, mine.height))
    # The workbook is the worklist by audience. The whole list comes first only when the lists
    # leave someone out (or there are none): a second copy of every row would double the
    # cost of the largest output of a run, for a list that worklist.csv holds anyway.
    whole = not sheets or not worklist.get_column("patient_id").is_in(list(listed)).all()
    if whole:
        sheets = {"worklist": worklist, **sheets}
    place = "worklist" if whole else "see worklist.csv"
    lists.insert(0, (place, "The whole worklist", "everyone on a list", worklist.height))
    about = [
        ("Run id", stamp.run_id),
        ("As-of date", stamp.as_of),
        ("Rules version", stamp.rules_version),
        ("Rules file SHA-256", rules.sha256),
        ("Code version", __version__),
        ("Patients on the worklist", worklist.height),
    ]
    _write_xlsx(sheets, folder / "worklist.xlsx", stamp, about, lists)


def copy_csv(
    con: duckdb.DuckDBPyConnection, query: str, path: Path, stamp: Stamp | None = None
) -> None:
    """COPY ``query`` to a CSV file at ``path``, its text cells neutralised
    (pipeline/publish/render.py), the ``stamp`` columns last."""
    if stamp is not None:
        query = f"SELECT *, {stamp.sql()} FROM ({query})"
    described = con.execute(f"DESCRIBE {query}").fetchall()
    columns = ", ".join(
        (render.neutral_sql(ident(name)) + f" AS {ident(name)}")
        if dtype == "VARCHAR"
        else ident(name)
        for name, dtype, *_ in described
    )
    con.execute(
        f"COPY (SELECT {columns} FROM ({query})) TO {path_literal(path)} (FORMAT csv, HEADER true)"
    )


def _continued(sheets: dict[str, pl.DataFrame]) -> Iterator[tuple[str, pl.DataFrame]]:
    """Each sheet, cut into parts of at most SHEET_ROWS rows; parts after the first are named
    ``<name> (2)``, ``<name> (3)`` ... (within Excel's 31 characters)."""
    for name, frame in sheets.items():
        parts = max(1, -(-frame.height // SHEET_ROWS))
        for k in range(parts):
            part = frame.slice(k * SHEET_ROWS, SHEET_ROWS)
            yield (name if k == 0 else f"{name[: 31 - len(f' ({k + 1})')]} ({k + 1})"), part


def _write_xlsx(
    sheets: dict[str, pl.DataFrame],
    path: Path,
    stamp: Stamp,
    about: list[tuple[str, object]],
    lists: list[tuple[str, str, str, int]],
) -> None:
    """One sheet per list: the whole worklist first, then each audience's, then
    ``about this run`` (the stamp, the lists' titles and audiences). Date columns are date
    cells; the stamp is also in the document properties.

    xlsxwriter (constant-memory mode: a 300k-row worklist built as whole sheets in memory took
    5.7 GiB and 73 s) writes the workbook with each sheet's header and first row; the other
    rows, built a column at a time as the same XML (pipeline/publish/sheet_rows.py), are then
    put into the file: writing cell by cell in Python took 16 to 21 s for the 10M-row bench's
    worklist (docs/benchmarks.md).
    """
    import xlsxwriter

    widths = {"criteria": 40, "recommended_action": 60, "evidence": 60, "feedback": 40}
    spliced: dict[str, tuple[Iterator[str], str]] = {}
    with xlsxwriter.Workbook(path, {"constant_memory": True, **render.XLSX_OPTIONS}) as workbook:
        workbook.set_properties(
            {
                "title": "b12screen worklist",
                "subject": f"run {stamp.run_id}, as of {stamp.as_of.isoformat()}",
                "keywords": f"{stamp.run_id}, {stamp.as_of.isoformat()}, {stamp.rules_version}",
                "comments": "Written by b12screen; the last sheet says which run made it.",
            }
        )
        workbook.set_custom_property("rules_version", stamp.rules_version)
        workbook.set_custom_property("run_id", stamp.run_id)
        workbook.set_custom_property("as_of", datetime.combine(stamp.as_of, time()))
        header = workbook.add_format({"bold": True, "bg_color": "#E8E8E8", "border": 1})
        wrap = workbook.add_format({"text_wrap": True, "valign": "top"})
        day = workbook.add_format({"num_format": DATE_FORMAT, "valign": "top"})
        for name, frame in _continued(sheets):
            sheet = workbook.add_worksheet(name)
            frame = render.xlsx_frame(frame)
            formats = [day if dtype == pl.Date else None for dtype in frame.dtypes]
            columns = []
            for col, column in enumerate(frame.columns):
                wide = widths.get(column)
                columns.append(wrap if wide else None)
                sheet.set_column(col, col, wide or 14, wrap if wide else None)
            sheet.write_row(0, 0, frame.columns, header)
            fast = sheet_rows.fast(frame) and frame.height > 1
            _write_cells(sheet, frame.head(1) if fast else frame, formats)
            if fast:
                # the style of each cell of the other rows, taken in the order xlsxwriter
                # numbers styles as it writes the first row (so styles.xml is the same)
                first = frame.row(0)
                for col, value in enumerate(first):
                    if value is not None and (formats[col] or columns[col]) is not None:
                        (formats[col] or columns[col])._get_xf_index()
                styles = {
                    col: (formats[col] or columns[col])._get_xf_index()
                    for col in range(frame.width)
                    if (formats[col] or columns[col]) is not None
                }
                rest = frame.slice(1)
                # the last worksheet row with a cell (0-based): the header's, the first
                # row's, or one of the rest's
                last = sheet_rows.last_row(rest)
                last = 2 + last if last >= 0 else int(sheet_rows.last_row(frame.head(1)) >= 0)
                member = f"xl/worksheets/sheet{sheet.index + 1}.xml"
                spliced[member] = (
                    sheet_rows.rows_xml(rest, styles, first_row=2),
                    sheet_rows.dimension(frame.width, last),
                )
            sheet.freeze_panes(1, 0)
            sheet.autofilter(0, 0, max(frame.height, 1), max(frame.width - 1, 0))
        sheet = workbook.add_worksheet(ABOUT_SHEET)
        sheet.set_column(0, 0, 26)
        sheet.set_column(1, 1, 66)
        sheet.set_column(2, 3, 30)
        for row, (label, value) in enumerate(about):
            sheet.write(row, 0, label, header)
            if isinstance(value, date):
                sheet.write_datetime(row, 1, value, day)
            else:
                sheet.write(row, 1, render.xlsx_cell(value))
        first = len(about) + 1
        sheet.write_row(first, 0, ["Sheet", "List", "For", "Patients"], header)
        for row, values in enumerate(lists, start=first + 1):
            sheet.write_row(row, 0, [render.xlsx_cell(v) for v in values])
    if spliced:
        sheet_rows.splice(path, spliced)


def _write_cells(sheet, frame: pl.DataFrame, formats: list) -> None:
    """``frame``'s rows from worksheet row 1 on, cell by cell (xlsxwriter); its text cells
    are already the workbook's (render.xlsx_frame)."""
    for row, values in enumerate(frame.iter_rows(), start=1):
        for col, value in enumerate(values):
            if formats[col] is not None and value is not None:
                sheet.write_datetime(row, col, value, formats[col])
            else:
                sheet.write(row, col, value)


def write_run_json(record: dict, folder: Path) -> None:
    (folder / "run.json").write_text(
        json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8"
    )


def check_complete(staging: Path) -> None:
    """Every output is built (a bug otherwise): checked before the commit, so never half."""
    missing = [name for name in OUTPUT_FILES if not (staging / name).is_file()]
    if missing:
        raise RuntimeError(f"outputs not built: {missing}")


_LIST_MEMBERS = """
SELECT DISTINCT patient_id FROM run_flags
WHERE NOT is_suppressed
    AND (list_contains($include, criterion) OR list_contains($include, criterion || ':' || note_key))
    AND NOT coalesce(
        list_contains($exclude, criterion) OR list_contains($exclude, criterion || ':' || note_key),
        false
    )
"""


def _list_members(con: duckdb.DuckDBPyConnection, spec: WorklistSpec) -> list[str]:
    """The patients of one audience's list: an unsuppressed flag matches one of its items (a
    criterion, or ``criterion:note_key``) and none of its ``exclude`` items."""
    rows = con.execute(
        _LIST_MEMBERS, {"include": list(spec.criteria), "exclude": list(spec.exclude)}
    ).fetchall()
    return [r[0] for r in rows]
