"""Tested for B12 or MMA is one macro, tested_within() (sql/intermediate/tested_within.sql).

b12_screening_due (within the test interval), cytopenia_b12_untested (within each analyte's
look-back) and the two *_b12_tested measures all read it. Here the macro itself, over rows put
straight into an empty lab_results of a database prepared by the runner (CriteriaDB).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest

from pipeline import resources

try:
    from harness import AS_OF, CriteriaDB, lookback_days
except ModuleNotFoundError:  # tests/ imported as a package
    from tests.harness import AS_OF, CriteriaDB, lookback_days


def at(days_before: int, hour: int = 0) -> datetime:
    return datetime(AS_OF.year, AS_OF.month, AS_OF.day, hour) - timedelta(days=days_before)


# patient, analyte, days before as-of, hour of the day
ROWS = [
    ("b12-on-as-of", "b12", 0, 9),
    ("b12-30", "b12", 30, 0),
    ("b12-31", "b12", 31, 0),
    ("mma-31-and-b12-400", "mma", 31, 14),
    ("mma-31-and-b12-400", "b12", 400, 0),
    ("folate-only", "folate", 5, 0),
    ("b12-after-as-of", "b12", -1, 0),
    ("b12-at-lookback", "b12", lookback_days("b12"), 0),
    ("b12-past-lookback", "b12", lookback_days("b12") + 1, 0),
]


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    database = CriteriaDB(tmp_path_factory.mktemp("tested"))
    for patient, analyte, days, hour in ROWS:
        database.insert_labs(
            "SELECT ?::VARCHAR AS patient_id, ?::VARCHAR AS analyte, ?::TIMESTAMP AS collected_at",
            [patient, analyte, at(days, hour)],
        )
    database.refresh_state()
    yield database
    database.close()


def rows_of(db, call: str) -> dict[str, tuple]:
    rows = db.sql(f"SELECT * FROM {call}")
    return {r["patient_id"]: (r["is_tested"], r["tested_on"], r["last_tested_at"]) for r in rows}


def test_within_days_both_ends_counted_and_the_last_test_however_old(db):
    got = rows_of(db, "tested_within(30)")
    assert got == {
        "b12-on-as-of": (True, at(0).date(), at(0, 9)),
        "b12-30": (True, at(30).date(), at(30)),
        "b12-31": (False, None, at(31)),
        "mma-31-and-b12-400": (False, None, at(31, 14)),
        "b12-at-lookback": (False, None, at(lookback_days("b12"))),
        "b12-past-lookback": (False, None, at(lookback_days("b12") + 1)),
    }  # folate is not B12 or MMA; a result after the as-of date does not count


def test_null_days_is_each_analytes_own_lookback(db):
    got = rows_of(db, "tested_within(null)")
    assert {p for p, (is_tested, _, _) in got.items() if is_tested} == {
        "b12-on-as-of",
        "b12-30",
        "b12-31",
        "mma-31-and-b12-400",
        "b12-at-lookback",
    }
    assert got["mma-31-and-b12-400"] == (True, at(31).date(), at(31, 14))


def test_a_measure_passes_its_own_analytes(db):
    assert rows_of(db, "tested_within(30, analytes := ['folate'])") == {
        "folate-only": (True, at(5).date(), at(5)),
    }


def test_every_reader_of_tested_for_b12_or_mma_calls_the_macro():
    sql = resources.sql_dir()
    readers = [
        "criteria/b12_screening_due.sql",
        "criteria/cytopenia_b12_untested.sql",
        "measures/metformin_b12_tested.sql",
        "measures/acid_suppression_b12_tested.sql",
    ]
    for name in readers:
        assert "tested_within(" in (sql / name).read_text(encoding="utf-8"), name
    b12_and_mma = re.compile(r"'b12',\s*'mma'|'mma',\s*'b12'")
    elsewhere = [
        str(p.relative_to(sql))
        for p in sorted(sql.rglob("*.sql"))
        if b12_and_mma.search(p.read_text(encoding="utf-8"))
    ]
    assert elsewhere == ["intermediate/tested_within.sql"]
