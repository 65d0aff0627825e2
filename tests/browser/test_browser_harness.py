"""The browser harness itself (tests/chromium.py): each check passes a good page, fails a bad one."""

from __future__ import annotations

from pathlib import Path

import pytest
from chromium import WINDOW, ink
from PIL import Image

pytestmark = pytest.mark.browser

SVG_CHART = """
<svg id="chart" width="400" height="240" viewBox="0 0 400 240">
  <line x1="40" y1="20" x2="40" y2="210" stroke="#000" stroke-width="2"/>
  <line x1="40" y1="210" x2="380" y2="210" stroke="#000" stroke-width="2"/>
  <rect x="70" y="60" width="70" height="150" fill="#1f77b4"/>
  <rect x="170" y="110" width="70" height="100" fill="#ff7f0e"/>
  <rect x="270" y="30" width="70" height="180" fill="#2ca02c"/>
  <text x="105" y="230" text-anchor="middle" font-size="12">north</text>
</svg>
"""


def _page(tmp_path: Path, body: str, title: str = "harness") -> Path:
    page = tmp_path / "page.html"
    page.write_text(
        f'<!doctype html><html><head><meta charset="utf-8"><title>{title}</title></head>'
        f"<body>{body}</body></html>",
        encoding="utf-8",
    )
    return page


def test_drawn_inline_svg_chart_passes(browser, tmp_path: Path) -> None:
    page = _page(tmp_path, SVG_CHART, title="chart")
    report = browser.open(page)
    assert report.title == "chart"
    assert report.errors == []
    assert report.outside == []
    assert report.requests[0] == page.resolve().as_uri()
    drawn = ink(browser.screenshot("#chart"))
    assert drawn.fraction > 0.2
    assert drawn.colours >= 3
    assert drawn.bbox is not None


@pytest.mark.parametrize(
    "script, message",
    [('console.error("boom")', "boom"), ('throw new Error("kaboom")', "Uncaught Error: kaboom")],
)
def test_console_error_and_exception_are_errors(browser, tmp_path: Path, script, message) -> None:
    report = browser.open(_page(tmp_path, f"<p>text</p><script>{script}</script>"))
    assert [message in entry["message"] for entry in report.errors] == [True]


def test_request_leaving_the_machine_is_outside_and_does_not_hang(browser, tmp_path: Path) -> None:
    url = "http://192.0.2.1/x.png"  # TEST-NET-1; Chromium resolves nothing, so it fails at once
    report = browser.open(_page(tmp_path, f'<img src="{url}" alt="">'))
    assert report.outside == [url]
    assert url in report.requests
    assert not [entry for entry in report.errors if entry["source"] == "harness"]  # no timeout


def test_blank_element_has_no_ink(browser, tmp_path: Path) -> None:
    browser.open(_page(tmp_path, '<div id="c" style="width:300px;height:200px"></div>'))
    blank = ink(browser.screenshot("#c"))
    assert blank.fraction < 0.001
    assert blank.colours == 0


def test_axis_and_label_without_data_is_one_colour(browser, tmp_path: Path) -> None:
    empty_chart = """
    <svg id="chart" width="400" height="240">
      <line x1="40" y1="210" x2="380" y2="210" stroke="#000" stroke-width="2"/>
      <text x="60" y="100" font-size="16">no data</text>
    </svg>
    """
    browser.open(_page(tmp_path, empty_chart))
    assert ink(browser.screenshot("#chart")).colours == 1  # anti-aliased greys are one colour


def test_full_screenshot_is_the_whole_page(browser, tmp_path: Path) -> None:
    tall = '<div style="height:3000px"></div>' + SVG_CHART  # the chart is below the window
    browser.open(_page(tmp_path, tall))
    png = browser.full_screenshot(tmp_path / "page.png")
    image = Image.open(tmp_path / "page.png")
    assert image.width <= WINDOW[0] and image.height > 3000  # less the scrollbar
    assert ink(png).bbox[1] > 3000
