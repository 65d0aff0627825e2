"""A run that cannot complete says why in one line and changes nothing an earlier run wrote."""

from __future__ import annotations

import gzip
from datetime import date
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.errors import DatabaseBusyError, ExtractsError, OutOfMemoryError
from pipeline.publish.outputs import OUTPUT_FILES
from pipeline.runner import RunConfig, run_screening

pytestmark = pytest.mark.reliability  # docs/reliability.md

AS_OF = date(2026, 11, 24)


def _run_cli(extracts: Path, out: Path, db: Path):
    return CliRunner().invoke(
        cli,
        [
            "run",
            "--extracts",
            str(extracts),
            "--out",
            str(out),
            "--as-of",
            "2026-11-24",
            "--db",
            str(db),
        ],
    )


def _snapshot(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in OUTPUT_FILES}


def _assert_one_line(result, exit_code: int, *fragments: str) -> None:
    assert result.exit_code == exit_code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0]


def test_missing_extracts_folder(tmp_path: Path) -> None:
    result = _run_cli(tmp_path / "nope", tmp_path / "out", tmp_path / "db.duckdb")
    _assert_one_line(result, ExtractsError.exit_code, "extracts folder not found")


def test_no_patients_file(tmp_path: Path, small_extracts: Path) -> None:
    (small_extracts / "patients.csv").unlink()
    result = _run_cli(small_extracts, tmp_path / "out", tmp_path / "db.duckdb")
    _assert_one_line(result, ExtractsError.exit_code, "no patients file")


def test_missing_required_column_names_file_and_column(
    tmp_path: Path, small_extracts: Path
) -> None:
    (small_extracts / "labs_extra.csv").write_text(
        "patient_id,loinc,value,unit\np1,2132-9,100,pg/mL\n"
    )
    result = _run_cli(small_extracts, tmp_path / "out", tmp_path / "db.duckdb")
    _assert_one_line(result, ExtractsError.exit_code, "labs_extra.csv", "collected_at")


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("labs_bad.csv.gz", b"\x1f\x8b\x08\x00not really gzip at all"),
        ("labs_bad.parquet", b"PAR1 this is not a parquet file"),
    ],
)
def test_unreadable_file_fails_and_keeps_previous_outputs(
    tmp_path: Path, small_extracts: Path, name: str, content: bytes
) -> None:
    out, db = tmp_path / "out", tmp_path / "db.duckdb"
    first = _run_cli(small_extracts, out, db)
    assert first.exit_code == 0, first.output
    before = _snapshot(out)
    with duckdb.connect(str(db)) as con:
        rows_before = con.execute("SELECT count(*) FROM lab_results").fetchone()[0]

    (small_extracts / name).write_bytes(content)
    (small_extracts / "labs_more.csv").write_text(
        "patient_id,collected_at,loinc,value,unit\np2,2026-11-02,2132-9,90,pg/mL\n"
    )
    result = _run_cli(small_extracts, out, db)
    _assert_one_line(result, ExtractsError.exit_code, name)

    assert _snapshot(out) == before, "a failed run changed the previous outputs"
    assert not [p for p in out.iterdir() if p.name.startswith(".b12screen-building")]
    with duckdb.connect(str(db)) as con:
        assert con.execute("SELECT count(*) FROM lab_results").fetchone()[0] == rows_before
        statuses = [
            r[0] for r in con.execute("SELECT status FROM runs ORDER BY started_at").fetchall()
        ]
    assert statuses == ["succeeded", "failed"]

    (small_extracts / name).unlink()
    again = _run_cli(small_extracts, out, db)
    assert again.exit_code == 0, "the next run after a failure must succeed"


def test_quarantined_rows_do_not_fail_the_run(tmp_path: Path, small_extracts: Path) -> None:
    (small_extracts / "labs_messy.csv").write_text(
        "patient_id,collected_at,loinc,value,unit\n"
        ",2026-11-01,2132-9,100,pg/mL\n"  # missing id
        "p1,not-a-date,2132-9,100,pg/mL\n"  # bad date
        "p1,2026-11-01,2132-9,100,g/dL\n"  # unit does not fit
        "p1,2026-11-01,2132-9,100,pg/mL,extra\n"  # malformed line
        "zz,2026-11-01,2132-9,100,pg/mL\n"  # unknown patient
    )
    result = run_screening(
        RunConfig(small_extracts, tmp_path / "out", AS_OF, tmp_path / "db.duckdb")
    )
    q = (tmp_path / "out" / "quarantine.csv").read_text().splitlines()
    messy = [line for line in q if line.startswith("labs_messy.csv")]
    assert [line.split(",")[1] for line in messy] == ["1", "2", "3", "4", "5"]
    reasons = "\n".join(messy)
    for reason in (
        "patient_id missing",
        "collected_at missing or unreadable",
        "unit does not fit",
        "malformed CSV line",
        "patient_id not in the patients extract",
    ):
        assert reason in reasons
    # p3's 'pending' Hgb in labs.csv, plus the five messy rows
    assert result.record["counts"]["rows_quarantined"] == {"labs": 6}
    by_file = {i["file"]: i for i in result.record["inputs"]}
    assert by_file["labs_messy.csv"]["rows_read"] == 5
    assert by_file["labs_messy.csv"]["rows_quarantined"] == 5


def test_second_run_against_a_busy_database_stops_clearly(
    tmp_path: Path, small_extracts: Path, hold_database
) -> None:
    db = tmp_path / "db.duckdb"
    with hold_database(db):
        result = _run_cli(small_extracts, tmp_path / "out", db)
    _assert_one_line(result, DatabaseBusyError.exit_code, "in use by another run")


def test_gzip_and_parquet_extracts_are_read_like_csv(tmp_path: Path, small_extracts: Path) -> None:
    labs = (small_extracts / "labs.csv").read_bytes()
    (small_extracts / "labs.csv").unlink()
    with gzip.open(small_extracts / "labs_a.csv.gz", "wb") as f:
        f.write(labs)
    with duckdb.connect() as con:
        con.execute(
            f"COPY (SELECT * FROM read_csv('{small_extracts / 'labs_a.csv.gz'}', all_varchar=true)) "
            f"TO '{small_extracts / 'labs_b.parquet'}' (FORMAT parquet)"
        )
    (small_extracts / "notes.txt").write_text("not an extract")
    result = run_screening(
        RunConfig(small_extracts, tmp_path / "out", AS_OF, tmp_path / "db.duckdb")
    )
    by_file = {i["file"]: i["rows_read"] for i in result.record["inputs"]}
    assert by_file["labs_a.csv.gz"] == by_file["labs_b.parquet"] == 5
    assert result.record["ignored_files"] == ["notes.txt"]


def test_running_out_of_memory_is_one_line_and_keeps_the_outputs(
    tmp_path: Path, small_extracts: Path
) -> None:
    out, db = tmp_path / "out", tmp_path / "db.duckdb"
    assert _run_cli(small_extracts, out, db).exit_code == 0
    before = _snapshot(out)
    (small_extracts / "labs_more.csv").write_bytes((small_extracts / "labs.csv").read_bytes())
    result = CliRunner().invoke(
        cli,
        ["run", "--extracts", str(small_extracts), "--out", str(out), "--as-of", "2026-11-24"]
        + ["--db", str(db), "--memory-limit", "1MB"],
    )
    _assert_one_line(result, OutOfMemoryError.exit_code, "ran out of memory", "--memory-limit")
    assert _snapshot(out) == before


def test_runs_and_report_during_a_run_stop_clearly(
    tmp_path: Path, small_extracts: Path, hold_database
) -> None:
    """A run holds its database from prepare to publish; 'runs' and 'report' meanwhile say so
    in one line (exit 6, worth a retry) and touch nothing; afterwards they work."""
    db = tmp_path / "db.duckdb"
    assert _run_cli(small_extracts, tmp_path / "out", db).exit_code == 0
    commands = [
        ["runs", "--db", str(db)],
        ["report", "--db", str(db), "--from", "2026-11-24", "--to", "2026-11-24"]
        + ["--out", str(tmp_path / "report")],
    ]
    with hold_database(db):
        for args in commands:
            result = CliRunner().invoke(cli, args)
            _assert_one_line(result, DatabaseBusyError.exit_code, "in use by another run")
    assert not (tmp_path / "report").exists()
    for args in commands:
        assert CliRunner().invoke(cli, args).exit_code == 0
