"""The SQL models' order: declared in each file's '-- reads:' line, checked, and derived.

Each test that breaks something copies the project's sql/ tree and edits one file, so the
check is tried on the real models, one defect at a time.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from pipeline import resources
from pipeline.rules import load_rules
from pipeline.screening.models import FOLDERS, ModelGraphError, model_graph


@pytest.fixture
def sql_copy(tmp_path: Path) -> Path:
    root = tmp_path / "sql"
    shutil.copytree(resources.sql_dir(), root)
    return root


def _edit(root: Path, relative: str, old: str, new: str) -> None:
    path = root / relative
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{relative} no longer holds {old!r}: update the test"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _reads_line(root: Path, relative: str) -> str:
    text = (root / relative).read_text(encoding="utf-8")
    return "\n".join(re.findall(r"^-- reads:.*$", text, re.MULTILINE))


def test_every_model_file_declares_what_it_reads():
    root = resources.sql_dir()
    for folder in FOLDERS:
        for path in root.glob(f"{folder}/*.sql"):
            assert re.search(r"^-- reads:", path.read_text(encoding="utf-8"), re.MULTILINE), path


def test_criteria_run_after_the_flags_they_read_and_otherwise_in_catalogue_order():
    graph = model_graph()
    catalogue = load_rules().criteria_order
    order = [n for n in graph.order(graph.of_kind("criterion"), catalogue) if n in catalogue]
    position = {cid: i for i, cid in enumerate(order)}
    for combined, inputs in {
        "pancytopenia": ("anemia", "leukopenia", "thrombocytopenia"),
        "deficiency_with_cytopenia": ("b12_deficient", "mma_elevated", "neutropenia"),
        # through deficient_results() (sql/intermediate/deficiency.sql)
        "folate_without_b12": ("b12_deficient", "mma_elevated"),
        "deficiency_untreated": ("b12_deficient", "mma_elevated"),
        "b12_screening_due": ("metformin_long_term", "risk_condition", "b12_lowering_drug"),
    }.items():
        for needed in inputs:
            assert position[needed] < position[combined], (needed, combined)
    # criteria that read no other criterion keep the rules file's order among themselves
    independent = [c for c in catalogue if not (graph.upstream([c]) - {c}) & set(catalogue)]
    assert [c for c in order if c in independent] == independent


def test_a_catalogue_that_puts_a_criterion_before_its_inputs_still_runs_them_first():
    graph = model_graph()
    backwards = list(reversed(load_rules().criteria_order))  # pancytopenia before anemia
    assert backwards.index("pancytopenia") < backwards.index("anemia")
    order = graph.order(graph.of_kind("criterion"), backwards)
    assert order.index("anemia") < order.index("pancytopenia")
    assert order.index("int_latest_labs") < order.index("latest_lab") < order.index("anemia")


def test_the_marts_and_measures_come_after_the_reviewed_flags():
    graph = model_graph()
    order = graph.order(["worklist", "resolved", *graph.of_kind("measure")], [])
    flags = order.index("flags")
    assert set(graph.of_kind("criterion")) <= set(order[:flags])
    assert order.index("int_active_feedback") < flags
    for name in ["worklist", "resolved", *graph.of_kind("measure")]:
        assert order.index(name) > flags, name
    assert order.index("worklist") < order.index("resolved")  # resolved reads run_worklist


def test_a_read_the_header_does_not_declare_is_refused(sql_copy: Path):
    _edit(sql_copy, "criteria/pancytopenia.sql", "-- reads: anemia, ", "-- reads: ")
    with pytest.raises(ModelGraphError) as info:
        model_graph(sql_copy)
    message = str(info.value)
    assert message.startswith("sql/criteria/pancytopenia.sql: reads anemia but")
    assert "\n" not in message


def test_a_declared_read_the_sql_does_not_make_is_refused(sql_copy: Path):
    _edit(sql_copy, "criteria/risk_condition.sql", "-- reads: ", "-- reads: lab_results, ")
    with pytest.raises(
        ModelGraphError, match=r"risk_condition\.sql: '-- reads:' names lab_results"
    ):
        model_graph(sql_copy)


def test_a_model_without_a_reads_line_is_refused(sql_copy: Path):
    line = _reads_line(sql_copy, "intermediate/int_latest_labs.sql")
    _edit(sql_copy, "intermediate/int_latest_labs.sql", line + "\n", "")
    with pytest.raises(ModelGraphError, match=r"int_latest_labs\.sql: no '-- reads:' line"):
        model_graph(sql_copy)


def test_a_new_table_read_is_found_inside_a_cte_and_a_subquery(sql_copy: Path):
    _edit(
        sql_copy,
        "criteria/risk_condition.sql",
        "from int_patient_conditions",
        "from (select * from int_patient_conditions where patient_id in "
        "(select patient_id from diagnoses))",
    )
    with pytest.raises(ModelGraphError, match=r"reads diagnoses but"):
        model_graph(sql_copy)


def test_criteria_that_read_each_other_in_a_circle_are_refused(sql_copy: Path):
    # anemia made to read pancytopenia's flags, which read anemia's
    _edit(
        sql_copy,
        "criteria/anemia.sql",
        "-- reads: ",
        "-- reads: pancytopenia, ",
    )
    text = (sql_copy / "criteria/anemia.sql").read_text(encoding="utf-8")
    text = text.replace(
        "select * from final",
        "select * from final where patient_id not in "
        "(select patient_id from run_flags where criterion = 'pancytopenia')",
    )
    (sql_copy / "criteria/anemia.sql").write_text(text, encoding="utf-8")
    with pytest.raises(ModelGraphError, match=r"read one another in a circle: .*pancytopenia"):
        model_graph(sql_copy)


def test_reading_flags_without_naming_the_criteria_is_refused(sql_copy: Path):
    _edit(
        sql_copy,
        "criteria/pancytopenia.sql",
        "where criterion in ('anemia', 'leukopenia', 'thrombocytopenia')",
        "where criterion like '%penia'",
    )
    with pytest.raises(ModelGraphError, match=r"pancytopenia\.sql: reads run_flags without naming"):
        model_graph(sql_copy)


def test_an_intermediate_table_may_not_read_flags(sql_copy: Path):
    _edit(
        sql_copy,
        "intermediate/int_patient_conditions.sql",
        "-- reads: ",
        "-- reads: deficient_results, ",
    )
    path = sql_copy / "intermediate/int_patient_conditions.sql"
    text = path.read_text(encoding="utf-8")
    last = text.rstrip().rsplit("\n", 1)[-1]
    assert last.startswith("select"), last
    path.write_text(
        text.rstrip() + " where patient_id not in (select patient_id from deficient_results())\n",
        encoding="utf-8",
    )
    with pytest.raises(
        ModelGraphError, match=r"intermediate table reads the flags of b12_deficient"
    ):
        model_graph(sql_copy)


def test_the_project_graph_is_what_the_run_uses():
    """load_rules() checks the graph, so a run with a broken header stops before reading data."""
    graph = model_graph()
    assert set(graph.of_kind("criterion")) == set(load_rules().criteria_order)
    assert set(graph.of_kind("measure")) == set(load_rules().spec.measures)
