"""The Prefect flow runs the same stages as the CLI, locally, under prefect_test_harness."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest

from flows.nightly import nightly_screening
from pipeline.outputs import OUTPUT_FILES
from pipeline.runner import RunConfig, run_screening

pytestmark = pytest.mark.prefect


def _flags(out: Path) -> list[tuple[str, str]]:
    frame = pl.read_parquet(out / "flags.parquet")
    return sorted(zip(frame["patient_id"], frame["criterion"], strict=True))


def test_flow_gives_the_same_flags_as_the_cli_path(
    prefect_harness, tmp_path: Path, small_extracts: Path
) -> None:
    counts = nightly_screening(
        str(small_extracts),
        str(tmp_path / "flow_out"),
        date(2026, 11, 24),
        str(tmp_path / "flow.duckdb"),
    )
    for name in OUTPUT_FILES:
        assert (tmp_path / "flow_out" / name).is_file(), name
    run_screening(
        RunConfig(small_extracts, tmp_path / "cli_out", date(2026, 11, 24), tmp_path / "cli.duckdb")
    )
    assert _flags(tmp_path / "flow_out") == _flags(tmp_path / "cli_out")
    assert counts["counts"]["worklist"]["total"] == 2
    assert "p1" not in str(counts), "the flow result must carry counts only"


def test_flow_failure_keeps_previous_outputs(
    prefect_harness, tmp_path: Path, small_extracts: Path
) -> None:
    out = tmp_path / "out"
    nightly_screening(
        str(small_extracts), str(out), date(2026, 11, 24), str(tmp_path / "db.duckdb")
    )
    before = (out / "worklist.csv").read_bytes()
    (small_extracts / "labs_broken.parquet").write_bytes(b"PAR1 garbage")
    with pytest.raises(Exception, match="labs_broken.parquet"):
        nightly_screening(
            str(small_extracts), str(out), date(2026, 11, 24), str(tmp_path / "db.duckdb")
        )
    assert (out / "worklist.csv").read_bytes() == before
