"""The audit report: what a run (or a period of runs) did, for the care and QI team.

One document (plain data, what ``audit.json`` holds) with tables, rendered as a self-contained
HTML page (inline CSS and SVG charts, no scripts, opens offline) and one CSV per table:

* the criteria funnel: patients in the extracts, tested for each analyte within its look-back,
  meeting each criterion, on the worklist;
* care-process measures (sql/measures), with their definitions and their trend across runs;
* data quality: rows read and quarantined by reason and file, unit conversions, tests and
  medications no rule uses, value distributions per analyte with implausible tails;
* provenance: runs, inputs with SHA-256, rules and code versions.

A run stores its tables in the registry (``audit_history``, ``measures_history``) inside its
own transaction, and its ``audit.html`` is rendered from the registry like any period report,
so ``b12screen report`` over one day gives the same figures as that night's audit.

Counts are exact (not suppressed): the audit is for the team that runs the screening. The
population report (pipeline/reports/population.py) is the one for sharing outside it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline import __version__
from pipeline.publish import render
from pipeline.reports import charts
from pipeline.resources import read_sql
from pipeline.rules import describe_criterion, priority_scale

if TYPE_CHECKING:
    import duckdb

    from pipeline.facts import Screened
    from pipeline.rules import Rules

AUDIENCE = (
    "For the care and QI team: exact counts, no patient identifiers. Not for sharing outside "
    "the team; the population report is the shareable one."
)
# Snapshot tables a run stores (sql/audit/<name>.sql), with how many rows are kept.
SNAPSHOT_SQL = {
    "funnel": None,
    "analytes": None,
    "unit_conversions": None,
    "value_distributions": None,
    "unmapped_tests": 50,
    "drug_groups": None,
    "unlisted_medications": 50,
    "conditions": None,
}


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[dict]:
    cur = con.execute(sql, params or [])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def collect(
    con: duckdb.DuckDBPyConnection, rules: Rules, screened: Screened
) -> dict[str, list[dict]]:
    """The run's snapshot tables, computed inside its transaction."""
    tables: dict[str, list[dict]] = {}
    for name, limit in SNAPSHOT_SQL.items():
        sql = read_sql(f"audit/{name}.sql")
        tables[name] = _rows(con, f"SELECT * FROM ({sql}) LIMIT {limit}" if limit else sql)
    tables["criteria"] = [
        {
            "criterion": cid,
            "role": c.role,
            "priority": c.priority or "",
            "rule": describe_criterion(rules, cid),
            "patients": screened.criterion_counts.get(cid, 0),
            "sources": "; ".join(f"{k}: {p.source}" for k, p in c.params.items()),
        }
        for cid, c in rules.spec.criteria.items()
    ]
    tables["measures"] = [dict(m) for m in screened.measures]
    tables["quarantine_reasons"] = _rows(con, read_sql("audit/quarantine_reasons.sql"))
    tables["data_quality_summary"] = _summary(con)
    return tables


def _summary(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """Totals that sit beside the capped lists (how many results/orders in all)."""
    codes = con.execute(
        "SELECT code_key, count(*) FROM diagnoses "
        "WHERE coalesce(code_system, 'icd10') = 'icd10' GROUP BY code_key"
    ).fetchall()
    ((snomed, snomed_listed),) = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE code_key IN "
        "(SELECT code FROM ref_diagnosis_codes_snomed)) FROM diagnoses "
        "WHERE code_system = 'snomed'"
    ).fetchall()
    invalid = sorted(
        ((code, n) for code, n in codes if code is None or not _valid_icd10cm(code)),
        key=lambda x: (-x[1], x[0] or ""),
    )
    unmapped = con.execute(
        "SELECT coalesce(sum(results), 0)::BIGINT FROM lab_profile "
        "SEMI JOIN (SELECT coding_id FROM lab_codings WHERE analyte IS NULL) USING (coding_id)"
    ).fetchone()[0]
    unlisted = con.execute(
        "SELECT count(*) FROM medications ANTI JOIN int_medication_groups USING (_rid)"
    ).fetchall()[0][0]
    return [
        {"item": "lab results of tests no rule uses", "count": unmapped, "examples": ""},
        {"item": "medication orders of drugs on no list", "count": unlisted, "examples": ""},
        {"item": "diagnosis rows", "count": sum(n for _, n in codes) + snomed, "examples": ""},
        {"item": "diagnosis rows coded in SNOMED CT", "count": snomed, "examples": ""},
        {
            "item": "SNOMED CT diagnosis rows on a risk-condition list",
            "count": snomed_listed,
            "examples": "",
        },
        {
            "item": "diagnosis rows with a code not in ICD-10-CM (kept; may match by prefix)",
            "count": sum(n for _, n in invalid),
            "examples": ", ".join(f"{c} ({n})" for c, n in invalid[:10]),
        },
    ]


def _valid_icd10cm(code: str) -> bool:
    """A code of ICD-10-CM (simple_icd_10_cm), imported only when there is a code to check:
    loading its tables takes about 2 CPU seconds, a good part of a night without diagnoses."""
    import simple_icd_10_cm as icd

    return icd.is_valid_item(code)


def record(
    con: duckdb.DuckDBPyConnection, run_id: str, as_of: date, tables: dict, rules_version: str
) -> None:
    """Store the run's snapshot tables and measure counts in the registry."""
    con.executemany(
        "INSERT INTO audit_history VALUES (?, ?, ?, ?)",
        [[run_id, as_of, name, json.dumps(rows, default=str)] for name, rows in tables.items()],
    )
    con.executemany(
        "INSERT INTO measures_history VALUES (?, ?, ?, ?, ?, ?)",
        [
            [run_id, as_of, m["measure"], m["numerator"], m["denominator"], rules_version]
            for m in tables.get("measures", [])
        ],
    )


# -- from the registry ------------------------------------------------------------------------
def succeeded_runs(con: duckdb.DuckDBPyConnection, start: date, end: date) -> list[dict]:
    """Succeeded runs with an as-of date in [start, end], oldest first, with their record."""
    rows = _rows(
        con,
        """SELECT run_id, as_of, started_at, finished_at, code_version, rules_version, rules_sha256,
                  CAST(record AS VARCHAR) AS record
           FROM runs WHERE status = 'succeeded' AND as_of BETWEEN ? AND ?
           ORDER BY as_of, started_at, run_id""",
        [start, end],
    )
    for row in rows:
        row["record"] = json.loads(row["record"]) if row["record"] else {}
    return rows


def latest_per_day(runs: list[dict]) -> list[dict]:
    """One run per as-of date: the last one started (a rerun replaces the first)."""
    by_day: dict[date, dict] = {}
    for run in runs:
        by_day[run["as_of"]] = run
    return [by_day[d] for d in sorted(by_day)]


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Registries written by b12screen before the audit tables existed lack them."""
    return bool(
        con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]
        ).fetchall()[0][0]
    )


def _snapshot(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, list[dict]]:
    if not _has_table(con, "audit_history"):
        return {}
    return {
        name: json.loads(rows)
        for name, rows in con.execute(
            "SELECT name, CAST(rows AS VARCHAR) FROM audit_history WHERE run_id = ?", [run_id]
        ).fetchall()
    }


def audit_document(
    con: duckdb.DuckDBPyConnection,
    start: date,
    end: date,
    *,
    run_id: str | None = None,
    trend_start: date | None = None,
) -> dict:
    """The audit of one run (``run_id``) or of the succeeded runs with as-of in [start, end].

    The snapshot tables (funnel, distributions, ...) are those of the last run; quarantine and
    inputs add up over the runs; trends run from ``trend_start`` (default ``start``) to ``end``.
    """
    runs = succeeded_runs(con, start, end)
    if run_id is not None:
        runs = [r for r in runs if r["run_id"] == run_id]
    if not runs:
        return {}
    last = runs[-1]
    tables = _snapshot(con, last["run_id"])
    snapshot_recorded = bool(tables)
    ids = [r["run_id"] for r in runs]
    if run_id is None:
        tables["quarantine_reasons"] = _rows(
            con,
            f"""SELECT kind, source_file, reason, count(*) AS rows FROM quarantine_log
                WHERE run_id IN ({_placeholders(ids)}) GROUP BY ALL
                ORDER BY kind, source_file, rows DESC, reason""",
            ids,
        )
    tables["inputs"] = [
        {"run_id": r["run_id"], "as_of": r["as_of"], **item}
        for r in runs
        for item in r["record"].get("inputs", [])
    ]
    tables["skipped_files"] = [
        {"run_id": r["run_id"], "as_of": r["as_of"], **item}
        for r in runs
        for item in r["record"].get("skipped_files", [])
    ]
    tables["input_format"] = input_format_rows(last["record"])
    trend_runs = latest_per_day(
        runs if trend_start is None else succeeded_runs(con, trend_start, end)
    )
    tables["measure_trends"] = _measure_trends(con, trend_runs)
    tables["worklist_trends"] = [
        {"as_of": r["as_of"], "run_id": r["run_id"]}
        | {
            p: r["record"].get("counts", {}).get("worklist", {}).get(p)
            for p in (*priority_scale(), "total")
        }
        for r in trend_runs
    ]
    tables["runs"] = [
        {
            "run_id": r["run_id"],
            "as_of": r["as_of"],
            "started_at": r["started_at"],
            "finished_at": r["finished_at"],
            "code_version": r["code_version"],
            "rules_version": r["rules_version"],
            "rules_sha256": r["rules_sha256"],
            "patients": r["record"].get("counts", {}).get("patients"),
            "worklist": r["record"].get("counts", {}).get("worklist", {}).get("total"),
        }
        for r in runs
    ]
    record_ = last["record"]
    return {
        "report": "b12screen audit",
        "scope": "run" if run_id else "period",
        "period": {"from": start.isoformat(), "to": end.isoformat()},
        "snapshot_run": {
            "run_id": last["run_id"],
            "as_of": last["as_of"],
            "recorded": snapshot_recorded,
        },
        "generated_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "code_version": __version__,
        "audience": AUDIENCE,
        "provenance": {
            "rules": record_.get("rules", {}),
            "reference_data": record_.get("reference_data", []),
            "rules_versions": sorted({r["rules_version"] for r in runs if r["rules_version"]}),
            "code_versions": sorted({r["code_version"] for r in runs if r["code_version"]}),
            "extracts_folder": record_.get("extracts_folder"),
            "input_format": {
                k: (record_.get("input_format") or {}).get(k) for k in ("format", "chosen")
            },
            "site_mappings": (record_.get("input_format") or {}).get("site_mappings", []),
            "ignored_files": record_.get("ignored_files", []),
            "merged": record_.get("counts", {}).get("merged", {}),
        },
        "tables": tables,
    }


def input_format_rows(record: Mapping[str, Any]) -> list[dict]:
    """The format a run read and how many rows each mapping recognised (counts only), from its
    run.json ``input_format``: the adapter's own counts (OMOP, FHIR, Synthea), then the stored
    valid rows each mapping table recognised (the rules' LOINC lists, data/<table>.csv, the
    site's own files). Empty for a run recorded before formats were."""
    fmt = record.get("input_format") or {}
    name = fmt.get("format") or ""
    rows = [
        {"format": name, "kind": c["kind"], "item": c["item"], "rows": c["rows"]}
        for c in fmt.get("counts", [])
    ]
    rows += [
        {
            "format": name,
            "kind": r["kind"],
            "item": f"stored valid rows recognised by {r['mapping']}",
            "rows": r["rows"],
        }
        for r in fmt.get("recognised", [])
    ]
    return rows


def _placeholders(items: list) -> str:
    return ", ".join("?" for _ in items) or "NULL"


def _measure_trends(con: duckdb.DuckDBPyConnection, runs: list[dict]) -> list[dict]:
    ids = [r["run_id"] for r in runs]
    if not ids or not _has_table(con, "measures_history"):
        return []
    rows = _rows(
        con,
        f"""SELECT as_of, run_id, measure, numerator, denominator,
                   CASE WHEN denominator > 0 THEN numerator / denominator END AS rate
            FROM measures_history WHERE run_id IN ({_placeholders(ids)})
            ORDER BY as_of, measure""",
        ids,
    )
    return rows


# -- writing ----------------------------------------------------------------------------------
def audit_charts(doc: dict) -> dict[str, str]:
    """The audit's charts as inline SVG."""
    tables = doc["tables"]
    funnel = [
        (row["stage"], row["label"], int(row["patients"] or 0))
        for row in tables.get("funnel", [])
        if row["stage"] != "worklist" or row["item"] == "total"
    ]
    titles = {m["measure"]: m["title"] for m in tables.get("measures", [])}
    series: dict[str, list] = {}
    for row in tables.get("measure_trends", []):
        series.setdefault(titles.get(row["measure"], row["measure"]), []).append(
            (_date(row["as_of"]), row["rate"])
        )
    worklist: dict[str, list] = {}
    for row in tables.get("worklist_trends", []):
        for p in priority_scale():
            worklist.setdefault(p, []).append((_date(row["as_of"]), row.get(p)))
    return {
        "funnel": charts.funnel_svg(funnel, chart_id="funnel", title="Criteria funnel (patients)"),
        "measure_trends": charts.trends_svg(
            series,
            chart_id="measures",
            title="Care-process measures across runs",
            ylabel="rate",
            percent=True,
        ),
        "worklist_trends": charts.trends_svg(
            worklist,
            chart_id="worklist",
            title="Worklist by priority across runs",
            ylabel="patients",
        ),
    }


def _date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def render_html(doc: dict, svg: Mapping[str, str] | None = None) -> str:
    """audit.html; ``svg``: the document's charts, made already (:func:`audit_charts`)."""
    return (
        render.template_env()
        .get_template("audit.html.j2")
        .render(doc=doc, t=doc["tables"], svg=audit_charts(doc) if svg is None else svg)
    )


def write_audit(
    doc: dict,
    folder: Path,
    *,
    stamp: Mapping[str, Any] | None = None,
    svg: Mapping[str, str] | None = None,
) -> None:
    """audit.html, audit.json and audit/<table>.csv into ``folder``, a folder being built
    aside (the run's and the report's); the caller moves it into place.

    ``stamp`` (a run's: rules_version, run_id, as_of) ends every row of a CSV table whose rows
    do not name their own run already (the runs, inputs and trend tables have run_id and as_of
    columns of their own). ``svg``: the charts, if the caller made them already.
    """
    (folder / "audit.json").write_text(json.dumps(doc, indent=2, default=str) + "\n", "utf-8")
    (folder / "audit").mkdir()
    for name, rows in doc["tables"].items():
        if stamp and not any(key in row for row in rows for key in stamp):
            rows = [{**row, **stamp} for row in rows]
        (folder / "audit" / f"{name}.csv").write_text(render.csv_of_dicts(rows), encoding="utf-8")
    (folder / "audit.html").write_text(render_html(doc, svg), encoding="utf-8")
