"""Given/expect tests of the medication, diagnosis and safety criteria (docs/criteria.md).

The nine criteria, read exactly as docs/criteria-semantics.md states them:
metformin_long_term, acid_suppression_long_term, b12_lowering_drug, risk_condition,
b12_screening_due, folate_without_b12, cyanocobalamin_renal, deficiency_untreated and
monitoring_overdue.

Each table below is one screening run (a module-scoped fixture) and each patient in it one
test. A table has one row per input event of a patient:

- ``med``: a medication order; ``what`` is the medication text, or ``rxnorm=CODE`` /
  ``atc=CODE`` for a row that carries only that code; ``start``/``end`` its dates (``end``
  empty = open-ended); an optional ``route`` column its route as written;
- ``dx``: a diagnosis; ``what`` the code as the source writes it, ``start`` its recorded_at
  (default: 100 days before as-of);
- ``lab``: a lab result; ``what`` the analyte, ``value`` in its canonical unit, ``start``
  the collection date (default: the harness's DEFAULT_COLLECTED_AT, 23 days before as-of);
- ``born``: the patient's birth date in ``start`` (default: the harness's, 66 years old);
- ``-``: nothing (a patient with no data at all).

Dates are ISO dates or ``T``/``T-N``/``T+N``: the as-of date 2026-11-24, N days before/after.
Anything else in a date cell (``soon``) is written as it stands. ``expect`` (on any row of
the patient) lists the criteria met among the table's checked ones; ``quarantine`` on a row
says that this row must be quarantined, with a reason containing that text.

Every expectation is worked out by hand from docs/criteria-semantics.md (the day counts are
in the comments). Every run also holds a patient with no labs, medications or diagnoses, who
must never be flagged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

try:
    from harness import (
        AS_OF,
        MED_CRITERIA,
        RULES,
        ScreeningResult,
        criteria_set,
        param,
        rows_by_patient,
        screen,
    )
except ModuleNotFoundError:  # tests/ imported as a package
    from tests.harness import (
        AS_OF,
        MED_CRITERIA,
        RULES,
        ScreeningResult,
        criteria_set,
        param,
        rows_by_patient,
        screen,
    )

DRUG_CONTEXT = frozenset({"metformin_long_term", "acid_suppression_long_term", "b12_lowering_drug"})
DEFAULT_RECORDED_AT = "T-100"
NEVER = "never-all-missing"  # in every run: no labs, no medications, no diagnoses

_RELATIVE = re.compile(r"^T(?:([+-])(\d+))?$")


def day(cell: str | None) -> str | None:
    """``T-120`` -> the ISO date 120 days before as-of; ISO dates and other text unchanged."""
    if cell is None:
        return None
    m = _RELATIVE.match(cell)
    if not m:
        return cell
    sign, n = m.groups()
    offset = 0 if n is None else int(n) * (1 if sign == "+" else -1)
    return (AS_OF + timedelta(days=offset)).isoformat()


def test_relative_dates_are_what_the_comments_say():
    """The T-N notation itself, checked against dates counted on a calendar."""
    assert day("T") == "2026-11-24"
    assert day("T-120") == "2026-07-27"
    assert day("T-365") == "2025-11-24"
    assert day("T-750") == "2024-11-04"  # 2 years and 20 days before
    assert day("T+1") == "2026-11-25"
    assert day("2026-07-27") == "2026-07-27"
    assert day("soon") == "soon"


@dataclass(frozen=True)
class Case:
    name: str
    expect: frozenset[str]
    checked: frozenset[str]
    born: str | None
    labs: tuple[dict, ...]
    meds: tuple[dict, ...]
    dxs: tuple[dict, ...]
    quarantine: tuple[str, ...]


def cases_from(text: str, checked: frozenset[str]) -> list[Case]:
    events = rows_by_patient(text)
    cases = []
    for pid in events:
        expects = [r["expect"] for r in events[pid] if r.get("expect") is not None]
        assert len(expects) == 1, f"{pid}: give expect on exactly one row"
        born, labs, meds, dxs, quarantine = None, [], [], [], []
        for r in events[pid]:
            kind, what = r["event"], r.get("what")
            if kind == "med":
                med = {"patient_id": pid, "start_date": day(r["start"]), "end_date": day(r["end"])}
                if what and what.startswith(("rxnorm=", "atc=")):
                    key, code = what.split("=", 1)
                    med[key] = code
                else:
                    med["medication"] = what
                if r.get("route"):
                    med["route"] = r["route"]
                meds.append(med)
            elif kind == "dx":
                dxs.append(
                    {
                        "patient_id": pid,
                        "code": what,
                        "recorded_at": day(r["start"] or DEFAULT_RECORDED_AT),
                    }
                )
            elif kind == "lab":
                lab = {"patient_id": pid, "analyte": what, "value": r["value"]}
                if r["start"]:
                    lab["collected_at"] = day(r["start"])
                labs.append(lab)
            elif kind == "born":
                born = day(r["start"])
            elif kind != "-":
                raise ValueError(f"{pid}: unknown event {kind!r}")
            if r.get("quarantine"):
                quarantine.append(r["quarantine"])
        cases.append(
            Case(
                pid,
                criteria_set(expects[0]),
                checked,
                born,
                tuple(labs),
                tuple(meds),
                tuple(dxs),
                tuple(quarantine),
            )
        )
    return cases


def run_cases(cases: list[Case], workdir, rules: str | None = None) -> ScreeningResult:
    names = [c.name for c in cases]
    assert len(names) == len(set(names)) and NEVER not in names
    patients = [{"patient_id": c.name, "birth_date": c.born} for c in cases]
    patients.append({"patient_id": NEVER, "sex": "F"})
    return screen(
        patients,
        [lab for c in cases for lab in c.labs],
        medications=[m for c in cases for m in c.meds],
        diagnoses=[x for c in cases for x in c.dxs],
        workdir=workdir,
        rules=rules,
    )


def check(result: ScreeningResult, case: Case) -> None:
    why = result.explain(case.name)
    reasons = result.reasons(case.name)
    assert len(reasons) == len(case.quarantine), f"quarantine {reasons}{why}"
    for wanted in case.quarantine:
        assert any(wanted in r for r in reasons), f"no quarantine reason {wanted!r}{why}"
    assert result.criteria(case.name) & case.checked == case.expect, why


def check_never(result: ScreeningResult) -> None:
    assert result.criteria(NEVER) == set(), result.explain(NEVER)
    assert result.quarantined(NEVER) == [], result.explain(NEVER)


def table_fixture(cases: list[Case], rules: str | None = None):
    @pytest.fixture(scope="module")
    def run(tmp_path_factory) -> ScreeningResult:
        return run_cases(cases, tmp_path_factory.mktemp("meds"), rules=rules)

    return run


def ids(case: Case) -> str:
    return case.name


# =============================================================================================
# metformin_long_term: exposure days > 120, and current or last end >= as_of - 365
# =============================================================================================
# A period is start..min(end or as_of, as_of), both days counted; periods that overlap or
# touch merge. 2026-07-27..2026-11-23 is 5 + 31 + 30 + 31 + 23 = 120 days.
METFORMIN = """
patient_id              | event | what                          | start      | end        | value | expect              | quarantine
met-120-days            | med   | Metformin 500 mg tablet       | 2026-07-27 | 2026-11-23 |       | -                   |
met-121-days            | med   | Metformin 500 mg tablet       | 2026-07-26 | 2026-11-23 |       | metformin_long_term |
# open-ended: runs to as_of; T-119..T = 120 days, T-120..T = 121
met-open-120            | med   | Metformin 500 mg tablet       | T-119      |            |       | -                   |
met-open-121            | med   | Metformin 500 mg tablet       | T-120      |            |       | metformin_long_term |
# two 100-day orders overlapping by 50: union T-200..T-51 = 150 days
met-overlap-150         | med   | Metformin 500 mg tablet       | T-200      | T-101      |       | metformin_long_term |
met-overlap-150         | med   | Metformin 500 mg tablet       | T-150      | T-51       |       |                     |
# 70 + 70 days overlapping by 40: union T-150..T-51 = 100 (the plain sum, 140, would meet it)
met-overlap-union-100   | med   | Metformin 500 mg tablet       | T-150      | T-81       |       | -                   |
met-overlap-union-100   | med   | Metformin 850 mg tablet       | T-120      | T-51       |       |                     |
# the same 70-day order sent twice: 70 days
met-duplicate-70        | med   | Metformin 500 mg tablet       | T-100      | T-31       |       | -                   |
met-duplicate-70        | med   | Metformin 500 mg tablet       | T-100      | T-31       |       |                     |
# gapped orders add up: 60 + 61 = 121, 60 + 60 = 120
met-gap-121             | med   | Metformin 500 mg tablet       | T-300      | T-241      |       | metformin_long_term |
met-gap-121             | med   | Metformin 500 mg tablet       | T-100      | T-40       |       |                     |
met-gap-120             | med   | Metformin 500 mg tablet       | T-300      | T-241      |       | -                   |
met-gap-120             | med   | Metformin 500 mg tablet       | T-100      | T-41       |       |                     |
# touching orders (next start = previous end + 1): one episode of 60 + 61 = 121
met-touching-121        | med   | Metformin 500 mg tablet       | T-200      | T-141      |       | metformin_long_term |
met-touching-121        | med   | Metformin 500 mg tablet       | T-140      | T-80       |       |                     |
# stopped: last end = as_of - 365 still counts, as_of - 366 does not (136 days each)
met-stopped-365         | med   | Metformin 500 mg tablet       | T-500      | T-365      |       | metformin_long_term |
met-stopped-366         | med   | Metformin 500 mg tablet       | T-501      | T-366      |       | -                   |
# exposure has no look-back: 201 old days + 11 current days, current
met-old-plus-current    | med   | Metformin 500 mg tablet       | T-900      | T-700      |       | metformin_long_term |
met-old-plus-current    | med   | Metformin 500 mg tablet       | T-10       |            |       |                     |
met-old-only            | med   | Metformin 500 mg tablet       | T-900      | T-700      |       | -                   |
# end after as_of is clipped to as_of: T-100..T = 101 (unclipped 201), T-120..T = 121
met-end-after-101       | med   | Metformin 500 mg tablet       | T-100      | T+100      |       | -                   |
met-end-after-121       | med   | Metformin 500 mg tablet       | T-120      | T+50       |       | metformin_long_term |
# an order starting after as_of is quarantined and ignored: 100 days remain
met-future-start        | med   | Metformin 500 mg tablet       | T-100      | T-1        |       | -                   |
met-future-start        | med   | Metformin 500 mg tablet       | T+1        | T+200      |       |                     | after the as-of date
# rows breaking the input rules: quarantined, so no exposure at all (read open-ended: 201 days)
met-end-unreadable      | med   | Metformin 500 mg tablet       | T-200      | soon       |       | -                   | end_date is not a date
met-end-before-start    | med   | Metformin 500 mg tablet       | T-200      | T-300      |       | -                   | end_date before start_date
met-start-unreadable    | med   | Metformin 500 mg tablet       | 2026-13-45 |            |       | -                   | start_date
# every way of naming metformin: 201 days, current
met-rxnorm-6809         | med   | rxnorm=6809                   | T-200      |            |       | metformin_long_term |
met-atc-A10BA02         | med   | atc=A10BA02                   | T-200      |            |       | metformin_long_term |
met-atc-lower-case      | med   | atc=a10ba02                   | T-200      |            |       | metformin_long_term |
met-atc-combo-A10BD07   | med   | atc=A10BD07                   | T-200      |            |       | metformin_long_term |
met-name-brand-in-paren | med   | MetFORMIN (Glucophage) 500 mg | T-200      |            |       | metformin_long_term |
met-name-glucophage-xr  | med   | Glucophage XR                 | T-200      |            |       | metformin_long_term |
met-name-janumet        | med   | Janumet 50/1000               | T-200      |            |       | metformin_long_term |
met-name-hydrochloride  | med   | metformin hydrochloride       | T-200      |            |       | metformin_long_term |
met-name-hyphenated     | med   | Metformin-ER 750 mg           | T-200      |            |       | metformin_long_term |
# orders by name, ATC and RxNorm merge into one episode: T-150..T = 151 days
met-name-and-codes      | med   | Metformin 500 mg tablet       | T-150      | T-50       |       | metformin_long_term |
met-name-and-codes      | med   | atc=A10BA02                   | T-60       | T-20       |       |                     |
met-name-and-codes      | med   | rxnorm=6809                   | T-30       |            |       |                     |
# not metformin: sitagliptin alone (Januvia), by name and by ATC
met-not-sitagliptin     | med   | Sitagliptin 100 mg tablet     | T-200      |            |       | -                   |
met-not-sitagliptin-atc | med   | atc=A10BH01                   | T-200      |            |       | -                   |
met-no-drug-named       | med   |                               | T-200      |            |       | -                   | no medication name, RxNorm or ATC code
"""
METFORMIN_CASES = cases_from(METFORMIN, DRUG_CONTEXT)
metformin_run = table_fixture(METFORMIN_CASES)


@pytest.mark.parametrize("case", METFORMIN_CASES, ids=ids)
def test_metformin_long_term(metformin_run, case):
    check(metformin_run, case)


def test_metformin_run_never_flags_the_empty_patient(metformin_run):
    check_never(metformin_run)


# =============================================================================================
# acid_suppression_long_term: PPI and H2-blocker periods merged, > 365 days, current or
# last end >= as_of - 365
# =============================================================================================
OMEPRAZOLE = "Omeprazole 20 MG Delayed Release Oral Capsule"
ACID = f"""
patient_id              | event | what                          | start      | end        | value | expect
acid-ppi-365            | med   | {OMEPRAZOLE}                  | T-364      |            |       | -
acid-ppi-366            | med   | {OMEPRAZOLE}                  | T-365      |            |       | acid_suppression_long_term
# 200 days omeprazole, then famotidine from the next day: 166 -> 366; 165 -> 365
acid-ppi-h2-366         | med   | {OMEPRAZOLE}                  | T-400      | T-201      |       | acid_suppression_long_term
acid-ppi-h2-366         | med   | Famotidine 20 mg tablet       | T-200      | T-35       |       |
acid-ppi-h2-365         | med   | {OMEPRAZOLE}                  | T-400      | T-201      |       | -
acid-ppi-h2-365         | med   | Famotidine 20 mg tablet       | T-200      | T-36       |       |
# with a gap: 200 + 166 = 366
acid-ppi-h2-gap-366     | med   | {OMEPRAZOLE}                  | T-500      | T-301      |       | acid_suppression_long_term
acid-ppi-h2-gap-366     | med   | Famotidine 20 mg tablet       | T-200      | T-35       |       |
# overlapping PPI and H2 blocker count once: 301 days (sum 452)
acid-overlap-inside     | med   | {OMEPRAZOLE}                  | T-300      |            |       | -
acid-overlap-inside     | med   | Famotidine 20 mg tablet       | T-250      | T-100      |       |
# union T-365..T = 366 (266 + 201 summed = 467), T-364..T = 365
acid-overlap-366        | med   | {OMEPRAZOLE}                  | T-365      | T-100      |       | acid_suppression_long_term
acid-overlap-366        | med   | Famotidine 20 mg tablet       | T-200      |            |       |
acid-overlap-365        | med   | {OMEPRAZOLE}                  | T-364      | T-100      |       | -
acid-overlap-365        | med   | Famotidine 20 mg tablet       | T-200      |            |       |
# stopped: last end as_of - 365 counts, as_of - 366 not (436 days each)
acid-stopped-365        | med   | Pantoprazole 40 mg tablet     | T-800      | T-365      |       | acid_suppression_long_term
acid-stopped-366        | med   | Pantoprazole 40 mg tablet     | T-801      | T-366      |       | -
# every PPI and H2 blocker, by name and code: 401 days, current
acid-esomeprazole       | med   | Esomeprazole magnesium 40 mg  | T-400      |            |       | acid_suppression_long_term
acid-nexium             | med   | Nexium 24HR                   | T-400      |            |       | acid_suppression_long_term
acid-lansoprazole       | med   | Lansoprazole 30 mg capsule    | T-400      |            |       | acid_suppression_long_term
acid-prevacid           | med   | Prevacid SoluTab 30 mg        | T-400      |            |       | acid_suppression_long_term
acid-dexlansoprazole    | med   | Dexlansoprazole 60 mg         | T-400      |            |       | acid_suppression_long_term
acid-dexilant           | med   | Dexilant 60 mg                | T-400      |            |       | acid_suppression_long_term
acid-pantoprazole       | med   | pantoprazole sodium 40 mg     | T-400      |            |       | acid_suppression_long_term
acid-protonix           | med   | Protonix 40 mg                | T-400      |            |       | acid_suppression_long_term
acid-rabeprazole        | med   | Rabeprazole 20 mg             | T-400      |            |       | acid_suppression_long_term
acid-aciphex            | med   | AcipHex 20 mg                 | T-400      |            |       | acid_suppression_long_term
acid-dexrabeprazole     | med   | Dexrabeprazole 10 mg          | T-400      |            |       | acid_suppression_long_term
acid-ilaprazole         | med   | Ilaprazole 10 mg              | T-400      |            |       | acid_suppression_long_term
acid-rxnorm-7646        | med   | rxnorm=7646                   | T-400      |            |       | acid_suppression_long_term
acid-atc-A02BC01        | med   | atc=A02BC01                   | T-400      |            |       | acid_suppression_long_term
acid-atc-a02bc02        | med   | atc=a02bc02                   | T-400      |            |       | acid_suppression_long_term
acid-atc-A02BC05        | med   | atc=A02BC05                   | T-400      |            |       | acid_suppression_long_term
acid-famotidine         | med   | famotidine 40 mg              | T-400      |            |       | acid_suppression_long_term
acid-pepcid             | med   | Pepcid AC                     | T-400      |            |       | acid_suppression_long_term
acid-cimetidine         | med   | Cimetidine 400 mg             | T-400      |            |       | acid_suppression_long_term
acid-ranitidine         | med   | Ranitidine 150 mg             | T-400      |            |       | acid_suppression_long_term
acid-nizatidine         | med   | Nizatidine 150 mg             | T-400      |            |       | acid_suppression_long_term
acid-roxatidine         | med   | Roxatidine 75 mg              | T-400      |            |       | acid_suppression_long_term
acid-lafutidine         | med   | Lafutidine 10 mg              | T-400      |            |       | acid_suppression_long_term
acid-atc-A02BA03        | med   | atc=A02BA03                   | T-400      |            |       | acid_suppression_long_term
acid-atc-A02BA02        | med   | atc=A02BA02                   | T-400      |            |       | acid_suppression_long_term
# a combination product naming an H2 blocker after a slash
acid-combination-name   | med   | Ibuprofen/famotidine 800/26.6 mg | T-400   |            |       | acid_suppression_long_term
# one row naming a PPI and an H2 blocker is one period, not two: 365 days -> not met
acid-one-row-two-groups | med   | Omeprazole/famotidine 20/20 mg | T-364     |            |       | -
acid-one-row-366        | med   | Omeprazole/famotidine 20/20 mg | T-365     |            |       | acid_suppression_long_term
# potassium-competitive acid blockers are not PPIs
acid-not-vonoprazan     | med   | Vonoprazan 20 mg tablet       | T-400      |            |       | -
acid-not-vonoprazan-atc | med   | atc=A02BC08                   | T-400      |            |       | -
acid-not-tegoprazan     | med   | Tegoprazan 50 mg              | T-400      |            |       | -
acid-not-tegoprazan-atc | med   | atc=A02BC09                   | T-400      |            |       | -
"""
ACID_CASES = cases_from(ACID, DRUG_CONTEXT)
acid_run = table_fixture(ACID_CASES)


@pytest.mark.parametrize("case", ACID_CASES, ids=ids)
def test_acid_suppression_long_term(acid_run, case):
    check(acid_run, case)


def test_acid_run_never_flags_the_empty_patient(acid_run):
    check_never(acid_run)


# =============================================================================================
# b12_lowering_drug: current colchicine, phenobarbital or pregabalin (guidance profile)
# =============================================================================================
LOWERING = """
patient_id              | event | what                          | start      | end        | value | expect
low-colchicine          | med   | Colchicine 0.6 mg tablet      | T-30       |            |       | b12_lowering_drug
low-colchicine-rxnorm   | med   | rxnorm=2683                   | T-30       |            |       | b12_lowering_drug
low-colchicine-atc      | med   | atc=M04AC01                   | T-30       |            |       | b12_lowering_drug
low-phenobarbital       | med   | Phenobarbital 30 mg tablet    | T-30       |            |       | b12_lowering_drug
low-phenobarbital-rx    | med   | rxnorm=8134                   | T-30       |            |       | b12_lowering_drug
low-phenobarbital-atc   | med   | atc=N03AA02                   | T-30       |            |       | b12_lowering_drug
low-pregabalin          | med   | Pregabalin 75 mg capsule      | T-30       |            |       | b12_lowering_drug
low-pregabalin-rx       | med   | rxnorm=187832                 | T-30       |            |       | b12_lowering_drug
low-pregabalin-N02BF02  | med   | atc=N02BF02                   | T-30       |            |       | b12_lowering_drug
low-pregabalin-N03AX16  | med   | atc=N03AX16                   | T-30       |            |       | b12_lowering_drug
# current = a period covers as_of
low-stopped-yesterday   | med   | Colchicine 0.6 mg tablet      | T-30       | T-1        |       | -
low-ends-on-as-of       | med   | Colchicine 0.6 mg tablet      | T-30       | T          |       | b12_lowering_drug
low-ends-after-as-of    | med   | Colchicine 0.6 mg tablet      | T-30       | T+30       |       | b12_lowering_drug
low-starts-on-as-of     | med   | Pregabalin 75 mg capsule      | T          |            |       | b12_lowering_drug
low-stopped-long-ago    | med   | Phenobarbital 30 mg tablet    | T-900      | T-400      |       | -
# not in the guidance profile (the primary-sources profile adds them, below)
low-topiramate          | med   | Topiramate 25 mg tablet       | T-30       |            |       | -
low-primidone           | med   | Primidone 250 mg tablet       | T-30       |            |       | -
low-nitrous-oxide       | med   | Nitrous oxide 50%             | T-30       |            |       | -
low-gabapentin          | med   | Gabapentin 300 mg capsule     | T-30       |            |       | -
"""
LOWERING_CASES = cases_from(LOWERING, DRUG_CONTEXT)
lowering_run = table_fixture(LOWERING_CASES)


@pytest.mark.parametrize("case", LOWERING_CASES, ids=ids)
def test_b12_lowering_drug(lowering_run, case):
    check(lowering_run, case)


def test_lowering_run_never_flags_the_empty_patient(lowering_run):
    check_never(lowering_run)


# The primary-sources profile: colchicine, phenobarbital, pregabalin, primidone, topiramate,
# nitrous_oxide.
LOWERING_PRIMARY = """
patient_id              | event | what                          | start      | end        | value | expect
prim-topiramate         | med   | Topiramate 25 mg tablet       | T-30       |            |       | b12_lowering_drug
prim-primidone          | med   | Primidone 250 mg tablet       | T-30       |            |       | b12_lowering_drug
prim-nitrous-oxide      | med   | Nitrous oxide 50%             | T-30       |            |       | b12_lowering_drug
prim-colchicine         | med   | Colchicine 0.6 mg tablet      | T-30       |            |       | b12_lowering_drug
prim-topiramate-stopped | med   | Topiramate 25 mg tablet       | T-30       | T-1        |       | -
prim-gabapentin         | med   | Gabapentin 300 mg capsule     | T-30       |            |       | -
"""
LOWERING_PRIMARY_CASES = cases_from(LOWERING_PRIMARY, frozenset({"b12_lowering_drug"}))
lowering_primary_run = table_fixture(LOWERING_PRIMARY_CASES, rules="primary-sources")


@pytest.mark.parametrize("case", LOWERING_PRIMARY_CASES, ids=ids)
def test_b12_lowering_drug_primary_sources(lowering_primary_run, case):
    check(lowering_primary_run, case)


# =============================================================================================
# risk_condition: a listed diagnosis code or one below it, dot and case ignored, recorded on
# or before as_of (no look-back)
# =============================================================================================
RISK = """
patient_id              | event | what     | start      | end | value | expect         | quarantine
risk-D51.0              | dx    | D51.0    |            |     |       | risk_condition |
risk-D510               | dx    | D510     |            |     |       | risk_condition |
risk-d51.0-lower        | dx    | d51.0    |            |     |       | risk_condition |
risk-K29.4              | dx    | K29.4    |            |     |       | risk_condition |
risk-K29.40             | dx    | K29.40   |            |     |       | risk_condition |
risk-k2941              | dx    | k2941    |            |     |       | risk_condition |
risk-Z90.3              | dx    | Z90.3    |            |     |       | risk_condition |
risk-Z903               | dx    | Z903     |            |     |       | risk_condition |
risk-Z98.84             | dx    | Z98.84   |            |     |       | risk_condition |
risk-Z90.49             | dx    | Z90.49   |            |     |       | risk_condition |
risk-K91.2              | dx    | K91.2    |            |     |       | risk_condition |
risk-K50                | dx    | K50      |            |     |       | risk_condition |
risk-K50.90             | dx    | K50.90   |            |     |       | risk_condition |
risk-k50.90-lower       | dx    | k50.90   |            |     |       | risk_condition |
risk-K90.0              | dx    | K90.0    |            |     |       | risk_condition |
risk-k900               | dx    | k900     |            |     |       | risk_condition |
risk-E06.3              | dx    | E06.3    |            |     |       | risk_condition |
risk-E10                | dx    | E10      |            |     |       | risk_condition |
risk-E10.9              | dx    | E10.9    |            |     |       | risk_condition |
risk-M35.0              | dx    | M35.0    |            |     |       | risk_condition |
risk-M35.00             | dx    | M35.00   |            |     |       | risk_condition |
risk-Q90                | dx    | Q90      |            |     |       | risk_condition |
risk-Q90.9              | dx    | Q90.9    |            |     |       | risk_condition |
# not risk conditions: CKD (its own list), type 2 diabetes, siblings and parents of listed codes
risk-not-N18.30         | dx    | N18.30   |            |     |       | -              |
risk-not-E11.9          | dx    | E11.9    |            |     |       | -              |
risk-not-K29.7          | dx    | K29.7    |            |     |       | -              |
risk-not-K29-parent     | dx    | K29      |            |     |       | -              |
risk-not-K90.4          | dx    | K90.4    |            |     |       | -              |
risk-not-D51.1          | dx    | D51.1    |            |     |       | -              |
risk-not-M35.1          | dx    | M35.1    |            |     |       | -              |
risk-not-Z90.4-parent   | dx    | Z90.4    |            |     |       | -              |
# recorded on as_of and long ago count; after as_of is quarantined
risk-recorded-on-as-of  | dx    | K50.90   | T          |     |       | risk_condition |
risk-recorded-1990      | dx    | D51.0    | 1990-05-01 |     |       | risk_condition |
risk-recorded-after     | dx    | K50.90   | T+1        |     |       | -              | after the as-of date
risk-one-of-two         | dx    | E11.9    |            |     |       | risk_condition |
risk-one-of-two         | dx    | E10.9    |            |     |       |                |
# diagnosis rows breaking the input rules
risk-code-missing       | dx    |          |            |     |       | -              | code missing or unreadable
risk-date-unreadable    | dx    | K50.90   | last year  |     |       | -              | recorded_at missing or unreadable
"""
RISK_CASES = cases_from(RISK, frozenset({"risk_condition"}))
risk_run = table_fixture(RISK_CASES)


@pytest.mark.parametrize("case", RISK_CASES, ids=ids)
def test_risk_condition(risk_run, case):
    check(risk_run, case)


def test_risk_run_never_flags_the_empty_patient(risk_run):
    check_never(risk_run)


# =============================================================================================
# b12_screening_due: a trigger (the four context criteria, or age >= 75 on as_of) and no
# valid B12 or MMA result dated in [as_of - 365, as_of] (both ends count, as in the B12 look-back)
# =============================================================================================
SCREENING = f"""
patient_id              | event | what                          | start      | end   | value   | expect            | quarantine
due-metformin           | med   | Metformin 500 mg tablet       | T-200      |       |         | b12_screening_due |
due-metformin-too-short | med   | Metformin 500 mg tablet       | T-100      |       |         | -                 |
due-acid-suppression    | med   | {OMEPRAZOLE}                  | T-400      |       |         | b12_screening_due |
due-lowering-drug       | med   | Pregabalin 75 mg capsule      | T-10       |       |         | b12_screening_due |
due-lowering-stopped    | med   | Pregabalin 75 mg capsule      | T-10       | T-1   |         | -                 |
due-risk-condition      | dx    | D51.0                         |            |       |         | b12_screening_due |
due-not-risk-ckd        | dx    | N18.4                         |            |       |         | -                 |
# 75 on as_of exactly (born 1951-11-24) vs 74 (born the day after)
due-age-75              | born  |                               | 1951-11-24 |       |         | b12_screening_due |
due-age-74              | born  |                               | 1951-11-25 |       |         | -                 |
# a valid B12 or MMA in [as_of - 365, as_of] suppresses it; one at as_of - 366 does not
due-b12-364             | born  |                               | 1951-11-24 |       |         | -                 |
due-b12-364             | lab   | b12                           | T-364      |       | 500     |                   |
due-b12-365             | born  |                               | 1951-11-24 |       |         | -                 |
due-b12-365             | lab   | b12                           | T-365      |       | 500     |                   |
due-b12-366             | born  |                               | 1951-11-24 |       |         | b12_screening_due |
due-b12-366             | lab   | b12                           | T-366      |       | 500     |                   |
due-b12-on-as-of        | born  |                               | 1951-11-24 |       |         | -                 |
due-b12-on-as-of        | lab   | b12                           | T          |       | 500     |                   |
due-b12-deficient       | born  |                               | 1951-11-24 |       |         | -                 |
due-b12-deficient       | lab   | b12                           | T-23       |       | 150     |                   |
due-mma-364             | born  |                               | 1951-11-24 |       |         | -                 |
due-mma-364             | lab   | mma                           | T-364      |       | 150     |                   |
due-mma-365             | born  |                               | 1951-11-24 |       |         | -                 |
due-mma-365             | lab   | mma                           | T-365      |       | 150     |                   |
due-mma-366             | born  |                               | 1951-11-24 |       |         | b12_screening_due |
due-mma-366             | lab   | mma                           | T-366      |       | 150     |                   |
due-metformin-mma       | med   | Metformin 500 mg tablet       | T-200      |       |         | -                 |
due-metformin-mma       | lab   | mma                           | T-23       |       | 150     |                   |
due-risk-b12            | dx    | K90.0                         |            |       |         | -                 |
due-risk-b12            | lab   | b12                           | T-23       |       | 500     |                   |
# not a valid B12 result (quarantined), not a B12 or MMA test
due-b12-unreadable      | born  |                               | 1951-11-24 |       |         | b12_screening_due |
due-b12-unreadable      | lab   | b12                           | T-23       |       | pending |                   | value is not a number
due-folate-only         | born  |                               | 1951-11-24 |       |         | b12_screening_due |
due-folate-only         | lab   | folate                        | T-23       |       | 12      |                   |
"""
SCREENING_CASES = cases_from(SCREENING, frozenset({"b12_screening_due"}))
screening_run = table_fixture(SCREENING_CASES)


@pytest.mark.parametrize("case", SCREENING_CASES, ids=ids)
def test_b12_screening_due(screening_run, case):
    check(screening_run, case)


def test_screening_run_never_flags_the_empty_patient(screening_run):
    check_never(screening_run)


# The evidence of b12_screening_due, as the worklist shows it (the evidence of every flag met,
# in catalogue order, so a context criterion's own evidence comes first): why screening is due
# (the age, or the risk: long-term metformin, long-term acid suppression, a B12-lowering drug,
# a risk condition; risks in catalogue order, then the age) and when B12 or MMA was last tested:
# "never tested" with no valid result at all (a quarantined result is none, nor is a folate),
# "last tested YYYY-MM-DD" when the latest is older than the 365-day interval, however old.
# Dates: T-366 = 2025-11-23, T-400 = 2025-10-20, T-200 = 2026-05-08, T-100 = 2026-08-16.
SCREENING_EVIDENCE = f"""
patient_id              | event | what                    | start      | end | value   | expect            | quarantine            | evidence
ev-age-never            | born  |                         | 1951-11-24 |     |         | b12_screening_due |                       | B12 screening due: age 75; never tested
ev-age-b12-366          | born  |                         | 1940-06-01 |     |         | b12_screening_due |                       | B12 screening due: age 86; last tested 2025-11-23
ev-age-b12-366          | lab   | b12                     | T-366      |     | 500     |                   |                       |
# the last test counts however old, an MMA as well as a B12
ev-age-mma-2020         | born  |                         | 1951-11-24 |     |         | b12_screening_due |                       | B12 screening due: age 75; last tested 2020-03-15
ev-age-mma-2020         | lab   | mma                     | 2020-03-15 |     | 150     |                   |                       |
ev-age-folate-only      | born  |                         | 1951-11-24 |     |         | b12_screening_due |                       | B12 screening due: age 75; never tested
ev-age-folate-only      | lab   | folate                  | T-23       |     | 12      |                   |                       |
ev-age-b12-unreadable   | born  |                         | 1951-11-24 |     |         | b12_screening_due |                       | B12 screening due: age 75; never tested
ev-age-b12-unreadable   | lab   | b12                     | T-23       |     | pending |                   | value is not a number |
# at risk below the age limit (66): the risk criterion's evidence, then the screening's
ev-metformin            | med   | Metformin 500 mg tablet | T-200      |     |         | b12_screening_due |                       | metformin 201 days since 2026-05-08, current; B12 screening due: long-term metformin; never tested
ev-acid-b12-400         | med   | {OMEPRAZOLE}            | T-400      |     |         | b12_screening_due |                       | PPI/H2 blocker 401 days since 2025-10-20, current; B12 screening due: long-term acid suppression; last tested 2025-10-20
ev-acid-b12-400         | lab   | b12                     | T-400      |     | 500     |                   |                       |
ev-lowering-drug        | med   | Pregabalin 75 mg capsule | T-10      |     |         | b12_screening_due |                       | current pregabalin; B12 screening due: B12-lowering drug; never tested
ev-risk-condition       | dx    | D51.0                   | T-100      |     |         | b12_screening_due |                       | pernicious anemia (D51.0, 2026-08-16); B12 screening due: risk condition; never tested
# several reasons: the risks in catalogue order, then the age
ev-several              | born  |                         | 1940-01-01 |     |         | b12_screening_due |                       | metformin 201 days since 2026-05-08, current; pernicious anemia (D51.0, 2026-08-16); B12 screening due: long-term metformin, risk condition, age 86; last tested 2024-01-10
ev-several              | med   | Metformin 500 mg tablet | T-200      |     |         |                   |                       |
ev-several              | dx    | D51.0                   | T-100      |     |         |                   |                       |
ev-several              | lab   | b12                     | 2024-01-10 |     | 500     |                   |                       |
"""
SCREENING_EVIDENCE_CASES = cases_from(SCREENING_EVIDENCE, frozenset({"b12_screening_due"}))
SCREENING_EVIDENCE_EXPECT = {
    pid: next(r["evidence"] for r in rows if r.get("expect") is not None)
    for pid, rows in rows_by_patient(SCREENING_EVIDENCE).items()
}
screening_evidence_run = table_fixture(SCREENING_EVIDENCE_CASES)


@pytest.mark.parametrize("case", SCREENING_EVIDENCE_CASES, ids=ids)
def test_b12_screening_due_evidence(screening_evidence_run, case):
    check(screening_evidence_run, case)
    row = screening_evidence_run.worklist().get(case.name)
    why = screening_evidence_run.explain(case.name)
    assert row is not None, why
    assert row["evidence"] == SCREENING_EVIDENCE_EXPECT[case.name], why


# =============================================================================================
# folate_without_b12: (b12_deficient or mma_elevated) and folic acid current and no B12
# therapy current, and for some deficient result no therapy started on/after (its date - 30)
# =============================================================================================
# The deficient result is dated T-23 unless stated, so the therapy cut-off is T-53.
FOLIC = "Folic acid 1 mg tablet"
FOLATE = f"""
patient_id              | event | what                                | start | end   | value | expect
fwb-b12                 | lab   | b12                                 |       |       | 150   | folate_without_b12
fwb-b12                 | med   | {FOLIC}                             | T-60  |       |       |
fwb-mma                 | lab   | mma                                 |       |       | 400   | folate_without_b12
fwb-mma                 | med   | {FOLIC}                             | T-60  |       |       |
fwb-folic-atc           | lab   | b12                                 |       |       | 150   | folate_without_b12
fwb-folic-atc           | med   | atc=B03BB01                         | T-60  |       |       |
fwb-b12-normal          | lab   | b12                                 |       |       | 500   | -
fwb-b12-normal          | med   | {FOLIC}                             | T-60  |       |       |
fwb-no-folic-acid       | lab   | b12                                 |       |       | 150   | -
fwb-folic-stopped       | lab   | b12                                 |       |       | 150   | -
fwb-folic-stopped       | med   | {FOLIC}                             | T-60  | T-1   |       |
fwb-hydroxo-current     | lab   | b12                                 |       |       | 150   | -
fwb-hydroxo-current     | med   | {FOLIC}                             | T-60  |       |       |
fwb-hydroxo-current     | med   | Hydroxocobalamin 1 mg/mL injection  | T-10  |       |       |
fwb-hydroxo-since-long  | lab   | b12                                 |       |       | 150   | -
fwb-hydroxo-since-long  | med   | {FOLIC}                             | T-60  |       |       |
fwb-hydroxo-since-long  | med   | Hydroxocobalamin 1 mg/mL injection  | T-400 |       |       |
# an ended cyanocobalamin order started 30 days before the result counts, 31 days does not
fwb-cyano-30-before     | lab   | b12                                 |       |       | 150   | -
fwb-cyano-30-before     | med   | {FOLIC}                             | T-60  |       |       |
fwb-cyano-30-before     | med   | Cyanocobalamin 1000 mcg tablet      | T-53  | T-45  |       |
fwb-cyano-31-before     | lab   | b12                                 |       |       | 150   | folate_without_b12
fwb-cyano-31-before     | med   | {FOLIC}                             | T-60  |       |       |
fwb-cyano-31-before     | med   | Cyanocobalamin 1000 mcg tablet      | T-54  | T-50  |       |
fwb-cyano-after-ended   | lab   | b12                                 |       |       | 150   | -
fwb-cyano-after-ended   | med   | {FOLIC}                             | T-60  |       |       |
fwb-cyano-after-ended   | med   | Cyanocobalamin 1000 mcg tablet      | T-20  | T-10  |       |
fwb-methylcobalamin     | lab   | b12                                 |       |       | 150   | -
fwb-methylcobalamin     | med   | {FOLIC}                             | T-60  |       |       |
fwb-methylcobalamin     | med   | Methylcobalamin 1000 mcg            | T-5   |       |       |
fwb-vitamin-b-12-name   | lab   | b12                                 |       |       | 150   | -
fwb-vitamin-b-12-name   | med   | {FOLIC}                             | T-60  |       |       |
fwb-vitamin-b-12-name   | med   | vitamin B-12 1000 mcg               | T-5   |       |       |
fwb-neo-cytamen         | lab   | b12                                 |       |       | 150   | -
fwb-neo-cytamen         | med   | {FOLIC}                             | T-60  |       |       |
fwb-neo-cytamen         | med   | Neo-Cytamen 1000 micrograms/1ml     | T-5   |       |       |
# folinic acid (leucovorin) is not folic acid
fwb-folinic-acid        | lab   | b12                                 |       |       | 150   | -
fwb-folinic-acid        | med   | Folinic acid 15 mg tablet           | T-60  |       |       |
# both met: each result is judged on its own, met when either is. B12 at T-40 (cut-off
# T-70), MMA at T-10 (cut-off T-40): a course at T-65 answers the B12 but not the newer MMA
fwb-both-newer-unanswered | lab | b12                                 | T-40  |       | 150   | folate_without_b12
fwb-both-newer-unanswered | lab | mma                                 | T-10  |       | 400   |
fwb-both-newer-unanswered | med | {FOLIC}                             | T-90  |       |       |
fwb-both-newer-unanswered | med | Cyanocobalamin 1000 mcg tablet      | T-65  | T-62  |       |
fwb-both-before-cutoff  | lab   | b12                                 | T-40  |       | 150   | folate_without_b12
fwb-both-before-cutoff  | lab   | mma                                 | T-10  |       | 400   |
fwb-both-before-cutoff  | med   | {FOLIC}                             | T-90  |       |       |
fwb-both-before-cutoff  | med   | Cyanocobalamin 1000 mcg tablet      | T-71  | T-68  |       |
# a course started after the older result and 30 days or less before the newer: both answered
fwb-both-answered       | lab   | b12                                 | T-40  |       | 150   | -
fwb-both-answered       | lab   | mma                                 | T-10  |       | 400   |
fwb-both-answered       | med   | {FOLIC}                             | T-90  |       |       |
fwb-both-answered       | med   | Cyanocobalamin 1000 mcg tablet      | T-40  | T-30  |       |
# older evidence never switches the alert off (the defect this table once missed): an old
# raised MMA, a B12 course after it, then a new deficient B12 with folic acid running. The
# same patients without the old result meet it too (fwb-b12, fwb-mma).
fwb-old-mma-course-new-b12 | lab | mma                                 | T-200 |       | 400   | folate_without_b12
fwb-old-mma-course-new-b12 | lab | b12                                 | T-20  |       | 150   |
fwb-old-mma-course-new-b12 | med | Hydroxocobalamin 1 mg/mL injection  | T-190 | T-150 |       |
fwb-old-mma-course-new-b12 | med | {FOLIC}                             | T-60  |       |       |
fwb-old-b12-course-new-mma | lab | b12                                 | T-200 |       | 150   | folate_without_b12
fwb-old-b12-course-new-mma | lab | mma                                 | T-20  |       | 400   |
fwb-old-b12-course-new-mma | med | Hydroxocobalamin 1 mg/mL injection  | T-190 | T-150 |       |
fwb-old-b12-course-new-mma | med | {FOLIC}                             | T-60  |       |       |
"""
FOLATE_CASES = cases_from(FOLATE, frozenset({"folate_without_b12"}))
folate_run = table_fixture(FOLATE_CASES)


@pytest.mark.parametrize("case", FOLATE_CASES, ids=ids)
def test_folate_without_b12(folate_run, case):
    check(folate_run, case)


def test_folate_run_never_flags_the_empty_patient(folate_run):
    check_never(folate_run)


# =============================================================================================
# cyanocobalamin_renal: cyanocobalamin current and (latest eGFR < 60 in its 365-day look-back,
# or a CKD stage 3-5 diagnosis: N18.3, N18.4, N18.5, N18.6 and codes below them, or dialysis
# Z99.2, or CKD of unspecified stage N18.9 when no eGFR in the look-back stages it)
# =============================================================================================
CYANO = "Cyanocobalamin 1000 mcg tablet"
INJ = "Cyanocobalamin 1000 mcg/mL injection"
RENAL = f"""
patient_id              | event | what                                | start | end   | value | expect               | quarantine
cr-egfr-59              | med   | {CYANO}                             | T-100 |       |       | cyanocobalamin_renal |
cr-egfr-59              | lab   | egfr                                |       |       | 59    |                      |
cr-egfr-59.9            | med   | {CYANO}                             | T-100 |       |       | cyanocobalamin_renal |
cr-egfr-59.9            | lab   | egfr                                |       |       | 59.9  |                      |
cr-egfr-60              | med   | {CYANO}                             | T-100 |       |       | -                    |
cr-egfr-60              | lab   | egfr                                |       |       | 60    |                      |
cr-N18.4                | med   | {CYANO}                             | T-100 |       |       | cyanocobalamin_renal |
cr-N18.4                | dx    | N18.4                               |       |       |       |                      |
cr-N18.30               | med   | {CYANO}                             | T-100 |       |       | cyanocobalamin_renal |
cr-N18.30               | dx    | N18.30                              |       |       |       |                      |
cr-n183                 | med   | {CYANO}                             | T-100 |       |       | cyanocobalamin_renal |
cr-n183                 | dx    | n183                                |       |       |       |                      |
cr-N18.5                | med   | {CYANO}                             | T-100 |       |       | cyanocobalamin_renal |
cr-N18.5                | dx    | N18.5                               |       |       |       |                      |
cr-N18.6                | med   | {CYANO}                             | T-100 |       |       | cyanocobalamin_renal |
cr-N18.6                | dx    | N18.6                               |       |       |       |                      |
cr-N18.4-long-ago       | med   | {CYANO}                             | T-100 |       |       | cyanocobalamin_renal |
cr-N18.4-long-ago       | dx    | N18.4                               | 2010-01-01 |  |       |                      |
cr-not-N18.2            | med   | {CYANO}                             | T-100 |       |       | -                    |
cr-not-N18.2            | dx    | N18.2                               |       |       |       |                      |
# N18.9 (stage unknown) counts only when no eGFR in its look-back shows the stage
cr-N18.9-no-egfr        | med   | {CYANO}                             | T-100 |       |       | cyanocobalamin_renal |
cr-N18.9-no-egfr        | dx    | N18.9                               |       |       |       |                      |
cr-N18.9-egfr-60        | med   | {CYANO}                             | T-100 |       |       | -                    |
cr-N18.9-egfr-60        | dx    | N18.9                               |       |       |       |                      |
cr-N18.9-egfr-60        | lab   | egfr                                |       |       | 60    |                      |
cr-N18.9-egfr-59        | med   | {CYANO}                             | T-100 |       |       | cyanocobalamin_renal |
cr-N18.9-egfr-59        | dx    | N18.9                               |       |       |       |                      |
cr-N18.9-egfr-59        | lab   | egfr                                |       |       | 59    |                      |
cr-N18.9-egfr-old       | med   | {CYANO}                             | T-100 |       |       | cyanocobalamin_renal |
cr-N18.9-egfr-old       | dx    | N18.9                               |       |       |       |                      |
cr-N18.9-egfr-old       | lab   | egfr                                | T-366 |       | 75    |                      |
# dialysis (Z99.2) is kidney failure whatever the eGFR says
cr-Z99.2                | med   | {CYANO}                             | T-100 |       |       | cyanocobalamin_renal |
cr-Z99.2                | dx    | Z99.2                               |       |       |       |                      |
cr-z992-egfr-70         | med   | {CYANO}                             | T-100 |       |       | cyanocobalamin_renal |
cr-z992-egfr-70         | dx    | z992                                |       |       |       |                      |
cr-z992-egfr-70         | lab   | egfr                                |       |       | 70    |                      |
cr-not-Z99.1            | med   | {CYANO}                             | T-100 |       |       | -                    |
cr-not-Z99.1            | dx    | Z99.11                              |       |       |       |                      |
# a one-day cyanocobalamin injection record covers settings.single_dose_cover_days (92):
# given T-91 it covers T-91..T (current), given T-92 it ended yesterday
cr-one-dose-91          | med   | {INJ}                               | T-91  | T-91  |       | cyanocobalamin_renal |
cr-one-dose-91          | lab   | egfr                                |       |       | 40    |                      |
cr-one-dose-92          | med   | {INJ}                               | T-92  | T-92  |       | -                    |
cr-one-dose-92          | lab   | egfr                                |       |       | 40    |                      |
cr-dx-after-as-of       | med   | {CYANO}                             | T-100 |       |       | -                    |
cr-dx-after-as-of       | dx    | N18.4                               | T+1   |       |       |                      | after the as-of date
# the eGFR look-back (365 days): at its edge counts, a day earlier not; latest wins
cr-egfr-at-365          | med   | {CYANO}                             | T-100 |       |       | cyanocobalamin_renal |
cr-egfr-at-365          | lab   | egfr                                | T-365 |       | 30    |                      |
cr-egfr-at-366          | med   | {CYANO}                             | T-100 |       |       | -                    |
cr-egfr-at-366          | lab   | egfr                                | T-366 |       | 30    |                      |
cr-egfr-latest-normal   | med   | {CYANO}                             | T-100 |       |       | -                    |
cr-egfr-latest-normal   | lab   | egfr                                | T-100 |       | 40    |                      |
cr-egfr-latest-normal   | lab   | egfr                                | T-10  |       | 70    |                      |
cr-egfr-latest-low      | med   | {CYANO}                             | T-100 |       |       | cyanocobalamin_renal |
cr-egfr-latest-low      | lab   | egfr                                | T-100 |       | 70    |                      |
cr-egfr-latest-low      | lab   | egfr                                | T-10  |       | 40    |                      |
# censored eGFR: '<60' is certainly below 60, '>60' certainly not
cr-egfr-lt60            | med   | {CYANO}                             | T-100 |       |       | cyanocobalamin_renal |
cr-egfr-lt60            | lab   | egfr                                |       |       | <60   |                      |
cr-egfr-gt60            | med   | {CYANO}                             | T-100 |       |       | -                    |
cr-egfr-gt60            | lab   | egfr                                |       |       | >60   |                      |
# cyanocobalamin by other names; not hydroxocobalamin; current only
cr-cyano-atc            | med   | atc=B03BA01                         | T-100 |       |       | cyanocobalamin_renal |
cr-cyano-atc            | lab   | egfr                                |       |       | 30    |                      |
cr-vitamin-b-12         | med   | vitamin B-12 1000 mcg               | T-100 |       |       | cyanocobalamin_renal |
cr-vitamin-b-12         | lab   | egfr                                |       |       | 30    |                      |
cr-injection            | med   | Cyanocobalamin 1000 mcg/mL injection| T-100 |       |       | cyanocobalamin_renal |
cr-injection            | lab   | egfr                                |       |       | 30    |                      |
cr-hydroxo-egfr-30      | med   | Hydroxocobalamin 1 mg/mL injection  | T-100 |       |       | -                    |
cr-hydroxo-egfr-30      | lab   | egfr                                |       |       | 30    |                      |
cr-cyano-stopped        | med   | {CYANO}                             | T-100 | T-1   |       | -                    |
cr-cyano-stopped        | lab   | egfr                                |       |       | 30    |                      |
cr-cyano-no-renal-data  | med   | {CYANO}                             | T-100 |       |       | -                    |
cr-ckd-no-cyano         | dx    | N18.4                               |       |       |       | -                    |
cr-ckd-no-cyano         | lab   | egfr                                |       |       | 30    |                      |
"""
RENAL_CASES = cases_from(RENAL, frozenset({"cyanocobalamin_renal"}))
renal_run = table_fixture(RENAL_CASES)


@pytest.mark.parametrize("case", RENAL_CASES, ids=ids)
def test_cyanocobalamin_renal(renal_run, case):
    check(renal_run, case)


def test_renal_run_never_flags_the_empty_patient(renal_run):
    check_never(renal_run)


# SNOMED CT codes (as OMOP, FHIR and Synthea sources code diagnoses; data/diagnosis_codes_snomed.csv)
# count like their ICD-10 equivalents: dialysis 105502003 (Z99.2), CKD 5 on dialysis 714152005;
# a SNOMED code is matched exactly, so a longer id starting with it is not the concept
SNOMED_RENAL = {
    "sct-dialysis": ("105502003", {"cyanocobalamin_renal"}),
    "sct-ckd5-on-dialysis": ("714152005", {"cyanocobalamin_renal"}),
    "sct-not-a-prefix": ("1055020031", set()),
    "sct-down-syndrome": ("41040004", {"risk_condition"}),
}


def test_snomed_dialysis_and_down_syndrome_codes(tmp_path):
    patients = [{"patient_id": p} for p in SNOMED_RENAL]
    meds = [
        {
            "patient_id": p,
            "medication": CYANO,
            "start_date": (AS_OF - timedelta(days=100)).isoformat(),
        }
        for p in SNOMED_RENAL
    ]
    dx = [
        {"patient_id": p, "code": code, "code_system": "snomed", "recorded_at": "2024-01-01"}
        for p, (code, _) in SNOMED_RENAL.items()
    ]
    result = screen(patients, [], medications=meds, diagnoses=dx, workdir=tmp_path)
    for p, (_, expected) in SNOMED_RENAL.items():
        got = result.criteria(p) & {"cyanocobalamin_renal", "risk_condition"}
        assert got == expected, p


# =============================================================================================
# deficiency_untreated: some b12_deficient or mma_elevated result dated more than 7 days before
# as_of with no B12 therapy order starting on or after (its date - 30 days)
# =============================================================================================
HYDROXO = "Hydroxocobalamin 1 mg/mL injection"
UNTREATED = f"""
patient_id              | event | what                          | start | end   | value | expect               | quarantine
unt-b12-7-days          | lab   | b12                           | T-7   |       | 150   | -                    |
unt-b12-8-days          | lab   | b12                           | T-8   |       | 150   | deficiency_untreated |
unt-mma-7-days          | lab   | mma                           | T-7   |       | 400   | -                    |
unt-mma-8-days          | lab   | mma                           | T-8   |       | 400   | deficiency_untreated |
unt-b12-normal          | lab   | b12                           | T-30  |       | 500   | -                    |
unt-b12-newer-normal    | lab   | b12                           | T-60  |       | 150   | -                    |
unt-b12-newer-normal    | lab   | b12                           | T-10  |       | 500   |                      |
# result at T-23: an order starting at T-53 (30 days before) counts even if ended, T-54 not
unt-therapy-30-before   | lab   | b12                           | T-23  |       | 150   | -                    |
unt-therapy-30-before   | med   | {HYDROXO}                     | T-53  | T-45  |       |                      |
unt-therapy-31-before   | lab   | b12                           | T-23  |       | 150   | deficiency_untreated |
unt-therapy-31-before   | med   | {HYDROXO}                     | T-54  | T-50  |       |                      |
unt-therapy-after       | lab   | b12                           | T-23  |       | 150   | -                    |
unt-therapy-after       | med   | {CYANO}                       | T-10  |       |       |                      |
unt-mma-therapy-after   | lab   | mma                           | T-23  |       | 400   | -                    |
unt-mma-therapy-after   | med   | Methylcobalamin 1000 mcg      | T-20  |       |       |                      |
unt-vitamin-b-12-name   | lab   | b12                           | T-8   |       | 150   | -                    |
unt-vitamin-b-12-name   | med   | vitamin B-12 1000 mcg         | T-3   |       |       |                      |
# current since long before: no order started since result - 30 days, so still met
unt-therapy-since-long  | lab   | b12                           | T-23  |       | 150   | deficiency_untreated |
unt-therapy-since-long  | med   | {HYDROXO}                     | T-400 |       |       |                      |
# folic acid is not B12 therapy; a quarantined order is no order
unt-folic-acid-only     | lab   | b12                           | T-23  |       | 150   | deficiency_untreated |
unt-folic-acid-only     | med   | {FOLIC}                       | T-10  |       |       |                      |
unt-order-quarantined   | lab   | b12                           | T-23  |       | 150   | deficiency_untreated |
unt-order-quarantined   | med   | {HYDROXO}                     | T-10  | soon  |       |                      | end_date is not a date
# both met: each result is judged on its own, met when either is. B12 at T-40 (cut-off T-70),
# MMA at T-10 (cut-off T-40, and 10 days > 7): an order at T-65 answers only the B12
unt-both-newer-unanswered | lab | b12                           | T-40  |       | 150   | deficiency_untreated |
unt-both-newer-unanswered | lab | mma                           | T-10  |       | 400   |                      |
unt-both-newer-unanswered | med | {HYDROXO}                     | T-65  | T-62  |       |                      |
unt-both-before-cutoff  | lab   | b12                           | T-40  |       | 150   | deficiency_untreated |
unt-both-before-cutoff  | lab   | mma                           | T-10  |       | 400   |                      |
unt-both-before-cutoff  | med   | {HYDROXO}                     | T-71  | T-68  |       |                      |
# an order at T-40 is 30 days or less before both results: both answered
unt-both-answered       | lab   | b12                           | T-40  |       | 150   | -                    |
unt-both-answered       | lab   | mma                           | T-10  |       | 400   |                      |
unt-both-answered       | med   | {HYDROXO}                     | T-40  | T-30  |       |                      |
# B12 only 5 days old (within grace), but the MMA 40 days old and unanswered: met
unt-both-earlier-mma    | lab   | b12                           | T-5   |       | 150   | deficiency_untreated |
unt-both-earlier-mma    | lab   | mma                           | T-40  |       | 400   |                      |
# the newer result within grace, the older one answered by an order at T-65: not met
unt-newer-in-grace      | lab   | b12                           | T-5   |       | 150   | -                    |
unt-newer-in-grace      | lab   | mma                           | T-40  |       | 400   |                      |
unt-newer-in-grace      | med   | {HYDROXO}                     | T-65  | T-62  |       |                      |
# older evidence never switches the alert off: an old raised MMA, a course after it, then a
# new deficient B12 23 days ago with nothing since
unt-old-mma-course-new-b12 | lab | mma                          | T-200 |       | 400   | deficiency_untreated |
unt-old-mma-course-new-b12 | lab | b12                          | T-23  |       | 150   |                      |
unt-old-mma-course-new-b12 | med | {HYDROXO}                    | T-190 | T-150 |       |                      |
unt-old-b12-course-new-mma | lab | b12                          | T-200 |       | 150   | deficiency_untreated |
unt-old-b12-course-new-mma | lab | mma                          | T-23  |       | 400   |                      |
unt-old-b12-course-new-mma | med | {HYDROXO}                    | T-190 | T-150 |       |                      |
"""
UNTREATED_CASES = cases_from(UNTREATED, frozenset({"deficiency_untreated"}))
untreated_run = table_fixture(UNTREATED_CASES)


@pytest.mark.parametrize("case", UNTREATED_CASES, ids=ids)
def test_deficiency_untreated(untreated_run, case):
    check(untreated_run, case)


def test_untreated_run_never_flags_the_empty_patient(untreated_run):
    check_never(untreated_run)


# =============================================================================================
# monitoring_overdue: B12 therapy current; from the start S of the current episode, due dates
# S+10, S+30 (CBC), S+90, S+182, S+365 (CBC and B12), then every 365 days; the latest due
# date D <= as_of is overdue when as_of - D > 14 with no valid result dated >= D for each test
# due (CBC = Hgb, WBC or platelets; B12 = B12).
# =============================================================================================
MONITORING = f"""
patient_id              | event | what                          | start | end   | value   | expect             | quarantine
# S = T-24: D = S+10 = T-14, 14 days past -> not yet; S = T-25: D = T-15, 15 days -> overdue
mon-d10-14-past         | med   | {HYDROXO}                     | T-24  |       |         | -                  |
mon-d10-15-past         | med   | {HYDROXO}                     | T-25  |       |         | monitoring_overdue |
mon-d10-hgb-on-due      | med   | {HYDROXO}                     | T-25  |       |         | -                  |
mon-d10-hgb-on-due      | lab   | hgb                           | T-15  |       | 14.5    |                    |
mon-d10-wbc-on-due      | med   | {HYDROXO}                     | T-25  |       |         | -                  |
mon-d10-wbc-on-due      | lab   | wbc                           | T-15  |       | 7.0     |                    |
mon-d10-plt-on-due      | med   | {HYDROXO}                     | T-25  |       |         | -                  |
mon-d10-plt-on-due      | lab   | platelets                     | T-15  |       | 250     |                    |
mon-d10-hgb-after-due   | med   | {HYDROXO}                     | T-25  |       |         | -                  |
mon-d10-hgb-after-due   | lab   | hgb                           | T-2   |       | 14.5    |                    |
mon-d10-hgb-day-before  | med   | {HYDROXO}                     | T-25  |       |         | monitoring_overdue |
mon-d10-hgb-day-before  | lab   | hgb                           | T-16  |       | 14.5    |                    |
mon-d10-b12-not-cbc     | med   | {HYDROXO}                     | T-25  |       |         | monitoring_overdue |
mon-d10-b12-not-cbc     | lab   | b12                           | T-15  |       | 500     |                    |
mon-d10-mcv-not-cbc     | med   | {HYDROXO}                     | T-25  |       |         | monitoring_overdue |
mon-d10-mcv-not-cbc     | lab   | mcv                           | T-15  |       | 90      |                    |
mon-d10-hgb-unreadable  | med   | {HYDROXO}                     | T-25  |       |         | monitoring_overdue |
mon-d10-hgb-unreadable  | lab   | hgb                           | T-15  |       | pending |                    | value is not a number
# S = T-50: D = S+30 = T-20; the day-10 CBC (T-40) is before D
mon-d30-none            | med   | {HYDROXO}                     | T-50  |       |         | monitoring_overdue |
mon-d30-hgb             | med   | {HYDROXO}                     | T-50  |       |         | -                  |
mon-d30-hgb             | lab   | hgb                           | T-20  |       | 14.5    |                    |
mon-d30-hgb-at-day-10   | med   | {HYDROXO}                     | T-50  |       |         | monitoring_overdue |
mon-d30-hgb-at-day-10   | lab   | hgb                           | T-40  |       | 14.5    |                    |
# S = T-100: D = S+90 = T-10, within 14 days (the missed day-30 CBC no longer matters)
mon-d90-not-yet         | med   | {HYDROXO}                     | T-100 |       |         | -                  |
# S = T-110: D = S+90 = T-20: CBC and B12 both needed
mon-d90-cbc-only        | med   | {HYDROXO}                     | T-110 |       |         | monitoring_overdue |
mon-d90-cbc-only        | lab   | hgb                           | T-20  |       | 14.5    |                    |
mon-d90-b12-only        | med   | {HYDROXO}                     | T-110 |       |         | monitoring_overdue |
mon-d90-b12-only        | lab   | b12                           | T-20  |       | 500     |                    |
mon-d90-both            | med   | {HYDROXO}                     | T-110 |       |         | -                  |
mon-d90-both            | lab   | hgb                           | T-20  |       | 14.5    |                    |
mon-d90-both            | lab   | b12                           | T-20  |       | 500     |                    |
mon-d90-mma-not-b12     | med   | {HYDROXO}                     | T-110 |       |         | monitoring_overdue |
mon-d90-mma-not-b12     | lab   | hgb                           | T-20  |       | 14.5    |                    |
mon-d90-mma-not-b12     | lab   | mma                           | T-20  |       | 150     |                    |
# S = T-200: D = S+182 = T-18
mon-d182-none           | med   | {HYDROXO}                     | T-200 |       |         | monitoring_overdue |
mon-d182-both           | med   | {HYDROXO}                     | T-200 |       |         | -                  |
mon-d182-both           | lab   | hgb                           | T-18  |       | 14.5    |                    |
mon-d182-both           | lab   | b12                           | T-18  |       | 500     |                    |
# S = T-380: D = S+365 = T-15
mon-d365-none           | med   | {HYDROXO}                     | T-380 |       |         | monitoring_overdue |
mon-d365-both           | med   | {HYDROXO}                     | T-380 |       |         | -                  |
mon-d365-both           | lab   | wbc                           | T-15  |       | 7.0     |                    |
mon-d365-both           | lab   | b12                           | T-15  |       | 500     |                    |
# S = T-750 (2024-11-04, 2 years and 20 days before): D = S+730 = T-20; S+365 = T-385
mon-year2-none          | med   | {HYDROXO}                     | T-750 |       |         | monitoring_overdue |
mon-year2-first-year    | med   | {HYDROXO}                     | T-750 |       |         | monitoring_overdue |
mon-year2-first-year    | lab   | hgb                           | T-385 |       | 14.5    |                    |
mon-year2-first-year    | lab   | b12                           | T-385 |       | 500     |                    |
mon-year2-both          | med   | {HYDROXO}                     | T-750 |       |         | -                  |
mon-year2-both          | lab   | hgb                           | T-20  |       | 14.5    |                    |
mon-year2-both          | lab   | b12                           | T-20  |       | 500     |                    |
mon-year2-not-yet       | med   | {HYDROXO}                     | T-740 |       |         | -                  |
# S = T-1115: S+730 = T-385, S+1095 = T-20
mon-year3-none          | med   | {HYDROXO}                     | T-1115 |      |         | monitoring_overdue |
mon-year3-year2-results | med   | {HYDROXO}                     | T-1115 |      |         | monitoring_overdue |
mon-year3-year2-results | lab   | hgb                           | T-385 |       | 14.5    |                    |
mon-year3-year2-results | lab   | b12                           | T-385 |       | 500     |                    |
mon-year3-both          | med   | {HYDROXO}                     | T-1115 |      |         | -                  |
mon-year3-both          | lab   | platelets                     | T-20  |       | 250     |                    |
mon-year3-both          | lab   | b12                           | T-20  |       | 500     |                    |
# S = T-665: D = S+365 = T-300; results since D count however old (no 90-day look-back)
mon-results-since-d-old | med   | {HYDROXO}                     | T-665 |       |         | -                  |
mon-results-since-d-old | lab   | hgb                           | T-200 |       | 14.5    |                    |
mon-results-since-d-old | lab   | b12                           | T-200 |       | 500     |                    |
# not on current therapy: never
mon-stopped-yesterday   | med   | {HYDROXO}                     | T-200 | T-1   |         | -                  |
mon-stopped-long-ago    | med   | {HYDROXO}                     | T-800 | T-500 |         | -                  |
mon-started-on-as-of    | med   | {HYDROXO}                     | T     |       |         | -                  |
# the current episode: after a gap it starts again (S = T-25, D = T-15) ...
mon-new-episode         | med   | {HYDROXO}                     | T-300 | T-200 |         | monitoring_overdue |
mon-new-episode         | med   | {CYANO}                       | T-25  |       |         |                    |
mon-new-episode-hgb     | med   | {HYDROXO}                     | T-300 | T-200 |         | -                  |
mon-new-episode-hgb     | med   | {CYANO}                       | T-25  |       |         |                    |
mon-new-episode-hgb     | lab   | hgb                           | T-15  |       | 14.5    |                    |
# ... touching or overlapping orders (any B12 drug) are one episode: S = T-300, D = T-118
mon-touching-episode    | med   | {HYDROXO}                     | T-300 | T-26  |         | -                  |
mon-touching-episode    | med   | {CYANO}                       | T-25  |       |         |                    |
mon-touching-episode    | lab   | hgb                           | T-118 |       | 14.5    |                    |
mon-touching-episode    | lab   | b12                           | T-118 |       | 500     |                    |
mon-overlap-episode     | med   | {HYDROXO}                     | T-300 |       |         | -                  |
mon-overlap-episode     | med   | Methylcobalamin 1000 mcg      | T-25  |       |         |                    |
mon-overlap-episode     | lab   | hgb                           | T-118 |       | 14.5    |                    |
mon-overlap-episode     | lab   | b12                           | T-118 |       | 500     |                    |
# every B12 drug, any route
mon-methylcobalamin     | med   | Methylcobalamin 1000 mcg      | T-25  |       |         | monitoring_overdue |
mon-cyanocobalamin-oral | med   | {CYANO}                       | T-25  |       |         | monitoring_overdue |
mon-vitamin-b-12-name   | med   | vitamin B-12 1000 mcg         | T-25  |       |         | monitoring_overdue |
mon-folic-acid-only     | med   | {FOLIC}                       | T-25  |       |         | -                  |
# a late refill (refill_gap_days = 30) continues the course: T-200..T-100, then from T-69
# (30 days without an order) is one course from T-200, day-182 visit due T-18 (the CBC at
# T-30 is before it); from T-68 (31 days without) a new course starts, day-30 CBC due T-38
# and done at T-30
mon-gap-30-days         | med   | {HYDROXO}                     | T-200 | T-100 |         | monitoring_overdue |
mon-gap-30-days         | med   | {HYDROXO}                     | T-69  |       |         |                    |
mon-gap-30-days         | lab   | hgb                           | T-30  |       | 14.5    |                    |
mon-gap-31-days         | med   | {HYDROXO}                     | T-200 | T-100 |         | -                  |
mon-gap-31-days         | med   | {HYDROXO}                     | T-68  |       |         |                    |
mon-gap-31-days         | lab   | hgb                           | T-30  |       | 14.5    |                    |
# one-day injection records each cover single_dose_cover_days (92) days: doses every 60 days
# from T-200 are one current course, day-182 visit due T-18 with nothing since
mon-doses-every-60      | med   | {HYDROXO}                     | T-200 | T-200 |         | monitoring_overdue |
mon-doses-every-60      | med   | {HYDROXO}                     | T-140 | T-140 |         |                    |
mon-doses-every-60      | med   | {HYDROXO}                     | T-80  | T-80  |         |                    |
mon-doses-every-60      | med   | {HYDROXO}                     | T-20  | T-20  |         |                    |
# one dose T-60: covers T-60..T+31, current; day-30 CBC due T-30, none since
mon-one-dose-60         | med   | {HYDROXO}                     | T-60  | T-60  |         | monitoring_overdue |
# one dose T-92: covered T-92..T-1, so not on therapy today
mon-one-dose-92         | med   | {HYDROXO}                     | T-92  | T-92  |         | -                  |
# one dose T-91: covers T-91..T, current; its day-90 visit fell due yesterday: not yet overdue
mon-one-dose-91         | med   | {HYDROXO}                     | T-91  | T-91  |         | -                  |
"""
MONITORING_CASES = cases_from(MONITORING, frozenset({"monitoring_overdue"}))
monitoring_run = table_fixture(MONITORING_CASES)


@pytest.mark.parametrize("case", MONITORING_CASES, ids=ids)
def test_monitoring_overdue(monitoring_run, case):
    check(monitoring_run, case)


def test_monitoring_run_never_flags_the_empty_patient(monitoring_run):
    check_never(monitoring_run)


# =============================================================================================
# b12_iv_route: B12 therapy current, and every current order of it by an intravenous route
# (iv_routes: iv, intravenous, ..., any case); an order without a route is not IV
# =============================================================================================
IV_ROUTE = f"""
patient_id              | event | what                          | start | end   | route        | expect
iv-hydroxo-iv           | med   | {HYDROXO}                     | T-30  |       | IV           | b12_iv_route
iv-cyano-intravenous    | med   | Cyanocobalamin 1000 mcg/mL injection | T-30 |  | Intravenous  | b12_iv_route
iv-push-spaces          | med   | {HYDROXO}                     | T-30  |       |  iv   push   | b12_iv_route
iv-methylcobalamin      | med   | Methylcobalamin 1000 mcg      | T-30  |       | iv           | b12_iv_route
iv-and-im               | med   | {HYDROXO}                     | T-30  |       | IV           | -
iv-and-im               | med   | {HYDROXO}                     | T-10  |       | IM           |
iv-ended-yesterday      | med   | {HYDROXO}                     | T-60  | T-1   | IV           | -
iv-ended-now-im         | med   | {HYDROXO}                     | T-60  | T-20  | IV           | -
iv-ended-now-im         | med   | {HYDROXO}                     | T-19  |       | IM           |
iv-no-route             | med   | {HYDROXO}                     | T-30  |       |              | -
iv-im                   | med   | {HYDROXO}                     | T-30  |       | IM           | -
iv-sc                   | med   | {HYDROXO}                     | T-30  |       | SC           | -
iv-intramuscular-word   | med   | {HYDROXO}                     | T-30  |       | intramuscular | -
iv-folic-acid-iv        | med   | {FOLIC}                       | T-30  |       | IV           | -
# one IV dose recorded on one day covers 92 days (single_dose_cover_days): T-91 is current
iv-one-dose-91          | med   | {HYDROXO}                     | T-91  | T-91  | IV           | b12_iv_route
iv-one-dose-92          | med   | {HYDROXO}                     | T-92  | T-92  | IV           | -
"""
IV_ROUTE_CASES = cases_from(IV_ROUTE, frozenset({"b12_iv_route"}))
iv_route_run = table_fixture(IV_ROUTE_CASES)


@pytest.mark.parametrize("case", IV_ROUTE_CASES, ids=ids)
def test_b12_iv_route(iv_route_run, case):
    check(iv_route_run, case)


def test_iv_route_run_never_flags_the_empty_patient(iv_route_run):
    check_never(iv_route_run)


# =============================================================================================
# Across the criteria
# =============================================================================================
def test_guidance_profile_has_the_defaults_these_tables_assume():
    """The day counts above are worked out for these guidance values (docs/criteria-semantics.md);
    a change in the rules file must come with new hand-worked cases."""
    semantics = {
        "metformin_long_term.drug_groups": ["metformin"],
        "metformin_long_term.min_exposure_days": 120,
        "metformin_long_term.recent_stop_days": 365,
        "acid_suppression_long_term.drug_groups": ["ppi", "h2_blocker"],
        "acid_suppression_long_term.min_exposure_days": 365,
        "acid_suppression_long_term.recent_stop_days": 365,
        "b12_lowering_drug.drug_groups": ["colchicine", "phenobarbital", "pregabalin"],
        "b12_screening_due.age_at_least": 75,
        "b12_screening_due.test_interval_days": 365,
        "folate_without_b12.therapy_lookback_days": 30,
        "cyanocobalamin_renal.egfr_below": 60,
        "deficiency_untreated.grace_days": 7,
        "deficiency_untreated.therapy_lookback_days": 30,
        "monitoring_overdue.cbc_days": [10, 30],
        "monitoring_overdue.cbc_b12_days": [90, 182, 365],
        "monitoring_overdue.yearly_days": 365,
        "monitoring_overdue.grace_days": 14,
        "monitoring_overdue.cbc_analytes": ["hgb", "wbc", "platelets"],
        "monitoring_overdue.b12_analytes": ["b12"],
        "monitoring_overdue.refill_gap_days": 30,
        "cyanocobalamin_renal.ckd_conditions": ["ckd_stage_3_to_5", "dialysis"],
        "cyanocobalamin_renal.ckd_unstaged_conditions": ["ckd_unstaged"],
    }
    assert {k: param(k) for k in semantics} == semantics
    assert RULES["settings"]["single_dose_cover_days"]["value"] == 92
    assert "iv" in param("b12_iv_route.iv_routes") and "intravenous" in param(
        "b12_iv_route.iv_routes"
    )
    therapy = ["cyanocobalamin", "hydroxocobalamin", "methylcobalamin"]
    for criterion in ("folate_without_b12", "deficiency_untreated", "monitoring_overdue"):
        assert sorted(param(f"{criterion}.therapy_groups")) == therapy


def test_every_criterion_has_a_table():
    tables = {
        "metformin_long_term": METFORMIN_CASES,
        "acid_suppression_long_term": ACID_CASES,
        "b12_lowering_drug": LOWERING_CASES,
        "risk_condition": RISK_CASES,
        "b12_screening_due": SCREENING_CASES,
        "folate_without_b12": FOLATE_CASES,
        "cyanocobalamin_renal": RENAL_CASES,
        "deficiency_untreated": UNTREATED_CASES,
        "monitoring_overdue": MONITORING_CASES,
        "b12_iv_route": IV_ROUTE_CASES,
    }
    assert set(tables) == MED_CRITERIA
    for criterion, cases in tables.items():
        met = [c for c in cases if criterion in c.expect]
        unmet = [c for c in cases if criterion not in c.expect]
        assert met and unmet, f"{criterion}: needs cases that meet it and cases that do not"


def test_the_empty_patient_alone_is_never_flagged(tmp_path):
    """A patient with no labs, medications or diagnoses, alone in a run: no flag at all."""
    result = screen([{"patient_id": NEVER}], [], medications=[], diagnoses=[], workdir=tmp_path)
    assert result.criteria(NEVER) == set(), result.explain(NEVER)
    assert result.quarantine == []


def test_medication_quarantine_keeps_the_raw_row(metformin_run):
    """Rejected medication rows keep their source file and the row as it was written."""
    rows = {q["raw"]["patient_id"]: q for q in metformin_run.quarantine if q["raw"]}
    q = rows["met-end-unreadable"]
    assert q["source_file"] == "medications.csv"
    assert q["raw"]["end_date"] == "soon"
    q = rows["met-end-before-start"]
    assert q["source_file"] == "medications.csv"
    assert (q["raw"]["start_date"], q["raw"]["end_date"]) == (day("T-200"), day("T-300"))
    future = [q for q in metformin_run.quarantined("met-future-start")]
    assert len(future) == 1 and future[0]["raw"]["start_date"] == day("T+1")
    assert date.fromisoformat(future[0]["raw"]["start_date"]) > AS_OF


def test_worklist_roles_and_priorities(screening_run, folate_run, renal_run, monitoring_run):
    """Context criteria alone keep a patient off the worklist; each action criterion sets the
    priority the semantics doc gives it (highest of those met)."""

    def worklist(result: ScreeningResult) -> dict[str, dict]:
        return result.worklist()

    due = worklist(screening_run)
    # metformin_long_term (context) with a recent MMA: nothing to act on
    assert "due-metformin-mma" not in due
    assert due["due-metformin"]["priority"] == "routine"
    assert due["due-metformin"]["criteria"].split(";") == [
        "metformin_long_term",
        "b12_screening_due",
    ]
    assert due["due-age-75"]["priority"] == "routine"
    # folate_without_b12 is urgent, above b12_deficient / deficiency_untreated (high)
    assert worklist(folate_run)["fwb-b12"]["priority"] == "urgent"
    assert worklist(folate_run)["fwb-hydroxo-current"]["priority"] == "high"
    renal = worklist(renal_run)
    assert renal["cr-egfr-59"]["priority"] == "high"
    assert "cr-egfr-60" not in renal
    mon = worklist(monitoring_run)
    assert mon["mon-d10-15-past"]["priority"] == "routine"
    assert "mon-d10-14-past" not in mon


# =============================================================================================
# The law behind the two safety criteria above: a further deficient result (of the other
# analyte, at any date in its look-back) can add folate_without_b12 or deficiency_untreated,
# never take one away. Each example is one run of paired patients, without and with it.
# =============================================================================================
SAFETY = frozenset({"folate_without_b12", "deficiency_untreated"})
DEFICIENT_VALUE = {"b12": "150", "mma": "400"}
THERAPIES = (HYDROXO, "Cyanocobalamin 1000 mcg tablet")
_days = st.integers(min_value=1, max_value=360)


@st.composite
def _safety_scenario(draw):
    analyte = draw(st.sampled_from(("b12", "mma")))
    labs = [(analyte, draw(_days))]
    meds = []
    if draw(st.booleans()):
        meds.append((FOLIC, draw(_days), None))
    for _ in range(draw(st.integers(0, 2))):
        start = draw(_days)
        end = draw(st.none() | st.integers(0, start - 1))
        meds.append((draw(st.sampled_from(THERAPIES)), start, end))
    other = "mma" if analyte == "b12" else "b12"
    return labs, meds, (other, draw(_days))


def _rows(pid: str, labs, meds) -> tuple[list[dict], list[dict]]:
    lab_rows = [
        {
            "patient_id": pid,
            "analyte": a,
            "value": DEFICIENT_VALUE[a],
            "collected_at": day(f"T-{d}"),
        }
        for a, d in labs
    ]
    med_rows = [
        {
            "patient_id": pid,
            "medication": m,
            "start_date": day(f"T-{s}"),
            "end_date": None if e is None else day(f"T-{e}"),
        }
        for m, s, e in meds
    ]
    return lab_rows, med_rows


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(_safety_scenario(), min_size=20, max_size=20))
def test_a_further_deficient_result_never_switches_a_safety_alert_off(tmp_path_factory, scenarios):
    labs, meds, patients = [], [], []
    for n, (base_labs, base_meds, extra) in enumerate(scenarios):
        for pid, lab_list in ((f"base-{n}", base_labs), (f"more-{n}", [*base_labs, extra])):
            lab_rows, med_rows = _rows(pid, lab_list, base_meds)
            labs += lab_rows
            meds += med_rows
            patients.append({"patient_id": pid})
    result = screen(
        patients, labs, medications=meds, workdir=tmp_path_factory.mktemp("law"), diagnoses=[]
    )
    for n in range(len(scenarios)):
        without = result.criteria(f"base-{n}") & SAFETY
        assert without <= result.criteria(f"more-{n}"), result.explain(f"more-{n}")
