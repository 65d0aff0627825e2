"""What a person opens is inert: the one place pages, CSV files and workbooks are neutralised.

Anything an extract carries (a patient id, a site, a test name, a file name) can reach a page,
a spreadsheet or a CSV file. Three rules, each applied here and nowhere else:

* **Pages**: every template is rendered with autoescaping on, whatever its file name, and every
  page carries :data:`CONTENT_SECURITY_POLICY` (no scripts, no requests: the pages need none).
* **CSV files**: a text cell that a spreadsheet would read as a formula (it starts with ``=``,
  ``+``, ``-``, ``@``, a tab or a carriage return) is written with a leading apostrophe, the
  usual convention (OWASP, "CSV Injection"). Numbers are written as numbers.
* **Workbooks**: cells are written as text, never as formulas, links or numbers parsed from
  text (:data:`XLSX_OPTIONS`); a cell longer than Excel's limit is cut with a visible note.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import polars as pl
from jinja2 import Environment, PackageLoader
from markupsafe import Markup

# default-src 'none' forbids scripts, frames, fonts, fetches and forms; styles are inline
# (<style> and the charts' style attributes) and images are inline SVG or data: URIs.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "base-uri 'none'; form-action 'none'"
)
CSP_META = f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">'

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

# xlsxwriter turns strings starting with '=' into formulas, URLs into links and numeric text
# into numbers unless told not to.
XLSX_OPTIONS = {"strings_to_formulas": False, "strings_to_urls": False, "strings_to_numbers": False}
XLSX_CELL_LIMIT = 32_767  # characters in one Excel cell
XLSX_CUT_NOTE = " [… cut: the full text is in the CSV file]"


def template_env() -> Environment:
    """The one template environment of every page (audit, population, period report)."""
    env = Environment(loader=PackageLoader("pipeline.reports", "templates"), autoescape=True)
    env.globals["csp_meta"] = Markup(CSP_META)  # a constant of ours, not data
    env.filters["num"] = number
    env.filters["pct"] = percent
    return env


def number(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def percent(value: Any) -> str:
    return "" if value is None else f"{100 * value:.1f}%"


# -- CSV ----------------------------------------------------------------------------------------
def csv_cell(value: Any) -> Any:
    """One CSV cell: empty for None, JSON for nested values, formulas neutralised."""
    if value is None:
        return ""
    if isinstance(value, dict | list):
        value = json.dumps(value, default=str)
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def csv_text(rows: Iterable[Sequence[Any]], header: Sequence[str]) -> str:
    """Rows (sequences in ``header`` order) as CSV text, every cell through :func:`csv_cell`."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([csv_cell(h) for h in header])
    writer.writerows([csv_cell(v) for v in row] for row in rows)
    return buffer.getvalue()


def csv_of_dicts(rows: list[Mapping[str, Any]]) -> str:
    """A table of dicts as CSV: the union of their keys as the header, in first-seen order."""
    header = list(dict.fromkeys(k for row in rows for k in row))
    return csv_text(([row.get(k) for k in header] for row in rows), header)


def neutral_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with every text cell that starts like a formula prefixed (for write_csv)."""
    starts = "^[" + "".join(FORMULA_START).replace("-", r"\-") + "]"
    return frame.with_columns(
        pl.when(pl.col(name).str.contains(starts))
        .then(pl.lit("'") + pl.col(name))
        .otherwise(pl.col(name))
        .alias(name)
        for name, dtype in frame.schema.items()
        if dtype == pl.String
    )


def neutral_sql(expression: str) -> str:
    """A SQL expression giving ``expression`` (text) with the same prefix rule (DuckDB COPY)."""
    firsts = ", ".join("'" + c + "'" for c in FORMULA_START)
    return (
        f"CASE WHEN left({expression}, 1) IN ({firsts}) "
        f"THEN '''' || {expression} ELSE {expression} END"
    )


# -- markdown (Prefect artifacts) ----------------------------------------------------------
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|>~])")


def markdown_text(value: Any) -> str:
    """Text for a markdown cell: markup escaped, markdown punctuation taken literally, one line."""
    text = html.escape(" ".join(str(value).split()), quote=False)
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


# -- workbooks ----------------------------------------------------------------------------------
# xlsxwriter writes text that starts with <r> and ends with </r> into the sheet as XML, unescaped
# (its form for rich text): such text from a record gets the CSV files' neutralising apostrophe.
XLSX_RICH_START, XLSX_RICH_END = "<r>", "</r>"


def xlsx_cell(value: Any) -> Any:
    """A workbook cell: text within Excel's limit, with a note where it had to be cut, and
    never read as rich-text XML."""
    if isinstance(value, str):
        if value.startswith(XLSX_RICH_START) and value.endswith(XLSX_RICH_END):
            value = "'" + value
        if len(value) > XLSX_CELL_LIMIT:
            return value[: XLSX_CELL_LIMIT - len(XLSX_CUT_NOTE)] + XLSX_CUT_NOTE
    return value


def xlsx_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with :func:`xlsx_cell` applied to every text cell, a column at a time."""
    keep = XLSX_CELL_LIMIT - len(XLSX_CUT_NOTE)
    text = [name for name, dtype in frame.schema.items() if dtype == pl.String]
    rich = {
        name: pl.col(name).str.starts_with(XLSX_RICH_START)
        & pl.col(name).str.ends_with(XLSX_RICH_END)
        for name in text
    }
    return frame.with_columns(
        pl.when(rich[name]).then(pl.lit("'") + pl.col(name)).otherwise(pl.col(name)).alias(name)
        for name in text
    ).with_columns(
        pl.when(pl.col(name).str.len_chars() > XLSX_CELL_LIMIT)
        .then(pl.col(name).str.slice(0, keep) + pl.lit(XLSX_CUT_NOTE))
        .otherwise(pl.col(name))
        .alias(name)
        for name in text
    )
