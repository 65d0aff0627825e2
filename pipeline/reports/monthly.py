"""The monthly audit report, read from the run registry (the ``runs`` table): counts only.

    write_month_report(Path("screening.duckdb"), "2026-11", Path("audit"))
    # -> audit/audit-2026-11.html, audit-2026-11.json, audit-2026-11.csv

A run belongs to the month of its as-of date (the date it screened for), so a run repeated
later for an earlier date counts in that earlier month. One row per run: status, worklist per
priority, rows read and quarantined, patients per criterion (from the run's record), the cause
of a failed run; then totals and the dates of the month without a succeeded run. The HTML is
one self-contained file (inline CSS, no scripts) that opens offline.

The report is for the care/QI team: no patient identifiers, but counts are not suppressed for
small numbers, so it is not for sharing outside that team. Plain Python; no Prefect needed.
"""

from __future__ import annotations

import calendar
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from pipeline import __version__
from pipeline.errors import B12ScreenError
from pipeline.publish import render
from pipeline.publish.switch import built_aside
from pipeline.registry import reading
from pipeline.rules import priority_scale

AUDIENCE = (
    "For the care / QI team only: not for sharing outside it. Counts are not suppressed "
    "for small numbers."
)
TOTALS_NOTE = (
    "Totals are sums over the month's succeeded runs: a patient on the worklist (or meeting a "
    "criterion) on several nights counts once per night."
)
_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


@dataclass
class RunRow:
    run_id: str
    as_of: date | None
    started_at: datetime | None
    finished_at: datetime | None
    status: str
    error: str | None
    code_version: str | None
    rules_version: str | None
    input_files: int | None = None
    patients: int | None = None
    rows_read: int | None = None
    rows_quarantined: int | None = None
    quarantined_by_kind: dict[str, int] = field(default_factory=dict)
    worklist: dict[str, int] = field(default_factory=dict)
    criteria: dict[str, int] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"


# -- public ----------------------------------------------------------------------------------
def previous_month(today: date) -> str:
    """'YYYY-MM' of the calendar month before ``today``'s."""
    first = today.replace(day=1)
    return (first - timedelta(days=1)).strftime("%Y-%m")


def month_bounds(month: str) -> tuple[date, date]:
    """First day of ``month`` and first day of the next; ``month`` is 'YYYY-MM'."""
    match = _MONTH.match(month or "")
    if not match:
        raise B12ScreenError(f"month must be given as YYYY-MM, got {month!r}")
    year, mon = int(match.group(1)), int(match.group(2))
    start = date(year, mon, 1)
    return start, start + timedelta(days=calendar.monthrange(year, mon)[1])


def read_month_runs(db: Path, month: str) -> list[RunRow]:
    """The registry's runs whose as-of date is in ``month``, oldest first."""
    start, end = month_bounds(month)
    with reading(db) as con:
        if con is None:
            return []
        rows = con.execute(
            """
            SELECT run_id, as_of, started_at, finished_at, status, error, code_version,
                   rules_version, CAST(record AS VARCHAR)
            FROM runs
            WHERE coalesce(as_of, CAST(started_at AS DATE)) >= ?
              AND coalesce(as_of, CAST(started_at AS DATE)) < ?
            ORDER BY coalesce(as_of, CAST(started_at AS DATE)), started_at NULLS LAST, run_id
            """,
            [start, end],
        ).fetchall()
    return [_run_row(*row) for row in rows]


def build_month_report(runs: list[RunRow], month: str, *, today: date | None = None) -> dict:
    """The report as plain data (what the JSON holds); counts only."""
    start, end = month_bounds(month)
    today = today or date.today()
    ok = [r for r in runs if r.succeeded]
    kinds = _keys(r.quarantined_by_kind for r in runs)
    criteria = _keys(r.criteria for r in runs)
    covered = {r.as_of for r in ok}
    last_day = min(end - timedelta(days=1), today)
    missing = [
        (start + timedelta(days=i)).isoformat()
        for i in range((last_day - start).days + 1)
        if start + timedelta(days=i) not in covered
    ]
    by_status: dict[str, int] = {}
    for r in runs:
        by_status[r.status] = by_status.get(r.status, 0) + 1
    return {
        "report": "b12screen monthly audit",
        "month": month,
        "period": {"from": start.isoformat(), "to": (end - timedelta(days=1)).isoformat()},
        "generated_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "code_version": __version__,
        "audience": AUDIENCE,
        "runs": [_run_dict(r) for r in runs],
        "failures": [
            {
                "run_id": r.run_id,
                "as_of": _iso(r.as_of),
                "started_at": _iso(r.started_at),
                "status": r.status,
                "cause": r.error or "not recorded",
            }
            for r in runs
            if not r.succeeded
        ],
        "dates_without_a_succeeded_run": missing,
        "totals": {
            "runs": len(runs),
            "succeeded": len(ok),
            "failed": len(runs) - len(ok),
            "by_status": by_status,
            "rows_read": sum(r.rows_read or 0 for r in ok),
            "rows_quarantined": sum(r.rows_quarantined or 0 for r in ok),
            "rows_quarantined_by_kind": {
                k: sum(r.quarantined_by_kind.get(k, 0) for r in ok) for k in kinds
            },
            "worklist": {
                p: sum(r.worklist.get(p, 0) for r in ok) for p in (*priority_scale(), "total")
            },
            "patients_by_criterion": {c: sum(r.criteria.get(c, 0) for r in ok) for c in criteria},
            "note": TOTALS_NOTE,
        },
    }


def write_month_report(db: Path, month: str, out: Path, *, today: date | None = None) -> Path:
    """Write out/audit-YYYY-MM.html, .json and .csv for ``month``; return the HTML's path."""
    report = build_month_report(read_month_runs(Path(db), month), month, today=today)
    report["database"] = Path(db).name
    return write_report_files(report, Path(out))


def write_report_files(report: dict, out: Path) -> Path:
    """Write a report from :func:`build_month_report` as HTML, JSON and CSV; the HTML's path."""
    out = Path(out)
    stem = f"audit-{report['month']}"
    with built_aside(out, "audit report") as building:  # all three files or none
        (building / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n", "utf-8")
        (building / f"{stem}.csv").write_text(_csv(report), encoding="utf-8")
        (building / f"{stem}.html").write_text(_html(report), encoding="utf-8")
    return out / f"{stem}.html"


# -- reading the registry --------------------------------------------------------------------
def _int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _counts(mapping: Any) -> dict[str, int]:
    if not isinstance(mapping, dict):
        return {}
    return {str(k): v for k, v in ((k, _int(v)) for k, v in mapping.items()) if v is not None}


def _run_row(
    run_id, as_of, started_at, finished_at, status, error, code_version, rules_version, record
) -> RunRow:
    try:
        data = json.loads(record) if record else {}
    except ValueError:
        data = {}
    counts = data.get("counts") if isinstance(data, dict) else None
    row = RunRow(
        run_id=run_id,
        as_of=as_of,
        started_at=started_at,
        finished_at=finished_at,
        status=status or "unknown",
        error=(error.splitlines() or [None])[0] if error else None,
        code_version=code_version,
        rules_version=rules_version,
    )
    if row.status != "succeeded" or not isinstance(counts, dict):
        return row  # a failed run published nothing: its counts (if any) are not reported
    inputs = data.get("inputs")
    row.input_files = len(inputs) if isinstance(inputs, list) else None
    row.patients = _int(counts.get("patients"))
    rows_read = _counts(counts.get("rows_read"))
    row.rows_read = sum(rows_read.values()) if rows_read else None
    row.quarantined_by_kind = _counts(counts.get("rows_quarantined"))
    row.rows_quarantined = sum(row.quarantined_by_kind.values())  # none quarantined: 0
    worklist = _counts(counts.get("worklist"))
    row.worklist = {p: worklist.get(p, 0) for p in priority_scale()}
    row.worklist["total"] = worklist.get("total", sum(row.worklist.values()))
    row.criteria = _counts(counts.get("patients_by_criterion"))
    return row


def _keys(mappings) -> list[str]:
    return list(dict.fromkeys(k for m in mappings for k in m))


def _iso(value: date | datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _run_dict(r: RunRow) -> dict:
    return {
        "run_id": r.run_id,
        "as_of": _iso(r.as_of),
        "started_at": _iso(r.started_at),
        "finished_at": _iso(r.finished_at),
        "status": r.status,
        "cause": r.error if not r.succeeded else None,
        "code_version": r.code_version,
        "rules_version": r.rules_version,
        "input_files": r.input_files,
        "patients": r.patients,
        "rows_read": r.rows_read,
        "rows_quarantined": r.rows_quarantined,
        "rows_quarantined_by_kind": r.quarantined_by_kind,
        "worklist": r.worklist,
        "patients_by_criterion": r.criteria,
    }


# -- writing ---------------------------------------------------------------------------------
def _csv(report: dict) -> str:
    """One row per run, then a total row (sums over the succeeded runs)."""
    totals = report["totals"]
    kinds = list(totals["rows_quarantined_by_kind"])
    criteria = list(totals["patients_by_criterion"])
    header = [
        "run_id",
        "as_of",
        "started_at",
        "status",
        "cause",
        "rules_version",
        "input_files",
        "patients",
        "rows_read",
        "rows_quarantined",
        *(f"quarantined_{k}" for k in kinds),
        *(f"worklist_{p}" for p in (*priority_scale(), "total")),
        *(f"criterion_{c}" for c in criteria),
    ]
    rows: list[list[Any]] = []
    for run in report["runs"]:
        ok = run["status"] == "succeeded"
        rows.append(
            [
                run["run_id"],
                run["as_of"],
                run["started_at"],
                run["status"],
                run["cause"] or "",
                run["rules_version"] or "",
                run["input_files"],
                run["patients"],
                run["rows_read"],
                run["rows_quarantined"],
                *(run["rows_quarantined_by_kind"].get(k, 0) if ok else None for k in kinds),
                *(run["worklist"].get(p) if ok else None for p in (*priority_scale(), "total")),
                *(run["patients_by_criterion"].get(c, 0) if ok else None for c in criteria),
            ]
        )
    rows.append(
        [
            "total",
            "",
            "",
            f"{totals['succeeded']} succeeded, {totals['failed']} failed",
            "",
            "",
            "",
            "",
            totals["rows_read"],
            totals["rows_quarantined"],
            *(totals["rows_quarantined_by_kind"][k] for k in kinds),
            *(totals["worklist"][p] for p in (*priority_scale(), "total")),
            *(totals["patients_by_criterion"][c] for c in criteria),
        ]
    )
    return render.csv_text(rows, header)


_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
{{ csp_meta }}
<title>b12screen monthly audit {{ r.month }}</title>
<style>
  body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 76rem; color: #1b1b1b; padding: 0 1rem; }
  h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid #ccc; }
  table { border-collapse: collapse; margin: .5rem 0 1rem; }
  th, td { border: 1px solid #d5d5d5; padding: .25rem .5rem; text-align: left; vertical-align: top; }
  th { background: #f2f2f2; } td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
  .wide { overflow-x: auto; } .muted { color: #666; font-size: .9em; }
  .audience { border: 2px solid #a40000; background: #fff4f4; padding: .5rem .75rem; font-weight: 600; }
  .failed { color: #a40000; font-weight: 600; } code { font-size: .9em; }
</style>
</head>
<body>
<h1>b12screen monthly audit: {{ r.month }}</h1>
<p class="audience">{{ r.audience }}</p>
<p>Runs with an as-of date from {{ r.period.from }} to {{ r.period.to }}, read from the run
registry{% if r.database %} of <code>{{ r.database }}</code>{% endif %}. Generated {{ r.generated_at }} by b12screen
{{ r.code_version }}. Counts only: this report holds no patient identifiers.</p>

<h2>Summary</h2>
<table>
  <tr><th>runs</th><td class="num">{{ t.runs }}</td></tr>
  <tr><th>succeeded</th><td class="num">{{ t.succeeded }}</td></tr>
  <tr><th>failed</th><td class="num">{{ t.failed }}</td></tr>
  <tr><th>dates without a succeeded run</th>
      <td>{% if r.dates_without_a_succeeded_run %}{{ r.dates_without_a_succeeded_run | length }}:
      {{ r.dates_without_a_succeeded_run | join(", ") }}{% else %}none{% endif %}</td></tr>
</table>

<h2>Runs</h2>
{% if not r.runs %}<p>No run in the registry has an as-of date in {{ r.month }}.</p>{% else %}
<div class="wide"><table>
  <tr><th>as of</th><th>run</th><th>status</th><th>rules</th><th class="num">input files</th>
      <th class="num">patients</th><th class="num">rows read</th><th class="num">rows quarantined</th>
      {% for k in kinds %}<th class="num">quarantined: {{ k }}</th>{% endfor %}
      {% for p in priorities %}<th class="num">worklist: {{ p }}</th>{% endfor %}
      <th class="num">worklist: total</th></tr>
  {% for run in r.runs %}{% set ok = run.status == "succeeded" %}
  <tr><td>{{ run.as_of or "" }}</td><td><code>{{ run.run_id }}</code></td>
      <td{% if not ok %} class="failed"{% endif %}>{{ run.status }}</td><td>{{ run.rules_version or "" }}</td>
      <td class="num">{{ n(run.input_files) }}</td><td class="num">{{ n(run.patients) }}</td>
      <td class="num">{{ n(run.rows_read) }}</td><td class="num">{{ n(run.rows_quarantined) }}</td>
      {% for k in kinds %}<td class="num">{{ n(run.rows_quarantined_by_kind.get(k, 0) if ok else None) }}</td>{% endfor %}
      {% for p in priorities %}<td class="num">{{ n(run.worklist.get(p) if ok else None) }}</td>{% endfor %}
      <td class="num">{{ n(run.worklist.get("total") if ok else None) }}</td></tr>
  {% endfor %}
  <tr><th colspan="6">total over {{ t.succeeded }} succeeded run(s)</th>
      <th class="num">{{ t.rows_read }}</th><th class="num">{{ t.rows_quarantined }}</th>
      {% for k in kinds %}<th class="num">{{ t.rows_quarantined_by_kind[k] }}</th>{% endfor %}
      {% for p in priorities %}<th class="num">{{ t.worklist[p] }}</th>{% endfor %}
      <th class="num">{{ t.worklist.total }}</th></tr>
</table></div>
{% endif %}

<h2>Failed runs</h2>
{% if r.failures %}
<table>
  <tr><th>as of</th><th>run</th><th>started (UTC)</th><th>cause</th></tr>
  {% for f in r.failures %}
  <tr><td>{{ f.as_of or "" }}</td><td><code>{{ f.run_id }}</code></td><td>{{ f.started_at or "" }}</td>
      <td>{{ f.cause }}</td></tr>
  {% endfor %}
</table>
{% else %}<p>None.</p>{% endif %}

<h2>Patients per criterion</h2>
{% if criteria and ok_runs %}
<div class="wide"><table>
  <tr><th>criterion</th>{% for run in ok_runs %}<th class="num">{{ run.as_of }}</th>{% endfor %}
      <th class="num">total</th></tr>
  {% for c in criteria %}
  <tr><td><code>{{ c }}</code></td>
      {% for run in ok_runs %}<td class="num">{{ run.patients_by_criterion.get(c, 0) }}</td>{% endfor %}
      <th class="num">{{ t.patients_by_criterion[c] }}</th></tr>
  {% endfor %}
</table></div>
{% else %}<p>No succeeded run.</p>{% endif %}

<p class="muted">{{ t.note }} A run belongs to the month of its as-of date. Failed runs made
no outputs and changed nothing in the database; their counts are left blank.</p>
</body>
</html>
"""


def _html(report: dict) -> str:
    template = render.template_env().from_string(_TEMPLATE)
    totals = report["totals"]
    return template.render(
        r=report,
        t=totals,
        kinds=list(totals["rows_quarantined_by_kind"]),
        criteria=list(totals["patients_by_criterion"]),
        priorities=priority_scale(),
        ok_runs=[run for run in report["runs"] if run["status"] == "succeeded"],
        n=lambda v: "" if v is None else v,
    )
