"""The background population (patient ids ``P000001``…): patients, their specimens and lab rows.

Adults aged 18-100 in the age and sex mix of the adults of England and Wales at Census 2021
(`pipeline.demo.age_sex`, which cites the release): about 11 % aged 75 or over, about 51 % F,
48 % M and 1 % with sex oddly spelled or unknown (``male``, ``FEMALE``, ``x``). Each patient has
a home site:

- north: LOINC on every row, B12 pg/mL, Hgb g/dL, counts ``10*9/L`` (some in cells/uL written
  ``1,850``), datetimes; a second file (``labs_site_north_archive.csv``) holds results older
  than a year;
- south (``.csv.gz``, upper-case headers, no LOINC column, an extra ORDERING_CLINIC column):
  test names only (``Vitamin B12``, ``HGB``, ``White Blood Cells``), B12 pmol/L, Hgb g/L,
  counts ``x10^9/L``, dates without time;
- east (``.parquet``, all columns text): LOINC on about half of the rows, ``K/uL`` and
  ``10^3/µL``, B12 ng/L or pmol/L, folate nmol/L, MMA µmol/L, Hgb mmol/L now and then.

About 60 % have a CBC (Hgb, WBC, ANC, platelets, MCV) in the last year, some several; ~15 % a
B12, ~10 % folate, ~2 % MMA, ~2 % homocysteine, ~5 % LDH; creatinine and eGFR for over a
quarter; a few results are re-sent unchanged (same result_id). Every value is drawn on the
canonical scale, kept more than the rendering error plus 0.01 away from every threshold, then
written in the row's unit. The background has no ties and no censored values, no result on a
look-back edge or on the as-of day, no deficient result 7 or 8 days old and no 75th birthday
near the as-of date: those cases are planted only. Expected flags for these patients come
from `pipeline.demo.oracle`; their diagnoses and medications from `pipeline.demo.histories`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from pipeline.demo.age_sex import draw_age_and_sex
from pipeline.demo.guidance import CUTS
from pipeline.demo.oracle import CleanResult, _number, sex_group
from pipeline.demo.vocabulary import SITES, SiteSpec, UnitSpec
from pipeline.demo.writers import LabRow


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


# Look-back edges, the as-of day and a deficient result 7 or 8 days old are planted only.
_EXCLUDED_DAYS = {0, 7, 8, 90, 91, 365, 366}


def _years_before(as_of: date, years: int) -> date:
    """The day ``years`` years before ``as_of`` (28 February for 29 February)."""
    try:
        return as_of.replace(year=as_of.year - years)
    except ValueError:
        return as_of.replace(year=as_of.year - years, day=28)


def _clear_of_birthday(birth: date, as_of: date, years: int) -> date:
    """Move a birth date so the ``years``-th birthday is not within 3 days of as-of (and never
    29 February)."""
    if (birth.month, birth.day) == (2, 29):
        birth -= timedelta(days=1)
    birthday = birth.replace(year=birth.year + years)
    if abs((birthday - as_of).days) <= 3:
        birth -= timedelta(days=10)
    return birth


def _site_of(rng: random.Random, home: str) -> str:
    if rng.random() < 0.92:
        return home
    return rng.choice([s for s in SITES if s != home])


def _make_patient(rng: random.Random, i: int, as_of: date) -> Patient:
    age, sex = draw_age_and_sex(rng)
    birth = _years_before(as_of, age) - timedelta(days=rng.randrange(365))
    birth = _clear_of_birthday(birth, as_of, _number("b12_screening_due.age_at_least"))
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
