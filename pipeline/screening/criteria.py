"""Apply the criteria (stage 3 of a run).

Builds the intermediate relations the criteria read (latest lab results, medication orders by
drug group with the exposure macros over them, conditions per patient), then runs each
criterion's SQL (sql/criteria/<id>.sql), appending its rows to ``run_flags``. A criterion may
read the flags of others (pancytopenia reads anemia, leukopenia and thrombocytopenia); its
``-- reads:`` line says which, and it runs after them (pipeline/screening/models.py).

Every criterion returns the flag layout (:data:`FLAG_LAYOUT`: the columns of ``run_flags``, by
name, order and type). Each criterion's result columns are checked against it before anything
is inserted (DESCRIBE binds the query without running it), and its rows are then inserted by
position, so a criterion that drops, adds, renames, reorders or retypes a column stops the run
with a one-line error naming its file.
"""

from __future__ import annotations

import duckdb

from pipeline.resources import sql_dir
from pipeline.screening.models import Model, ModelRun

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


def build_inputs(models: ModelRun) -> list[Model]:
    """An empty run_flags and everything the criteria read; the criteria, in run order."""
    models.con.execute(RUN_FLAGS_DDL)
    plan = models.plan(models.graph.of_kind("criterion"))
    for model in plan:
        if model.kind != "criterion":  # no intermediate reads a criterion (checked at start-up)
            models.materialize(model)
    return [m for m in plan if m.kind == "criterion"]


def screen(models: ModelRun) -> dict[str, int]:
    """Fill run_flags; returns the number of patients meeting each criterion.

    The order is the models' (pipeline/screening/models.py): what the criteria read is built
    first, each criterion's layout is checked before any row is written, the criteria are
    inserted each after the ones it reads, then the flags mart applies clinician feedback.
    """
    con = models.con
    criteria = build_inputs(models)
    for model in criteria:  # every file checked before any row is written
        check_flag_layout(con, model.where, model.sql)
    counts: dict[str, int] = {}
    for model in criteria:
        cid = model.name
        ((inserted,),) = con.execute(
            f"INSERT INTO run_flags SELECT * FROM ({model.sql})"
        ).fetchall()
        ((own, patients),) = con.execute(
            "SELECT count(*), count(DISTINCT patient_id) FROM run_flags WHERE criterion = ?",
            [cid],
        ).fetchall()
        if own != inserted:
            raise FlagLayoutError(f"{model.where}: wrote rows whose criterion is not {cid!r}")
        counts[cid] = patients
        models.built.add(cid)
    _unscreen(con)
    models.build(["flags"])
    stray = con.execute(
        "SELECT DISTINCT criterion FROM run_flags WHERE criterion NOT IN (SELECT criterion FROM rule_criteria)"
    ).fetchall()
    if stray:
        raise RuntimeError(
            f"criteria SQL wrote unknown criterion ids: {sorted(r[0] for r in stray)}"
        )
    kept = dict(
        con.execute(
            "SELECT criterion, count(DISTINCT patient_id) FROM run_flags GROUP BY criterion"
        ).fetchall()
    )
    return {cid: kept.get(cid, 0) for cid in models.catalogue if cid in counts}


# Flags that are never written: those of a criterion a site profile switched off (enabled =
# false; the criteria built on it have already read it, so their meaning does not change), and
# every flag of a patient younger than settings.minimum_age on the as-of date (children are not
# screened by adult limits) or who died on or before it (the audit counts both).
_UNSCREEN = """
DELETE FROM run_flags
WHERE criterion IN (SELECT criterion FROM rule_criteria WHERE NOT enabled)
    OR patient_id IN (
        SELECT patient_id FROM patients
        WHERE below_minimum_age(birth_date) OR deceased_by_as_of(death_date)
    )
"""


def _unscreen(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(_UNSCREEN)
