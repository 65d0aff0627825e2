"""The code lists in data/ are well-formed, sourced, and agree with the public code tables."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import simple_icd_10_cm as icd

from pipeline import resources
from pipeline.errors import RulesError
from pipeline.reports.catalogue import render_markdown, render_semantics
from pipeline.rules import load_rules

DATA = resources.data_dir()
ROOT = DATA.parent
ATC_REFERENCE = ROOT.parent / "shared" / "reference" / "atc2026.csv"


def _rows(name: str) -> list[dict[str, str]]:
    with (DATA / name).open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("name", ["drug_codes.csv", "diagnosis_codes.csv", "lab_units.csv"])
def test_every_row_names_its_source(name: str) -> None:
    for row in _rows(name):
        assert row["source"].strip(), row


def test_diagnosis_codes_are_real_icd10cm_codes() -> None:
    for row in _rows("diagnosis_codes.csv"):
        assert icd.is_valid_item(row["code"]), row["code"]


def test_category_codes_cover_their_children() -> None:
    # the prefix match reaches every child of a non-billable category (ICD-10-CM April 2026)
    prefixes = {row["code"].replace(".", "") for row in _rows("diagnosis_codes.csv")}
    for category in ("K50", "M35.0", "E10", "Q90", "K29.4"):
        children = icd.get_descendants(category)
        assert children, category
        assert all(any(c.replace(".", "").startswith(p) for p in prefixes) for c in children)


@pytest.mark.skipif(not ATC_REFERENCE.exists(), reason="shared/reference not beside the project")
def test_atc_codes_exist_in_the_who_index() -> None:
    with ATC_REFERENCE.open(encoding="utf-8", newline="") as f:
        known = {row["atc_code"] for row in csv.DictReader(f)}
    # pregabalin's old code, from the 2021 index, is kept on purpose (it moved to N02BF02)
    retired = {"N03AX16"}
    for row in _rows("drug_codes.csv"):
        if row["code_system"] == "atc" and row["code"] not in retired:
            assert row["code"] in known, row


def test_potassium_competitive_blockers_are_not_ppis() -> None:
    ppi_atc = {
        r["code"]
        for r in _rows("drug_codes.csv")
        if r["drug_group"] == "ppi" and r["code_system"] == "atc"
    }
    assert {"A02BC08", "A02BC09"}.isdisjoint(ppi_atc)
    assert "A02BC01" in ppi_atc


def test_a_name_or_code_belongs_to_one_drug_group() -> None:
    seen: dict[tuple[str, str], str] = {}
    for row in _rows("drug_codes.csv"):
        key = (row["code_system"], row["code"].lower())
        assert seen.setdefault(key, row["drug_group"]) == row["drug_group"], key


def test_docs_catalogue_is_generated_from_the_rules() -> None:
    for profile, doc in (
        ("guidance", "criteria.md"),
        ("primary-sources", "criteria-primary-sources.md"),
    ):
        expected = render_markdown(load_rules(profile))
        actual = (ROOT / "docs" / doc).read_text(encoding="utf-8")
        assert actual == expected, (
            f"docs/{doc} is stale: run b12screen catalogue --rules {profile} --out docs/{doc}"
        )


def test_docs_semantics_is_generated_from_the_rules() -> None:
    expected = render_semantics(load_rules("guidance"))
    actual = (ROOT / "docs" / "criteria-semantics.md").read_text(encoding="utf-8")
    assert actual == expected, (
        "docs/criteria-semantics.md is stale: run b12screen catalogue --semantics "
        "--rules guidance --out docs/criteria-semantics.md"
    )


def test_list_parameters_must_name_known_groups(tmp_path: Path) -> None:
    text = resources.default_rules_path().read_text(encoding="utf-8")
    bad = tmp_path / "r.toml"
    bad.write_text(
        text.replace('value = ["metformin"]', 'value = ["metfromin"]', 1), encoding="utf-8"
    )
    with pytest.raises(
        RulesError, match="metformin_long_term.drug_groups: unknown drug group 'metfromin'"
    ):
        load_rules(bad)


def test_a_profile_extends_another_and_overrides_only_what_it_names(tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    site.write_text(
        'extends = "guidance"\n[ruleset]\nname = "site"\nversion = "1"\n'
        '[settings.use_lab_reference_range]\nvalue = true\nunit = "switch"\nsource = "site policy"\n',
        encoding="utf-8",
    )
    rules = load_rules(site)
    base = load_rules("guidance")
    assert rules.version == "site@1"
    assert rules.variables()["settings.use_lab_reference_range"] is True
    changed = {k for k, v in rules.variables().items() if base.variables()[k] != v}
    assert changed == {"settings.use_lab_reference_range"}
    assert rules.sha256 != base.sha256
