"""Apply the criteria (stage 3 of a run).

Builds the intermediate relations (latest lab results, medication orders by drug group with the
exposure macros over them, conditions per patient), then runs each criterion's SQL (sql/criteria/<id>.sql) in the order
of the rules file, appending its rows to ``run_flags``; a criterion may read the flags of the
ones before it (pancytopenia reads anemia, leukopenia and thrombocytopenia).

Every criterion returns the flag layout (:data:`FLAG_LAYOUT`: the columns of ``run_flags``, by
name, order and type). Each criterion's result columns are checked against it before anything
is inserted (DESCRIBE binds the query without running it), and its rows are then inserted by
position, so a criterion that drops, adds, renames, reorders or retypes a column stops the run
with a one-line error naming its file.
"""

from __future__ import annotations

import duckdb

from pipeline.resources import read_sql, sql_dir
from pipeline.rules import Rules

# The flag layout: what every sql/criteria/<id>.sql returns, one row per patient meeting it, and
# the columns of run_flags. note_key picks a note of the criterion (rules file) for the worklist.
FLAG_LAYOUT: tuple[tuple[str, str], ...] = (
    ("patient_id", "VARCHAR"),
    ("criterion", "VARCHAR"),
    ("value", "DOUBLE"),
    ("unit", "VARCHAR"),
    ("observed_at", "TIMESTAMP"),
    ("detail", "VARCHAR"),
    ("evidence", "VARCHAR"),
    ("source_file", "VARCHAR"),
    ("row_number", "BIGINT"),
    ("note_key", "VARCHAR"),
)
RUN_FLAGS_DDL = (
    "CREATE OR REPLACE TEMP TABLE run_flags ("
    + ", ".join(f"{name} {dtype}" for name, dtype in FLAG_LAYOUT)
    + ")"
)


class FlagLayoutError(RuntimeError):
    """A criterion's SQL does not return the flag layout (a bug in that file, not in the data)."""


def _layout_text(columns: tuple[tuple[str, str], ...] | list[tuple[str, str]]) -> str:
    return ", ".join(f"{name} {dtype}" for name, dtype in columns)


def check_flag_layout(con: duckdb.DuckDBPyConnection, where: str, sql: str) -> None:
    """Raise FlagLayoutError (one line naming ``where``) unless ``sql`` returns FLAG_LAYOUT."""
    got = [(r[0], r[1]) for r in con.execute(f"DESCRIBE ({sql})").fetchall()]
    if got == list(FLAG_LAYOUT):
        return
    for position, (want, have) in enumerate(zip(FLAG_LAYOUT, got, strict=False), start=1):
        if want != have:
            problem = f"column {position} is {_layout_text([have])}, not {_layout_text([want])}"
            break
    else:
        if len(got) > len(FLAG_LAYOUT):
            problem = f"extra column {_layout_text(got[len(FLAG_LAYOUT) :])}"
        else:
            problem = f"missing column {_layout_text(FLAG_LAYOUT[len(got) :])}"
    raise FlagLayoutError(
        f"{where}: {problem}; a criterion returns exactly {_layout_text(FLAG_LAYOUT)}"
    )


def load_macros(con: duckdb.DuckDBPyConnection) -> None:
    for path in sorted((sql_dir() / "macros").glob("*.sql")):
        con.execute(path.read_text(encoding="utf-8"))


def build_intermediates(con: duckdb.DuckDBPyConnection) -> None:
    """The int_* tables and the macros over them that the criteria read, and an empty run_flags."""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE int_latest_labs AS "
        + read_sql("intermediate/int_latest_labs.sql")
    )
    con.execute(read_sql("intermediate/latest_lab.sql"))  # table macro bound to the table above
    con.execute(read_sql("intermediate/lab_limit_flags.sql"))  # the lab criteria, over latest_lab()
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


def criterion_sql(cid: str) -> tuple[str, str]:
    """(the file as errors name it, its SQL) of one criterion."""
    return f"sql/criteria/{cid}.sql", read_sql(f"criteria/{cid}.sql")


def screen(con: duckdb.DuckDBPyConnection, rules: Rules) -> dict[str, int]:
    """Fill run_flags; returns the number of patients meeting each criterion."""
    build_intermediates(con)
    queries = [(cid, *criterion_sql(cid)) for cid in rules.criteria_order]
    for _, where, sql in queries:  # every file checked before any row is written
        check_flag_layout(con, where, sql)
    counts: dict[str, int] = {}
    for cid, where, sql in queries:
        ((inserted,),) = con.execute(f"INSERT INTO run_flags SELECT * FROM ({sql})").fetchall()
        ((own, patients),) = con.execute(
            "SELECT count(*), count(DISTINCT patient_id) FROM run_flags WHERE criterion = ?",
            [cid],
        ).fetchall()
        if own != inserted:
            raise FlagLayoutError(f"{where}: wrote rows whose criterion is not {cid!r}")
        counts[cid] = patients
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
