"""Checks across rows hold over the whole extract, not per Arrow batch (DuckDB hands batches of
122,880 rows whatever size is asked)."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

import duckdb

from pipeline.runner import RunConfig, run_screening

N = 130_000  # more than one DuckDB row group


def test_a_duplicate_patient_far_from_its_first_row_is_quarantined(tmp_path: Path) -> None:
    folder = tmp_path / "extracts"
    folder.mkdir()
    with (folder / "patients.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["patient_id", "sex", "birth_date"])
        w.writerow(["dup", "F", "1960-01-01"])
        for i in range(N):
            w.writerow([f"x{i}", "M", "1970-01-01"])
        w.writerow(["dup", "M", "1961-02-02"])  # 130,002nd data row: same id as the first
    (folder / "labs.csv").write_text(
        "patient_id,collected_at,loinc,value,unit\ndup,2026-11-01,718-7,9.0,g/dL\n"
    )
    result = run_screening(
        RunConfig(folder, tmp_path / "out", date(2026, 11, 24), tmp_path / "db.duckdb")
    )
    quarantine = (tmp_path / "out" / "quarantine.csv").read_text().splitlines()
    assert len(quarantine) == 2 and f",{N + 2},patients,duplicate patient_id" in quarantine[1]
    with duckdb.connect(str(tmp_path / "db.duckdb"), read_only=True) as con:
        assert con.execute("SELECT sex FROM patients WHERE patient_id = 'dup'").fetchall() == [
            ("F",)
        ]
        assert con.execute("SELECT count(*) FROM lab_results").fetchone()[0] == 1
    assert result.record["counts"]["patients"] == N + 1
