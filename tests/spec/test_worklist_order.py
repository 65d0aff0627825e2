"""The worklist is most urgent first: priority (the rules' scale), then more criteria met,
then patient_id. The expected order below is worked out by hand from the rules file's
priorities; the patient ids are chosen so that no other ordering gives the same list."""

from __future__ import annotations

try:
    from harness import screen
except ModuleNotFoundError:  # tests/ imported as a package
    from tests.harness import screen

# collected 3 days before as-of unless given: too recent for deficiency_untreated (> 7 days)
RECENT = "2026-11-21"
LABS = [
    # routine: B12 250 pg/mL is indeterminate (180 <= B12 < 350)
    {"patient_id": "a-routine", "analyte": "b12", "value": "250", "collected_at": RECENT},
    # high, one criterion: b12_deficient (B12 < 180), recent
    {"patient_id": "b-high-one", "analyte": "b12", "value": "150", "collected_at": RECENT},
    {"patient_id": "e-high-one", "analyte": "b12", "value": "160", "collected_at": RECENT},
    # high, two criteria: b12_deficient and deficiency_untreated (23 days old, no therapy)
    {"patient_id": "c-high-two", "analyte": "b12", "value": "150"},
    # urgent: Hgb 4.5 g/dL is critical_anemia (< 5.0), also anemia (context)
    {"patient_id": "d-urgent", "analyte": "hgb", "value": "4.5", "collected_at": RECENT},
    # not on the worklist: a normal B12
    {"patient_id": "0-normal", "analyte": "b12", "value": "500", "collected_at": RECENT},
]
EXPECTED = [
    ("d-urgent", "urgent"),
    ("c-high-two", "high"),
    ("b-high-one", "high"),
    ("e-high-one", "high"),
    ("a-routine", "routine"),
]


def test_the_worklist_is_most_urgent_first(tmp_path) -> None:
    result = screen(labs=LABS, workdir=tmp_path)
    rows = [(r["patient_id"], r["priority"]) for r in result.worklist_rows()]
    assert rows == EXPECTED
    assert result.criteria("c-high-two") >= {"b12_deficient", "deficiency_untreated"}
