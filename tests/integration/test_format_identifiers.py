"""A site's own identifiers ([identifiers] of its rules profile) from OMOP, FHIR and Synthea
sources: FHIR Patient.identifier by type or system (and the Patient's name), OMOP
person_source_value, Synthea SSN/DRIVERS/PASSPORT/FIRST/LAST. They reach the clinician
worklists only, as from a canonical patients file (tests/integration/test_identifiers.py).

The expected values are read off the sample files with Python's json and csv modules, not
through the adapters.
"""

from __future__ import annotations

import csv
import json
from datetime import date
from pathlib import Path

import pytest

from pipeline.errors import RulesError
from pipeline.rules import load_rules
from pipeline.runner import RunConfig, run_screening

REALDATA = Path(__file__).resolve().parents[3] / "shared" / "realdata"
needs_samples = pytest.mark.skipif(not REALDATA.exists(), reason="shared/realdata not beside")
PROFILE = """extends = "guidance"
[ruleset]
name = "site"
version = "1"
description = "identifiers from a real format"
[identifiers]
{body}
"""


def _profile(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(PROFILE.format(body=body), encoding="utf-8")
    return path


def _worklist(folder: Path, tmp_path: Path, as_of: date, rules: Path) -> list[dict[str, str]]:
    result = run_screening(
        RunConfig(
            extracts=folder,
            out=tmp_path / "out",
            as_of=as_of,
            db=tmp_path / "db.duckdb",
            rules=rules,
        )
    )
    with (result.out / "current" / "worklist.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows, "the sample puts someone on the worklist"
    flags = (result.out / "current" / "quarantine.csv").read_text("utf-8")
    run_json = (result.out / "current" / "run.json").read_text("utf-8")
    audit = (result.out / "current" / "audit.json").read_text("utf-8")
    for row in rows:  # nowhere but the worklists
        for column in ("MRN", "SSN", "mrn", "name", "SSN number"):
            value = row.get(column)
            if value:
                assert value not in run_json and value not in audit and value not in flags
    return rows


@needs_samples
def test_fhir_patient_identifier_by_type_and_system_and_the_name(tmp_path: Path) -> None:
    folder = REALDATA / "fhir-r4-synthea-617"
    expected = {}
    for line in (folder / "Patient.ndjson").read_text("utf-8").splitlines():
        patient = json.loads(line)
        ids = patient.get("identifier", [])
        mrn = next(
            i["value"]
            for i in ids
            if any(c.get("code") == "MR" for c in i.get("type", {}).get("coding", []))
        )
        ssn = next(i["value"] for i in ids if i.get("system") == "http://hl7.org/fhir/sid/us-ssn")
        name = patient["name"][0]
        full = " ".join([*name.get("given", []), name["family"]])
        expected[patient["id"]] = (mrn, ssn, full)
    profile = _profile(
        tmp_path,
        'columns = ["MRN", "SSN", "name"]\n'
        'sources = { MRN = "mr", ssn = "HTTP://hl7.org/fhir/sid/us-ssn" }',
    )
    rows = _worklist(folder, tmp_path, date(2021, 4, 1), profile)
    for row in rows:
        assert (row["MRN"], row["SSN"], row["name"]) == expected[row["patient_id"]]
    assert list(rows[0])[:4] == ["patient_id", "MRN", "SSN", "name"]


@needs_samples
def test_omop_person_source_value(tmp_path: Path) -> None:
    folder = REALDATA / "omop-eunomia-synthea27nj"
    with (folder / "PERSON.csv").open(encoding="utf-8", newline="") as f:
        expected = {r["person_id"]: r["person_source_value"] for r in csv.DictReader(f)}
    profile = _profile(
        tmp_path,
        'columns = ["MRN", "person_source_value"]\nsources = { mrn = "person_source_value" }',
    )
    rows = _worklist(folder, tmp_path, date(2022, 10, 31), profile)
    for row in rows:
        assert row["MRN"] == row["person_source_value"] == expected[row["patient_id"]]


def test_synthea_patient_columns(tmp_path: Path) -> None:
    folder = tmp_path / "synthea"
    folder.mkdir()
    (folder / "patients.csv").write_text(
        "Id,BIRTHDATE,DEATHDATE,SSN,DRIVERS,PASSPORT,FIRST,LAST,GENDER\n"
        "p1,1950-01-01,,999-11-2222,S999,X12,Ada,Lovelace,F\n"
        "p2,1950-01-01,,999-33-4444,,,Bob,Smith,M\n",
        encoding="utf-8",
    )
    (folder / "observations.csv").write_text(
        "DATE,PATIENT,ENCOUNTER,CATEGORY,CODE,DESCRIPTION,VALUE,UNITS,TYPE\n"
        "2026-10-01,p1,,laboratory,2132-9,Vitamin B12,120,pg/mL,numeric\n"
        "2026-10-01,p2,,laboratory,2132-9,Vitamin B12,130,pg/mL,numeric\n",
        encoding="utf-8",
    )
    profile = _profile(
        tmp_path, 'columns = ["SSN number", "passport", "name"]\nsources = { "ssn number" = "ssn" }'
    )
    rows = _worklist(folder, tmp_path / "run", date(2026, 11, 1), profile)
    got = {r["patient_id"]: (r["SSN number"], r["passport"], r["name"]) for r in rows}
    assert got == {
        "p1": ("999-11-2222", "X12", "Ada Lovelace"),
        "p2": ("999-33-4444", "", "Bob Smith"),
    }


def test_a_source_for_no_column_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="sources: 'mrn' is not one of the columns"):
        load_rules(_profile(tmp_path, 'columns = ["name"]\nsources = { mrn = "mr" }'))
