"""worklist.xlsx holds the same rows as worklist.csv, one sheet per audience list."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

from openpyxl import load_workbook

from pipeline.demo import generate_population
from pipeline.rules import load_rules
from pipeline.runner import RunConfig, run_screening


def _csv(path: Path) -> list[list[str]]:
    with path.open(newline="") as f:
        return list(csv.reader(f))


def test_workbook_matches_the_csv_lists(tmp_path: Path) -> None:
    generate_population(tmp_path / "extracts", n_patients=400, truth_dir=tmp_path / "truth")
    out = tmp_path / "out"
    run_screening(RunConfig(tmp_path / "extracts", out, date(2026, 11, 24), tmp_path / "db.duckdb"))
    book = load_workbook(out / "worklist.xlsx", read_only=True)
    lists = list(load_rules().spec.worklists)
    assert book.sheetnames == ["worklist", *lists]
    for sheet, csv_name in [("worklist", "worklist.csv")] + [
        (n, f"worklist_{n}.csv") for n in lists
    ]:
        expected = _csv(out / csv_name)
        rows = [
            ["" if v is None else str(v) for v in row]
            for row in book[sheet].iter_rows(values_only=True)
        ]
        assert rows[0] == expected[0], sheet
        assert len(rows) == len(expected), sheet
        assert [r[0] for r in rows[1:]] == [r[0] for r in expected[1:]], (
            sheet
        )  # same patients, same order
    assert len(_csv(out / "worklist.csv")) > 10
