"""Every criterion returns the one flag layout, and a query that does not is refused.

The layout is written out here by hand (names, order, types) rather than read from the code, so
a change to it is a change to this test too. Each criterion file is bound (DESCRIBE, nothing
run) in an in-memory DuckDB prepared by the runner itself, as the harness's StagingDB is, with
the kept tables, the int_* tables and macros and an empty run_flags (CriteriaDB).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pipeline import resources
from pipeline.rules import load_rules
from pipeline.screening import criteria
from pipeline.screening.criteria import FLAG_LAYOUT, FlagLayoutError, check_flag_layout
from pipeline.screening.models import ModelGraph, ModelRun, model_graph

try:
    from harness import CriteriaDB
except ModuleNotFoundError:  # tests/ imported as a package
    from tests.harness import CriteriaDB

LAYOUT = [
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
]
CRITERIA = sorted(p.stem for p in (resources.sql_dir() / "criteria").glob("*.sql"))

# A criterion in the shape metformin_long_term had before the layout was checked: no
# source_file, row_number or note_key (INSERT ... BY NAME filled them with NULL unseen).
DRIFTED = """
select 'p' as patient_id, 'metformin_long_term' as criterion, 1::double as value,
    'days' as unit, now()::timestamp as observed_at, 'x' as detail, 'x' as evidence
"""
GOOD = (
    "select 'p' as patient_id, 'metformin_long_term' as criterion, 1::double as value, "
    "'days' as unit, now()::timestamp as observed_at, 'x' as detail, 'x' as evidence, "
    "null::varchar as source_file, null::bigint as row_number, null::varchar as note_key"
)


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    database = CriteriaDB(tmp_path_factory.mktemp("layout"))
    yield database
    database.close()


def _columns(db, sql: str) -> list[tuple[str, str]]:
    return [(r["column_name"], r["column_type"]) for r in db.sql(f"DESCRIBE ({sql})")]


def test_the_layout_is_the_run_flags_table(db):
    assert list(FLAG_LAYOUT) == LAYOUT
    assert _columns(db, "SELECT * FROM run_flags") == LAYOUT


def test_every_rules_criterion_has_a_file_here():
    assert sorted(load_rules().criteria_order) == CRITERIA


@pytest.mark.parametrize("cid", CRITERIA)
def test_criterion_returns_the_flag_layout(db, cid):
    model = model_graph().models[cid]
    where, sql = model.where, model.sql
    assert _columns(db, sql) == LAYOUT, where
    check_flag_layout(db.con, where, sql)  # and the check before inserting lets it through


def test_a_good_query_passes(db):
    check_flag_layout(db.con, "sql/criteria/good.sql", GOOD)


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        (DRIFTED, "missing column source_file VARCHAR"),
        # two columns swapped
        (
            GOOD.replace("'x' as detail, 'x' as evidence", "'x' as evidence, 'x' as detail"),
            "column 6 is evidence VARCHAR, not detail VARCHAR",
        ),
        # a type that differs: a NULL left untyped, a date for a timestamp, an integer value
        (GOOD.replace("null::varchar as source_file", "null as source_file"), "column 8"),
        (GOOD.replace("now()::timestamp", "current_date"), "column 5 is observed_at DATE"),
        (GOOD.replace("1::double", "1"), "column 3 is value INTEGER"),
        # a column renamed, and one too many
        (GOOD.replace("as unit", "as units"), "column 4 is units VARCHAR"),
        (GOOD + ", 1 as extra", "extra column extra INTEGER"),
    ],
)
def test_a_wrong_query_is_refused_with_one_line_naming_the_file(db, query, problem):
    with pytest.raises(FlagLayoutError) as info:
        check_flag_layout(db.con, "sql/criteria/metformin_long_term.sql", query)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("sql/criteria/metformin_long_term.sql: ")
    assert problem in message


def _with_sql(cid: str, sql: str) -> ModelGraph:
    """The project's models with one criterion's SQL replaced (its header is not re-checked)."""
    graph = model_graph()
    models = dict(graph.models)
    models[cid] = dataclasses.replace(models[cid], sql=sql)
    return dataclasses.replace(graph, models=models)


def test_screen_refuses_a_drifted_criterion_before_writing_any_flag(db):
    run = ModelRun(db.con, load_rules().criteria_order, _with_sql("metformin_long_term", DRIFTED))
    with pytest.raises(FlagLayoutError, match=r"^sql/criteria/metformin_long_term\.sql: missing"):
        criteria.screen(run)
    assert db.sql("SELECT count(*) AS n FROM run_flags") == [{"n": 0}]


def test_screen_refuses_rows_labelled_with_another_criterion(db):
    mislabelled = GOOD.replace("'metformin_long_term' as criterion", "'b12_deficient' as criterion")
    run = ModelRun(
        db.con, load_rules().criteria_order, _with_sql("metformin_long_term", mislabelled)
    )
    with pytest.raises(FlagLayoutError, match=r"metformin_long_term\.sql: wrote rows whose"):
        criteria.screen(run)


def test_the_six_lab_files_are_found_by_name():
    """grep -rn b12_deficient sql/ still finds the criterion's own file."""
    for cid in (
        "b12_deficient",
        "folate_low",
        "homocysteine_elevated",
        "leukopenia",
        "macrocytosis",
        "mma_elevated",
    ):
        text = (resources.sql_dir() / "criteria" / f"{cid}.sql").read_text(encoding="utf-8")
        assert f"'{cid}'" in text and f"getvariable('{cid}." in text, Path(cid)
