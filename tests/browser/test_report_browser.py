"""The HTML reports in headless Chromium: they load cleanly, stay on the machine, draw their charts.

One module fixture builds a demo population (600 patients, as of 2026-11-24), backfills five
earlier as-of dates (every 6 days from 2026-10-25) so the trends have six points, and writes
the period report over the month (2026-10-25 to 2026-11-24). The pages checked:

- the demo run's ``run/audit.html`` (written when the registry held only that run: its trend
  charts have one point each);
- the period's ``audit.html`` and ``population.html``.

Charts are judged from element screenshots with ``browser.ink``: a drawn chart covers a share
of its figure well above a blank figure's, over an area larger than a line of text, in several
colours (bars and lines are coloured; text, axes and grid are one grey). A paragraph of text
and an empty figure must fail the same test. Run with ``pytest -s`` to read the measured
figures. Full-page screenshots go to ``$B12SCREEN_SCREENSHOTS`` when it is set.

The check that population.html/.json/.csv hold no patient identifier reads files only and is
not marked ``browser``.
"""

from __future__ import annotations

import csv
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import cli

AS_OF = "2026-11-24"
PERIOD_FROM = "2026-10-25"
BACKFILL_TO = "2026-11-18"
BACKFILL_EVERY = 6  # 2026-10-25, -31, 11-06, -12, -18: five dates at ~2 s each
PATIENTS = 600
POPULATION_FILES = ("population.html", "population.json", "population.csv")

# A drawn chart, from the figures measured on the demo (see the report of `pytest -s`):
# ink share 0.028-0.15 of the figure (blank figure: 0.0), ink box at least ~590 x 260 px,
# 3-6 colours on the audit charts, 2-3 on the prevalence charts (one sex's bars can be all
# that is shown). A line of text has an ink share of ~0.12 but one colour and a box ~30 px high.
MIN_FRACTION = 0.01
MIN_BOX = (250, 150)  # width, height in CSS pixels
MIN_COLOURS_AUDIT = 3
MIN_COLOURS_POPULATION = 2
AUDIT_CHARTS = ("chart-funnel", "chart-measures", "chart-worklist")


@dataclass(frozen=True)
class Reports:
    root: Path
    extracts: Path
    run: Path  # the demo run's output folder
    run_id: str
    period: Path  # the period report's folder
    seconds: float


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Reports:
    """Demo (600 patients) + backfill of five earlier dates + the month's report, in-process."""
    root = tmp_path_factory.mktemp("report_browser")
    demo, period = root / "demo", root / "period"
    db = demo / "b12screen.duckdb"
    runner = CliRunner()

    steps = []

    def invoke(*args: object) -> None:
        began = time.perf_counter()
        result = runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        steps.append(f"{args[0]} {time.perf_counter() - began:.1f} s")

    began, cpu = time.perf_counter(), time.process_time()
    invoke("demo", "--out", demo, "--patients", PATIENTS, "--as-of", AS_OF)
    assert db.is_file()
    invoke(
        "backfill", "--db", db, "--from", PERIOD_FROM, "--to", BACKFILL_TO, "--every", BACKFILL_EVERY,
        "--out", root / "backfill",
    )  # fmt: skip
    invoke("report", "--db", db, "--from", PERIOD_FROM, "--to", AS_OF, "--out", period)
    seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
    print(f"\nreport fixture: {seconds:.1f} s ({cpu:.1f} s CPU): {', '.join(steps)}")
    run_id = json.loads((demo / "run" / "run.json").read_text(encoding="utf-8"))["run_id"]
    return Reports(root, demo / "extracts", demo / "run", run_id, period, seconds)


# page key -> (html file, words its title must hold), from the fixture
def _page(reports: Reports, key: str) -> tuple[Path, tuple[str, ...]]:
    period_words = (f"{PERIOD_FROM} to {AS_OF}",)
    return {
        "run-audit": (reports.run / "audit.html", (reports.run_id, AS_OF)),
        "period-audit": (reports.period / "audit.html", period_words),
        "population": (reports.period / "population.html", ("population", *period_words)),
    }[key]


PAGES = ("run-audit", "period-audit", "population")


def _screenshot_folder(reports: Reports) -> Path:
    folder = Path(os.environ.get("B12SCREEN_SCREENSHOTS") or reports.root / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _looks_like_chart(drawn, min_colours: int) -> bool:
    if drawn.bbox is None:
        return False
    left, top, right, bottom = drawn.bbox
    return (
        drawn.fraction > MIN_FRACTION
        and right - left >= MIN_BOX[0]
        and bottom - top >= MIN_BOX[1]
        and drawn.colours >= min_colours
    )


def _measure(browser, label: str, selector: str):
    from chromium import ink

    drawn = ink(browser.screenshot(selector))
    print(
        f"ink {label:13} {selector:28} fraction={drawn.fraction:.4f} "
        f"colours={drawn.colours} bbox={drawn.bbox}"
    )
    return drawn


def _blank_figure(browser, like: str) -> str:
    """Append an empty figure.chart as tall as ``like`` (in this browser only); its selector."""
    browser.driver.execute_script(
        """
        const like = document.querySelector(arguments[0]);
        const blank = document.createElement("figure");
        blank.className = "chart";
        blank.id = "blank-figure";
        blank.style.height = like.getBoundingClientRect().height + "px";
        document.body.append(blank);
        """,
        like,
    )
    return "#blank-figure"


@pytest.mark.browser
@pytest.mark.parametrize("key", PAGES)
def test_page_loads_cleanly_and_locally(browser, reports: Reports, key: str) -> None:
    path, title_words = _page(reports, key)
    report = browser.open(path)
    assert report.errors == []
    assert report.outside == []
    assert report.requests[0] == path.resolve().as_uri()
    for word in title_words:
        assert word in report.title
    shot = _screenshot_folder(reports) / f"{key}.png"
    browser.full_screenshot(shot)
    print(f"\n{key}: title {report.title!r}; full page: {shot}")


@pytest.mark.browser
@pytest.mark.parametrize("key", ["run-audit", "period-audit"])
def test_audit_charts_are_drawn(browser, reports: Reports, key: str) -> None:
    path, _ = _page(reports, key)
    browser.open(path)
    print()
    for chart in AUDIT_CHARTS:
        drawn = _measure(browser, key, f"figure.chart#{chart}")
        assert _looks_like_chart(drawn, MIN_COLOURS_AUDIT), (chart, drawn)
    _negative_controls(browser, key, MIN_COLOURS_AUDIT, like="#chart-measures")


@pytest.mark.browser
def test_population_prevalence_charts_are_drawn(browser, reports: Reports) -> None:
    from selenium.webdriver.common.by import By

    path, _ = _page(reports, "population")
    browser.open(path)
    charts = [
        element.get_attribute("id")
        for element in browser.driver.find_elements(By.CSS_SELECTOR, ".grid > figure.chart")
    ]
    print(f"\nprevalence charts: {charts}")
    assert len(charts) >= 2
    assert "chart-on_worklist" in charts
    for chart in charts:
        drawn = _measure(browser, "population", f"figure.chart#{chart}")
        assert _looks_like_chart(drawn, MIN_COLOURS_POPULATION), (chart, drawn)
    _negative_controls(browser, "population", MIN_COLOURS_POPULATION, like=f"#{charts[0]}")


def _negative_controls(browser, key: str, min_colours: int, *, like: str) -> None:
    """A paragraph of text and an empty figure fail the chart test: it can fail."""
    text = _measure(browser, key, "p.lede")
    assert text.colours < min_colours  # fails on colours even where its ink share is high
    assert not _looks_like_chart(text, min_colours)
    blank = _measure(browser, key, _blank_figure(browser, like))
    assert blank.fraction < MIN_FRACTION / 10
    assert not _looks_like_chart(blank, min_colours)


def test_population_files_hold_no_patient_identifier(reports: Reports) -> None:
    with (reports.extracts / "patients.csv").open(encoding="utf-8", newline="") as f:
        ids = {row["patient_id"] for row in csv.DictReader(f)} - {""}
    assert len(ids) >= PATIENTS
    # the check can fail: the worklist, which is for clinicians, names patients
    worklist = (reports.run / "worklist.csv").read_text(encoding="utf-8")
    assert any(pid in worklist for pid in ids)
    for name in POPULATION_FILES:
        text = (reports.period / name).read_text(encoding="utf-8")
        found = sorted(pid for pid in ids if pid in text)
        assert found == [], f"{name} names patients: {found[:5]}"
