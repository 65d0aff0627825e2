"""Outputs of a run (the run folder of the b12screen specification): written into a hidden folder, then published at once.

worklist.csv / worklist.xlsx, flags.parquet, quarantine.csv, audit.html and run.json are all
built in ``OUT/.b12screen-building-<run id>/``; only when every one is written and the
database has committed is the folder published, in one atomic switch (pipeline/publish/switch.py).
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import timedelta
from pathlib import Path

import duckdb
import polars as pl

from pipeline import __version__
from pipeline.facts import Prepared, Read, Screened, Validated
from pipeline.publish import render
from pipeline.read.discover import sha256_of
from pipeline.reports import audit
from pipeline.resources import data_dir
from pipeline.rules import WorklistSpec
from pipeline.sqltext import ident, path_literal

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
REFERENCE_FILES = ("lab_units.csv", "lab_test_names.csv", "drug_codes.csv", "diagnosis_codes.csv")
FLAG_COLUMNS = (
    "patient_id, criterion, value, unit, observed_at, detail, source_file, row_number, "
    "feedback_action, is_suppressed"
)


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
            "patients_by_criterion": dict(screened.criterion_counts),
            "worklist": {p: int(worklist.get(p, 0)) for p in rules.priorities}
            | {"total": int(sum(worklist.values()))},
        },
        "outputs": list(OUTPUT_FILES),
    }


def write_all(con: duckdb.DuckDBPyConnection, prepared: Prepared, folder: Path) -> None:
    rules = prepared.rules
    con.execute(
        f"""COPY (SELECT {FLAG_COLUMNS}, ? AS rules_version, ? AS run_id, getvariable('run.as_of')::DATE AS as_of
                  FROM run_flags ORDER BY patient_id, criterion)
            TO {path_literal(folder / "flags.parquet")} (FORMAT parquet)""",
        [rules.version, prepared.run_id],
    )
    copy_csv(
        con,
        "SELECT source_file, row_number, kind, reason, raw_row FROM quarantine "
        "ORDER BY kind, source_file, row_number",
        folder / "quarantine.csv",
    )
    copy_csv(con, "SELECT * FROM run_resolved", folder / "resolved.csv")
    worklist = pl.from_arrow(con.sql("SELECT * FROM run_worklist").to_arrow_table())
    render.neutral_frame(worklist).write_csv(folder / "worklist.csv")
    sheets = {"worklist": worklist}
    for name, spec in rules.spec.worklists.items():
        mine = worklist.filter(pl.col("patient_id").is_in(_list_members(con, spec)))
        render.neutral_frame(mine).write_csv(folder / f"worklist_{name}.csv")
        sheets[name[:31]] = mine
    _write_xlsx(sheets, folder / "worklist.xlsx")
    as_of = prepared.as_of
    doc = audit.audit_document(
        con,
        as_of,
        as_of,
        run_id=prepared.run_id,
        trend_start=as_of - timedelta(days=rules.spec.report.trend_days),
    )
    audit.write_audit(doc, folder)


def copy_csv(con: duckdb.DuckDBPyConnection, query: str, path: Path) -> None:
    """COPY ``query`` to a CSV file at ``path``, its text cells neutralised (pipeline/publish/render.py)."""
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


def _write_xlsx(sheets: dict[str, pl.DataFrame], path: Path) -> None:
    """One sheet per list: the whole worklist first, then each audience's.

    Written row by row in xlsxwriter's constant-memory mode: a 300k-row worklist built as
    whole sheets in memory took 5.7 GiB and 73 s (docs/benchmarks.md).
    """
    import xlsxwriter

    widths = {"criteria": 40, "recommended_action": 60, "evidence": 60, "feedback": 40}
    with xlsxwriter.Workbook(path, {"constant_memory": True, **render.XLSX_OPTIONS}) as workbook:
        header = workbook.add_format({"bold": True, "bg_color": "#E8E8E8", "border": 1})
        wrap = workbook.add_format({"text_wrap": True, "valign": "top"})
        for name, frame in sheets.items():
            sheet = workbook.add_worksheet(name)
            for col, column in enumerate(frame.columns):
                wide = widths.get(column)
                sheet.set_column(col, col, wide or 14, wrap if wide else None)
            sheet.write_row(0, 0, frame.columns, header)
            for row, values in enumerate(frame.iter_rows(), start=1):
                sheet.write_row(row, 0, [render.xlsx_cell(v) for v in values])
            sheet.freeze_panes(1, 0)
            sheet.autofilter(0, 0, max(frame.height, 1), max(frame.width - 1, 0))


def write_run_json(record: dict, folder: Path) -> None:
    (folder / "run.json").write_text(
        json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8"
    )


def check_complete(staging: Path) -> None:
    """Every output is built (a bug otherwise): checked before the commit, so never half."""
    missing = [name for name in OUTPUT_FILES if not (staging / name).is_file()]
    if missing:
        raise RuntimeError(f"outputs not built: {missing}")


def move_into(staging: Path, out: Path) -> None:
    """Move every file and folder built in ``staging`` over its namesake in ``out``, then
    remove ``staging``. One rename each; a folder cannot replace a non-empty one, so the old
    one is moved aside first."""
    for path in sorted(staging.iterdir()):
        if path.is_file():
            os.replace(path, out / path.name)
    for path in sorted(p for p in staging.iterdir() if p.is_dir()):
        old = out / f".{path.name}.previous"
        shutil.rmtree(old, ignore_errors=True)
        if (out / path.name).exists():
            os.replace(out / path.name, old)
        os.replace(path, out / path.name)
        shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(staging, ignore_errors=True)


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
