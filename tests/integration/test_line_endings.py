"""Line endings: a file that mixes LF, CRLF and CR-only lines is read row by row, a line still
broken after the rewrite is a quarantined row, and a clean file is read as it is (no copy)."""

from __future__ import annotations

import gzip
from datetime import date
from pathlib import Path

import duckdb
import pytest

from pipeline.read import newlines
from pipeline.runner import RunConfig, run_screening

pytestmark = pytest.mark.reliability  # docs/reliability.md

AS_OF = date(2026, 11, 24)
HEADER = "patient_id,collected_at,loinc,value,unit,result_id"
ROWS = [
    "p2,2026-11-05,2132-9,190,pg/mL,a",
    "p2,2026-11-06,2132-9,191,pg/mL,b",
    "p3,2026-11-07,2132-9,192,pg/mL,c",
    "p1,2026-11-08,2132-9,193,pg/mL,d",
]
# every way a line may end, in one file: the header CRLF, then LF, CR alone, CRLF, no ending
MIXED = HEADER + "\r\n" + ROWS[0] + "\n" + ROWS[1] + "\r" + ROWS[2] + "\r\n" + ROWS[3]

CASES = {  # name: (text, mixed?)
    "lf": ("\n".join([HEADER, *ROWS]) + "\n", False),
    "crlf": ("\r\n".join([HEADER, *ROWS]) + "\r\n", False),
    "cr only": ("\r".join([HEADER, *ROWS]) + "\r", False),
    "no final ending": ("\n".join([HEADER, *ROWS]), False),
    "lf, one crlf": (HEADER + "\n" + ROWS[0] + "\r\n" + "\n".join(ROWS[1:]) + "\n", True),
    "crlf, one lf": (HEADER + "\r\n" + ROWS[0] + "\n" + "\r\n".join(ROWS[1:]) + "\r\n", True),
    "lf header, cr rows": (HEADER + "\n" + "\r".join(ROWS) + "\r", True),
    "crlf, last line lf": ("\r\n".join([HEADER, *ROWS[:-1]]) + "\r\n" + ROWS[-1] + "\n", True),
    "all three": (MIXED, True),
}


@pytest.mark.parametrize("chunk", [3, 1 << 20])  # 3 bytes: every CRLF pair split across chunks
@pytest.mark.parametrize("case", CASES)
def test_mixed_endings_are_told_from_uniform_ones(tmp_path, monkeypatch, case, chunk) -> None:
    text, mixed = CASES[case]
    monkeypatch.setattr(newlines, "_CHUNK", chunk)
    path = tmp_path / "labs.csv"
    path.write_bytes(text.encode())
    assert newlines.needs_normalising(path) is mixed
    with newlines.normalised_copy(path, tmp_path / "spill") as copy:
        lines = copy.read_bytes().decode().split("\n")
    assert lines[: 1 + len(ROWS)] == [HEADER, *ROWS]  # one LF for each ending, values unchanged
    assert not list((tmp_path / "spill").iterdir()), "the copy outlived its block"


def test_a_clean_file_is_read_in_place(tmp_path: Path) -> None:
    path = tmp_path / "labs.csv"
    path.write_text(CASES["crlf"][0], newline="")
    with duckdb.connect() as con, newlines.lf_source(con, path, "'x'") as (source, rewritten):
        assert (source, rewritten) == ("'x'", False)


def _stored(db: Path, name: str) -> tuple[dict, list]:
    with duckdb.connect(str(db), read_only=True) as con:
        stored = dict(
            con.execute(
                "SELECT result_id, row_number FROM lab_results WHERE source_file = ?", [name]
            ).fetchall()
        )
        quarantined = con.execute(
            "SELECT row_number, reason FROM quarantine_log WHERE source_file = ? "
            "ORDER BY row_number",
            [name],
        ).fetchall()
    return stored, quarantined


def test_files_with_mixed_endings_are_read_row_by_row(tmp_path: Path, small_extracts: Path) -> None:
    """One plain and one gzip file; in each one line is broken (a stray CR inside a value),
    which splits it into two malformed lines, quarantined."""
    names = ("labs_mixed.csv", "labs_mixed.csv.gz")
    for name in names:
        tag = "z" if name.endswith(".gz") else ""
        text = MIXED + "\r\np1,2026-11-09,21\r32-9,194,pg/mL,e\n"
        data = text.replace("/mL,", f"/mL,{tag}").encode()
        path = small_extracts / name
        path.write_bytes(gzip.compress(data) if tag else data)
    spill = tmp_path / "db.duckdb.spill"
    result = run_screening(
        RunConfig(small_extracts, tmp_path / "out", AS_OF, tmp_path / "db.duckdb")
    )

    inputs = {i["file"]: i for i in result.record["inputs"]}
    for name in names:
        tag = "z" if name.endswith(".gz") else ""
        stored, quarantined = _stored(tmp_path / "db.duckdb", name)
        assert stored == {f"{tag}{rid}": n for n, rid in enumerate("abcd", 1)}, name
        assert [row for row, _ in quarantined] == [5, 6]
        assert all(reason.startswith("malformed CSV line") for _, reason in quarantined)
        assert inputs[name]["rows_read"] == 6 == len(stored) + len(quarantined)
    log = (tmp_path / "out" / "run.log").read_text()
    assert log.count("mixed line endings read as LF") == 2
    assert not spill.exists() or not any(spill.iterdir()), "an LF copy was left behind"


def test_a_full_spill_disk_while_copying_names_the_spill_folder(
    tmp_path: Path, small_extracts: Path, monkeypatch
) -> None:
    """The LF copy is written beside DuckDB's spill files: a disk full there is exit 7 naming
    the spill folder, not 'cannot read' the extract."""
    import errno

    from click.testing import CliRunner

    from pipeline.cli import cli

    def full(chunk: bytes) -> bytes:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(newlines, "_lf", full)
    (small_extracts / "labs_mixed.csv").write_bytes(MIXED.encode())
    result = CliRunner().invoke(
        cli,
        ["run", "--extracts", str(small_extracts), "--out", str(tmp_path / "out")]
        + ["--db", str(tmp_path / "db.duckdb"), "--as-of", "2026-11-24"],
    )
    assert result.exit_code == 7, result.output
    assert "cannot write to the spill folder" in result.stderr and "Traceback" not in result.output
