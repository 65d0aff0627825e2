"""Impossible values are quarantined with a reason; possible ones are kept.

Given: for every analyte of the rules file, results at, just inside and just outside its
plausible range (``[analytes.<id>] plausible``), in its canonical unit and in every other unit
data/lab_units.csv lists for it (the value converted by the factor written there). Expect: a
value outside the range is quarantined with the reason naming the analyte's label; one on the
edge or inside is kept. The ranges and labels are read from the rules file here, the
conversions from the units table; nothing is taken from the code under test.

Also impossible by construction: a number too large for a double (``1e309``), a date with a
five-digit year or before year 1000, and a birth date that makes a patient older than the rules
file's maximum age.
"""

from __future__ import annotations

from datetime import date

import pytest

pytestmark = pytest.mark.reliability  # docs/reliability.md

try:
    from harness import AS_OF, RULES, screen, units_of
except ModuleNotFoundError:  # tests/ imported as a package
    from tests.harness import AS_OF, RULES, screen, units_of

ANALYTES = RULES["analytes"]
REASON = "value outside the physiologically possible range for {label}"


def _cases() -> list[tuple[str, str, str, float, bool]]:
    """(case id, analyte, unit spelling, value in that unit, expected quarantined)."""
    cases = []
    for aid, spec in ANALYTES.items():
        low, high = spec["plausible"]["low"], spec["plausible"]["high"]
        span = high - low
        canonical = {  # values in the canonical unit
            "at-low": (low, False),
            "inside": (low + span / 2, False),
            "at-high": (high, False),
            "above-high": (high + max(span * 1e-4, 1e-6), True),
        }
        if low > 0:
            canonical["below-low"] = (low - min(low / 10, span * 1e-4), True)
        for unit, factor in units_of(aid):
            for name, (value, bad) in canonical.items():
                if name.startswith("at-") and float(factor) != 1:
                    continue  # an edge converted back may land on either side of it
                cases.append((f"{aid}-{unit}-{name}", aid, unit, value / float(factor), bad))
    return cases


CASES = _cases()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    labs = [
        {"patient_id": case, "analyte": aid, "unit": unit, "value": repr(value)}
        for case, aid, unit, value, _ in CASES
    ]
    return screen(labs=labs, workdir=tmp_path_factory.mktemp("plausibility"))


def test_every_analyte_has_a_range_with_its_source():
    for aid, spec in ANALYTES.items():
        plausible = spec["plausible"]
        assert plausible["low"] < plausible["high"], aid
        assert plausible["source"].strip(), aid


@pytest.mark.parametrize(("case", "aid", "unit", "value", "bad"), CASES, ids=[c[0] for c in CASES])
def test_a_value_outside_the_range_is_quarantined_naming_the_analyte(
    run, case, aid, unit, value, bad
):
    reasons = run.reasons(case)
    if bad:
        assert reasons == [REASON.format(label=ANALYTES[aid]["label"])], run.explain(case)
    else:
        assert reasons == [], run.explain(case)


def test_a_number_too_large_for_a_double_is_not_a_number(tmp_path):
    result = screen(
        labs=[
            {"patient_id": "huge", "analyte": "b12", "value": "1e309"},
            {"patient_id": "large", "analyte": "b12", "value": "1e300"},
        ],
        workdir=tmp_path,
    )
    assert result.reasons("huge") == ["value is not a number"]
    assert result.reasons("large") == [REASON.format(label=ANALYTES["b12"]["label"])]


@pytest.mark.parametrize(
    ("collected_at", "reason"),
    [
        ("10000-01-01", "collected_at missing or unreadable"),
        ("99999-12-31", "collected_at missing or unreadable"),
        ("0999-12-31", "collected_at missing or unreadable"),
        ("1000-01-01", None),
        ("9999-12-31", "collected_at: date after the as-of date"),
    ],
)
def test_dates_hold_four_digit_years(tmp_path, collected_at, reason):
    result = screen(
        labs=[{"patient_id": "p", "analyte": "b12", "value": "300", "collected_at": collected_at}],
        workdir=tmp_path,
    )
    assert result.reasons("p") == ([reason] if reason else [])


def _years_before(years: int, days: int = 0) -> str:
    born = AS_OF.replace(year=AS_OF.year - years)
    return date.fromordinal(born.toordinal() + days).isoformat()


MAX_AGE = RULES["settings"]["max_age_years"]["value"]
OLD = "birth_date: older than the plausible maximum age (settings.max_age_years)"


@pytest.mark.parametrize(
    ("birth_date", "reason"),
    [
        (_years_before(MAX_AGE, days=-1), OLD),  # one day past the maximum age
        (_years_before(MAX_AGE), None),  # exactly the maximum age
        (_years_before(MAX_AGE, days=1), None),
        ("1850-01-01", OLD),
        ("0001-01-01", "birth_date missing or unreadable"),  # a system's empty date
        ("0000-01-01", "birth_date missing or unreadable"),  # year 0 is 1 BC
    ],
)
def test_a_birth_date_older_than_anyone_has_lived_is_quarantined(tmp_path, birth_date, reason):
    result = screen(
        patients=[{"patient_id": "p", "birth_date": birth_date}],
        labs=[{"patient_id": "p", "analyte": "b12", "value": "300"}],
        workdir=tmp_path,
    )
    quarantined = [q["reason"] for q in result.quarantine if q["kind"] == "patients"]
    assert quarantined == ([reason] if reason else [])
