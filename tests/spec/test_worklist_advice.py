"""Given/expect tests of what the worklist says: the recommended action and the evidence.

One screening run over a table of patients (one case each). For each patient the table says
which advice the recommended action must give and which it must not (by a short phrase of the
rules file's text, read from the rules file so that the test follows the wording), and what
the evidence must read. What a case expects is worked out by hand from the rules:

- the regimen (by neurological status, lifelong while the cause persists) and the folate
  warning wherever deficiency is confirmed, by a low B12 or by a raised MMA alone;
- "review adherence, route and dose" for a deficient patient already on B12 therapy, and
  "start now" only for one who is not;
- parenteral B12 for life with pernicious anaemia or malabsorption after surgery (D51.0, Z90.3,
  Z90.49, Z98.84), not with other risk conditions;
- the platelet band's injection technique only where an injection is advised;
- the other action criteria named by their titles, not their ids;
- lab values in the evidence rounded to the decimals the lab reports (rules: report_decimals);
- the priority of severe cytopenia (urgent) whatever the B12 status.

A site profile (a rules file extending the guidance one) and the minimum age have tables of
their own below.
"""

from __future__ import annotations

import csv
from datetime import timedelta

import pytest

try:
    from harness import AS_OF, RULES, ScreeningResult, parse_table, screen, screen_through_files
except ModuleNotFoundError:  # tests/ imported as a package
    from tests.harness import (
        AS_OF,
        RULES,
        ScreeningResult,
        parse_table,
        screen,
        screen_through_files,
    )

ADVICE = RULES["advice"]
TITLE = {cid: c["title"] for cid, c in RULES["criteria"].items()}


def phrase(key: str) -> str:
    """The first clause of an advice sentence: enough to recognise it in a row."""
    return ADVICE[key]["text"].split(":")[0].split(",")[0]


# The phrases the table names, each the start of one advice sentence or action text.
PHRASES = {
    "regimen": phrase("regimen"),
    "neuro": "alternate days until no further improvement",
    "lifelong": "lifelong while the cause persists",
    "folate": phrase("folate"),
    "start": phrase("start_now"),
    "review": "review adherence, route and dose",
    "parenteral": "oral B12 is not dependable",
    "fine_needle": "fine needle",
    "agree_route": "agree the injection route",
    "transfuse_first": "before injecting",
    "iv_switch": "switch to IM or deep SC",
    "same_day": "same-day clinical review",
}

HYDROXO = "Hydroxocobalamin 1 mg/mL injection"
CYANO_ORAL = "Cyanocobalamin 1000 mcg tablet"

# kind: lab (what = analyte, value [unit]) | med (what = medication, start, route) | dx (code)
# says / not: PHRASES keys the recommended action contains / must not contain;
# priority: the worklist priority; evidence: a text the evidence must contain.
TABLE = f"""
patient_id           | kind | what        | value         | start      | route | priority | says                                   | not
# a low B12, no therapy: start now, regimen, lifelong, folate
adv-b12-untreated    | lab  | b12         | 150           | 2026-11-01 |       | high     | start regimen neuro lifelong folate   | review parenteral
# a raised MMA alone (normal B12) is confirmed deficiency too: the same advice
adv-mma-only         | lab  | mma         | 450           | 2026-11-01 |       | high     | start regimen lifelong folate         | review
adv-mma-only         | lab  | b12         | 420           | 2026-11-01 |       |          |                                        |
# deficient although on B12 therapy (started long before the result): review, never start
adv-on-therapy       | lab  | b12         | 150           | 2026-11-01 |       | high     | review regimen folate                 | start
adv-on-therapy       | med  | {CYANO_ORAL}|               | 2025-01-01 |       |          |                                        |
adv-mma-on-therapy   | lab  | mma         | 450           | 2026-11-01 |       | high     | review folate                         | start
adv-mma-on-therapy   | med  | {HYDROXO}   |               | 2026-11-10 | IM    |          |                                        |
# pernicious anaemia or malabsorption after surgery, with deficiency: injections for life
adv-pa-d51.0         | lab  | b12         | 150           | 2026-11-01 |       | high     | parenteral                             |
adv-pa-d51.0         | dx   | D51.0       |               | 2020-01-01 |       |          |                                        |
adv-gastrectomy      | lab  | mma         | 450           | 2026-11-01 |       | high     | parenteral                             |
adv-gastrectomy      | dx   | Z90.3       |               | 2020-01-01 |       |          |                                        |
adv-ileal            | lab  | b12         | 150           | 2026-11-01 |       | high     | parenteral                             |
adv-ileal            | dx   | Z90.49      |               | 2020-01-01 |       |          |                                        |
adv-bariatric        | lab  | b12         | 150           | 2026-11-01 |       | high     | parenteral                             |
adv-bariatric        | dx   | Z98.84      |               | 2020-01-01 |       |          |                                        |
# another risk condition does not say so; nor does pernicious anaemia without deficiency
adv-celiac           | lab  | b12         | 150           | 2026-11-01 |       | high     | regimen                                | parenteral
adv-celiac           | dx   | K90.0       |               | 2020-01-01 |       |          |                                        |
adv-pa-borderline    | lab  | b12         | 250           | 2026-11-01 |       | routine  |                                        | parenteral regimen folate
adv-pa-borderline    | dx   | D51.0       |               | 2020-01-01 |       |          |                                        |
# the platelet band's technique only where an injection is advised
adv-plt-40-untested  | lab  | platelets   | 40            | 2026-11-01 |       | routine  |                                        | fine_needle regimen
adv-plt-40-deficient | lab  | platelets   | 40            | 2026-11-01 |       | urgent   | fine_needle regimen                    | agree_route
adv-plt-40-deficient | lab  | b12         | 150           | 2026-11-01 |       |          |                                        |
adv-plt-50-deficient | lab  | platelets   | 50            | 2026-11-01 |       | urgent   |                                        | fine_needle
adv-plt-50-deficient | lab  | b12         | 150           | 2026-11-01 |       |          |                                        |
adv-plt-20-deficient | lab  | platelets   | 20            | 2026-11-01 |       | urgent   | agree_route                            | fine_needle
adv-plt-20-deficient | lab  | b12         | 150           | 2026-11-01 |       |          |                                        |
adv-plt-8-deficient  | lab  | platelets   | 8             | 2026-11-01 |       | urgent   | transfuse_first same_day               |
adv-plt-8-deficient  | lab  | b12         | 150           | 2026-11-01 |       |          |                                        |
# severe cytopenia is urgent whatever the B12 status, and says nothing about injecting
adv-plt-6-untested   | lab  | platelets   | 6             | 2026-11-01 |       | urgent   | same_day                               | transfuse_first regimen
adv-anc-0.2-untested | lab  | anc         | 0.2           | 2026-11-01 |       | urgent   | same_day                               | regimen
adv-anc-0.2-normal   | lab  | anc         | 0.2           | 2026-11-01 |       | urgent   | same_day                               | regimen
adv-anc-0.2-normal   | lab  | b12         | 500           | 2026-11-01 |       |          |                                        |
# IV-only B12: the switch advice (and injection technique with low platelets)
adv-iv-only          | med  | {HYDROXO}   |               | 2026-11-20 | IV    | routine  | iv_switch                              | regimen
adv-iv-low-platelets | med  | {HYDROXO}   |               | 2026-11-20 | IV    | routine  | iv_switch fine_needle                  |
adv-iv-low-platelets | lab  | platelets   | 40            | 2026-11-01 |       |          |                                        |
adv-iv-low-platelets | lab  | b12         | 500           | 2026-11-01 |       |          |                                        |
"""

# The evidence of a row: lab values rounded (half away from zero) to the lab's decimals (rules:
# report_decimals), with what the lab reported when the unit was another.
EVIDENCE = """
patient_id         | analyte   | value | unit     | expect
ev-b12-pmol        | b12       | 175   | pmol/L   | B12 237 pg/mL on 2026-11-01 (reported 175 pmol/L)
ev-b12-pmol-half   | b12       | 132.9 | pmol/L   | B12 180 pg/mL on 2026-11-01 (reported 132.9 pmol/L)
ev-b12-pmol-low    | b12       | 130   | pmol/L   | B12 176 pg/mL on 2026-11-01 (reported 130 pmol/L)
# in the canonical unit, a value keeps the decimals it was reported with when it has more
ev-b12-179.5       | b12       | 179.5 | pg/mL    | B12 179.5 pg/mL on 2026-11-01
ev-hgb-two-dec     | hgb       | 11.95 | g/dL     | Hgb 11.95 g/dL on 2026-11-01
ev-mma-umol        | mma       | 0.52  | umol/L   | MMA 520 nmol/L on 2026-11-01 (reported 0.52 umol/L)
ev-hgb-mmol        | hgb       | 4.6   | mmol/L   | Hgb 7.4 g/dL on 2026-11-01 (reported 4.6 mmol/L)
ev-hgb-whole       | hgb       | 4     | g/dL     | Hgb 4.0 g/dL on 2026-11-01
ev-wbc-whole       | wbc       | 2     | 10^9/L   | WBC 2.0 10^9/L on 2026-11-01
ev-anc-two         | anc       | 0.2   | 10^9/L   | ANC 0.20 10^9/L on 2026-11-01
ev-plt-per-ul      | platelets | 8,400 | /uL      | Platelets 8 10^9/L on 2026-11-01 (reported 8,400 /uL)
"""
DECIMALS_ASSUMED = {"b12": 0, "mma": 0, "hgb": 1, "wbc": 1, "anc": 2, "platelets": 0}


def _cases() -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for row in parse_table(TABLE):
        grouped.setdefault(row["patient_id"], []).append(row)
    return grouped


CASES = _cases()


def _inputs():
    labs, meds, dxs = [], [], []
    for pid, rows in CASES.items():
        for r in rows:
            if r["kind"] == "lab":
                value, *unit = r["value"].split()
                lab = {"patient_id": pid, "analyte": r["what"], "value": value}
                lab["collected_at"] = r["start"]
                if unit:
                    lab["unit"] = unit[0]
                labs.append(lab)
            elif r["kind"] == "med":
                meds.append(
                    {
                        "patient_id": pid,
                        "medication": r["what"],
                        "start_date": r["start"],
                        "route": r["route"],
                    }
                )
            elif r["kind"] == "dx":
                dxs.append({"patient_id": pid, "code": r["what"], "recorded_at": r["start"]})
    for r in parse_table(EVIDENCE):
        labs.append(
            {
                "patient_id": r["patient_id"],
                "analyte": r["analyte"],
                "value": r["value"],
                "unit": r["unit"],
                "collected_at": "2026-11-01",
            }
        )
    return labs, meds, dxs


@pytest.fixture(scope="module")
def advice_run(tmp_path_factory) -> ScreeningResult:
    labs, meds, dxs = _inputs()
    return screen(
        [], labs, medications=meds, diagnoses=dxs, workdir=tmp_path_factory.mktemp("advice")
    )


def test_the_phrases_are_in_the_rules_file() -> None:
    """Each phrase the table names is in an advice or action text of the rules file."""
    texts = [a["text"] for a in ADVICE.values()] + [
        c.get("action", "") for c in RULES["criteria"].values()
    ]
    for key, text in PHRASES.items():
        assert any(text in t for t in texts), key


@pytest.mark.parametrize("pid", list(CASES), ids=list(CASES))
def test_recommended_action(advice_run, pid: str) -> None:
    rows = CASES[pid]
    first = next(r for r in rows if r["priority"])
    row = advice_run.worklist().get(pid)
    assert row is not None, advice_run.explain(pid)
    action = row["recommended_action"]
    why = f"\n{action}{advice_run.explain(pid)}"
    assert row["priority"] == first["priority"], why
    for key in (first["says"] or "").split():
        assert PHRASES[key] in action, f"missing {key!r}{why}"
    for key in (first["not"] or "").split():
        assert PHRASES[key] not in action, f"should not say {key!r}{why}"
    for key in (first["says"] or "").split():  # each advice once
        assert action.count(PHRASES[key]) == 1, f"{key!r} more than once{why}"


def test_other_action_criteria_are_named_by_title(advice_run) -> None:
    """adv-b12-untreated meets b12_deficient and deficiency_untreated (both high); a patient
    with a routine criterion beside an urgent one is told it by its title."""
    row = advice_run.worklist()["adv-plt-8-deficient"]
    criteria = row["criteria"].split(";")
    assert "severe_cytopenia" in criteria and "b12_deficient" in criteria
    also = row["recommended_action"].split("Also: ")[1]
    assert TITLE["b12_deficient"] in also and TITLE["deficiency_untreated"] in also
    assert "b12_deficient" not in also and "deficiency_untreated" not in also


@pytest.mark.parametrize(
    "case", parse_table(EVIDENCE), ids=[r["patient_id"] for r in parse_table(EVIDENCE)]
)
def test_evidence_is_rounded_as_the_lab_reports(advice_run, case) -> None:
    for analyte, decimals in DECIMALS_ASSUMED.items():
        assert RULES["analytes"][analyte]["report_decimals"] == decimals, analyte
    flags = advice_run.flags
    evidence = [
        e
        for p, e in zip(flags["patient_id"], flags["detail"], strict=True)
        if p == case["patient_id"]
    ]
    assert any(e.startswith(case["expect"]) for e in evidence), (
        evidence,
        advice_run.explain(case["patient_id"]),
    )


# =============================================================================================
# A site profile: switch criteria off, make one context, switch age screening off, own lists
# =============================================================================================
SITE_PROFILE = """
extends = "guidance"

[ruleset]
name = "test-site"
version = "1"
description = "a site that screens differently"

[settings.minimum_age]
value = 16
unit = "years"
source = "site choice"

[criteria.b12_indeterminate]
role = "context"

[criteria.cytopenia_b12_untested]
enabled = false

[criteria.anemia]
enabled = false

[criteria.b12_screening_due.params.screen_by_age]
value = false
unit = "switch"
source = "site choice: no screening by age alone"

[worklists.screening]
title = "Screening and confirmation due"
audience = "pharmacists and primary care"
criteria = ["b12_screening_due", "b12_indeterminate", "cytopenia_b12_untested"]
exclude = ["b12_screening_due:age_only"]

[worklists.age_screening]
title = "Screening by age alone"
audience = "practice nurse"
criteria = ["b12_screening_due:age_only"]
"""


def _born(years: int, days: int = 0) -> str:
    """The birth date of a patient whose ``years``-th birthday is ``days`` after the as-of day."""
    return (AS_OF.replace(year=AS_OF.year - years) + timedelta(days=days)).isoformat()


METFORMIN = "Metformin 500 mg tablet"
# patient | born | labs (analyte=value ...) | metformin since | flags (among SITE_CHECKED) | worklist
SITE = f"""
patient_id         | born           | labs                              | metformin  | flags                           | on_list
site-indeterminate | {_born(60)}    | b12=250                           |            | b12_indeterminate               | -
site-untested-off  | {_born(60)}    | hgb=9.5                           |            | -                               | -
site-pancytopenia  | {_born(60)}    | hgb=9.0 wbc=3.0 platelets=100 b12=500 |        | leukopenia thrombocytopenia pancytopenia | high
site-age-80        | {_born(80)}    |                                   |            | -                               | -
site-age-80-met    | {_born(80)}    |                                   | 2025-01-01 | metformin_long_term b12_screening_due | routine
site-age-16        | {_born(16)}    | b12=150                           |            | b12_deficient deficiency_untreated | high
site-age-17        | {_born(17)}    | b12=150                           |            | b12_deficient deficiency_untreated | high
site-age-15        | {_born(16, 1)} | b12=150                           |            | -                               | -
"""
SITE_CHECKED = frozenset(
    {
        "b12_indeterminate",
        "cytopenia_b12_untested",
        "anemia",
        "leukopenia",
        "thrombocytopenia",
        "pancytopenia",
        "metformin_long_term",
        "b12_screening_due",
        "b12_deficient",
        "deficiency_untreated",
    }
)


def _site_inputs():
    patients, labs, meds = [], [], []
    for r in parse_table(SITE):
        pid = r["patient_id"]
        patients.append({"patient_id": pid, "birth_date": r["born"]})
        for item in (r["labs"] or "").split():
            analyte, value = item.split("=")
            labs.append({"patient_id": pid, "analyte": analyte, "value": value})
        if r["metformin"]:
            meds.append({"patient_id": pid, "medication": METFORMIN, "start_date": r["metformin"]})
    return patients, labs, meds


def _site_run(workdir, rules) -> ScreeningResult:
    patients, labs, meds = _site_inputs()
    return screen(patients, labs, medications=meds, workdir=workdir, rules=rules)


@pytest.fixture(scope="module")
def site_run(tmp_path_factory) -> ScreeningResult:
    folder = tmp_path_factory.mktemp("site")
    profile = folder / "site.toml"
    profile.write_text(SITE_PROFILE, encoding="utf-8")
    return _site_run(folder, profile)


@pytest.fixture(scope="module")
def guidance_site_run(tmp_path_factory) -> ScreeningResult:
    """The same patients under the guidance profile (which every site case differs from)."""
    return _site_run(tmp_path_factory.mktemp("guidance-site"), None)


SITE_ROWS = parse_table(SITE)


@pytest.mark.parametrize("row", SITE_ROWS, ids=[r["patient_id"] for r in SITE_ROWS])
def test_site_profile(site_run, row) -> None:
    pid = row["patient_id"]
    why = site_run.explain(pid)
    expected = frozenset((row["flags"] or "").split()) - {"-"}
    assert site_run.criteria(pid) & SITE_CHECKED == expected, why
    on_list = site_run.worklist().get(pid)
    if row["on_list"] == "-":
        assert on_list is None, why
    else:
        assert on_list is not None and on_list["priority"] == row["on_list"], why


# the cases a site switch changes (the others come out the same under both profiles)
SWITCHED = [r for r in SITE_ROWS if r["patient_id"] not in ("site-age-80-met", "site-age-15")]


@pytest.mark.parametrize("row", SWITCHED, ids=[r["patient_id"] for r in SWITCHED])
def test_guidance_profile_differs_where_the_site_switched(guidance_site_run, site_run, row) -> None:
    """Each switched case comes out otherwise under the guidance profile: every switch did
    something."""
    pid = row["patient_id"]
    got = (guidance_site_run.criteria(pid), pid in guidance_site_run.worklist())
    site = (site_run.criteria(pid), pid in site_run.worklist())
    assert got != site, guidance_site_run.explain(pid)


def test_age_only_patients_have_their_own_list(tmp_path) -> None:
    """Under the guidance profile, with a site's lists: an 80-year-old never tested is on the
    age list and not on the screening list; one with long-term metformin is on the screening
    list and not on the age list."""
    profile = tmp_path / "lists.toml"
    lists = SITE_PROFILE[SITE_PROFILE.index("[worklists.screening]") :]
    profile.write_text(
        'extends = "guidance"\n[ruleset]\nname = "lists"\nversion = "1"\n'
        f'description = "own lists"\n\n{lists}',
        encoding="utf-8",
    )
    patients, labs, meds = _site_inputs()  # the published audience lists
    result = screen_through_files(patients, labs, medications=meds, workdir=tmp_path, rules=profile)

    def listed(name: str) -> set[str]:
        with (result.out / f"worklist_{name}.csv").open(encoding="utf-8", newline="") as fh:
            return {r["patient_id"] for r in csv.DictReader(fh)}

    assert "site-age-80" in listed("age_screening")
    assert "site-age-80" not in listed("screening")
    assert "site-age-80-met" in listed("screening")
    assert "site-age-80-met" not in listed("age_screening")


# =============================================================================================
# The minimum age (guidance: 18): children are not screened, and the audit counts them
# =============================================================================================
MINIMUM_AGE = f"""
patient_id      | born           | expect
age-19          | {_born(19)}    | b12_deficient deficiency_untreated
age-18-today    | {_born(18)}    | b12_deficient deficiency_untreated
age-17          | {_born(18, 1)} | -
age-10          | {_born(10)}    | -
"""


def test_children_are_counted_not_screened(tmp_path) -> None:
    assert RULES["settings"]["minimum_age"]["value"] == 18
    rows = parse_table(MINIMUM_AGE)
    patients = [{"patient_id": r["patient_id"], "birth_date": r["born"]} for r in rows]
    labs = [{"patient_id": r["patient_id"], "analyte": "b12", "value": "150"} for r in rows]
    result = screen_through_files(patients, labs, workdir=tmp_path)  # and the published audit
    for r in rows:
        expected = set((r["expect"] or "").split()) - {"-"}
        assert result.criteria(r["patient_id"]) == expected, result.explain(r["patient_id"])
        assert (r["patient_id"] in result.worklist()) == bool(expected)
    with (result.out / "audit" / "funnel.csv").open(encoding="utf-8", newline="") as fh:
        funnel = {r["item"]: r for r in csv.DictReader(fh)}
    assert int(funnel["under_minimum_age"]["patients"]) == 2
    assert int(funnel["patients"]["patients"]) == 4
