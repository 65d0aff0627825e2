"""The population screening report for a period: prevalence of each criterion, shareable.

For a period (as-of dates ``start`` to ``end``, both included) and the succeeded runs in it:

* the population is the patients the period's last run screened (patients stored by that
  run or an earlier one: a backfilled run screens what the database held when it ran), with
  age at ``end`` in the rules file's bands, and sex and site as last sent;
* a patient counts for a criterion when any of those runs found it met (``flags_history``),
  and for "on the worklist" when any of them listed the patient (``worklist_history``);
* prevalence is patients meeting / population, overall and by age band, by sex, by site, and
  by age band and sex together, with a Wilson score interval.

Every count passes the rules file's disclosure rule (pipeline/reports/disclosure.py) before it is
written: small counts are suppressed, complementary cells hidden, the rest rounded, and rates
and intervals are computed from the published counts. The report holds no patient identifier,
no date of birth and no date finer than the period. The exact counts stay in memory
(``PopulationReport.exact``) for tests that reconcile them; they are never written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

import polars as pl

from pipeline import __version__
from pipeline.reports import charts
from pipeline.reports.disclosure import DisclosureRule, Group, protect, rate_with_interval
from pipeline.screening.criteria import load_macros

if TYPE_CHECKING:
    import duckdb

    from pipeline.rules import Rules

POPULATION = "population"
WORKLIST = "on_worklist"
UNKNOWN_AGE = "unknown"
NO_SITE = "not recorded"
AUDIENCE = (
    "Shareable outside the care team: no patient identifiers; every count has passed the "
    "disclosure rule below, and rates and intervals are computed from the published counts."
)
DIMENSIONS = ("all", "age_band", "sex", "site", "age_band_sex")


@dataclass
class PopulationReport:
    doc: dict  # what is written: published counts only
    exact: dict[tuple, int]  # (measure, dimension, group, sex) -> exact count; never written
    charts: dict[str, str]  # measure -> inline SVG of prevalence by age band and sex


def _frames(
    con: duckdb.DuckDBPyConnection, run_ids: list[str], start: date, end: date, rules: Rules
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(population with age_band/sex/site, distinct (patient_id, measure) met in the runs)."""
    load_macros(con)  # age_on(), the age the criteria use; temporary, so read-only is fine
    # a patient who died before the period began was never screened in it (a database
    # written before death dates were read has none)
    columns = {r[0] for r in con.execute("DESCRIBE patients").fetchall()}
    alive = "AND (p.death_date IS NULL OR p.death_date >= ?)" if "death_date" in columns else ""
    people = con.sql(
        f"""SELECT p.patient_id, age_on(p.birth_date, ?) AS age, p.sex, p.site
            FROM patients AS p INNER JOIN runs AS r ON r.run_id = p.run_id
            WHERE r.started_at <= (SELECT started_at FROM runs WHERE run_id = ?) {alive}""",
        params=[end, run_ids[-1], *([start] if alive else [])],
    ).pl()
    # the oldest band is tested first; no birth date (or one after the period) stays unknown
    band = pl.lit(UNKNOWN_AGE)
    for lower, label in zip(
        rules.spec.report.age_bands, rules.spec.report.band_labels(), strict=True
    ):
        band = pl.when(pl.col("age") >= lower).then(pl.lit(label)).otherwise(band)
    people = people.select(
        "patient_id",
        band.alias("age_band"),
        pl.col("sex").fill_null("U"),
        pl.col("site").fill_null(NO_SITE),
    )
    placeholders = ", ".join("?" for _ in run_ids)
    met = con.sql(
        f"""SELECT DISTINCT patient_id, criterion AS measure FROM flags_history
            WHERE run_id IN ({placeholders})
            UNION
            SELECT DISTINCT patient_id, '{WORKLIST}' AS measure FROM worklist_history
            WHERE run_id IN ({placeholders})""",
        params=[*run_ids, *run_ids],
    ).pl()
    return people, met


def exact_counts(
    people: pl.DataFrame, met: pl.DataFrame, measures: list[str], categories: dict[str, list[str]]
) -> dict[tuple, int]:
    """Every cell (measure, dimension, group, sex) with its exact count, zeros included."""
    frames = {POPULATION: people}
    joined = met.join(people, on="patient_id", how="inner")
    for m in measures:
        frames[m] = joined.filter(pl.col("measure") == m)
    counts: dict[tuple, int] = {}
    for m, frame in frames.items():
        counts[(m, "all", "", "")] = frame.height
        for dim in ("age_band", "sex", "site"):
            have = dict(frame.group_by(dim).len().iter_rows())
            for g in categories[dim]:
                counts[(m, dim, g, "")] = int(have.get(g, 0))
        have = {(a, s): n for a, s, n in frame.group_by("age_band", "sex").len().iter_rows()}
        for a in categories["age_band"]:
            for s in categories["sex"]:
                counts[(m, "age_band_sex", a, s)] = int(have.get((a, s), 0))
    return counts


def groups_for(measure: str, categories: dict[str, list[str]]) -> list[Group]:
    """Which published counts add up to which: each breakdown to the total, and both ways
    across the age band by sex table."""
    total = (measure, "all", "", "")
    out = [
        Group(total, tuple((measure, dim, g, "") for g in categories[dim]))
        for dim in ("age_band", "sex", "site")
    ]
    for a in categories["age_band"]:
        out.append(
            Group(
                (measure, "age_band", a, ""),
                tuple((measure, "age_band_sex", a, s) for s in categories["sex"]),
            )
        )
    for s in categories["sex"]:
        out.append(
            Group(
                (measure, "sex", s, ""),
                tuple((measure, "age_band_sex", a, s) for a in categories["age_band"]),
            )
        )
    return out


def build_population_report(
    con: duckdb.DuckDBPyConnection,
    rules: Rules,
    start: date,
    end: date,
    runs: list[dict],
    *,
    with_charts: bool = True,
) -> PopulationReport:
    """The report of the runs given (succeeded, as-of in [start, end])."""
    run_ids = [r["run_id"] for r in runs]
    people, met = _frames(con, run_ids, start, end, rules)
    bands = rules.spec.report.band_labels()
    present = set(people["age_band"].unique().to_list())
    categories = {
        "age_band": bands + ([UNKNOWN_AGE] if UNKNOWN_AGE in present else []),
        "sex": sorted(people["sex"].unique().to_list()),
        "site": sorted(people["site"].unique().to_list()),
    }
    measures = [*rules.criteria_order, WORKLIST]
    exact = exact_counts(people, met, measures, categories)
    d = rules.spec.report.disclosure
    rule = DisclosureRule(d.redact_at_or_below, d.round_to)
    published = {}
    for m in (POPULATION, *measures):
        cells = {k: v for k, v in exact.items() if k[0] == m}
        published.update(protect(cells, groups_for(m, categories), rule))
    confidence = rules.spec.report.confidence
    rows = []
    for key, cell in published.items():
        m, dim, group, sex = key
        if m == POPULATION:
            continue
        denominator = published[(POPULATION, dim, group, sex)]
        rows.append(
            {
                "measure": m,
                "dimension": dim,
                "group": group,
                "sex": sex,
                "patients": cell.value,
                "patients_status": cell.status,
                "population": denominator.value,
                "population_status": denominator.status,
                **rate_with_interval(cell, denominator, confidence),
            }
        )
    population_rows = [
        {"dimension": dim, "group": group, "sex": sex, "patients": c.value, "status": c.status}
        for (m, dim, group, sex), c in published.items()
        if m == POPULATION
    ]
    roles = {cid: c.role for cid, c in rules.spec.criteria.items()}
    doc = {
        "report": "b12screen population screening report",
        "period": {"from": start.isoformat(), "to": end.isoformat()},
        "runs": len(runs),
        "as_of_dates": len({r["as_of"] for r in runs}),
        "rules_versions": sorted({r["rules_version"] for r in runs if r["rules_version"]}),
        "generated_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "code_version": __version__,
        "audience": AUDIENCE,
        "method": {
            "population": (
                "the patients stored by the period's last run and alive when the period began; "
                "age at the end of the period"
            ),
            "numerator": "patients found meeting the criterion by any succeeded run of the period",
            "age_bands": bands,
            "confidence": confidence,
            "interval": "Wilson score interval, from the published (rounded) counts",
            "disclosure": {
                "redact_at_or_below": d.redact_at_or_below,
                "round_to": d.round_to,
                "complementary": True,
                "source": d.source,
            },
        },
        "categories": categories,
        "measures": [{"measure": m, "role": roles.get(m, "worklist")} for m in measures],
        "population": population_rows,
        "prevalence": rows,
    }
    return PopulationReport(doc, exact, prevalence_charts(rows, measures) if with_charts else {})


def prevalence_charts(rows: list[dict], measures: list[str]) -> dict[str, str]:
    """One chart per measure with any shown cell: prevalence by age band and sex."""
    out = {}
    for m in measures:
        cells = [
            {
                "age_band": r["group"],
                "sex": r["sex"],
                "rate": r["rate"],
                "low": r["low"],
                "high": r["high"],
                "status": r["patients_status"] if r["rate"] is not None else "hidden",
            }
            for r in rows
            if r["measure"] == m and r["dimension"] == "age_band_sex"
        ]
        if any(c["status"] == "shown" and c["rate"] for c in cells):
            out[m] = charts.prevalence_svg(
                cells,
                chart_id=f"prev-{m.replace('_', '-')}",
                title=f"{m}: prevalence by age band and sex",
            )
    return out
