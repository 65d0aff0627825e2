"""Shared fixtures. Tests use tmp folders and their own DuckDB files; nothing touches ~/."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pytest

PATIENTS_CSV = """patient_id,sex,birth_date,site
p1,M,1950-01-01,north
p2,F,1960-05-05,south
p3,F,1970-01-01,north
"""
LABS_CSV = """patient_id,collected_at,loinc,test_name,value,unit,result_id
p1,2026-11-01,2132-9,,154,pg/mL,r1
p1,2026-11-01,718-7,,11.2,g/dL,r2
p2,2026-11-01,,Vitamin B12,400,pg/mL,r3
p3,2026-11-01,,HGB,4.1,g/dL,r4
p3,2026-11-01,,HGB,pending,g/dL,r5
"""


def campaign_count(variable: str, ci: int, full: int) -> int:
    """How many trials a reliability test runs (docs/reliability.md): ``variable`` if set,
    else ``full`` under ``B12SCREEN_CAMPAIGN=full``, else the CI's ``ci``."""
    if os.environ.get(variable):
        return int(os.environ[variable])
    return full if os.environ.get("B12SCREEN_CAMPAIGN") == "full" else ci


@pytest.fixture
def small_extracts(tmp_path: Path) -> Path:
    """A tiny valid extracts folder: p1 deficient with anemia, p2 normal, p3 critical anemia."""
    folder = tmp_path / "extracts"
    folder.mkdir()
    (folder / "patients.csv").write_text(PATIENTS_CSV, encoding="utf-8")
    (folder / "labs.csv").write_text(LABS_CSV, encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One temporary Prefect backend for the whole session (~5 s to start)."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect_home"))
    from prefect.testing.utilities import prefect_test_harness

    # 30 s is Prefect's default wait for its server; a busy machine (CI sharing cores) may
    # need more, and waiting costs nothing when it starts at once
    with prefect_test_harness(server_startup_timeout=180):
        yield


@contextmanager
def _database_held_by_another_process(db: Path) -> Iterator[None]:
    """Another process holds the DuckDB file (as a concurrent run would) while the block runs."""
    duckdb.connect(str(db)).close()
    script = f"import duckdb, sys\ncon = duckdb.connect({str(db)!r})\nprint('ready', flush=True)\nsys.stdin.read()\n"
    holder = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        yield
    finally:
        holder.communicate("")


@pytest.fixture
def hold_database():
    """``with hold_database(db): ...`` runs the block while another process holds ``db``."""
    return _database_held_by_another_process


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the session (tests/chromium.py).

    Skips when Chromium is not installed, unless B12SCREEN_BROWSER_REQUIRED=1 (CI): then fails.
    """
    from chromium import Browser, find_browser

    if find_browser() is None:
        message = "headless Chromium not installed (apt-get install chromium chromium-driver)"
        if os.environ.get("B12SCREEN_BROWSER_REQUIRED") == "1":
            pytest.fail(message)
        pytest.skip(message)
    with Browser() as session:
        yield session
