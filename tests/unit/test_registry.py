"""The run registry: every run, succeeded or failed, is listed with its counts and cause."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from pipeline.cli import cli


def _run(extracts: Path, tmp_path: Path):
    return CliRunner().invoke(
        cli,
        [
            "run",
            "--extracts",
            str(extracts),
            "--out",
            str(tmp_path / "out"),
            "--as-of",
            "2026-11-24",
            "--db",
            str(tmp_path / "db.duckdb"),
        ],
    )


def test_runs_lists_succeeded_and_failed_runs(tmp_path: Path, small_extracts: Path) -> None:
    assert _run(small_extracts, tmp_path).exit_code == 0
    (small_extracts / "labs_bad.parquet").write_bytes(b"not parquet")
    assert _run(small_extracts, tmp_path).exit_code != 0

    result = CliRunner().invoke(cli, ["runs", "--db", str(tmp_path / "db.duckdb")])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:3] == ["run", "id", "as"]
    failed, succeeded = lines[1], lines[2]  # newest first
    assert "failed" in failed and "succeeded" in succeeded
    record = json.loads((tmp_path / "out" / "run.json").read_text())
    assert record["run_id"] in succeeded
    assert f"  {record['counts']['worklist']['total']}  " in succeeded
    assert any("failed: cannot read labs_bad.parquet" in line for line in lines)


def test_runs_on_a_missing_database_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["runs", "--db", str(tmp_path / "nope.duckdb")])
    assert result.exit_code != 0
    assert (
        result.stderr.strip() == f"b12screen: error: database not found: {tmp_path / 'nope.duckdb'}"
    )
