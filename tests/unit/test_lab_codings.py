"""The lab codings staging assigns (sql/staging/stg_lab_codings.sql): one id per coding, however
it is spelled, and a stored coding's own id on a later night (pipeline/store/merge.py)."""

from __future__ import annotations

import pytest

try:
    from harness import StagingDB
except ModuleNotFoundError:  # tests/ imported as a package
    from tests.harness import StagingDB

B12 = "2132-9"


@pytest.fixture
def staging(tmp_path):
    db = StagingDB(tmp_path)
    yield db
    db.close()


def _rows(*spellings: tuple[str | None, str | None, str]) -> list[dict]:
    return [
        {"patient_id": "p", "loinc": loinc, "test_name": name, "value": "300", "unit": unit}
        for loinc, name, unit in spellings
    ]


def test_spellings_of_one_coding_share_its_id_and_others_do_not(staging) -> None:
    rows = staging.stage(
        _rows(
            (B12, "B12", "pg/mL"),
            (f"  {B12} ", " B12 ", "pg/mL"),  # the same coding: spaces around code and name
            (B12, "B12", "pmol/L"),  # another unit as written: another coding
            (None, "Vitamin B12", "pg/mL"),  # coded by the test name: another coding
        )
    )
    ids = [r["coding_id"] for r in rows]
    assert ids[0] == ids[1]
    assert len({ids[0], ids[2], ids[3]}) == 3
    assert rows[3]["coded_by"] == "test_name" and rows[0]["coded_by"] == "loinc"


def test_a_stored_coding_keeps_its_id_and_a_new_one_comes_after_it(staging) -> None:
    (first,) = staging.stage(_rows((B12, "B12", "pg/mL")))
    staging.con.execute(
        "INSERT INTO lab_codings SELECT DISTINCT coding_id, loinc, test_name, unit_reported, "
        "unit_key, analyte, coded_by, factor_to_canonical, canonical_unit, 'night-1' "
        "FROM staged_lab_codings"
    )
    again, new = staging.stage(_rows((B12, "B12", "pg/mL"), (B12, "B12", "ng/L")))
    assert again["coding_id"] == first["coding_id"]
    assert new["coding_id"] == first["coding_id"] + 1
    (is_new,) = staging.con.execute(
        "SELECT list(is_new ORDER BY coding_id) FROM staged_lab_codings"
    ).fetchone()
    assert is_new == [False, True]
