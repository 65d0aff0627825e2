"""Parsing of lab rows (docs/inputs.md): values, dates, and which test a row is.

One pipeline run holds every case (one patient each); what the run must make of a row is
written by hand: the value a flag carries, the time it was observed, the quarantine reason,
or that the row was kept unscreened. The staging SQL alone is checked for the numbers and
censoring marks it reads.
"""

from __future__ import annotations

from datetime import datetime

import pytest

# These tests are about reading lab results: only the lab criteria are compared (a deficient
# result more than a week old also meets deficiency_untreated, which tests/spec/test_criteria_meds.py
# covers).

try:
    from harness import LAB_CRITERIA, StagingDB, screen
except ModuleNotFoundError:  # tests/ imported as a package
    from tests.harness import LAB_CRITERIA, StagingDB, screen

UNREADABLE_VALUE = "value is not a number"
NEGATIVE = "negative value"
UNREADABLE_DATE = "collected_at missing or unreadable"
UNIT_MISFIT = "unit does not fit the analyte"

B12, MMA, HGB = "2132-9", "13964-2", "718-7"


@pytest.fixture(scope="module")
def staging(tmp_path_factory):
    db = StagingDB(tmp_path_factory.mktemp("staging"))
    yield db
    db.close()


# ---------------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------------
# reported value -> (number read, censoring mark); None: not readable
VALUE_TEXTS = [
    ("154", 154.0, None),
    ("154.0", 154.0, None),
    ("<150", 150.0, "<"),
    ("< 150", 150.0, "<"),
    (">2000", 2000.0, ">"),
    ("1,200", 1200.0, None),
    ("12,345.6", 12345.6, None),
    ("1,234,567", 1234567.0, None),
    (" 12 ", 12.0, None),
    ("0", 0.0, None),
    ("0.5", 0.5, None),
    ("-1", -1.0, None),
    ("4,5", None, None),
    ("1,20", None, None),
    ("12,34.5", None, None),
    ("1 200", None, None),
    ("pending", None, None),
    ("nan", None, None),
    ("NaN", None, None),
    ("inf", None, None),
    ("-inf", None, None),
    ("Infinity", None, None),
    ("", None, None),
    ("<", None, None),
    ("150 pg/mL", None, None),
]


@pytest.mark.parametrize(("text", "number", "censor"), VALUE_TEXTS, ids=repr)
def test_staging_reads_value(staging, text, number, censor):
    (row,) = staging.stage([{"patient_id": "p", "loinc": B12, "value": text, "unit": "pg/mL"}])
    assert row["value_number"] == number
    if number is not None:
        assert row["censor"] == censor


# patient -> lab row (B12 in pg/mL unless said), then what the run must make of it:
# (criterion expected, the value its flag carries) or None; quarantine reasons.
VALUE_CASES = {
    "v-154": ({"loinc": B12, "value": "154"}, ("b12_deficient", 154.0), []),
    "v-154.0": ({"loinc": B12, "value": "154.0"}, ("b12_deficient", 154.0), []),
    "v-lt150": ({"loinc": B12, "value": "<150"}, ("b12_deficient", 150.0), []),
    "v-lt-space-150": ({"loinc": B12, "value": "< 150"}, ("b12_deficient", 150.0), []),
    "v-gt2000": ({"loinc": B12, "value": ">2000"}, None, []),
    "v-1,200-mma": (
        {"loinc": MMA, "value": "1,200", "unit": "nmol/L"},
        ("mma_elevated", 1200.0),
        [],
    ),
    "v-12,345.6-mma": (
        {"loinc": MMA, "value": "12,345.6", "unit": "nmol/L"},
        ("mma_elevated", 12345.6),
        [],
    ),
    "v-space-12-space-hgb": ({"loinc": HGB, "value": " 12 ", "unit": "g/dL"}, ("anemia", 12.0), []),
    "v-0": ({"loinc": B12, "value": "0"}, ("b12_deficient", 0.0), []),
    "v-4,5": ({"loinc": B12, "value": "4,5"}, None, [UNREADABLE_VALUE]),
    "v-1,20": ({"loinc": B12, "value": "1,20"}, None, [UNREADABLE_VALUE]),
    "v-pending": ({"loinc": B12, "value": "pending"}, None, [UNREADABLE_VALUE]),
    "v-nan": ({"loinc": B12, "value": "nan"}, None, [UNREADABLE_VALUE]),
    "v-NaN": ({"loinc": B12, "value": "NaN"}, None, [UNREADABLE_VALUE]),
    "v-inf": ({"loinc": B12, "value": "inf"}, None, [UNREADABLE_VALUE]),
    "v-Infinity": ({"loinc": B12, "value": "Infinity"}, None, [UNREADABLE_VALUE]),
    "v-empty": ({"loinc": B12, "value": ""}, None, [UNREADABLE_VALUE]),
    "v-minus-1": ({"loinc": B12, "value": "-1"}, None, [NEGATIVE]),
    "v-minus-1-hgb": ({"loinc": HGB, "value": "-1", "unit": "g/dL"}, None, [NEGATIVE]),
    "v-minus-0.5-pmol": ({"loinc": B12, "value": "-0.5", "unit": "pmol/L"}, None, [NEGATIVE]),
    # unscreened tests keep whatever value they have
    "v-unknown-test-text": (
        {"test_name": "Sodium", "value": "see comment", "unit": "mmol/L"},
        None,
        [],
    ),
    "v-unknown-test-negative": (
        {"test_name": "Base excess", "value": "-3", "unit": "mmol/L"},
        None,
        [],
    ),
    "v-unknown-loinc-nan": ({"loinc": "2951-2", "value": "nan", "unit": "mmol/L"}, None, []),
    "v-unknown-test-empty": ({"test_name": "Comment", "value": ""}, None, []),
}


# ---------------------------------------------------------------------------------------------
# Dates: ISO 8601 dates and date-times, with 'T' and 'Z'; anything else is unreadable
# ---------------------------------------------------------------------------------------------
# patient -> collected_at as written, the time the B12 flag must carry (None: quarantined)
DATE_CASES = {
    "d-date": ("2026-11-01", datetime(2026, 11, 1)),
    "d-datetime-minutes": ("2026-11-01 08:30", datetime(2026, 11, 1, 8, 30)),
    "d-datetime-seconds": ("2026-11-01 08:30:15", datetime(2026, 11, 1, 8, 30, 15)),
    "d-T": ("2026-11-01T08:30:00", datetime(2026, 11, 1, 8, 30)),
    "d-T-minutes": ("2026-11-01T08:30", datetime(2026, 11, 1, 8, 30)),
    "d-T-Z": ("2026-11-01T08:30:00Z", datetime(2026, 11, 1, 8, 30)),
    "d-T-fraction-Z": ("2026-11-01T08:30:00.250Z", datetime(2026, 11, 1, 8, 30, 0, 250000)),
    "d-T-offset": ("2026-11-01T08:30:00+02:00", datetime(2026, 11, 1, 6, 30)),
    "d-us-slashes": ("01/02/2026", None),
    "d-eu-slashes": ("13/02/2026", None),
    "d-no-dashes": ("20261101", None),
    "d-impossible-day": ("2026-02-30", None),
    "d-month-13": ("2026-13-01", None),
    "d-words": ("yesterday", None),
    "d-empty": ("", None),
}


# ---------------------------------------------------------------------------------------------
# Which test a row is: a known LOINC wins over the test name; names match case-insensitively
# with extra spaces; an unknown test is kept unscreened
# ---------------------------------------------------------------------------------------------
# patient -> lab row (value 150 in pg/mL unless said), expected B12-deficient?, quarantine
CODING_CASES = {
    "c-loinc-wins-over-name": ({"loinc": B12, "test_name": "Hemoglobin"}, True, []),
    "c-hgb-loinc-wins-over-b12-name": (
        {"loinc": HGB, "test_name": "Vitamin B12"},
        False,
        [UNIT_MISFIT],
    ),
    "c-unknown-loinc-then-name": ({"loinc": "99999-9", "test_name": "Vitamin B12"}, True, []),
    "c-name-only": ({"test_name": "Vitamin B12"}, True, []),
    "c-loinc-with-spaces": ({"loinc": " 2132-9 "}, True, []),
    "c-second-b12-loinc": ({"loinc": "14685-2"}, True, []),
    "c-name-upper": ({"test_name": "VITAMIN B12"}, True, []),
    "c-name-lower": ({"test_name": "vitamin b12"}, True, []),
    "c-name-extra-spaces": ({"test_name": "  Vitamin   B12  "}, True, []),
    "c-name-tab": ({"test_name": "Vitamin\tB12"}, True, []),
    "c-name-with-comma": ({"test_name": "Vitamin B12, Serum"}, True, []),
    "c-name-hyphen": ({"test_name": "Vitamin B-12"}, True, []),
    "c-name-short": ({"test_name": "b12"}, True, []),
    "c-name-cobalamin": ({"test_name": "Cobalamin"}, True, []),
    "c-name-holotc-is-not-b12": ({"test_name": "Active B12", "unit": "pmol/L"}, False, []),
    "c-unknown-name": ({"test_name": "Sodium", "unit": "mmol/L"}, False, []),
    "c-unknown-name-any-unit": ({"test_name": "Sodium", "unit": "furlongs"}, False, []),
    "c-unknown-loinc": ({"loinc": "2951-2", "unit": "mmol/L"}, False, []),
    "c-urine-mma-loinc": ({"loinc": "13776-0", "unit": "mmol/mol{creat}"}, False, []),
    "c-no-code-no-name": ({}, False, []),
}


@pytest.fixture(scope="module")
def parsing_run(tmp_path_factory):
    labs = []
    for pid, (lab, _, _) in VALUE_CASES.items():
        labs.append({"patient_id": pid, "unit": "pg/mL", **lab})
    for pid, (when, _) in DATE_CASES.items():
        labs.append(
            {"patient_id": pid, "loinc": B12, "value": "150", "unit": "pg/mL", "collected_at": when}
        )
    for pid, (lab, _, _) in CODING_CASES.items():
        labs.append({"patient_id": pid, "value": "150", "unit": "pg/mL", **lab})
    return screen(labs=labs, workdir=tmp_path_factory.mktemp("parsing"))


@pytest.mark.parametrize("pid", list(VALUE_CASES))
def test_value(parsing_run, pid):
    _, flag, reasons = VALUE_CASES[pid]
    why = parsing_run.explain(pid)
    assert parsing_run.reasons(pid) == reasons, why
    if flag is None:
        assert (parsing_run.criteria(pid) & LAB_CRITERIA) == set(), why
    else:
        criterion, value = flag
        got = parsing_run.flag(pid, criterion)
        assert got is not None and got["value"] == pytest.approx(value), why


@pytest.mark.parametrize(
    "pid",
    DATE_CASES,
)
def test_date(parsing_run, pid):
    _, observed = DATE_CASES[pid]
    why = parsing_run.explain(pid)
    if observed is None:
        assert parsing_run.reasons(pid) == [UNREADABLE_DATE], why
        assert (parsing_run.criteria(pid) & LAB_CRITERIA) == set(), why
    else:
        assert parsing_run.reasons(pid) == [], why
        flag = parsing_run.flag(pid, "b12_deficient")
        assert flag is not None and flag["observed_at"] == observed, why


@pytest.mark.parametrize("pid", list(CODING_CASES))
def test_coding(parsing_run, pid):
    _, deficient, reasons = CODING_CASES[pid]
    why = parsing_run.explain(pid)
    assert parsing_run.reasons(pid) == reasons, why
    assert (parsing_run.criteria(pid) & LAB_CRITERIA) == (
        {"b12_deficient"} if deficient else set()
    ), why


def test_staging_codes_by_loinc_before_name(staging):
    rows = staging.stage(
        [
            {"patient_id": "p", "loinc": B12, "test_name": "Hemoglobin", "value": "1"},
            {"patient_id": "p", "loinc": "99999-9", "test_name": " HEMOGLOBIN ", "value": "1"},
            {"patient_id": "p", "test_name": "Sodium", "value": "1"},
        ]
    )
    assert [(r["analyte"], r["coded_by"]) for r in rows] == [
        ("b12", "loinc"),
        ("hgb", "test_name"),
        (None, None),
    ]


def test_run_quarantines_nothing_else(parsing_run):
    """Each quarantined row belongs to a case that expects it (no stray rejections)."""
    expected = sum(len(r) for _, _, r in VALUE_CASES.values())
    expected += sum(1 for _, observed in DATE_CASES.values() if observed is None)
    expected += sum(len(r) for _, _, r in CODING_CASES.values())
    assert len(parsing_run.quarantine) == expected
