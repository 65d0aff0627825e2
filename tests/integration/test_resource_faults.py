"""Resource faults: a full disk under the output folder or the database, a read-only output
folder, a spill folder that cannot be made or is full, too little memory while reading a CSV.
Each is one line on stderr with the exit code the README gives (5: output folder, 7:
resources), the failed run is in the registry with that line, and nothing is lost: the
published outputs are byte-identical and the database holds what it held.

The faults are real, not mocked: a file size limit (RLIMIT_FSIZE, the kernel refuses a write
past it with EFBIG, as a full disk refuses one with ENOSPC) in the run's process, a file where
the spill folder should be, a folder the run may not write (in a user namespace when the
tests run as root, who may write anywhere), DuckDB's own out-of-memory and could-not-offload
errors. docs/reliability.md counts them.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.errors import OutOfMemoryError, OutputError, ResourceError
from pipeline.publish.outputs import OUTPUT_FILES
from pipeline.shortage import Places, translate

pytestmark = pytest.mark.reliability  # docs/reliability.md

ROOT = Path(__file__).resolve().parents[2]
AS_OF = "2026-11-24"
LAB_HEADER = "patient_id,collected_at,loinc,test_name,value,unit,result_id"


def _args(extracts: Path, out: Path, db: Path, *extra: str) -> list[str]:
    return ["run", "--extracts", str(extracts), "--out", str(out), "--db", str(db)] + [
        "--as-of",
        AS_OF,
        *extra,
    ]


@contextlib.contextmanager
def _file_size_limit(max_bytes: int) -> Iterator[None]:
    """No file may grow past ``max_bytes`` while the block runs: the kernel refuses the write
    (EFBIG) as a full disk refuses it (ENOSPC). The soft limit only, so it can be lifted."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an error, not a signal
    resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def _run(args: list[str], *, max_file_bytes: int | None = None) -> tuple[int, str]:
    """The CLI in this process (exit code, stderr), under a file size limit if given."""
    limit = _file_size_limit(max_file_bytes) if max_file_bytes else contextlib.nullcontext()
    with limit:
        result = CliRunner().invoke(cli, args)
    return result.exit_code, result.stderr


def _run_unprivileged(args: list[str]) -> tuple[int, str]:
    """The CLI where the permission bits bind: root ignores them, so as root the CLI runs in
    its own process in a user namespace, which drops that power."""
    if os.geteuid() != 0:
        return _run(args)
    command = ["unshare", "--user", "--", sys.executable, "-m", "pipeline.cli", *args]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    return result.returncode, result.stderr


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def _published(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in OUTPUT_FILES}


def _runs(db: Path) -> list[tuple[str, str | None]]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("SELECT status, error FROM runs ORDER BY started_at").fetchall()


def _lab_rows(folder: Path, name: str, n: int, tag: str) -> None:
    rows = [
        f"p{1 + i % 3},2026-11-{1 + i % 20:02d},2132-9,,{150 + i % 700},pg/mL,{tag}{i}"
        for i in range(n)
    ]
    (folder / name).write_text("\n".join([LAB_HEADER, *rows]) + "\n")


@pytest.fixture(scope="module")
def published_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One published run (made once, copied for each test)."""
    from conftest import LABS_CSV, PATIENTS_CSV

    base = tmp_path_factory.mktemp("published")
    (base / "extracts").mkdir()
    (base / "extracts" / "patients.csv").write_text(PATIENTS_CSV)
    (base / "extracts" / "labs.csv").write_text(LABS_CSV)
    first = CliRunner().invoke(cli, _args(base / "extracts", base / "out", base / "db.duckdb"))
    assert first.exit_code == 0, first.output
    return base


@pytest.fixture
def night(tmp_path: Path, published_once: Path) -> dict:
    """A copy of the published run; the next night's files go into its extracts folder."""
    shutil.copytree(published_once, tmp_path / "site", symlinks=True)
    site = tmp_path / "site"
    out, db = site / "out", site / "db.duckdb"
    with duckdb.connect(str(db), read_only=True) as con:
        labs = con.execute("SELECT count(*) FROM lab_results").fetchone()[0]
    return {
        "extracts": site / "extracts",
        "out": out,
        "db": db,
        "before": _published(out),
        "labs": labs,
    }


def _nothing_lost(night: dict) -> None:
    assert _published(night["out"]) == night["before"], "the published outputs changed"
    assert not list(night["out"].glob(".b12screen-building-*"))
    with duckdb.connect(str(night["db"]), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM lab_results").fetchone()[0] == night["labs"]


def test_a_full_disk_under_the_output_folder_is_exit_5(night: dict) -> None:
    _lab_rows(night["extracts"], "labs_night2.csv", 50, "n")
    # audit.html is about 100 KB: the first output past 48 KB is refused, as by a full disk
    code, stderr = _run(_args(night["extracts"], night["out"], night["db"]), max_file_bytes=48_000)
    assert code == OutputError.exit_code, stderr
    line = _one_line(stderr)
    assert f"cannot write the outputs into {night['out']}" in line
    _nothing_lost(night)
    assert _runs(night["db"])[-1] == ("failed", line.removeprefix("b12screen: error: "))


def test_a_full_disk_under_the_database_is_exit_7_and_recorded(night: dict) -> None:
    # the commit of 8,000 new rows grows the database past 300 KB; every output stays below it
    _lab_rows(night["extracts"], "labs_night2.csv", 8_000, "n")
    code, stderr = _run(_args(night["extracts"], night["out"], night["db"]), max_file_bytes=300_000)
    assert code == ResourceError.exit_code, stderr
    line = _one_line(stderr)
    assert f"cannot write to the database {night['db']}" in line and "memory" not in line
    _nothing_lost(night)
    assert _runs(night["db"])[-1] == ("failed", line.removeprefix("b12screen: error: "))
    again = CliRunner().invoke(cli, _args(night["extracts"], night["out"], night["db"]))
    assert again.exit_code == 0, again.output  # room again: the next night succeeds


def test_a_read_only_output_folder_is_exit_5(night: dict) -> None:
    if os.geteuid() == 0 and shutil.which("unshare") is None:
        pytest.skip("running as root without unshare: permission bits cannot be enforced")
    _lab_rows(night["extracts"], "labs_night2.csv", 5, "n")
    night["out"].chmod(0o555)
    try:
        code, stderr = _run_unprivileged(_args(night["extracts"], night["out"], night["db"]))
    finally:
        night["out"].chmod(0o755)
    assert code == OutputError.exit_code, stderr
    assert "Permission denied" in _one_line(stderr)
    _nothing_lost(night)


def test_a_spill_folder_that_cannot_be_made_is_exit_7_before_any_data_is_read(night: dict):
    (night["db"].with_name("db.duckdb.spill")).write_text("a file in the folder's place\n")
    result = CliRunner().invoke(
        cli, _args(night["extracts"], night["out"], night["db"], "--memory-limit", "1GB")
    )
    assert result.exit_code == ResourceError.exit_code, result.output
    line = _one_line(result.stderr)
    assert "cannot use the spill folder" in line and "--memory-limit" not in line
    _nothing_lost(night)
    assert _runs(night["db"])[-1][0] == "failed"


def test_out_of_memory_while_reading_a_csv_is_exit_7_not_bad_data(night: dict) -> None:
    """One 30 MB field under a 16 MB limit: DuckDB cannot hold the line. That is memory (7),
    which raising the limit cures, not an unreadable file (3), which a scheduler reads as bad
    data."""
    (night["extracts"] / "labs_long.csv").write_text(
        LAB_HEADER + "\np1,2026-11-01,2132-9,," + "9" * 30_000_000 + ",pg/mL,x\n"
    )
    result = CliRunner().invoke(
        cli, _args(night["extracts"], night["out"], night["db"], "--memory-limit", "16MB")
    )
    assert result.exit_code == OutOfMemoryError.exit_code, result.output
    line = _one_line(result.stderr)
    assert "out of memory in the ingest stage" in line and "--memory-limit" in line
    assert "cannot read" not in line
    _nothing_lost(night)


# -- the spill disk full: DuckDB's own errors, classified ------------------------------------
def _places(tmp_path: Path) -> Places:
    db = tmp_path / "db.duckdb"
    return Places(tmp_path / "out", db, db.with_name("db.duckdb.spill"), "64MB")


def test_a_full_spill_disk_does_not_advise_raising_the_memory_limit(tmp_path: Path) -> None:
    """DuckDB caps its spill files at the free space of their disk; past it, it cannot offload
    a block and says so as an out-of-memory error. That is the disk, not the limit."""
    places = _places(tmp_path)
    with duckdb.connect(str(places.db)) as con:
        con.execute("SET memory_limit = '8MB'")
        con.execute(f"SET temp_directory = '{places.spill}'")
        con.execute("SET max_temp_directory_size = '256KB'")  # as a disk with 256 KB left
        with pytest.raises(duckdb.OutOfMemoryException) as caught:
            con.execute(
                "CREATE TEMP TABLE t AS SELECT range AS i, md5(range::VARCHAR) AS s "
                "FROM range(400000)"
            )
    error = translate(caught.value, places, "validate")
    assert type(error) is ResourceError and error.exit_code == 7
    assert f"could not spill to {places.spill}" in str(error)
    assert "memory-limit" not in str(error)


@pytest.mark.parametrize(
    ("where", "expected", "fragment"),
    [
        ("spill", ResourceError, "cannot write to the spill folder"),
        ("db", ResourceError, "cannot write to the database"),
        ("wal", ResourceError, "cannot write to the database"),
        ("out", OutputError, "cannot write the outputs into"),
    ],
)
def test_no_space_left_is_told_by_the_place_it_names(tmp_path, where, expected, fragment):
    """DuckDB's write errors name the file ('Could not write file "X": No space left on
    device'); the place decides the code and the advice."""
    places = _places(tmp_path)
    path = {
        "spill": places.spill / "duckdb_temp_storage_DEFAULT-0.tmp",
        "db": places.db,
        "wal": places.db.with_name("db.duckdb.wal"),
        "out": places.out / ".b12screen-building-x" / "flags.parquet",
    }[where]
    for exc in (
        duckdb.IOException(f'IO Error: Could not write file "{path}": No space left on device'),
        OSError(errno.ENOSPC, "No space left on device", str(path)),
    ):
        error = translate(exc, places, "outputs")
        assert type(error) is expected and fragment in str(error), exc
        assert "no space left" in str(error) and "memory-limit" not in str(error)


def test_a_reader_error_is_not_a_resource_fault(tmp_path: Path) -> None:
    places = _places(tmp_path)
    assert translate(duckdb.InvalidInputException("CSV error on line 3"), places, "ingest") is None
    assert translate(ValueError("a bug"), places, "screen") is None
    missing = OSError(errno.ENOENT, "No such file or directory", "labs.csv")
    assert translate(missing, places, "ingest") is None
