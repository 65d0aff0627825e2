"""Charts for the HTML reports, drawn with matplotlib and returned as inline SVG.

Three charts are drawn:

* ``funnel_svg``: how many patients are left at each stage of the screening (population,
  tested, each criterion, worklist), one horizontal bar per stage, coloured by stage group.
* ``trends_svg``: one line per series over run dates (counts or rates), with gaps where a
  value is missing.
* ``prevalence_svg``: rate by age band and sex as grouped bars with confidence intervals;
  cells hidden for small numbers draw no bar and are marked "s".

Each function returns one ``<svg>`` element to paste into the page as it is. Inline SVG is
used because the reports are single files opened offline: the chart needs no script, no
network and no file beside the page, it prints sharply at any size, and its text stays text
(``svg.fonttype: none``), so it can be searched, copied and read by screen readers.

Every chart is deterministic: the same input gives byte-identical output (fixed
``svg.hashsalt``, no date or creator metadata). Several charts share one page, so every id
in a chart, and every reference to one, starts with the ``chart_id`` given by the caller;
the chart's own CSS is scoped to it as well.

matplotlib is imported only when a chart is drawn (it takes about a second to import), or in
the background by :func:`preload`, which a run calls while the database screens, so that the
second is not added to the run; ``pyplot`` is never used: figures are plain ``matplotlib.figure.Figure`` objects rendered by
the SVG backend, so no GUI backend is loaded and no figure is kept in global state.
"""

from __future__ import annotations

import importlib
import io
import math
import re
import threading
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from html import escape
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# Okabe & Ito (2008), "Color Universal Design": distinguishable with the common colour
# vision deficiencies. Yellow is last: it is faint on white, so it is used only when needed.
PALETTE = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#D55E00",  # vermillion
    "#56B4E9",  # sky blue
    "#CC79A7",  # reddish purple
    "#000000",  # black
    "#F0E442",  # yellow
)
# With more series than colours, the marker and line style keep lines apart.
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES = ("-", "--", ":", "-.")

FIGURE_WIDTH_IN = 8.5
SUPPRESSED_MARK = "s"
SUPPRESSED_NOTE = "s: suppressed (small number)"

_RC = {
    "svg.hashsalt": "b12screen-charts",  # ids derived from content, not random
    "svg.fonttype": "none",  # text stays <text>; the browser renders it
    "font.family": "sans-serif",
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "figure.titlesize": 12,
    "figure.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.edgecolor": "#555555",
    "xtick.color": "#333333",
    "ytick.color": "#333333",
}
_SAVE_METADATA = {"Date": None, "Creator": None, "Format": None, "Type": None}
_CHART_ID = re.compile(r"[A-Za-z][A-Za-z0-9_-]*\Z")
_TAG = re.compile(r"<[^<>]+>")
_ID_ATTR = re.compile(r'(\sid=")([^"]+)(")')
_HREF_ATTR = re.compile(r'(\s(?:xlink:)?href="#)([^"]+)(")')
_URL_REF = re.compile(r"(url\(#)([^)]+)(\))")
_SVG_ROOT = re.compile(r"<svg\b[^>]*>")
_VIEWBOX = re.compile(r'viewBox="0 0 ([0-9.]+) ([0-9.]+)"')


# What drawing a chart imports (each function below imports what it uses when it runs).
_MODULES = (
    "matplotlib",
    "matplotlib.figure",
    "matplotlib.patches",
    "matplotlib.dates",
    "matplotlib.ticker",
    "matplotlib.backends.backend_svg",
)


def preload() -> threading.Thread:
    """Import matplotlib in a background thread (about a second of Python) while the caller
    waits on other work, such as a DuckDB query, which leaves the interpreter free; the first
    chart then finds it imported. A failed import is left for that chart to raise."""

    def load() -> None:
        for name in _MODULES:
            try:
                importlib.import_module(name)
            except ImportError:
                return

    thread = threading.Thread(target=load, name="b12screen-charts-import", daemon=True)
    thread.start()
    return thread


def no_data_svg(message: str, *, chart_id: str) -> str:
    """A small SVG holding only ``message``, for a chart without data (no matplotlib)."""
    _check_chart_id(chart_id)
    width, height = FIGURE_WIDTH_IN * 72, 0.6 * 72
    text = escape(message)
    return (
        f"{_root_tag(chart_id, width, height, message)}<title>{text}</title>"
        f'<rect x="0.5" y="0.5" width="{width - 1:g}" height="{height - 1:g}" '
        'fill="#ffffff" stroke="#cccccc"/>'
        f'<text x="{width / 2:g}" y="{height / 2:g}" text-anchor="middle" '
        f'dominant-baseline="middle" font-family="sans-serif" font-size="10" '
        f'fill="#555555">{text}</text></svg>'
    )


def funnel_svg(stages: Sequence[tuple[str, str, int]], *, chart_id: str, title: str) -> str:
    """Patients left at each stage: one horizontal bar per stage, top to bottom as given.

    ``stages`` are ``(group, label, patients)``; bars are coloured by group (legend in order
    of first appearance) and labelled with their count. Bar ``i`` has the id
    ``<chart_id>-bar-<i>``.
    """
    _check_chart_id(chart_id)
    if not stages:
        return no_data_svg(f"{title}: no data", chart_id=chart_id)
    counts = [int(n) for _, _, n in stages]
    if any(n < 0 for n in counts):
        raise ValueError("funnel counts must not be negative")
    colours = _colour_map(group for group, _, _ in stages)

    with _rc():
        from matplotlib.patches import Patch

        height = max(2.5, 1.3 + 0.25 * len(stages))
        fig = _figure(height)
        ax = fig.add_subplot()
        positions = range(len(stages))
        bars = ax.barh(
            positions,
            counts,
            height=0.7,
            color=[colours[group] for group, _, _ in stages],
        )
        for i, bar in enumerate(bars):
            bar.set_gid(f"bar-{i}")
        ax.bar_label(bars, labels=[f"{n:,}" for n in counts], padding=3, fontsize=9)
        ax.set_yticks(list(positions), [label for _, label, _ in stages])
        ax.set_ylim(len(stages) - 0.5, -0.5)  # first stage on top
        ax.set_xlim(0, max(counts) * 1.15 or 1)
        ax.xaxis.set_visible(False)  # each bar carries its count
        ax.spines["bottom"].set_visible(False)
        ax.tick_params(axis="y", length=0)
        _title(fig, title)
        fig.legend(
            handles=[Patch(facecolor=c, label=g) for g, c in colours.items()],
            loc="outside lower center",
            ncols=min(len(colours), 5),
            frameon=False,
        )
        return _to_svg(fig, chart_id=chart_id, title=title)


def trends_svg(
    series: Mapping[str, Sequence[tuple[date, float | None]]],
    *,
    chart_id: str,
    title: str,
    ylabel: str,
    percent: bool = False,
) -> str:
    """One line with markers per series over dates; a ``None`` value leaves a gap.

    With ``percent`` the values are fractions (0..1) shown as percent, from 0. The legend
    goes below the axes when there is more than one series.
    """
    _check_chart_id(chart_id)
    has_value = any(v is not None for points in series.values() for _, v in points)
    if not has_value:
        return no_data_svg(f"{title}: no data", chart_id=chart_id)

    with _rc():
        from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

        dates = sorted({d for points in series.values() for d, _ in points})
        n_points = len(dates)
        # long names (measure titles) get one legend column; short ones share a row
        longest = max(len(name) for name in series)
        ncols = 1 if longest > 40 else 2 if longest > 20 else min(len(series), 5)
        legend_rows = math.ceil(len(series) / ncols) if len(series) > 1 else 0
        fig = _figure(3.2 + 0.22 * legend_rows)
        ax = fig.add_subplot()
        for i, (name, points) in enumerate(series.items()):
            ordered = sorted(points, key=lambda p: p[0])
            ax.plot(
                [d for d, _ in ordered],
                [math.nan if v is None else float(v) for _, v in ordered],
                label=name,
                color=PALETTE[i % len(PALETTE)],
                marker=MARKERS[i % len(MARKERS)],
                linestyle=LINESTYLES[(i // len(PALETTE)) % len(LINESTYLES)],
                markersize=8 if n_points <= 2 else 5 if n_points <= 30 else 3.5,
                linewidth=1.6,
                gid=f"series-{i}",
            )
        if len(dates) == 1:  # a single run: a week either side, not years
            ax.set_xlim(dates[0] - timedelta(days=7), dates[0] + timedelta(days=7))
        locator = AutoDateLocator(minticks=3, maxticks=10)
        ax.xaxis.set_major_locator(locator)
        # no offset label: with one point it named the month of the last tick, not the point's
        ax.xaxis.set_major_formatter(ConciseDateFormatter(locator, show_offset=False))
        if len(dates) == 1:
            ax.set_xlabel(dates[0].isoformat())
        _number_axis(ax.yaxis, percent=percent)
        if percent:  # from 0, with room below so a series flat at 0% stays visible
            top = ax.get_ylim()[1]
            ax.set_ylim(bottom=-0.03 * max(top, 0.01), top=top)
        ax.grid(axis="y", color="#dddddd", linewidth=0.8)
        ax.set_axisbelow(True)
        ax.set_ylabel(ylabel)
        _title(fig, title)
        if len(series) > 1:
            fig.legend(loc="outside lower center", ncols=ncols, frameon=False)
        return _to_svg(fig, chart_id=chart_id, title=title)


def prevalence_svg(rows: Sequence[Mapping[str, Any]], *, chart_id: str, title: str) -> str:
    """Rate by age band (x) and sex (one bar each), as percent, with low-high error bars.

    A row is drawn when ``status == "shown"`` and ``rate`` is not None; any other row is a
    hidden cell: no bar, an "s" at the baseline (id ``<chart_id>-suppressed-<band>-<sex>``)
    and a footnote under the axes. Bars have the id ``<chart_id>-bar-<band>-<sex>``, the
    indexes counting age bands and sexes in order of first appearance.
    """
    _check_chart_id(chart_id)
    if not rows:
        return no_data_svg(f"{title}: no data", chart_id=chart_id)
    bands = list(dict.fromkeys(str(r["age_band"]) for r in rows))
    sexes = list(dict.fromkeys(str(r["sex"]) for r in rows))
    colours = _colour_map(sexes)
    width = 0.8 / len(sexes)

    with _rc():
        from matplotlib.patches import Patch

        fig = _figure(3.8)
        ax = fig.add_subplot()
        any_hidden = False
        any_shown = False
        for row in rows:
            b, s = bands.index(str(row["age_band"])), sexes.index(str(row["sex"]))
            x = b - 0.4 + width * (s + 0.5)
            rate = row.get("rate")
            if row.get("status") != "shown" or rate is None:
                any_hidden = True
                ax.text(
                    x,
                    0,
                    SUPPRESSED_MARK,
                    ha="center",
                    va="bottom",
                    fontsize=9,
                    fontstyle="italic",
                    color="#333333",
                    gid=f"suppressed-{b}-{s}",
                )
                continue
            any_shown = True
            ax.bar(x, rate, width=width * 0.9, color=colours[row["sex"]], gid=f"bar-{b}-{s}")
            low, high = row.get("low"), row.get("high")
            if low is not None and high is not None:
                interval = ax.errorbar(
                    x,
                    rate,
                    yerr=[[max(rate - low, 0.0)], [max(high - rate, 0.0)]],
                    fmt="none",
                    ecolor="#333333",
                    elinewidth=1,
                    capsize=3,
                )
                # A gid given to errorbar() would repeat on the line and both caps.
                _, _, (line,) = interval.lines
                line.set_gid(f"interval-{b}-{s}")
        ax.set_xticks(range(len(bands)), bands)
        ax.set_xlim(-0.6, len(bands) - 0.4)
        ax.tick_params(axis="x", length=0)
        _number_axis(ax.yaxis, percent=True)
        ax.set_ylim(bottom=0)
        if not any_shown:
            ax.set_ylim(0, 0.1)
        ax.grid(axis="y", color="#dddddd", linewidth=0.8)
        ax.set_axisbelow(True)
        ax.set_xlabel("Age band")
        ax.set_ylabel("Prevalence")
        _title(fig, title)
        fig.legend(
            handles=[Patch(facecolor=c, label=s) for s, c in colours.items()],
            loc="outside right upper",  # the footnote goes under the axes
            frameon=False,
        )
        if any_hidden:
            note = fig.supxlabel(SUPPRESSED_NOTE, x=0.01, ha="left", color="#333333")
            note.set_gid("footnote")
        return _to_svg(fig, chart_id=chart_id, title=title)


def _check_chart_id(chart_id: str) -> None:
    if not _CHART_ID.match(chart_id):
        raise ValueError(
            f"chart_id must be a letter then letters, digits, '-' or '_': {chart_id!r}"
        )


def _colour_map(groups: Any) -> dict[str, str]:
    """One palette colour per distinct group, in order of first appearance."""
    return {g: PALETTE[i % len(PALETTE)] for i, g in enumerate(dict.fromkeys(groups))}


def _rc() -> Any:
    import matplotlib as mpl

    return mpl.rc_context(_RC)


def _number_axis(axis: Any, *, percent: bool) -> None:
    """Tick labels with thousands separators and no trailing zeros; fractions as percent."""
    from matplotlib.ticker import FuncFormatter

    def label(x: float, _pos: Any) -> str:
        if percent:
            return f"{_plain(x * 100)}%"
        return _plain(x)

    axis.set_major_formatter(FuncFormatter(label))


def _plain(x: float) -> str:
    """``x`` with a thousands separator and at most 6 decimals, trailing zeros dropped."""
    text = f"{x:,.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _title(fig: Figure, title: str) -> None:
    """The chart's title, top left of the figure."""
    fig.suptitle(title, x=0.01, ha="left", fontsize=11)


def _figure(height_in: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(FIGURE_WIDTH_IN, height_in), layout="constrained", facecolor="white")


def _to_svg(fig: Figure, *, chart_id: str, title: str) -> str:
    """Render ``fig`` as one inline ``<svg>`` element, ids prefixed with ``chart_id``."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata=_SAVE_METADATA)
    text = buffer.getvalue()
    root = _SVG_ROOT.search(text)
    box = _VIEWBOX.search(root.group(0)) if root else None
    if root is None or box is None:
        raise RuntimeError("matplotlib wrote an SVG without a viewBox on its root")
    body = prefix_ids(text[root.end() :], chart_id)
    # matplotlib's default style is "*{...}"; inline, a <style> applies to the whole page.
    body = body.replace('<style type="text/css">*{', f'<style type="text/css">#{chart_id} *{{', 1)
    width, height = float(box.group(1)), float(box.group(2))
    head = _root_tag(chart_id, width, height, title) + f"<title>{escape(title)}</title>"
    return head + body.rstrip() + "\n"


def _root_tag(chart_id: str, width: float, height: float, label: str) -> str:
    """The root ``<svg>`` tag: scales to the page width, never wider than drawn."""
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        f'id="{chart_id}" viewBox="0 0 {width:g} {height:g}" width="100%" '
        f'style="height: auto; max-width: {width:g}pt" '
        f'role="img" aria-label="{escape(label)}">'
    )


def prefix_ids(svg: str, chart_id: str) -> str:
    """Prefix every id in ``svg``, and every reference to one, with ``<chart_id>-``.

    Only tags are rewritten (text content cannot be mistaken for an attribute), and only
    references to ids defined in ``svg`` are changed.
    """
    _check_chart_id(chart_id)
    tags = _TAG.findall(svg)
    defined = {m.group(2) for tag in tags for m in _ID_ATTR.finditer(tag)}

    def rename(m: re.Match[str]) -> str:
        name = m.group(2)
        if name not in defined:
            return m.group(0)
        return f"{m.group(1)}{chart_id}-{name}{m.group(3)}"

    def rewrite(tag: re.Match[str]) -> str:
        t = _ID_ATTR.sub(rename, tag.group(0))
        t = _HREF_ATTR.sub(rename, t)
        return _URL_REF.sub(rename, t)

    return _TAG.sub(rewrite, svg)
