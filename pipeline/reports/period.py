"""``b12screen report``: the audit and population reports of a period, from the registry.

    write_period_report(Path("screening.duckdb"), date(2026, 11, 1), date(2026, 11, 30), Path("out"))
    # -> out/audit.html, audit.json, audit/<table>.csv      (care and QI team: exact counts)
    #    out/population.html, population.json, population.csv  (shareable: disclosure rule)

Reads the database read-only; the runs of the period are the succeeded runs whose as-of date
is from ``start`` to ``end`` (both included). The files are built aside and moved into ``out``
only when all are written, so a failed report leaves an earlier one intact.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from pipeline.errors import B12ScreenError
from pipeline.publish import render
from pipeline.publish.switch import built_aside
from pipeline.registry import reading
from pipeline.reports import audit
from pipeline.reports.population import PopulationReport, build_population_report
from pipeline.rules import Rules, load_rules

REPORT_FILES = ("audit.html", "audit.json", "population.html", "population.json", "population.csv")


@dataclass
class ReportResult:
    out: Path
    runs: int
    seconds: float
    files: tuple[str, ...]


def write_period_report(
    db: Path, start: date, end: date, out: Path, *, rules: str | Path | None = None
) -> ReportResult:
    """Write the period's reports into ``out``; raise B12ScreenError when there is nothing."""
    began = time.perf_counter()
    if end < start:
        raise B12ScreenError(f"--to ({end}) is before --from ({start})")
    checked = load_rules(rules)
    with reading(Path(db)) as con:
        if con is None:
            raise B12ScreenError(f"database {db} has no run registry yet (no run has used it)")
        runs = audit.succeeded_runs(con, start, end)
        if not runs:
            raise B12ScreenError(
                f"no succeeded run with an as-of date from {start} to {end} in {db}"
            )
        audit_doc = audit.audit_document(con, start, end)
        population = build_population_report(con, checked, start, end, runs)
    out = Path(out)
    with built_aside(out, "report") as building:
        audit.write_audit(audit_doc, building)
        write_population(population, checked, building)
    return ReportResult(out, len(runs), time.perf_counter() - began, REPORT_FILES)


def write_population(report: PopulationReport, rules: Rules, folder: Path) -> None:
    doc = report.doc
    (folder / "population.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    (folder / "population.csv").write_text(render.csv_of_dicts(doc["prevalence"]), encoding="utf-8")
    html = (
        render.template_env()
        .get_template("population.html.j2")
        .render(
            doc=doc,
            svg=report.charts,
            by=_by_dimension(doc),
            band_labels=rules.spec.report.band_labels(),
        )
    )
    (folder / "population.html").write_text(html, encoding="utf-8")


def _by_dimension(doc: dict) -> dict:
    """prevalence rows indexed as by[dimension][measure][(group, sex)]."""
    by: dict = {}
    for row in doc["prevalence"]:
        by.setdefault(row["dimension"], {}).setdefault(row["measure"], {})[
            (row["group"], row["sex"])
        ] = row
    return by
