"""The oracle: the flags a correct run must produce, computed without the pipeline's SQL.

A small Python reading of docs/criteria-semantics.md over the records the generator chose
(canonical lab values, the drug groups of each order, the diagnosis codes as written), with the
constants of `pipeline.demo.guidance`. `oracle_flags` gives the expected flags of the background
population, `patient_criteria` what one patient meets. `near_a_boundary` tells the generator
whether a medication history would change its answer under a nearby reading of the rules (each
window and threshold moved by two days, touching orders read as not touching), so that the
history can be drawn again: boundary cases are planted, never drawn.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache

from pipeline.demo.guidance import (
    ALL_CRITERIA,
    B12_THERAPY,
    CONDITION_CODES,
    LAB_CRITERIA,
    LOOKBACK_DAYS,
    MED_RULES,
    SETTINGS,
    THRESHOLDS,
)


@dataclass(frozen=True)
class CleanResult:
    """One valid lab result on the canonical scale, as the generator chose it."""

    patient_id: str
    analyte: str
    value: float
    on: date


@dataclass(frozen=True)
class MedOrder:
    """One valid medication order: the drug groups the generator wrote it as (empty: a drug on
    no list), its first day and its last day (None: open-ended), and its route as written
    ("" when the row has none or the generator did not say)."""

    patient_id: str
    groups: frozenset[str]
    start: date
    end: date | None
    route: str = ""


@dataclass(frozen=True)
class Diagnosis:
    """One valid diagnosis row: the code as written and the day it was recorded."""

    patient_id: str
    code: str
    recorded: date


@dataclass(frozen=True)
class PatientInfo:
    sex: str  # as written in the patients file
    birth_date: date
    death_date: date | None = None


@dataclass(frozen=True)
class Reading:
    """How the oracle reads the medication rules. The answer key uses the defaults (the
    guidance profile); the generator moves one knob at a time to keep the background away from
    every boundary."""

    metformin_days: int = 120
    acid_days: int = 365
    recent_stop_days: int = 365
    therapy_lookback_days: int = 30
    grace_days: int = 14
    due_shift: int = 0  # added to every due day of the monitoring schedule
    since_slack: int = 0  # a result counts for a due date D when collected on or after D - slack
    merge_gap: int = 1  # orders merge when the next starts at most this many days after the end
    refill_gap: int = 30  # monitoring only: days without an order that still continue a course
    cover_days: int = 92  # a one-day B12 order (one injection) covers this many days


def sex_group(raw: str) -> str:
    """``M``, ``F`` or ``U`` from the patients file's sex column."""
    text = raw.strip().lower()
    return {"m": "M", "male": "M", "f": "F", "female": "F"}.get(text, "U")


def age_on(birth: date, as_of: date) -> int:
    """Age in completed years on ``as_of``."""
    return as_of.year - birth.year - ((as_of.month, as_of.day) < (birth.month, birth.day))


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
        met, _ = _lab_criteria(sex_group(sex_by_patient[pid]), rows, as_of)
        flags |= {(pid, c) for c in LAB_CRITERIA if met[c]}
    return flags


def oracle_flags(
    patients: Mapping[str, PatientInfo],
    results: Iterable[CleanResult],
    orders: Iterable[MedOrder],
    diagnoses: Iterable[Diagnosis],
    as_of: date,
) -> set[tuple[str, str]]:
    """Expected (patient_id, criterion) pairs for all 26 criteria (guidance profile)."""
    labs: dict[str, list[CleanResult]] = defaultdict(list)
    meds: dict[str, list[MedOrder]] = defaultdict(list)
    dxs: dict[str, list[Diagnosis]] = defaultdict(list)
    for r in results:
        labs[r.patient_id].append(r)
    for o in orders:
        meds[o.patient_id].append(o)
    for d in diagnoses:
        dxs[d.patient_id].append(d)
    flags: set[tuple[str, str]] = set()
    for pid, info in patients.items():
        met = patient_criteria(info, labs.get(pid, []), meds.get(pid, []), dxs.get(pid, []), as_of)
        flags |= {(pid, c) for c in met}
    return flags


def patient_criteria(
    info: PatientInfo,
    rows: Sequence[CleanResult],
    orders: Sequence[MedOrder],
    diagnoses: Sequence[Diagnosis],
    as_of: date,
    reading: Reading | None = None,
) -> set[str]:
    """Every criterion one patient meets (none for a patient under the minimum age: children
    are not screened; none for a patient who died on or before the as-of date)."""
    minimum_age = SETTINGS["minimum_age"]
    assert isinstance(minimum_age, int)
    if age_on(info.birth_date, as_of) < minimum_age:
        return set()
    if info.death_date is not None and info.death_date <= as_of:
        return set()
    met, latest = _lab_criteria(sex_group(info.sex), rows, as_of)
    met |= _med_criteria(info, rows, latest, met, orders, diagnoses, as_of, reading or Reading())
    return {c for c in ALL_CRITERIA if met[c]}


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


def _lab_criteria(
    sex: str, rows: Sequence[CleanResult], as_of: date
) -> tuple[dict[str, bool], dict[str, CleanResult]]:
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
    # whatever the B12 status: platelets below the transfusion band, ANC below the severe grade
    met["severe_cytopenia"] = below(
        "platelets", t["thrombocytopenia.band_transfusion_10e9_l"]
    ) or below("anc", t["neutropenia.severe_below_10e9_l"])
    return met, latest


def _last_day(o: MedOrder, as_of: date, cover_days: int) -> date:
    """The last day an order covers, cut at as-of: a B12-therapy order that starts and ends on
    one day records one injection and covers ``cover_days`` days from it."""
    end = o.end
    if end is not None and end == o.start and o.groups & set(B12_THERAPY):
        end = o.start + timedelta(days=cover_days - 1)
    return min(end or as_of, as_of)


def _episodes(
    orders: Sequence[MedOrder],
    groups: Iterable[str],
    as_of: date,
    merge_gap: int,
    cover_days: int = 92,
) -> list[tuple[date, date]]:
    """The merged periods (first day, last day) of the orders of any of ``groups``, each cut
    at as-of; orders starting after as-of do not count. An order starting at most
    ``merge_gap`` days after the last day so far joins the episode (1: touching)."""
    wanted = set(groups)
    periods = sorted(
        (o.start, _last_day(o, as_of, cover_days))
        for o in orders
        if o.groups & wanted and o.start <= as_of
    )
    episodes: list[tuple[date, date]] = []
    for start, end in periods:
        if episodes and (start - episodes[-1][1]).days <= merge_gap:
            episodes[-1] = (episodes[-1][0], max(episodes[-1][1], end))
        else:
            episodes.append((start, end))
    return episodes


@cache
def _names(key: str) -> tuple[str, ...]:
    value = MED_RULES[key]
    assert isinstance(value, tuple)
    return tuple(str(v) for v in value)


@cache
def _ints(key: str) -> tuple[int, ...]:
    value = MED_RULES[key]
    assert isinstance(value, tuple)
    return tuple(int(v) for v in value)


def _number(key: str) -> int:
    value = MED_RULES[key]
    assert isinstance(value, int)
    return value


@cache
def _prefixes(conditions: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(c.replace(".", "").upper() for k in conditions for c in CONDITION_CODES[k])


def _has_condition(
    diagnoses: Sequence[Diagnosis], conditions: tuple[str, ...], as_of: date
) -> bool:
    prefixes = _prefixes(conditions)
    return any(
        d.recorded <= as_of and d.code.strip().replace(".", "").upper().startswith(prefixes)
        for d in diagnoses
    )


def _med_criteria(
    info: PatientInfo,
    rows: Sequence[CleanResult],
    latest: Mapping[str, CleanResult],
    lab: Mapping[str, bool],
    orders: Sequence[MedOrder],
    diagnoses: Sequence[Diagnosis],
    as_of: date,
    rd: Reading,
) -> dict[str, bool]:
    known: dict[tuple[str, ...], list[tuple[date, date]]] = {}

    def episodes(groups: tuple[str, ...]) -> list[tuple[date, date]]:
        if groups not in known:
            known[groups] = _episodes(orders, groups, as_of, rd.merge_gap, rd.cover_days)
        return known[groups]

    def current(groups: tuple[str, ...]) -> bool:
        eps = episodes(groups)
        return bool(eps) and eps[-1][1] == as_of

    def long_term(groups: tuple[str, ...], min_days: int) -> bool:
        eps = episodes(groups)
        days = sum((end - start).days + 1 for start, end in eps)
        return days > min_days and (as_of - eps[-1][1]).days <= rd.recent_stop_days

    met: dict[str, bool] = {}
    met["metformin_long_term"] = long_term(
        _names("metformin_long_term.drug_groups"), rd.metformin_days
    )
    met["acid_suppression_long_term"] = long_term(
        _names("acid_suppression_long_term.drug_groups"), rd.acid_days
    )
    met["b12_lowering_drug"] = current(_names("b12_lowering_drug.drug_groups"))
    met["risk_condition"] = _has_condition(
        diagnoses, _names("risk_condition.risk_conditions"), as_of
    )
    at_risk = (
        met["metformin_long_term"]
        or met["acid_suppression_long_term"]
        or met["b12_lowering_drug"]
        or met["risk_condition"]
        or age_on(info.birth_date, as_of) >= _number("b12_screening_due.age_at_least")
    )
    # dated in [as_of - interval, as_of], both ends counting, as the B12 look-back does
    window = _number("b12_screening_due.test_interval_days")
    tested = any(r.analyte in ("b12", "mma") and 0 <= (as_of - r.on).days <= window for r in rows)
    met["b12_screening_due"] = at_risk and not tested

    # every deficient result is judged on its own: met when any one of them meets it
    flagged_on = [
        latest[analyte].on
        for analyte, criterion in (("b12", "b12_deficient"), ("mma", "mma_elevated"))
        if lab[criterion]
    ]
    therapy_groups = set(_names("deficiency_untreated.therapy_groups"))
    therapy = [o for o in orders if o.groups & therapy_groups and o.start <= as_of]

    def started_since(day: date) -> bool:
        since = day - timedelta(days=rd.therapy_lookback_days)
        return any(o.start >= since for o in therapy)

    met["folate_without_b12"] = (
        current(_names("folate_without_b12.folate_groups"))
        and not current(_names("folate_without_b12.therapy_groups"))
        and any(not started_since(day) for day in flagged_on)
    )
    egfr = latest.get("egfr")
    met["cyanocobalamin_renal"] = current(_names("cyanocobalamin_renal.drug_groups")) and (
        (egfr is not None and egfr.value < THRESHOLDS["cyanocobalamin_renal.egfr_below"])
        or _has_condition(diagnoses, _names("cyanocobalamin_renal.ckd_conditions"), as_of)
        # CKD of unknown stage counts only when no eGFR in the look-back stages it
        or (
            egfr is None
            and _has_condition(
                diagnoses, _names("cyanocobalamin_renal.ckd_unstaged_conditions"), as_of
            )
        )
    )
    met["deficiency_untreated"] = any(
        (as_of - day).days > _number("deficiency_untreated.grace_days") and not started_since(day)
        for day in flagged_on
    )
    met["monitoring_overdue"] = _monitoring_overdue(
        _episodes(
            orders,
            _names("monitoring_overdue.therapy_groups"),
            as_of,
            rd.merge_gap + rd.refill_gap,
            rd.cover_days,
        ),
        rows,
        as_of,
        rd,
    )
    # B12 therapy current, and every order covering as-of by an intravenous route
    iv_routes = set(_names("b12_iv_route.iv_routes"))
    b12_now = [
        o for o in therapy if _last_day(o, as_of, rd.cover_days) == as_of and o.start <= as_of
    ]
    met["b12_iv_route"] = bool(b12_now) and all(
        " ".join(o.route.lower().split()) in iv_routes for o in b12_now
    )
    return met


def _monitoring_overdue(
    therapy: Sequence[tuple[date, date]], rows: Sequence[CleanResult], as_of: date, rd: Reading
) -> bool:
    if not therapy or therapy[-1][1] != as_of:
        return False  # not on B12 therapy
    started = therapy[-1][0]
    schedule = [(d, ("cbc",)) for d in _ints("monitoring_overdue.cbc_days")]
    schedule += [(d, ("cbc", "b12")) for d in _ints("monitoring_overdue.cbc_b12_days")]
    yearly = _number("monitoring_overdue.yearly_days")
    last = max(d for d, _ in schedule)
    while (as_of - started).days >= last + yearly:
        last += yearly
        schedule.append((last, ("cbc", "b12")))
    due = [
        (started + timedelta(days=d + rd.due_shift), tests)
        for d, tests in schedule
        if started + timedelta(days=d + rd.due_shift) <= as_of
    ]
    if not due:
        return False
    when, tests = max(due)
    analytes = {
        "cbc": set(_names("monitoring_overdue.cbc_analytes")),
        "b12": set(_names("monitoring_overdue.b12_analytes")),
    }
    since = when - timedelta(days=rd.since_slack)
    missing = [
        t
        for t in tests
        if not any(r.analyte in analytes[t] and since <= r.on <= as_of for r in rows)
    ]
    return (as_of - when).days > rd.grace_days and bool(missing)


# Each knob moved by two days (or touching orders read as not touching, or a 3-day gap read as
# touching): a background history whose answer moves under any of these is drawn again. The
# key says which drug groups make the knob matter.
NEARBY_READINGS: tuple[tuple[frozenset[str], Reading], ...] = tuple(
    (frozenset(groups.split()), rd)
    for groups, rd in (
        ("metformin", Reading(metformin_days=118)),
        ("metformin", Reading(metformin_days=122)),
        ("ppi h2_blocker", Reading(acid_days=363)),
        ("ppi h2_blocker", Reading(acid_days=367)),
        ("metformin ppi h2_blocker", Reading(recent_stop_days=363)),
        ("metformin ppi h2_blocker", Reading(recent_stop_days=367)),
        (" ".join(B12_THERAPY), Reading(therapy_lookback_days=28)),
        (" ".join(B12_THERAPY), Reading(therapy_lookback_days=32)),
        (" ".join(B12_THERAPY), Reading(grace_days=12)),
        (" ".join(B12_THERAPY), Reading(grace_days=16)),
        (" ".join(B12_THERAPY), Reading(due_shift=-2)),
        (" ".join(B12_THERAPY), Reading(due_shift=2)),
        (" ".join(B12_THERAPY), Reading(since_slack=-2)),
        (" ".join(B12_THERAPY), Reading(since_slack=2)),
        ("*", Reading(merge_gap=0)),
        ("*", Reading(merge_gap=3)),
        (" ".join(B12_THERAPY), Reading(refill_gap=28)),
        (" ".join(B12_THERAPY), Reading(refill_gap=32)),
        (" ".join(B12_THERAPY), Reading(cover_days=90)),
        (" ".join(B12_THERAPY), Reading(cover_days=94)),
    )
)


def near_a_boundary(
    info: PatientInfo,
    rows: Sequence[CleanResult],
    orders: Sequence[MedOrder],
    diagnoses: Sequence[Diagnosis],
    as_of: date,
) -> bool:
    """True when a nearby reading of the medication rules changes what the patient meets."""
    groups = frozenset().union(*(o.groups for o in orders))
    if not groups:
        return False
    lab, latest = _lab_criteria(sex_group(info.sex), rows, as_of)
    base = _med_criteria(info, rows, latest, lab, orders, diagnoses, as_of, Reading())
    for relevant, rd in NEARBY_READINGS:
        if ("*" in relevant or relevant & groups) and _med_criteria(
            info, rows, latest, lab, orders, diagnoses, as_of, rd
        ) != base:
            return True
    return False
