"""Synthetic screening population with planted cases and an answer key.

`generate_population` writes a folder of canonical extracts (contract §2) and returns a
`DemoTruth` holding the flags a correct run over that folder must produce. It is used by the
demo command and by the end-to-end test; the answer key comes from two sources that do not
share code with the pipeline:

Background population (patient ids ``P000001``…)
    Primary-care adults aged 18-100, skewed older; sex ~52 % F, ~47 % M and ~1 % unknown or
    oddly spelled (``male``, ``FEMALE``, ``x``). Each patient has a home site:

    - north: LOINC on every row, B12 pg/mL, Hgb g/dL, counts ``10*9/L`` (some in cells/uL
      written ``1,850``), datetimes; a second file (``labs_site_north_archive.csv``) holds
      results older than a year;
    - south (``.csv.gz``, upper-case headers, no LOINC column, an extra ORDERING_CLINIC
      column): test names only
      (``Vitamin B12``, ``HGB``, ``White Blood Cells``), B12 pmol/L, Hgb g/L, counts
      ``x10^9/L``, dates without time;
    - east (``.parquet``, all columns text): LOINC on about half of the rows, ``K/uL`` and
      ``10^3/µL``, B12 ng/L or pmol/L, folate nmol/L, MMA µmol/L, Hgb mmol/L now and then.

    About 60 % have a CBC (Hgb, WBC, ANC, platelets, MCV) in the last year, some several;
    ~15 % a B12, ~10 % folate, ~2 % MMA, ~2 % homocysteine, ~5 % LDH; creatinine and eGFR for
    over a quarter; a few results are re-sent unchanged (same result_id). Every value is drawn on the canonical scale, kept more than the rendering
    error plus 0.01 away from every threshold, then written in the row's unit. Expected flags
    for these patients come from `oracle_lab_flags`, a small Python reading of the rule text,
    run over the canonical values the generator chose. The background has no ties, no
    censored values and no results on a look-back edge: those are planted.

Planted patients (``PLANT-…``, table `PLANTED`)
    One or more per lab criterion; below / at / above every threshold in several units
    (B12 ``179``/``180``/``181`` pg/mL, ``132``/``132.8``/``133`` pmol/L, Hgb ``12.9``/``13.0``
    g/dL and ``129``/``130`` g/L for men …); censored ``<150`` and ``>2000`` B12; ties on
    collected_at decided by result_id; results just inside and just outside the look-back;
    a neutrophil-% row that is not an ANC; a local code that falls back to the test name; a
    re-sent result; and ``PLANT-NOLABS-01``, who has no data and must never be flagged.
    Their expected criteria are written by hand from the rule text, not computed.

Messy rows
    About 1 % extra lab rows that must be quarantined (missing or unknown patient, value or
    date that does not parse, date after as-of, a unit that does not fit the analyte, a
    negative count) and a few broken patient rows. They are always extra rows, so the expected
    flags do not depend on them.

The answer key also goes to ``truth_dir`` (default: a ``truth`` folder beside the extracts,
never inside them): ``expected_flags.csv``, ``planted.csv`` (with each case's purpose) and
``messy.csv``. The same seed gives byte-identical files. No patient data is logged.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
import math
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import polars as pl

log = logging.getLogger(__name__)

DEFAULT_AS_OF = date(2026, 11, 24)

LAB_CRITERIA: tuple[str, ...] = (
    "b12_deficient",
    "b12_indeterminate",
    "mma_elevated",
    "homocysteine_elevated",
    "folate_low",
    "anemia",
    "critical_anemia",
    "leukopenia",
    "neutropenia",
    "thrombocytopenia",
    "macrocytosis",
    "pancytopenia",
    "deficiency_with_cytopenia",
    "cytopenia_b12_untested",
    "pseudo_tma_suspect",
)

# ---------------------------------------------------------------------------------------------
# The oracle's reading of the guidance profile. Deliberately written out here rather than read
# from data/rules: the answer key must not share a source with the pipeline. A test checks that
# these still equal the rules file.
# ---------------------------------------------------------------------------------------------
THRESHOLDS: dict[str, float] = {
    "b12_deficient.below_pg_ml": 180,
    "b12_indeterminate.upper_pg_ml": 350,
    "mma_elevated.above_nmol_l": 271,
    "homocysteine_elevated.above_umol_l": 10,
    "folate_low.below_ng_ml": 4.0,
    "anemia.male_below_g_dl": 13.0,
    "anemia.female_below_g_dl": 12.0,
    "anemia.unknown_sex_below_g_dl": 12.0,
    "critical_anemia.below_g_dl": 5.0,
    "leukopenia.below_10e9_l": 4.0,
    "neutropenia.below_10e9_l": 1.5,
    "thrombocytopenia.below_10e9_l": 150,
    "macrocytosis.above_fl": 100,
    "pseudo_tma_suspect.ldh_above_u_l": 250,
}
LOOKBACK_DAYS: dict[str, int] = {
    "b12": 365,
    "mma": 365,
    "homocysteine": 365,
    "folate": 365,
    "hgb": 90,
    "wbc": 90,
    "anc": 90,
    "platelets": 90,
    "mcv": 90,
    "ldh": 90,
}
# Which analyte each threshold applies to: the background keeps its values away from these.
_THRESHOLD_ANALYTE = {
    "b12_deficient": "b12",
    "b12_indeterminate": "b12",
    "mma_elevated": "mma",
    "homocysteine_elevated": "homocysteine",
    "folate_low": "folate",
    "anemia": "hgb",
    "critical_anemia": "hgb",
    "leukopenia": "wbc",
    "neutropenia": "anc",
    "thrombocytopenia": "platelets",
    "macrocytosis": "mcv",
    "pseudo_tma_suspect": "ldh",
}
CUTS: dict[str, tuple[float, ...]] = {
    analyte: tuple(
        v for k, v in THRESHOLDS.items() if _THRESHOLD_ANALYTE[k.split(".")[0]] == analyte
    )
    for analyte in sorted(set(_THRESHOLD_ANALYTE.values()))
}

LAB_COLUMNS = (
    "patient_id",
    "collected_at",
    "loinc",
    "test_name",
    "value",
    "unit",
    "reference_low",
    "reference_high",
    "result_id",
)


# ---------------------------------------------------------------------------------------------
# Public result
# ---------------------------------------------------------------------------------------------
@dataclass
class DemoTruth:
    """What a correct screening run over the generated extracts must produce.

    expected_flags: (patient_id, criterion) for the 15 lab criteria over all patients.
    planted: planted patient id -> its hand-written criteria (empty set: never flagged).
    messy_rows: rows written broken on purpose (labs and patients); each must be quarantined.
    messy_by_reason / messy_by_file: the same rows by the generator's category and by file.
    """

    extracts_dir: Path
    truth_dir: Path
    as_of: date
    seed: int
    n_patients: int
    n_lab_rows: int
    expected_flags: set[tuple[str, str]]
    planted: dict[str, set[str]]
    messy_rows: int
    messy_by_reason: dict[str, int]
    messy_by_file: dict[str, int] = field(default_factory=dict)
    all_missing_patient: str = "PLANT-NOLABS-01"
    planted_purpose: dict[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# The oracle
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CleanResult:
    """One valid lab result on the canonical scale, as the generator chose it."""

    patient_id: str
    analyte: str
    value: float
    on: date


def sex_group(raw: str) -> str:
    """``M``, ``F`` or ``U`` from the patients file's sex column."""
    text = raw.strip().lower()
    return {"m": "M", "male": "M", "f": "F", "female": "F"}.get(text, "U")


def oracle_lab_flags(
    sex_by_patient: Mapping[str, str], results: Iterable[CleanResult], as_of: date
) -> set[tuple[str, str]]:
    """Expected (patient_id, criterion) pairs for the 15 lab criteria.

    Assumes what the background guarantees: at most one result per patient, analyte and day,
    and results on one day share one collected_at.
    """
    by_patient: dict[str, list[CleanResult]] = defaultdict(list)
    for r in results:
        by_patient[r.patient_id].append(r)
    flags: set[tuple[str, str]] = set()
    for pid, rows in by_patient.items():
        for criterion in _criteria_met(sex_group(sex_by_patient[pid]), rows, as_of):
            flags.add((pid, criterion))
    return flags


def _latest(rows: Sequence[CleanResult], as_of: date) -> dict[str, CleanResult]:
    latest: dict[str, CleanResult] = {}
    for r in rows:
        lookback = LOOKBACK_DAYS.get(r.analyte)
        if lookback is None or not as_of - timedelta(days=lookback) <= r.on <= as_of:
            continue
        if r.analyte in latest and latest[r.analyte].on == r.on:
            raise ValueError("background has two results for one analyte on one day")
        if r.analyte not in latest or r.on > latest[r.analyte].on:
            latest[r.analyte] = r
    return latest


def _criteria_met(sex: str, rows: Sequence[CleanResult], as_of: date) -> list[str]:
    t = THRESHOLDS
    latest = _latest(rows, as_of)

    def value(analyte: str) -> float | None:
        return latest[analyte].value if analyte in latest else None

    def below(analyte: str, limit: float) -> bool:
        v = value(analyte)
        return v is not None and v < limit

    def above(analyte: str, limit: float) -> bool:
        v = value(analyte)
        return v is not None and v > limit

    met: dict[str, bool] = {}
    b12 = value("b12")
    met["b12_deficient"] = below("b12", t["b12_deficient.below_pg_ml"])
    met["b12_indeterminate"] = (
        b12 is not None
        and t["b12_deficient.below_pg_ml"] <= b12 <= t["b12_indeterminate.upper_pg_ml"]
        and not any(r.analyte == "mma" and latest["b12"].on <= r.on <= as_of for r in rows)
    )
    met["mma_elevated"] = above("mma", t["mma_elevated.above_nmol_l"])
    met["homocysteine_elevated"] = above("homocysteine", t["homocysteine_elevated.above_umol_l"])
    met["folate_low"] = below("folate", t["folate_low.below_ng_ml"])
    hgb_limit = {
        "M": t["anemia.male_below_g_dl"],
        "F": t["anemia.female_below_g_dl"],
        "U": t["anemia.unknown_sex_below_g_dl"],
    }[sex]
    met["anemia"] = below("hgb", hgb_limit)
    met["critical_anemia"] = below("hgb", t["critical_anemia.below_g_dl"])
    met["leukopenia"] = below("wbc", t["leukopenia.below_10e9_l"])
    met["neutropenia"] = below("anc", t["neutropenia.below_10e9_l"])
    met["thrombocytopenia"] = below("platelets", t["thrombocytopenia.below_10e9_l"])
    met["macrocytosis"] = above("mcv", t["macrocytosis.above_fl"])
    met["pancytopenia"] = met["anemia"] and met["leukopenia"] and met["thrombocytopenia"]
    deficient = met["b12_deficient"] or met["mma_elevated"]
    cytopenia = met["anemia"] or met["leukopenia"] or met["neutropenia"] or met["thrombocytopenia"]
    met["deficiency_with_cytopenia"] = deficient and cytopenia
    met["cytopenia_b12_untested"] = (
        (cytopenia or met["macrocytosis"]) and "b12" not in latest and "mma" not in latest
    )
    met["pseudo_tma_suspect"] = (
        deficient
        and met["anemia"]
        and met["thrombocytopenia"]
        and above("ldh", t["pseudo_tma_suspect.ldh_above_u_l"])
    )
    return [c for c in LAB_CRITERIA if met[c]]


# ---------------------------------------------------------------------------------------------
# Sites: codes, names and units, each unit with its factor to the canonical unit
# (data/lab_units.csv; a test checks they agree) and the precision a lab writes it with.
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UnitSpec:
    unit: str
    factor: float
    decimals: int  # negative: rounded to tens/hundreds/thousands (cells/uL)
    weight: float = 1.0
    thousands: bool = False  # '1,850'
    loinc: str | None = None  # overrides the site's code for this unit; "" for none
    pad_zero_share: float = 0.0  # share of whole numbers written '154.0'


@dataclass(frozen=True)
class SiteSpec:
    name: str
    file_stem: str
    loinc_share: float  # share of rows that carry the LOINC code
    datetime_share: float  # share of draws written with a time of day
    result_id_share: float
    loinc: Mapping[str, str]
    names: Mapping[str, Sequence[str]]
    units: Mapping[str, Sequence[UnitSpec]]
    reference: Mapping[str, tuple[str, str]] = field(default_factory=dict)


_LOINC = {
    "b12": "2132-9",
    "hgb": "718-7",
    "wbc": "6690-2",
    "anc": "751-8",
    "platelets": "777-3",
    "mcv": "787-2",
    "folate": "2284-8",
    "mma": "13964-2",
    "homocysteine": "13965-9",
    "ldh": "2532-0",
    "creatinine": "2160-0",
    "egfr": "98979-8",
    "neutrophils_pct": "770-8",
}
_PER_UL = 0.001  # cells/uL -> 10^9/L

NORTH = SiteSpec(
    name="north",
    file_stem="labs_site_north",
    loinc_share=1.0,
    datetime_share=0.9,
    result_id_share=0.97,
    loinc=_LOINC,
    names={
        "b12": ["Vitamin B12"],
        "hgb": ["Hemoglobin"],
        "wbc": ["WBC"],
        "anc": ["Neutrophils, Absolute"],
        "platelets": ["Platelet Count"],
        "mcv": ["MCV"],
        "folate": ["Folate, Serum"],
        "mma": ["Methylmalonic Acid, Serum"],
        "homocysteine": ["Homocysteine"],
        "ldh": ["LDH"],
        "creatinine": ["Creatinine"],
        "egfr": ["eGFR"],
        "neutrophils_pct": ["Neutrophils %"],
    },
    units={
        "b12": [UnitSpec("pg/mL", 1, 0, pad_zero_share=0.1)],
        "hgb": [UnitSpec("g/dL", 1, 1)],
        "wbc": [UnitSpec("10*9/L", 1, 1, 0.85), UnitSpec("cells/uL", _PER_UL, -2, 0.15, True)],
        "anc": [UnitSpec("10*9/L", 1, 2, 0.8), UnitSpec("cells/uL", _PER_UL, -1, 0.2, True)],
        "platelets": [UnitSpec("10*9/L", 1, 0, 0.9), UnitSpec("/uL", _PER_UL, -3, 0.1, True)],
        "mcv": [UnitSpec("fL", 1, 1)],
        "folate": [UnitSpec("ng/mL", 1, 1)],
        "mma": [UnitSpec("nmol/L", 1, 0)],
        "homocysteine": [UnitSpec("umol/L", 1, 1)],
        "ldh": [UnitSpec("U/L", 1, 0)],
        "creatinine": [UnitSpec("mg/dL", 1, 2)],
        "egfr": [UnitSpec("mL/min/1.73m2", 1, 0)],
        "neutrophils_pct": [UnitSpec("%", 1, 1)],
    },
    reference={
        "b12": ("232", "1245"),
        "hgb": ("12.0", "17.5"),
        "mcv": ("80", "100"),
        "folate": ("4.0", "20.0"),
        "mma": ("87", "318"),
        "ldh": ("140", "280"),
    },
)
SOUTH = SiteSpec(
    name="south",
    file_stem="labs_site_south",
    loinc_share=0.0,
    datetime_share=0.0,
    result_id_share=0.85,
    loinc={},
    names={
        "b12": ["Vitamin B12", "VIT B12", "B12"],
        "hgb": ["HGB", "Hb"],
        "wbc": ["White Blood Cells", "WBC"],
        "anc": ["Absolute Neutrophil Count", "ANC"],
        "platelets": ["Platelets", "PLT"],
        "mcv": ["MCV"],
        "folate": ["Serum Folate", "Folate"],
        "mma": ["Methylmalonic Acid"],
        "homocysteine": ["Homocysteine", "Total Homocysteine"],
        "ldh": ["Lactate Dehydrogenase"],
        "creatinine": ["Serum Creatinine"],
        "egfr": ["eGFR"],
        "neutrophils_pct": ["Neutrophils %"],
    },
    units={
        "b12": [UnitSpec("pmol/L", 1.35539, 0)],
        "hgb": [UnitSpec("g/L", 0.1, 0)],
        "wbc": [UnitSpec("x10^9/L", 1, 1, 0.8), UnitSpec("x 10^9/L", 1, 1, 0.2)],
        "anc": [UnitSpec("x10^9/L", 1, 1, 0.8), UnitSpec("x 10^9/L", 1, 1, 0.2)],
        "platelets": [UnitSpec("x10^9/L", 1, 0, 0.8), UnitSpec("x 10^9/L", 1, 0, 0.2)],
        "mcv": [UnitSpec("fL", 1, 0)],
        "folate": [UnitSpec("ug/L", 1, 1)],
        "mma": [UnitSpec("nmol/L", 1, 0)],
        "homocysteine": [UnitSpec("umol/L", 1, 1)],
        "ldh": [UnitSpec("IU/L", 1, 0)],
        "creatinine": [UnitSpec("umol/L", 0.0113097, 0)],
        "egfr": [UnitSpec("mL/min/1.73m2", 1, 0)],
        "neutrophils_pct": [UnitSpec("%", 1, 0)],
    },
)
EAST = SiteSpec(
    name="east",
    file_stem="labs_site_east",
    loinc_share=0.5,
    datetime_share=0.5,
    result_id_share=0.9,
    loinc=_LOINC,
    names={
        "b12": ["Cobalamin (Vitamin B12)", "Vitamin B12, Serum"],
        "hgb": ["Haemoglobin"],
        "wbc": ["Leucocytes", "WBC Count"],
        "anc": ["Neut#", "Neutrophils #"],
        "platelets": ["Plt", "Platelet Count"],
        "mcv": ["Mean Cell Volume"],
        "folate": ["Folate"],
        "mma": ["MMA"],
        "homocysteine": ["Hcy"],
        "ldh": ["LD"],
        "creatinine": ["Creatinine"],
        "egfr": ["eGFR (CKD-EPI 2021)"],
        "neutrophils_pct": ["Neut%"],
    },
    units={
        "b12": [
            UnitSpec("ng/L", 1, 0, 0.6),
            UnitSpec("pmol/L", 1.35539, 0, 0.4, loinc="14685-2"),
        ],
        # no code for Hgb in mmol/L: 718-7 is a mass concentration, so the name decides
        "hgb": [UnitSpec("g/dL", 1, 1, 0.85), UnitSpec("mmol/L", 1.611344, 1, 0.15, loinc="")],
        "wbc": [UnitSpec("K/uL", 1, 1, 0.6), UnitSpec("10^3/µL", 1, 1, 0.4)],
        "anc": [UnitSpec("K/uL", 1, 2, 0.6), UnitSpec("10^3/µL", 1, 2, 0.4)],
        "platelets": [UnitSpec("K/uL", 1, 0, 0.6), UnitSpec("10^3/µL", 1, 0, 0.4)],
        "mcv": [UnitSpec("fL", 1, 1, 0.85), UnitSpec("µm3", 1, 1, 0.15)],
        "folate": [UnitSpec("nmol/L", 0.441306, 1, loinc="14732-2")],
        "mma": [UnitSpec("µmol/L", 1000, 3)],
        "homocysteine": [UnitSpec("µmol/L", 1, 1)],
        "ldh": [UnitSpec("U/L", 1, 0, 0.8), UnitSpec("µkat/L", 60, 2, 0.2, loinc="14804-9")],
        "creatinine": [UnitSpec("µmol/L", 0.0113097, 0, loinc="14682-9")],
        "egfr": [UnitSpec("mL/min/1.73m2", 1, 0)],
        "neutrophils_pct": [UnitSpec("%", 1, 1)],
    },
)
SITES: dict[str, SiteSpec] = {"N": NORTH, "S": SOUTH, "E": EAST}


# ---------------------------------------------------------------------------------------------
# Planted patients: rows and expected criteria written by hand
# ---------------------------------------------------------------------------------------------
_SITE_DEFAULT = object()


@dataclass(frozen=True)
class PlantedRow:
    analyte: str  # what the row is meant to be (coverage checks only; not used for flags)
    value: str
    unit: str
    days_ago: int = 14  # negative: after as-of
    time: str | None = "08:30:00"  # None: date only (south always writes dates)
    loinc: object = _SITE_DEFAULT
    test_name: object = _SITE_DEFAULT
    result_id: object = _SITE_DEFAULT
    messy: str | None = None  # reason category when the row must be quarantined


@dataclass(frozen=True)
class PlantedPatient:
    patient_id: str
    sex: str
    age: int
    site: str  # N, S or E
    expected: frozenset[str]
    purpose: str
    rows: tuple[PlantedRow, ...]


def _r(analyte: str, value: str, unit: str, d: int = 14, **kw: object) -> PlantedRow:
    return PlantedRow(analyte, value, unit, d, **kw)  # type: ignore[arg-type]


_NORMAL_CBC = {
    "N": {
        "hgb": ("14.1", "g/dL"),
        "wbc": ("6.2", "10*9/L"),
        "anc": ("3.40", "10*9/L"),
        "platelets": ("245", "10*9/L"),
        "mcv": ("90.1", "fL"),
    },
    "S": {
        "hgb": ("141", "g/L"),
        "wbc": ("6.2", "x10^9/L"),
        "anc": ("3.4", "x10^9/L"),
        "platelets": ("245", "x10^9/L"),
        "mcv": ("90", "fL"),
    },
    "E": {
        "hgb": ("14.1", "g/dL"),
        "wbc": ("6.2", "K/uL"),
        "anc": ("3.40", "K/uL"),
        "platelets": ("245", "10^3/µL"),
        "mcv": ("90.1", "fL"),
    },
}
_NORMAL_B12 = {"N": ("512", "pg/mL"), "S": ("378", "pmol/L"), "E": ("512", "ng/L")}


def _cbc(
    site: str, d: int = 14, time: str = "08:30:00", **over: str | tuple[str, str] | None
) -> list[PlantedRow]:
    """A CBC with normal values in the site's units; ``hgb="12.9"`` or ``wbc=("3.9", "K/uL")``
    replaces one, ``anc=None`` leaves it out."""
    rows = []
    for analyte, (value, unit) in _NORMAL_CBC[site].items():
        chosen = over.get(analyte, (value, unit))
        if chosen is None:
            continue
        if isinstance(chosen, str):
            chosen = (chosen, unit)
        rows.append(_r(analyte, chosen[0], chosen[1], d, time=time))
    return rows


def _b12ok(site: str, d: int = 14) -> PlantedRow:
    return _r("b12", *_NORMAL_B12[site], d)


def _p(
    pid: str, sex: str, age: int, site: str, expected: str, purpose: str, rows: list[PlantedRow]
) -> PlantedPatient:
    return PlantedPatient(
        f"PLANT-{pid}", sex, age, site, frozenset(expected.split()), purpose, tuple(rows)
    )


def _hgb_case(
    pid: str, sex: str, site: str, hgb: str | tuple[str, str], expected: str
) -> PlantedPatient:
    return _p(
        pid, sex, 64, site, expected, f"Hgb {hgb} sex {sex!r}", [*_cbc(site, hgb=hgb), _b12ok(site)]
    )


def _count_case(
    pid: str, site: str, analyte: str, value: str | tuple[str, str], expected: str
) -> PlantedPatient:
    over: dict[str, str | tuple[str, str] | None] = {analyte: value}
    if analyte == "wbc":  # keep the ANC below the WBC
        over["anc"] = ("1.90", _NORMAL_CBC[site]["anc"][1]) if site != "S" else ("1.9", "x10^9/L")
    return _p(
        pid, "F", 59, site, expected, f"{analyte} {value}", [*_cbc(site, **over), _b12ok(site)]
    )


def _b12_case(
    pid: str, site: str, value: str, unit: str, expected: str, **kw: object
) -> PlantedPatient:
    return _p(
        pid, "F", 67, site, expected, f"B12 {value} {unit}", [_r("b12", value, unit, 30, **kw)]
    )


def _single(
    pid: str, site: str, analyte: str, value: str, unit: str, expected: str
) -> PlantedPatient:
    return _p(
        pid, "M", 62, site, expected, f"{analyte} {value} {unit}", [_r(analyte, value, unit, 21)]
    )


def _ptma(
    pid: str,
    site: str,
    expected: str,
    purpose: str,
    ldh: PlantedRow,
    b12: tuple[str, str],
    cbc: dict[str, str | tuple[str, str]],
) -> PlantedPatient:
    return _p(
        pid, "F", 73, site, expected, purpose, [_r("b12", *b12, 10), *_cbc(site, 10, **cbc), ldh]
    )


_PTMA = "b12_deficient anemia thrombocytopenia deficiency_with_cytopenia pseudo_tma_suspect"
_DEF_ANEM_THROMBO = "b12_deficient anemia thrombocytopenia deficiency_with_cytopenia"

# fmt: off
PLANTED: tuple[PlantedPatient, ...] = (
    # -- one clear case per criterion --------------------------------------------------------
    _p("B12DEF-01", "F", 70, "N", "b12_deficient", "B12 150 pg/mL",
       [_r("b12", "150", "pg/mL", 30)]),
    _p("B12IND-01", "M", 66, "N", "b12_indeterminate", "B12 250 pg/mL, no MMA",
       [_r("b12", "250", "pg/mL", 40)]),
    _p("MMA-01", "F", 58, "N", "mma_elevated", "MMA 450 nmol/L, B12 420 (normal)",
       [_r("b12", "420", "pg/mL", 20), _r("mma", "450", "nmol/L", 20)]),
    _p("HCY-01", "M", 72, "N", "homocysteine_elevated", "homocysteine 15.2 umol/L",
       [_r("homocysteine", "15.2", "umol/L", 25)]),
    _p("FOLATE-01", "F", 45, "N", "folate_low", "folate 2.9 ng/mL, B12 normal",
       [_r("folate", "2.9", "ng/mL", 25), _r("b12", "510", "pg/mL", 25)]),
    _p("ANEMIA-01", "F", 81, "N", "anemia cytopenia_b12_untested", "Hgb 10.8 (F), no B12 ever",
       _cbc("N", 10, hgb="10.8")),
    _p("CRITANEM-01", "M", 77, "N", "anemia critical_anemia", "Hgb 4.6, B12 normal",
       [*_cbc("N", 3, hgb="4.6"), _b12ok("N", 3)]),
    _p("LEUKO-01", "F", 60, "S", "leukopenia", "WBC 3.1 (ANC 1.9)",
       [*_cbc("S", 12, wbc="3.1", anc="1.9"), _b12ok("S", 12)]),
    _p("NEUTRO-01", "M", 55, "E", "neutropenia", "ANC 0.90 K/uL",
       [*_cbc("E", 9, anc="0.90", wbc="4.6"), _b12ok("E", 9)]),
    _p("THROMBO-01", "F", 68, "N", "thrombocytopenia", "platelets 98",
       [*_cbc("N", 7, platelets="98"), _b12ok("N", 7)]),
    _p("MACRO-01", "M", 74, "S", "macrocytosis", "MCV 108",
       [*_cbc("S", 15, mcv="108"), _b12ok("S", 15)]),
    _p("PANCYTO-01", "M", 69, "N", "anemia leukopenia thrombocytopenia pancytopenia",
       "Hgb 9.1, WBC 2.8, platelets 85, ANC 1.60 (not low), B12 normal",
       [*_cbc("N", 6, hgb="9.1", wbc="2.8", anc="1.60", platelets="85"), _b12ok("N", 6)]),
    _p("DEFCYTO-01", "F", 79, "N", "b12_deficient anemia deficiency_with_cytopenia",
       "B12 140 and Hgb 10.2",
       [_r("b12", "140", "pg/mL", 15), *_cbc("N", 15, hgb="10.2")]),
    _p("DEFCYTO-02", "M", 63, "E", "mma_elevated neutropenia deficiency_with_cytopenia",
       "MMA 0.520 umol/L with B12 260 ng/L at the same collected_at (so not indeterminate)",
       [_r("mma", "0.520", "µmol/L", 8), _r("b12", "260", "ng/L", 8),
        *_cbc("E", 8, anc="1.10", wbc="4.5")]),
    _p("UNTESTED-01", "F", 50, "S", "macrocytosis cytopenia_b12_untested", "MCV 105, no B12",
       _cbc("S", 20, mcv="105", hgb="128")),
    _p("UNTESTED-02", "F", 83, "N", "anemia cytopenia_b12_untested",
       "Hgb 10.5; the only B12 (150) is 400 days old",
       [_r("b12", "150", "pg/mL", 400), *_cbc("N", 20, hgb="10.5")]),
    _p("PTMA-01", "F", 71, "N", _PTMA + " macrocytosis",
       "B12 120, Hgb 7.9, platelets 42, MCV 112, LDH 1450",
       [_r("b12", "120", "pg/mL", 5), *_cbc("N", 5, hgb="7.9", platelets="42", mcv="112.0"),
        _r("ldh", "1450", "U/L", 5)]),
    _p("PTMA-02", "F", 64, "E",
       "mma_elevated anemia thrombocytopenia deficiency_with_cytopenia pseudo_tma_suspect",
       "MMA 0.610 umol/L, Hgb 6.1 mmol/L (9.829 g/dL), platelets 61, LDH 6.20 ukat/L (372)",
       [_r("mma", "0.610", "µmol/L", 6), *_cbc("E", 6, hgb=("6.1", "mmol/L"), platelets="61"),
        _r("ldh", "6.20", "µkat/L", 6)]),
    # -- the LDH limit of pseudo-TMA (each with B12 deficiency, anemia, thrombocytopenia) ----
    _ptma("LDH-250", "N", _DEF_ANEM_THROMBO, "LDH 250 U/L is not above 250",
          _r("ldh", "250", "U/L", 10), ("130", "pg/mL"), {"hgb": "8.5", "platelets": "70"}),
    _ptma("LDH-251", "N", _PTMA, "LDH 251 U/L",
          _r("ldh", "251", "U/L", 10), ("130", "pg/mL"), {"hgb": "8.5", "platelets": "70"}),
    _ptma("LDH-249IU", "S", _DEF_ANEM_THROMBO, "LDH 249 IU/L; B12 90 pmol/L (122 pg/mL)",
          _r("ldh", "249", "IU/L", 10), ("90", "pmol/L"), {"hgb": "85", "platelets": "70"}),
    _ptma("LDH-UKAT-4.16", "E", _DEF_ANEM_THROMBO, "LDH 4.16 ukat/L = 249.6 U/L",
          _r("ldh", "4.16", "µkat/L", 10), ("120", "ng/L"),
          {"hgb": "8.5", "platelets": ("70", "K/uL")}),
    _ptma("LDH-OLD", "N", _DEF_ANEM_THROMBO, "LDH 900 U/L, but 120 days old (look-back 90)",
          _r("ldh", "900", "U/L", 120), ("130", "pg/mL"), {"hgb": "8.5", "platelets": "70"}),
    # -- B12 limits (180 below, 180..350 inclusive), several units ----------------------------
    _b12_case("B12-179PG", "N", "179", "pg/mL", "b12_deficient"),
    _b12_case("B12-180PG", "N", "180.0", "pg/mL", "b12_indeterminate"),
    _b12_case("B12-181PG", "N", "181", "pg/mL", "b12_indeterminate"),
    _b12_case("B12-132PMOL", "S", "132", "pmol/L", "b12_deficient"),  # 178.911 pg/mL
    _b12_case("B12-132.8PMOL", "S", "132.8", "pmol/L", "b12_deficient"),  # 179.996 pg/mL
    _b12_case("B12-133PMOL", "S", "133", "pmol/L", "b12_indeterminate"),  # 180.267 pg/mL
    _b12_case("B12-134PMOL", "S", "134", "pmol/L", "b12_indeterminate"),  # 181.622 pg/mL
    _b12_case("B12-131PMOL-E", "E", "131", "pmol/L", "b12_deficient"),  # 177.556 pg/mL
    _b12_case("B12-179NGL", "E", "179", "ng/L", "b12_deficient"),
    _b12_case("B12-180NGL", "E", "180", "ng/L", "b12_indeterminate"),
    _b12_case("B12-350PG", "N", "350", "pg/mL", "b12_indeterminate"),
    _b12_case("B12-351PG", "N", "351", "pg/mL", ""),
    _b12_case("B12-258PMOL", "S", "258", "pmol/L", "b12_indeterminate"),  # 349.691 pg/mL
    _b12_case("B12-259PMOL", "S", "259", "pmol/L", ""),  # 351.046 pg/mL
    # -- censored B12 ---------------------------------------------------------------------------
    _b12_case("B12-CENS-LT150", "N", "<150", "pg/mL", "b12_deficient"),
    _b12_case("B12-CENS-GT2000", "N", ">2000", "pg/mL", ""),
    _b12_case("B12-CENS-LT111PMOL", "S", "<111", "pmol/L", "b12_deficient"),  # <150.448 pg/mL
    _b12_case("B12-CENS-GT1476PMOL", "S", ">1476", "pmol/L", ""),  # >2000.556 pg/mL
    # -- ties on collected_at: higher result_id first, missing last, then the lower value ------
    _p("TIE-01", "F", 70, "N", "", "same time: id N-T0002 (400) beats N-T0001 (150)",
       [_r("b12", "150", "pg/mL", 30, result_id="N-T0001"),
        _r("b12", "400", "pg/mL", 30, result_id="N-T0002")]),
    _p("TIE-02", "F", 70, "N", "b12_deficient", "same time: id N-T0004 (150) beats N-T0003 (400)",
       [_r("b12", "400", "pg/mL", 30, result_id="N-T0003"),
        _r("b12", "150", "pg/mL", 30, result_id="N-T0004")]),
    _p("TIE-03", "M", 70, "N", "", "same time: the row with an id (400) beats one without (150)",
       [_r("b12", "150", "pg/mL", 30, result_id=""),
        _r("b12", "400", "pg/mL", 30, result_id="N-T0005")]),
    _p("TIE-04", "M", 70, "S", "b12_deficient", "same day, no ids: the lower value wins (100 pmol/L)",
       [_r("b12", "300", "pmol/L", 30, result_id=""),
        _r("b12", "100", "pmol/L", 30, result_id="")]),
    # -- latest result and look-back edges ---------------------------------------------------------
    _p("LOOKBACK-OLD", "F", 77, "N", "", "low B12 366 days ago, low Hgb 91 days ago: both too old",
       [_r("b12", "120", "pg/mL", 366), *_cbc("N", 91, hgb="9.0")]),
    _p("LOOKBACK-EDGE", "F", 77, "N", "b12_deficient anemia deficiency_with_cytopenia",
       "low B12 exactly 365 days and low Hgb exactly 90 days before as-of: both count",
       [_r("b12", "150", "pg/mL", 365), *_cbc("N", 90, hgb="9.0")]),
    _p("LATEST-NORMAL", "F", 61, "N", "", "Hgb 9.5 60 days ago, then 13.4 10 days ago",
       [*_cbc("N", 60, hgb="9.5"), *_cbc("N", 10, hgb="13.4"), _b12ok("N", 10)]),
    _p("LATEST-LOW", "F", 61, "N", "anemia", "Hgb 13.4 60 days ago, then 9.5 10 days ago",
       [*_cbc("N", 60, hgb="13.4"), *_cbc("N", 10, hgb="9.5"), _b12ok("N", 10)]),
    _p("LATEST-TIME", "M", 61, "N", "", "same day: B12 150 at 08:00, then 420 at 14:30",
       [_r("b12", "150", "pg/mL", 40, time="08:00:00"),
        _r("b12", "420", "pg/mL", 40, time="14:30:00")]),
    _p("ASOF-DAY", "F", 61, "N", "anemia", "Hgb 9.0 drawn on the as-of day at 07:15",
       [*_cbc("N", 0, hgb="9.0", time="07:15:00"), _b12ok("N", 30)]),
    _p("FUTURE-01", "F", 61, "N", "", "B12 420; a B12 of 120 dated after as-of is quarantined",
       [_r("b12", "420", "pg/mL", 20), _r("b12", "120", "pg/mL", -3, messy="future_date")]),
    # -- indeterminate B12 and the timing of MMA ---------------------------------------------------
    _p("B12IND-MMAAFTER", "M", 66, "N", "", "B12 260, then a normal MMA 30 days later",
       [_r("b12", "260", "pg/mL", 60), _r("mma", "180", "nmol/L", 30)]),
    _p("B12IND-MMABEFORE", "F", 66, "N", "b12_indeterminate", "normal MMA 60 days ago, B12 260 30",
       [_r("mma", "190", "nmol/L", 60), _r("b12", "260", "pg/mL", 30)]),
    _p("B12IND-BADMMA", "F", 66, "N", "b12_indeterminate", "B12 300; the later MMA is 'pending'",
       [_r("b12", "300", "pg/mL", 50),
        _r("mma", "pending", "nmol/L", 20, messy="unparseable_value")]),
    # -- MMA, homocysteine and folate limits -------------------------------------------------------
    _single("MMA-271", "N", "mma", "271", "nmol/L", ""),
    _single("MMA-272", "N", "mma", "272", "nmol/L", "mma_elevated"),
    _single("MMA-270S", "S", "mma", "270", "nmol/L", ""),
    _single("MMA-0.271UM", "E", "mma", "0.271", "µmol/L", ""),
    _single("MMA-0.272UM", "E", "mma", "0.272", "µmol/L", "mma_elevated"),
    _single("MMA-0.300NMOLML", "E", "mma", "0.300", "nmol/mL", "mma_elevated"),
    _single("HCY-10.0", "N", "homocysteine", "10.0", "umol/L", ""),
    _single("HCY-10.1", "N", "homocysteine", "10.1", "umol/L", "homocysteine_elevated"),
    _single("HCY-10.2S", "S", "homocysteine", "10.2", "umol/L", "homocysteine_elevated"),
    _single("HCY-9.9UM", "E", "homocysteine", "9.9", "µmol/L", ""),
    _single("HCY-10.1UM", "E", "homocysteine", "10.1", "µmol/L", "homocysteine_elevated"),
    _single("HCY-1.36MGL", "E", "homocysteine", "1.36", "mg/L", "homocysteine_elevated"),  # 10.060
    _single("HCY-1.35MGL", "E", "homocysteine", "1.35", "mg/L", ""),  # 9.986 umol/L
    _single("FOL-3.9", "N", "folate", "3.9", "ng/mL", "folate_low"),
    _single("FOL-4.0", "N", "folate", "4.0", "ng/mL", ""),
    _single("FOL-4.1", "N", "folate", "4.1", "ng/mL", ""),
    _single("FOL-3.9UGL", "S", "folate", "3.9", "ug/L", "folate_low"),
    _single("FOL-4.0UGL", "S", "folate", "4.0", "ug/L", ""),
    _single("FOL-9.0NMOL", "E", "folate", "9.0", "nmol/L", "folate_low"),  # 3.972 ng/mL
    _single("FOL-9.1NMOL", "E", "folate", "9.1", "nmol/L", ""),  # 4.016 ng/mL
    # -- Hgb limits by sex and unit (each with a normal CBC otherwise and a normal B12) ----------
    _hgb_case("HGB-M-12.9", "M", "N", "12.9", "anemia"),
    _hgb_case("HGB-M-13.0", "M", "N", "13.0", ""),
    _hgb_case("HGB-M-13.1", "M", "N", "13.1", ""),
    _hgb_case("HGB-M-129GL", "M", "S", "129", "anemia"),
    _hgb_case("HGB-M-130GL", "M", "S", "130", ""),
    _hgb_case("HGB-M-8.0MMOL", "M", "E", ("8.0", "mmol/L"), "anemia"),  # 12.891 g/dL
    _hgb_case("HGB-F-11.9", "F", "N", "11.9", "anemia"),
    _hgb_case("HGB-F-12.0", "F", "N", "12.0", ""),
    _hgb_case("HGB-F-12.1", "F", "N", "12.1", ""),
    _hgb_case("HGB-F-119GL", "F", "S", "119", "anemia"),
    _hgb_case("HGB-F-120GL", "F", "S", "120", ""),
    _hgb_case("HGB-F-7.4MMOL", "F", "E", ("7.4", "mmol/L"), "anemia"),  # 11.924 g/dL
    _hgb_case("HGB-F-7.5MMOL", "F", "E", ("7.5", "mmol/L"), ""),  # 12.085 g/dL
    _hgb_case("HGB-SEX-MALE", "male", "N", "12.5", "anemia"),
    _hgb_case("HGB-SEX-FEMALE", "FEMALE", "N", "12.5", ""),
    _hgb_case("HGB-SEX-X", "x", "N", "12.5", ""),
    _hgb_case("HGB-SEX-X-11.9", "x", "N", "11.9", "anemia"),
    _hgb_case("HGB-SEX-BLANK", "", "N", "12.5", ""),
    _hgb_case("CRIT-4.9", "M", "N", "4.9", "anemia critical_anemia"),
    _hgb_case("CRIT-5.0", "M", "N", "5.0", "anemia"),
    _hgb_case("CRIT-5.1", "F", "N", "5.1", "anemia"),
    _hgb_case("CRIT-49GL", "M", "S", "49", "anemia critical_anemia"),
    _hgb_case("CRIT-50GL", "F", "S", "50", "anemia"),
    _hgb_case("CRIT-3.1MMOL", "F", "E", ("3.1", "mmol/L"), "anemia critical_anemia"),  # 4.995
    _hgb_case("CRIT-3.2MMOL", "F", "E", ("3.2", "mmol/L"), "anemia"),  # 5.156 g/dL
    # -- WBC, ANC, platelet and MCV limits (normal CBC otherwise, normal B12) ---------------------
    _count_case("WBC-3.9", "N", "wbc", "3.9", "leukopenia"),
    _count_case("WBC-4.0", "N", "wbc", "4.0", ""),
    _count_case("WBC-4.1", "N", "wbc", "4.1", ""),
    _count_case("WBC-3900UL", "N", "wbc", ("3,900", "cells/uL"), "leukopenia"),
    _count_case("WBC-4000UL", "N", "wbc", ("4,000", "cells/uL"), ""),
    _count_case("WBC-3.9S", "S", "wbc", "3.9", "leukopenia"),
    _count_case("WBC-4.0S-SPACE", "S", "wbc", ("4.0", "x 10^9/L"), ""),
    _count_case("WBC-3.99KUL", "E", "wbc", "3.99", "leukopenia"),
    _count_case("WBC-4.0KUL", "E", "wbc", "4.0", ""),
    _count_case("WBC-3.9-10E3UL", "E", "wbc", ("3.9", "10^3/µL"), "leukopenia"),
    _count_case("WBC-4.00-10E3UL", "E", "wbc", ("4.00", "10^3/µL"), ""),
    _count_case("ANC-1.49", "N", "anc", "1.49", "neutropenia"),
    _count_case("ANC-1.5", "N", "anc", "1.5", ""),
    _count_case("ANC-1.51", "N", "anc", "1.51", ""),
    _count_case("ANC-1490UL", "N", "anc", ("1,490", "cells/uL"), "neutropenia"),
    _count_case("ANC-1500UL", "N", "anc", ("1,500", "cells/uL"), ""),
    _count_case("ANC-1.49S-SPACE", "S", "anc", ("1.49", "x 10^9/L"), "neutropenia"),
    _count_case("ANC-1.5S", "S", "anc", "1.5", ""),
    _count_case("ANC-1.4-10E3UL", "E", "anc", ("1.4", "10^3/µL"), "neutropenia"),
    _count_case("ANC-1.50KUL", "E", "anc", "1.50", ""),
    _count_case("PLT-149", "N", "platelets", "149", "thrombocytopenia"),
    _count_case("PLT-150", "N", "platelets", "150", ""),
    _count_case("PLT-151", "N", "platelets", "151", ""),
    _count_case("PLT-149000UL", "N", "platelets", ("149,000", "/uL"), "thrombocytopenia"),
    _count_case("PLT-150000UL", "N", "platelets", ("150,000", "/uL"), ""),
    _count_case("PLT-150S", "S", "platelets", "150", ""),
    _count_case("PLT-149S-SPACE", "S", "platelets", ("149", "x 10^9/L"), "thrombocytopenia"),
    _count_case("PLT-149KUL", "E", "platelets", ("149", "K/uL"), "thrombocytopenia"),
    _count_case("PLT-149-10E3UL", "E", "platelets", "149", "thrombocytopenia"),
    _count_case("MCV-100.1", "N", "mcv", "100.1", "macrocytosis"),
    _count_case("MCV-100", "N", "mcv", "100", ""),
    _count_case("MCV-99.9", "N", "mcv", "99.9", ""),
    _count_case("MCV-100.1UM3", "E", "mcv", ("100.1", "µm3"), "macrocytosis"),
    _count_case("MCV-100.0UM3", "E", "mcv", ("100.0", "µm3"), ""),
    # -- how the analyte is identified -----------------------------------------------------------
    _p("NEUTPCT-01", "F", 58, "S", "", "'Neutrophils %' 1.2 % is not an ANC (no ANC row)",
       [*_cbc("S", anc=None), _r("neutrophils_pct", "1.2", "%"), _b12ok("S")]),
    _p("NEUTPCT-02", "M", 58, "N", "", "LOINC 770-8 (neutrophils %) 1.2 % is not an ANC",
       [*_cbc("N", anc=None), _r("neutrophils_pct", "1.2", "%"), _b12ok("N")]),
    _p("LOCALCODE-01", "F", 58, "E", "anemia", "local code LAB-HB-01: mapped by name 'Hemoglobin'",
       [*_cbc("E", hgb=None), _b12ok("E"),
        _r("hgb", "9.8", "g/dL", loinc="LAB-HB-01", test_name="Hemoglobin")]),
    _p("NAMECASE-01", "M", 58, "S", "b12_deficient", "test name '  vitamin B12 ' (case, spaces)",
       [_r("b12", "100", "pmol/L", 30, test_name="  vitamin B12 ")]),
    _p("RESEND-01", "M", 58, "S", "b12_deficient", "one result (id S-R0001) sent twice",
       [_r("b12", "100", "pmol/L", 30, result_id="S-R0001"),
        _r("b12", "100", "pmol/L", 30, result_id="S-R0001")]),
    # -- nothing at all ----------------------------------------------------------------------------
    _p("NOLABS-01", "F", 41, "N", "", "in patients, no labs and no medications: never flagged", []),
)
# fmt: on


# ---------------------------------------------------------------------------------------------
# Background population
# ---------------------------------------------------------------------------------------------
@dataclass
class Patient:
    patient_id: str
    sex: str  # as written in the file
    birth_date: date
    site: str  # N, S or E
    group: str  # M, F or U
    b12_state: str = "normal"  # normal, borderline, deficient
    hgb_base: float = 14.0
    wbc_base: float = 6.8
    plt_base: float = 250.0
    mcv_base: float = 90.0
    folate_base: float = 10.0


@dataclass
class Draw:
    """One specimen: every result in it shares the collected_at string."""

    days_ago: int
    site: str
    collected_at: str
    analytes: list[str] = field(default_factory=list)


@dataclass
class LabRow:
    site: str
    archive: bool  # north keeps results older than a year in a second file
    values: dict[str, str]
    messy: str | None = None  # why the row must be quarantined

    @property
    def file(self) -> str:
        if self.site == "N":
            return "labs_site_north_archive.csv" if self.archive else "labs_site_north.csv"
        return {"S": "labs_site_south.csv.gz", "E": "labs_site_east.parquet"}[self.site]


_EXCLUDED_DAYS = {0, 90, 91, 365, 366}  # look-back edges and the as-of day are planted only


def _site_of(rng: random.Random, home: str) -> str:
    if rng.random() < 0.92:
        return home
    return rng.choice([s for s in SITES if s != home])


def _make_patient(rng: random.Random, i: int, as_of: date) -> Patient:
    u = rng.random()
    if u < 0.52:
        sex = "F"
    elif u < 0.99:
        sex = "M"
    else:
        sex = rng.choice(["male", "FEMALE", "x", "U", "", "Female", "unknown"])
    age = 18 + int(82 * rng.betavariate(2.4, 1.5))
    birth = as_of - timedelta(days=int(age * 365.25) + rng.randrange(365))
    site = rng.choices(["N", "S", "E"], weights=[0.4, 0.35, 0.25])[0]
    p = Patient(f"P{i:06d}", sex, birth, site, sex_group(sex))
    v = rng.random()
    p.b12_state = "deficient" if v < 0.04 else "borderline" if v < 0.16 else "normal"
    mean = {"M": 14.7, "F": 13.4, "U": 14.0}[p.group]
    p.hgb_base = rng.gauss(mean, 1.0)
    if rng.random() < 0.1:
        p.hgb_base -= rng.uniform(1.5, 4.0)
    if p.b12_state == "deficient" and rng.random() < 0.5:
        p.hgb_base -= rng.uniform(0.5, 3.5)
    if rng.random() < 0.002:
        p.hgb_base = rng.uniform(3.8, 6.0)
    p.wbc_base = (
        rng.uniform(2.2, 3.9) if rng.random() < 0.05 else rng.lognormvariate(math.log(6.8), 0.25)
    )
    p.plt_base = rng.uniform(40, 145) if rng.random() < 0.05 else rng.gauss(255, 55)
    p.mcv_base = rng.gauss(90, 4.5)
    if (p.b12_state == "deficient" and rng.random() < 0.5) or rng.random() < 0.03:
        p.mcv_base += rng.uniform(6, 16)
    p.folate_base = (
        rng.uniform(1.5, 3.9) if rng.random() < 0.06 else rng.lognormvariate(math.log(10), 0.45)
    )
    return p


def _value(rng: random.Random, p: Patient, analyte: str, wbc: float | None) -> float:
    """A canonical value for one result of one patient."""
    if analyte == "b12":
        centre = {"deficient": 125.0, "borderline": 260.0, "normal": 480.0}[p.b12_state]
        spread = {"deficient": 0.2, "borderline": 0.15, "normal": 0.33}[p.b12_state]
        return min(max(rng.lognormvariate(math.log(centre), spread), 60), 1950)
    if analyte == "mma":
        centre = {"deficient": 560.0, "borderline": 260.0, "normal": 180.0}[p.b12_state]
        return min(max(rng.lognormvariate(math.log(centre), 0.35), 50), 5000)
    if analyte == "homocysteine":
        centre = 17.0 if p.b12_state == "deficient" else 9.2
        return min(max(rng.lognormvariate(math.log(centre), 0.3), 3), 80)
    if analyte == "folate":
        return min(max(p.folate_base * rng.lognormvariate(0, 0.1), 0.8), 24)
    if analyte == "hgb":
        return min(max(p.hgb_base + rng.gauss(0, 0.4), 3.0), 19.5)
    if analyte == "wbc":
        return min(max(p.wbc_base * rng.lognormvariate(0, 0.1), 0.6), 30)
    if analyte == "anc":
        assert wbc is not None
        return wbc * min(max(rng.gauss(0.6, 0.09), 0.2), 0.85)
    if analyte == "neutrophils_pct":
        return rng.uniform(40, 75)
    if analyte == "platelets":
        return min(max(p.plt_base * rng.lognormvariate(0, 0.08), 8), 900)
    if analyte == "mcv":
        return min(max(p.mcv_base + rng.gauss(0, 1.0), 62), 130)
    if analyte == "ldh":
        centre = 420.0 if p.b12_state == "deficient" and p.hgb_base < 10 else 190.0
        return min(max(rng.lognormvariate(math.log(centre), 0.22), 90), 4000)
    if analyte == "creatinine":
        return min(max(rng.lognormvariate(math.log(0.95), 0.3), 0.3), 9)
    if analyte == "egfr":
        return min(max(rng.lognormvariate(math.log(78), 0.25), 8), 130)
    raise ValueError(analyte)


def _margin(spec: UnitSpec) -> float:
    """Largest shift rendering can cause on the canonical scale, plus 0.01."""
    return 0.5 * 10.0 ** (-spec.decimals) * spec.factor + 0.011


def _away_from_cuts(value: float, analyte: str, spec: UnitSpec) -> float:
    margin = _margin(spec)
    for cut in CUTS.get(analyte, ()):
        if abs(value - cut) < margin:
            value = cut - 1.5 * margin if value < cut else cut + 1.5 * margin
    return value


def _render(value: float, spec: UnitSpec, rng: random.Random) -> str:
    x = value / spec.factor
    if spec.decimals < 0:
        step = 10 ** (-spec.decimals)
        n = int(round(x / step)) * step
        return f"{n:,}" if spec.thousands else str(n)
    text = f"{x:.{spec.decimals}f}"
    if spec.decimals == 0 and rng.random() < spec.pad_zero_share:
        text += ".0"
    return text


def _collected_at(rng: random.Random, site: SiteSpec, day: date) -> str:
    if rng.random() >= site.datetime_share:
        return day.isoformat()
    return f"{day.isoformat()}T{rng.randint(7, 17):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}"


class _Ids:
    """result_id counters per site, so ids never collide with planted ones."""

    def __init__(self) -> None:
        self.next = {"N": 1, "S": 1, "E": 1}

    def take(self, site: str) -> str:
        n = self.next[site]
        self.next[site] = n + 1
        return f"{site}-{n:07d}"


def _days(rng: random.Random, lo: int, hi: int, taken: set[int]) -> int | None:
    for _ in range(20):
        d = rng.randint(lo, hi)
        if d not in taken and d not in _EXCLUDED_DAYS:
            return d
    return None


def _plan_draws(rng: random.Random, p: Patient, as_of: date) -> list[Draw]:
    """Which specimens a patient had, on distinct days."""
    draws: dict[int, Draw] = {}

    def new_draw(lo: int, hi: int) -> Draw | None:
        d = _days(rng, lo, hi, set(draws))
        if d is None:
            return None
        site = _site_of(rng, p.site)
        draw = Draw(d, site, _collected_at(rng, SITES[site], as_of - timedelta(days=d)))
        draws[d] = draw
        return draw

    cbc_days: list[Draw] = []
    suspicious = p.hgb_base < 12 or p.mcv_base > 100 or p.b12_state != "normal"
    if rng.random() < 0.60:
        for _ in range(rng.choices([1, 2, 3, 4], weights=[55, 25, 12, 8])[0]):
            if (dr := new_draw(1, 364)) is not None:
                cbc_days.append(dr)
    if rng.random() < 0.2 and (dr := new_draw(367, 1100)) is not None:
        cbc_days.append(dr)
    for dr in cbc_days:
        dr.analytes += ["hgb", "wbc", "anc", "platelets", "mcv"]
        if rng.random() < 0.6:
            dr.analytes.append("neutrophils_pct")
        if rng.random() < (0.15 if suspicious else 0.025):
            dr.analytes.append("ldh")
    b12_share = 0.3 if suspicious else 0.13
    b12_draws: list[Draw] = []
    if rng.random() < b12_share:
        for _ in range(rng.choices([1, 2], weights=[80, 20])[0]):
            if cbc_days and rng.random() < 0.5:
                dr = rng.choice(cbc_days)
                if "b12" in dr.analytes:
                    continue
            elif (dr := new_draw(1, 364)) is None:
                continue
            dr.analytes.append("b12")
            b12_draws.append(dr)
    if rng.random() < 0.03 and (dr := new_draw(367, 1100)) is not None:
        dr.analytes.append("b12")
    for dr in b12_draws:
        if rng.random() < 0.6:
            dr.analytes.append("folate")
        if rng.random() < 0.1:
            dr.analytes.append("homocysteine")
        if p.b12_state != "normal" and rng.random() < 0.15:
            dr.analytes.append("mma")
    if b12_draws and p.b12_state == "borderline" and rng.random() < 0.4:
        first = min(dr.days_ago for dr in b12_draws)
        if first > 2 and (dr := new_draw(1, first - 1)) is not None:
            dr.analytes.append("mma")  # follow-up MMA after a borderline B12
    for analyte, share in (("folate", 0.035), ("homocysteine", 0.008), ("mma", 0.006)):
        if rng.random() < share and (dr := new_draw(1, 700)) is not None:
            dr.analytes.append(analyte)
    if rng.random() < 0.4:
        for _ in range(rng.choice([1, 2])):
            dr = rng.choice(cbc_days) if cbc_days and rng.random() < 0.5 else new_draw(1, 700)
            if dr is not None and "creatinine" not in dr.analytes:
                dr.analytes += ["creatinine", "egfr"]
    return sorted(draws.values(), key=lambda dr: -dr.days_ago)


def _row(
    rng: random.Random,
    site_key: str,
    analyte: str,
    collected_at: str,
    value: str,
    spec: UnitSpec,
    result_id: str,
) -> dict[str, str]:
    site = SITES[site_key]
    loinc = ""
    if site.loinc and rng.random() < site.loinc_share:
        loinc = site.loinc[analyte] if spec.loinc is None else spec.loinc
    ref = site.reference.get(analyte, ("", ""))
    return {
        "patient_id": "",
        "collected_at": collected_at,
        "loinc": loinc,
        "test_name": rng.choice(list(site.names[analyte])),
        "value": value,
        "unit": spec.unit,
        "reference_low": ref[0],
        "reference_high": ref[1],
        "result_id": result_id,
    }


def _pick_unit(rng: random.Random, site_key: str, analyte: str) -> UnitSpec:
    specs = SITES[site_key].units[analyte]
    return rng.choices(list(specs), weights=[s.weight for s in specs])[0]


def _background_rows(
    rng: random.Random, p: Patient, as_of: date, ids: _Ids
) -> tuple[list[LabRow], list[CleanResult]]:
    rows: list[LabRow] = []
    results: list[CleanResult] = []
    for dr in _plan_draws(rng, p, as_of):
        wbc: float | None = None
        for analyte in dr.analytes:
            spec = _pick_unit(rng, dr.site, analyte)
            value = _value(rng, p, analyte, wbc)
            value = _away_from_cuts(value, analyte, spec)
            if analyte == "wbc":
                wbc = value
            rid = ids.take(dr.site) if rng.random() < SITES[dr.site].result_id_share else ""
            values = _row(
                rng, dr.site, analyte, dr.collected_at, _render(value, spec, rng), spec, rid
            )
            values["patient_id"] = p.patient_id
            rows.append(LabRow(dr.site, dr.days_ago > 365, values))
            results.append(
                CleanResult(p.patient_id, analyte, value, as_of - timedelta(days=dr.days_ago))
            )
    return rows, results


# ---------------------------------------------------------------------------------------------
# Planted rows
# ---------------------------------------------------------------------------------------------
def _planted_rows(as_of: date) -> list[LabRow]:
    rows: list[LabRow] = []
    counter = 0
    for pp in PLANTED:
        site = SITES[pp.site]
        for pr in pp.rows:
            counter += 1
            day = as_of - timedelta(days=pr.days_ago)
            when = day.isoformat() if pr.time is None or pp.site == "S" else f"{day}T{pr.time}"
            loinc = pr.loinc
            if loinc is _SITE_DEFAULT:
                loinc = site.loinc.get(pr.analyte, "") if pp.site == "N" else ""
                if pr.analyte == "b12" and pr.unit == "pmol/L" and pp.site != "S":
                    loinc = "14685-2"
            name = pr.test_name
            if name is _SITE_DEFAULT:
                name = site.names[pr.analyte][0]
            rid = pr.result_id
            if rid is _SITE_DEFAULT:
                rid = f"{pp.site}-P{counter:05d}"
            values = {
                "patient_id": pp.patient_id,
                "collected_at": when,
                "loinc": str(loinc),
                "test_name": str(name),
                "value": pr.value,
                "unit": pr.unit,
                "reference_low": "",
                "reference_high": "",
                "result_id": str(rid),
            }
            rows.append(LabRow(pp.site, pr.days_ago > 365, values, pr.messy))
    return rows


def _planted_patient_rows(as_of: date) -> list[dict[str, str]]:
    out = []
    for pp in PLANTED:
        birth = date(as_of.year - pp.age, as_of.month, min(as_of.day, 28)) - timedelta(days=40)
        site = SITES[pp.site].name
        out.append(
            {
                "patient_id": pp.patient_id,
                "sex": pp.sex,
                "birth_date": birth.isoformat(),
                "site": site,
            }
        )
    return out


# ---------------------------------------------------------------------------------------------
# Messy rows: extra rows that must all be quarantined
# ---------------------------------------------------------------------------------------------
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
    ]


# ---------------------------------------------------------------------------------------------
# Medications and diagnoses (valid rows; not screened by the lab criteria)
# ---------------------------------------------------------------------------------------------
_MEDS = {
    "metformin": (
        ("Metformin 500 mg tablet", "Metformin ER 1000 mg tablet"),
        "6809",
        "A10BA02",
        "oral",
    ),
    "omeprazole": (
        ("Omeprazole 20 mg capsule", "omeprazole 40mg gastro-resistant caps"),
        "7646",
        "A02BC01",
        "oral",
    ),
    "folic_acid": (
        ("Folic acid 5 mg tablet", "FOLIC ACID 400 microgram tablets"),
        "",
        "B03BB01",
        "oral",
    ),
    "cyano_oral": (("Cyanocobalamin 1000 mcg tablet",), "", "B03BA01", "oral"),
    "cyano_im": (("Cyanocobalamin 1000 mcg/mL injection",), "", "B03BA01", "IM"),
}
_DIAGNOSES = {
    "E11.9": "Type 2 diabetes mellitus without complications",
    "K21.9": "Gastro-esophageal reflux disease without esophagitis",
    "K50.90": "Crohn's disease, unspecified, without complications",
    "D51.0": "Vitamin B12 deficiency anemia due to intrinsic factor deficiency",
    "E06.3": "Autoimmune thyroiditis",
    "I10": "Essential (primary) hypertension",
}


def _med_row(rng: random.Random, pid: str, drug: str, as_of: date) -> dict[str, str]:
    names, rxnorm, atc, route = _MEDS[drug]
    start = as_of - timedelta(days=rng.randint(10, 3000))
    end = ""
    if rng.random() < 0.25:
        end = min(start + timedelta(days=rng.randint(30, 800)), as_of).isoformat()
    return {
        "patient_id": pid,
        "medication": rng.choice(list(names)),
        "rxnorm": rxnorm if rng.random() < 0.7 else "",
        "atc": atc,
        "start_date": start.isoformat(),
        "end_date": end,
        "route": route,
    }


def _dx_row(rng: random.Random, pid: str, code: str, as_of: date) -> dict[str, str]:
    written = code if rng.random() < 0.6 else code.replace(".", "")
    recorded = as_of - timedelta(days=rng.randint(30, 5000))
    return {
        "patient_id": pid,
        "code": written,
        "recorded_at": recorded.isoformat(),
        "description": _DIAGNOSES[code],
    }


def _meds_and_diagnoses(
    rng: random.Random, patients: Sequence[Patient], as_of: date
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    meds: list[dict[str, str]] = []
    dxs: list[dict[str, str]] = []
    for p in patients:
        pid = p.patient_id
        if rng.random() < 0.13:
            dxs.append(_dx_row(rng, pid, "E11.9", as_of))
            if rng.random() < 0.85:
                meds.append(_med_row(rng, pid, "metformin", as_of))
        if rng.random() < 0.15:
            dxs.append(_dx_row(rng, pid, "K21.9", as_of))
            if rng.random() < 0.8:
                meds.append(_med_row(rng, pid, "omeprazole", as_of))
        for code, share in (("K50.90", 0.005), ("E06.3", 0.03), ("I10", 0.25)):
            if rng.random() < share:
                dxs.append(_dx_row(rng, pid, code, as_of))
        if p.b12_state == "deficient" and rng.random() < 0.25:
            dxs.append(_dx_row(rng, pid, "D51.0", as_of))
            meds.append(_med_row(rng, pid, "cyano_im", as_of))
        if rng.random() < 0.03:
            meds.append(_med_row(rng, pid, "folic_acid", as_of))
        if rng.random() < 0.03:
            meds.append(_med_row(rng, pid, "cyano_oral", as_of))
    return meds, dxs


# ---------------------------------------------------------------------------------------------
# Writers (deterministic bytes)
# ---------------------------------------------------------------------------------------------
def _csv_bytes(
    header: Sequence[str], rows: Iterable[Mapping[str, str]], keys: Sequence[str]
) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([row[k] for k in keys])
    return buf.getvalue().encode("utf-8")


def _write_csv(
    path: Path, header: Sequence[str], rows: Iterable[Mapping[str, str]], keys: Sequence[str]
) -> None:
    path.write_bytes(_csv_bytes(header, rows, keys))


def _write_csv_gz(
    path: Path, header: Sequence[str], rows: Iterable[Mapping[str, str]], keys: Sequence[str]
) -> None:
    raw = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        gz.write(_csv_bytes(header, rows, keys))
    path.write_bytes(raw.getvalue())


def _write_parquet(path: Path, rows: Sequence[Mapping[str, str]], keys: Sequence[str]) -> None:
    frame = pl.DataFrame(
        {k: [r[k] for r in rows] for k in keys}, schema={k: pl.String for k in keys}
    )
    frame.write_parquet(path, compression="zstd", statistics=False)


def _write_labs(out_dir: Path, rows: Sequence[LabRow]) -> None:
    by_file: dict[str, list[dict[str, str]]] = defaultdict(list)
    for r in rows:
        by_file[r.file].append(r.values)
    north, archive = by_file["labs_site_north.csv"], by_file["labs_site_north_archive.csv"]
    south, east = by_file["labs_site_south.csv.gz"], by_file["labs_site_east.parquet"]
    _write_csv(out_dir / "labs_site_north.csv", LAB_COLUMNS, north, LAB_COLUMNS)
    _write_csv(out_dir / "labs_site_north_archive.csv", LAB_COLUMNS, archive, LAB_COLUMNS)
    south_keys = ("patient_id", "collected_at", "test_name", "value", "unit", "result_id")
    south_header = [k.upper() for k in south_keys] + ["ORDERING_CLINIC"]
    south_rows = [{**r, "clinic": "Southside Family Practice"} for r in south]
    _write_csv_gz(
        out_dir / "labs_site_south.csv.gz", south_header, south_rows, (*south_keys, "clinic")
    )
    east_keys = ("patient_id", "collected_at", "loinc", "test_name", "value", "unit", "result_id")
    _write_parquet(out_dir / "labs_site_east.parquet", east, east_keys)


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------
def generate_population(
    out_dir: Path,
    *,
    n_patients: int = 3000,
    as_of: date = DEFAULT_AS_OF,
    seed: int = 12,
    truth_dir: Path | None = None,
) -> DemoTruth:
    """Write a synthetic extracts folder to ``out_dir`` and its answer key to ``truth_dir``.

    ``n_patients`` counts the patients written (planted ones included; the few broken patient
    rows come on top). ``truth_dir`` defaults to ``out_dir.parent / "truth"`` and must not be
    inside ``out_dir``, since the pipeline reads every ``labs*``/``patients*`` file there.
    """
    out_dir = Path(out_dir)
    truth_dir = Path(truth_dir) if truth_dir is not None else out_dir.parent / "truth"
    if truth_dir.resolve() == out_dir.resolve() or out_dir.resolve() in truth_dir.resolve().parents:
        raise ValueError("truth_dir must not be inside the extracts folder")
    n_background = n_patients - len(PLANTED)
    if n_background < 100:
        raise ValueError(f"n_patients must be at least {len(PLANTED) + 100}")
    rng = random.Random(seed)

    patients = [_make_patient(rng, i, as_of) for i in range(1, n_background + 1)]
    lab_rows, results = _background_labs(rng, patients, as_of)
    planted = {pp.patient_id: set(pp.expected) for pp in PLANTED}
    expected = oracle_lab_flags({p.patient_id: p.sex for p in patients}, results, as_of)
    expected |= {(pid, c) for pid, crits in planted.items() for c in crits}
    lab_rows += _planted_rows(as_of)
    with_labs = {r.patient_id for r in results}
    lab_rows += _messy_lab_rows(
        rng, [p for p in patients if p.patient_id in with_labs], as_of, len(lab_rows)
    )
    rng.shuffle(lab_rows)

    patient_rows = [_patient_row(p) for p in patients] + _planted_patient_rows(as_of)
    broken_patients = _messy_patient_rows()
    patient_rows += [row for _, row in broken_patients]
    rng.shuffle(patient_rows)
    meds, dxs = _meds_and_diagnoses(rng, patients, as_of)
    _write_extracts(out_dir, patient_rows, lab_rows, meds, dxs)

    messy_by_reason = Counter(r.messy for r in lab_rows if r.messy)
    messy_by_reason.update(reason for reason, _ in broken_patients)
    messy_by_file = Counter(r.file for r in lab_rows if r.messy)
    messy_by_file["patients.csv"] = len(broken_patients)
    truth = DemoTruth(
        extracts_dir=out_dir,
        truth_dir=truth_dir,
        as_of=as_of,
        seed=seed,
        n_patients=n_patients,
        n_lab_rows=len(lab_rows),
        expected_flags=expected,
        planted=planted,
        messy_rows=messy_by_reason.total(),
        messy_by_reason=dict(sorted(messy_by_reason.items())),
        messy_by_file=dict(sorted(messy_by_file.items())),
        planted_purpose={pp.patient_id: pp.purpose for pp in PLANTED},
    )
    truth_dir.mkdir(parents=True, exist_ok=True)
    _write_truth(truth)
    log.info(
        "demo population: %d patients, %d lab rows (%d broken), %d expected lab flags",
        n_patients,
        len(lab_rows),
        truth.messy_rows,
        len(expected),
    )
    return truth


def _background_labs(
    rng: random.Random, patients: Sequence[Patient], as_of: date
) -> tuple[list[LabRow], list[CleanResult]]:
    ids = _Ids()
    lab_rows: list[LabRow] = []
    results: list[CleanResult] = []
    for p in patients:
        rows, res = _background_rows(rng, p, as_of, ids)
        lab_rows += rows
        results += res
    # a few results re-sent unchanged (same result_id): still one result each
    resent = [r for r in lab_rows if r.values["result_id"] and rng.random() < 0.003]
    lab_rows += [LabRow(r.site, r.archive, dict(r.values)) for r in resent]
    return lab_rows, results


def _patient_row(p: Patient) -> dict[str, str]:
    return {
        "patient_id": p.patient_id,
        "sex": p.sex,
        "birth_date": p.birth_date.isoformat(),
        "site": SITES[p.site].name,
    }


def _write_extracts(
    out_dir: Path,
    patient_rows: Sequence[Mapping[str, str]],
    lab_rows: Sequence[LabRow],
    meds: Sequence[Mapping[str, str]],
    dxs: Sequence[Mapping[str, str]],
) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    patient_keys = ("patient_id", "sex", "birth_date", "site")
    _write_csv(out_dir / "patients.csv", patient_keys, patient_rows, patient_keys)
    _write_labs(out_dir, lab_rows)
    med_keys = ("patient_id", "medication", "rxnorm", "atc", "start_date", "end_date", "route")
    _write_csv(out_dir / "medications.csv", med_keys, meds, med_keys)
    dx_keys = ("patient_id", "code", "recorded_at", "description")
    _write_csv(out_dir / "diagnoses.csv", dx_keys, dxs, dx_keys)


def _write_truth(truth: DemoTruth) -> None:
    order = {c: i for i, c in enumerate(LAB_CRITERIA)}
    flags = sorted(truth.expected_flags, key=lambda f: (f[0], order[f[1]]))
    _write_csv(
        truth.truth_dir / "expected_flags.csv",
        ("patient_id", "criterion"),
        ({"p": p, "c": c} for p, c in flags),
        ("p", "c"),
    )
    planted_rows = (
        {
            "p": pid,
            "c": ";".join(sorted(crits, key=order.__getitem__)),
            "w": truth.planted_purpose.get(pid, ""),
        }
        for pid, crits in sorted(truth.planted.items())
    )
    _write_csv(
        truth.truth_dir / "planted.csv",
        ("patient_id", "expected_criteria", "purpose"),
        planted_rows,
        ("p", "c", "w"),
    )
    _write_csv(
        truth.truth_dir / "messy.csv",
        ("reason", "rows"),
        ({"r": r, "n": str(n)} for r, n in truth.messy_by_reason.items()),
        ("r", "n"),
    )
