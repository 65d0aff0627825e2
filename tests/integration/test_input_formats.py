"""Other input data models (contract section 2b): the public samples, broken and hostile input,
format recognition, and ``b12screen check``.

The public samples (the shared realdata folder beside the project) are synthetic (Synthea)
exports in each real format; the counts below were read off the files themselves (their
README, or a count of lines and rows), not off the adapters. The round trip of the demo population through every format is
tests/acceptance/test_formats_e2e.py.
"""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from pipeline.check import check, close_name
from pipeline.cli import cli
from pipeline.errors import ExtractsError
from pipeline.read.adapters import detect_format, discover_format
from pipeline.runner import RunConfig, run_screening

REALDATA = Path(__file__).resolve().parents[3] / "shared" / "realdata"
needs_samples = pytest.mark.skipif(not REALDATA.exists(), reason="shared/realdata not beside")


def _run(folder: Path, tmp_path: Path, as_of: date, fmt: str = "auto") -> tuple[dict, list]:
    db = tmp_path / "db.duckdb"
    result = run_screening(
        RunConfig(extracts=folder, out=tmp_path / "out", as_of=as_of, db=db, input_format=fmt)
    )
    con = duckdb.connect(str(db), read_only=True)
    quarantine = con.execute(
        "SELECT kind, source_file, row_number, reason, raw_row FROM quarantine_log ORDER BY ALL"
    ).fetchall()
    con.close()
    return result.record, quarantine


def _counts(record: dict) -> dict[str, int]:
    return {c["item"]: c["rows"] for c in record["input_format"]["counts"]}


# -- the public samples -----------------------------------------------------------------------
@needs_samples
def test_omop_eunomia_sample(tmp_path: Path) -> None:
    record, quarantine = _run(REALDATA / "omop-eunomia-synthea27nj", tmp_path, date(2022, 10, 31))
    assert record["input_format"]["format"] == "omop"
    # PERSON 28, MEASUREMENT 10,040, DRUG_EXPOSURE 883, CONDITION_OCCURRENCE 470 rows
    assert record["counts"]["rows_read"] == {
        "patients": 28,
        "labs": 10040,
        "medications": 883,
        "diagnoses": 470,
        "feedback": 0,
    }
    assert quarantine == []
    counts = _counts(record)
    assert counts["CONDITION_OCCURRENCE rows coded by snomed"] == 470
    assert counts["MEASUREMENT rows with a LOINC code (CONCEPT or source value)"] == 9155
    # the sample's lab results (Hgb 718-7, WBC 6690-2, MCV 787-2 ...) are read with their units
    con = duckdb.connect(str(tmp_path / "db.duckdb"), read_only=True)
    analytes = dict(con.execute("SELECT analyte, count(*) FROM lab_results GROUP BY 1").fetchall())
    con.close()
    assert analytes["hgb"] > 0 and analytes["mcv"] > 0 and analytes["wbc"] > 0
    # the audit says which format was read and how many rows each mapping recognised
    audit = json.loads((tmp_path / "out" / "current" / "audit.json").read_text("utf-8"))
    assert audit["provenance"]["input_format"]["format"] == "omop"
    table = {(r["kind"], r["item"]): r["rows"] for r in audit["tables"]["input_format"]}
    assert table[("patients", "PERSON rows")] == 28
    assert table[("diagnoses", "CONDITION_OCCURRENCE rows coded by snomed")] == 470
    by = "stored valid rows recognised by "
    snomed = table[("diagnoses", by + "data/diagnosis_codes_snomed.csv")]
    none = table[("diagnoses", by + "none (a code on no condition list)")]
    assert snomed + none == 470 and table[("diagnoses", by + "data/diagnosis_codes.csv")] == 0
    labs = [n for (kind, item), n in table.items() if kind == "labs" and item.startswith(by)]
    assert sum(labs) == sum(analytes.values())  # each stored result once: LOINC, a name or none
    assert (tmp_path / "out" / "current" / "audit" / "input_format.csv").exists()


@needs_samples
def test_fhir_bulk_sample_without_observations(tmp_path: Path) -> None:
    record, quarantine = _run(REALDATA / "fhir-bulk-smart-10", tmp_path, date(2023, 3, 1))
    assert record["counts"]["rows_read"]["patients"] == 13
    assert record["counts"]["rows_read"]["medications"] == 1745
    assert record["counts"]["rows_read"]["diagnoses"] == 555
    assert record["counts"]["rows_read"]["labs"] == 0
    counts = _counts(record)
    # authoredOn only: each order counts settings.open_order_days, never open-ended silently
    assert counts["orders with a start only, counted for settings.open_order_days"] == 1745
    assert counts["Patients with deceasedDateTime"] == 3
    con = duckdb.connect(str(tmp_path / "db.duckdb"), read_only=True)
    ((open_ended,),) = con.execute(
        "SELECT count(*) FROM medications WHERE end_date IS NULL"
    ).fetchall()
    # SNOMED CKD 3/4/5 codes in the sample reach the condition list
    ((ckd,),) = con.execute(
        "SELECT count(*) FROM diagnoses WHERE code_system = 'snomed' AND code_key IN "
        "('433144002', '431857002', '46177005')"
    ).fetchall()
    con.close()
    assert open_ended == 0
    assert ckd == 3
    assert all(q[0] != "patients" for q in quarantine)


@needs_samples
def test_fhir_synthea_617_sample(tmp_path: Path) -> None:
    record, quarantine = _run(REALDATA / "fhir-r4-synthea-617", tmp_path, date(2021, 4, 1))
    assert record["counts"]["rows_read"] == {
        "patients": 615,
        "labs": 12079,
        "medications": 4712,
        "diagnoses": 4546,
        "feedback": 0,
    }
    assert quarantine == []
    con = duckdb.connect(str(tmp_path / "db.duckdb"), read_only=True)
    ((hgb, low),) = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE value_canonical < 12) FROM lab_results "
        "WHERE loinc = '718-7'"
    ).fetchall()
    # local times kept as written: no result moves to the next day
    ((shifted,),) = con.execute(
        "SELECT count(*) FROM lab_results WHERE collected_at::DATE > DATE '2021-03-31'"
    ).fetchall()
    con.close()
    assert (hgb, low) == (1240, 96)  # realdata/README.md
    assert shifted == 0
    assert record["counts"]["patients_by_criterion"]["anemia"] > 0


@needs_samples
def test_fhir_bundles_sample(tmp_path: Path) -> None:
    record, _ = _run(REALDATA / "fhir-r4-synthea-bundles", tmp_path, date(2021, 4, 1))
    assert record["counts"]["rows_read"]["patients"] == 2
    counts = _counts(record)
    assert counts["left out: Observation not in the laboratory category"] > 0
    assert counts["left out: Claim resources (not read)"] > 0


# -- broken and hostile input -----------------------------------------------------------------
PATIENT = {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1950-01-01"}


def _obs(pid: str, value: float, **extra) -> dict:
    return {
        "resourceType": "Observation",
        "id": extra.pop("id", f"o-{pid}-{value}"),
        "status": extra.pop("status", "final"),
        "category": [{"coding": [{"code": "laboratory"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}], "text": "Hgb"},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": "2026-11-01T23:30:00-05:00",
        "valueQuantity": {"value": value, "unit": "g/dL"},
        **extra,
    }


def _ndjson(path: Path, lines: list) -> None:
    path.write_text(
        "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n",
        encoding="utf-8",
    )


def test_a_broken_ndjson_line_is_a_quarantined_row(tmp_path: Path) -> None:
    folder = tmp_path / "fhir"
    folder.mkdir()
    _ndjson(
        folder / "Patient.ndjson",
        [PATIENT, '{"resourceType": "Patient", "id": "p2", ', PATIENT | {"id": "p3"}],
    )
    _ndjson(
        folder / "Observation.ndjson",
        [
            _obs("p1", 6.5),
            _obs("p1", 9.9, status="entered-in-error"),
            _obs("p3", 14.0, valueQuantity={"value": 5, "comparator": "<", "unit": "g/dL"}),
            "not json at all",
        ],
    )
    record, quarantine = _run(folder, tmp_path, date(2026, 11, 24))
    broken = [q for q in quarantine if q[3].startswith("malformed JSON line")]
    assert [(q[0], q[1], q[2]) for q in broken] == [
        ("labs", "Observation.ndjson", 4),
        ("patients", "Patient.ndjson", 2),
    ]
    assert record["counts"]["rows_read"]["patients"] == 2
    assert _counts(record)["left out: Observation entered-in-error"] == 1
    con = duckdb.connect(str(tmp_path / "db.duckdb"), read_only=True)
    rows = con.execute(
        "SELECT patient_id, value_reported, collected_at::VARCHAR FROM lab_results ORDER BY 1"
    ).fetchall()
    con.close()
    # the comparator is kept; 23:30 at -05:00 stays on the 1st (the offset is not applied)
    assert rows == [("p1", "6.5", "2026-11-01 23:30:00"), ("p3", "<5", "2026-11-01 23:30:00")]
    assert "anemia" in {f for f, n in record["counts"]["patients_by_criterion"].items() if n}


HOSTILE = [
    '=HYPERLINK("x","y")',  # no '/': a FHIR id cannot hold one
    "x'); DROP TABLE patients; --",
    "<img src=x onerror=alert(1)>",
    'quote"in"id',
]


def test_hostile_text_in_fhir_fields_and_glob_file_names_stays_inert(tmp_path: Path) -> None:
    folder = tmp_path / "fhir"
    folder.mkdir()
    patients = [PATIENT | {"id": h} for h in HOSTILE]
    # a key with quotes and an unknown key with SQL in it: ignored, not parsed as code
    patients.append(PATIENT | {"id": "p9", 'x" := 1, "y': "z", "it's": "<b>"})
    _ndjson(folder / "Patient[1].ndjson", patients)
    _ndjson(folder / "Patient*.ndjson", [PATIENT | {"id": "p10"}])
    _ndjson(folder / "Observation?.ndjson", [_obs(h, 6.0, id=h) for h in HOSTILE])
    record, quarantine = _run(folder, tmp_path, date(2026, 11, 24))
    assert quarantine == []
    assert record["counts"]["rows_read"]["patients"] == len(HOSTILE) + 2  # each file read once
    con = duckdb.connect(str(tmp_path / "db.duckdb"), read_only=True)
    ids = {r[0] for r in con.execute("SELECT patient_id FROM patients").fetchall()}
    labs = {r[0] for r in con.execute("SELECT result_id FROM lab_results").fetchall()}
    con.close()
    assert ids == {*HOSTILE, "p9", "p10"}
    assert labs == set(HOSTILE)


def test_hostile_text_in_omop_fields_stays_inert(tmp_path: Path) -> None:
    folder = tmp_path / "omop"
    folder.mkdir()
    (folder / "PERSON.csv").write_text(
        'person_id,gender_concept_id,birth_datetime,"we""ird"\n'
        + "".join(f'"{h.replace(chr(34), chr(34) * 2)}",8532,1950-01-01,x\n' for h in HOSTILE),
        encoding="utf-8",
    )
    (folder / "MEASUREMENT.csv").write_text(
        "measurement_id,person_id,measurement_datetime,measurement_source_value,value_as_number,"
        "unit_source_value,operator_concept_id\n"
        + "".join(
            f'm{i},"{h.replace(chr(34), chr(34) * 2)}",2026-11-01,718-7,6.0,g/dL,4171756\n'
            for i, h in enumerate(HOSTILE)
        ),
        encoding="utf-8",
    )
    (folder / "CONCEPT.csv").write_text("concept_id,concept_name,vocabulary_id,concept_code\n")
    record, quarantine = _run(folder, tmp_path, date(2026, 11, 24))
    assert record["input_format"]["format"] == "omop"
    assert quarantine == []
    con = duckdb.connect(str(tmp_path / "db.duckdb"), read_only=True)
    got = con.execute(
        "SELECT patient_id, value_reported, loinc FROM lab_results ORDER BY 1"
    ).fetchall()
    con.close()
    # operator_concept_id 4171756 is '<'; the code column is text (no number inference)
    assert got == sorted((h, "<6.0", "718-7") for h in HOSTILE)


# -- recognising a folder ---------------------------------------------------------------------
def test_auto_recognises_each_format_and_says_why(tmp_path: Path, small_extracts: Path) -> None:
    assert detect_format(small_extracts)[0] == "canonical"
    synthea = tmp_path / "synthea"
    synthea.mkdir()
    (synthea / "patients.csv").write_text("Id,BIRTHDATE,DEATHDATE,GENDER\na,1950-01-01,,F\n")
    assert detect_format(synthea)[0] == "synthea"
    fhir = tmp_path / "fhir"
    fhir.mkdir()
    _ndjson(fhir / "export-part-1.ndjson", [PATIENT])  # by its resourceType, not its name
    fmt, why = detect_format(fhir)
    assert fmt == "fhir" and "Patient" in why
    assert discover_format(fhir, "fhir").files[0].kind == "patients"
    with pytest.raises(ExtractsError, match="unknown format"):
        discover_format(fhir, "hl7v2")


def test_a_wrong_format_is_one_line_not_a_traceback(small_extracts: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "run",
            "--extracts",
            str(small_extracts),
            "--out",
            str(tmp_path / "o"),
            "--db",
            str(tmp_path / "d.duckdb"),
            "--format",
            "omop",
        ],
    )
    assert result.exit_code == 3
    assert "Traceback" not in result.output
    assert "no patients" in result.output.lower()


# -- b12screen check ---------------------------------------------------------------------------
def _tree(folder: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(folder)), p.stat().st_size) for p in folder.rglob("*"))


def test_check_writes_nothing_and_passes_a_good_folder(
    small_extracts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    before = _tree(tmp_path)
    result = CliRunner().invoke(
        cli, ["check", "--extracts", str(small_extracts), "--as-of", "2026-11-24"]
    )
    assert result.exit_code == 0, result.output
    assert "format canonical" in result.output
    assert "would be quarantined: 1" in result.output  # HGB 'pending'
    assert "labs: value is not a number: 1" in result.output
    assert _tree(tmp_path) == before


def test_check_hints_at_a_misnamed_file(small_extracts: Path) -> None:
    shutil.copy(small_extracts / "labs.csv", small_extracts / "lab_results.csv")
    assert close_name("lab_results.csv", "canonical") == ("labs*", 1)
    report = check(small_extracts, as_of=date(2026, 11, 24))
    assert report.exit_code == 3
    assert any("lab_results.csv" in p and "one letter" in p for p in report.problems)
    assert any("did you mean labs*" in line for line in report.lines)


@needs_samples
def test_check_is_loud_when_no_diagnosis_is_on_a_list_and_dates_miss_the_as_of() -> None:
    report = check(REALDATA / "omop-eunomia-synthea27nj", as_of=date(2026, 11, 24))
    assert report.exit_code == 3
    assert any(p.startswith("diagnoses: none of the 470") for p in report.problems)
    assert any(p.startswith("labs: the latest result (2022-10-10)") for p in report.problems)


def test_check_is_loud_when_a_kind_is_wholly_unrecognised_or_a_run_would_fail(
    small_extracts: Path, tmp_path: Path
) -> None:
    (small_extracts / "medications.csv").write_text(
        "patient_id,medication,start_date\np1,unobtainium 5 mg,2026-01-01\n"
    )
    report = check(small_extracts, as_of=date(2026, 11, 24))
    assert any(p.startswith("medications: none of the 1") for p in report.problems)
    empty = tmp_path / "empty"
    empty.mkdir()
    failed = check(empty, as_of=date(2026, 11, 24))
    assert failed.exit_code == 3
    assert failed.problems[0].startswith("a run would fail: no patients file")
    future = check(small_extracts, as_of=date(2020, 1, 1))
    assert any("every dated row is after the as-of date" in p for p in future.problems)


def test_omop_snomed_conditions_count_through_concept_and_concept_ancestor(tmp_path: Path) -> None:
    folder = tmp_path / "omop"
    folder.mkdir()
    (folder / "PERSON.csv").write_text(
        "person_id,gender_concept_id,year_of_birth,month_of_birth,day_of_birth\n"
        "1,8507,1950,1,1\n2,8532,1960,5,5\n3,8532,1970,1,1\n"
    )
    (folder / "MEASUREMENT.csv").write_text("measurement_id,person_id,measurement_date\n")
    (folder / "CONCEPT.csv").write_text(
        "concept_id,concept_name,domain_id,vocabulary_id,concept_code\n"
        "10,Pernicious anemia,Condition,SNOMED,84027009\n"
        "11,Pernicious anemia of a kind no list names,Condition,SNOMED,999000001\n"
        "12,Prediabetes,Condition,SNOMED,15777000\n"
    )
    (folder / "CONCEPT_ANCESTOR.csv").write_text(
        "ancestor_concept_id,descendant_concept_id,min_levels_of_separation\n10,11,1\n"
    )
    (folder / "CONDITION_OCCURRENCE.csv").write_text(
        "condition_occurrence_id,person_id,condition_concept_id,condition_start_date,"
        "condition_source_value\n"
        "1,1,10,2020-01-01,84027009\n2,2,11,2020-01-01,999000001\n3,3,12,2020-01-01,15777000\n"
    )
    record, quarantine = _run(folder, tmp_path, date(2026, 11, 24))
    assert quarantine == []
    con = duckdb.connect(str(tmp_path / "db.duckdb"), read_only=True)
    conditions = con.execute(
        "SELECT patient_id, code_system, code_key FROM diagnoses ORDER BY 1"
    ).fetchall()
    con.close()
    assert conditions == [
        ("1", "snomed", "84027009"),
        ("2", "snomed", "84027009"),  # through CONCEPT_ANCESTOR
        ("3", "snomed", "15777000"),
    ]
    assert record["counts"]["patients_by_criterion"]["risk_condition"] == 2


def test_clinicians_feedback_is_read_beside_a_fhir_export(tmp_path: Path) -> None:
    folder = tmp_path / "fhir"
    folder.mkdir()
    _ndjson(folder / "Patient.ndjson", [PATIENT])
    _ndjson(folder / "Observation.ndjson", [_obs("p1", 6.5)])
    (folder / "feedback.csv").write_text(
        "patient_id,criterion,action,until\np1,anemia,reviewed,2027-01-01\n"
    )
    record, quarantine = _run(folder, tmp_path, date(2026, 11, 24))
    assert quarantine == []
    assert record["counts"]["rows_read"]["feedback"] == 1
    assert {i["file"]: i["kind"] for i in record["inputs"]}["feedback.csv"] == "feedback"
