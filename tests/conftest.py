"""Shared fixtures. Tests use tmp folders and their own DuckDB files; nothing touches ~/."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

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

    with prefect_test_harness():
        yield
