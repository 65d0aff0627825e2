"""A site's own identifiers (contract section 2: patients columns named in the rules profile).

They go to the clinician worklists (worklist.csv, worklist_<list>.csv, every sheet of
worklist.xlsx) right after patient_id, neutralised like every cell, and to nothing else the run
writes: not flags.parquet, resolved.csv, quarantine.csv, the audit, run.json, the log or the
population report. They are stored with the patient, so a later night's worklist has them.
"""

from __future__ import annotations

import csv
import json
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook

from pipeline.cli import cli
from pipeline.errors import RulesError
from pipeline.rules import WORKLIST_COLUMNS, load_rules
from tests.harness import AS_OF, LAB_COLUMNS, _lab_row, write_csv

# Values no other output may hold: the test looks for each in every file the run leaves.
MRN = "MRN-7731942"
NAME = "Zebedee Quillfeather"
CLINICIAN = '=HYPERLINK("http://x.example/a","Dr Q")'
PROFILE = """extends = "guidance"
[ruleset]
name = "site"
version = "1"
description = "a site carrying its identifiers"

[identifiers]
columns = ["MRN", "Name", "responsible clinician", "ward"]
"""


def _patients(path: Path, rows: list[dict[str, str]]) -> None:
    header = ["patient_id", "birth_date", "sex", "mrn", "NAME", "Responsible Clinician"]
    write_csv(path, header, rows)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """Two nights: the first with the identifiers, the second with no patients file at all."""
    root = tmp_path_factory.mktemp("identifiers")
    profile = root / "site.toml"
    profile.write_text(PROFILE, encoding="utf-8")
    extracts = root / "extracts"
    extracts.mkdir()
    _patients(
        extracts / "patients.csv",
        [
            {
                "patient_id": "p-listed",
                "birth_date": "1950-01-01",
                "sex": "F",
                "mrn": MRN,
                "NAME": NAME,
                "Responsible Clinician": CLINICIAN,
            },
            {"patient_id": "p-other", "birth_date": "1960-01-01", "sex": "M", "mrn": "MRN-2"},
            {"patient_id": "p-fine", "birth_date": "1960-01-01", "sex": "M", "mrn": "MRN-FINE"},
            # quarantined (no birth date): its raw row in quarantine.csv leaves the MRN out
            {"patient_id": "p-undated", "sex": "M", "mrn": "MRN-UNDATED", "NAME": "Ozymandias"},
        ],
    )
    labs = [
        _lab_row({"patient_id": "p-listed", "analyte": "b12", "value": "150"}),
        _lab_row({"patient_id": "p-other", "analyte": "platelets", "value": "80"}),
        _lab_row({"patient_id": "p-fine", "analyte": "b12", "value": "500"}),
        _lab_row({"patient_id": "p-nobody", "analyte": "b12", "value": "150"}),  # quarantined
    ]
    write_csv(extracts / "labs.csv", LAB_COLUMNS, labs)
    db = root / "screening.duckdb"
    for night, as_of in enumerate((AS_OF, AS_OF + timedelta(days=1))):
        if night:
            (extracts / "patients.csv").unlink()
        result = CliRunner().invoke(
            cli,
            [
                "run",
                "--extracts",
                str(extracts),
                "--out",
                str(root / f"out{night}"),
                "--as-of",
                as_of.isoformat(),
                "--db",
                str(db),
                "--rules",
                str(profile),
                "--log-file",
                str(root / "b12screen.log"),
            ],
        )
        assert result.exit_code == 0, result.output
        (root / f"stdout{night}.txt").write_text(result.output, encoding="utf-8")
    return root


def _rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


@pytest.mark.parametrize("night", [0, 1])
def test_the_worklist_carries_them_after_patient_id(site: Path, night: int) -> None:
    header, rows = _rows(site / f"out{night}" / "worklist.csv")
    assert header[:5] == ["patient_id", "MRN", "Name", "responsible clinician", "ward"]
    by_id = {r["patient_id"]: r for r in rows}
    assert set(by_id) == {"p-listed", "p-other"}
    assert by_id["p-listed"]["MRN"] == MRN and by_id["p-listed"]["Name"] == NAME
    assert by_id["p-listed"]["responsible clinician"] == "'" + CLINICIAN  # neutralised
    assert by_id["p-other"]["Name"] == "" and by_id["p-other"]["ward"] == ""  # no such column
    # the names a site may not take are every other column of the worklist
    assert set(header) - {"MRN", "Name", "responsible clinician", "ward"} <= WORKLIST_COLUMNS


def test_every_audience_list_and_sheet_carries_them(site: Path) -> None:
    out = site / "out0"
    lists = sorted(out.glob("worklist_*.csv"))
    assert lists
    for path in lists:
        header, _ = _rows(path)
        assert header[1:3] == ["MRN", "Name"], path.name
    book = load_workbook(out / "worklist.xlsx")
    found = []
    for sheet in book.worksheets:
        if sheet.title == "about this run":
            continue
        cells = [c.value for row in sheet.iter_rows() for c in row]
        if "patient_id" in cells:
            found.append(sheet.title)
        for row in sheet.iter_rows():
            for cell in row:
                assert cell.data_type != "f"
    values = [c.value for sheet in book.worksheets for row in sheet.iter_rows() for c in row]
    assert MRN in values and CLINICIAN in values  # the clinician's text as text
    assert found


def test_nothing_else_holds_them(site: Path) -> None:
    report = CliRunner().invoke(
        cli,
        [
            "report",
            "--db",
            str(site / "screening.duckdb"),
            "--from",
            AS_OF.isoformat(),
            "--to",
            (AS_OF + timedelta(days=1)).isoformat(),
            "--out",
            str(site / "report"),
            "--rules",
            str(site / "site.toml"),
        ],
    )
    assert report.exit_code == 0, report.output
    worklists = {"worklist.csv", "worklist.xlsx"}
    checked = 0
    for path in [*site.rglob("*")]:
        if not path.is_file() or path.suffix == ".duckdb" or path.name == "site.toml":
            continue
        if path.name in worklists or path.name.startswith("worklist_"):
            continue
        if path.parent.name == "extracts":
            continue
        data = path.read_bytes()
        for secret in (MRN, NAME, "MRN-FINE", "Quillfeather", "MRN-UNDATED", "Ozymandias"):
            assert secret.encode() not in data, (path.relative_to(site), secret)
        checked += 1
    assert checked >= 8  # flags.parquet, resolved.csv, quarantine.csv, audit.*, run.json, log ...
    quarantine = (site / "out0" / "quarantine.csv").read_text(encoding="utf-8")
    assert "p-undated" in quarantine and "birth_date" in quarantine  # the row is there
    record = json.loads((site / "out0" / "run.json").read_text(encoding="utf-8"))
    assert record["counts"]["worklist"]["total"] == 2


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ('["site"]', "a column b12screen writes itself"),
        ('["mrn", "MRN"]', "names a column twice"),
        ('["1st id"]', "starting with a letter"),
    ],
)
def test_a_bad_identifiers_list_stops_before_any_data_is_read(
    tmp_path: Path, columns: str, message: str
) -> None:
    profile = tmp_path / "bad.toml"
    profile.write_text(
        PROFILE.replace('["MRN", "Name", "responsible clinician", "ward"]', columns),
        encoding="utf-8",
    )
    with pytest.raises(RulesError, match=message):
        load_rules(profile)
