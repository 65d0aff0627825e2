"""Hostile text from an extract is inert in every file a person opens (pipeline/publish/render.py).

One population carries markup and spreadsheet formulas in every field that reaches a page, a
workbook or a CSV file (patient id, site, test name, medication, diagnosis text, feedback note,
file name). The run, the period report and the monthly report are then read as a browser and a
spreadsheet would: no element or attribute that runs, no formula cell, the policy in every page.
"""

from __future__ import annotations

import copy
import csv
import json
from datetime import date, datetime
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook

from pipeline.publish import render
from pipeline.reports import audit
from pipeline.reports.monthly import write_month_report
from pipeline.reports.period import _by_dimension, write_period_report
from pipeline.rules import load_rules
from pipeline.runner import RunConfig, run_screening

pytestmark = pytest.mark.reliability  # docs/reliability.md

AS_OF = date(2026, 11, 24)
FORMULA_ID = '=HYPERLINK("http://x.example/a","click")'
SCRIPT_SITE = "<script>alert(1)</script>"
IMG_TEST = "<img src=x onerror=alert(1)>"
MARKUP = '"><svg onload=alert(1)>'

PATIENTS = [
    ("patient_id", "sex", "birth_date", "site"),
    (FORMULA_ID, "F", "1950-01-01", SCRIPT_SITE),
    ("+cmd|' /C calc'!A0", "M", "1955-01-01", "=1+2"),
    ("-2+3", "F", "1960-01-01", "@SUM(A1)"),
    ("\tTAB", "M", "1965-01-01", MARKUP),
    ("plain", "F", "1970-01-01", "north"),
]
LABS = [
    ("patient_id", "collected_at", "loinc", "test_name", "value", "unit", "result_id"),
    (FORMULA_ID, "2026-11-01", "2132-9", "", "120", "pg/mL", "r1"),
    ("+cmd|' /C calc'!A0", "2026-11-01", "2132-9", "", "130", "pg/mL", "r2"),
    ("-2+3", "2026-11-01", "718-7", "", "6.1", "g/dL", "r3"),
    ("\tTAB", "2026-11-01", "", IMG_TEST, "5", "mg", "r4"),
    ("plain", "2026-11-01", "2132-9", "", "=cmd()", "pg/mL", "r5"),
    ("plain", "2026-11-02", "2132-9", "", "500", "pg/mL", "r6"),
]
MEDICATIONS = [
    ("patient_id", "medication", "start_date", "route"),
    (FORMULA_ID, "Folic acid 5 mg <b>tablet</b>", "2026-10-01", "oral"),
    ("plain", f"{MARKUP} metformin", "2020-01-01", "=oral"),
]
DIAGNOSES = [
    ("patient_id", "code", "recorded_at", "description"),
    (FORMULA_ID, "<i>D51.0</i>", "2026-01-01", IMG_TEST),
]
FEEDBACK = [
    ("patient_id", "criterion", "action", "note"),
    ("+cmd|' /C calc'!A0", "b12_deficient", "<b>acknowledged</b>", '=HYPERLINK("x")'),
]


def _write(path: Path, rows: list[tuple]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    extracts = root / "extracts"
    extracts.mkdir()
    _write(extracts / "patients.csv", PATIENTS)
    _write(extracts / "labs_<b onmouseover=x>=1.csv", LABS)
    _write(extracts / "medications.csv", MEDICATIONS)
    _write(extracts / "diagnoses.csv", DIAGNOSES)
    _write(extracts / "feedback.csv", FEEDBACK)
    run_screening(RunConfig(extracts, root / "out", AS_OF, root / "db.duckdb"))
    write_period_report(root / "db.duckdb", AS_OF, AS_OF, root / "report")
    write_month_report(root / "db.duckdb", "2026-11", root / "monthly", today=date(2026, 12, 1))
    return root


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag


def assert_inert_page(html: str) -> None:
    parser = _Elements()
    parser.feed(html)
    tags = parser.tags
    names = {tag for tag, _ in tags}
    assert not names & {"script", "img", "iframe", "object", "embed", "form", "base"}, names
    for tag, attrs in tags:
        if tag == "a":  # the page's own table of contents only
            assert (attrs.get("href") or "").startswith("#"), attrs
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name)
            assert "javascript:" not in (value or "").lower(), (tag, name)
    policies = [
        a.get("content")
        for t, a in tags
        if t == "meta" and (a.get("http-equiv") or "").lower() == "content-security-policy"
    ]
    assert policies == [render.CONTENT_SECURITY_POLICY]
    assert html.index("Content-Security-Policy") < html.index("<title>")


def _pages(root: Path) -> dict[str, str]:
    pages = [root / "out" / "audit.html", root / "report" / "audit.html"]
    pages += [root / "report" / "population.html", *sorted((root / "monthly").glob("*.html"))]
    assert len(pages) == 4, pages
    return {str(p.relative_to(root)): p.read_text(encoding="utf-8") for p in pages}


def test_every_page_is_inert_and_carries_the_policy(hostile_run: Path) -> None:
    pages = _pages(hostile_run)
    for html in pages.values():
        assert_inert_page(html)
    # the hostile text did reach the pages, as text
    assert "&lt;img src=x onerror=alert(1)&gt;" in pages["out/audit.html"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages["report/population.html"]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_no_csv_cell_starts_like_a_formula(hostile_run: Path) -> None:
    files = [p for p in hostile_run.rglob("*.csv") if "extracts" not in p.parts]
    assert len(files) > 10, files
    for path in files:
        with path.open(newline="", encoding="utf-8") as f:
            for row in csv.reader(f):
                for cell in row:
                    assert _is_number(cell) or not cell.startswith(render.FORMULA_START), (
                        path.name,
                        cell,
                    )
    with (hostile_run / "out" / "worklist.csv").open(newline="", encoding="utf-8") as f:
        ids = {row["patient_id"] for row in csv.DictReader(f)}
    assert "'" + FORMULA_ID in ids and "'+cmd|' /C calc'!A0" in ids


def test_workbook_cells_are_text_never_formulas(hostile_run: Path) -> None:
    book = load_workbook(hostile_run / "out" / "worklist.xlsx")
    values = []
    for sheet in book.worksheets:
        assert not sheet._hyperlinks
        for row in sheet.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (sheet.title, cell.coordinate)
                values.append(cell.value)
    assert FORMULA_ID in values and "=1+2" in values  # written as the text it is


def test_a_cell_over_the_excel_limit_is_cut_with_a_note() -> None:
    long = "x" * (render.XLSX_CELL_LIMIT + 10)
    cut = render.xlsx_cell(long)
    assert len(cut) == render.XLSX_CELL_LIMIT and cut.endswith(render.XLSX_CUT_NOTE)
    assert render.xlsx_cell("x" * render.XLSX_CELL_LIMIT) == "x" * render.XLSX_CELL_LIMIT
    assert render.xlsx_cell(5) == 5


def _poisoned(value, text: str, keep: frozenset[str] = frozenset()):
    """``value`` with ``text`` appended to every string inside it; keys, and the values of the
    keys in ``keep`` (the ones a page looks rows up by), left alone."""
    if isinstance(value, str):
        return value + text
    if isinstance(value, dict):
        return {k: v if k in keep else _poisoned(v, text, keep) for k, v in value.items()}
    if isinstance(value, list):
        return [_poisoned(v, text, keep) for v in value]
    return value


def test_every_template_escapes_every_field(hostile_run: Path) -> None:
    """Each page rendered again with markup appended to every string of its document."""
    doc = json.loads((hostile_run / "out" / "audit.json").read_text(encoding="utf-8"))
    html = audit.render_html(_poisoned(doc, IMG_TEST))
    assert_inert_page(html)
    assert html.count("&lt;img src=x onerror=alert(1)&gt;") > 20
    population = json.loads((hostile_run / "report" / "population.json").read_text("utf-8"))
    poisoned = _poisoned(population, IMG_TEST, frozenset({"dimension", "sex", "measure"}))
    for row in poisoned["prevalence"]:  # group labels are data for sites, keys otherwise
        if row["dimension"] != "site":
            row["group"] = row["group"].removesuffix(IMG_TEST)
    page = (
        render.template_env()
        .get_template("population.html.j2")
        .render(
            doc=poisoned,
            svg={},
            by=_by_dimension(poisoned),
            band_labels=load_rules().spec.report.band_labels(),
        )
    )
    assert_inert_page(page)
    assert page.count("&lt;img src=x onerror=alert(1)&gt;") > 5
    from pipeline.reports import monthly

    month = json.loads(next((hostile_run / "monthly").glob("*.json")).read_text("utf-8"))
    poisoned = _poisoned(copy.deepcopy(month), IMG_TEST)
    page = monthly._html(poisoned)
    assert_inert_page(page)
    assert page.count("&lt;img src=x onerror=alert(1)&gt;") > 5


def test_templates_autoescape_whatever_their_name() -> None:
    env = render.template_env()
    for name in env.list_templates():
        if name.endswith(".j2"):
            assert env.get_template(name).environment.autoescape is True
    assert env.from_string("{{ x }}").render(x="<b>") == "&lt;b&gt;"


@settings(deadline=None)
@given(st.text(max_size=12))
def test_the_three_csv_neutralisers_agree(text: str) -> None:
    """csv_cell (Python rows), neutral_frame (polars) and neutral_sql (DuckDB COPY)."""
    from_python = render.csv_cell(text)
    from_polars = render.neutral_frame(pl.DataFrame({"c": [text]}))["c"][0]
    with duckdb.connect() as con:
        query = f"SELECT {render.neutral_sql('t.c')} FROM (SELECT ?::VARCHAR AS c) AS t"
        from_sql = con.execute(query, [text]).fetchone()[0]
    assert from_python == from_polars == from_sql
    assert not from_python.startswith(render.FORMULA_START)
    assert from_python in (text, "'" + text)


def test_prefect_markdown_carries_no_markup_or_links() -> None:
    from flows import failures
    from flows.nightly import _failure_markdown

    failed = failures.FailedRun(
        run_id="r1",
        as_of=AS_OF,
        started_at=None,
        finished_at=datetime(2026, 11, 24, 2, 0),
        rules_version="1 <b>x</b>",
        error="cannot read labs_<script>x</script>[a](javascript:alert(1))|.csv",
    )
    text = _failure_markdown(failed, "recorded")
    assert "<script" not in text and "<b>" not in text and "](" not in text
    assert "&lt;script&gt;" in text and "\\|" in text
    # one table row per field: the cause cannot open a new cell or line
    assert sum(line.startswith("| cause |") for line in text.splitlines()) == 1
    assert render.markdown_text("a\nb\r\nc") == "a b c"
