"""Nothing an extract or an option carries reaches SQL as code (issue: trust under attack).

Headers, file names and option values are the places where outside text meets a statement:
each is tried here with text written to break out of its quoting, and the run must either
treat it as plain data or refuse it in one line.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.errors import ExtractsError, UsageError
from pipeline.runner import RunConfig, run_screening
from pipeline.sqltext import ident, literal, literal_files, memory_setting

pytestmark = pytest.mark.reliability  # docs/reliability.md

AS_OF = date(2026, 11, 24)
BIRTH_DATES = ("1950-01-01", "1960-05-05", "1970-01-01")  # conftest.PATIENTS_CSV

# Headers written to close the identifier quote and run SQL of their own: one reads every
# stored patient, one reads a local file, one is only a stray quote.
HOSTILE_HEADERS = [
    "x\" := 1, leak := (SELECT string_agg(patient_id || birth_date, '|') FROM patients), \"y",
    "x\" := 1, leak := (SELECT content FROM read_text('/etc/hostname')), \"y",
    'note"',
    "it's",
    "a\u202eb<script>",
]


def _run(extracts: Path, tmp_path: Path) -> dict:
    return run_screening(
        RunConfig(extracts, tmp_path / "out", AS_OF, tmp_path / "db.duckdb")
    ).record


@pytest.mark.parametrize("header", HOSTILE_HEADERS)
def test_a_hostile_header_is_data_in_the_quarantined_row(
    tmp_path: Path, small_extracts: Path, header: str
) -> None:
    # the header is quoted as a CSV field, so it reaches DuckDB exactly as written above
    quoted = '"' + header.replace('"', '""') + '"'
    (small_extracts / "labs_hostile.csv").write_text(
        f"patient_id,collected_at,loinc,value,unit,{quoted}\n"
        "p2,2026-11-02,2132-9,not-a-number,pg/mL,carried\n",
        encoding="utf-8",
    )
    record = _run(small_extracts, tmp_path)
    assert record["counts"]["rows_quarantined"]["labs"] == 2  # p3's 'pending' Hgb + this row
    quarantine = (tmp_path / "out" / "quarantine.csv").read_text(encoding="utf-8")
    with duckdb.connect() as con:
        rows = con.execute(
            "SELECT raw_row FROM read_csv(?, all_varchar = true) WHERE source_file = ?",
            [str(tmp_path / "out" / "quarantine.csv"), "labs_hostile.csv"],
        ).fetchall()
    raw = json.loads(rows[0][0])
    assert raw[header.strip().lower()] == "carried"  # the header is a key, its cell the value
    assert "leak" not in raw
    for birth in BIRTH_DATES:
        assert birth.replace("-", "") not in quarantine and f"p1{birth}" not in quarantine
    hostname = Path("/etc/hostname")
    if hostname.exists() and hostname.read_text().strip():
        assert hostname.read_text().strip() not in quarantine


GLOB_NAMES = [
    "labs_[ab].csv",
    "labs_*.csv",
    "labs_?.csv",
    "labs_back\\slash.csv",
    "labs_it's.csv",
    "labs_**.csv",
    "labs_{a,b}.csv",
]


def test_glob_characters_in_file_names_read_each_file_exactly(
    tmp_path: Path, small_extracts: Path
) -> None:
    """Each file is read once, as itself: no file is read for another or credited to it."""
    (small_extracts / "labs_a.csv").write_text(
        "patient_id,collected_at,loinc,value,unit,result_id\np2,2026-11-03,2132-9,410,pg/mL,a1\n"
    )
    for n, name in enumerate(GLOB_NAMES):
        (small_extracts / name).write_text(
            "patient_id,collected_at,loinc,value,unit,result_id\n"
            f"p2,2026-11-{10 + n:02d},2132-9,{100 + n},pg/mL,g{n}\n"
        )
    record = _run(small_extracts, tmp_path)
    rows = {i["file"]: i["rows_read"] for i in record["inputs"]}
    assert all(rows[name] == 1 for name in [*GLOB_NAMES, "labs_a.csv"]), rows
    with duckdb.connect(str(tmp_path / "db.duckdb")) as con:
        stored = dict(
            con.execute(
                "SELECT source_file, list(result_id ORDER BY result_id) FROM lab_results "
                "GROUP BY ALL"
            ).fetchall()
        )
    for n, name in enumerate(GLOB_NAMES):
        assert stored[name] == [f"g{n}"], name
    assert stored["labs_a.csv"] == ["a1"]
    # the latest B12 (from the last glob-named file) is deficient: p2 is flagged from it
    flags = pq.read_table(tmp_path / "out" / "flags.parquet").to_pylist()
    b12 = [f for f in flags if f["patient_id"] == "p2" and f["criterion"] == "b12_deficient"]
    assert b12 and b12[0]["source_file"] == GLOB_NAMES[-1]


def test_an_extracts_folder_with_glob_characters_is_read(tmp_path: Path, small_extracts: Path):
    folder = tmp_path / "night [1] *"
    small_extracts.rename(folder)
    record = _run(folder, tmp_path)
    assert {i["file"]: i["rows_read"] for i in record["inputs"]} == {
        "patients.csv": 3,
        "labs.csv": 5,
    }


@pytest.mark.parametrize("second", ["VALUE", " value", "Value "])
def test_duplicate_column_names_in_a_csv_are_an_error_naming_the_file(
    tmp_path: Path, small_extracts: Path, second: str
) -> None:
    (small_extracts / "labs_dup.csv").write_text(
        f"patient_id,collected_at,loinc,value,unit,{second}\np2,2026-11-02,2132-9,100,pg/mL,900\n"
    )
    with pytest.raises(ExtractsError, match=r"labs_dup.csv: column 'value' appears twice"):
        _run(small_extracts, tmp_path)


def test_duplicate_column_names_in_parquet_are_an_error_naming_the_file(
    tmp_path: Path, small_extracts: Path
) -> None:
    names = ["patient_id", "collected_at", "loinc", "value", "unit", "VALUE"]
    table = pa.table(
        [pa.array([v]) for v in ("p2", "2026-11-02", "2132-9", "1", "pg/mL", "9")], names=names
    )
    pq.write_table(table, small_extracts / "labs_dup.parquet")
    with pytest.raises(ExtractsError, match=r"labs_dup.parquet: column 'value' appears twice"):
        _run(small_extracts, tmp_path)


def test_blank_header_cells_are_still_read(tmp_path: Path, small_extracts: Path) -> None:
    """Trailing commas give blank names; DuckDB names those columns itself, as before."""
    (small_extracts / "labs_trailing.csv").write_text(
        "patient_id,collected_at,loinc,value,unit,,\np2,2026-11-02,2132-9,400,pg/mL,,\n"
    )
    record = _run(small_extracts, tmp_path)
    assert {i["file"]: i["rows_read"] for i in record["inputs"]}["labs_trailing.csv"] == 1


@pytest.mark.parametrize(
    "value", ["abc", "3GB'; SELECT 1; --", "0GB", "-1GB", "3 parsecs", "1e3GB", ""]
)
def test_a_bad_memory_limit_is_a_usage_error_before_anything_runs(
    tmp_path: Path, small_extracts: Path, value: str
) -> None:
    result = CliRunner().invoke(
        cli,
        ["run", "--extracts", str(small_extracts), "--out", str(tmp_path / "out")]
        + ["--db", str(tmp_path / "db.duckdb"), "--memory-limit", value],
    )
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "memory" in result.output.lower()
    assert not (tmp_path / "db.duckdb").exists()
    with pytest.raises(UsageError, match="--memory-limit"):
        RunConfig(small_extracts, tmp_path / "out", AS_OF, memory_limit=value or "x")


@pytest.mark.parametrize(
    ("given", "setting"), [("3GB", "3GB"), ("512mib", "512MiB"), (" 1.5 gb ", "1.5GB")]
)
def test_memory_sizes_are_normalised(given: str, setting: str) -> None:
    assert memory_setting(given) == setting


@pytest.mark.parametrize(
    "text", ["plain", 'a"b', '"; DROP TABLE x; --', "it's", "a'); SELECT 1; --", "\\'", "é∑"]
)
def test_quoted_identifiers_and_literals_round_trip(text: str) -> None:
    with duckdb.connect() as con:
        assert con.execute(f"SELECT {literal(text)}").fetchone()[0] == text
        con.execute(f"CREATE TABLE t ({ident(text)} INTEGER)")
        assert [r[0] for r in con.execute("DESCRIBE t").fetchall()] == [text]


def test_literal_files_open_exactly_the_named_file(tmp_path: Path) -> None:
    names = ["a.csv", "[a].csv", "*.csv", "?.csv", "x\\y.csv", "q'.csv.gz"]
    for n, name in enumerate(names[:-1]):
        (tmp_path / name).write_text(f"n\n{n}\n")
    import gzip

    with gzip.open(tmp_path / names[-1], "wt") as f:
        f.write("n\n5\n")
    with literal_files([tmp_path / n for n in names]) as sources, duckdb.connect() as con:
        got = [con.execute(f"SELECT n FROM read_csv({s})").fetchall() for s in sources]
    assert got == [[(n,)] for n in range(len(names))]


def test_only_the_folders_own_regular_files_are_read_and_the_rest_is_listed(
    tmp_path: Path, small_extracts: Path
) -> None:
    """A link out of the folder, a link to nothing, a sub-folder, a pipe and a hidden file named
    like extracts are not read; each is listed in run.json with why."""
    import os

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "labs.csv").write_text(
        "patient_id,collected_at,loinc,value,unit,result_id\np2,2026-11-20,2132-9,90,pg/mL,x1\n"
    )
    (small_extracts / "labs_linked_out.csv").symlink_to(outside / "labs.csv")
    (small_extracts / "labs_dangling.csv").symlink_to(tmp_path / "gone.csv")
    (small_extracts / "labs_2026").mkdir()
    ((small_extracts / "labs_2026") / "labs.csv").write_text("patient_id\n")
    os.mkfifo(small_extracts / "labs_pipe.csv")
    (small_extracts / ".labs.csv.part").write_text("patient_id,collected_at\n")
    (small_extracts / "labs_inside.csv").symlink_to(small_extracts / "labs.csv")  # same content
    record = _run(small_extracts, tmp_path)

    reasons = record["ignored_reasons"]
    assert set(record["ignored_files"]) == set(reasons)
    assert "outside the extracts folder" in reasons["labs_linked_out.csv"]
    assert "leads nowhere" in reasons["labs_dangling.csv"]
    assert "folder" in reasons["labs_2026"]
    assert "not a regular file" in reasons["labs_pipe.csv"]
    assert "hidden" in reasons[".labs.csv.part"]
    assert "labs_inside.csv" not in reasons  # a link within the folder is a file of the folder
    with duckdb.connect(str(tmp_path / "db.duckdb")) as con:
        sources = {
            r[0] for r in con.execute("SELECT DISTINCT source_file FROM lab_results").fetchall()
        }
        ids = {r[0] for r in con.execute("SELECT result_id FROM lab_results").fetchall()}
    assert "x1" not in ids and "labs_linked_out.csv" not in sources


def test_an_overlong_field_and_an_unterminated_quote_are_rows_not_a_failed_night(
    tmp_path: Path, small_extracts: Path
) -> None:
    """A 3 MB value (beyond DuckDB's 2 MB line default) is a row judged like any other; an
    unterminated quote is a malformed line kept with its text; the file's other rows are read."""
    (small_extracts / "labs_extra.csv").write_text(
        "patient_id,collected_at,loinc,value,unit,result_id\n"
        "p2,2026-11-05,2132-9," + "9" * (3 * 1024 * 1024) + ",pg/mL,long\n"
        "p2,2026-11-06,2132-9,190,pg/mL,after-long\n"
        'p3,2026-11-03,2132-9,"170,pg/mL,open-quote\n'
        "p1,2026-11-04,2132-9,180,pg/mL,swallowed\n",
        encoding="utf-8",
    )
    record = _run(small_extracts, tmp_path)
    assert {i["file"]: i["rows_read"] for i in record["inputs"]}["labs_extra.csv"] == 3
    with duckdb.connect(str(tmp_path / "db.duckdb")) as con:
        stored = dict(
            con.execute(
                "SELECT result_id, row_number FROM lab_results WHERE source_file = 'labs_extra.csv'"
            ).fetchall()
        )
        quarantined = con.execute(
            "SELECT row_number, reason, raw_row FROM quarantine_log "
            "WHERE source_file = 'labs_extra.csv' ORDER BY row_number"
        ).fetchall()
    assert stored == {"after-long": 2}
    (long_row, long_reason, _), (quote_row, quote_reason, quote_raw) = quarantined
    assert (long_row, long_reason) == (1, "value is not a number")
    assert quote_row == 3 and quote_reason.startswith("malformed CSV line")
    assert "open-quote" in quote_raw and "swallowed" in quote_raw  # nothing lost unseen
