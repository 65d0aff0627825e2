"""A database written by the previous storage format keeps working after the upgrade.

The previous format kept text record keys (``'id:' || patient_id || '|' || result_id`` for a lab
result with an id, the patient_id for a patient, an MD5 hex digest for the other kinds) beside a
64-bit ``key_hash``, and a stored copy of the last night's raw rows (``raw_labs`` ...). The test
writes a night with today's code, turns its database back into that format with the old key
formulas written out here, then sends the same files again plus one corrected result: the
upgrade must recognise every stored row (re-sent, not new), log the correction against the old
value, drop the stored raw copies, and leave one fixed-width key column.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
from click.testing import CliRunner

from pipeline.cli import cli

PATIENTS = "patient_id,sex,birth_date,site\np1,M,1950-03-01,north\np2,F,1962-07-12,south\n"
LABS = (
    "patient_id,collected_at,loinc,test_name,value,unit,result_id\n"
    "p1,2026-11-15,2132-9,,150,pg/mL,r1\n"
    "p2,2026-11-16,2132-9,,500,pg/mL,r2\n"
)
MEDICATIONS = (
    "patient_id,medication,rxnorm,atc,start_date,end_date,route\np1,metformin,,,2020-01-01,,oral\n"
)


def _night(folder: Path, labs: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "patients.csv").write_text(PATIENTS)
    (folder / "labs.csv").write_text(labs)
    (folder / "medications.csv").write_text(MEDICATIONS)
    return folder


def _run(extracts: Path, out: Path, db: Path, as_of: date) -> None:
    result = CliRunner().invoke(
        cli,
        ["run", "--extracts", str(extracts), "--out", str(out), "--db", str(db)]
        + ["--as-of", as_of.isoformat()],
    )
    assert result.exit_code == 0, result.output


def _to_previous_format(db: Path) -> None:
    con = duckdb.connect(str(db))
    # lab results in one wide table, not coded (lab_rows, lab_codings and the view lab_results)
    con.execute("CREATE TABLE _wide AS SELECT * FROM lab_results")
    con.execute("DROP VIEW lab_results; DROP TABLE lab_rows; DROP TABLE lab_codings")
    con.execute("ALTER TABLE _wide RENAME TO lab_results")
    old_keys = {
        "lab_results": "'id:' || patient_id || '|' || result_id",
        "patients": "patient_id",
        "medications": "md5(concat_ws('|', patient_id, coalesce(medication, ''), "
        "coalesce(rxnorm, ''), coalesce(atc, ''), start_date::varchar, "
        "coalesce(end_date::varchar, ''), coalesce(route, '')))",
    }
    for table, key in old_keys.items():
        con.execute(f"ALTER TABLE {table} DROP COLUMN record_key")
        con.execute(f"ALTER TABLE {table} ADD COLUMN record_key VARCHAR")
        con.execute(f"UPDATE {table} SET record_key = {key}")
        con.execute(f"ALTER TABLE {table} ADD COLUMN key_hash UBIGINT")
        con.execute(f"UPDATE {table} SET key_hash = hash(record_key)")
    con.execute(
        "CREATE TABLE raw_labs AS SELECT patient_id, value_reported AS value FROM lab_results"
    )
    con.close()


def test_a_previous_format_database_is_upgraded_and_recognises_its_rows(tmp_path: Path):
    db, out = tmp_path / "screen.duckdb", tmp_path / "out"
    _run(_night(tmp_path / "night1", LABS), out, db, date(2026, 11, 20))
    _to_previous_format(db)
    corrected = LABS.replace("p2,2026-11-16,2132-9,,500,", "p2,2026-11-16,2132-9,,140,")
    _run(_night(tmp_path / "night2", corrected), out, db, date(2026, 11, 21))

    con = duckdb.connect(str(db), read_only=True)
    try:
        counts = dict(
            con.execute("SELECT patient_id, count(*) FROM lab_results GROUP BY 1").fetchall()
        )
        assert counts == {"p1": 1, "p2": 1}  # re-sent, not stored twice
        assert con.execute("SELECT count(*) FROM patients").fetchone()[0] == 2
        assert con.execute("SELECT count(*) FROM medications").fetchone()[0] == 1
        assert con.execute(
            "SELECT old_value, new_value FROM lab_result_corrections WHERE patient_id = 'p2'"
        ).fetchall() == [("500", "140")]
        for table in ("lab_results", "patients", "medications", "diagnoses"):
            columns = dict(
                con.execute(f"SELECT column_name, column_type FROM (DESCRIBE {table})").fetchall()
            )
            assert columns["record_key"] == "UHUGEINT", table
            assert "key_hash" not in columns, table
        raw = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE 'raw%' AND NOT temporary"
        ).fetchone()[0]
        assert raw == 0
        merged = con.execute(
            "SELECT record->'counts'->'merged'->'labs' FROM runs ORDER BY started_at DESC LIMIT 1"
        ).fetchone()[0]
    finally:
        con.close()
    assert '"new":0' in merged.replace(" ", "") and '"corrected":1' in merged.replace(" ", "")
