"""Care-process measures (the audit report): numerator over denominator, per run.

Each measure of the rules file has its SQL in sql/measures/<id>.sql, which returns one row per
patient in the denominator with ``in_numerator`` and the date the measure is about. They run
after the criteria, on the same as-of date, and may read ``run_flags``. The counts go to the
registry (``measures_history``), so the audit shows their trend across runs; the patients
stay in the run's temporary ``run_measure_members`` table and never reach a report.
"""

from __future__ import annotations

import duckdb

from pipeline.resources import read_sql
from pipeline.rules import Rules, fill_values


def compute_measures(con: duckdb.DuckDBPyConnection, rules: Rules) -> list[dict]:
    """Fill ``run_measure_members``; one dict per measure with its counts and definitions."""
    # run_flags was rebuilt by the flags mart after the criteria: bind the macro over it anew
    con.execute(read_sql("intermediate/deficiency.sql"))
    con.execute(
        "CREATE OR REPLACE TEMP TABLE run_measure_members ("
        "measure VARCHAR, patient_id VARCHAR, in_numerator BOOLEAN, event_date DATE)"
    )
    for mid in rules.spec.measures:
        con.execute(
            "INSERT INTO run_measure_members SELECT ?, patient_id, in_numerator, event_date "
            f"FROM ({read_sql(f'measures/{mid}.sql')})",
            [mid],
        )
    counts = {
        mid: (num, den)
        for mid, num, den in con.execute(
            "SELECT measure, count(*) FILTER (WHERE in_numerator), count(*) "
            "FROM run_measure_members GROUP BY measure"
        ).fetchall()
    }
    out = []
    for mid, m in rules.spec.measures.items():
        num, den = counts.get(mid, (0, 0))
        out.append(
            {
                "measure": mid,
                "title": m.title,
                "numerator": int(num),
                "denominator": int(den),
                "rate": num / den if den else None,
                "better": m.better,
                "numerator_definition": fill_values(rules, mid, m.numerator),
                "denominator_definition": fill_values(rules, mid, m.denominator),
            }
        )
    return out
