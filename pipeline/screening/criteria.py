"""Apply the criteria (stage 3 of a run).

Builds the intermediate relations (latest lab results, medication orders by drug group with the
exposure macros over them, conditions per patient), then runs each criterion's SQL (sql/criteria/<id>.sql) in the order
of the rules file, appending its rows to ``run_flags``; a criterion may read the flags of the
ones before it (pancytopenia reads anemia, leukopenia and thrombocytopenia).
"""

from __future__ import annotations

import duckdb

from pipeline.resources import read_sql, sql_dir
from pipeline.rules import Rules

RUN_FLAGS_DDL = """
CREATE OR REPLACE TEMP TABLE run_flags (
    patient_id VARCHAR, criterion VARCHAR, value DOUBLE, unit VARCHAR, observed_at TIMESTAMP,
    detail VARCHAR, evidence VARCHAR, source_file VARCHAR, row_number BIGINT, note_key VARCHAR
)
"""


def load_macros(con: duckdb.DuckDBPyConnection) -> None:
    for path in sorted((sql_dir() / "macros").glob("*.sql")):
        con.execute(path.read_text(encoding="utf-8"))


def screen(con: duckdb.DuckDBPyConnection, rules: Rules) -> dict[str, int]:
    """Fill run_flags; returns the number of patients meeting each criterion."""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE int_latest_labs AS "
        + read_sql("intermediate/int_latest_labs.sql")
    )
    con.execute(read_sql("intermediate/latest_lab.sql"))  # table macro bound to the table above
    con.execute(
        "CREATE OR REPLACE TEMP TABLE int_medication_groups AS "
        + read_sql("intermediate/int_medication_groups.sql")
    )
    con.execute(read_sql("intermediate/drug_exposure.sql"))  # macros over the table above
    con.execute(read_sql("intermediate/tested_within.sql"))  # a macro over lab_results
    con.execute(
        "CREATE OR REPLACE TEMP TABLE int_patient_conditions AS "
        + read_sql("intermediate/int_patient_conditions.sql")
    )
    con.execute(RUN_FLAGS_DDL)
    con.execute(read_sql("intermediate/deficiency.sql"))  # a macro over run_flags
    counts: dict[str, int] = {}
    for cid in rules.criteria_order:
        con.execute(
            f"INSERT INTO run_flags BY NAME SELECT * FROM ({read_sql(f'criteria/{cid}.sql')})"
        )
        counts[cid] = con.execute(
            "SELECT count(DISTINCT patient_id) FROM run_flags WHERE criterion = ?", [cid]
        ).fetchone()[0]
    con.execute(
        "CREATE OR REPLACE TEMP TABLE int_active_feedback AS "
        + read_sql("intermediate/int_active_feedback.sql")
    )
    con.execute("CREATE OR REPLACE TEMP TABLE run_flags_reviewed AS " + read_sql("marts/flags.sql"))
    con.execute("DROP TABLE run_flags")
    con.execute("ALTER TABLE run_flags_reviewed RENAME TO run_flags")
    stray = con.execute(
        "SELECT DISTINCT criterion FROM run_flags WHERE criterion NOT IN (SELECT criterion FROM rule_criteria)"
    ).fetchall()
    if stray:
        raise RuntimeError(
            f"criteria SQL wrote unknown criterion ids: {sorted(r[0] for r in stray)}"
        )
    return counts
