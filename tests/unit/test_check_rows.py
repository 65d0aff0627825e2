"""check_rows (pipeline/store/validate.py): the lab schema over a staged table in frames, every
failed check of a row kept, the reasons of a row sorted and joined by "; " (DuckDB groups them
since the failures stopped being grouped in Python)."""

from __future__ import annotations

from datetime import date

import duckdb
import pytest

from pipeline.store.validate import check_rows
from schemas.extracts import MODELS, schema_for, validation_columns

AS_OF = date(2026, 11, 24)

# _rid, patient_id, is_known_patient, collected_at, analyte, value, canonical, implausible
ROWS = """
    (1, 'p1', true,  TIMESTAMP '2026-11-01 08:00', 'b12', 300.0, 300.0, NULL),
    (2, 'p9', false, TIMESTAMP '2026-11-01 08:00', 'b12', -5.0, -5.0, NULL),
    (3, 'p1', true,  TIMESTAMP '2026-12-30 08:00', 'hgb', 12.0, 12.0, 'hgb'),
    (4, NULL, NULL,  TIMESTAMP '2026-11-02 08:00', NULL, NULL, NULL, NULL),
    (5, 'p2', true,  TIMESTAMP '2026-11-03 08:00', 'b12', 250.0, 250.0, NULL)
"""


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    columns = ", ".join(validation_columns("labs"))
    con.execute(
        f"""
        CREATE TEMP TABLE incoming_labs AS
        SELECT * REPLACE (_rid::BIGINT AS _rid, value_number::DOUBLE AS value_number,
                          value_canonical::DOUBLE AS value_canonical)
        FROM (VALUES {ROWS}) AS t({columns})
        """
    )
    yield con
    con.close()


@pytest.mark.parametrize("batch_rows", [None, 2])
def test_every_failed_check_of_a_row_in_sorted_reasons(con, batch_rows) -> None:
    schema = schema_for("labs", AS_OF, {"b12": "B12", "hgb": "Hgb"})
    checked, failing = check_rows(
        con, "SELECT * FROM incoming_labs", schema, MODELS["labs"].__name__, batch_rows, "labs"
    )
    assert (checked, failing) == (5, 3)
    got = con.execute("SELECT _rid, reason FROM reasons_labs ORDER BY _rid").fetchall()
    # pandera reports a row's failures in check order (patient_known before
    # value_not_negative; the column check on collected_at before the frame checks): the
    # reasons are sorted, whatever that order
    assert got == [
        (2, "negative value; patient_id not in the patients extract"),
        (
            3,
            "collected_at: date after the as-of date; "
            "value outside the physiologically possible range for Hgb",
        ),
        (4, "patient_id missing or unreadable"),
    ]


def test_no_failure_leaves_no_reasons_table(con) -> None:
    con.execute("DELETE FROM incoming_labs WHERE _rid IN (2, 3, 4)")
    schema = schema_for("labs", AS_OF, {"b12": "B12", "hgb": "Hgb"})
    assert check_rows(
        con, "SELECT * FROM incoming_labs", schema, MODELS["labs"].__name__, 2, "labs"
    ) == (2, 0)
    assert not con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'reasons_labs'"
    ).fetchall()[0][0]
