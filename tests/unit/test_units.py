"""Units: every spelling converts to the canonical unit by the factor that physics says.

- data/lab_units.csv is checked against a table of factors written out by hand here;
- every (analyte, unit) of it is run through the real staging SQL (sql/staging/stg_labs.sql,
  in an in-memory DuckDB the runner itself prepares);
- the spellings docs/inputs.md lists (and a few more the unit_key macro promises) are understood
  for the analytes they fit, and quarantined with 'unit does not fit the analyte' for every
  other analyte a criterion reads (a whole pipeline run);
- a Neutrophils % result is never read as an ANC;
- Hypothesis: conversions round-trip within the canonical rounding, and the B12 and MMA
  thresholds are monotone.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# These tests are about reading lab results: only the lab criteria are compared (a deficient
# result more than a week old also meets deficiency_untreated, which tests/spec/test_criteria_meds.py
# covers).

try:
    from harness import LAB_CRITERIA, RULES, StagingDB, param, screen, unit_rows
except ModuleNotFoundError:  # tests/ imported as a package
    from tests.harness import LAB_CRITERIA, RULES, StagingDB, param, screen, unit_rows

DECIMALS = RULES["settings"]["canonical_decimals"]["value"]
HALF_STEP = 0.5 * 10**-DECIMALS

# (analyte, unit key) -> factor to the canonical unit, worked out by hand:
# B12 1355.37 g/mol (pmol/L x 1.3554 = pg/mL); folic acid 441.4 g/mol (nmol/L x 0.4413 =
# ng/mL); homocysteine 135.18 g/mol (mg/L x 7.397 = umol/L); Hgb monomer 16.1145 g/mmol
# (mmol/L x 1.6113 = g/dL); creatinine 113.12 g/mol (umol/L / 88.42 = mg/dL); 1 ukat/L = 60
# U/L; cells/uL x 10^6/L = 0.001 x 10^9/L; 10^12/L = 1000 x 10^9/L.
HAND_FACTORS = {
    ("b12", "pg/ml"): 1,
    ("b12", "ng/l"): 1,
    ("b12", "pmol/l"): 1.3554,
    ("holotc", "pmol/l"): 1,
    ("mma", "nmol/l"): 1,
    ("mma", "umol/l"): 1000,
    ("mma", "nmol/ml"): 1000,
    ("homocysteine", "umol/l"): 1,
    ("homocysteine", "nmol/ml"): 1,
    ("homocysteine", "mg/l"): 7.397,
    ("folate", "ng/ml"): 1,
    ("folate", "ug/l"): 1,
    ("folate", "nmol/l"): 0.4413,
    ("folate_rbc", "ng/ml"): 1,
    ("folate_rbc", "ug/l"): 1,
    ("folate_rbc", "nmol/l"): 0.4413,
    ("hgb", "g/dl"): 1,
    ("hgb", "g/l"): 0.1,
    ("hgb", "mmol/l"): 1.6113,
    **{
        (cells, unit): 1
        for cells in ("wbc", "anc", "platelets")
        for unit in ("10^9/l", "10^3/ul", "k/ul", "10^3/mm3", "k/mm3", "thou/ul", "g/l")
    },
    **{
        (cells, unit): 0.001
        for cells in ("wbc", "anc", "platelets")
        for unit in ("/ul", "cells/ul", "/mm3", "cells/mm3")
    },
    ("neutrophils_pct", "%"): 1,
    ("mcv", "fl"): 1,
    ("mcv", "um3"): 1,
    ("ldh", "u/l"): 1,
    ("ldh", "iu/l"): 1,
    ("ldh", "ukat/l"): 60,
    ("reticulocytes_pct", "%"): 1,
    ("reticulocytes", "10^9/l"): 1,
    ("reticulocytes", "10^3/ul"): 1,
    ("reticulocytes", "k/ul"): 1,
    ("reticulocytes", "10^6/ul"): 1000,
    ("reticulocytes", "10^12/l"): 1000,
    ("creatinine", "mg/dl"): 1,
    ("creatinine", "umol/l"): 1 / 88.42,
    ("egfr", "ml/min/1.73m2"): 1,
    ("egfr", "ml/min"): 1,
}
CSV_FACTORS = {(r["analyte"], r["unit_key"]): float(r["factor_to_canonical"]) for r in unit_rows()}
LISTED = sorted(CSV_FACTORS)


def test_unit_table_lists_exactly_the_hand_checked_units():
    assert set(CSV_FACTORS) == set(HAND_FACTORS)


@pytest.mark.parametrize("key", LISTED, ids="/".join)
def test_unit_table_factor_agrees_with_hand_worked_factor(key):
    # Molar conversions agree to 4 significant digits (molar masses differ in the last digit
    # between sources); every power-of-ten factor exactly.
    assert CSV_FACTORS[key] == pytest.approx(HAND_FACTORS[key], rel=2e-4)
    if math.log10(HAND_FACTORS[key]).is_integer():
        assert CSV_FACTORS[key] == HAND_FACTORS[key]


def test_every_analyte_of_the_rules_has_its_canonical_unit_at_factor_one():
    for analyte, spec in RULES["analytes"].items():
        key = spec["canonical_unit"].lower().replace("µ", "u")
        assert CSV_FACTORS.get((analyte, key)) == 1, (analyte, key)


@pytest.fixture(scope="module")
def staging(tmp_path_factory):
    db = StagingDB(tmp_path_factory.mktemp("staging"))
    yield db
    db.close()


@pytest.fixture(scope="module")
def staged_listed(staging):
    """Each listed (analyte, unit) reported as 1000 in that unit, through the staging SQL."""
    rows = [{"patient_id": "p", "analyte": a, "value": "1000", "unit": u} for a, u in LISTED]
    return dict(zip(LISTED, staging.stage(rows), strict=True))


@pytest.mark.parametrize("key", LISTED, ids="/".join)
def test_every_listed_unit_converts_by_its_factor(staged_listed, key):
    row = staged_listed[key]
    assert row["analyte"] == key[0]
    assert row["unit_key"] == key[1]
    assert row["factor_to_canonical"] == pytest.approx(HAND_FACTORS[key], rel=2e-4)
    assert row["value_canonical"] == pytest.approx(1000 * HAND_FACTORS[key], rel=2e-4)
    assert row["value_canonical"] == round(1000 * CSV_FACTORS[key], DECIMALS)


# ---------------------------------------------------------------------------------------------
# Spellings as labs write them: which analytes each one fits, with its factor (by hand)
# ---------------------------------------------------------------------------------------------
CELLS = ("wbc", "anc", "platelets", "reticulocytes")
CONTRACT_SPELLINGS: dict[str, dict[str, float]] = {
    "pg/mL": {"b12": 1},
    "pmol/L": {"b12": 1.35539, "holotc": 1},
    "ng/L": {"b12": 1},
    "g/dL": {"hgb": 1},
    "g/L": {"hgb": 0.1, "wbc": 1, "anc": 1, "platelets": 1},
    "10*9/L": dict.fromkeys(CELLS, 1),
    "x10^9/L": dict.fromkeys(CELLS, 1),
    "K/uL": dict.fromkeys(CELLS, 1),
    "10^3/µL": dict.fromkeys(CELLS, 1),
    "fL": {"mcv": 1},
    "umol/L": {"homocysteine": 1, "mma": 1000, "creatinine": 0.0113097},
    "µmol/L": {"homocysteine": 1, "mma": 1000, "creatinine": 0.0113097},
    "nmol/L": {"mma": 1, "folate": 0.441306, "folate_rbc": 0.441306},
    "ng/mL": {"folate": 1, "folate_rbc": 1},
    "%": {"neutrophils_pct": 1, "reticulocytes_pct": 1},
}
# More spellings the unit_key macro promises to read (sql/macros/parsing.sql).
OTHER_SPELLINGS: dict[str, dict[str, float]] = {
    "10E9/L": dict.fromkeys(CELLS, 1),
    "10⁹/L": dict.fromkeys(CELLS, 1),
    "×10⁹/L": dict.fromkeys(CELLS, 1),
    "x 10^9/L": dict.fromkeys(CELLS, 1),
    "10^9/L": dict.fromkeys(CELLS, 1),
    "10³/µL": dict.fromkeys(CELLS, 1),
    "K/µL": dict.fromkeys(CELLS, 1),
    "cells/µL": {"wbc": 0.001, "anc": 0.001, "platelets": 0.001},
    "/mm³": {"wbc": 0.001, "anc": 0.001, "platelets": 0.001},
    "μmol/L": {"homocysteine": 1, "mma": 1000, "creatinine": 0.0113097},  # Greek mu
    "PG/ML": {"b12": 1},
    " pg/mL ": {"b12": 1},
    "mcg/L": {"folate": 1, "folate_rbc": 1},
    "µg/L": {"folate": 1, "folate_rbc": 1},
    "µkat/L": {"ldh": 60},
    "IU/L": {"ldh": 1},
    "U/L": {"ldh": 1},
    "mL/min/1.73m²": {"egfr": 1},
    "mL/min/{1.73_m2}": {"egfr": 1},
    "µm³": {"mcv": 1},
}
SPELLINGS = CONTRACT_SPELLINGS | OTHER_SPELLINGS
# The analytes the criteria read: a spelling that fits none of them must be quarantined there.
SCREENED = ("b12", "mma", "homocysteine", "folate", "hgb", "wbc", "anc", "platelets", "mcv", "ldh")
FITS = [(s, a, f) for s, fits in SPELLINGS.items() for a, f in fits.items()]
MISFITS = [(s, a) for s, fits in SPELLINGS.items() for a in SCREENED if a not in fits]


@pytest.fixture(scope="module")
def staged_spellings(staging):
    rows = [{"patient_id": "p", "analyte": a, "value": "100", "unit": s} for s, a, _ in FITS]
    return {(s, a): row for (s, a, _), row in zip(FITS, staging.stage(rows), strict=True)}


@pytest.mark.parametrize(("spelling", "analyte", "factor"), FITS, ids=lambda x: str(x))
def test_spelling_is_understood_for_its_analyte(staged_spellings, spelling, analyte, factor):
    row = staged_spellings[(spelling, analyte)]
    assert row["analyte"] == analyte
    assert row["value_canonical"] is not None, f"{spelling!r} not read for {analyte}"
    assert row["value_canonical"] == pytest.approx(100 * factor, abs=HALF_STEP + 1e-9)


def _middle(analyte: str) -> float:
    plausible = RULES["analytes"][analyte]["plausible"]
    return (plausible["low"] + plausible["high"]) / 2


def _pid(spelling: str, analyte: str) -> str:
    return f"{analyte}|{spelling}"


@pytest.fixture(scope="module")
def spelling_run(tmp_path_factory):
    """Every spelling with every screened analyte, one patient per row, in one run."""
    # a value in the middle of the analyte's possible range (rules file), in that spelling's
    # unit, so the row can only be quarantined for its unit
    labs = [
        {"patient_id": _pid(s, a), "analyte": a, "value": repr(_middle(a) / f), "unit": s}
        for s, a, f in FITS
    ]
    labs += [
        {"patient_id": _pid(s, a), "analyte": a, "value": "100", "unit": s} for s, a in MISFITS
    ]
    labs += [
        {"patient_id": "unitless|b12", "analyte": "b12", "value": "100", "unit": ""},
        {"patient_id": "unknown-unit|b12", "analyte": "b12", "value": "100", "unit": "mg/dL"},
        {"patient_id": "unknown-unit|hgb", "analyte": "hgb", "value": "8", "unit": "g/dl/x"},
    ]
    return screen(labs=labs, workdir=tmp_path_factory.mktemp("spellings"))


@pytest.mark.parametrize(("spelling", "analyte", "factor"), FITS, ids=lambda x: str(x))
def test_spelling_is_not_quarantined_for_its_analyte(spelling_run, spelling, analyte, factor):
    pid = _pid(spelling, analyte)
    assert spelling_run.reasons(pid) == [], spelling_run.explain(pid)


@pytest.mark.parametrize(("spelling", "analyte"), MISFITS, ids=lambda x: str(x))
def test_spelling_is_quarantined_for_other_analytes(spelling_run, spelling, analyte):
    pid = _pid(spelling, analyte)
    assert spelling_run.reasons(pid) == ["unit does not fit the analyte"], spelling_run.explain(pid)
    assert spelling_run.criteria(pid) & {"b12_deficient", "neutropenia", "anemia"} == set()


@pytest.mark.parametrize("pid", ["unitless|b12", "unknown-unit|b12", "unknown-unit|hgb"])
def test_missing_or_unknown_unit_is_quarantined(spelling_run, pid):
    assert spelling_run.reasons(pid) == ["unit does not fit the analyte"], spelling_run.explain(pid)
    assert (spelling_run.criteria(pid) & LAB_CRITERIA) == set()


def test_examples_from_the_brief_are_quarantined(spelling_run):
    """B12 in g/dL and ANC in % (docs/inputs.md: a unit that does not fit its analyte)."""
    for pid in (_pid("g/dL", "b12"), _pid("%", "anc")):
        assert spelling_run.reasons(pid) == ["unit does not fit the analyte"]


# ---------------------------------------------------------------------------------------------
# Neutrophils %: a percentage is never an absolute count
# ---------------------------------------------------------------------------------------------
NEUTROPHIL_LABS = [
    # patient, loinc, test name, value, unit
    ("pct-770-8", "770-8", None, "1.0", "%"),
    ("pct-26511-6", "26511-6", None, "0.4", "%"),
    ("pct-770-8-count-unit", "770-8", None, "1.0", "10^9/L"),
    ("pct-by-name", None, "Neutrophils %", "1.0", "%"),
    ("pct-by-short-name", None, "Neut%", "0.3", "%"),
    ("pct-name-vs-anc-loinc", "751-8", "Neutrophils %", "1.0", "%"),
    ("ambiguous-name-pct", None, "Neutrophils", "1.0", "%"),
    ("ambiguous-name-count", None, "Neutrophils", "1.0", "10^9/L"),
    ("anc-in-pct", "751-8", None, "1.0", "%"),
    ("pct-770-8-with-normal-anc", "770-8", None, "1.0", "%"),
    ("pct-770-8-with-normal-anc", "751-8", None, "3.0", "10^9/L"),
]
# patient -> (neutropenia expected, quarantine reasons)
NEUTROPHIL_EXPECT = {
    "pct-770-8": (False, []),
    "pct-26511-6": (False, []),
    "pct-770-8-count-unit": (False, ["unit does not fit the analyte"]),
    "pct-by-name": (False, []),
    "pct-by-short-name": (False, []),
    "pct-name-vs-anc-loinc": (False, ["unit does not fit the analyte"]),
    "ambiguous-name-pct": (False, ["unit does not fit the analyte"]),
    "ambiguous-name-count": (True, []),
    "anc-in-pct": (False, ["unit does not fit the analyte"]),
    "pct-770-8-with-normal-anc": (False, []),
}


@pytest.fixture(scope="module")
def neutrophil_run(tmp_path_factory):
    labs = [
        {"patient_id": p, "loinc": loinc, "test_name": name, "value": v, "unit": u}
        for p, loinc, name, v, u in NEUTROPHIL_LABS
    ]
    return screen(labs=labs, workdir=tmp_path_factory.mktemp("neutrophils"))


@pytest.mark.parametrize("pid", sorted(NEUTROPHIL_EXPECT))
def test_neutrophil_percent_is_never_an_anc(neutrophil_run, pid):
    neutropenia, reasons = NEUTROPHIL_EXPECT[pid]
    assert neutrophil_run.reasons(pid) == reasons, neutrophil_run.explain(pid)
    assert ("neutropenia" in (neutrophil_run.criteria(pid) & LAB_CRITERIA)) is neutropenia, (
        neutrophil_run.explain(pid)
    )
    if not neutropenia:
        # nor does a percentage count as a cytopenia elsewhere
        assert (neutrophil_run.criteria(pid) & LAB_CRITERIA) == set(), neutrophil_run.explain(pid)


def test_neutrophil_percent_codes_are_not_anc_codes():
    pct = set(RULES["analytes"]["neutrophils_pct"]["loinc"])
    anc = set(RULES["analytes"]["anc"]["loinc"])
    assert "770-8" in pct and not pct & anc


def test_staged_neutrophil_percent_keeps_its_own_analyte(staging):
    (row,) = staging.stage([{"patient_id": "p", "loinc": "770-8", "value": "55", "unit": "%"}])
    assert row["analyte"] == "neutrophils_pct" and row["value_canonical"] == 55


# ---------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------
UNIT_CHOICES = sorted((a, u, f) for (a, u), f in CSV_FACTORS.items())


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.sampled_from(UNIT_CHOICES),
            st.floats(min_value=0, max_value=5000, allow_nan=False, allow_infinity=False),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_round_trip_within_rounding(staging, draws):
    """A canonical value v reported as v/f in a unit of factor f stages back to v (3 dp)."""
    rows = [
        {"patient_id": "p", "analyte": a, "value": repr(v / f), "unit": u} for (a, u, f), v in draws
    ]
    for ((a, u, f), v), row in zip(draws, staging.stage(rows), strict=True):
        assert row["analyte"] == a and row["unit_key"] == u
        got = row["value_canonical"]
        assert got is not None, (a, u, rows)
        assert abs(got - v) <= HALF_STEP + 1e-9 * max(1.0, v), (a, u, v, repr(v / f), got)
        assert abs(got * 10**DECIMALS - round(got * 10**DECIMALS)) < 1e-6 * max(1.0, got)


def _monotone_draws(analyte: str, limit: float, censor: str):
    units = [(u, f) for (a, u), f in CSV_FACTORS.items() if a == analyte]
    near = st.floats(min_value=max(0.0, limit - 5), max_value=limit + 5, allow_nan=False)
    wide = st.floats(min_value=0, max_value=limit * 4, allow_nan=False)
    value = st.one_of(near, wide, st.integers(0, int(limit * 2)).map(float))
    return st.lists(
        st.tuples(st.sampled_from(units), value, value, st.sampled_from([None, censor])),
        min_size=1,
        max_size=30,
    )


def _staged_flags(staging, analyte: str, draws, macro: str, variable: str):
    rows = []
    for (unit, factor), x, y, censor in draws:
        for v in (x, y):
            rows.append(
                {
                    "patient_id": "p",
                    "analyte": analyte,
                    "value": (censor or "") + repr(v / factor),
                    "unit": unit,
                }
            )
    staged = staging.stage(
        rows, extra=f"{macro}(value_canonical, censor, getvariable('{variable}')) AS met"
    )
    pairs = zip(staged[0::2], staged[1::2], strict=True)
    return [
        (
            (x["value_canonical"], x["censor"]),
            (y["value_canonical"], y["censor"]),
            x["met"],
            y["met"],
        )
        for x, y in pairs
    ]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_monotone_draws("b12", param("b12_deficient.below_pg_ml"), "<"))
def test_b12_deficient_is_monotone(staging, draws):
    """If a B12 value is deficient, every smaller value (same unit, same mark) is too."""
    limit = param("b12_deficient.below_pg_ml")
    for (vx, cx), (vy, cy), met_x, met_y in _staged_flags(
        staging, "b12", draws, "is_below", "b12_deficient.below_pg_ml"
    ):
        assert cx == cy
        (small, met_small), (large, met_large) = sorted([(vx, met_x), (vy, met_y)])
        if met_large:
            assert met_small, (small, large, cx)
        if cx is None:  # a plain value: deficient exactly when below the limit
            assert met_x == (vx < limit) and met_y == (vy < limit)
        else:  # '<X' is certainly below the limit exactly when X <= limit
            assert met_x == (vx <= limit) and met_y == (vy <= limit)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_monotone_draws("mma", param("mma_elevated.above_nmol_l"), ">"))
def test_mma_elevated_is_monotone(staging, draws):
    """If an MMA value is elevated, every larger value (same unit, same mark) is too."""
    limit = param("mma_elevated.above_nmol_l")
    for (vx, cx), (vy, cy), met_x, met_y in _staged_flags(
        staging, "mma", draws, "is_above", "mma_elevated.above_nmol_l"
    ):
        assert cx == cy
        (small, met_small), (large, met_large) = sorted([(vx, met_x), (vy, met_y)])
        if met_small:
            assert met_large, (small, large, cx)
        if cx is None:
            assert met_x == (vx > limit) and met_y == (vy > limit)
        else:
            assert met_x == (vx >= limit) and met_y == (vy >= limit)
