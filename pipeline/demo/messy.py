"""Messy rows: extra rows, broken on purpose, that a correct run must all quarantine.

About 1 % extra lab rows (missing or unknown patient, value or date that does not parse, date
after as-of, a unit that does not fit the analyte, a negative count), a few broken patient
rows, and a few broken medication and diagnosis rows (start after as-of, end before start, no
drug named, missing patient or code). They are always extra rows, so the expected flags do not
depend on them. Each carries its reason category, counted in the truth folder's messy.csv.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import date, timedelta

from pipeline.demo.population import Patient, _collected_at, _pick_unit, _render, _row
from pipeline.demo.vocabulary import SITES, UnitSpec
from pipeline.demo.writers import LabRow

MESSY_LAB_REASONS = (
    "missing_patient_id",
    "unknown_patient",
    "unparseable_value",
    "unparseable_date",
    "future_date",
    "unit_mismatch",
    "negative_value",
)
_BAD_VALUES = ("pending", "see note", "Specimen hemolyzed", "QNS", "cancelled")
_BAD_DATES = ("2026-13-05", "2026-02-30", "05/11/2026", "unknown", "", "2026-06-31T10:00:00")
_WRONG_UNITS = (  # (site, analyte, unit, loinc, test name): the unit does not fit the analyte
    ("N", "b12", "g/dL", "2132-9", "Vitamin B12"),
    ("N", "anc", "%", "751-8", "Neutrophils, Absolute"),
    ("S", "anc", "%", "", "Neutrophils"),
    ("S", "hgb", "fL", "", "HGB"),
    ("E", "folate", "pg/mL", "", "Folate"),
    ("E", "mcv", "g/dL", "787-2", "Mean Cell Volume"),
    ("N", "platelets", "mg/dL", "777-3", "Platelet Count"),
)
_NEGATIVE = (("wbc", "-3.2"), ("anc", "-0.4"), ("platelets", "-150"))
_PLAIN_VALUE = {
    "b12": 420.0,
    "hgb": 13.9,
    "wbc": 6.4,
    "anc": 3.6,
    "platelets": 240.0,
    "mcv": 91.0,
    "folate": 9.5,
}


def _messy_lab_row(
    rng: random.Random, reason: str, patients_with_labs: Sequence[Patient], as_of: date, k: int
) -> LabRow:
    p = rng.choice(patients_with_labs)
    site_key = p.site
    analyte = rng.choice(["b12", "hgb", "wbc", "platelets", "mcv", "folate"])
    day = as_of - timedelta(days=rng.randint(1, 300))
    collected_at = _collected_at(rng, SITES[site_key], day)
    pid = p.patient_id
    spec = _pick_unit(rng, site_key, analyte)
    value = _render(_PLAIN_VALUE[analyte], spec, rng)
    loinc = name = None
    if reason == "missing_patient_id":
        pid = ""
    elif reason == "unknown_patient":
        pid = f"P8{k:05d}"
    elif reason == "unparseable_value":
        value = rng.choice(_BAD_VALUES)
    elif reason == "unparseable_date":
        collected_at = rng.choice(_BAD_DATES)
    elif reason == "future_date":
        collected_at = (as_of + timedelta(days=rng.randint(1, 45))).isoformat()
    elif reason == "unit_mismatch":
        site_key, analyte, unit, loinc, name = rng.choice(_WRONG_UNITS)
        spec = UnitSpec(unit, 1, 1)
        value = _render(_PLAIN_VALUE[analyte], spec, rng)
    elif reason == "negative_value":
        analyte, value = rng.choice(_NEGATIVE)
        spec = _pick_unit(rng, site_key, analyte)
    values = _row(rng, site_key, analyte, collected_at, value, spec, "")
    values["patient_id"] = pid
    if loinc is not None:
        values["loinc"] = loinc if SITES[site_key].loinc else ""
        values["test_name"] = str(name)
    return LabRow(site_key, False, values, reason)


def _messy_lab_rows(
    rng: random.Random, patients_with_labs: Sequence[Patient], as_of: date, n_clean: int
) -> list[LabRow]:
    """About 1 % extra rows, the categories in turn."""
    n = max(len(MESSY_LAB_REASONS) * 2, round(0.01 * n_clean))
    return [
        _messy_lab_row(
            rng, MESSY_LAB_REASONS[k % len(MESSY_LAB_REASONS)], patients_with_labs, as_of, k
        )
        for k in range(n)
    ]


def _messy_patient_rows() -> list[tuple[str, dict[str, str]]]:
    return [
        (
            "patient_missing_id",
            {"patient_id": "", "sex": "F", "birth_date": "1951-04-02", "site": "north"},
        ),
        (
            "patient_missing_id",
            {"patient_id": "", "sex": "M", "birth_date": "1966-10-19", "site": "south"},
        ),
        (
            "patient_bad_birth_date",
            {"patient_id": "P950001", "sex": "M", "birth_date": "1948-02-30", "site": "east"},
        ),
        (
            "patient_bad_birth_date",
            {"patient_id": "P950002", "sex": "F", "birth_date": "unknown", "site": "north"},
        ),
        (
            "patient_bad_birth_date",
            {"patient_id": "P950003", "sex": "F", "birth_date": "", "site": "south"},
        ),
        (
            "patient_bad_death_date",
            {
                "patient_id": "P950004",
                "sex": "M",
                "birth_date": "1950-05-06",
                "site": "north",
                "death_date": "2024-02-30",
            },
        ),
        (
            "patient_death_before_birth",
            {
                "patient_id": "P950005",
                "sex": "F",
                "birth_date": "1960-03-01",
                "site": "east",
                "death_date": "1959-12-31",
            },
        ),
    ]


def _messy_med_rows(
    rng: random.Random, meds: Sequence[dict[str, str]], as_of: date
) -> list[tuple[str, dict[str, str]]]:
    """A few broken medication rows (copies of valid ones, then broken)."""
    out = []
    reasons = (
        "medication_future_start",
        "medication_end_before_start",
        "medication_unparseable_date",
        "medication_missing_patient_id",
        "medication_no_drug",
    )
    for k in range(max(2 * len(reasons), len(meds) // 300)):
        reason = reasons[k % len(reasons)]
        row = dict(rng.choice(meds))
        if reason == "medication_future_start":
            row["start_date"] = (as_of + timedelta(days=rng.randint(1, 30))).isoformat()
            row["end_date"] = ""
        elif reason == "medication_end_before_start":
            start = date.fromisoformat(row["start_date"])
            row["end_date"] = (start - timedelta(days=rng.randint(1, 60))).isoformat()
        elif reason == "medication_unparseable_date":
            row["start_date"] = rng.choice(("2025-02-30", "03/15/2025", "unknown", ""))
        elif reason == "medication_missing_patient_id":
            row["patient_id"] = ""
        else:
            row["medication"] = row["rxnorm"] = row["atc"] = ""
        out.append((reason, row))
    return out


def _messy_dx_rows(
    rng: random.Random, dxs: Sequence[dict[str, str]], as_of: date
) -> list[tuple[str, dict[str, str]]]:
    out = []
    reasons = (
        "diagnosis_future_date",
        "diagnosis_unparseable_date",
        "diagnosis_missing_code",
        "diagnosis_unknown_patient",
    )
    for k in range(max(2 * len(reasons), len(dxs) // 300)):
        reason = reasons[k % len(reasons)]
        row = dict(rng.choice(dxs))
        if reason == "diagnosis_future_date":
            row["recorded_at"] = (as_of + timedelta(days=rng.randint(1, 30))).isoformat()
        elif reason == "diagnosis_unparseable_date":
            row["recorded_at"] = rng.choice(("2024-13-01", "31/01/2024", "n/a"))
        elif reason == "diagnosis_missing_code":
            row["code"] = ""
        else:
            row["patient_id"] = f"P9{k:05d}"
        out.append((reason, row))
    return out
