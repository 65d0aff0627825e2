"""Round trip: the demo population through every input format gives the same screening.

The generator writes a canonical extracts folder (planted cases, background population and the
deliberately broken rows); pipeline/demo/formats.py rewrites it cell for cell as OMOP CDM, FHIR
R4 NDJSON and Synthea CSV. The expectation is not the adapter's: it is a canonical run of the
same folder (for Synthea, of a copy with the columns Synthea has no place for emptied: site,
result ids, reference ranges, ATC codes, routes). Flags (patient, criterion, value, time),
worklist (patient, priority, criteria) and quarantine (kind, reason, count) must be identical;
only the provenance columns (file names, row numbers) may differ.
"""

from __future__ import annotations

import csv
from collections import Counter
from datetime import date
from functools import cache
from pathlib import Path

import duckdb
import polars as pl
import pytest

from pipeline.demo import generate_population
from pipeline.demo.formats import CANNOT_CARRY, blank_columns, write_format
from pipeline.demo.planted import PLANTED
from pipeline.runner import RunConfig, run_screening

AS_OF = date(2026, 11, 24)


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("formats")
    generate_population(root / "canonical", n_patients=len(PLANTED) + 100, as_of=AS_OF)
    return root


@cache
def _screened(root: Path, name: str, fmt: str) -> dict:
    run_screening(
        RunConfig(
            extracts=root / name,
            out=root / f"out-{name}",
            as_of=AS_OF,
            db=root / f"{name}.duckdb",
            input_format=fmt,
        )
    )
    current = root / f"out-{name}" / "current"
    flags = pl.read_parquet(current / "flags.parquet")
    with (current / "worklist.csv").open(encoding="utf-8", newline="") as fh:
        worklist = {(r["patient_id"], r["priority"], r["criteria"]) for r in csv.DictReader(fh)}
    con = duckdb.connect(str(root / f"{name}.duckdb"), read_only=True)
    quarantine = Counter(
        {
            (k, r): n
            for k, r, n in con.execute(
                "SELECT kind, reason, count(*) FROM quarantine_log GROUP BY ALL"
            ).fetchall()
        }
    )
    con.close()
    return {
        "flags": {
            (
                r["patient_id"],
                r["criterion"],
                None if r["value"] is None else round(r["value"], 6),
                r["observed_at"],
            )
            for r in flags.iter_rows(named=True)
        },
        "worklist": worklist,
        "quarantine": quarantine,
    }


@pytest.mark.parametrize("fmt", ["omop", "fhir", "synthea"])
def test_the_demo_population_screens_the_same_through_every_format(
    population: Path, fmt: str
) -> None:
    reference = "canonical"
    if CANNOT_CARRY[fmt]:
        reference = f"canonical-as-{fmt}"
        blank_columns(population / "canonical", fmt, population / reference)
    write_format(population / "canonical", fmt, population / fmt)
    expected = _screened(population, reference, "canonical")
    got = _screened(population, fmt, fmt)
    assert expected["flags"], "the reference run flagged nobody"
    planted = {pp.patient_id for pp in PLANTED}
    assert {f[0] for f in expected["flags"]} & planted
    missing = sorted(expected["flags"] - got["flags"])[:5]
    extra = sorted(got["flags"] - expected["flags"])[:5]
    assert not missing and not extra, (missing, extra)
    assert got["worklist"] == expected["worklist"]
    assert got["quarantine"] == expected["quarantine"]
    assert sum(expected["quarantine"].values()) > 20  # the broken rows are there to be caught
