"""The rules file is checked before any data is read; bad keys, values and types are named."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline import resources
from pipeline.cli import cli
from pipeline.errors import RulesError
from pipeline.rules import describe_criterion, load_rules

GUIDANCE = resources.default_rules_path().read_text(encoding="utf-8")


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("profile", ["guidance", "primary-sources"])
def test_shipped_profiles_load_and_name_themselves(profile: str) -> None:
    rules = load_rules(profile)
    assert rules.spec.ruleset.name == profile
    assert rules.version.startswith(f"{profile}@")
    assert len(rules.sha256) == 64


def test_profiles_differ_where_primary_sources_differ() -> None:
    g = load_rules("guidance").variables()
    p = load_rules("primary-sources").variables()
    assert g["mma_elevated.above_nmol_l"] == 271 and p["mma_elevated.above_nmol_l"] == 400
    assert (
        g["homocysteine_elevated.above_umol_l"] == 10
        and p["homocysteine_elevated.above_umol_l"] == 15
    )
    assert g["b12_deficient.below_pg_ml"] == 180 and p[
        "b12_deficient.below_pg_ml"
    ] == pytest.approx(200.6)


def test_every_value_names_its_source() -> None:
    spec = tomllib.loads(GUIDANCE)
    for cid, crit in spec["criteria"].items():
        for name, param in crit.get("params", {}).items():
            assert param["source"].strip(), f"{cid}.{name} has no source"
    for aid, analyte in spec["analytes"].items():
        assert analyte["source"].strip(), f"analyte {aid} has no source"


@pytest.mark.parametrize(
    ("old", "new", "named"),
    [
        # an unknown key inside a criterion
        (
            'role = "action"\npriority = "high"\nsummary = "latest serum B12 below',
            'role = "action"\npriorty = "high"\npriority = "high"\nsummary = "latest serum B12 below',
            "criteria.b12_deficient.priorty",
        ),
        # a wrong type
        ("value = 180\n", 'value = "180"\n', "criteria.b12_deficient.params.below_pg_ml.value"),
        # a missing value that the SQL reads
        (
            "[criteria.mma_elevated.params.above_nmol_l]",
            "[criteria.mma_elevated.params.above_nmol]",
            "mma_elevated.above_nmol_l",
        ),
        # a missing field of a parameter
        (
            'value = 271\nunit = "nmol/L"\n',
            "value = 271\n",
            "criteria.mma_elevated.params.above_nmol_l.unit",
        ),
        # an unknown top-level key
        ("[ruleset]", "[rulesett]\nname='x'\n[ruleset]", "rulesett"),
        # a negative window
        (
            'lookback_days = 365\nreport_decimals = 0\nsource = "Regenstrief LOINC',
            'lookback_days = -1\nreport_decimals = 0\nsource = "Regenstrief LOINC',
            "analytes.b12.lookback_days",
        ),
    ],
)
def test_bad_rules_fail_naming_the_key(tmp_path: Path, old: str, new: str, named: str) -> None:
    assert old in GUIDANCE, "the test's anchor text is no longer in guidance.toml"
    path = _write(tmp_path, GUIDANCE.replace(old, new, 1))
    with pytest.raises(RulesError) as info:
        load_rules(path)
    assert named in str(info.value)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (  # a value that may be a number, a switch or a list: one line, not one per type
            "value = 180\n",
            'value = "180"\n',
            "criteria.b12_deficient.params.below_pg_ml.value: "
            "expected true or false, a number or a list, got text",
        ),
        (
            "lookback_days = 365\nreport_decimals = 0",
            'lookback_days = "a year"\nreport_decimals = 0',
            "analytes.b12.lookback_days: expected a whole number, got text",
        ),
        (
            'name = "guidance"',
            "name = 2026",
            "ruleset.name: expected text in quotes, got a whole number",
        ),
    ],
)
def test_a_wrong_type_is_one_line_naming_the_key_and_the_expected_type(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    assert old in GUIDANCE, "the test's anchor text is no longer in guidance.toml"
    with pytest.raises(RulesError) as info:
        load_rules(_write(tmp_path, GUIDANCE.replace(old, new, 1)))
    assert str(info.value) == f"rules file rules.toml: {message}"


def test_a_parameter_no_sql_uses_is_an_unknown_key(tmp_path: Path) -> None:
    extra = (
        '\n[criteria.folate_low.params.below_nmol_l]\nvalue = 9\nunit = "nmol/L"\nsource = "x"\n'
    )
    path = _write(tmp_path, GUIDANCE.replace("[criteria.anemia]", extra + "\n[criteria.anemia]", 1))
    with pytest.raises(RulesError, match=r"unknown key folate_low\.below_nmol_l"):
        load_rules(path)


def test_a_loinc_code_under_two_analytes_is_refused(tmp_path: Path) -> None:
    path = _write(
        tmp_path, GUIDANCE.replace('loinc = ["13964-2"]', 'loinc = ["13964-2", "2132-9"]', 1)
    )
    with pytest.raises(RulesError, match="2132-9"):
        load_rules(path)


def test_cli_reports_bad_rules_in_one_line_before_reading_data(tmp_path: Path) -> None:
    path = _write(tmp_path, GUIDANCE.replace("value = 180\n", 'value = "high"\n', 1))
    result = CliRunner().invoke(
        cli,
        [
            "run",
            "--extracts",
            str(tmp_path / "does-not-exist"),
            "--out",
            str(tmp_path / "out"),
            "--rules",
            str(path),
            "--db",
            str(tmp_path / "x.duckdb"),
        ],
    )
    assert result.exit_code == RulesError.exit_code
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "below_pg_ml" in lines[0]
    assert "Traceback" not in result.output
    assert not (tmp_path / "x.duckdb").exists(), (
        "the database was opened before the rules were checked"
    )


def test_unknown_profile_lists_the_shipped_ones() -> None:
    with pytest.raises(RulesError, match="guidance, primary-sources"):
        load_rules("nonsense")


def test_catalogue_descriptions_are_filled_from_the_rules() -> None:
    rules = load_rules("guidance")
    assert describe_criterion(rules, "b12_deficient") == "latest serum B12 below 180 pg/mL"
    assert "180 to 350 pg/mL" in describe_criterion(rules, "b12_indeterminate")
    for cid in rules.criteria_order:
        assert "{" not in describe_criterion(rules, cid), cid


@pytest.mark.parametrize(
    ("scale", "named"),
    [
        ('["urgent", "routine"]', "priority 'high' is not on the scale"),  # b12_deficient's
        ('["urgent", "high", "urgent", "routine"]', "distinct"),
        ('["urgent", "high", "routine", "total"]', "'total'"),
        ("[]", "distinct"),
    ],
)
def test_the_priority_scale_is_checked(tmp_path: Path, scale: str, named: str) -> None:
    old = 'scale = ["urgent", "high", "routine"]'
    assert old in GUIDANCE
    with pytest.raises(RulesError, match=named):
        load_rules(_write(tmp_path, GUIDANCE.replace(old, f"scale = {scale}", 1)))


def test_a_site_may_rename_the_scale_and_the_worklist_follows(tmp_path: Path) -> None:
    """The scale is data: a profile that renames the levels gets them in every output."""
    from harness import screen_through_files

    text = GUIDANCE.replace(
        'scale = ["urgent", "high", "routine"]', 'scale = ["now", "soon", "later"]'
    )
    for old, new in (
        ('priority = "urgent"', 'priority = "now"'),
        ('priority = "high"', 'priority = "soon"'),
        ('priority = "routine"', 'priority = "later"'),
    ):
        text = text.replace(old, new)
    rules = _write(tmp_path, text)
    labs = [
        {"patient_id": "p1", "analyte": "b12", "value": "150"},
        {"patient_id": "p2", "analyte": "hgb", "value": "4.5"},
    ]
    result = screen_through_files(labs=labs, workdir=tmp_path / "run", rules=rules)
    assert [(r["patient_id"], r["priority"]) for r in result.worklist_rows()] == [
        ("p2", "now"),
        ("p1", "soon"),
    ]
    import json

    counts = json.loads((result.out / "run.json").read_text())["counts"]["worklist"]
    assert list(counts) == ["now", "soon", "later", "total"]


def _profile(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(
        'extends = "guidance"\n[ruleset]\nname = "site"\nversion = "1"\ndescription = "d"\n' + body,
        encoding="utf-8",
    )
    return path


def test_a_site_profile_switches_a_criterion_off_or_to_context(tmp_path: Path) -> None:
    rules = load_rules(
        _profile(
            tmp_path,
            "[criteria.b12_screening_due]\nenabled = false\n"
            '[criteria.b12_indeterminate]\nrole = "context"\n',
        )
    )
    assert not rules.spec.criteria["b12_screening_due"].enabled
    demoted = rules.spec.criteria["b12_indeterminate"]
    assert demoted.role == "context" and demoted.priority is None and demoted.action is None
    assert load_rules("guidance").spec.criteria["b12_screening_due"].enabled


def test_a_context_criterion_made_action_needs_a_priority_and_action(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="criteria.anemia"):
        load_rules(_profile(tmp_path, '[criteria.anemia]\nrole = "action"\n'))
    made_action = '[criteria.anemia]\nrole = "action"\npriority = "routine"\naction = "Review."\n'
    # ... and a list, so that its patients reach an audience
    with pytest.raises(RulesError, match="action criterion anemia is on no list"):
        load_rules(_profile(tmp_path, made_action))
    listed = '[worklists.anemia]\ntitle = "Anaemia"\naudience = "GP"\ncriteria = ["anemia"]\n'
    rules = load_rules(_profile(tmp_path, made_action + listed))
    assert rules.spec.criteria["anemia"].priority == "routine"


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (
            '[advice.x]\ntext = "t"\nwhen_any = ["b12_defcient"]\nsource = "s"\n',
            "unknown criterion 'b12_defcient'",
        ),
        ('[advice.x]\ntext = "t"\nwhen_any = []\nsource = "s"\n', "when_any"),
        (
            '[worklists.screening]\ntitle = "t"\naudience = "a"\ncriteria = ["b12_screening_due"]\n'
            'exclude = ["b12_screenin_due:age_only"]\n',
            "unknown criterion 'b12_screenin_due:age_only'",
        ),
    ],
)
def test_advice_and_list_items_name_known_criteria(tmp_path: Path, body: str, named: str) -> None:
    with pytest.raises(RulesError, match=named):
        load_rules(_profile(tmp_path, body))


def test_every_criterion_has_a_title_and_every_advice_a_source() -> None:
    spec = tomllib.loads(GUIDANCE)
    for cid, crit in spec["criteria"].items():
        assert crit["title"].strip() and crit["title"] != cid, cid
    for key, advice in spec["advice"].items():
        assert advice["source"].strip(), key


def test_sources_name_documents_not_files_or_sections() -> None:
    """Every source in the shipped profiles is a document's title and year (or a project
    choice), never an internal file name or a section number of another document."""
    for profile in ("guidance.toml", "primary-sources.toml"):
        text = (resources.rules_dir() / profile).read_text(encoding="utf-8")
        for bad in ("seed", ".txt", "§", "contract", "clinical" + "_facts"):
            assert bad not in text.lower(), (profile, bad)
