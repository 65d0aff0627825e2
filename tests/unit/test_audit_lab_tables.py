"""The audit's tables over the whole lab history (sql/audit/analytes.sql, funnel.sql's tested
patients, value_distributions.sql, unit_conversions.sql, unmapped_tests.sql) are computed from
the kept lab state and profile, not the history; they give the rows the plain queries below
give over the stored results themselves (the definitions the page was built on), over rows put
straight into the lab_results of a database prepared by the runner (CriteriaDB).

The percentiles are exact: those of quantile_cont over the results, to the last bits of a
double (the interpolation is done in another order).
"""

from __future__ import annotations

import pytest

from pipeline.resources import read_sql

try:
    from harness import CriteriaDB
except ModuleNotFoundError:  # tests/ imported as a package
    from tests.harness import CriteriaDB

ANALYTES = """
select a.analyte, a.label, a.canonical_unit, a.lookback_days,
    count(l._rid) as results, count(distinct l.patient_id) as patients,
    count(*) filter (where l.coded_by = 'loinc') as by_loinc,
    count(*) filter (where l.coded_by = 'test_name') as by_name,
    count(*) filter (where l.censor is not null) as censored
from rule_analytes as a
left join lab_results as l on l.analyte = a.analyte
group by all
order by results desc, a.analyte
"""
TESTED = """
select rule_analytes.analyte as item, count(distinct lab_results.patient_id) as patients
from rule_analytes
left join lab_results
    on lab_results.analyte = rule_analytes.analyte
    and lab_results.collected_at::date <= getvariable('run.as_of')::date
    and lab_results.collected_at::date
        >= getvariable('run.as_of')::date - rule_analytes.lookback_days::integer
group by rule_analytes.analyte
order by rule_analytes.analyte
"""
VALUE_DISTRIBUTIONS = """
with stats as (
    select analyte, count(value_canonical) as results, min(value_canonical) as min,
        quantile_cont(value_canonical, 0.01) as p01,
        quantile_cont(value_canonical, 0.25) as q1,
        quantile_cont(value_canonical, 0.5) as median,
        quantile_cont(value_canonical, 0.75) as q3,
        quantile_cont(value_canonical, 0.99) as p99,
        max(value_canonical) as max,
        count(*) filter (where value_canonical <= 0) as at_or_below_zero
    from lab_results where analyte is not null group by analyte
),
fenced as (
    select *,
        q1 - getvariable('report.implausible_iqr_fence') * (q3 - q1) as low_fence,
        q3 + getvariable('report.implausible_iqr_fence') * (q3 - q1) as high_fence
    from stats
),
tails as (
    select fenced.analyte,
        count(*) filter (where l.value_canonical < fenced.low_fence) as below_low_fence,
        count(*) filter (where l.value_canonical > fenced.high_fence) as above_high_fence
    from lab_results as l inner join fenced on fenced.analyte = l.analyte
    group by fenced.analyte
)
select fenced.analyte, rule_analytes.canonical_unit as unit, results, min, p01, q1, median, q3,
    p99, max, low_fence, high_fence, below_low_fence, above_high_fence, at_or_below_zero,
    getvariable('report.implausible_iqr_fence')::double as iqr_fence
from fenced inner join tails on tails.analyte = fenced.analyte
left join rule_analytes on rule_analytes.analyte = fenced.analyte
order by analyte
"""
UNIT_CONVERSIONS = """
select analyte, coalesce(unit_key, '(none)') as unit, factor_to_canonical as factor,
    count(*) as results
from lab_results where analyte is not null
group by all order by analyte, unit, factor
"""
UNMAPPED_TESTS = """
select coalesce(loinc, '') as loinc, coalesce(test_name, '') as test_name, count(*) as results
from lab_results where analyte is null
group by all order by results desc, loinc, test_name
"""


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    database = CriteriaDB(tmp_path_factory.mktemp("audit"))
    # 3,000 results of 40 patients: heavy tails for the fences, repeated values, values at and
    # below zero, censored and name-coded results, tests no rule uses, and an analyte whose
    # results have no value; rule analytes without any result stay in the analytes table.
    database.insert_labs(
        """
        SELECT
            i AS _rid,
            'p' || (i % 40) AS patient_id,
            CASE i % 10 WHEN 0 THEN 'b12' WHEN 1 THEN 'b12' WHEN 2 THEN 'hgb' WHEN 3 THEN 'hgb'
                WHEN 4 THEN 'mcv' WHEN 5 THEN 'folate' WHEN 6 THEN 'mma' WHEN 7 THEN NULL
                WHEN 8 THEN 'wbc' ELSE 'platelets' END AS analyte,
            CASE WHEN i % 3 = 0 THEN 'test_name' ELSE 'loinc' END AS coded_by,
            CASE WHEN i % 97 = 0 THEN '<' END AS censor,
            CASE
                WHEN i % 10 = 6 THEN NULL
                WHEN i % 211 = 0 THEN -1.5
                WHEN i % 89 = 0 THEN 0
                WHEN i % 53 = 0 THEN 90000 + i
                ELSE round(100 + (hash(i) % 1000) / 10.0, 1)
            END AS value_canonical,
            CASE WHEN i % 10 = 7 THEN '0000-' || (i % 5) END AS loinc,
            CASE WHEN i % 10 = 7 THEN 'unused test ' || (i % 3) END AS test_name,
            -- from two years before the as-of date to a month after it (a backfill's view)
            getvariable('run.as_of')::timestamp + to_days(30 - (i * 7919) % 760)
                + to_hours(i % 24) AS collected_at
        FROM range(3000) AS t (i)
        """
    )
    # B12 results only after the as-of date, or only before its look-back: not tested
    database.insert_labs(
        """
        SELECT * FROM (VALUES
            (5001, 'late', 'b12', 'loinc', 300, getvariable('run.as_of')::timestamp + INTERVAL 3 DAY),
            (5002, 'old', 'b12', 'loinc', 300, getvariable('run.as_of')::timestamp - INTERVAL 800 DAY)
        ) AS v (_rid, patient_id, analyte, coded_by, value_canonical, collected_at)
        """
    )
    # and one on the first day of its look-back: tested
    database.insert_labs(
        """
        SELECT 5003 AS _rid, 'edge' AS patient_id, 'b12' AS analyte, 'loinc' AS coded_by,
            300 AS value_canonical,
            (getvariable('run.as_of')::date - lookback_days::integer)::timestamp AS collected_at
        FROM rule_analytes WHERE analyte = 'b12'
        """
    )
    database.refresh_state()  # the kept lab state the patient counts read, as a run has it
    database.con.execute("CREATE TEMP TABLE run_worklist (patient_id VARCHAR, priority VARCHAR)")
    yield database
    database.close()


def _rows(db, sql: str) -> list[tuple]:
    return db.con.execute(sql).fetchall()


def test_analytes_count_what_they_counted(db):
    new = db.con.execute(read_sql("audit/analytes.sql"))
    names = [d[0] for d in new.description]
    got = new.fetchall()
    old = db.con.execute(ANALYTES)
    assert names == [d[0] for d in old.description]
    assert got == old.fetchall()
    by_analyte = {r[0]: dict(zip(names, r, strict=True)) for r in got}
    assert by_analyte["b12"]["results"] == 603 and by_analyte["b12"]["patients"] == 11
    assert by_analyte["anc"]["results"] == 0 and by_analyte["anc"]["patients"] == 0


def test_the_funnel_counts_the_patients_tested_it_counted(db):
    funnel = db.con.execute(read_sql("audit/funnel.sql"))
    names = [d[0] for d in funnel.description]
    tested = [
        (row["item"], row["patients"])
        for row in (dict(zip(names, r, strict=True)) for r in funnel.fetchall())
        if row["stage"] == "tested"
    ]
    assert tested == _rows(db, TESTED)
    counts = dict(tested)
    assert counts["b12"] == 9  # "edge", but neither "late" nor "old"
    assert counts["anc"] == 0


def test_value_distributions_are_the_exact_percentiles_and_tails(db):
    new = db.con.execute(read_sql("audit/value_distributions.sql"))
    names = [d[0] for d in new.description]
    got = new.fetchall()
    old = db.con.execute(VALUE_DISTRIBUTIONS)
    assert names == [d[0] for d in old.description]
    expected = old.fetchall()
    assert [r[0] for r in got] == [r[0] for r in expected]
    for mine, theirs in zip(got, expected, strict=True):
        for name, a, b in zip(names, mine, theirs, strict=True):
            if isinstance(b, float):
                assert a == pytest.approx(b, rel=1e-12, abs=1e-9), (mine[0], name)
            else:
                assert a == b, (mine[0], name)
    rows = {r[0]: dict(zip(names, r, strict=True)) for r in got}
    assert rows["mma"]["results"] == 0 and rows["mma"]["median"] is None  # no value at all
    assert rows["mma"]["below_low_fence"] == 0
    assert sum(r["above_high_fence"] for r in rows.values()) >= 40  # the 90,000s
    assert sum(r["at_or_below_zero"] for r in rows.values()) > 0


def test_unit_conversions_and_unmapped_tests_count_the_stored_results(db):
    conversions = _rows(
        db,
        f"SELECT * FROM ({read_sql('audit/unit_conversions.sql')}) ORDER BY analyte, unit, factor",
    )
    assert conversions == _rows(db, UNIT_CONVERSIONS)
    assert (
        sum(r[3] for r in conversions)
        == _rows(db, "SELECT count(*) FROM lab_results WHERE analyte IS NOT NULL")[0][0]
    )
    unmapped = _rows(db, read_sql("audit/unmapped_tests.sql"))
    assert unmapped == _rows(db, UNMAPPED_TESTS)
    assert sum(r[2] for r in unmapped) == 300  # every tenth of the 3,000 has no analyte
