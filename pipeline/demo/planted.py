"""Planted patients (``PLANT-…``, table `PLANTED`): rows and expected criteria written by hand.

One or more per criterion; below / at / above every threshold in several units
(B12 ``179``/``180``/``181`` pg/mL, ``132``/``132.8``/``133`` pmol/L, Hgb ``12.9``/``13.0``
g/dL and ``129``/``130`` g/L for men …); censored ``<150`` and ``>2000`` B12; ties on
collected_at decided by result_id; results just inside and just outside the look-back;
a neutrophil-% row that is not an ANC; a local code that falls back to the test name; a
re-sent result; medication and diagnosis cases met and just not met for each of the nine
medication, diagnosis and safety criteria (metformin 121 vs 120 days, merged PPI + H2
blocker 366 vs 365 days, touching vs 1-day-gap refills, a 75th birthday today vs tomorrow,
eGFR 59 vs 60, a deficient result 8 vs 7 days old, a day-10 CBC 15 vs 14 days overdue…);
and ``PLANT-NOLABS-01``, who has no data and must never be flagged. Their expected
criteria are written by hand from the rule text, not computed (a test checks that the
oracle agrees where it can read the case).

The rows of each case go into the same extracts as the background's (`_planted_rows`,
`_planted_patient_rows`, `_planted_med_rows`, `_planted_dx_rows`); `planted_oracle_input`
reads a case as the oracle would, for the test that compares the two.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from pipeline.demo.oracle import CleanResult, Diagnosis, MedOrder, PatientInfo
from pipeline.demo.vocabulary import _DIAGNOSES, SITES
from pipeline.demo.writers import LabRow

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
class PlantedMed:
    groups: frozenset[str]  # the drug groups the row is meant to be (oracle cross-check only)
    medication: str
    start: int  # days before as-of; negative: after it
    end: int | None = None  # days before as-of; None: open-ended; negative: after as-of
    rxnorm: str = ""
    atc: str = ""
    route: str = "oral"
    messy: str | None = None


@dataclass(frozen=True)
class PlantedDx:
    code: str
    days_ago: int = 400
    description: str = ""
    messy: str | None = None


@dataclass(frozen=True)
class PlantedPatient:
    patient_id: str
    sex: str
    age: int
    site: str  # N, S or E
    expected: frozenset[str]
    purpose: str
    rows: tuple[PlantedRow, ...]
    meds: tuple[PlantedMed, ...] = ()
    dxs: tuple[PlantedDx, ...] = ()
    birthday_shift: int = -40  # days from the as-of day `age` years back to the birth date
    probes: frozenset[str] = frozenset()  # criteria whose boundary this case sits on
    died: int | None = None  # days before the as-of day the patient died (None: alive)


def death_date_of(pp: PlantedPatient, as_of: date) -> date | None:
    return None if pp.died is None else as_of - timedelta(days=pp.died)


def birth_date_of(pp: PlantedPatient, as_of: date) -> date:
    return _years_before(as_of, pp.age) + timedelta(days=pp.birthday_shift)


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


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
    pid: str,
    sex: str,
    age: int,
    site: str,
    expected: str,
    purpose: str,
    rows: list[PlantedRow],
    meds: Sequence[PlantedMed] = (),
    dxs: Sequence[PlantedDx] = (),
    birthday_shift: int = -40,
    probes: str = "",
    died: int | None = None,
) -> PlantedPatient:
    return PlantedPatient(
        f"PLANT-{pid}",
        sex,
        age,
        site,
        frozenset(expected.split()),
        purpose,
        tuple(rows),
        tuple(meds),
        tuple(dxs),
        birthday_shift,
        frozenset(probes.split()),
        died,
    )


def _m(groups: str, medication: str, start: int, end: int | None = None, **kw: str) -> PlantedMed:
    """A planted order: ``groups`` space-separated ('' for a drug on no list)."""
    return PlantedMed(frozenset(groups.split()), medication, start, end, **kw)


def _dx(code: str, days_ago: int = 400, **kw: str) -> PlantedDx:
    return PlantedDx(code, days_ago, _DIAGNOSES.get(code.replace(".", "").upper(), ""), **kw)


def _egfr(value: str, d: int = 30) -> PlantedRow:
    return _r("egfr", value, "mL/min/1.73m2", d)


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
_UNTREATED = " deficiency_untreated"  # a deficient result more than 7 days old, no B12 therapy
_DEF_ANEM_THROMBO = "b12_deficient anemia thrombocytopenia deficiency_with_cytopenia"

# fmt: off
PLANTED: tuple[PlantedPatient, ...] = (
    # -- one clear case per criterion --------------------------------------------------------
    _p("B12DEF-01", "F", 70, "N", "b12_deficient deficiency_untreated", "B12 150 pg/mL, 30 days old, untreated",
       [_r("b12", "150", "pg/mL", 30)]),
    _p("B12IND-01", "M", 66, "N", "b12_indeterminate", "B12 250 pg/mL, no MMA",
       [_r("b12", "250", "pg/mL", 40)]),
    _p("MMA-01", "F", 58, "N", "mma_elevated deficiency_untreated",
       "MMA 450 nmol/L, B12 420 (normal), 20 days old, untreated",
       [_r("b12", "420", "pg/mL", 20), _r("mma", "450", "nmol/L", 20)]),
    _p("HCY-01", "M", 72, "N", "homocysteine_elevated", "homocysteine 15.2 umol/L",
       [_r("homocysteine", "15.2", "umol/L", 25)]),
    _p("FOLATE-01", "F", 45, "N", "folate_low", "folate 2.9 ng/mL, B12 normal",
       [_r("folate", "2.9", "ng/mL", 25), _r("b12", "510", "pg/mL", 25)]),
    _p("ANEMIA-01", "F", 81, "N", "anemia cytopenia_b12_untested b12_screening_due",
       "Hgb 10.8 (F), no B12 ever; 81 years old",
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
    _p("DEFCYTO-01", "F", 79, "N",
       "b12_deficient anemia deficiency_with_cytopenia deficiency_untreated",
       "B12 140 and Hgb 10.2, 15 days old, untreated (79, but tested: not screening_due)",
       [_r("b12", "140", "pg/mL", 15), *_cbc("N", 15, hgb="10.2")]),
    _p("DEFCYTO-02", "M", 63, "E",
       "mma_elevated neutropenia deficiency_with_cytopenia deficiency_untreated",
       "MMA 0.520 umol/L with B12 260 ng/L at the same collected_at (so not indeterminate);"
       " 8 days old, untreated",
       [_r("mma", "0.520", "µmol/L", 8), _r("b12", "260", "ng/L", 8),
        *_cbc("E", 8, anc="1.10", wbc="4.5")]),
    _p("UNTESTED-01", "F", 50, "S", "macrocytosis cytopenia_b12_untested", "MCV 105, no B12",
       _cbc("S", 20, mcv="105", hgb="128")),
    _p("UNTESTED-02", "F", 83, "N", "anemia cytopenia_b12_untested b12_screening_due",
       "Hgb 10.5; the only B12 (150) is 400 days old; 83 years old",
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
    _ptma("LDH-250", "N", _DEF_ANEM_THROMBO + _UNTREATED, "LDH 250 U/L is not above 250",
          _r("ldh", "250", "U/L", 10), ("130", "pg/mL"), {"hgb": "8.5", "platelets": "70"}),
    _ptma("LDH-251", "N", _PTMA + _UNTREATED, "LDH 251 U/L",
          _r("ldh", "251", "U/L", 10), ("130", "pg/mL"), {"hgb": "8.5", "platelets": "70"}),
    _ptma("LDH-249IU", "S", _DEF_ANEM_THROMBO + _UNTREATED, "LDH 249 IU/L; B12 90 pmol/L (122 pg/mL)",
          _r("ldh", "249", "IU/L", 10), ("90", "pmol/L"), {"hgb": "85", "platelets": "70"}),
    _ptma("LDH-UKAT-4.16", "E", _DEF_ANEM_THROMBO + _UNTREATED, "LDH 4.16 ukat/L = 249.6 U/L",
          _r("ldh", "4.16", "µkat/L", 10), ("120", "ng/L"),
          {"hgb": "8.5", "platelets": ("70", "K/uL")}),
    _ptma("LDH-OLD", "N", _DEF_ANEM_THROMBO + _UNTREATED, "LDH 900 U/L, but 120 days old (look-back 90)",
          _r("ldh", "900", "U/L", 120), ("130", "pg/mL"), {"hgb": "8.5", "platelets": "70"}),
    # -- B12 limits (180 below, 180..350 inclusive), several units ----------------------------
    _b12_case("B12-179PG", "N", "179", "pg/mL", "b12_deficient" + _UNTREATED),
    _b12_case("B12-180PG", "N", "180.0", "pg/mL", "b12_indeterminate"),
    _b12_case("B12-181PG", "N", "181", "pg/mL", "b12_indeterminate"),
    _b12_case("B12-132PMOL", "S", "132", "pmol/L", "b12_deficient" + _UNTREATED),  # 178.911 pg/mL
    _b12_case("B12-132.8PMOL", "S", "132.8", "pmol/L", "b12_deficient" + _UNTREATED),  # 179.996 pg/mL
    _b12_case("B12-133PMOL", "S", "133", "pmol/L", "b12_indeterminate"),  # 180.267 pg/mL
    _b12_case("B12-134PMOL", "S", "134", "pmol/L", "b12_indeterminate"),  # 181.622 pg/mL
    _b12_case("B12-131PMOL-E", "E", "131", "pmol/L", "b12_deficient" + _UNTREATED),  # 177.556 pg/mL
    _b12_case("B12-179NGL", "E", "179", "ng/L", "b12_deficient" + _UNTREATED),
    _b12_case("B12-180NGL", "E", "180", "ng/L", "b12_indeterminate"),
    _b12_case("B12-350PG", "N", "350", "pg/mL", "b12_indeterminate"),
    _b12_case("B12-351PG", "N", "351", "pg/mL", ""),
    _b12_case("B12-258PMOL", "S", "258", "pmol/L", "b12_indeterminate"),  # 349.691 pg/mL
    _b12_case("B12-259PMOL", "S", "259", "pmol/L", ""),  # 351.046 pg/mL
    # -- censored B12 ---------------------------------------------------------------------------
    _b12_case("B12-CENS-LT150", "N", "<150", "pg/mL", "b12_deficient" + _UNTREATED),
    _b12_case("B12-CENS-GT2000", "N", ">2000", "pg/mL", ""),
    _b12_case("B12-CENS-LT111PMOL", "S", "<111", "pmol/L", "b12_deficient" + _UNTREATED),  # <150.448 pg/mL
    _b12_case("B12-CENS-GT1476PMOL", "S", ">1476", "pmol/L", ""),  # >2000.556 pg/mL
    # -- ties on collected_at: higher result_id first, missing last, then the lower value ------
    _p("TIE-01", "F", 70, "N", "", "same time: id N-T0002 (400) beats N-T0001 (150)",
       [_r("b12", "150", "pg/mL", 30, result_id="N-T0001"),
        _r("b12", "400", "pg/mL", 30, result_id="N-T0002")]),
    _p("TIE-02", "F", 70, "N", "b12_deficient deficiency_untreated", "same time: id N-T0004 (150) beats N-T0003 (400)",
       [_r("b12", "400", "pg/mL", 30, result_id="N-T0003"),
        _r("b12", "150", "pg/mL", 30, result_id="N-T0004")]),
    _p("TIE-03", "M", 70, "N", "", "same time: the row with an id (400) beats one without (150)",
       [_r("b12", "150", "pg/mL", 30, result_id=""),
        _r("b12", "400", "pg/mL", 30, result_id="N-T0005")]),
    _p("TIE-04", "M", 70, "S", "b12_deficient deficiency_untreated", "same day, no ids: the lower value wins (100 pmol/L)",
       [_r("b12", "300", "pmol/L", 30, result_id=""),
        _r("b12", "100", "pmol/L", 30, result_id="")]),
    # -- latest result and look-back edges ---------------------------------------------------------
    _p("LOOKBACK-OLD", "F", 77, "N", "b12_screening_due",
       "low B12 366 days ago, low Hgb 91 days ago: both too old (and 77: screening due)",
       [_r("b12", "120", "pg/mL", 366), *_cbc("N", 91, hgb="9.0")]),
    _p("LOOKBACK-EDGE", "F", 77, "N",
       "b12_deficient anemia deficiency_with_cytopenia deficiency_untreated",
       "low B12 exactly 365 days and low Hgb exactly 90 days before as-of: both count, and the"
       " B12 also counts as a test for screening (77 years old, not due)",
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
    _single("MMA-272", "N", "mma", "272", "nmol/L", "mma_elevated" + _UNTREATED),
    _single("MMA-270S", "S", "mma", "270", "nmol/L", ""),
    _single("MMA-0.271UM", "E", "mma", "0.271", "µmol/L", ""),
    _single("MMA-0.272UM", "E", "mma", "0.272", "µmol/L", "mma_elevated" + _UNTREATED),
    _single("MMA-0.300NMOLML", "E", "mma", "0.300", "nmol/mL", "mma_elevated" + _UNTREATED),
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
    _p("NAMECASE-01", "M", 58, "S", "b12_deficient deficiency_untreated", "test name '  vitamin B12 ' (case, spaces)",
       [_r("b12", "100", "pmol/L", 30, test_name="  vitamin B12 ")]),
    _p("RESEND-01", "M", 58, "S", "b12_deficient deficiency_untreated", "one result (id S-R0001) sent twice",
       [_r("b12", "100", "pmol/L", 30, result_id="S-R0001"),
        _r("b12", "100", "pmol/L", 30, result_id="S-R0001")]),
    # == medication, diagnosis and safety criteria ================================================
    # -- metformin_long_term: exposure days (both ends counted) > 120, current or stopped <= 365 --
    _p("MET-121", "M", 60, "N", "metformin_long_term b12_screening_due",
       "metformin open-ended from 120 days ago: 121 days; no B12",
       [], [_m("metformin", "MetFORMIN (Glucophage) 500 mg", 120)], [_dx("E11.9")],
       probes="metformin_long_term b12_screening_due"),
    _p("MET-120", "M", 60, "N", "", "metformin open-ended from 119 days ago: 120 days; no B12",
       [], [_m("metformin", "MetFORMIN (Glucophage) 500 mg", 119)], [_dx("E11.9")],
       probes="metformin_long_term b12_screening_due"),
    _p("MET-REFILLS-121", "F", 66, "N", "metformin_long_term",
       "overlapping refills 200..171, 175..146, 150..80 days ago: 121 days once merged (sum 131)",
       [_b12ok("N", 30)],
       [_m("metformin", "metformin 500 MG Oral Tablet", 200, 171, rxnorm="6809"),
        _m("metformin", "metformin 500 MG Oral Tablet", 175, 146, rxnorm="6809"),
        _m("metformin", "metformin 500 MG Oral Tablet", 150, 80, rxnorm="6809")],
       probes="metformin_long_term"),
    _p("MET-REFILLS-120", "F", 66, "N", "",
       "overlapping refills 200..171, 175..146, 150..81 days ago: 120 days once merged (sum 130)",
       [_b12ok("N", 30)],
       [_m("metformin", "metformin 500 MG Oral Tablet", 200, 171, rxnorm="6809"),
        _m("metformin", "metformin 500 MG Oral Tablet", 175, 146, rxnorm="6809"),
        _m("metformin", "metformin 500 MG Oral Tablet", 150, 81, rxnorm="6809")],
       probes="metformin_long_term"),
    _p("MET-STOPPED-365", "M", 70, "N", "metformin_long_term b12_screening_due",
       "metformin 1000..365 days ago: stopped exactly 365 days ago still counts; no B12",
       [], [_m("metformin", "Metformin HCl ER 750 mg 24 hr tablet", 1000, 365, atc="A10BA02")],
       probes="metformin_long_term b12_screening_due"),
    _p("MET-STOPPED-366", "M", 70, "N", "",
       "metformin 1000..366 days ago: stopped 366 days ago; no B12",
       [], [_m("metformin", "Metformin HCl ER 750 mg 24 hr tablet", 1000, 366, atc="A10BA02")],
       probes="metformin_long_term b12_screening_due"),
    _p("MET-RXNORM-ONLY", "F", 58, "S", "metformin_long_term",
       "an order with only RxNorm 6809 (no name, no ATC), open-ended from 400 days ago",
       [_b12ok("S", 60)], [_m("metformin", "", 400, rxnorm="6809")]),
    _p("MET-ATC-ONLY", "F", 58, "E", "metformin_long_term",
       "an order with only ATC 'a10ba02' (lower case), open-ended from 400 days ago",
       [_b12ok("E", 60)], [_m("metformin", "", 400, atc="a10ba02")]),
    _p("MET-COMBO-FUTURE-END", "M", 63, "N", "metformin_long_term",
       "Janumet (sitagliptin-metformin) from 200 days ago, planned to end 30 days after as-of",
       [_b12ok("N", 60)], [_m("metformin", "Janumet 50-1000 mg tablet", 200, -30)]),
    _p("MET-FUTURE-START", "M", 63, "N", "",
       "metformin from 100 days ago (101 days); a second order starting 5 days after as-of is "
       "quarantined", [_b12ok("N", 60)],
       [_m("metformin", "metformin 500 MG Oral Tablet", 100),
        _m("metformin", "metformin 500 MG Oral Tablet", -5, messy="future_start")],
       probes="metformin_long_term"),
    # -- acid_suppression_long_term: PPI and H2 blocker periods merged, > 365 days -----------------
    _p("ACID-366", "F", 70, "N", "acid_suppression_long_term",
       "pantoprazole 500..300 days ago, then famotidine 299..135 (touching): one 366-day episode",
       [_b12ok("N", 100)],
       [_m("ppi", "Pantoprazole 40mg EC tab", 500, 300),
        _m("h2_blocker", "Famotidine 20 mg tablet", 299, 135)],
       probes="acid_suppression_long_term"),
    _p("ACID-365", "F", 70, "N", "",
       "pantoprazole 500..300 days ago, then famotidine 299..136: 365 days",
       [_b12ok("N", 100)],
       [_m("ppi", "Pantoprazole 40mg EC tab", 500, 300),
        _m("h2_blocker", "Famotidine 20 mg tablet", 299, 136)],
       probes="acid_suppression_long_term"),
    _p("ACID-OVERLAP-356", "M", 71, "N", "",
       "omeprazole 360..100 days ago and famotidine 250..5 overlapping: 356 days (sum 507)",
       [_b12ok("N", 100)],
       [_m("ppi", "Omeprazole 20 MG Delayed Release Oral Capsule", 360, 100),
        _m("h2_blocker", "Pepcid 20 mg", 250, 5)],
       probes="acid_suppression_long_term"),
    _p("ACID-DUE", "F", 62, "N", "acid_suppression_long_term b12_screening_due",
       "esomeprazole open-ended from 1100 days ago; no B12",
       [], [_m("ppi", "esomeprazole magnesium 40 mg capsule,delayed release", 1100)],
       [_dx("K21.9", 1200)], probes="b12_screening_due"),
    _p("ACID-STOPPED-OLD", "F", 62, "N", "",
       "omeprazole 2000..400 days ago: long, but stopped more than 365 days ago; no B12",
       [], [_m("ppi", "PriLOSEC 20 mg capsule", 2000, 400)],
       probes="acid_suppression_long_term b12_screening_due"),
    _p("ACID-VONOPRAZAN", "M", 66, "N", "",
       "vonoprazan (A02BC08: a potassium-competitive blocker, not a PPI) for 600 days; no B12",
       [], [_m("", "Vonoprazan (Voquezna) 20 mg tablet", 600, atc="A02BC08")],
       probes="acid_suppression_long_term"),
    # -- b12_lowering_drug: a current colchicine, phenobarbital or pregabalin order ----------------
    _p("LOWER-PREGABALIN", "F", 55, "N", "b12_lowering_drug b12_screening_due",
       "pregabalin open-ended from 60 days ago; no B12",
       [], [_m("pregabalin", "Pregabalin 75 mg capsule", 60)], [_dx("G62.9", 100)],
       probes="b12_lowering_drug b12_screening_due"),
    _p("LOWER-PREGABALIN-ENDED", "F", 55, "N", "",
       "pregabalin 200..1 days ago: ended the day before as-of; no B12",
       [], [_m("pregabalin", "Lyrica 75 MG Oral Capsule", 200, 1)],
       probes="b12_lowering_drug b12_screening_due"),
    _p("LOWER-COLCHICINE-TODAY", "M", 68, "N", "b12_lowering_drug",
       "colchicine from 30 days ago, end_date on the as-of day: current",
       [_b12ok("N", 40)], [_m("colchicine", "Colcrys 0.6 MG Oral Tablet", 30, 0)],
       [_dx("M10.9", 300)], probes="b12_lowering_drug"),
    _p("LOWER-PHENO-ATC", "M", 45, "S", "b12_lowering_drug",
       "phenobarbital by ATC N03AA02 only, open-ended", [_b12ok("S", 40)],
       [_m("phenobarbital", "", 900, atc="N03AA02")], [_dx("G40.909", 2000)]),
    _p("LOWER-PREGABALIN-OLDATC", "F", 52, "E", "b12_lowering_drug",
       "pregabalin by its 2021 ATC N03AX16 only, started on the as-of day", [_b12ok("E", 40)],
       [_m("pregabalin", "", 0, atc="N03AX16")], probes="b12_lowering_drug"),
    _p("LOWER-NOT-LISTED", "F", 48, "N", "",
       "current topiramate, primidone and gabapentin: not on the guidance list; no B12",
       [], [_m("topiramate", "Topiramate 25 mg tablet", 300),
            _m("primidone", "Primidone 50 mg tablet", 300),
            _m("", "Gabapentin 300 mg capsule", 300, rxnorm="25480", atc="N02BF01")],
       [_dx("G40.909", 2000)], probes="b12_lowering_drug b12_screening_due"),
    # -- risk_condition: a listed code or any code below it, recorded on or before as-of ----------
    _p("RISK-M35.00", "F", 52, "N", "risk_condition b12_screening_due",
       "Sjogren M35.00, a child of the listed M35.0; no B12", [], dxs=[_dx("M35.00", 500)],
       probes="risk_condition b12_screening_due"),
    _p("RISK-K900", "F", 34, "S", "risk_condition", "celiac disease written K900 (no dot)",
       [_b12ok("S", 100)], dxs=[_dx("K900", 800)], probes="risk_condition"),
    _p("RISK-LOWERCASE", "F", 47, "N", "risk_condition",
       "bariatric surgery written 'z98.84' (lower case)", [_b12ok("N", 100)],
       dxs=[_dx("z98.84", 800)]),
    _p("RISK-K29.40", "M", 70, "N", "risk_condition", "atrophic gastritis K29.40 (below K29.4)",
       [_b12ok("N", 100)], dxs=[_dx("K29.40", 300)]),
    _p("RISK-Q90.9", "M", 38, "E", "risk_condition", "Down syndrome Q90.9",
       [_b12ok("E", 100)], dxs=[_dx("Q90.9", 3000)]),
    _p("RISK-Z90.49-TODAY", "F", 61, "N", "risk_condition",
       "ileal resection Z90.49 recorded on the as-of day", [_b12ok("N", 100)],
       dxs=[_dx("Z90.49", 0)], probes="risk_condition"),
    _p("RISK-NEAR-MISS", "M", 60, "N", "",
       "D51 (the category above D51.0), D51.9, E53.8, M35.1, K29.70, K90.9, Z98.0, K51.90, N18.2, "
       "E11.9: none is a risk condition; no B12", [],
       dxs=[_dx(c, 300) for c in ("D51", "D51.9", "E53.8", "M35.1", "K29.70", "K90.9", "Z98.0",
                                  "K51.90", "N18.2", "E11.9")],
       probes="risk_condition b12_screening_due"),
    _p("RISK-FUTURE", "F", 50, "N", "",
       "Crohn's K50.90 recorded 5 days after as-of: quarantined, so no risk; no B12", [],
       dxs=[_dx("K50.90", -5, messy="future_date")], probes="risk_condition"),
    # -- b12_screening_due: at risk and no B12/MMA dated in [as_of - 365, as_of] -----------------
    _p("SCREEN-AGE75", "F", 75, "N", "b12_screening_due", "75th birthday on the as-of day; no labs",
       [], birthday_shift=0, probes="b12_screening_due"),
    _p("SCREEN-AGE74", "F", 75, "N", "", "75th birthday the day after as-of (74); no labs",
       [], birthday_shift=1, probes="b12_screening_due"),
    _p("SCREEN-B12-364", "M", 80, "N", "", "80, normal B12 364 days ago",
       [_b12ok("N", 364)], probes="b12_screening_due"),
    _p("SCREEN-B12-365", "M", 80, "N", "",
       "80, normal B12 exactly 365 days ago: still in the window, as in the B12 look-back",
       [_b12ok("N", 365)], probes="b12_screening_due"),
    _p("SCREEN-B12-366", "M", 80, "N", "b12_screening_due",
       "80, normal B12 366 days ago: outside the window",
       [_b12ok("N", 366)], probes="b12_screening_due"),
    _p("SCREEN-MMA-ONLY", "F", 78, "N", "", "78, no B12 but a normal MMA 100 days ago",
       [_r("mma", "180", "nmol/L", 100)], probes="b12_screening_due"),
    _p("SCREEN-B12-PENDING", "F", 78, "N", "b12_screening_due",
       "78, the only B12 of the year is 'pending' (quarantined)",
       [_r("b12", "pending", "pg/mL", 30, messy="unparseable_value")],
       probes="b12_screening_due"),
    # -- folate_without_b12: deficient, folic acid current, no B12 therapy current or since -30 d --
    _p("FOLIC-NO-B12", "F", 68, "N", "b12_deficient folate_without_b12 deficiency_untreated",
       "B12 150 20 days ago; folic acid open-ended from 90 days ago; no B12 therapy",
       [_r("b12", "150", "pg/mL", 20)], [_m("folic_acid", "Folic Acid 1 MG Oral Tablet", 90)],
       probes="folate_without_b12 deficiency_untreated"),
    _p("FOLIC-HYDROXO", "F", 68, "N", "b12_deficient",
       "B12 150 20 days ago; folic acid current; IM hydroxocobalamin from 12 days ago",
       [_r("b12", "150", "pg/mL", 20)],
       [_m("folic_acid", "FOLIC ACID 5 mg tablets", 90),
        _m("hydroxocobalamin", "Hydroxocobalamin 1 mg/mL injection", 12, route="IM")],
       probes="folate_without_b12 deficiency_untreated"),
    _p("FOLIC-LONG-THERAPY", "F", 72, "N", "b12_deficient deficiency_untreated",
       "oral B12 and folic acid since 700 days ago; B12 150 and a CBC 20 days ago: therapy is "
       "current (no folate_without_b12) but none started since result - 30 (untreated); the "
       "day-365 visit (335 days ago) has its CBC and B12",
       [_r("b12", "150", "pg/mL", 20), *_cbc("N", 20)],
       [_m("cyanocobalamin", "Vitamin B-12 1000 mcg tablet", 700),
        _m("folic_acid", "folic acid 400 mcg tab", 700)],
       probes="folate_without_b12 deficiency_untreated monitoring_overdue"),
    _p("FOLIC-THERAPY-30", "M", 66, "N", "b12_deficient",
       "B12 150 40 days ago; folic acid current; IM cyanocobalamin 70..64 days ago, starting "
       "exactly 30 days before the result",
       [_r("b12", "150", "pg/mL", 40)],
       [_m("folic_acid", "Folic Acid 1 MG Oral Tablet", 200),
        _m("cyanocobalamin", "Cyanocobalamin 1000 MCG/ML Injectable Solution", 70, 64,
           rxnorm="309594", route="IM")],
       probes="folate_without_b12 deficiency_untreated"),
    _p("FOLIC-THERAPY-31", "M", 66, "N", "b12_deficient folate_without_b12 deficiency_untreated",
       "B12 150 40 days ago; folic acid current; IM cyanocobalamin 71..65 days ago, starting "
       "31 days before the result",
       [_r("b12", "150", "pg/mL", 40)],
       [_m("folic_acid", "Folic Acid 1 MG Oral Tablet", 200),
        _m("cyanocobalamin", "Cyanocobalamin 1000 MCG/ML Injectable Solution", 71, 65,
           rxnorm="309594", route="IM")],
       probes="folate_without_b12 deficiency_untreated"),
    _p("FOLIC-ENDED", "F", 70, "N", "b12_deficient deficiency_untreated",
       "B12 150 20 days ago; folic acid stopped 2 days ago", [_r("b12", "150", "pg/mL", 20)],
       [_m("folic_acid", "Folic Acid 1 MG Oral Tablet", 300, 2)], probes="folate_without_b12"),
    _p("FOLIC-MMA", "M", 69, "N", "mma_elevated folate_without_b12 deficiency_untreated",
       "MMA 450 with a normal B12 20 days ago; folic acid current, by ATC B03BB01 only",
       [_r("b12", "420", "pg/mL", 20), _r("mma", "450", "nmol/L", 20)],
       [_m("folic_acid", "", 150, atc="B03BB01")], probes="folate_without_b12"),
    _p("FOLIC-FOLBEE", "F", 74, "N", "b12_deficient",
       "B12 150 20 days ago; Folbee (folic acid, B6 and B12 in one tablet) from 18 days ago",
       [_r("b12", "150", "pg/mL", 20)],
       [_m("folic_acid cyanocobalamin",
           "Folic acid-vitamin B6-vitamin B12 (Folbee) 2.5-25-1 mg tablet", 18)],
       probes="folate_without_b12"),
    # -- cyanocobalamin_renal: cyanocobalamin current, latest eGFR < 60 or CKD 3-5 ---------------
    _p("RENAL-EGFR-59", "F", 70, "N", "cyanocobalamin_renal",
       "oral cyanocobalamin from 20 days ago; eGFR 59", [_egfr("59")],
       [_m("cyanocobalamin", "Cyanocobalamin 1000 mcg tablet", 20)], probes="cyanocobalamin_renal"),
    _p("RENAL-EGFR-60", "F", 70, "N", "", "oral cyanocobalamin from 20 days ago; eGFR 60",
       [_egfr("60")], [_m("cyanocobalamin", "Cyanocobalamin 1000 mcg tablet", 20)],
       probes="cyanocobalamin_renal"),
    _p("RENAL-N18.4", "M", 72, "N", "cyanocobalamin_renal",
       "IM cyanocobalamin from 20 days ago; CKD stage 4 written N184; eGFR 72", [_egfr("72")],
       [_m("cyanocobalamin", "cyanocobalamin 1,000 mcg/mL injection", 20, route="IM")],
       [_dx("N184", 600)], probes="cyanocobalamin_renal"),
    _p("RENAL-N18.30", "F", 73, "E", "cyanocobalamin_renal",
       "cyanocobalamin by RxNorm 11248 only, from 20 days ago; CKD N18.30; no eGFR", [],
       [_m("cyanocobalamin", "", 20, rxnorm="11248")], [_dx("N18.30", 600)]),
    _p("RENAL-N18.2", "F", 73, "N", "", "cyanocobalamin current; CKD stage 2 (N18.2); eGFR 75",
       [_egfr("75")], [_m("cyanocobalamin", "Cyanocobalamin 1000 mcg tablet", 20)],
       [_dx("N18.2", 600)], probes="cyanocobalamin_renal"),
    _p("RENAL-Z99.2", "F", 74, "N", "cyanocobalamin_renal",
       "oral cyanocobalamin from 20 days ago; on dialysis (Z99.2); eGFR 65", [_egfr("65")],
       [_m("cyanocobalamin", "Cyanocobalamin 1000 mcg tablet", 20)], [_dx("Z99.2", 600)],
       probes="cyanocobalamin_renal"),
    _p("RENAL-N18.9-NO-EGFR", "M", 69, "N", "cyanocobalamin_renal",
       "oral cyanocobalamin from 20 days ago; CKD of unspecified stage (N18.9), no eGFR", [],
       [_m("cyanocobalamin", "Cyanocobalamin 1000 mcg tablet", 20)], [_dx("N18.9", 600)],
       probes="cyanocobalamin_renal"),
    _p("RENAL-N18.9-EGFR-75", "M", 69, "N", "",
       "oral cyanocobalamin from 20 days ago; N18.9 with an eGFR of 75 that stages it",
       [_egfr("75")], [_m("cyanocobalamin", "Cyanocobalamin 1000 mcg tablet", 20)],
       [_dx("N18.9", 600)], probes="cyanocobalamin_renal"),
    _p("RENAL-HYDROXO", "M", 71, "N", "", "hydroxocobalamin (not cyanocobalamin) with eGFR 35",
       [_egfr("35")], [_m("hydroxocobalamin", "HYDROXOCOBALAMIN 1000MCG/ML INJ", 20, route="IM")],
       probes="cyanocobalamin_renal"),
    _p("RENAL-EGFR-LATEST", "F", 70, "N", "",
       "cyanocobalamin current; eGFR 45 200 days ago, then 65 30 days ago",
       [_egfr("45", 200), _egfr("65", 30)],
       [_m("cyanocobalamin", "Cyanocobalamin 1000 mcg tablet", 20)], probes="cyanocobalamin_renal"),
    _p("RENAL-EGFR-365", "F", 70, "N", "cyanocobalamin_renal",
       "cyanocobalamin current; eGFR 40 exactly 365 days ago (in the look-back)", [_egfr("40", 365)],
       [_m("cyanocobalamin", "Cyanocobalamin 1000 mcg tablet", 20)], probes="cyanocobalamin_renal"),
    _p("RENAL-EGFR-366", "F", 70, "N", "",
       "cyanocobalamin current; eGFR 40 366 days ago (outside the look-back)", [_egfr("40", 366)],
       [_m("cyanocobalamin", "Cyanocobalamin 1000 mcg tablet", 20)], probes="cyanocobalamin_renal"),
    _p("RENAL-CYANO-ENDED", "F", 70, "N", "", "cyanocobalamin 100..10 days ago with eGFR 40",
       [_egfr("40")], [_m("cyanocobalamin", "Cyanocobalamin 1000 mcg tablet", 100, 10)],
       probes="cyanocobalamin_renal"),
    # -- deficiency_untreated: deficient > 7 days ago, no B12 therapy started since result - 30 ---
    _p("UNTREATED-8D", "F", 64, "N", "b12_deficient deficiency_untreated",
       "B12 150 8 days ago, no B12 therapy", [_r("b12", "150", "pg/mL", 8)],
       probes="deficiency_untreated"),
    _p("UNTREATED-7D", "F", 64, "N", "b12_deficient", "B12 150 7 days ago, no B12 therapy",
       [_r("b12", "150", "pg/mL", 7)], probes="deficiency_untreated"),
    # each deficient result is judged on its own: an older one answered does not excuse a newer
    _p("UNTREATED-TWO-FLAGS", "M", 67, "N", "b12_deficient mma_elevated deficiency_untreated",
       "B12 150 40 days ago, MMA 450 10 days ago; IM cyanocobalamin 60..54 days ago answers the "
       "B12 (cut-off 70 days ago) but not the newer MMA (cut-off 40 days ago)",
       [_r("b12", "150", "pg/mL", 40), _r("mma", "450", "nmol/L", 10)],
       [_m("cyanocobalamin", "Cyanocobalamin 1000 MCG/ML Injectable Solution", 60, 54,
           route="IM")], probes="deficiency_untreated"),
    _p("UNTREATED-TWO-ANSWERED", "F", 67, "N", "b12_deficient mma_elevated",
       "B12 150 40 days ago, MMA 450 10 days ago; IM cyanocobalamin 38..30 days ago answers both "
       "(started after 70 and 40 days ago)",
       [_r("b12", "150", "pg/mL", 40), _r("mma", "450", "nmol/L", 10)],
       [_m("cyanocobalamin", "Cyanocobalamin 1000 MCG/ML Injectable Solution", 38, 30,
           route="IM")], probes="deficiency_untreated"),
    _p("UNTREATED-AFTER", "F", 64, "N", "b12_deficient",
       "B12 150 30 days ago; oral B12 25..5 days ago (ended)", [_r("b12", "150", "pg/mL", 30)],
       [_m("cyanocobalamin", "Vitamin B12 1000 MCG Oral Tablet", 25, 5)],
       probes="deficiency_untreated"),
    # -- monitoring_overdue: latest follow-up due > 14 days ago with no matching result since ---
    _p("MON-D10-15", "M", 60, "N", "monitoring_overdue",
       "IM cyanocobalamin from 25 days ago: the day-10 CBC fell due 15 days ago; no CBC", [],
       [_m("cyanocobalamin", "Cyanocobalamin 1000 MCG/ML Injectable Solution", 25,
           rxnorm="309594", route="IM")], probes="monitoring_overdue"),
    _p("MON-D10-14", "M", 60, "N", "",
       "IM cyanocobalamin from 24 days ago: the day-10 CBC fell due 14 days ago; no CBC", [],
       [_m("cyanocobalamin", "Cyanocobalamin 1000 MCG/ML Injectable Solution", 24,
           rxnorm="309594", route="IM")], probes="monitoring_overdue"),
    _p("MON-D10-PLT-ON-D", "F", 60, "N", "",
       "hydroxocobalamin from 28 days ago (day-10 CBC due 18 days ago); a platelet count on that "
       "day", [_r("platelets", "245", "10*9/L", 18)],
       [_m("hydroxocobalamin", "Hydroxocobalamin 1 mg/mL injection", 28, route="IM")],
       probes="monitoring_overdue"),
    _p("MON-D10-CBC-BEFORE-D", "F", 60, "N", "monitoring_overdue",
       "hydroxocobalamin from 28 days ago (day-10 CBC due 18 days ago); a CBC 19 days ago",
       _cbc("N", 19),
       [_m("hydroxocobalamin", "Hydroxocobalamin 1 mg/mL injection", 28, route="IM")],
       probes="monitoring_overdue"),
    _p("MON-D90-NO-B12", "M", 67, "N", "b12_deficient monitoring_overdue",
       "B12 150 125 days ago; hydroxocobalamin from 120 days ago; day-90 visit 30 days ago: a CBC "
       "25 days ago but no B12", [_r("b12", "150", "pg/mL", 125), *_cbc("N", 25)],
       [_m("hydroxocobalamin", "Hydroxocobalamin 1 mg/mL injection", 120, route="IM")],
       probes="monitoring_overdue"),
    _p("MON-D90-15", "F", 62, "N", "monitoring_overdue",
       "hydroxocobalamin from 105 days ago: the day-90 CBC and B12 fell due 15 days ago; both "
       "last done 40 days ago", [*_cbc("N", 40), _b12ok("N", 40)],
       [_m("hydroxocobalamin", "Hydroxocobalamin 1 mg/mL injection", 105, route="IM")],
       probes="monitoring_overdue"),
    _p("MON-D90-DONE", "M", 67, "N", "",
       "B12 150 125 days ago; hydroxocobalamin from 120 days ago; CBC and B12 (normal) 25 days ago",
       [_r("b12", "150", "pg/mL", 125), *_cbc("N", 25), _b12ok("N", 25)],
       [_m("hydroxocobalamin", "Hydroxocobalamin 1 mg/mL injection", 120, route="IM")],
       probes="monitoring_overdue"),
    _p("MON-YEARLY-DONE", "F", 70, "N", "",
       "oral B12 since 800 days ago: the day-730 visit fell due 70 days ago; CBC and B12 60 days ago",
       [*_cbc("N", 60), _b12ok("N", 60)],
       [_m("cyanocobalamin", "cyanocobalamin (vitamin B-12) 1,000 mcg tablet", 800)],
       probes="monitoring_overdue"),
    _p("MON-YEARLY-MISSING", "F", 70, "N", "monitoring_overdue",
       "oral B12 since 800 days ago: the day-730 visit fell due 70 days ago; CBC 60 days ago, B12 80",
       [*_cbc("N", 60), _b12ok("N", 80)],
       [_m("cyanocobalamin", "cyanocobalamin (vitamin B-12) 1,000 mcg tablet", 800)],
       probes="monitoring_overdue"),
    _p("MON-TOUCH", "M", 60, "N", "monitoring_overdue",
       "IM cyanocobalamin 200..41 days ago, then from 40 days ago (touching): one episode from 200 "
       "days ago, day-182 visit due 18 days ago; CBC and B12 40 days ago",
       [*_cbc("N", 40), _b12ok("N", 40)],
       [_m("cyanocobalamin", "Cyanocobalamin 1000 MCG/ML Injectable Solution", 200, 41, route="IM"),
        _m("cyanocobalamin", "Cyanocobalamin 1000 MCG/ML Injectable Solution", 40, route="IM")],
       probes="monitoring_overdue"),
    # a refill up to 30 days late (monitoring_overdue.refill_gap_days) continues the course
    _p("MON-GAP", "M", 60, "N", "monitoring_overdue",
       "IM cyanocobalamin 200..42 days ago, then from 40 days ago (one day without): the same "
       "course from 200 days ago, day-182 visit due 18 days ago; CBC and B12 40 days ago",
       [*_cbc("N", 40), _b12ok("N", 40)],
       [_m("cyanocobalamin", "Cyanocobalamin 1000 MCG/ML Injectable Solution", 200, 42, route="IM"),
        _m("cyanocobalamin", "Cyanocobalamin 1000 MCG/ML Injectable Solution", 40, route="IM")],
       probes="monitoring_overdue"),
    _p("MON-GAP-30", "M", 60, "N", "monitoring_overdue",
       "IM cyanocobalamin 200..71 days ago, then from 40 days ago (30 days without): one course, "
       "day-182 visit due 18 days ago; CBC and B12 40 days ago",
       [*_cbc("N", 40), _b12ok("N", 40)],
       [_m("cyanocobalamin", "Cyanocobalamin 1000 MCG/ML Injectable Solution", 200, 71, route="IM"),
        _m("cyanocobalamin", "Cyanocobalamin 1000 MCG/ML Injectable Solution", 40, route="IM")],
       probes="monitoring_overdue"),
    _p("MON-GAP-31", "M", 60, "N", "",
       "IM cyanocobalamin 200..72 days ago, then from 40 days ago (31 days without): a new course, "
       "day-30 CBC due 10 days ago; CBC and B12 40 days ago",
       [*_cbc("N", 40), _b12ok("N", 40)],
       [_m("cyanocobalamin", "Cyanocobalamin 1000 MCG/ML Injectable Solution", 200, 72, route="IM"),
        _m("cyanocobalamin", "Cyanocobalamin 1000 MCG/ML Injectable Solution", 40, route="IM")],
       probes="monitoring_overdue"),
    # a one-day injection record covers 92 days (settings.single_dose_cover_days)
    _p("MON-ONE-DOSE-60", "F", 66, "N", "monitoring_overdue",
       "one hydroxocobalamin injection recorded 60 days ago: on therapy; day-30 CBC due 30 days "
       "ago, none", [],
       [_m("hydroxocobalamin", "Hydroxocobalamin 1 mg/mL injection", 60, 60, route="IM")],
       probes="monitoring_overdue"),
    _p("MON-ONE-DOSE-92", "F", 66, "N", "",
       "one hydroxocobalamin injection recorded 92 days ago: its cover ended yesterday", [],
       [_m("hydroxocobalamin", "Hydroxocobalamin 1 mg/mL injection", 92, 92, route="IM")],
       probes="monitoring_overdue"),
    # -- b12_iv_route: current B12 therapy only by IV --------------------------------------------
    _p("IV-ONLY", "F", 70, "N", "b12_iv_route",
       "hydroxocobalamin IV from 5 days ago (the day-10 CBC is not due yet)", [],
       [_m("hydroxocobalamin", "Hydroxocobalamin 1 mg/mL injection", 5, route="IV")],
       probes="b12_iv_route"),
    _p("IV-INTRAVENOUS", "M", 64, "E", "b12_iv_route",
       "cyanocobalamin by RxNorm only, route 'Intravenous', from 8 days ago", [],
       [_m("cyanocobalamin", "", 8, rxnorm="11248", route="Intravenous")],
       probes="b12_iv_route"),
    _p("IV-AND-IM", "F", 70, "N", "",
       "hydroxocobalamin IV and IM orders both current, from 5 days ago", [],
       [_m("hydroxocobalamin", "Hydroxocobalamin 1 mg/mL injection", 5, route="IV"),
        _m("hydroxocobalamin", "Hydroxocobalamin 1 mg/mL injection", 5, route="IM")],
       probes="b12_iv_route"),
    _p("IV-ENDED", "F", 70, "N", "",
       "hydroxocobalamin IV 60..1 days ago: ended yesterday", [_r("b12", "420", "pg/mL", 3)],
       [_m("hydroxocobalamin", "Hydroxocobalamin 1 mg/mL injection", 60, 1, route="IV")],
       probes="b12_iv_route"),
    _p("IV-NO-ROUTE", "M", 70, "N", "",
       "hydroxocobalamin from 5 days ago with no route written: not taken as IV", [],
       [_m("hydroxocobalamin", "Hydroxocobalamin 1 mg/mL injection", 5, route="")],
       probes="b12_iv_route"),
    # -- severe_cytopenia: platelets below 10 or ANC below 0.5, whatever the B12 status --------
    _count_case("SEVERE-PLT-9", "N", "platelets", "9", "thrombocytopenia severe_cytopenia"),
    _count_case("SEVERE-PLT-10", "N", "platelets", "10", "thrombocytopenia"),
    _count_case("SEVERE-PLT-9900UL", "N", "platelets", ("9,900", "/uL"),
                "thrombocytopenia severe_cytopenia"),
    _count_case("SEVERE-PLT-10S", "S", "platelets", "10", "thrombocytopenia"),
    _count_case("SEVERE-ANC-0.49", "N", "anc", "0.49", "neutropenia severe_cytopenia"),
    _count_case("SEVERE-ANC-0.50", "E", "anc", "0.50", "neutropenia"),
    _count_case("SEVERE-ANC-490UL", "N", "anc", ("490", "cells/uL"), "neutropenia severe_cytopenia"),
    _p("SEVERE-NO-B12", "F", 52, "N", "thrombocytopenia neutropenia severe_cytopenia cytopenia_b12_untested",
       "platelets 6 and ANC 0.2, never tested for B12: urgent, not routine",
       _cbc("N", 4, platelets="6", anc="0.20")),
    # -- children are not screened (settings.minimum_age 18) ------------------------------------
    _p("CHILD-17", "F", 18, "N", "", "17 (18 tomorrow): B12 150 30 days ago, not screened",
       [_r("b12", "150", "pg/mL", 30)], birthday_shift=1),
    _p("ADULT-18", "F", 18, "N", "b12_deficient deficiency_untreated",
       "18 today: B12 150 30 days ago", [_r("b12", "150", "pg/mL", 30)], birthday_shift=0),
    _p("MON-SWITCH", "F", 66, "N", "monitoring_overdue",
       "IM hydroxocobalamin 300..101 days ago, then oral cyanocobalamin from 100 days ago: one B12 "
       "therapy episode from 300 days ago, day-182 visit due 118 days ago; CBC and B12 125 days ago",
       [*_cbc("N", 125), _b12ok("N", 125)],
       [_m("hydroxocobalamin", "Hydroxocobalamin 1 mg/mL injection", 300, 101, route="IM"),
        _m("cyanocobalamin", "Cyanocobalamin 1000 mcg tablet", 100)],
       probes="monitoring_overdue"),
    _p("MON-ENDED", "M", 60, "N", "", "IM cyanocobalamin 100..10 days ago: not on therapy now", [],
       [_m("cyanocobalamin", "Cyanocobalamin 1000 MCG/ML Injectable Solution", 100, 10,
           route="IM")], probes="monitoring_overdue"),
    # -- deceased patients are not screened (patients.death_date on or before the as-of date) ----
    _p("DIED-10D", "F", 70, "N", "", "died 10 days ago; B12 150 30 days ago: not screened",
       [_r("b12", "150", "pg/mL", 30)], died=10),
    _p("DIED-TODAY", "M", 80, "S", "", "died on the as-of day; platelets 6 two days ago: not screened",
       _cbc("S", 2, platelets="6"), died=0),
    _p("DIED-NO-LABS", "M", 82, "E", "", "died 400 days ago, on metformin for years: not screened",
       [], [_m("metformin", "Metformin 500 mg tablet", 2000)], died=400),
    # -- nothing at all ----------------------------------------------------------------------------
    _p("NOLABS-01", "F", 41, "N", "", "in patients, no labs and no medications: never flagged", []),
)
# fmt: on


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
        birth = birth_date_of(pp, as_of)
        site = SITES[pp.site].name
        died = death_date_of(pp, as_of)
        out.append(
            {
                "patient_id": pp.patient_id,
                "sex": pp.sex,
                "birth_date": birth.isoformat(),
                "site": site,
                "death_date": "" if died is None else died.isoformat(),
            }
        )
    return out


def _planted_med_rows(as_of: date) -> list[tuple[str | None, dict[str, str]]]:
    out: list[tuple[str | None, dict[str, str]]] = []
    for pp in PLANTED:
        for m in pp.meds:
            row = {
                "patient_id": pp.patient_id,
                "medication": m.medication,
                "rxnorm": m.rxnorm,
                "atc": m.atc,
                "start_date": (as_of - timedelta(days=m.start)).isoformat(),
                "end_date": "" if m.end is None else (as_of - timedelta(days=m.end)).isoformat(),
                "route": m.route,
            }
            out.append((f"medication_{m.messy}" if m.messy else None, row))
    return out


def _planted_dx_rows(as_of: date) -> list[tuple[str | None, dict[str, str]]]:
    out: list[tuple[str | None, dict[str, str]]] = []
    for pp in PLANTED:
        for d in pp.dxs:
            row = {
                "patient_id": pp.patient_id,
                "code": d.code,
                "recorded_at": (as_of - timedelta(days=d.days_ago)).isoformat(),
                "description": d.description,
            }
            out.append((f"diagnosis_{d.messy}" if d.messy else None, row))
    return out


def planted_oracle_input(
    pp: PlantedPatient, as_of: date
) -> tuple[PatientInfo, list[CleanResult], list[MedOrder], list[Diagnosis]] | None:
    """A planted case as the oracle reads it, or None when the oracle cannot read it (a
    censored value, a unit no site uses, two results of one analyte on one day). Rows that must
    be quarantined are left out, as the pipeline leaves them out."""
    factors = {
        (analyte, spec.unit): spec.factor
        for site in SITES.values()
        for analyte, specs in site.units.items()
        for spec in specs
    }
    results: list[CleanResult] = []
    seen: set[tuple[str, int]] = set()
    for r in pp.rows:
        if r.messy:
            continue
        factor = factors.get((r.analyte, r.unit))
        text = r.value.replace(",", "")
        if factor is None or text[:1] in "<>" or (r.analyte, r.days_ago) in seen:
            return None
        seen.add((r.analyte, r.days_ago))
        value = round(float(text) * factor, 3)
        results.append(
            CleanResult(pp.patient_id, r.analyte, value, as_of - timedelta(days=r.days_ago))
        )
    orders = [
        MedOrder(
            pp.patient_id,
            m.groups,
            as_of - timedelta(days=m.start),
            None if m.end is None else as_of - timedelta(days=m.end),
            m.route,
        )
        for m in pp.meds
        if not m.messy
    ]
    diagnoses = [
        Diagnosis(pp.patient_id, d.code, as_of - timedelta(days=d.days_ago))
        for d in pp.dxs
        if not d.messy
    ]
    info = PatientInfo(pp.sex, birth_date_of(pp, as_of), death_date_of(pp, as_of))
    return info, results, orders, diagnoses
