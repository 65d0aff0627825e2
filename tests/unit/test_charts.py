"""Report charts (pipeline/reports/charts.py): well-formed inline SVG, deterministic, ids scoped."""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import date, timedelta
from pathlib import Path

import pytest

from pipeline.reports import charts

REPO = Path(__file__).resolve().parents[2]
SVG = "{http://www.w3.org/2000/svg}"
XLINK_HREF = "{http://www.w3.org/1999/xlink}href"

STAGES = [
    ("population", "All patients", 184_233),
    ("tested", "B12 tested", 41_872),
    ("criterion", "B12 below threshold", 2_314),
    ("criterion", "PPI long-term", 0),
    ("worklist", "Worklist", 5_402),
]
D0 = date(2026, 11, 1)
SERIES = {
    "B12 deficient": [(D0 + timedelta(days=i), 0.02 + 0.001 * i) for i in range(6)],
    "Anaemia": [(D0 + timedelta(days=i), None if i in (2, 3) else 0.05) for i in range(6)],
}
ROWS = [
    {"age_band": "18-39", "sex": "F", "rate": 0.03, "low": 0.02, "high": 0.04, "status": "shown"},
    {"age_band": "18-39", "sex": "M", "rate": None, "low": None, "high": None, "status": "small"},
    {"age_band": "40-59", "sex": "F", "rate": 0.06, "low": 0.05, "high": 0.07, "status": "shown"},
    {"age_band": "40-59", "sex": "M", "rate": 0.05, "low": None, "high": None, "status": "shown"},
]


def _funnel(chart_id: str = "funnel") -> str:
    return charts.funnel_svg(STAGES, chart_id=chart_id, title="Screening funnel")


def _trends(chart_id: str = "trends", **kwargs: object) -> str:
    return charts.trends_svg(
        SERIES, chart_id=chart_id, title="Flag rate", ylabel="Patients", percent=True, **kwargs
    )


def _prevalence(chart_id: str = "prev") -> str:
    return charts.prevalence_svg(ROWS, chart_id=chart_id, title="Prevalence")


ALL = {"funnel": _funnel, "trends": _trends, "prevalence": _prevalence}


def _parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)  # raises if the string is not well-formed XML
    assert root.tag == f"{SVG}svg"
    return root


def _ids(root: ET.Element) -> list[str]:
    return [e.get("id") for e in root.iter() if e.get("id") is not None]


def _texts(root: ET.Element) -> list[str]:
    return ["".join(e.itertext()).strip() for e in root.iter(f"{SVG}text")]


def _references(root: ET.Element) -> list[str]:
    """Every id a chart refers to: url(#...) in any attribute, and (xlink:)href="#..."."""
    refs = []
    for e in root.iter():
        for name, value in e.attrib.items():
            refs += re.findall(r"url\(#([^)]+)\)", value)
            if name in (XLINK_HREF, "href") and value.startswith("#"):
                refs.append(value[1:])
    return refs


@pytest.mark.parametrize("make", ALL.values(), ids=ALL.keys())
def test_chart_is_one_accessible_svg_element(make) -> None:
    svg = make()
    assert svg.startswith("<svg ")
    assert svg.rstrip().endswith("</svg>")
    assert "<?xml" not in svg and "<!DOCTYPE" not in svg and "<!--" not in svg
    assert "<metadata" not in svg and "dc:date" not in svg and "Matplotlib v" not in svg
    root = _parse(svg)
    assert root.get("role") == "img"
    assert root.get("aria-label")
    assert root[0].tag == f"{SVG}title" and root[0].text == root.get("aria-label")
    assert root.get("width") == "100%" and root.get("height") is None
    assert re.fullmatch(r"0 0 [0-9.]+ [0-9.]+", root.get("viewBox"))


@pytest.mark.parametrize("make", ALL.values(), ids=ALL.keys())
def test_chart_is_deterministic(make) -> None:
    assert make() == make()


def test_chart_is_deterministic_across_processes() -> None:
    code = (
        "import sys; from tests.unit.test_charts import ALL; "
        "sys.stdout.write(''.join(make() for make in ALL.values()))"
    )
    other = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    assert other == "".join(make() for make in ALL.values())


@pytest.mark.parametrize("make", ALL.values(), ids=ALL.keys())
def test_ids_and_references_are_prefixed_and_resolve(make) -> None:
    root = _parse(make("c1"))
    ids = _ids(root)
    assert ids, "expected matplotlib's ids"
    assert len(ids) == len(set(ids))
    assert all(i == "c1" or i.startswith("c1-") for i in ids), ids
    refs = _references(root)
    assert refs, "expected clip-path or marker references"
    assert set(refs) <= set(ids)


def test_ids_do_not_collide_between_charts_on_one_page() -> None:
    # Same chart, same content: matplotlib alone would give both the same hashed ids.
    first, second = _parse(_funnel("a")), _parse(_funnel("b"))
    assert not set(_ids(first)) & set(_ids(second))
    # The default "*{...}" style would apply to the whole page: it is scoped to the chart.
    assert "#a *{" in _funnel("a")


def test_prefix_ids_rewrites_tags_only() -> None:
    svg = (
        '<g id="x"><use xlink:href="#x"/><path clip-path="url(#x)" href="#other"/>'
        '<text>id="x" url(#x)</text></g>'
    )
    assert charts.prefix_ids(svg, "c") == (
        '<g id="c-x"><use xlink:href="#c-x"/><path clip-path="url(#c-x)" href="#other"/>'
        '<text>id="x" url(#x)</text></g>'
    )


@pytest.mark.parametrize("bad", ["", "1chart", "a b", 'a"b', "a#b"])
def test_chart_id_must_be_a_plain_name(bad: str) -> None:
    with pytest.raises(ValueError, match="chart_id"):
        charts.funnel_svg(STAGES, chart_id=bad, title="t")


def test_funnel_draws_one_bar_per_stage_with_labels_and_counts() -> None:
    root = _parse(_funnel("f"))
    bars = [i for i in _ids(root) if re.fullmatch(r"f-bar-\d+", i)]
    assert bars == [f"f-bar-{i}" for i in range(len(STAGES))]
    texts = _texts(root)
    for group, label, count in STAGES:
        assert label in texts
        assert f"{count:,}" in texts
        assert group in texts  # legend
    assert "184,233" in texts and "0" in texts
    assert "Screening funnel" in texts


def test_funnel_grows_with_the_number_of_stages() -> None:
    def height(n: int) -> float:
        stages = [("criterion", f"stage {i}", i) for i in range(n)]
        root = _parse(charts.funnel_svg(stages, chart_id="f", title="t"))
        return float(root.get("viewBox").split()[3])

    assert height(2) == height(4)  # the minimum height
    assert height(40) > height(20) > height(4)


def test_funnel_of_only_zero_counts_draws() -> None:
    root = _parse(charts.funnel_svg([("tested", "none", 0)], chart_id="z", title="t"))
    assert "z-bar-0" in _ids(root)


def test_funnel_rejects_negative_counts() -> None:
    with pytest.raises(ValueError, match="negative"):
        charts.funnel_svg([("tested", "x", -1)], chart_id="f", title="t")


def _series_path(root: ET.Element, chart_id: str, i: int) -> str:
    (group,) = [e for e in root.iter() if e.get("id") == f"{chart_id}-series-{i}"]
    line = next(group.iter(f"{SVG}path"))  # the line; marker shapes follow in <defs>
    return line.get("d")


def test_trends_leave_a_gap_for_missing_values() -> None:
    root = _parse(_trends("t"))
    # matplotlib starts a new subpath ("M") after a missing value.
    assert _series_path(root, "t", 0).count("M") == 1
    assert _series_path(root, "t", 1).count("M") == 2
    texts = _texts(root)
    assert "B12 deficient" in texts and "Anaemia" in texts  # legend
    assert "Patients" in texts
    assert any(t.endswith("%") for t in texts)


def test_trends_without_percent_use_thousands_separators() -> None:
    series = {"Worklist": [(D0, 5_000.0), (D0 + timedelta(days=1), 12_500.0)]}
    svg = charts.trends_svg(series, chart_id="w", title="Worklist", ylabel="Patients")
    texts = _texts(_parse(svg))
    assert any(re.fullmatch(r"1\d,\d{3}", t) for t in texts), texts
    assert not any(t.endswith("%") for t in texts)


def test_trends_with_a_single_date_draw_a_marker() -> None:
    svg = charts.trends_svg(
        {"Worklist": [(D0, 5_402)]}, chart_id="one", title="One run", ylabel="Patients"
    )
    root = _parse(svg)
    (group,) = [e for e in root.iter() if e.get("id") == "one-series-0"]
    assert list(group.iter(f"{SVG}use")), "a marker is drawn for the one point"
    assert "no data" not in svg


def test_trends_with_many_series_draw_them_all() -> None:
    series = {f"series {k}": [(D0, 0.01 * k), (D0 + timedelta(days=7), 0.02)] for k in range(10)}
    root = _parse(charts.trends_svg(series, chart_id="m", title="t", ylabel="y", percent=True))
    ids = set(_ids(root))
    assert {f"m-series-{k}" for k in range(10)} <= ids
    assert {f"series {k}" for k in range(10)} <= set(_texts(root))


def test_prevalence_hides_suppressed_cells() -> None:
    root = _parse(_prevalence("p"))
    ids = set(_ids(root))
    assert {"p-bar-0-0", "p-bar-1-0", "p-bar-1-1"} <= ids
    assert "p-bar-0-1" not in ids  # hidden: no bar
    (marker,) = [e for e in root.iter() if e.get("id") == "p-suppressed-0-1"]
    assert "".join(marker.itertext()).strip() == "s"
    texts = _texts(root)
    assert charts.SUPPRESSED_NOTE in texts
    assert {"18-39", "40-59", "F", "M"} <= set(texts)
    assert "p-interval-0-0" in ids and "p-interval-1-1" not in ids  # no low/high, no bar


def test_prevalence_hides_a_cell_without_rate_even_if_shown() -> None:
    rows = [{"age_band": "75+", "sex": "F", "rate": None, "low": None, "high": None}]
    rows[0]["status"] = "shown"
    root = _parse(charts.prevalence_svg(rows, chart_id="p", title="t"))
    assert "p-bar-0-0" not in _ids(root)
    assert "p-suppressed-0-0" in _ids(root)


def test_prevalence_without_hidden_cells_has_no_footnote() -> None:
    rows = [r for r in ROWS if r["status"] == "shown"]
    svg = charts.prevalence_svg(rows, chart_id="p", title="t")
    assert charts.SUPPRESSED_NOTE not in svg
    assert not [i for i in _ids(_parse(svg)) if "suppressed" in i]


@pytest.mark.parametrize(
    "svg",
    [
        charts.funnel_svg([], chart_id="e", title="Funnel"),
        charts.trends_svg({}, chart_id="e", title="Funnel", ylabel="y"),
        charts.trends_svg({"a": [(D0, None)]}, chart_id="e", title="Funnel", ylabel="y"),
        charts.prevalence_svg([], chart_id="e", title="Funnel"),
    ],
    ids=["funnel", "trends", "trends-all-none", "prevalence"],
)
def test_empty_input_gives_the_no_data_svg(svg: str) -> None:
    assert svg == charts.no_data_svg("Funnel: no data", chart_id="e")
    root = _parse(svg)
    assert root.get("role") == "img" and root.get("id") == "e"
    assert _texts(root) == ["Funnel: no data"]


def test_no_data_svg_escapes_its_message() -> None:
    root = _parse(charts.no_data_svg('<b> & "x"', chart_id="n"))
    assert _texts(root) == ['<b> & "x"']
    assert root.get("aria-label") == '<b> & "x"'


def test_labels_are_escaped_text() -> None:
    label = '<script>alert("x")</script> & id="y"'
    svg = charts.funnel_svg([("tested", label, 1)], chart_id="x", title=label)
    assert "<script>" not in svg
    root = _parse(svg)
    assert label in _texts(root)
    assert root.get("aria-label") == label
    assert "y" not in _ids(root)


def test_importing_the_module_does_not_import_pyplot() -> None:
    code = (
        "import sys; import pipeline.reports.charts as c; "
        "assert 'matplotlib' not in sys.modules, 'matplotlib imported eagerly'; "
        "c.funnel_svg([('a', 'b', 1)], chart_id='x', title='t'); "
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


@pytest.mark.parametrize("make", ALL.values(), ids=ALL.keys())
def test_text_is_text_and_at_least_9pt(make) -> None:
    svg = make()
    sizes = [float(s) for s in re.findall(r"font-size: ?([0-9.]+)(?:px)?", svg)]
    assert sizes, "svg.fonttype none keeps text as <text> with a font size"
    assert min(sizes) >= 9  # user units are points at the drawn width
    assert '<use xlink:href="#DejaVu' not in svg  # no glyph outlines
