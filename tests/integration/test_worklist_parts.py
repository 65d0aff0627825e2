"""A large population's worklist is built in parts of patients (pipeline/screening/models.py,
``worklist_parts``), one statement each, and put in order once: the outputs must be those of
one statement, row for row and in the same order, whatever the number of parts (the run id,
which every run has its own, aside)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest

from pipeline.demo.generate import generate_population
from pipeline.runner import RunConfig, run_screening
from pipeline.screening import models

AS_OF = date(2026, 11, 24)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("worklist_parts")
    generate_population(root / "demo", n_patients=1500, truth_dir=root / "truth")
    return root / "demo"


def _outputs(demo: Path, out: Path) -> dict[str, list[tuple]]:
    run_screening(RunConfig(extracts=demo, out=out, as_of=AS_OF, db=out.with_suffix(".duckdb")))
    frames = {
        "worklist.csv": pl.read_csv(out / "worklist.csv", infer_schema=False),
        "flags.parquet": pl.read_parquet(out / "flags.parquet"),
    }
    return {name: frame.drop("run_id").rows() for name, frame in frames.items()}


@pytest.mark.parametrize("parts", [3, 8])
def test_a_worklist_built_in_parts_is_the_worklist_of_one_statement(
    demo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parts: int
) -> None:
    whole = _outputs(demo, tmp_path / "whole")
    assert len(whole["worklist.csv"]) > 300  # a worklist worth comparing
    monkeypatch.setattr(models, "worklist_parts", lambda con: parts)
    assert _outputs(demo, tmp_path / "parts") == whole


def test_the_parts_of_the_worklist_follow_the_memory_limit() -> None:
    con = duckdb.connect()
    try:
        con.execute(
            f"CREATE TEMP TABLE {models.FLAGS_TABLE} AS SELECT range AS i FROM range(200000)"
        )
        con.execute("SET memory_limit = '3GB'")
        assert models.worklist_parts(con) == 1
        con.execute("SET memory_limit = '120MB'")
        assert models.worklist_parts(con) > 1
    finally:
        con.close()
