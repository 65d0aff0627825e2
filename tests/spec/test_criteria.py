"""Given/expect tests of every lab criterion of the catalogue (docs/criteria.md).

Each table below is one screening run (a module-scoped fixture); each case is one patient in
it, and each case is its own test. What a case expects is written by hand from the rule text
(docs/criteria.md and data/rules/guidance.toml); the thresholds are read from the rules file, so
that the tests follow the profile and a criterion that ignores the profile fails here:

- thresholds: just below, exactly at and just above every limit, in every unit that
  data/lab_units.csv lists for the analyte (one canonical step, 10^-canonical_decimals, apart);
- derived criteria (pancytopenia, deficiency_with_cytopenia, cytopenia_b12_untested,
  pseudo_tma_suspect) with the combinations that do and do not meet them;
- look-back edges, "latest" semantics and tie-breaks, censored values, and
  b12_indeterminate with and without an MMA on or after the B12 result.

"Latest" (docs/criteria.md, sql/intermediate/int_latest_labs.sql), as tested here: the valid
result with the latest collected_at within the look-back; on a tie of collected_at the one
with the highest result_id (compared as text; rows without a result_id lose to rows with
one); then the one with the lower canonical value.

Every run also holds two patients who must never be flagged: one with no lab result at all,
and one with every analyte perfectly normal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

import pytest

try:
    from harness import (
        AS_OF,
        DEFAULT_COLLECTED_AT,
        LAB_CRITERIA,
        RULES,
        ScreeningResult,
        criteria_set,
        from_wide,
        lookback_days,
        param,
        parse_table,
        screen,
        units_of,
    )
except ModuleNotFoundError:  # tests/ imported as a package
    from tests.harness import (
        AS_OF,
        DEFAULT_COLLECTED_AT,
        LAB_CRITERIA,
        RULES,
        ScreeningResult,
        criteria_set,
        from_wide,
        lookback_days,
        param,
        parse_table,
        screen,
        units_of,
    )

# Canonical values are rounded to this many decimals after conversion (rules: settings), so
# "just below" and "just above" a limit are one step of that size away from it.
DECIMALS = RULES["settings"]["canonical_decimals"]["value"]
STEP = Decimal(1).scaleb(-DECIMALS)


@dataclass(frozen=True)
class Case:
    """One patient: their labs, and what the screening must say about them."""

    name: str
    labs: tuple[dict, ...]
    expect: frozenset[str]
    patient: dict = field(default_factory=dict)
    checked: frozenset[str] = LAB_CRITERIA  # the criteria this case speaks about
    values: dict[str, float] = field(default_factory=dict)  # criterion -> value in the flag
    details: dict[str, str] = field(default_factory=dict)  # criterion -> text in its detail
    quarantine: tuple[str, ...] = ()  # one expected reason (a substring) per quarantined row
    problem: str | None = None  # why the case cannot be checked (then it fails)


# Two patients in every run who are never flagged, by any criterion.
NO_LABS = "never-no-labs"
ALL_NORMAL = "never-all-normal"
NORMAL_RESULTS = {  # canonical units, well inside every reference range
    "b12": "500",
    "holotc": "80",
    "mma": "150",
    "homocysteine": "8",
    "folate": "12",
    "folate_rbc": "400",
    "hgb": "14.5",
    "wbc": "7.0",
    "anc": "4.0",
    "neutrophils_pct": "58",
    "platelets": "250",
    "mcv": "90",
    "ldh": "180",
    "reticulocytes_pct": "1.2",
    "reticulocytes": "60",
    "creatinine": "0.9",
    "egfr": "92",
}
SENTINELS = [
    Case(NO_LABS, (), frozenset(), patient={"sex": "F"}),
    Case(
        ALL_NORMAL,
        tuple({"analyte": a, "value": v} for a, v in NORMAL_RESULTS.items()),
        frozenset(),
        patient={"sex": "F"},
    ),
]


def run_cases(cases: list[Case], workdir) -> ScreeningResult:
    everyone = [*cases, *SENTINELS]
    names = [c.name for c in everyone]
    assert len(names) == len(set(names)), "case names (patient ids) must be unique"
    patients = [{"patient_id": c.name, **c.patient} for c in everyone]
    labs = [{"patient_id": c.name, **lab} for c in everyone for lab in c.labs]
    return screen(patients, labs, workdir=workdir)


def check(result: ScreeningResult, case: Case) -> None:
    if case.problem:
        pytest.fail(case.problem)
    why = result.explain(case.name)
    reasons = result.reasons(case.name)
    assert len(reasons) == len(case.quarantine), f"quarantine {reasons}{why}"
    for wanted in case.quarantine:
        assert any(wanted in r for r in reasons), f"no quarantine reason {wanted!r}{why}"
    assert result.criteria(case.name) & case.checked == case.expect, why
    for criterion, value in case.values.items():
        flag = result.flag(case.name, criterion)
        if flag is not None:
            assert flag["value"] == pytest.approx(value, abs=1e-9), why
    for criterion, text in case.details.items():
        flag = result.flag(case.name, criterion)
        assert flag is not None and text in flag["detail"], f"detail {text!r}{why}"


def check_sentinels(result: ScreeningResult) -> None:
    for name in (NO_LABS, ALL_NORMAL):
        assert result.criteria(name) == set(), result.explain(name)
        assert result.quarantined(name) == [], result.explain(name)


def d(days_before_as_of: int) -> str:
    return (AS_OF - timedelta(days=days_before_as_of)).isoformat()


# =============================================================================================
# 1. Thresholds: below / at / above, in every unit of the analyte
# =============================================================================================
def band(name: str) -> str:
    return f"band below {param(name):g}"


@dataclass(frozen=True)
class Threshold:
    param: str  # the rules-file parameter (criterion.param)
    analyte: str
    checked: frozenset[str]
    below: frozenset[str]  # expected (among checked) for a value one step below the limit
    at: frozenset[str]
    above: frozenset[str]
    sex: str = "M"
    background: tuple[tuple[str, str], ...] = ()  # other results (analyte, canonical value)
    details: dict[str, tuple[str, str]] = field(default_factory=dict)  # pos -> (crit, text)


def fs(*ids: str) -> frozenset[str]:
    return frozenset(ids)


B12_CRITERIA = fs("b12_deficient", "b12_indeterminate")
HGB_CRITERIA = fs("anemia", "critical_anemia")
PSEUDO_TMA_BACKGROUND = (("b12", "100"), ("hgb", "8.0"), ("platelets", "40"))

THRESHOLDS = [
    # latest B12 < below_pg_ml: deficient; from below_pg_ml to upper_pg_ml: indeterminate
    Threshold(
        "b12_deficient.below_pg_ml",
        "b12",
        B12_CRITERIA,
        below=fs("b12_deficient"),
        at=fs("b12_indeterminate"),
        above=fs("b12_indeterminate"),
    ),
    Threshold(
        "b12_indeterminate.upper_pg_ml",
        "b12",
        B12_CRITERIA,
        below=fs("b12_indeterminate"),
        at=fs("b12_indeterminate"),
        above=fs(),
    ),
    Threshold(
        "mma_elevated.above_nmol_l",
        "mma",
        fs("mma_elevated"),
        below=fs(),
        at=fs(),
        above=fs("mma_elevated"),
    ),
    Threshold(
        "homocysteine_elevated.above_umol_l",
        "homocysteine",
        fs("homocysteine_elevated"),
        below=fs(),
        at=fs(),
        above=fs("homocysteine_elevated"),
    ),
    Threshold(
        "folate_low.below_ng_ml",
        "folate",
        fs("folate_low"),
        below=fs("folate_low"),
        at=fs(),
        above=fs(),
    ),
    Threshold(
        "anemia.male_below_g_dl",
        "hgb",
        HGB_CRITERIA,
        below=fs("anemia"),
        at=fs(),
        above=fs(),
        sex="M",
    ),
    Threshold(
        "anemia.female_below_g_dl",
        "hgb",
        HGB_CRITERIA,
        below=fs("anemia"),
        at=fs(),
        above=fs(),
        sex="F",
    ),
    Threshold(
        "anemia.unknown_sex_below_g_dl",
        "hgb",
        HGB_CRITERIA,
        below=fs("anemia"),
        at=fs(),
        above=fs(),
        sex="unknown",
    ),
    # critical_anemia's limit lies below every anemia limit: all three values are anemic.
    Threshold(
        "critical_anemia.below_g_dl",
        "hgb",
        HGB_CRITERIA,
        below=fs("anemia", "critical_anemia"),
        at=fs("anemia"),
        above=fs("anemia"),
        sex="F",
    ),
    Threshold(
        "leukopenia.below_10e9_l",
        "wbc",
        fs("leukopenia"),
        below=fs("leukopenia"),
        at=fs(),
        above=fs(),
    ),
    Threshold(
        "neutropenia.below_10e9_l",
        "anc",
        fs("neutropenia"),
        below=fs("neutropenia"),
        at=fs(),
        above=fs(),
        details={"below": ("neutropenia", "grade mild")},
    ),
    Threshold(
        "neutropenia.moderate_below_10e9_l",
        "anc",
        fs("neutropenia"),
        below=fs("neutropenia"),
        at=fs("neutropenia"),
        above=fs("neutropenia"),
        details={
            "below": ("neutropenia", "grade moderate"),
            "at": ("neutropenia", "grade mild"),
            "above": ("neutropenia", "grade mild"),
        },
    ),
    # the severe grade is also where severe_cytopenia starts, whatever the B12 status
    Threshold(
        "neutropenia.severe_below_10e9_l",
        "anc",
        fs("neutropenia", "severe_cytopenia"),
        below=fs("neutropenia", "severe_cytopenia"),
        at=fs("neutropenia"),
        above=fs("neutropenia"),
        details={
            "below": ("neutropenia", "grade severe"),
            "at": ("neutropenia", "grade moderate"),
            "above": ("neutropenia", "grade moderate"),
        },
    ),
    Threshold(
        "thrombocytopenia.below_10e9_l",
        "platelets",
        fs("thrombocytopenia"),
        below=fs("thrombocytopenia"),
        at=fs(),
        above=fs(),
        details={"below": ("thrombocytopenia", band("thrombocytopenia.below_10e9_l"))},
    ),
    Threshold(
        "thrombocytopenia.band_im_caution_10e9_l",
        "platelets",
        fs("thrombocytopenia"),
        below=fs("thrombocytopenia"),
        at=fs("thrombocytopenia"),
        above=fs("thrombocytopenia"),
        details={
            "below": ("thrombocytopenia", band("thrombocytopenia.band_im_caution_10e9_l")),
            "at": ("thrombocytopenia", band("thrombocytopenia.below_10e9_l")),
            "above": ("thrombocytopenia", band("thrombocytopenia.below_10e9_l")),
        },
    ),
    Threshold(
        "thrombocytopenia.band_im_high_risk_10e9_l",
        "platelets",
        fs("thrombocytopenia"),
        below=fs("thrombocytopenia"),
        at=fs("thrombocytopenia"),
        above=fs("thrombocytopenia"),
        details={
            "below": ("thrombocytopenia", band("thrombocytopenia.band_im_high_risk_10e9_l")),
            "at": ("thrombocytopenia", band("thrombocytopenia.band_im_caution_10e9_l")),
            "above": ("thrombocytopenia", band("thrombocytopenia.band_im_caution_10e9_l")),
        },
    ),
    # below the transfusion band: also severe_cytopenia, whatever the B12 status
    Threshold(
        "thrombocytopenia.band_transfusion_10e9_l",
        "platelets",
        fs("thrombocytopenia", "severe_cytopenia"),
        below=fs("thrombocytopenia", "severe_cytopenia"),
        at=fs("thrombocytopenia"),
        above=fs("thrombocytopenia"),
        details={
            "below": ("thrombocytopenia", band("thrombocytopenia.band_transfusion_10e9_l")),
            "at": ("thrombocytopenia", band("thrombocytopenia.band_im_high_risk_10e9_l")),
            "above": ("thrombocytopenia", band("thrombocytopenia.band_im_high_risk_10e9_l")),
        },
    ),
    Threshold(
        "macrocytosis.above_fl",
        "mcv",
        fs("macrocytosis"),
        below=fs(),
        at=fs(),
        above=fs("macrocytosis"),
    ),
    # LDH above the limit, with B12 deficiency, anemia and thrombocytopenia already present.
    Threshold(
        "pseudo_tma_suspect.ldh_above_u_l",
        "ldh",
        fs("pseudo_tma_suspect"),
        below=fs(),
        at=fs(),
        above=fs("pseudo_tma_suspect"),
        background=PSEUDO_TMA_BACKGROUND,
    ),
]

# Units whose factor is not a power of ten: the reported values one step below, at and one step
# above each limit, worked out by hand (reported x factor, rounded to 3 decimals). Keyed by
# (parameter, unit key); each entry records the limit it was worked out for.
# fmt: off
HAND_VALUES: dict[tuple[str, str], tuple[float, tuple[str, str, str], tuple[float, float, float]]] = {
    # B12 pmol/L x 1.35539 = pg/mL
    ("b12_deficient.below_pg_ml", "pmol/l"): (
        180, ("132.802", "132.803", "132.804"),  # 179.99850, 179.99986, 180.00121
        (179.999, 180.0, 180.001)),
    ("b12_indeterminate.upper_pg_ml", "pmol/l"): (
        350, ("258.227", "258.228", "258.229"),  # 349.99829, 349.99965, 350.00100
        (349.998, 350.0, 350.001)),
    # folate nmol/L x 0.441306 = ng/mL
    ("folate_low.below_ng_ml", "nmol/l"): (
        4.0, ("9.062", "9.064", "9.066"),  # 3.99911, 3.99999758, 4.00088
        (3.999, 4.0, 4.001)),
    # homocysteine mg/L x 7.397 = umol/L
    ("homocysteine_elevated.above_umol_l", "mg/l"): (
        10, ("1.3518", "1.3519", "1.352"),  # 9.99926, 10.0000043, 10.000744
        (9.999, 10.0, 10.001)),
    # Hgb mmol/L x 1.611344 = g/dL
    ("anemia.male_below_g_dl", "mmol/l"): (
        13.0, ("8.067", "8.0678", "8.069"),  # 12.99871, 13.0000011, 13.00193
        (12.999, 13.0, 13.002)),
    ("anemia.female_below_g_dl", "mmol/l"): (
        12.0, ("7.446", "7.4472", "7.448"),  # 11.99807, 12.0000010, 12.00129
        (11.998, 12.0, 12.001)),
    ("anemia.unknown_sex_below_g_dl", "mmol/l"): (
        12.0, ("7.446", "7.4472", "7.448"),
        (11.998, 12.0, 12.001)),
    ("critical_anemia.below_g_dl", "mmol/l"): (
        5.0, ("3.102", "3.103", "3.104"),  # 4.99839, 5.0000004, 5.00161
        (4.998, 5.0, 5.002)),
    # LDH ukat/L x 60 = U/L
    ("pseudo_tma_suspect.ldh_above_u_l", "ukat/l"): (
        250, ("4.1666", "4.1666667", "4.1667"),  # 249.996, 250.000002, 250.002
        (249.996, 250.0, 250.002)),
}
# fmt: on


def _plain(x: Decimal) -> str:
    return format(x.normalize(), "f")  # no exponent: 150000, 0.270999


def _is_power_of_ten(factor: Decimal) -> bool:
    return factor > 0 and factor.normalize().as_tuple().digits == (1,)


def threshold_cases() -> list[Case]:
    cases = []
    for t in THRESHOLDS:
        limit = Decimal(str(param(t.param)))
        for unit, factor_text in units_of(t.analyte):
            factor = Decimal(factor_text)
            problem = None
            if _is_power_of_ten(factor):
                canon = [limit - STEP, limit, limit + STEP]
                reported = [_plain(c / factor) for c in canon]
                canonical = [float(c) for c in canon]
            elif (t.param, unit) in HAND_VALUES:
                assumed, reported, canonical = HAND_VALUES[(t.param, unit)]
                if assumed != param(t.param):
                    problem = (
                        f"the hand-worked {unit} values of {t.param} assume the limit {assumed}, "
                        f"the rules file says {param(t.param)}: work them out again"
                    )
            else:
                reported, canonical = ("0", "0", "0"), (0.0, 0.0, 0.0)
                problem = f"no hand-worked values for {t.param} in {unit} (factor {factor_text})"
            for pos, rep, can, expect in zip(
                ("below", "at", "above"), reported, canonical, (t.below, t.at, t.above), strict=True
            ):
                labs = [{"analyte": a, "value": v} for a, v in t.background]
                labs.append({"analyte": t.analyte, "value": rep, "unit": unit})
                details = {}
                if pos in t.details:
                    crit, text = t.details[pos]
                    details[crit] = text
                cases.append(
                    Case(
                        name=f"{t.param}/{unit}/{pos}",
                        labs=tuple(labs),
                        expect=expect,
                        patient={"sex": t.sex},
                        checked=t.checked,
                        values={c: can for c in expect},  # each flag carries this result
                        details=details,
                        problem=problem,
                    )
                )
    return cases


# Hand-written cases around the thresholds: the pmol/L values the catalogue names, and sex
# spellings (docs/inputs.md: M/F, male/female in any case; anything else is unknown).
THRESHOLD_EXTRAS = """
patient_id               | sex     | b12          | hgb  | expect
b12-132.0-pmol           | M       | 132.0 pmol/L |      | b12_deficient
b12-134-pmol             | M       | 134 pmol/L   |      | b12_indeterminate
b12-180-ng/L             | M       | 180 ng/L     |      | b12_indeterminate
b12-179.9-ng/L           | M       | 179.9 ng/L   |      | b12_deficient
sex-male-12.9            | male    | 500          | 12.9 | anemia
sex-MALE-12.9            | MALE    | 500          | 12.9 | anemia
sex-m-13.0               | m       | 500          | 13.0 | -
sex-f-12.9               | f       | 500          | 12.9 | -
sex-Female-11.9          | Female  | 500          | 11.9 | anemia
sex-FEMALE-12.0          | FEMALE  | 500          | 12.0 | -
sex-unknown-12.5         | unknown | 500          | 12.5 | -
sex-unknown-11.9         | unknown | 500          | 11.9 | anemia
sex-blank-11.9           |         | 500          | 11.9 | anemia
sex-blank-12.0           |         | 500          | 12.0 | -
sex-x-11.99              | x       | 500          | 11.99| anemia
sex-U-12.5               | U       | 500          | 12.5 | -
"""


def wide_cases(
    text: str,
    analytes: dict[str, str],
    quarantine: dict[str, tuple[str, ...]] | None = None,
    **dates: str,
) -> list[Case]:
    """Cases from a wide table; ``analytes`` maps its column names to analyte ids."""
    rows = [
        {analytes.get(k, k): v for k, v in row.items()}
        for row in parse_table(text.format(**dates) if dates else text)
    ]
    patients, labs, kept = from_wide(
        rows, analytes=tuple(analytes.values()), keep=("expect", "detail")
    )
    cases = []
    for p in patients:
        pid = p["patient_id"]
        details = {}
        if kept[pid]["detail"]:
            crit, wanted = kept[pid]["detail"].split(":", 1)
            details[crit.strip()] = wanted.strip()
        cases.append(
            Case(
                name=pid,
                labs=tuple(
                    {k: v for k, v in lab.items() if k != "patient_id"}
                    for lab in labs
                    if lab["patient_id"] == pid
                ),
                expect=criteria_set(kept[pid]["expect"]),
                patient={k: v for k, v in p.items() if k != "patient_id"},
                details=details,
                quarantine=(quarantine or {}).get(pid, ()),
            )
        )
    return cases


THRESHOLD_CASES = threshold_cases() + wide_cases(THRESHOLD_EXTRAS, {"b12": "b12", "hgb": "hgb"})


@pytest.fixture(scope="module")
def threshold_run(tmp_path_factory) -> ScreeningResult:
    return run_cases(THRESHOLD_CASES, tmp_path_factory.mktemp("thresholds"))


@pytest.mark.parametrize("case", THRESHOLD_CASES, ids=lambda c: c.name)
def test_threshold(threshold_run, case):
    check(threshold_run, case)


def test_threshold_run_never_flags_sentinels(threshold_run):
    check_sentinels(threshold_run)


def test_every_unit_of_every_threshold_is_covered():
    """Each analyte a threshold reads has cases in each unit data/lab_units.csv lists."""
    names = {c.name for c in THRESHOLD_CASES}
    for t in THRESHOLDS:
        units = [u for u, _ in units_of(t.analyte)]
        assert units, f"no units for {t.analyte}"
        for unit in units:
            for pos in ("below", "at", "above"):
                assert f"{t.param}/{unit}/{pos}" in names


def test_guidance_profile_matches_contract_defaults():
    """The guidance profile carries the catalogue's defaults (written out by hand)."""
    contract = {
        "b12_deficient.below_pg_ml": 180,
        "b12_indeterminate.upper_pg_ml": 350,
        "mma_elevated.above_nmol_l": 271,
        "anemia.male_below_g_dl": 13.0,
        "anemia.female_below_g_dl": 12.0,
        "critical_anemia.below_g_dl": 5.0,
        "leukopenia.below_10e9_l": 4.0,
        "neutropenia.below_10e9_l": 1.5,
        "neutropenia.moderate_below_10e9_l": 1.0,
        "neutropenia.severe_below_10e9_l": 0.5,
        "thrombocytopenia.below_10e9_l": 150,
        "thrombocytopenia.band_im_caution_10e9_l": 50,
        "thrombocytopenia.band_im_high_risk_10e9_l": 25,
        "thrombocytopenia.band_transfusion_10e9_l": 10,
        "macrocytosis.above_fl": 100,
    }
    assert {k: param(k) for k in contract} == contract
    windows = {a: 365 for a in ("b12", "mma", "homocysteine", "folate")} | {
        a: 90 for a in ("hgb", "wbc", "anc", "platelets", "mcv")
    }
    assert {a: lookback_days(a) for a in windows} == windows


# =============================================================================================
# 2. Derived criteria: the combinations that do and do not meet them
# =============================================================================================
# One row per patient; analyte cells are canonical values (B12 pg/mL, MMA nmol/L, Hgb g/dL,
# WBC/ANC/platelets 10^9/L, MCV fL, LDH U/L), collected on the default date unless @date.
# Abnormal values used: B12 150 (deficient), 250 (indeterminate); MMA 400; Hgb 11 (anemic for
# M and F), 4.5 (critical); WBC 3.0; ANC 1.0; platelets 100 (40 for pseudo-TMA); MCV 105;
# LDH 400. expect is the complete set of lab criteria met.
DERIVED = """
patient_id               | sex | b12          | mma          | hcy | folate | holotc | hgb  | wbc | anc | plt | mcv | ldh          | expect
# pancytopenia = anemia and leukopenia and thrombocytopenia
pan-all-three            | M   | 500          |              |     |        |        | 11   | 3.0 | 3.0 | 100 | 90  |              | anemia leukopenia thrombocytopenia pancytopenia
pan-no-anemia            | M   | 500          |              |     |        |        | 14.5 | 3.0 | 3.0 | 100 | 90  |              | leukopenia thrombocytopenia
pan-no-leukopenia        | M   | 500          |              |     |        |        | 11   | 6.0 | 3.0 | 100 | 90  |              | anemia thrombocytopenia
pan-no-thrombocytopenia  | M   | 500          |              |     |        |        | 11   | 3.0 | 3.0 | 250 | 90  |              | anemia leukopenia
pan-anemia-only          | M   | 500          |              |     |        |        | 11   | 6.0 | 3.0 | 250 | 90  |              | anemia
pan-leukopenia-only      | M   | 500          |              |     |        |        | 14.5 | 3.0 | 3.0 | 250 | 90  |              | leukopenia
pan-thrombo-only         | M   | 500          |              |     |        |        | 14.5 | 6.0 | 3.0 | 100 | 90  |              | thrombocytopenia
pan-none                 | M   | 500          |              |     |        |        | 14.5 | 6.0 | 3.0 | 250 | 90  |              | -
pan-neutro-not-leuko     | M   | 500          |              |     |        |        | 11   | 6.0 | 1.0 | 100 | 90  |              | anemia neutropenia thrombocytopenia
pan-all-four             | M   | 500          |              |     |        |        | 11   | 3.0 | 1.0 | 100 | 90  |              | anemia leukopenia neutropenia thrombocytopenia pancytopenia
pan-female-11.5          | F   | 500          |              |     |        |        | 11.5 | 3.0 |     | 100 |     |              | anemia leukopenia thrombocytopenia pancytopenia
pan-male-12.5            | M   | 500          |              |     |        |        | 12.5 | 3.0 |     | 100 |     |              | anemia leukopenia thrombocytopenia pancytopenia
pan-female-12.5          | F   | 500          |              |     |        |        | 12.5 | 3.0 |     | 100 |     |              | leukopenia thrombocytopenia
pan-no-b12               | M   |              |              |     |        |        | 11   | 3.0 |     | 100 |     |              | anemia leukopenia thrombocytopenia pancytopenia cytopenia_b12_untested
pan-hgb-missing          | M   | 500          |              |     |        |        |      | 3.0 |     | 100 |     |              | leukopenia thrombocytopenia
# deficiency_with_cytopenia = (b12_deficient or mma_elevated) and (anemia, leukopenia, neutropenia or thrombocytopenia)
dwc-b12-anemia           | M   | 150          |              |     |        |        | 11   |     |     |     |     |              | b12_deficient anemia deficiency_with_cytopenia
dwc-b12-leukopenia       | M   | 150          |              |     |        |        |      | 3.0 |     |     |     |              | b12_deficient leukopenia deficiency_with_cytopenia
dwc-b12-neutropenia      | M   | 150          |              |     |        |        |      |     | 1.0 |     |     |              | b12_deficient neutropenia deficiency_with_cytopenia
dwc-b12-thrombo          | M   | 150          |              |     |        |        |      |     |     | 100 |     |              | b12_deficient thrombocytopenia deficiency_with_cytopenia
dwc-b12-macrocytosis     | M   | 150          |              |     |        |        |      |     |     |     | 105 |              | b12_deficient macrocytosis
dwc-b12-normal-cbc       | M   | 150          |              |     |        |        | 14.5 | 6.0 | 3.0 | 250 | 90  |              | b12_deficient
dwc-b12-critical         | M   | 150          |              |     |        |        | 4.5  |     |     |     |     |              | b12_deficient anemia critical_anemia deficiency_with_cytopenia
dwc-mma-anemia           | M   | 500          | 400          |     |        |        | 11   |     |     |     |     |              | mma_elevated anemia deficiency_with_cytopenia
dwc-mma-leukopenia       | M   | 500          | 400          |     |        |        |      | 3.0 |     |     |     |              | mma_elevated leukopenia deficiency_with_cytopenia
dwc-mma-neutropenia      | M   | 500          | 400          |     |        |        |      |     | 1.0 |     |     |              | mma_elevated neutropenia deficiency_with_cytopenia
dwc-mma-thrombo          | M   | 500          | 400          |     |        |        |      |     |     | 100 |     |              | mma_elevated thrombocytopenia deficiency_with_cytopenia
dwc-mma-macrocytosis     | M   | 500          | 400          |     |        |        |      |     |     |     | 105 |              | mma_elevated macrocytosis
dwc-mma-no-b12-anemia    | M   |              | 400          |     |        |        | 11   |     |     |     |     |              | mma_elevated anemia deficiency_with_cytopenia
dwc-both-thrombo         | M   | 150          | 400          |     |        |        |      |     |     | 100 |     |              | b12_deficient mma_elevated thrombocytopenia deficiency_with_cytopenia
dwc-both-no-cytopenia    | M   | 150          | 400          |     |        |        | 14.5 | 6.0 | 3.0 | 250 | 90  |              | b12_deficient mma_elevated
dwc-indeterminate-anemia | M   | 250          |              |     |        |        | 11   |     |     |     |     |              | b12_indeterminate anemia
dwc-homocysteine-anemia  | M   | 500          |              | 20  |        |        | 11   |     |     |     |     |              | homocysteine_elevated anemia
dwc-folate-low-anemia    | M   | 500          |              |     | 2.0    |        | 11   |     |     |     |     |              | folate_low anemia
dwc-mma-normal-anemia    | M   | 500          | 200          |     |        |        | 11   |     |     |     |     |              | anemia
# cytopenia_b12_untested = (anemia, leukopenia, neutropenia, thrombocytopenia or macrocytosis) and no B12 or MMA result in the look-back
unt-anemia               | M   |              |              |     |        |        | 11   |     |     |     |     |              | anemia cytopenia_b12_untested
unt-critical             | M   |              |              |     |        |        | 4.5  |     |     |     |     |              | anemia critical_anemia cytopenia_b12_untested
unt-leukopenia           | M   |              |              |     |        |        |      | 3.0 |     |     |     |              | leukopenia cytopenia_b12_untested
unt-neutropenia          | M   |              |              |     |        |        |      |     | 1.0 |     |     |              | neutropenia cytopenia_b12_untested
unt-thrombo              | M   |              |              |     |        |        |      |     |     | 100 |     |              | thrombocytopenia cytopenia_b12_untested
unt-macrocytosis         | M   |              |              |     |        |        |      |     |     |     | 105 |              | macrocytosis cytopenia_b12_untested
unt-normal-cbc           | M   |              |              |     |        |        | 14.5 | 6.0 | 3.0 | 250 | 90  |              | -
unt-b12-normal           | M   | 500          |              |     |        |        | 11   |     |     |     |     |              | anemia
unt-mma-normal           | M   |              | 200          |     |        |        | 11   |     |     |     |     |              | anemia
unt-b12-at-edge          | M   | 500 @{b12_in}|              |     |        |        | 11   |     |     |     |     |              | anemia
unt-b12-too-old          | M   | 500 @{b12_out}|             |     |        |        | 11   |     |     |     |     |              | anemia cytopenia_b12_untested
unt-b12-old-deficient    | M   | 150 @{b12_out}|             |     |        |        | 11   |     |     |     |     |              | anemia cytopenia_b12_untested
unt-mma-at-edge          | M   |              | 200 @{mma_in}|     |        |        |      |     |     |     | 105 |              | macrocytosis
unt-mma-too-old          | M   |              | 200 @{mma_out}|    |        |        |      |     |     |     | 105 |              | macrocytosis cytopenia_b12_untested
unt-holotc-only          | M   |              |              |     |        | 80     | 11   |     |     |     |     |              | anemia cytopenia_b12_untested
unt-folate-only          | M   |              |              |     | 12     |        | 11   |     |     |     |     |              | anemia cytopenia_b12_untested
unt-b12-quarantined      | M   | 500 g/dL     |              |     |        |        | 11   |     |     |     |     |              | anemia cytopenia_b12_untested
unt-indeterminate-macro  | M   | 250          |              |     |        |        |      |     |     |     | 105 |              | b12_indeterminate macrocytosis
# pseudo_tma_suspect = (b12_deficient or mma_elevated) and anemia and thrombocytopenia and LDH above the limit
tma-b12                  | M   | 150          |              |     |        |        | 9.0  |     |     | 40  |     | 400          | b12_deficient anemia thrombocytopenia deficiency_with_cytopenia pseudo_tma_suspect
tma-mma                  | M   | 500          | 400          |     |        |        | 9.0  |     |     | 40  |     | 400          | mma_elevated anemia thrombocytopenia deficiency_with_cytopenia pseudo_tma_suspect
tma-pancytopenia         | M   | 150          |              |     |        |        | 9.0  | 3.0 |     | 40  |     | 400          | b12_deficient anemia leukopenia thrombocytopenia pancytopenia deficiency_with_cytopenia pseudo_tma_suspect
tma-no-deficiency        | M   | 500          |              |     |        |        | 9.0  |     |     | 40  |     | 400          | anemia thrombocytopenia
tma-indeterminate        | M   | 250          |              |     |        |        | 9.0  |     |     | 40  |     | 400          | b12_indeterminate anemia thrombocytopenia
tma-no-anemia            | M   | 150          |              |     |        |        | 14.5 |     |     | 40  |     | 400          | b12_deficient thrombocytopenia deficiency_with_cytopenia
tma-no-thrombo           | M   | 150          |              |     |        |        | 9.0  |     |     | 250 |     | 400          | b12_deficient anemia deficiency_with_cytopenia
tma-neutro-not-thrombo   | M   | 150          |              |     |        |        | 9.0  |     | 1.0 | 250 |     | 400          | b12_deficient anemia neutropenia deficiency_with_cytopenia
tma-ldh-normal           | M   | 150          |              |     |        |        | 9.0  |     |     | 40  |     | 200          | b12_deficient anemia thrombocytopenia deficiency_with_cytopenia
tma-ldh-missing          | M   | 150          |              |     |        |        | 9.0  |     |     | 40  |     |              | b12_deficient anemia thrombocytopenia deficiency_with_cytopenia
tma-ldh-too-old          | M   | 150          |              |     |        |        | 9.0  |     |     | 40  |     | 400 @{ldh_out}| b12_deficient anemia thrombocytopenia deficiency_with_cytopenia
tma-ldh-at-edge          | M   | 150          |              |     |        |        | 9.0  |     |     | 40  |     | 400 @{ldh_in}| b12_deficient anemia thrombocytopenia deficiency_with_cytopenia pseudo_tma_suspect
tma-ldh-iu               | M   | 150          |              |     |        |        | 9.0  |     |     | 40  |     | 400 IU/L     | b12_deficient anemia thrombocytopenia deficiency_with_cytopenia pseudo_tma_suspect
"""
DERIVED_ANALYTES = {
    "b12": "b12",
    "mma": "mma",
    "hcy": "homocysteine",
    "folate": "folate",
    "holotc": "holotc",
    "hgb": "hgb",
    "wbc": "wbc",
    "anc": "anc",
    "plt": "platelets",
    "mcv": "mcv",
    "ldh": "ldh",
}
WINDOW_DATES = {
    f"{a}_{edge}": d(lookback_days(a) + (0 if edge == "in" else 1))
    for a in ("b12", "mma", "ldh")
    for edge in ("in", "out")
}


def derived_cases() -> list[Case]:
    return wide_cases(
        DERIVED,
        DERIVED_ANALYTES,
        quarantine={"unt-b12-quarantined": ("unit does not fit the analyte",)},
        **WINDOW_DATES,
    )


DERIVED_CASES = derived_cases()


@pytest.fixture(scope="module")
def derived_run(tmp_path_factory) -> ScreeningResult:
    return run_cases(DERIVED_CASES, tmp_path_factory.mktemp("derived"))


@pytest.mark.parametrize("case", DERIVED_CASES, ids=lambda c: c.name)
def test_derived(derived_run, case):
    check(derived_run, case)


def test_derived_run_never_flags_sentinels(derived_run):
    check_sentinels(derived_run)


def test_derived_details_name_what_was_met(derived_run):
    """The detail of a derived flag names the criteria that made it (the worklist's evidence, docs/outputs.md)."""
    flag = derived_run.flag("dwc-both-thrombo", "deficiency_with_cytopenia")
    assert flag is not None, derived_run.explain("dwc-both-thrombo")
    assert "b12_deficient" in flag["detail"] and "mma_elevated" in flag["detail"]
    assert "thrombocytopenia" in flag["detail"]
    flag = derived_run.flag("unt-macrocytosis", "cytopenia_b12_untested")
    assert flag is not None, derived_run.explain("unt-macrocytosis")
    assert "macrocytosis" in flag["detail"]


# =============================================================================================
# 3. Look-back windows: a result exactly lookback_days before as-of counts, a day earlier not
# =============================================================================================
# analyte -> (an abnormal canonical value, the criterion it meets, background results)
ABNORMAL = {
    "b12": ("150", "b12_deficient", ()),
    "mma": ("400", "mma_elevated", ()),
    "homocysteine": ("20", "homocysteine_elevated", ()),
    "folate": ("2.0", "folate_low", ()),
    "hgb": ("11.0", "anemia", ()),
    "wbc": ("3.0", "leukopenia", ()),
    "anc": ("1.0", "neutropenia", ()),
    "platelets": ("100", "thrombocytopenia", ()),
    "mcv": ("105", "macrocytosis", ()),
    "ldh": ("400", "pseudo_tma_suspect", PSEUDO_TMA_BACKGROUND),
}


def lookback_cases() -> list[Case]:
    cases = []
    for analyte, (value, criterion, background) in ABNORMAL.items():
        days = lookback_days(analyte)
        edge, before = AS_OF - timedelta(days=days), AS_OF - timedelta(days=days + 1)
        after = AS_OF + timedelta(days=1)
        positions = [
            ("edge", edge.isoformat(), True, ()),
            ("edge-late", f"{edge.isoformat()}T23:59:59", True, ()),
            ("day-before-edge", before.isoformat(), False, ()),
            ("day-before-edge-late", f"{before.isoformat()} 23:59:59", False, ()),
            ("on-as-of", AS_OF.isoformat(), True, ()),
            ("on-as-of-late", f"{AS_OF.isoformat()}T23:59:59", True, ()),
            ("day-after-as-of", after.isoformat(), False, ("after the as-of date",)),
        ]
        for pos, when, met, quarantine in positions:
            labs = [{"analyte": a, "value": v} for a, v in background]
            labs.append({"analyte": analyte, "value": value, "collected_at": when})
            cases.append(
                Case(
                    name=f"lookback/{analyte}/{pos}",
                    labs=tuple(labs),
                    expect=fs(criterion) if met else fs(),
                    checked=fs(criterion),
                    quarantine=quarantine,
                )
            )
    # b12_indeterminate reads the same window as b12_deficient
    for pos, days, met in (("edge", 0, True), ("day-before-edge", 1, False)):
        when = (AS_OF - timedelta(days=lookback_days("b12") + days)).isoformat()
        cases.append(
            Case(
                name=f"lookback/b12-indeterminate/{pos}",
                labs=({"analyte": "b12", "value": "250", "collected_at": when},),
                expect=fs("b12_indeterminate") if met else fs(),
                checked=B12_CRITERIA,
            )
        )
    return cases


LOOKBACK_CASES = lookback_cases()


@pytest.fixture(scope="module")
def lookback_run(tmp_path_factory) -> ScreeningResult:
    return run_cases(LOOKBACK_CASES, tmp_path_factory.mktemp("lookback"))


@pytest.mark.parametrize("case", LOOKBACK_CASES, ids=lambda c: c.name)
def test_lookback(lookback_run, case):
    check(lookback_run, case)


def test_lookback_run_never_flags_sentinels(lookback_run):
    check_sentinels(lookback_run)


# =============================================================================================
# 4. "Latest": a newer result overrides an older one; ties; invalid newer rows
# =============================================================================================
LATEST_LABS = """
patient_id                 | analyte   | loinc   | test_name   | value   | unit   | collected_at        | result_id
lt-newer-normal            | b12       |         |             | 150     |        | 2026-10-01          |
lt-newer-normal            | b12       |         |             | 500     |        | 2026-11-01          |
lt-newer-abnormal          | b12       |         |             | 500     |        | 2026-10-01          |
lt-newer-abnormal          | b12       |         |             | 150     |        | 2026-11-01          |
lt-later-same-day-normal   | b12       |         |             | 150     |        | 2026-11-01T08:00:00 |
lt-later-same-day-normal   | b12       |         |             | 500     |        | 2026-11-01T09:00:00 |
lt-later-same-day-abnormal | b12       |         |             | 500     |        | 2026-11-01T08:00:00 |
lt-later-same-day-abnormal | b12       |         |             | 150     |        | 2026-11-01T09:00:00 |
lt-other-b12-loinc         |           | 2132-9  |             | 150     | pg/mL  | 2026-10-01          |
lt-other-b12-loinc         |           | 14685-2 |             | 500     | pg/mL  | 2026-11-01          |
lt-by-name-then-loinc      |           |         | Vitamin B12 | 150     | pg/mL  | 2026-10-01          |
lt-by-name-then-loinc      | b12       |         |             | 500     |        | 2026-11-01          |
lt-other-unit-newer        | b12       |         |             | 150     | pg/mL  | 2026-10-01          |
lt-other-unit-newer        | b12       |         |             | 400     | pmol/L | 2026-11-01          |
lt-tie-higher-id-normal    | b12       |         |             | 150     |        | 2026-11-01          | R1
lt-tie-higher-id-normal    | b12       |         |             | 500     |        | 2026-11-01          | R2
lt-tie-higher-id-abnormal  | b12       |         |             | 500     |        | 2026-11-01          | R1
lt-tie-higher-id-abnormal  | b12       |         |             | 150     |        | 2026-11-01          | R2
lt-tie-same-id-lower-value | b12       |         |             | 500     |        | 2026-11-01          | R7
lt-tie-same-id-lower-value | b12       |         |             | 150     |        | 2026-11-01          | R7
lt-tie-no-id-lower-value   | b12       |         |             | 500     |        | 2026-11-01          |
lt-tie-no-id-lower-value   | b12       |         |             | 150     |        | 2026-11-01          |
lt-tie-id-beats-no-id      | b12       |         |             | 500     |        | 2026-11-01          | R1
lt-tie-id-beats-no-id      | b12       |         |             | 150     |        | 2026-11-01          |
lt-tie-lower-canonical     | b12       |         |             | 125     | pmol/L | 2026-11-01          |
lt-tie-lower-canonical     | b12       |         |             | 165     | pg/mL  | 2026-11-01          |
lt-tie-same-time-and-date  | b12       |         |             | 500     |        | 2026-11-01          | R1
lt-tie-same-time-and-date  | b12       |         |             | 150     |        | 2026-11-01T00:00:00 | R2
lt-tie-numeric-ids         | b12       |         |             | 500     |        | 2026-11-01          | 9
lt-tie-numeric-ids         | b12       |         |             | 150     |        | 2026-11-01          | 10
lt-newer-quarantined-unit  | b12       |         |             | 150     |        | 2026-10-01          |
lt-newer-quarantined-unit  | b12       |         |             | 500     | g/dL   | 2026-11-01          |
lt-newer-unreadable        | b12       |         |             | 150     |        | 2026-10-01          |
lt-newer-unreadable        | b12       |         |             | pending |        | 2026-11-01          |
lt-older-out-of-window     | b12       |         |             | 150     |        | 2025-01-01          |
lt-older-out-of-window     | b12       |         |             | 500     |        | 2026-11-01          |
lt-mma-newer-normal        | mma       |         |             | 400     |        | 2026-10-01          |
lt-mma-newer-normal        | mma       |         |             | 200     |        | 2026-11-01          |
lt-mma-newer-elevated      | mma       |         |             | 200     |        | 2026-10-01          |
lt-mma-newer-elevated      | mma       |         |             | 400     |        | 2026-11-01          |
lt-mma-tie-no-id           | mma       |         |             | 400     |        | 2026-11-01          |
lt-mma-tie-no-id           | mma       |         |             | 200     |        | 2026-11-01          |
lt-hgb-newer-normal        | b12       |         |             | 500     |        |                     |
lt-hgb-newer-normal        | hgb       |         |             | 11.0    |        | 2026-10-01          |
lt-hgb-newer-normal        | hgb       |         |             | 14.5    |        | 2026-11-01          |
lt-hgb-newer-anemic        | b12       |         |             | 500     |        |                     |
lt-hgb-newer-anemic        | hgb       |         |             | 14.5    |        | 2026-10-01          |
lt-hgb-newer-anemic        | hgb       |         |             | 11.0    |        | 2026-11-01          |
lt-plt-tie-higher-id       | b12       |         |             | 500     |        |                     |
lt-plt-tie-higher-id       | platelets |         |             | 100     |        | 2026-11-01          | A1
lt-plt-tie-higher-id       | platelets |         |             | 250     |        | 2026-11-01          | A2
lt-plt-tie-no-id           | b12       |         |             | 500     |        |                     |
lt-plt-tie-no-id           | platelets |         |             | 250     |        | 2026-11-01          |
lt-plt-tie-no-id           | platelets |         |             | 100     |        | 2026-11-01          |
lt-anc-newer-severe        | b12       |         |             | 500     |        |                     |
lt-anc-newer-severe        | anc       |         |             | 1.2     |        | 2026-10-01          |
lt-anc-newer-severe        | anc       |         |             | 0.3     |        | 2026-11-01          |
"""
# patient -> (expected lab criteria, {criterion: value in the flag}, quarantine reasons)
LATEST_EXPECT = {
    "lt-newer-normal": ("-", {}, ()),
    "lt-newer-abnormal": ("b12_deficient", {"b12_deficient": 150.0}, ()),
    "lt-later-same-day-normal": ("-", {}, ()),
    "lt-later-same-day-abnormal": ("b12_deficient", {"b12_deficient": 150.0}, ()),
    "lt-other-b12-loinc": ("-", {}, ()),
    "lt-by-name-then-loinc": ("-", {}, ()),
    # 400 pmol/L x 1.35539 = 542.156 pg/mL: normal
    "lt-other-unit-newer": ("-", {}, ()),
    "lt-tie-higher-id-normal": ("-", {}, ()),
    "lt-tie-higher-id-abnormal": ("b12_deficient", {"b12_deficient": 150.0}, ()),
    "lt-tie-same-id-lower-value": ("b12_deficient", {"b12_deficient": 150.0}, ()),
    "lt-tie-no-id-lower-value": ("b12_deficient", {"b12_deficient": 150.0}, ()),
    "lt-tie-id-beats-no-id": ("-", {}, ()),
    # 125 pmol/L = 169.424 pg/mL > 165 pg/mL: the lower canonical value wins, not the lower number
    "lt-tie-lower-canonical": ("b12_deficient", {"b12_deficient": 165.0}, ()),
    "lt-tie-same-time-and-date": ("b12_deficient", {"b12_deficient": 150.0}, ()),
    # result ids '10' and '9': the later id, if ids are numbers, is 10
    "lt-tie-numeric-ids": ("b12_deficient", {"b12_deficient": 150.0}, ()),
    "lt-newer-quarantined-unit": (
        "b12_deficient",
        {"b12_deficient": 150.0},
        ("unit does not fit the analyte",),
    ),
    "lt-newer-unreadable": ("b12_deficient", {"b12_deficient": 150.0}, ("value is not a number",)),
    "lt-older-out-of-window": ("-", {}, ()),
    "lt-mma-newer-normal": ("-", {}, ()),
    "lt-mma-newer-elevated": ("mma_elevated", {"mma_elevated": 400.0}, ()),
    "lt-mma-tie-no-id": ("-", {}, ()),
    "lt-hgb-newer-normal": ("-", {}, ()),
    "lt-hgb-newer-anemic": ("anemia", {"anemia": 11.0}, ()),
    "lt-plt-tie-higher-id": ("-", {}, ()),
    "lt-plt-tie-no-id": ("thrombocytopenia", {"thrombocytopenia": 100.0}, ()),
    "lt-anc-newer-severe": (
        "neutropenia severe_cytopenia",
        {"neutropenia": 0.3, "severe_cytopenia": 0.3},
        (),
    ),
}


def long_cases(labs_text: str, expect: dict) -> list[Case]:
    rows = parse_table(labs_text)
    by_patient: dict[str, list[dict]] = {}
    for row in rows:
        lab = {k: v for k, v in row.items() if k != "patient_id" and v is not None}
        by_patient.setdefault(row["patient_id"], []).append(lab)
    assert set(by_patient) == set(expect), set(by_patient) ^ set(expect)
    cases = []
    for pid, labs in by_patient.items():
        criteria, values, quarantine = expect[pid]
        cases.append(
            Case(
                name=pid,
                labs=tuple(labs),
                expect=criteria_set(criteria),
                values=values,
                quarantine=quarantine,
            )
        )
    return cases


LATEST_CASES = long_cases(LATEST_LABS, LATEST_EXPECT)


@pytest.fixture(scope="module")
def latest_run(tmp_path_factory) -> ScreeningResult:
    return run_cases(LATEST_CASES, tmp_path_factory.mktemp("latest"))


@pytest.mark.parametrize(
    "case",
    LATEST_CASES,
    ids=lambda c: c.name,
)
def test_latest(latest_run, case):
    check(latest_run, case)


def test_latest_run_never_flags_sentinels(latest_run):
    check_sentinels(latest_run)


def test_latest_flag_carries_the_latest_results_date(latest_run):
    flag = latest_run.flag("lt-later-same-day-abnormal", "b12_deficient")
    assert str(flag["observed_at"]) == "2026-11-01 09:00:00"


# =============================================================================================
# 5. Censored values: a rule is met only when it is certain
# =============================================================================================
# '<=180' and '>=271' only say the value may equal the limit: neither is certainly beyond it.
CENSORED = """
patient_id          | b12           | mma            | hcy   | folate | hgb   | anc   | plt   | mcv   | expect                | detail
cen-b12-lt150       | <150          |                |       |        |       |       |       |       | b12_deficient         |
cen-b12-lt180       | <180          |                |       |        |       |       |       |       | b12_deficient         |
cen-b12-lt200       | <200          |                |       |        |       |       |       |       | b12_indeterminate     |
cen-b12-lt350       | <350          |                |       |        |       |       |       |       | b12_indeterminate     |
cen-b12-lt351       | <351          |                |       |        |       |       |       |       | -                     |
cen-b12-gt2000      | >2000         |                |       |        |       |       |       |       | -                     |
cen-b12-gt100       | >100          |                |       |        |       |       |       |       | -                     |
cen-b12-gt200       | >200          |                |       |        |       |       |       |       | -                     |
cen-b12-lt100-pmol  | <100 pmol/L   |                |       |        |       |       |       |       | b12_deficient         |
cen-b12-le180       | <=180         |                |       |        |       |       |       |       | b12_indeterminate     |
cen-mma-gt300       | 500           | >300           |       |        |       |       |       |       | mma_elevated          |
cen-mma-gt271       | 500           | >271           |       |        |       |       |       |       | mma_elevated          |
cen-mma-gt200       | 500           | >200           |       |        |       |       |       |       | -                     |
cen-mma-lt300       | 500           | <300           |       |        |       |       |       |       | -                     |
cen-mma-lt100       | 500           | <100           |       |        |       |       |       |       | -                     |
cen-mma-gt-umol     | 500           | >0.3 umol/L    |       |        |       |       |       |       | mma_elevated          |
cen-mma-ge271       | 500           | >=271          |       |        |       |       |       |       | -                     |
cen-hcy-gt10        | 500           |                | >10   |        |       |       |       |       | homocysteine_elevated |
cen-hcy-gt8         | 500           |                | >8    |        |       |       |       |       | -                     |
cen-folate-lt4      | 500           |                |       | <4     |       |       |       |       | folate_low            |
cen-folate-lt5      | 500           |                |       | <5     |       |       |       |       | -                     |
cen-folate-gt2      | 500           |                |       | >2     |       |       |       |       | -                     |
cen-hgb-lt5         | 500           |                |       |        | <5.0  |       |       |       | anemia critical_anemia|
cen-hgb-gt4         | 500           |                |       |        | >4    |       |       |       | -                     |
cen-anc-lt0.5       | 500           |                |       |        |       | <0.5  |       |       | neutropenia severe_cytopenia | neutropenia: grade severe
cen-anc-gt0.1       | 500           |                |       |        |       | >0.1  |       |       | -                     |
cen-plt-lt10        | 500           |                |       |        |       |       | <10   |       | thrombocytopenia severe_cytopenia | thrombocytopenia: band below 10
cen-plt-gt5         | 500           |                |       |        |       |       | >5    |       | -                     |
cen-mcv-gt100       | 500           |                |       |        |       |       |       | >100  | macrocytosis          |
cen-mcv-lt120       | 500           |                |       |        |       |       |       | <120  | -                     |
"""
CENSORED_ANALYTES = {
    "b12": "b12",
    "mma": "mma",
    "hcy": "homocysteine",
    "folate": "folate",
    "hgb": "hgb",
    "anc": "anc",
    "plt": "platelets",
    "mcv": "mcv",
}


def censored_cases() -> list[Case]:
    return wide_cases(CENSORED, CENSORED_ANALYTES)


CENSORED_CASES = censored_cases()


@pytest.fixture(scope="module")
def censored_run(tmp_path_factory) -> ScreeningResult:
    return run_cases(CENSORED_CASES, tmp_path_factory.mktemp("censored"))


@pytest.mark.parametrize("case", CENSORED_CASES, ids=lambda c: c.name)
def test_censored(censored_run, case):
    check(censored_run, case)


def test_censored_run_never_flags_sentinels(censored_run):
    check_sentinels(censored_run)


def test_censored_flag_keeps_the_mark_in_its_evidence(censored_run):
    flag = censored_run.flag("cen-b12-lt150", "b12_deficient")
    assert flag["value"] == 150.0 and "<150" in flag["detail"]


# =============================================================================================
# 6. b12_indeterminate and the MMA "on or after" the B12 result
# =============================================================================================
INDETERMINATE_LABS = """
patient_id                   | analyte | loinc   | test_name          | value | unit            | collected_at
ind-no-mma                   | b12     |         |                    | 250   |                 | 2026-11-01
ind-mma-after                | b12     |         |                    | 250   |                 | 2026-11-01
ind-mma-after                | mma     |         |                    | 200   |                 | 2026-11-10
ind-mma-same-date            | b12     |         |                    | 250   |                 | 2026-11-01
ind-mma-same-date            | mma     |         |                    | 200   |                 | 2026-11-01
ind-mma-same-timestamp       | b12     |         |                    | 250   |                 | 2026-11-01T09:00:00
ind-mma-same-timestamp       | mma     |         |                    | 200   |                 | 2026-11-01T09:00:00
ind-mma-later-same-day       | b12     |         |                    | 250   |                 | 2026-11-01T09:00:00
ind-mma-later-same-day       | mma     |         |                    | 200   |                 | 2026-11-01T10:00:00
ind-mma-earlier-same-day     | b12     |         |                    | 250   |                 | 2026-11-01T09:00:00
ind-mma-earlier-same-day     | mma     |         |                    | 200   |                 | 2026-11-01T08:00:00
ind-mma-before               | b12     |         |                    | 250   |                 | 2026-11-01
ind-mma-before               | mma     |         |                    | 200   |                 | 2026-10-31
ind-mma-before-elevated      | b12     |         |                    | 250   |                 | 2026-11-01
ind-mma-before-elevated      | mma     |         |                    | 400   |                 | 2026-10-01
ind-mma-after-elevated       | b12     |         |                    | 250   |                 | 2026-10-01
ind-mma-after-elevated       | mma     |         |                    | 400   |                 | 2026-11-01
ind-mma-on-as-of             | b12     |         |                    | 250   |                 | 2026-11-01
ind-mma-on-as-of             | mma     |         |                    | 200   |                 | 2026-11-24
ind-mma-after-by-name        | b12     |         |                    | 250   |                 | 2026-11-01
ind-mma-after-by-name        |         |         | Methylmalonic acid | 200   | nmol/L          | 2026-11-10
ind-mma-after-in-umol        | b12     |         |                    | 250   |                 | 2026-11-01
ind-mma-after-in-umol        | mma     |         |                    | 0.2   | µmol/L          | 2026-11-10
ind-mma-after-quarantined    | b12     |         |                    | 250   |                 | 2026-11-01
ind-mma-after-quarantined    | mma     |         |                    | 200   | g/dL            | 2026-11-10
ind-urine-mma-after          | b12     |         |                    | 250   |                 | 2026-11-01
ind-urine-mma-after          |         | 13776-0 |                    | 2.0   | mmol/mol{creat} | 2026-11-10
ind-mma-between-b12s         | b12     |         |                    | 250   |                 | 2026-09-01
ind-mma-between-b12s         | mma     |         |                    | 200   |                 | 2026-10-01
ind-mma-between-b12s         | b12     |         |                    | 300   |                 | 2026-11-01
ind-newer-b12-normal         | b12     |         |                    | 250   |                 | 2026-10-01
ind-newer-b12-normal         | b12     |         |                    | 500   |                 | 2026-11-01
ind-deficient-no-mma         | b12     |         |                    | 150   |                 | 2026-11-01
ind-censored-no-mma          | b12     |         |                    | <300  |                 | 2026-11-01
ind-censored-mma-after       | b12     |         |                    | <300  |                 | 2026-11-01
ind-censored-mma-after       | mma     |         |                    | <100  |                 | 2026-11-02
"""
INDETERMINATE_EXPECT = {
    "ind-no-mma": ("b12_indeterminate", {"b12_indeterminate": 250.0}, ()),
    "ind-mma-after": ("-", {}, ()),
    "ind-mma-same-date": ("-", {}, ()),
    "ind-mma-same-timestamp": ("-", {}, ()),
    "ind-mma-later-same-day": ("-", {}, ()),
    # on the B12's date, drawn an hour before it: "on or after the B12 date" counts it
    "ind-mma-earlier-same-day": ("-", {}, ()),
    "ind-mma-before": ("b12_indeterminate", {}, ()),
    "ind-mma-before-elevated": ("b12_indeterminate mma_elevated", {}, ()),
    "ind-mma-after-elevated": ("mma_elevated", {}, ()),
    "ind-mma-on-as-of": ("-", {}, ()),
    "ind-mma-after-by-name": ("-", {}, ()),
    "ind-mma-after-in-umol": ("-", {}, ()),
    "ind-mma-after-quarantined": ("b12_indeterminate", {}, ("unit does not fit the analyte",)),
    "ind-urine-mma-after": ("b12_indeterminate", {}, ()),
    "ind-mma-between-b12s": ("b12_indeterminate", {"b12_indeterminate": 300.0}, ()),
    "ind-newer-b12-normal": ("-", {}, ()),
    "ind-deficient-no-mma": ("b12_deficient", {}, ()),
    "ind-censored-no-mma": ("b12_indeterminate", {}, ()),
    "ind-censored-mma-after": ("-", {}, ()),
}
INDETERMINATE_CASES = long_cases(INDETERMINATE_LABS, INDETERMINATE_EXPECT)


@pytest.fixture(scope="module")
def indeterminate_run(tmp_path_factory) -> ScreeningResult:
    return run_cases(INDETERMINATE_CASES, tmp_path_factory.mktemp("indeterminate"))


@pytest.mark.parametrize(
    "case",
    INDETERMINATE_CASES,
    ids=lambda c: c.name,
)
def test_indeterminate(indeterminate_run, case):
    check(indeterminate_run, case)


def test_indeterminate_run_never_flags_sentinels(indeterminate_run):
    check_sentinels(indeterminate_run)


def test_default_collection_date_is_inside_every_window():
    collected = date.fromisoformat(DEFAULT_COLLECTED_AT)
    shortest = min(a["lookback_days"] for a in RULES["analytes"].values())
    assert AS_OF - timedelta(days=shortest) <= collected <= AS_OF


# =============================================================================================
# 8. The lab's own range (settings.use_lab_reference_range on): the six single-analyte lab
#    criteria compare with the reporting lab's lower limit (b12_deficient, folate_low,
#    leukopenia) or upper limit (mma_elevated, homocysteine_elevated, macrocytosis) when the
#    extract carries one, the fixed limit otherwise, and the detail says which.
# =============================================================================================
# A site profile: the guidance profile with the switch on. Fixed limits (guidance): B12 180,
# folate 4.0, WBC 4.0, MMA 271, homocysteine 10, MCV 100. Values and limits in canonical units,
# collected on the default date (2026-11-01). expect: the criteria met among the six; detail:
# the whole detail of that flag.
SITE_PROFILE = """extends = "guidance"
[ruleset]
name = "site"
version = "1"
[settings.use_lab_reference_range]
value = true
unit = "switch"
source = "site policy: the reporting lab's own range"
"""
LAB_RANGE_CRITERIA = fs(
    "b12_deficient",
    "folate_low",
    "leukopenia",
    "mma_elevated",
    "homocysteine_elevated",
    "macrocytosis",
)
# ... and, for the platelet rows, what a lab's range must not move: the bands and grades
LAB_RANGE_CHECKED = LAB_RANGE_CRITERIA | fs("thrombocytopenia", "severe_cytopenia")
LAB_RANGE = """
patient_id               | analyte      | value | reference_low | reference_high | expect                | detail
# below the lab's lower limit, though not below the fixed one
rr-b12-under-lab-low     | b12          | 200   | 211           |                | b12_deficient         | B12 200 pg/mL on 2026-11-01; limit from the lab's range: 211
rr-b12-at-lab-low        | b12          | 211   | 211           |                | -                     |
# below the fixed limit but not the lab's (lower) one: the lab's wins
rr-b12-under-fixed-only  | b12          | 170   | 150           |                | -                     |
# no lower limit in the extract (an upper one is not used by a "below" rule): the fixed one
rr-b12-no-lab-limit      | b12          | 170   |               |                | b12_deficient         | B12 170 pg/mL on 2026-11-01
rr-b12-upper-only        | b12          | 170   |               | 900            | b12_deficient         | B12 170 pg/mL on 2026-11-01
rr-folate-under-lab-low  | folate       | 4.5   | 5.4           |                | folate_low            | Folate 4.5 ng/mL on 2026-11-01; limit from the lab's range: 5.4
rr-folate-at-lab-low     | folate       | 5.4   | 5.4           |                | -                     |
rr-folate-fixed-only     | folate       | 3.5   | 3             |                | -                     |
rr-wbc-under-lab-low     | wbc          | 4.2   | 4.5           |                | leukopenia            | WBC 4.2 10^9/L on 2026-11-01; limit from the lab's range: 4.5
rr-wbc-no-lab-limit      | wbc          | 3.9   |               |                | leukopenia            | WBC 3.9 10^9/L on 2026-11-01
# above the lab's upper limit, though not above the fixed one
rr-mma-over-lab-high     | mma          | 260   |               | 250            | mma_elevated          | MMA 260 nmol/L on 2026-11-01; limit from the lab's range: 250
rr-mma-at-lab-high       | mma          | 250   |               | 250            | -                     |
rr-mma-over-fixed-only   | mma          | 300   |               | 400            | -                     |
rr-mma-lower-only        | mma          | 300   | 50            |                | mma_elevated          | MMA 300 nmol/L on 2026-11-01
rr-hcy-over-lab-high     | homocysteine | 9     |               | 8.5            | homocysteine_elevated | Homocysteine 9.0 umol/L on 2026-11-01; limit from the lab's range: 8.5
rr-hcy-at-lab-high       | homocysteine | 8.5   |               | 8.5            | -                     |
rr-mcv-over-lab-high     | mcv          | 99    |               | 98             | macrocytosis          | MCV 99.0 fL on 2026-11-01; limit from the lab's range: 98
rr-mcv-over-fixed-only   | mcv          | 101   |               | 102            | -                     |
# the lab's range moves the lower limit of thrombocytopenia, never the transfusion band that
# severe_cytopenia uses
rr-plt-under-lab-low     | platelets    | 160   | 170           |                | thrombocytopenia      | Platelets 160 10^9/L on 2026-11-01; band below 150
rr-plt-severe-lab-low-5  | platelets    | 9     | 5             |                | severe_cytopenia      | Platelets 9 10^9/L on 2026-11-01; platelets below 10 or ANC below 0.5 x10^9/L
rr-plt-at-band-lab-20    | platelets    | 10    | 20            |                | thrombocytopenia      | Platelets 10 10^9/L on 2026-11-01; band below 25
"""
LAB_RANGE_ROWS = parse_table(LAB_RANGE)


@pytest.fixture(scope="module")
def lab_range_run(tmp_path_factory) -> ScreeningResult:
    workdir = tmp_path_factory.mktemp("lab_range")
    site = workdir / "site.toml"
    site.write_text(SITE_PROFILE, encoding="utf-8")
    labs = [
        {k: row[k] for k in ("patient_id", "analyte", "value", "reference_low", "reference_high")}
        for row in LAB_RANGE_ROWS
    ]
    return screen([], labs, workdir=workdir, rules=site)


@pytest.mark.parametrize("row", LAB_RANGE_ROWS, ids=[r["patient_id"] for r in LAB_RANGE_ROWS])
def test_lab_range(lab_range_run, row):
    pid = row["patient_id"]
    why = lab_range_run.explain(pid)
    expect = criteria_set(row["expect"])
    assert lab_range_run.criteria(pid) & LAB_RANGE_CHECKED == expect, why
    for criterion in expect:
        assert lab_range_run.flag(pid, criterion)["detail"] == row["detail"], why


def test_lab_range_profile_has_the_limits_the_table_assumes():
    fixed = {
        "b12_deficient.below_pg_ml": 180,
        "folate_low.below_ng_ml": 4.0,
        "leukopenia.below_10e9_l": 4.0,
        "mma_elevated.above_nmol_l": 271,
        "homocysteine_elevated.above_umol_l": 10,
        "macrocytosis.above_fl": 100,
    }
    assert {k: param(k) for k in fixed} == fixed
    assert {c.split(".")[0] for c in fixed} == LAB_RANGE_CRITERIA
