"""Given/expect tests of the care-process measures (sql/measures, [measures] of the rules file).

A measure's SQL returns one row per patient in its denominator, saying whether the patient is
in the numerator and the date the measure is about. Each table below is one screening run
(a module-scoped fixture) and each patient in it one test; the run is the real one
(``harness.screen``), with ``ScreeningRun.screen`` wrapped so that, once the criteria and
``compute_measures`` have run, the run's ``run_measure_members`` and the counts it returned
are kept for the tests.

A table has one row per input event of a patient:

- ``lab``: a lab result; ``what`` the analyte, ``value`` in its canonical unit, ``start`` the
  collection date (empty: the harness's DEFAULT_COLLECTED_AT, T-23);
- ``med``: a medication order; ``what`` the medication text, ``start``/``end`` its dates
  (``end`` empty = open-ended);
- ``-``: nothing.

Dates are ``T``/``T-N``/``T+N``: the as-of date 2026-11-24, N days before/after. On one row
of each patient, ``expect`` says where the patient stands in the table's measure: ``-`` not in
the denominator, ``den`` in the denominator only, ``num`` in the numerator too; ``event_on``
the event_date the measure reports for a patient in the denominator (``-`` = none). Every
expectation is worked out by hand from the measure's definition in data/rules/guidance.toml
(the day counts are in the comments), never copied from output.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from pipeline.runner import RunConfig, ScreeningRun, run_screening

try:
    from harness import (
        AS_OF,
        ROOT,
        RULES,
        ScreeningResult,
        param,
        rows_by_patient,
        screen_through_files,
    )
except ModuleNotFoundError:  # tests/ imported as a package
    from tests.harness import (
        AS_OF,
        ROOT,
        RULES,
        ScreeningResult,
        param,
        rows_by_patient,
        screen_through_files,
    )

MEASURES = tuple(RULES["measures"])
NEVER = "never-no-data"  # in every run: no labs, no medications, in no measure
CYANO = "cyanocobalamin 1000 mcg injection"
HYDROXO = "hydroxocobalamin 1 mg injection"
FOLIC = "folic acid 5 mg"
METFORMIN = "metformin 500 mg"
OMEPRAZOLE = "omeprazole 20 mg"

_RELATIVE = re.compile(r"^T(?:([+-])(\d+))?$")


def day(cell: str | None) -> date | None:
    """``T-7`` -> the date 7 days before as-of; ``None`` stays ``None``."""
    if cell is None:
        return None
    m = _RELATIVE.match(cell)
    assert m, f"not a T-relative date: {cell!r}"
    sign, n = m.groups()
    return AS_OF + timedelta(days=0 if n is None else int(n) * (1 if sign == "+" else -1))


def test_relative_dates_are_what_the_comments_say():
    assert day("T") == date(2026, 11, 24)
    assert day("T-7") == date(2026, 11, 17)
    assert day("T-30") == date(2026, 10, 25)
    assert day("T-365") == date(2025, 11, 24)
    assert day("T+1") == date(2026, 11, 25)


def measure_param(measure: str, key: str, profile: str = "guidance") -> Any:
    """A measure parameter as the rules file (or a profile extending it) sets it."""
    path = ROOT / "data" / "rules" / f"{profile}.toml"
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    value = data.get("measures", {}).get(measure, {}).get("params", {}).get(key, {}).get("value")
    if value is None and data.get("extends"):
        return measure_param(measure, key, data["extends"])
    return value


def test_the_tables_are_written_for_these_rule_values():
    """The day counts in the tables below assume these values: a change here needs new tables."""
    assert measure_param("b12_started_within_7_days", "window_days") == 7
    assert measure_param("folic_acid_before_b12", "lookback_days") == 30
    assert measure_param("metformin_b12_tested", "lookback_days") == 365
    assert measure_param("metformin_b12_tested", "tested_analytes") == ["b12", "mma"]
    assert measure_param("acid_suppression_b12_tested", "lookback_days") == 365
    assert measure_param("acid_suppression_b12_tested", "tested_analytes") == ["b12", "mma"]
    assert measure_param("therapy_response_checked", "from_day") == 5
    assert measure_param("therapy_response_checked", "to_day") == 10
    assert measure_param("therapy_response_checked", "lookback_days") == 365
    assert measure_param("therapy_response_checked", "from_day", "primary-sources") == 3
    assert measure_param("therapy_response_checked", "to_day", "primary-sources") == 10
    assert param("b12_deficient.below_pg_ml") == 180
    assert param("mma_elevated.above_nmol_l") == 271
    assert param("metformin_long_term.min_exposure_days") == 120
    assert param("acid_suppression_long_term.min_exposure_days") == 365
    assert param("pseudo_tma_suspect.ldh_above_u_l") == 250
    assert param("anemia.male_below_g_dl") == 13.0  # harness patients are male
    assert param("thrombocytopenia.below_10e9_l") == 150


# -- cases and runs -------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    name: str
    expect: str  # "-", "den" or "num"
    event_on: date | None
    labs: tuple[dict, ...]
    meds: tuple[dict, ...]


def cases_from(text: str, expect: str = "expect") -> list[Case]:
    """The patients of a table, in order; ``expect`` names the column holding expectations."""
    cases = []
    for pid, rows in rows_by_patient(text).items():
        expects = [r for r in rows if r.get(expect) is not None]
        assert len(expects) == 1, f"{pid}: give {expect} on exactly one row"
        wanted, on = expects[0][expect], expects[0].get("event_on")
        assert wanted in ("-", "den", "num"), f"{pid}: {expect} {wanted!r}"
        assert (wanted == "-") == (on is None), f"{pid}: event_on goes with den/num"
        labs, meds = [], []
        for r in rows:
            if r["kind"] == "lab":
                lab = {"patient_id": pid, "analyte": r["what"], "value": r["value"]}
                if r["start"]:
                    lab["collected_at"] = day(r["start"]).isoformat()
                labs.append(lab)
            elif r["kind"] == "med":
                end = day(r["end"])
                meds.append(
                    {
                        "patient_id": pid,
                        "medication": r["what"],
                        "start_date": day(r["start"]).isoformat(),
                        "end_date": end and end.isoformat(),
                    }
                )
            else:
                assert r["kind"] == "-", f"{pid}: unknown kind {r['kind']!r}"
        event_on = None if on in (None, "-") else day(on)
        cases.append(Case(pid, wanted, event_on, tuple(labs), tuple(meds)))
    return cases


@dataclass
class MeasureRun:
    """One run: the screening's outputs and what compute_measures left behind."""

    screening: ScreeningResult
    rows: list[tuple[str, str, bool, date | None]]  # run_measure_members, as the run left it
    measures: dict[str, dict]  # compute_measures' dicts, by measure
    history: list[tuple[str, int, int]]  # measures_history of this run: measure, num, den

    def member(self, measure: str, patient_id: str) -> tuple[bool, date | None] | None:
        found = [(n, d) for m, p, n, d in self.rows if m == measure and p == patient_id]
        assert len(found) <= 1, f"{len(found)} rows for {patient_id} in {measure}"
        return found[0] if found else None


def capture_measures(run_it):
    """Run ``run_it()`` with ScreeningRun.screen wrapped to keep the measures it computed."""
    captured: dict[str, Any] = {}
    original = ScreeningRun.screen

    def screen_and_keep(self: ScreeningRun):
        screened = original(self)
        captured["rows"] = self.con.execute(
            "SELECT measure, patient_id, in_numerator, event_date FROM run_measure_members"
        ).fetchall()
        captured["measures"] = {m["measure"]: dict(m) for m in screened.measures}
        captured["run_id"] = self.run_id
        return screened

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ScreeningRun, "screen", screen_and_keep)
        result = run_it()
    return result, captured


def history_of(db: Path, run_id: str) -> list[tuple[str, int, int]]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(
            "SELECT measure, numerator, denominator FROM measures_history WHERE run_id = ? "
            "ORDER BY measure",
            [run_id],
        ).fetchall()


def run_cases(cases: list[Case], workdir: Path, rules: str | None = None) -> MeasureRun:
    names = [c.name for c in cases]
    assert len(names) == len(set(names)) and NEVER not in names
    result, captured = capture_measures(
        lambda: screen_through_files(
            [{"patient_id": c.name} for c in cases] + [{"patient_id": NEVER}],
            [lab for c in cases for lab in c.labs],
            medications=[m for c in cases for m in c.meds],
            workdir=workdir,
            rules=rules,
        )
    )
    return MeasureRun(
        result,
        captured["rows"],
        captured["measures"],
        history_of(workdir / "b12screen.duckdb", captured["run_id"]),
    )


def table_fixture(cases: list[Case], rules: str | None = None):
    @pytest.fixture(scope="module")
    def run(tmp_path_factory) -> MeasureRun:
        return run_cases(cases, tmp_path_factory.mktemp("measures"), rules=rules)

    return run


def check(run: MeasureRun, measure: str, case: Case) -> None:
    got = run.member(measure, case.name)
    why = f"\n{measure}: {got}" + run.screening.explain(case.name)
    if case.expect == "-":
        assert got is None, f"{case.name} should not be in the denominator{why}"
    else:
        assert got == (case.expect == "num", case.event_on), why


def check_run(run: MeasureRun, measure: str, cases: list[Case]) -> None:
    """The run as a whole: one row per patient and measure; the counts agree three ways."""
    keys = [(m, p) for m, p, _, _ in run.rows]
    assert len(keys) == len(set(keys)), "a measure returned a patient twice"
    assert all(run.member(m, NEVER) is None for m in MEASURES), "the empty patient is counted"
    # the table holds every patient the run has: its expectations give the counts
    numerator = sum(c.expect == "num" for c in cases)
    denominator = sum(c.expect != "-" for c in cases)
    got = run.measures[measure]
    assert (got["numerator"], got["denominator"]) == (numerator, denominator)
    assert got["rate"] == (numerator / denominator if denominator else None)
    members = [r for r in run.rows if r[0] == measure]
    assert (sum(r[2] for r in members), len(members)) == (numerator, denominator)
    assert (measure, numerator, denominator) in run.history


def ids(case: Case) -> str:
    return case.name


# =============================================================================================
# b12_started_within_7_days: the earliest deficient result (b12_deficient or mma_elevated) is
# at least 7 days old; not on B12 therapy on that day (an order started before it and ending
# on or after it); numerator: a B12 order starting on day 0..7 after the result
# =============================================================================================
B12_STARTED = f"""
patient_id                  | kind | what  | start | end  | value | expect | event_on
# the window has closed when as_of - result >= 7
b7-result-6-days-ago        | lab  | b12   | T-6   |      | 150   | -      |
b7-result-7-days-ago        | lab  | b12   | T-7   |      | 150   | den    | T-7
b7-result-8-days-ago        | lab  | b12   | T-8   |      | 150   | den    | T-8
# result T-7, therapy on day +7, the as-of date itself
b7-result-7-started-day-7   | lab  | b12   | T-7   |      | 150   | num    | T-7
b7-result-7-started-day-7   | med  | {CYANO} | T   |      |       |        |
# the result on T-30: day N is T-30+N
b7-started-day-0            | lab  | b12   | T-30  |      | 150   | num    | T-30
b7-started-day-0            | med  | {CYANO} | T-30 |     |       |        |
b7-started-day-7            | lab  | b12   | T-30  |      | 150   | num    | T-30
b7-started-day-7            | med  | {CYANO} | T-23 |     |       |        |
b7-started-day-8            | lab  | b12   | T-30  |      | 150   | den    | T-30
b7-started-day-8            | med  | {CYANO} | T-22 |     |       |        |
b7-hydroxocobalamin-day-3   | lab  | b12   | T-30  |      | 150   | num    | T-30
b7-hydroxocobalamin-day-3   | med  | {HYDROXO} | T-27 |   |       |        |
# day -1: not started in the window; an order still running on the result day (open-ended, or
# ending that day) means already on therapy: out of the denominator
b7-started-day-minus-1-open | lab  | b12   | T-30  |      | 150   | -      |
b7-started-day-minus-1-open | med  | {CYANO} | T-31 |     |       |        |
b7-order-ends-on-result-day | lab  | b12   | T-30  |      | 150   | -      |
b7-order-ends-on-result-day | med  | {CYANO} | T-60 | T-30 |      |        |
# ... an order that ended the day before the result does not: in the denominator
b7-order-ended-day-minus-1  | lab  | b12   | T-30  |      | 150   | den    | T-30
b7-order-ended-day-minus-1  | med  | {CYANO} | T-60 | T-31 |      |        |
# ... but a one-day B12 record (one dose) covers settings.single_dose_cover_days (92) days:
# given the day before the result, it covers the result day (already on therapy); given 92
# days before, its cover ended the day before the result
b7-one-day-order-day-minus-1 | lab | b12   | T-30  |      | 150   | -      |
b7-one-day-order-day-minus-1 | med | {CYANO} | T-31 | T-31 |      |        |
b7-one-day-order-day-92     | lab  | b12   | T-30  |      | 150   | den    | T-30
b7-one-day-order-day-92     | med  | {CYANO} | T-122 | T-122 |     |        |
b7-one-day-order-day-91     | lab  | b12   | T-30  |      | 150   | -      |
b7-one-day-order-day-91     | med  | {CYANO} | T-121 | T-121 |     |        |
b7-ended-then-restarted     | lab  | b12   | T-30  |      | 150   | num    | T-30
b7-ended-then-restarted     | med  | {CYANO} | T-60 | T-31 |      |        |
b7-ended-then-restarted     | med  | {CYANO} | T-27 |     |       |        |
# MMA alone is a deficiency (400 > 271)
b7-mma-only-started-day-2   | lab  | mma   | T-30  |      | 400   | num    | T-30
b7-mma-only-started-day-2   | med  | {CYANO} | T-28 |     |       |        |
b7-mma-only-untreated       | lab  | mma   | T-30  |      | 400   | den    | T-30
# the earliest deficient result counts: MMA T-10 (closed), B12 T-5 (would still be open)
b7-earliest-of-b12-and-mma  | lab  | mma   | T-10  |      | 400   | den    | T-10
b7-earliest-of-b12-and-mma  | lab  | b12   | T-5   |      | 150   |        |
# not deficient: 400, and 180 (not below 180)
b7-not-deficient            | lab  | b12   | T-30  |      | 400   | -      |
b7-b12-at-limit             | lab  | b12   | T-30  |      | 180   | -      |
b7-therapy-only             | med  | {CYANO} | T-20 |     |       | -      |
"""
B12_STARTED_CASES = cases_from(B12_STARTED)
b12_started_run = table_fixture(B12_STARTED_CASES)


@pytest.mark.parametrize("case", B12_STARTED_CASES, ids=ids)
def test_b12_started_within_7_days(b12_started_run, case):
    check(b12_started_run, "b12_started_within_7_days", case)


def test_b12_started_within_7_days_counts(b12_started_run):
    check_run(b12_started_run, "b12_started_within_7_days", B12_STARTED_CASES)


# =============================================================================================
# folic_acid_before_b12: every deficient patient; numerator: the first folic acid order started
# from 30 days before the (earliest) deficient result on is earlier than the first B12 order in
# that time, or there is none; event_date: that folic acid start, else the result date
# =============================================================================================
FOLIC_ACID = f"""
patient_id                  | kind | what    | start | end  | value | expect | event_on
# the deficient result on T-20: 30 days before it is T-50
fa-folate-before-b12        | lab  | b12     | T-20  |      | 150   | num    | T-15
fa-folate-before-b12        | med  | {FOLIC} | T-15  |      |       |        |
fa-folate-before-b12        | med  | {CYANO} | T-10  |      |       |        |
fa-folate-same-day-as-b12   | lab  | b12     | T-20  |      | 150   | den    | T-10
fa-folate-same-day-as-b12   | med  | {FOLIC} | T-10  |      |       |        |
fa-folate-same-day-as-b12   | med  | {CYANO} | T-10  |      |       |        |
fa-folate-after-b12         | lab  | b12     | T-20  |      | 150   | den    | T-10
fa-folate-after-b12         | med  | {CYANO} | T-15  |      |       |        |
fa-folate-after-b12         | med  | {FOLIC} | T-10  |      |       |        |
fa-folate-no-b12            | lab  | b12     | T-20  |      | 150   | num    | T-15
fa-folate-no-b12            | med  | {FOLIC} | T-15  |      |       |        |
# the look-back: folic acid from day -30 counts, from day -31 is ignored
fa-folate-day-minus-30      | lab  | b12     | T-20  |      | 150   | num    | T-50
fa-folate-day-minus-30      | med  | {FOLIC} | T-50  | T-40 |       |        |
fa-folate-day-minus-31      | lab  | b12     | T-20  |      | 150   | den    | T-20
fa-folate-day-minus-31      | med  | {FOLIC} | T-51  | T-40 |       |        |
fa-folate-day-minus-31-b12  | lab  | b12     | T-20  |      | 150   | den    | T-20
fa-folate-day-minus-31-b12  | med  | {FOLIC} | T-51  | T-40 |       |        |
fa-folate-day-minus-31-b12  | med  | {CYANO} | T-10  |      |       |        |
# ... and so for B12: a course from day -30 is before the folic acid, one from day -31 is not
fa-b12-day-minus-30         | lab  | b12     | T-20  |      | 150   | den    | T-15
fa-b12-day-minus-30         | med  | {CYANO} | T-50  | T-45 |       |        |
fa-b12-day-minus-30         | med  | {FOLIC} | T-15  |      |       |        |
fa-b12-day-minus-31         | lab  | b12     | T-20  |      | 150   | num    | T-15
fa-b12-day-minus-31         | med  | {CYANO} | T-51  | T-45 |       |        |
fa-b12-day-minus-31         | med  | {FOLIC} | T-15  |      |       |        |
# B12 begun before the look-back counts while it still runs on the day the folic acid starts
fa-b12-running-long-before  | lab  | b12     | T-20  |      | 150   | den    | T-15
fa-b12-running-long-before  | med  | {CYANO} | T-110 |      |       |        |
fa-b12-running-long-before  | med  | {FOLIC} | T-15  |      |       |        |
fa-b12-ends-on-folate-day   | lab  | b12     | T-20  |      | 150   | den    | T-15
fa-b12-ends-on-folate-day   | med  | {CYANO} | T-110 | T-15 |       |        |
fa-b12-ends-on-folate-day   | med  | {FOLIC} | T-15  |      |       |        |
fa-b12-ended-day-before     | lab  | b12     | T-20  |      | 150   | num    | T-15
fa-b12-ended-day-before     | med  | {CYANO} | T-110 | T-16 |       |        |
fa-b12-ended-day-before     | med  | {FOLIC} | T-15  |      |       |        |
# MMA alone is a deficiency; no therapy at all is in the denominator only
fa-mma-only                 | lab  | mma     | T-20  |      | 400   | num    | T-15
fa-mma-only                 | med  | {FOLIC} | T-15  |      |       |        |
fa-no-therapy               | lab  | b12     | T-20  |      | 150   | den    | T-20
# the look-back runs from the earliest deficient result: MMA T-60 -> from T-90 (B12 T-20 -> T-50)
fa-earliest-deficient-result | lab | mma     | T-60  |      | 400   | num    | T-80
fa-earliest-deficient-result | lab | b12     | T-20  |      | 150   |        |
fa-earliest-deficient-result | med | {FOLIC} | T-80  | T-70 |       |        |
fa-not-deficient            | lab  | b12     | T-20  |      | 400   | -      |
fa-not-deficient            | med  | {FOLIC} | T-15  |      |       |        |
"""
FOLIC_ACID_CASES = cases_from(FOLIC_ACID)
folic_acid_run = table_fixture(FOLIC_ACID_CASES)


@pytest.mark.parametrize("case", FOLIC_ACID_CASES, ids=ids)
def test_folic_acid_before_b12(folic_acid_run, case):
    check(folic_acid_run, "folic_acid_before_b12", case)


def test_folic_acid_before_b12_counts(folic_acid_run):
    check_run(folic_acid_run, "folic_acid_before_b12", FOLIC_ACID_CASES)


# =============================================================================================
# metformin_b12_tested / acid_suppression_b12_tested: the long-term users (the criterion:
# exposure of more than min_exposure_days, current or recently stopped); numerator: a B12 or
# MMA result (any value) collected on as_of - 365 .. as_of; event_date: the latest such result
# =============================================================================================
# {long}: comfortably long-term; {just}: min_exposure_days + 1 days (T-N..T is N + 1 days);
# {short}: min_exposure_days days, not long-term.
DRUG_TESTED = """
patient_id                | kind | what   | start   | end | value | expect | event_on
{p}-b12-365-days-ago      | med  | {drug} | {long}  |     |       | num    | T-365
{p}-b12-365-days-ago      | lab  | b12    | T-365   |     | 500   |        |
{p}-b12-366-days-ago      | med  | {drug} | {long}  |     |       | den    | -
{p}-b12-366-days-ago      | lab  | b12    | T-366   |     | 500   |        |
{p}-b12-on-as-of          | med  | {drug} | {long}  |     |       | num    | T
{p}-b12-on-as-of          | lab  | b12    | T       |     | 500   |        |
{p}-deficient-b12         | med  | {drug} | {long}  |     |       | num    | T-23
{p}-deficient-b12         | lab  | b12    | T-23    |     | 150   |        |
{p}-mma                   | med  | {drug} | {long}  |     |       | num    | T-23
{p}-mma                   | lab  | mma    | T-23    |     | 150   |        |
{p}-folate-only           | med  | {drug} | {long}  |     |       | den    | -
{p}-folate-only           | lab  | folate | T-23    |     | 12    |        |
{p}-latest-result         | med  | {drug} | {long}  |     |       | num    | T-10
{p}-latest-result         | lab  | b12    | T-300   |     | 500   |        |
{p}-latest-result         | lab  | mma    | T-10    |     | 150   |        |
{p}-untested              | med  | {drug} | {long}  |     |       | den    | -
{p}-just-long-term        | med  | {drug} | {just}  |     |       | num    | T-23
{p}-just-long-term        | lab  | b12    | T-23    |     | 500   |        |
{p}-just-short-term       | med  | {drug} | {short} |     |       | -      |
{p}-just-short-term       | lab  | b12    | T-23    |     | 500   |        |
{p}-no-drug               | lab  | b12    | T-23    |     | 500   | -      |
"""
# metformin: more than 120 days (T-120..T = 121, T-119..T = 120); acid suppression: more than 365
DRUG_MEASURES = {
    "metformin_b12_tested": {
        "p": "met",
        "drug": METFORMIN,
        "long": "T-200",
        "just": "T-120",
        "short": "T-119",
    },
    "acid_suppression_b12_tested": {
        "p": "acid",
        "drug": OMEPRAZOLE,
        "long": "T-400",
        "just": "T-365",
        "short": "T-364",
    },
}
DRUG_CASES = {m: cases_from(DRUG_TESTED.format(**v)) for m, v in DRUG_MEASURES.items()}
# one run for both: neither table's patients take the other's drug
drug_run = table_fixture([c for cases in DRUG_CASES.values() for c in cases])
DRUG_PARAMS = [(m, c) for m, cases in DRUG_CASES.items() for c in cases]


@pytest.mark.parametrize(("measure", "case"), DRUG_PARAMS, ids=[c.name for _, c in DRUG_PARAMS])
def test_long_term_users_b12_tested(drug_run, measure, case):
    check(drug_run, measure, case)


@pytest.mark.parametrize("measure", DRUG_MEASURES)
def test_long_term_users_b12_tested_counts(drug_run, measure):
    check_run(drug_run, measure, DRUG_CASES[measure])


# A result dated after the as-of date is quarantined in a run of that day, so the measures meet
# one only when the database already holds it: a backfill to an earlier as-of date. The first
# run (as of T+10) takes in a B12 on T+1; the backfill as of T must not count it.
FUTURE_RESULT = f"""
patient_id          | kind | what         | start | end | value | expect | event_on
met-b12-after-as-of | med  | {METFORMIN}  | T-200 |     |       | den    | -
met-b12-after-as-of | lab  | b12          | T+1   |     | 500   |        |
met-b12-on-as-of    | med  | {METFORMIN}  | T-200 |     |       | num    | T
met-b12-on-as-of    | lab  | b12          | T     |     | 500   |        |
acid-mma-after-as-of | med | {OMEPRAZOLE} | T-400 |     |       | den    | -
acid-mma-after-as-of | lab | mma          | T+1   |     | 150   |        |
acid-mma-on-as-of   | med  | {OMEPRAZOLE} | T-400 |     |       | num    | T
acid-mma-on-as-of   | lab  | mma          | T     |     | 150   |        |
"""
FUTURE_CASES = cases_from(FUTURE_RESULT)


@pytest.fixture(scope="module")
def backfill_run(tmp_path_factory) -> MeasureRun:
    workdir = tmp_path_factory.mktemp("measures-backfill")
    first = screen_through_files(
        [{"patient_id": c.name} for c in FUTURE_CASES],
        [lab for c in FUTURE_CASES for lab in c.labs],
        medications=[m for c in FUTURE_CASES for m in c.meds],
        workdir=workdir,
        as_of=AS_OF + timedelta(days=10),
    )
    assert first.quarantine == []
    db = workdir / "b12screen.duckdb"
    config = RunConfig(extracts=None, out=workdir / "out", as_of=AS_OF, db=db)
    _, captured = capture_measures(lambda: run_screening(config))
    return MeasureRun(first, captured["rows"], captured["measures"], [])


@pytest.mark.parametrize("case", FUTURE_CASES, ids=ids)
def test_a_result_after_the_as_of_date_is_not_a_test(backfill_run, case):
    measure = (
        "metformin_b12_tested" if case.name.startswith("met") else "acid_suppression_b12_tested"
    )
    check(backfill_run, measure, case)


# =============================================================================================
# therapy_response_checked: the latest course of B12 therapy (orders merged where they overlap
# or touch) began on as_of - 365 .. as_of - 10; numerator: a reticulocyte or CBC result
# collected on day from_day (5) .. to_day (10) of that course; event_date: the course start
# =============================================================================================
# Two expectations: under the guidance profile (from_day 5) and primary-sources (from_day 3).
RESPONSE = f"""
patient_id                  | kind | what              | start | end   | value | guidance | primary | event_on
# the window has closed when the course began on as_of - 10 or before
tr-began-10-days-ago        | med  | {CYANO}           | T-10  |       |       | den      | den     | T-10
tr-began-10-checked-day-10  | med  | {CYANO}           | T-10  |       |       | num      | num     | T-10
tr-began-10-checked-day-10  | lab  | reticulocytes_pct | T     |       | 2.5   |          |         |
tr-began-9-days-ago         | med  | {CYANO}           | T-9   |       |       | -        | -       |
tr-began-9-days-ago         | lab  | reticulocytes_pct | T-4   |       | 2.5   |          |         |
# the course began on T-30: day N is T-30+N
tr-retic-day-2              | med  | {CYANO}           | T-30  |       |       | den      | den     | T-30
tr-retic-day-2              | lab  | reticulocytes_pct | T-28  |       | 2.5   |          |         |
tr-retic-day-3              | med  | {CYANO}           | T-30  |       |       | den      | num     | T-30
tr-retic-day-3              | lab  | reticulocytes_pct | T-27  |       | 2.5   |          |         |
tr-retic-day-4              | med  | {CYANO}           | T-30  |       |       | den      | num     | T-30
tr-retic-day-4              | lab  | reticulocytes_pct | T-26  |       | 2.5   |          |         |
tr-retic-day-5              | med  | {CYANO}           | T-30  |       |       | num      | num     | T-30
tr-retic-day-5              | lab  | reticulocytes_pct | T-25  |       | 2.5   |          |         |
tr-retic-day-10             | med  | {CYANO}           | T-30  |       |       | num      | num     | T-30
tr-retic-day-10             | lab  | reticulocytes_pct | T-20  |       | 2.5   |          |         |
tr-retic-day-11             | med  | {CYANO}           | T-30  |       |       | den      | den     | T-30
tr-retic-day-11             | lab  | reticulocytes_pct | T-19  |       | 2.5   |          |         |
tr-retic-count-day-7        | med  | {CYANO}           | T-30  |       |       | num      | num     | T-30
tr-retic-count-day-7        | lab  | reticulocytes     | T-23  |       | 60    |          |         |
tr-hgb-day-7                | med  | {CYANO}           | T-30  |       |       | num      | num     | T-30
tr-hgb-day-7                | lab  | hgb               | T-23  |       | 11.5  |          |         |
tr-b12-day-7-is-no-response | med  | {CYANO}           | T-30  |       |       | den      | den     | T-30
tr-b12-day-7-is-no-response | lab  | b12               | T-23  |       | 500   |          |         |
# courses: touching (next start = end + 1) and overlapping orders are one course from the
# first start, T-40, so the result on T-35 is its day 5 (day -5 of the later order)
tr-touching-orders          | med  | {CYANO}           | T-40  | T-31  |       | num      | num     | T-40
tr-touching-orders          | med  | {CYANO}           | T-30  |       |       |          |         |
tr-touching-orders          | lab  | reticulocytes_pct | T-35  |       | 2.5   |          |         |
tr-overlapping-orders       | med  | {CYANO}           | T-40  | T-20  |       | num      | num     | T-40
tr-overlapping-orders       | med  | {HYDROXO}         | T-35  |       |       |          |         |
tr-overlapping-orders       | lab  | reticulocytes_pct | T-35  |       | 2.5   |          |         |
# a day's gap (T-31) makes two courses; the latest, from T-30, is the one measured
tr-gap-of-one-day           | med  | {CYANO}           | T-40  | T-32  |       | den      | den     | T-30
tr-gap-of-one-day           | med  | {CYANO}           | T-30  |       |       |          |         |
tr-gap-of-one-day           | lab  | reticulocytes_pct | T-35  |       | 2.5   |          |         |
tr-latest-course-too-recent | med  | {CYANO}           | T-100 | T-90  |       | -        | -       |
tr-latest-course-too-recent | med  | {CYANO}           | T-5   |       |       |          |         |
tr-latest-course-too-recent | lab  | reticulocytes_pct | T-95  |       | 2.5   |          |         |
# the look-back: a course begun 365 days ago counts, 366 not
tr-began-365-days-ago       | med  | {CYANO}           | T-365 | T-300 |       | num      | num     | T-365
tr-began-365-days-ago       | lab  | reticulocytes_pct | T-360 |       | 2.5   |          |         |
tr-began-366-days-ago       | med  | {CYANO}           | T-366 | T-300 |       | -        | -       |
tr-began-366-days-ago       | lab  | reticulocytes_pct | T-361 |       | 2.5   |          |         |
tr-no-therapy               | lab  | reticulocytes_pct | T-25  |       | 2.5   | -        | -       |
"""
RESPONSE_CASES = {p: cases_from(RESPONSE, p) for p in ("guidance", "primary")}
response_run = table_fixture(RESPONSE_CASES["guidance"])
response_primary_run = table_fixture(RESPONSE_CASES["primary"], rules="primary-sources")


@pytest.mark.parametrize("case", RESPONSE_CASES["guidance"], ids=ids)
def test_therapy_response_checked(response_run, case):
    check(response_run, "therapy_response_checked", case)


@pytest.mark.parametrize("case", RESPONSE_CASES["primary"], ids=ids)
def test_therapy_response_checked_primary_sources(response_primary_run, case):
    """primary-sources opens the window on day 3: days 3 and 4 count there, not under guidance."""
    check(response_primary_run, "therapy_response_checked", case)


def test_therapy_response_checked_counts(response_run, response_primary_run):
    check_run(response_run, "therapy_response_checked", RESPONSE_CASES["guidance"])
    check_run(response_primary_run, "therapy_response_checked", RESPONSE_CASES["primary"])


# =============================================================================================
# pseudo_tma_suspected: every deficient patient; numerator: pseudo_tma_suspect (anaemia,
# platelets below 150, LDH above 250); event_date: the deficient result. Labs on T-23.
# =============================================================================================
PSEUDO_TMA = """
patient_id             | kind | what      | start | end | value | expect | event_on
pt-all-four            | lab  | b12       |       |     | 150   | num    | T-23
pt-all-four            | lab  | hgb       |       |     | 9     |        |
pt-all-four            | lab  | platelets |       |     | 90    |        |
pt-all-four            | lab  | ldh       |       |     | 600   |        |
pt-ldh-250             | lab  | b12       |       |     | 150   | den    | T-23
pt-ldh-250             | lab  | hgb       |       |     | 9     |        |
pt-ldh-250             | lab  | platelets |       |     | 90    |        |
pt-ldh-250             | lab  | ldh       |       |     | 250   |        |
pt-ldh-251             | lab  | b12       |       |     | 150   | num    | T-23
pt-ldh-251             | lab  | hgb       |       |     | 9     |        |
pt-ldh-251             | lab  | platelets |       |     | 90    |        |
pt-ldh-251             | lab  | ldh       |       |     | 251   |        |
pt-platelets-150       | lab  | b12       |       |     | 150   | den    | T-23
pt-platelets-150       | lab  | hgb       |       |     | 9     |        |
pt-platelets-150       | lab  | platelets |       |     | 150   |        |
pt-platelets-150       | lab  | ldh       |       |     | 600   |        |
pt-hgb-13              | lab  | b12       |       |     | 150   | den    | T-23
pt-hgb-13              | lab  | hgb       |       |     | 13    |        |
pt-hgb-13              | lab  | platelets |       |     | 90    |        |
pt-hgb-13              | lab  | ldh       |       |     | 600   |        |
pt-mma-only            | lab  | mma       | T-30  |     | 400   | num    | T-30
pt-mma-only            | lab  | hgb       |       |     | 9     |        |
pt-mma-only            | lab  | platelets |       |     | 90    |        |
pt-mma-only            | lab  | ldh       |       |     | 600   |        |
pt-deficient-only      | lab  | b12       | T-40  |     | 150   | den    | T-40
# event_date: the earliest deficient result (MMA T-30, B12 T-23)
pt-mma-and-b12         | lab  | mma       | T-30  |     | 400   | num    | T-30
pt-mma-and-b12         | lab  | b12       |       |     | 150   |        |
pt-mma-and-b12         | lab  | hgb       |       |     | 9     |        |
pt-mma-and-b12         | lab  | platelets |       |     | 90    |        |
pt-mma-and-b12         | lab  | ldh       |       |     | 600   |        |
pt-not-deficient       | lab  | b12       |       |     | 400   | -      |
pt-not-deficient       | lab  | hgb       |       |     | 9     |        |
pt-not-deficient       | lab  | platelets |       |     | 90    |        |
pt-not-deficient       | lab  | ldh       |       |     | 600   |        |
"""
PSEUDO_TMA_CASES = cases_from(PSEUDO_TMA)
pseudo_tma_run = table_fixture(PSEUDO_TMA_CASES)


@pytest.mark.parametrize("case", PSEUDO_TMA_CASES, ids=ids)
def test_pseudo_tma_suspected(pseudo_tma_run, case):
    check(pseudo_tma_run, "pseudo_tma_suspected", case)


def test_pseudo_tma_suspected_counts(pseudo_tma_run):
    check_run(pseudo_tma_run, "pseudo_tma_suspected", PSEUDO_TMA_CASES)
    # the numerator is exactly the patients meeting the criterion
    suspects = {p for p, c in pseudo_tma_run.screening.flag_set if c == "pseudo_tma_suspect"}
    assert {p for m, p, n, _ in pseudo_tma_run.rows if m == "pseudo_tma_suspected" and n} == (
        suspects
    )


# =============================================================================================
# Every measure of the rules file has its counts, even with nobody in its denominator
# =============================================================================================
@pytest.fixture(scope="module")
def empty_run(tmp_path_factory) -> MeasureRun:
    cases = cases_from("""
        patient_id  | kind | what | start | end | value | expect | event_on
        normal-b12  | lab  | b12  |       |     | 400   | -      |
    """)
    return run_cases(cases, tmp_path_factory.mktemp("measures-empty"))


def test_every_measure_has_counts_when_its_denominator_is_empty(empty_run):
    assert empty_run.rows == []
    assert list(empty_run.measures) == list(MEASURES)
    for mid, got in empty_run.measures.items():
        assert (got["numerator"], got["denominator"], got["rate"]) == (0, 0, None), mid
        assert got["title"] == RULES["measures"][mid]["title"]
        assert got["better"] == RULES["measures"][mid]["better"]
        for text in (got["numerator_definition"], got["denominator_definition"]):
            assert "{" not in text, f"{mid}: unfilled placeholder in {text!r}"
    assert sorted(empty_run.history) == sorted((m, 0, 0) for m in MEASURES)


def test_every_measure_has_counts_in_a_run_that_fills_only_one(pseudo_tma_run):
    """pseudo_tma's run has no medications: the drug measures are there with denominator 0."""
    assert list(pseudo_tma_run.measures) == list(MEASURES)
    for mid in ("metformin_b12_tested", "acid_suppression_b12_tested", "therapy_response_checked"):
        got = pseudo_tma_run.measures[mid]
        assert (got["numerator"], got["denominator"], got["rate"]) == (0, 0, None), mid
    # the deficient patients are the denominator of the other deficiency measures too
    deficient = sum(c.expect != "-" for c in PSEUDO_TMA_CASES)
    assert pseudo_tma_run.measures["folic_acid_before_b12"]["denominator"] == deficient
