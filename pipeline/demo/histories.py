"""Diagnoses and medication orders of the background population.

Diagnoses (``diagnoses.csv``): ICD-10-CM codes as EHRs send them, with and without the dot
(``E11.9``/``E119``, ``K50.90``, ``K900``, ``E06.3``, ``D51.0``, ``Z98.84``, ``N18.4``…), now
and then in lower case, and near misses that are on no list (``D51.9``, ``E53.8``, ``K90.9``,
``N18.2``…). Medications (``medications.csv``) follow the diagnoses: metformin for ~25 % of
type 2 diabetics (long refill chains and short courses), a PPI for ~20 % of patients 65 and
over (some switching to or from an H2 blocker), colchicine for gout, pregabalin for
neuropathy, phenobarbital/primidone/topiramate for epilepsy, methotrexate with folic acid,
folic acid alone, B12 therapy (IM cyanocobalamin or hydroxocobalamin, oral or OTC B12) for
many deficient patients, mostly started after the deficient result, and a few % of rows on no
list (amlodipine, atorvastatin, gabapentin, vonoprazan…). Names are written the way EHRs write
them (``MetFORMIN (Glucophage) 500 mg``, ``Pantoprazole 40mg EC tab``, brands, tall-man
letters); some rows carry only an RxNorm code or only an ATC code; orders are open-ended,
ended, or end after the as-of date; refills overlap or leave gaps.

No history sits near a boundary of the medication criteria: each patient's history is checked
against the oracle with every window and threshold moved by two days (and touching orders read
as not touching), and drawn again until the answer does not move (`_history`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from pipeline.demo.oracle import (
    CleanResult,
    Diagnosis,
    MedOrder,
    PatientInfo,
    age_on,
    near_a_boundary,
)
from pipeline.demo.population import Patient
from pipeline.demo.vocabulary import _CODE_ONLY, _DIAGNOSES, DRUGS, _with_dot


@dataclass
class MedEntry:
    """One medication order of the background, in days before as-of."""

    patient_id: str
    drug: str  # key into DRUGS
    start: int  # days before as-of
    end: int | None  # days before as-of (negative: after it); None: open-ended
    messy: str | None = None


@dataclass
class DxEntry:
    patient_id: str
    key: str  # the code without its dot (key into _DIAGNOSES)
    days_ago: int
    messy: str | None = None


_NEAR_AS_OF = 4  # background orders never start or end from 3 days before as-of to 2 after it


def _course(
    rng: random.Random, drug: str, first: int, stop: int | None, refills: bool
) -> list[tuple[str, int, int | None]]:
    """The orders of one course of a drug from ``first`` days before as-of until ``stop`` days
    before it (None: still going): one order, or a chain of 30- or 90-day refills that overlap
    by 3-10 days or leave 4-29 days without."""
    if not refills:
        if stop is not None:
            return [(drug, first, stop)]
        return [(drug, first, None if rng.random() < 0.7 else -rng.randint(3, 120))]
    orders: list[tuple[str, int, int | None]] = []
    start = first
    length = rng.choice((30, 90, 90))
    while True:
        end = start - length + 1
        if stop is not None and end <= stop + _NEAR_AS_OF:
            orders.append((drug, start, stop))
            break
        if stop is None and end <= _NEAR_AS_OF:
            orders.append((drug, start, end if end <= -3 else None))
            break
        orders.append((drug, start, end))
        following = end + rng.randint(3, 10) if rng.random() < 0.6 else end - rng.randint(5, 30)
        if following <= _NEAR_AS_OF or (stop is not None and following <= stop + _NEAR_AS_OF):
            if stop is None:  # the last refill runs on
                orders[-1] = (drug, start, None)
            break
        start = following
    return orders


def _history(
    rng: random.Random, p: Patient, labs: Sequence[CleanResult], as_of: date
) -> tuple[list[DxEntry], list[MedEntry]]:
    """Diagnoses and medication orders of one background patient, kept clear of every boundary
    of the medication criteria (see `near_a_boundary`)."""
    age = age_on(p.birth_date, as_of)
    adult = max(60, (as_of - p.birth_date).days - 18 * 365)  # days since the 18th birthday
    dx: list[DxEntry] = []

    def diagnose(key: str, lo: int = 30, hi: int = 5000) -> int:
        days = rng.randint(lo, max(lo, min(hi, adult)))
        dx.append(DxEntry(p.patient_id, key, days))
        return days

    def chance(share: float) -> bool:
        return rng.random() < share

    older = age >= 65
    t2dm = chance(0.22 if older else 0.12 if age >= 45 else 0.04)
    if t2dm:
        diagnose(rng.choice(["E119", "E119", "E1165"]))
    t1dm = not t2dm and chance(0.006)
    if t1dm:
        diagnose("E109")
    gerd = chance(0.16 if older else 0.09)
    if gerd:
        diagnose(rng.choice(["K219", "K219", "K210"]))
    htn = chance(0.4 if older else 0.15)
    if htn:
        diagnose("I10")
    lipid = chance(0.25)
    if lipid:
        diagnose("E785")
    thyroid = chance(0.05)
    if thyroid:
        diagnose("E039")
    if chance(0.025):
        thyroid = True
        diagnose("E063")
    gout = chance(0.05 if p.group == "M" else 0.02)
    if gout:
        diagnose("M109")
    epilepsy = chance(0.008)
    if epilepsy:
        diagnose("G40909")
    neuropathy = chance(0.12 if t2dm else 0.025)
    if neuropathy:
        diagnose(rng.choice(["G629", "M797"]))
    arthritis = chance(0.012)
    if arthritis:
        diagnose("M069")
    for key, share in (
        ("K5090", 0.004),
        ("K5000", 0.002),
        ("K5190", 0.005),
        ("K900", 0.006),
        ("K909", 0.003),
        ("K2940", 0.003),
        ("K2970", 0.02),
        ("Z9884", 0.008),
        ("Z980", 0.002),
        ("Z903", 0.002),
        ("Z9049", 0.0015),
        ("K912", 0.0015),
        ("M3500", 0.003),
        ("M351", 0.002),
        ("Q909", 0.0015 if age < 70 else 0.0),
    ):
        if chance(share):
            diagnose(key)
    pernicious_since = None
    if p.b12_state == "deficient":
        if chance(0.25):
            pernicious_since = diagnose("D510", 30, 3000)
        elif chance(0.2):
            diagnose(rng.choice(["D519", "D51", "E538"]), 30, 2000)
    egfr = [r.value for r in labs if r.analyte == "egfr"]
    ckd = False
    if egfr and min(egfr) < 60 and chance(0.55):
        ckd = True
        low = min(egfr)
        diagnose(
            "N185" if low < 15 else "N184" if low < 30 else rng.choice(["N1830", "N1831", "N1832"])
        )
    elif chance(0.03):
        diagnose(rng.choice(["N182", "N182", "N189"]))

    b12_days = sorted((as_of - r.on).days for r in labs if r.analyte == "b12")
    for _attempt in range(12):
        meds = _medication_story(
            rng,
            p,
            age,
            adult,
            t2dm,
            t1dm,
            gerd,
            htn,
            lipid,
            thyroid,
            gout,
            epilepsy,
            neuropathy,
            arthritis,
            ckd,
            pernicious_since,
            b12_days,
        )
        orders = [_order(p.patient_id, m, as_of) for m in meds]
        diagnoses = [Diagnosis(p.patient_id, d.key, as_of - timedelta(days=d.days_ago)) for d in dx]
        info = PatientInfo(p.sex, p.birth_date)
        if not near_a_boundary(info, labs, orders, diagnoses, as_of):
            break
    else:  # give up on this patient's listed drugs
        meds = [m for m in meds if not DRUGS[m.drug].groups]
    return dx, meds


def _medication_story(
    rng: random.Random,
    p: Patient,
    age: int,
    adult: int,
    t2dm: bool,
    t1dm: bool,
    gerd: bool,
    htn: bool,
    lipid: bool,
    thyroid: bool,
    gout: bool,
    epilepsy: bool,
    neuropathy: bool,
    arthritis: bool,
    ckd: bool,
    pernicious_since: int | None,
    b12_days: Sequence[int],
) -> list[MedEntry]:
    orders: list[tuple[str, int, int | None]] = []

    def chance(share: float) -> bool:
        return rng.random() < share

    def first_day(lo: int, hi: int) -> int:
        return rng.randint(lo, max(lo, min(hi, adult)))

    def course(drug: str, first: int, stop: int | None = None, refills: bool | None = None) -> None:
        if stop is not None and stop > first - 7:
            stop = None if first - 7 < _NEAR_AS_OF else first - 7
        chained = chance(0.6) if refills is None else refills
        orders.extend(_course(rng, drug, first, stop, chained))

    def long_or_short(drug: str, long_share: float, ongoing_share: float) -> int | None:
        if chance(long_share):
            first = first_day(200, 4000)
            stop = None if chance(ongoing_share) else rng.randint(20, max(21, first - 100))
            course(drug, first, stop)
        else:
            first = first_day(30, 2500)
            stop = max(_NEAR_AS_OF, first - rng.randint(14, 100))
            course(drug, first, stop, refills=False)
        return stop

    if t2dm and chance(0.25):
        long_or_short("sitagliptin_metformin" if chance(0.1) else "metformin", 0.65, 0.75)
    if chance(0.20 if age >= 65 else 0.08):
        ppi = rng.choices(
            ["omeprazole", "pantoprazole", "esomeprazole", "lansoprazole", "rabeprazole"],
            weights=[45, 30, 12, 8, 5],
        )[0]
        stop = long_or_short(ppi, 0.6, 0.7)
        if chance(0.15):  # stepped down to an H2 blocker, or came from one
            first = max(o[1] for o in orders if o[0] == ppi)
            if stop is not None and stop > 40:
                after = stop - rng.randint(5, 20)
                course("famotidine", after, None if chance(0.6) else rng.randint(4, after - 10))
            elif first + 130 < adult:
                before_end = first + rng.randint(5, 30)
                course(
                    rng.choice(["famotidine", "ranitidine"]) if first > 2300 else "famotidine",
                    before_end + rng.randint(30, 400),
                    before_end,
                    refills=False,
                )
    elif chance(0.03):
        if adult > 2600 and chance(0.15):
            first = first_day(2500, 5000)
            course("ranitidine", first, rng.randint(2400, max(2401, first - 30)))  # withdrawn 2020
        else:
            long_or_short("cimetidine" if chance(0.05) else "famotidine", 0.5, 0.6)
    if gout:
        if chance(0.45):
            if chance(0.6):  # flares
                for _ in range(rng.randint(1, 3)):
                    first = first_day(20, 2000)
                    course("colchicine", first, max(_NEAR_AS_OF, first - rng.randint(5, 14)), False)
            else:
                course("colchicine", first_day(60, 2000))
        if chance(0.3):
            course("allopurinol", first_day(60, 3000), refills=False)
    if neuropathy or (t2dm and chance(0.03)):
        if chance(0.45):
            first = first_day(20, 2000)
            course(
                "pregabalin", first, None if chance(0.6) else rng.randint(10, max(11, first - 20))
            )
        if chance(0.25):
            course("gabapentin", first_day(20, 2000), refills=False)
    if epilepsy:
        if chance(0.35):
            course(
                "phenobarbital", first_day(300, 8000), None if chance(0.85) else first_day(10, 300)
            )
        if chance(0.10):
            course("primidone", first_day(100, 5000))
        if chance(0.20):
            course("topiramate", first_day(100, 3000))
    if arthritis and chance(0.7):
        first = first_day(100, 3000)
        course("methotrexate", first)
        if chance(0.9):
            course("folic_acid", first - rng.randint(0, 7))
    if (p.b12_state == "deficient" and b12_days and chance(0.25)) or (
        p.folate_base < 4 and chance(0.35) or chance(0.02)
    ):  # folic acid, now and then for a deficient patient whose B12 was not yet looked at
        first = first_day(20, 1500)
        course("folic_acid", first, None if chance(0.5) else rng.randint(10, max(11, first - 20)))
    # B12 therapy: mostly after a deficient result, lifelong for pernicious anaemia, some OTC
    therapy = rng.choices(["cyano_im", "hydroxo_im", "cyano_oral"], weights=[45, 30, 25])[0]
    if pernicious_since is not None and chance(0.9):
        first = max(10, pernicious_since - rng.randint(0, 30))
        course(
            therapy if therapy != "cyano_oral" else "cyano_im",
            first,
            None if chance(0.85) else rng.randint(10, max(11, first - 60)),
        )
    elif p.b12_state == "deficient" and b12_days:
        result = b12_days[0]
        u = rng.random()
        if u < 0.55 and result > 10:
            first = max(6, result - rng.randint(2, 21))
            course(
                therapy, first, None if chance(0.75) or first < 60 else rng.randint(4, first - 40)
            )
        elif u < 0.65:
            first = result + rng.randint(200, 1500)
            course(therapy, first, max(result + 40, first - rng.randint(60, 400)))
    if chance(0.03):
        first = first_day(20, 2000)
        course("cyano_oral", first, None if chance(0.6) else rng.randint(10, max(11, first - 20)))
    if chance(0.003):
        course("methylcobalamin", first_day(20, 1000))
    if chance(0.002):
        course("cyano_nasal", first_day(20, 1000))
    if ckd and chance(0.05):
        course("folbee", first_day(20, 1500), refills=False)
    # drugs on no list (one order each, mostly open-ended)
    for drug, share in (
        ("amlodipine", 0.12 if htn else 0.0),
        ("lisinopril", 0.10 if htn else 0.0),
        ("atorvastatin", 0.12 if lipid else 0.0),
        ("simvastatin", 0.05 if lipid else 0.0),
        ("levothyroxine", 0.5 if thyroid else 0.0),
        ("insulin", 0.95 if t1dm else 0.0),
        ("sertraline", 0.02),
        ("aspirin", 0.06 if age >= 65 else 0.02),
        ("vitamin_d", 0.03),
        ("vonoprazan", 0.002),
    ):
        if share and chance(share):
            course(drug, first_day(30, 3000), refills=False)
    return [MedEntry(p.patient_id, d, s, e) for d, s, e in orders]


def _order(pid: str, m: MedEntry, as_of: date) -> MedOrder:
    return MedOrder(
        pid,
        DRUGS[m.drug].groups,
        as_of - timedelta(days=m.start),
        None if m.end is None else as_of - timedelta(days=m.end),
    )


def _med_row(rng: random.Random, m: MedEntry, as_of: date) -> dict[str, str]:
    drug = DRUGS[m.drug]
    name, product = rng.choice(drug.names)
    rxnorm = atc = ""
    u = rng.random()
    if m.drug in _CODE_ONLY and u < 0.05:
        name, rxnorm = "", drug.rxnorm
    elif m.drug in _CODE_ONLY and u < 0.10:
        name, atc = "", rng.choice(drug.atc)
    else:
        if rng.random() < 0.5:
            rxnorm = product or drug.rxnorm
        if drug.atc and rng.random() < 0.4:
            atc = drug.atc[0] if rng.random() < 0.95 else drug.atc[0].lower()
    return {
        "patient_id": m.patient_id,
        "medication": name,
        "rxnorm": rxnorm,
        "atc": atc,
        "start_date": (as_of - timedelta(days=m.start)).isoformat(),
        "end_date": "" if m.end is None else (as_of - timedelta(days=m.end)).isoformat(),
        "route": drug.route if rng.random() < 0.9 else "",
    }


def _dx_row(rng: random.Random, d: DxEntry, as_of: date) -> dict[str, str]:
    u = rng.random()
    written = _with_dot(d.key) if u < 0.6 else d.key
    if u > 0.98:
        written = written.lower()
    return {
        "patient_id": d.patient_id,
        "code": written,
        "recorded_at": (as_of - timedelta(days=d.days_ago)).isoformat(),
        "description": _DIAGNOSES[d.key],
    }
