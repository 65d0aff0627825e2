"""A batch's staged rows go through a Parquet file (pipeline/store/validate.py, stage_to_file):
read back, they must be the rows written, with the same columns, types and order, 128-bit
record keys included (Parquet alone would turn those into DOUBLE)."""

from __future__ import annotations

from pathlib import Path

import duckdb
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.store.validate import stage_to_file

U128 = st.integers(min_value=0, max_value=2**128 - 1)
I128 = st.integers(min_value=-(2**127), max_value=2**127 - 1)


@settings(max_examples=30, deadline=None)
@given(keys=st.lists(st.tuples(U128, I128), min_size=1, max_size=20))
def test_wide_integers_come_back_exactly(tmp_path_factory, keys) -> None:
    folder = tmp_path_factory.mktemp("staged")
    con = duckdb.connect()
    con.execute("CREATE TABLE src (n INTEGER, u UHUGEINT, h HUGEINT)")
    con.executemany(
        "INSERT INTO src VALUES (?, ?::UHUGEINT, ?::HUGEINT)",
        [(i, str(u), str(h)) for i, (u, h) in enumerate(keys)],
    )
    stage_to_file(con, "SELECT * FROM src", folder / "staged.parquet", "staged")
    assert con.sql("DESCRIBE staged").fetchall() == con.sql("DESCRIBE src").fetchall()
    back = con.sql("SELECT n, u::VARCHAR, h::VARCHAR FROM staged ORDER BY n").fetchall()
    assert back == [(i, str(u), str(h)) for i, (u, h) in enumerate(keys)]


def test_staged_columns_keep_their_names_types_and_order(tmp_path: Path) -> None:
    con = duckdb.connect()
    select = (
        "SELECT 7::BIGINT AS _rid, 'labs.csv' AS source_file, TIMESTAMP '2026-11-20 08:30' "
        "AS collected_at, md5_number('id:p1|r1') AS record_key, NULL::DOUBLE AS value_canonical, "
        "true AS is_known_patient, 3::INTEGER AS coding_id"
    )
    stage_to_file(con, select, tmp_path / "staged.parquet", "incoming_labs")
    assert con.sql("DESCRIBE incoming_labs").fetchall() == con.sql(f"DESCRIBE {select}").fetchall()
    assert con.sql("SELECT * FROM incoming_labs").fetchall() == con.sql(select).fetchall()
    ((same,),) = con.sql("SELECT record_key = md5_number('id:p1|r1') FROM incoming_labs").fetchall()
    assert same
