"""A site's own mapping files (contract section 2b; rules profile ``[mappings]``).

A site row replaces the shipped row of the same key (or unmaps it), a new key extends the
table, every row names who decided it, a malformed file stops the run at rules load, and the
files' bytes are part of the rules hash that every output carries.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.errors import RulesError
from pipeline.rules import load_rules
from tests.harness import AS_OF, LAB_COLUMNS, PATIENT_COLUMNS, screen, write_csv

PROFILE = """extends = "guidance"
[ruleset]
name = "site"
version = "1"
description = "a site with its own mappings"

[mappings]
{lines}
"""
LAB_HEADER = "test_name_key,analyte,note,decided_by\n"
DRUG_HEADER = "drug_group,ingredient,code_system,code,source,decided_by\n"
DX_HEADER = "condition,code,description,source,decided_by\n"


def _site(tmp_path: Path, **files: str) -> Path:
    """A profile naming each file under mappings/ (relative to the profile)."""
    (tmp_path / "mappings").mkdir(parents=True, exist_ok=True)
    lines = []
    for table, text in files.items():
        (tmp_path / "mappings" / f"{table}.csv").write_text(text, encoding="utf-8")
        lines.append(f'{table} = "mappings/{table}.csv"')
    profile = tmp_path / "site.toml"
    profile.write_text(PROFILE.format(lines="\n".join(lines)), encoding="utf-8")
    return profile


# -- labs: override, extension, unmapping ---------------------------------------------------
LABS = [
    # 'Neutrophils' in % : the shipped table reads it as the absolute count (anc), so the %
    # unit has no conversion and the row is quarantined
    {"patient_id": "p-pct", "test_name": "Neutrophils", "value": "45", "unit": "%"},
    # a local name the shipped table lacks: extended by the site to B12
    {"patient_id": "p-local", "test_name": "Cobalamin  (Local)", "value": "120", "unit": "pg/mL"},
    # a shipped name the site unmaps (say its 'B12' is an unrelated local panel)
    {"patient_id": "p-unmapped", "test_name": "B12", "value": "120", "unit": "pg/mL"},
]
SITE_LABS = (
    LAB_HEADER
    + "Neutrophils,neutrophils_pct,our analyser reports it as a share,Dr A (lab lead)\n"
    + "cobalamin (local),b12,,Lab committee 2026-11\n"
    + "b12,,our B12 panel is not serum B12,Lab committee 2026-11\n"
)


def test_shipped_tables_read_neutrophils_as_a_count_and_ignore_local_names(tmp_path) -> None:
    result = screen(labs=LABS, workdir=tmp_path)
    assert [q["reason"] for q in result.quarantined("p-pct")], "a % read as a count"
    assert "b12_deficient" in result.criteria("p-unmapped")
    assert "b12_deficient" not in result.criteria("p-local")


def test_a_site_lab_mapping_overrides_extends_and_unmaps(tmp_path) -> None:
    profile = _site(tmp_path, lab_test_names=SITE_LABS)
    result = screen(labs=LABS, workdir=tmp_path / "run", rules=profile)
    assert result.quarantined("p-pct") == []  # now the percentage analyte
    assert "b12_deficient" in result.criteria("p-local")  # extended
    assert "b12_deficient" not in result.criteria("p-unmapped")  # unmapped
    # every other shipped name still maps (here the spelled-out one)
    other = screen(
        labs=[{"patient_id": "p", "test_name": "Vitamin B12", "value": "120", "unit": "pg/mL"}],
        workdir=tmp_path / "other",
        rules=profile,
    )
    assert "b12_deficient" in other.criteria("p")


def test_site_drug_and_diagnosis_mappings(tmp_path) -> None:
    profile = _site(
        tmp_path,
        drug_codes=DRUG_HEADER + "metformin,metformin,name,Glucomet XR,local formulary,Pharmacy\n",
        diagnosis_codes=DX_HEADER + "pernicious_anemia,D51,local choice,audit 2026,Dr B\n",
        diagnosis_codes_snomed=DX_HEADER + "pernicious_anemia,84027009,,,Dr B\n"
        "crohns_disease,999999999,local concept,local,Dr B\n",
    )
    patients = [{"patient_id": p} for p in ("p-drug", "p-icd", "p-sct", "p-sct-local")]
    meds = [
        {
            "patient_id": "p-drug",
            "medication": "GLUCOMET XR 500 mg",
            "start_date": "2020-01-01",
        }
    ]
    dx = [
        {"patient_id": "p-icd", "code": "D51.8", "recorded_at": "2024-01-01"},
        {
            "patient_id": "p-sct",
            "code": "84027009",
            "code_system": "snomed",
            "recorded_at": "2024-01-01",
        },
        {
            "patient_id": "p-sct-local",
            "code": "999999999",
            "code_system": "snomed",
            "recorded_at": "2024-01-01",
        },
    ]
    shipped = screen(patients, [], medications=meds, diagnoses=dx, workdir=tmp_path / "a")
    site = screen(
        patients, [], medications=meds, diagnoses=dx, workdir=tmp_path / "b", rules=profile
    )
    assert "metformin_long_term" not in shipped.criteria("p-drug")
    assert "metformin_long_term" in site.criteria("p-drug")
    # D51 (all of D51) instead of D51.0 only
    assert "risk_condition" not in shipped.criteria("p-icd")
    assert "risk_condition" in site.criteria("p-icd")
    assert "risk_condition" in site.criteria("p-sct") and "risk_condition" in shipped.criteria(
        "p-sct"
    )
    assert "risk_condition" in site.criteria("p-sct-local")


# -- refused files --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("test_name_key,analyte,note\nneutrophils,neutrophils_pct,\n", "columns must be"),
        (LAB_HEADER + "neutrophils,neutrophils_pct,,\n", "row 2: decided_by is empty"),
        (LAB_HEADER + "neutrophils,neutrophils_pct,,  \n", "row 2: decided_by is empty"),
        (LAB_HEADER + "neutrophils,neutrophil_pct,,Dr A\n", "unknown analyte 'neutrophil_pct'"),
        (LAB_HEADER + ",b12,,Dr A\n", "row 2: test_name_key is empty"),
        (LAB_HEADER + "x,b12,,Dr A,extra\n", "row 2: has more cells than columns"),
        (LAB_HEADER + "x,b12,,Dr A\nX ,b12,,Dr B\n", "row 3: the same mapping"),
        (LAB_HEADER + "x,b12,,Dr A\nx,,,Dr B\n", "row 3: unmaps a key"),
        (LAB_HEADER + 'x,b12,"unclosed,Dr A\n', "not a readable CSV"),
        (LAB_HEADER + "x,b12,,Dr A,comment\n", "more cells"),
        ("test_name_key,analyte,note,decided_by,comment\n", "(unknown comment)"),
    ],
)
def test_a_malformed_site_file_is_refused_at_rules_load(tmp_path, text, named) -> None:
    profile = _site(tmp_path, lab_test_names=text)
    with pytest.raises(RulesError) as err:
        load_rules(profile)
    message = str(err.value)
    assert named in message and "\n" not in message
    assert "lab_test_names.csv" in message


def test_other_refusals(tmp_path) -> None:
    profile = _site(tmp_path, drug_codes=DRUG_HEADER + "metformin,x,ndc,123,src,Dr A\n")
    with pytest.raises(RulesError, match="code_system must be one of name, rxnorm, atc"):
        load_rules(profile)
    profile = _site(tmp_path, drug_codes=DRUG_HEADER + "metformine,x,name,abc,src,Dr A\n")
    with pytest.raises(RulesError, match="unknown drug group 'metformine'"):
        load_rules(profile)
    profile = _site(tmp_path, diagnosis_codes=DX_HEADER + "pernicious,D51,,,Dr A\n")
    with pytest.raises(RulesError, match="unknown condition 'pernicious'"):
        load_rules(profile)
    (tmp_path / "mappings" / "bad.csv").write_bytes(b"\xff\xfe\x00")
    profile.write_text(PROFILE.format(lines='lab_test_names = "mappings/bad.csv"'), "utf-8")
    with pytest.raises(RulesError, match="not UTF-8"):
        load_rules(profile)
    profile.write_text(PROFILE.format(lines='lab_test_names = "mappings/none.csv"'), "utf-8")
    with pytest.raises(RulesError, match="file not found"):
        load_rules(profile)
    profile.write_text(PROFILE.format(lines='lab_tests = "mappings/bad.csv"'), "utf-8")
    with pytest.raises(RulesError, match="mappings.lab_tests"):
        load_rules(profile)


def test_the_rules_hash_covers_the_mapping_files(tmp_path) -> None:
    profile = _site(tmp_path, lab_test_names=SITE_LABS)
    first = load_rules(profile)
    assert [m.table for m in first.mappings] == ["lab_test_names"]
    (tmp_path / "mappings" / "lab_test_names.csv").write_text(
        SITE_LABS.replace("Dr A", "Dr C"), encoding="utf-8"
    )
    assert load_rules(profile).sha256 != first.sha256


def test_a_profile_extending_a_site_profile_keeps_its_paths_relative(tmp_path) -> None:
    _site(tmp_path, lab_test_names=SITE_LABS)
    child = tmp_path / "ward" / "ward.toml"
    child.parent.mkdir()
    child.write_text('extends = "../site.toml"\n[ruleset]\nversion = "2"\n', encoding="utf-8")
    assert [m.path.name for m in load_rules(child).mappings] == ["lab_test_names.csv"]


# -- end to end through the CLI -------------------------------------------------------------
def test_end_to_end_a_bad_file_is_the_rules_exit_code_and_a_good_one_is_traced(tmp_path) -> None:
    extracts = tmp_path / "extracts"
    extracts.mkdir()
    write_csv(
        extracts / "patients.csv",
        PATIENT_COLUMNS,
        [{"patient_id": p, "birth_date": "1950-01-01", "sex": "F"} for p in ("p-pct", "p-local")],
    )
    rows = [{c: r.get(c, "") for c in LAB_COLUMNS} for r in LABS[:2]]
    for r in rows:
        r["collected_at"] = "2026-10-01"
    write_csv(extracts / "labs.csv", LAB_COLUMNS, rows)

    def run(profile: Path, name: str):
        return CliRunner().invoke(
            cli,
            [
                "run",
                "--extracts",
                str(extracts),
                "--out",
                str(tmp_path / name),
                "--db",
                str(tmp_path / f"{name}.duckdb"),
                "--as-of",
                AS_OF.isoformat(),
                "--rules",
                str(profile),
            ],
        )

    bad = _site(
        tmp_path / "bad-site", lab_test_names=LAB_HEADER + "neutrophils,neutrophils_pct,,\n"
    )
    result = run(bad, "bad")
    assert result.exit_code == RulesError.exit_code, result.output
    assert len(result.output.strip().splitlines()) == 1 and "decided_by" in result.output

    good = _site(tmp_path / "good-site", lab_test_names=SITE_LABS)
    result = run(good, "good")
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "good" / "current" / "run.json").read_text("utf-8"))
    assert record["rules"]["sha256"] == load_rules(good).sha256
    assert record["counts"]["rows_quarantined"].get("labs", 0) == 0
    assert record["counts"]["patients_by_criterion"].get("b12_deficient") == 1
    # the audit says which format was read and what each mapping recognised (counts only)
    site_file = "site lab_test_names: lab_test_names.csv"
    recognised = {
        (r["kind"], r["mapping"]): r["rows"] for r in record["input_format"]["recognised"]
    }
    assert recognised[("labs", site_file)] == 2  # Neutrophils (%) and the local B12 name
    assert recognised[("labs", "data/lab_test_names.csv")] == 0
    assert recognised[("labs", "LOINC code (rules file analytes)")] == 0
    audit = json.loads((tmp_path / "good" / "current" / "audit.json").read_text("utf-8"))
    assert audit["provenance"]["input_format"]["format"] == "canonical"
    rows = {r["item"]: r["rows"] for r in audit["tables"]["input_format"]}
    assert rows[f"stored valid rows recognised by {site_file}"] == 2
    table = (tmp_path / "good" / "current" / "audit" / "input_format.csv").read_text("utf-8")
    assert site_file in table and "p-local" not in table
    html = (tmp_path / "good" / "current" / "audit.html").read_text("utf-8")
    assert "Input format and mappings" in html and site_file in html
    # each site file with its own SHA-256 (the rules SHA-256 covers them all)
    (mapping,) = record["input_format"]["site_mappings"]
    digest = hashlib.sha256(
        (tmp_path / "good-site" / "mappings" / "lab_test_names.csv").read_bytes()
    )
    assert mapping == {
        "table": "lab_test_names",
        "file": "lab_test_names.csv",
        "sha256": digest.hexdigest(),
        "rows": 3,
    }
    assert digest.hexdigest() in html
