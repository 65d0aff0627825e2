"""Care-process measures (the audit report): numerator over denominator, per run.

Each measure of the rules file has its SQL in sql/measures/<id>.sql, which returns one row per
patient in the denominator with ``in_numerator`` and the date the measure is about. They run
after the criteria, on the same as-of date, and may read ``run_flags``. The counts go to the
registry (``measures_history``), so the audit shows their trend across runs; the patients
stay in the run's temporary ``run_measure_members`` table and never reach a report.
"""

from __future__ import annotations

from pipeline.rules import Rules, fill_values
from pipeline.screening.models import ModelRun


def compute_measures(models: ModelRun, rules: Rules) -> list[dict]:
    """Fill ``run_measure_members``; one dict per measure with its counts and definitions."""
    con = models.con
    con.execute(
        "CREATE OR REPLACE TEMP TABLE run_measure_members ("
        "measure VARCHAR, patient_id VARCHAR, in_numerator BOOLEAN, event_date DATE)"
    )
    for model in models.plan(rules.spec.measures):  # after the flags mart and what they read
        if model.kind != "measure":
            models.materialize(model)
            continue
        con.execute(
            "INSERT INTO run_measure_members SELECT ?, patient_id, in_numerator, event_date "
            f"FROM ({model.sql})",
            [model.name],
        )
        models.built.add(model.name)
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
