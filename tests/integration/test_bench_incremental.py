"""`b12screen bench-incremental` on a small bench population: the night's flags equal a fresh
run's (the kept state against a full recomputation, as the bench checks it at scale), and the
two smaller databases hold what they say (a tenth of the patients' histories, a tenth of every
patient's history). Figures are only reported, never asserted: speed lives in the bench."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import duckdb
from click.testing import CliRunner

from pipeline.bench.full import generate
from pipeline.bench.incremental import SMALLER, _tenth_of, bench_incremental

AS_OF = date(2026, 11, 24)


def test_a_night_into_each_database_equals_a_fresh_run(tmp_path: Path) -> None:
    generate(tmp_path / "data", n_patients=400, labs_per_patient=20, as_of=AS_OF, threads=None)
    figures_file = tmp_path / "incr.json"
    result = CliRunner().invoke(
        bench_incremental,
        [
            "--extracts", str(tmp_path / "data" / "extracts"),
            "--dir", str(tmp_path / "work"),
            "--new-rows", "300",
            "--json", str(figures_file),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    figures = json.loads(figures_file.read_text(encoding="utf-8"))
    assert figures["night_flags_equal_a_fresh_run"]["equal"] is True
    assert figures["night_flags_equal_a_fresh_run"]["flags"] > 0
    night = figures["full_night_run"]
    assert night["labs_new"] == 300
    # 30 sent again with their value halved, 30 unchanged (give or take a few: a halved value
    # can round to itself, which is a re-sent row, or fall below what is plausible, which is
    # quarantined)
    assert 55 <= night["labs_corrected"] + night["labs_resent"] <= 60
    assert night["labs_corrected"] > 20 and night["labs_resent"] >= 30
    for label in ("tenth", "sparse"):  # a tenth of the stored rows, give or take the hash
        assert 0.05 < figures[f"{label}_stored_rows"] / figures["full_stored_rows"] < 0.15
        assert figures[f"{label}_night_run"]["labs_new"] >= 300
    assert not (tmp_path / "work").exists()  # scratch removed


def test_the_smaller_histories_are_a_tenth_of_patients_and_a_tenth_of_each_patient(
    tmp_path: Path,
) -> None:
    generate(tmp_path / "data", n_patients=2000, labs_per_patient=20, as_of=AS_OF, threads=None)
    labs = sorted((tmp_path / "data" / "extracts").glob("labs_*.parquet"))
    glob = (tmp_path / "data" / "extracts" / "labs_*.parquet").as_posix()
    (patients, rows) = duckdb.sql(
        f"SELECT count(DISTINCT patient_id), count(*) FROM read_parquet('{glob}')"
    ).fetchall()[0]
    seen = {}
    for label in SMALLER:
        (target,) = _tenth_of(labs, tmp_path / label, label)
        seen[label] = duckdb.sql(
            f"SELECT count(DISTINCT patient_id), count(*) FROM read_parquet('{target.as_posix()}')"
        ).fetchall()[0]
        assert 0.08 < seen[label][1] / rows < 0.12
    assert 0.07 < seen["tenth"][0] / patients < 0.13  # a tenth of the patients, whole
    assert seen["sparse"][0] / patients > 0.8  # nearly every patient, with a tenth of the rows
