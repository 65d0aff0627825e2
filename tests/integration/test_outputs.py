"""worklist.xlsx holds the same rows as worklist.csv, one sheet per audience list; every table
the run writes is stamped with its rules version, run id and as-of date; dates in the workbook
are date cells."""

from __future__ import annotations

import csv
import json
from datetime import date, datetime
from pathlib import Path

import pytest
from openpyxl import load_workbook

from pipeline.demo import generate_population
from pipeline.publish.outputs import ABOUT_SHEET, Stamp
from pipeline.rules import load_rules
from pipeline.runner import RunConfig, run_screening

AS_OF = date(2026, 11, 24)
CONTRACT_COLUMNS = [
    "patient_id",
    "priority",
    "criteria",
    "recommended_action",
    "evidence",
    "status",
]
DATE_COLUMNS = {"latest_evidence_on", "as_of"}


def _csv(path: Path) -> list[list[str]]:
    with path.open(newline="") as f:
        return list(csv.reader(f))


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("outputs")
    generate_population(base / "extracts", n_patients=400, truth_dir=base / "truth")
    out = base / "out"
    run_screening(RunConfig(base / "extracts", out, AS_OF, base / "db.duckdb"))
    return out


def _cell_text(value: object) -> str:
    """A workbook cell as the CSV writes it (dates as ISO dates)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat()
    return str(value)


def test_workbook_matches_the_csv_lists(out: Path) -> None:
    """One sheet per audience list, each the same rows and cells as its CSV, and together
    every patient of worklist.csv; the guidance lists leave nobody out, so no sheet repeats
    the whole list."""
    book = load_workbook(out / "worklist.xlsx", read_only=True)
    lists = list(load_rules().spec.worklists)
    assert book.sheetnames == [*lists, ABOUT_SHEET]
    on_sheets: set[str] = set()
    for sheet, csv_name in [(n, f"worklist_{n}.csv") for n in lists]:
        expected = _csv(out / csv_name)
        rows = [[_cell_text(v) for v in row] for row in book[sheet].iter_rows(values_only=True)]
        assert rows[0] == expected[0], sheet
        assert rows == expected, sheet  # same patients, same order, same cells
        on_sheets |= {r[0] for r in rows[1:]}
    whole = _csv(out / "worklist.csv")
    assert len(whole) > 10
    assert on_sheets == {r[0] for r in whole[1:]}


def test_lists_that_leave_someone_out_put_the_whole_worklist_first(tmp_path: Path) -> None:
    profile = tmp_path / "one-list.toml"
    profile.write_text(
        'extends = "guidance"\n[ruleset]\nname = "one-list"\nversion = "1"\n'
        'description = "a list with a gap"\n\n[worklists.follow_up]\n'
        'exclude = ["b12_deficient"]\n',
        encoding="utf-8",
    )
    lists = load_rules(profile).spec.worklists  # merged with guidance's, key by key
    assert lists["follow_up"].exclude == ["b12_deficient"] and lists["follow_up"].criteria
    base = tmp_path / "demo"
    generate_population(base / "extracts", n_patients=340, truth_dir=base / "truth")
    out = base / "out"
    run_screening(RunConfig(base / "extracts", out, AS_OF, base / "db.duckdb", rules=profile))
    book = load_workbook(out / "worklist.xlsx", read_only=True)
    assert book.sheetnames[0] == "worklist"
    rows = [[_cell_text(v) for v in row] for row in book["worklist"].iter_rows(values_only=True)]
    assert rows == _csv(out / "worklist.csv")


def _run(out: Path) -> dict:
    return json.loads((out / "run.json").read_text(encoding="utf-8"))


def test_every_csv_of_the_run_ends_with_its_stamp(out: Path) -> None:
    """rules_version, run_id, as_of: the last three columns of each list, quarantine.csv,
    resolved.csv and each audit table (those listing runs name each row's run instead). A CSV
    reader sees the header on the first line and the contract's columns first."""
    run = _run(out)
    stamp = [f"{run['rules']['name']}@{run['rules']['version']}", run["run_id"], run["as_of"]]
    lists = [f"worklist_{n}.csv" for n in load_rules().spec.worklists]
    for name in ["worklist.csv", *lists, "quarantine.csv", "resolved.csv"]:
        header, *rows = _csv(out / name)
        assert tuple(header[-3:]) == Stamp.COLUMNS, name
        assert all(row[-3:] == stamp for row in rows), name
        if name.startswith("worklist"):
            assert header[:6] == CONTRACT_COLUMNS, name
            assert "latest_evidence_on" in header
    assert len(_csv(out / "quarantine.csv")) > 1
    stamped = 0
    for path in sorted((out / "audit").glob("*.csv")):
        table = _csv(path)
        if not table or table == [[]]:
            continue  # an empty table has no header to stamp
        header, *rows = table
        if tuple(header[-3:]) == Stamp.COLUMNS:
            stamped += 1
            assert all(row[-3:] == stamp for row in rows), path.name
        else:  # a table of runs: each row names its own
            assert {"run_id", "as_of"} <= set(header), path.name
            assert run["run_id"] in {row[header.index("run_id")] for row in rows}, path.name
    assert stamped >= 10


def test_workbook_dates_are_date_cells_and_it_carries_the_stamp(out: Path) -> None:
    run = _run(out)
    book = load_workbook(out / "worklist.xlsx")  # not read-only: properties and formats
    seen = {column: 0 for column in DATE_COLUMNS}
    for name in book.sheetnames[:-1]:
        sheet = book[name]
        header = [c.value for c in sheet[1]]
        assert tuple(header[-3:]) == Stamp.COLUMNS
        for row in sheet.iter_rows(min_row=2):
            for column, cell in zip(header, row, strict=True):
                if column in DATE_COLUMNS and cell.value is not None:
                    assert cell.is_date and isinstance(cell.value, datetime), (name, column)
                    assert cell.number_format == "yyyy-mm-dd"
                    seen[column] += 1
            assert row[header.index("run_id")].value == run["run_id"]
            assert row[header.index("as_of")].value.date().isoformat() == run["as_of"]
    assert all(seen.values()), seen
    about = {r[0]: r[1] for r in book[ABOUT_SHEET].iter_rows(values_only=True) if r[0]}
    assert about["Run id"] == run["run_id"]
    assert about["As-of date"] == datetime.fromisoformat(run["as_of"])
    assert about["Rules version"] == f"{run['rules']['name']}@{run['rules']['version']}"
    assert about["Rules file SHA-256"] == run["rules"]["sha256"]
    titles = {spec.title for spec in load_rules().spec.worklists.values()}
    assert titles <= {r[1] for r in book[ABOUT_SHEET].iter_rows(values_only=True)}
    assert run["run_id"] in book.properties.subject
    custom = {p.name: p.value for p in book.custom_doc_props.props}
    assert custom["run_id"] == run["run_id"]
    assert custom["rules_version"] == about["Rules version"]
    assert custom["as_of"].date().isoformat() == run["as_of"]


def test_a_list_longer_than_a_sheet_goes_on_in_continuation_sheets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Excel stops at 1,048,576 rows and xlsxwriter drops a row past it without a word: a
    longer list is cut into sheets of at most SHEET_ROWS rows, every row kept, in order."""
    import polars as pl

    from pipeline.publish import outputs

    monkeypatch.setattr(outputs, "SHEET_ROWS", 3)
    stamp = Stamp("guidance@test", "run-1", AS_OF)
    long = pl.DataFrame({"patient_id": [f"p{i}" for i in range(7)], "n": list(range(7))})
    name = "a_list_named_near_the_limit_x"  # 29 characters: cut so that " (2)" fits in 31
    outputs._write_xlsx({"worklist": long, name: long.head(4)}, tmp_path / "w.xlsx", stamp, [], [])
    book = load_workbook(tmp_path / "w.xlsx", read_only=True)
    assert book.sheetnames == [
        "worklist",
        "worklist (2)",
        "worklist (3)",
        name,
        name[:27] + " (2)",
        ABOUT_SHEET,
    ]
    ids = []
    for sheet in book.sheetnames[:3]:
        header, *rows = book[sheet].iter_rows(values_only=True)
        assert header == ("patient_id", "n") and len(rows) <= 3
        ids += [r[0] for r in rows]
    assert ids == [f"p{i}" for i in range(7)]
