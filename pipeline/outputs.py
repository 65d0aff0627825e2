"""Outputs of a run (contract §3): written into a hidden folder, then moved into place.

worklist.csv / worklist.xlsx, flags.parquet, quarantine.csv, audit.html and run.json are all
built in ``OUT/.b12screen-building-<run id>/``; only when every one is written and the
database has committed are they moved over the previous ones (one rename each, same folder).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl
from jinja2 import Environment, PackageLoader, select_autoescape

from pipeline import __version__
from pipeline.extracts import sha256_of
from pipeline.resources import data_dir, read_sql
from pipeline.rules import describe_criterion

if TYPE_CHECKING:
    from pipeline.runner import ScreeningRun

OUTPUT_FILES = (
    "worklist.csv",
    "worklist.xlsx",
    "flags.parquet",
    "quarantine.csv",
    "resolved.csv",
    "audit.html",
    "run.json",
)  # plus worklist_<name>.csv for each audience list of the rules file
REFERENCE_FILES = ("lab_units.csv", "lab_test_names.csv", "drug_codes.csv", "diagnosis_codes.csv")
FLAG_COLUMNS = (
    "patient_id, criterion, value, unit, observed_at, detail, source_file, row_number, "
    "feedback_action, is_suppressed"
)


def worklist_sql() -> str:
    return read_sql("marts/worklist.sql")


def _sql_path(path: Path) -> str:
    return "'" + path.as_posix().replace("'", "''") + "'"


def _rows(con, sql: str, params: list | None = None) -> list[dict]:
    cur = con.execute(sql, params or [])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def build_record(run: ScreeningRun) -> dict:
    """The provenance record (run.json and the runs table)."""
    con = run.con
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
        for item in run.loaded
    ]
    worklist = dict(
        con.execute("SELECT priority, count(*) FROM run_worklist GROUP BY 1").fetchall()
    )
    rules = run.rules
    return {
        "run_id": run.run_id,
        "as_of": run.config.as_of.isoformat(),
        "status": "succeeded",
        "started_at": run.started_at.isoformat(),
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
        "extracts_folder": str(run.config.extracts),
        "inputs": inputs,
        "ignored_files": list(run.extracts.ignored),
        "skipped_files": [
            {"kind": f.kind, "file": f.name, "sha256": f.sha256, "reason": "already ingested"}
            for f in run.skipped
        ],
        "counts": {
            "rows_read": {
                k: sum(i["rows_read"] for i in inputs if i["kind"] == k) for k in run.validation
            },
            "rows_quarantined": dict(
                con.execute(
                    "SELECT kind, count(*) FROM quarantine GROUP BY kind ORDER BY kind"
                ).fetchall()
            ),
            "merged": {kind: m.as_dict() for kind, m in run.merged.items()},
            "patients": con.execute("SELECT count(*) FROM patients").fetchone()[0],
            "patients_by_criterion": run.criterion_counts,
            "worklist": {p: int(worklist.get(p, 0)) for p in ("urgent", "high", "routine")}
            | {"total": int(sum(worklist.values()))},
        },
        "outputs": list(OUTPUT_FILES),
    }


def _audit_context(run: ScreeningRun) -> dict:
    con, rules = run.con, run.rules
    catalogue = [
        {
            "id": cid,
            "role": c.role,
            "priority": c.priority or "",
            "rule": describe_criterion(rules, cid),
            "patients": run.criterion_counts.get(cid, 0),
            "sources": "; ".join(f"{k}: {p.source}" for k, p in c.params.items()),
        }
        for cid, c in rules.spec.criteria.items()
    ]
    return {
        "record": run.record,
        "catalogue": catalogue,
        "quarantine_reasons": _rows(
            con,
            "SELECT kind, source_file, reason, count(*) AS rows FROM quarantine "
            "GROUP BY ALL ORDER BY kind, source_file, rows DESC, reason",
        ),
        "analytes": _rows(
            con,
            """SELECT a.analyte, a.label, a.canonical_unit, a.lookback_days,
                      count(l._rid) AS results, count(DISTINCT l.patient_id) AS patients,
                      count(*) FILTER (WHERE l.coded_by = 'loinc') AS by_loinc,
                      count(*) FILTER (WHERE l.coded_by = 'test_name') AS by_name,
                      count(*) FILTER (WHERE l.censor IS NOT NULL) AS censored
               FROM rule_analytes a LEFT JOIN lab_results l ON l.analyte = a.analyte
               GROUP BY ALL ORDER BY results DESC, a.analyte""",
        ),
        "conversions": _rows(
            con,
            """SELECT analyte, coalesce(unit_key, '(none)') AS unit, factor_to_canonical AS factor,
                      count(*) AS results
               FROM lab_results WHERE analyte IS NOT NULL GROUP BY ALL ORDER BY analyte, results DESC""",
        ),
        "unmapped_tests": _rows(
            con,
            """SELECT coalesce(loinc, '') AS loinc, coalesce(test_name, '') AS test_name, count(*) AS results
               FROM lab_results WHERE analyte IS NULL GROUP BY ALL ORDER BY results DESC LIMIT 25""",
        ),
        "unmapped_total": con.execute(
            "SELECT count(*) FROM lab_results WHERE analyte IS NULL"
        ).fetchone()[0],
        "drug_groups": _rows(
            con,
            """SELECT drug_group, count(DISTINCT _rid) AS orders, count(DISTINCT patient_id) AS patients,
                      count(DISTINCT _rid) FILTER (WHERE matched_by LIKE '%name%') AS by_name,
                      count(DISTINCT _rid) FILTER (WHERE matched_by LIKE '%rxnorm%') AS by_rxnorm,
                      count(DISTINCT _rid) FILTER (WHERE matched_by LIKE '%atc%') AS by_atc
               FROM int_medication_groups GROUP BY drug_group ORDER BY orders DESC""",
        ),
        "unlisted_medications": _rows(
            con,
            """SELECT coalesce(text_key(medication), '(no name)') AS medication, count(*) AS orders
               FROM medications ANTI JOIN int_medication_groups USING (_rid)
               GROUP BY ALL ORDER BY orders DESC, medication LIMIT 25""",
        ),
        "unlisted_total": con.execute(
            "SELECT count(*) FROM medications ANTI JOIN int_medication_groups USING (_rid)"
        ).fetchone()[0],
        "conditions": _rows(
            con,
            "SELECT condition, count(*) AS patients FROM int_patient_conditions "
            "GROUP BY ALL ORDER BY patients DESC",
        ),
        "diagnosis_codes": _diagnosis_code_quality(con),
    }


def _diagnosis_code_quality(con) -> dict:
    """How many diagnosis rows carry a code that is not in the CDC ICD-10-CM tables."""
    import simple_icd_10_cm as icd  # imported here: loading its tables takes a second

    counts = con.execute("SELECT code_key, count(*) FROM diagnoses GROUP BY code_key").fetchall()
    invalid = [(code, n) for code, n in counts if code is None or not icd.is_valid_item(code)]
    return {
        "rows": sum(n for _, n in counts),
        "not_icd10cm": sum(n for _, n in invalid),
        "examples": sorted(invalid, key=lambda x: (-x[1], x[0] or ""))[:10],
    }


def write_audit(run: ScreeningRun, folder: Path) -> None:
    env = Environment(loader=PackageLoader("pipeline", "templates"), autoescape=select_autoescape())
    html = env.get_template("audit.html.j2").render(**_audit_context(run))
    (folder / "audit.html").write_text(html, encoding="utf-8")


def write_all(run: ScreeningRun, folder: Path) -> None:
    con = run.con
    con.execute(
        f"""COPY (SELECT {FLAG_COLUMNS}, ? AS rules_version, ? AS run_id, getvariable('run.as_of')::DATE AS as_of
                  FROM run_flags ORDER BY patient_id, criterion)
            TO {_sql_path(folder / "flags.parquet")} (FORMAT parquet)""",
        [run.rules.version, run.run_id],
    )
    con.execute(
        f"""COPY (SELECT source_file, row_number, kind, reason, raw_row FROM quarantine
                  ORDER BY kind, source_file, row_number)
            TO {_sql_path(folder / "quarantine.csv")} (FORMAT csv, HEADER true)"""
    )
    con.execute(
        f"COPY (SELECT * FROM run_resolved) TO {_sql_path(folder / 'resolved.csv')} (FORMAT csv, HEADER true)"
    )
    worklist = pl.from_arrow(con.sql("SELECT * FROM run_worklist").to_arrow_table())
    worklist.write_csv(folder / "worklist.csv")
    sheets = {"worklist": worklist}
    for name, spec in run.rules.spec.worklists.items():
        mine = worklist.filter(
            pl.col("criteria")
            .str.split(";")
            .list.eval(pl.element().is_in(spec.criteria))
            .list.any()
        )
        mine.write_csv(folder / f"worklist_{name}.csv")
        sheets[name[:31]] = mine
    _write_xlsx(sheets, folder / "worklist.xlsx")
    write_audit(run, folder)


def _write_xlsx(sheets: dict[str, pl.DataFrame], path: Path) -> None:
    """One sheet per list: the whole worklist first, then each audience's.

    Written row by row in xlsxwriter's constant-memory mode: a 300k-row worklist built as
    whole sheets in memory took 5.7 GiB and 73 s (docs/benchmarks.md).
    """
    import xlsxwriter

    widths = {"criteria": 40, "recommended_action": 60, "evidence": 60, "feedback": 40}
    with xlsxwriter.Workbook(path, {"constant_memory": True}) as workbook:
        header = workbook.add_format({"bold": True, "bg_color": "#E8E8E8", "border": 1})
        wrap = workbook.add_format({"text_wrap": True, "valign": "top"})
        for name, frame in sheets.items():
            sheet = workbook.add_worksheet(name)
            for col, column in enumerate(frame.columns):
                wide = widths.get(column)
                sheet.set_column(col, col, wide or 14, wrap if wide else None)
            sheet.write_row(0, 0, frame.columns, header)
            for row, values in enumerate(frame.iter_rows(), start=1):
                sheet.write_row(row, 0, values)
            sheet.freeze_panes(1, 0)
            sheet.autofilter(0, 0, max(frame.height, 1), max(frame.width - 1, 0))


def write_run_json(record: dict, folder: Path) -> None:
    (folder / "run.json").write_text(
        json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8"
    )


def publish(staging: Path, out: Path) -> None:
    """Move every built file over the previous one, then remove the building folder."""
    missing = [name for name in OUTPUT_FILES if not (staging / name).is_file()]
    if missing:
        raise RuntimeError(f"outputs not built: {missing}")
    built = sorted(p.name for p in staging.iterdir() if p.is_file())
    # audience lists dropped from the rules since the last run go too, so none is left stale
    for old in out.glob("worklist_*.csv"):
        if old.name not in built:
            old.unlink()
    for name in built:
        os.replace(staging / name, out / name)
    shutil.rmtree(staging, ignore_errors=True)
