"""``b12screen check``: read and validate an extracts folder without writing anything.

Contract section 2b. The folder is read exactly as a run reads it (the same discovery, format
adapters, staging SQL, pandera schemas and criteria) into an in-memory DuckDB database that is
dropped at the end: no database file, no output folder, no registry row. What it says:

* the format (and why, under ``--format auto``), the files matched, the look-up tables, and
  the files ignored, with a hint when a name is close to a kind (``lab_results.csv``);
* the columns found in each file;
* the rows that would be quarantined, by kind and reason;
* the share of lab results, medication orders and diagnoses that the rules recognise;
* the date range of each kind against the as-of date.

Problems (each one line, ``problem: ...``) make the exit status 3, as an extracts error of a
run does: a run would fail; a kind with rows of which none is recognised; every diagnosis on no
list; no lab result within any look-back window, or every dated row of a kind after the as-of
date; a file name one letter away from a kind's.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb

from pipeline import registry
from pipeline.errors import B12ScreenError, ExtractsError
from pipeline.facts import Prepared
from pipeline.progress import Progress
from pipeline.read.adapters import (
    CLINICAL_KINDS,
    FHIR_TYPES,
    TABLES,
    FormatExtracts,
    discover_format,
    fhir_type_of,
)
from pipeline.read.discover import KINDS
from pipeline.read.ingest import _header
from pipeline.rules import apply_rules, load_rules
from pipeline.screening.criteria import load_macros


@dataclass
class CheckReport:
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def say(self, text: str) -> None:
        self.lines.append(text)

    def problem(self, text: str) -> None:
        self.problems.append(text)
        self.lines.append(f"problem: {text}")

    @property
    def exit_code(self) -> int:
        return ExtractsError.exit_code if self.problems else 0


def _distance(a: str, b: str) -> int:
    """Levenshtein distance (short names only)."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def _names_of(fmt: str) -> dict[str, str]:
    """The names a kind's file may start with, in ``fmt``: name -> what it is."""
    if fmt == "omop":
        return {t: t.upper() for t in TABLES["omop"]}
    if fmt == "synthea":
        return {t: f"{t}.csv" for t in TABLES["synthea"]}
    if fmt == "fhir":
        return {t.lower(): f"{t} (NDJSON)" for t in FHIR_TYPES}
    return {k: f"{k}*" for k in KINDS}


def close_name(name: str, fmt: str) -> tuple[str, int] | None:
    """The kind (or table) a file name is close to, and how far: one of its words is a kind's
    name with a letter or two changed, or the name's start is (``lab_results``, ``patient``)."""
    stem = name.lower().split(".", 1)[0]
    words = [w for w in re.split(r"[^a-z]+", stem) if w]
    best: tuple[str, int] | None = None
    for target, label in _names_of(fmt).items():
        candidates = [stem, *words, "_".join(words[:2])]
        for word in candidates:
            d = _distance(word, target)
            if 0 < d <= 2 and (best is None or d < best[1]):
                best = (label, d)
    return best


def _columns_of(extracts: FormatExtracts) -> list[str]:
    out = []
    for f in (*extracts.files, *extracts.lookups):
        if f.fmt in ("csv", "parquet"):
            try:
                names = _header(f)
            except OSError:
                names = []
            shown = ", ".join(names[:14]) + (
                f", … ({len(names)} in all)" if len(names) > 14 else ""
            )
            out.append(f"  {f.name}: {shown or '(no header read)'}")
        else:
            out.append(f"  {f.name}: FHIR {fhir_type_of(f.path) or '?'} resources{_fields(f.path)}")
    return out


def _fields(path: Path) -> str:
    """The top-level fields of an NDJSON file's first resource (names only, never values)."""
    if not path.name.lower().endswith(".ndjson"):
        return ""
    try:
        with path.open("rb") as fh:
            first = json.loads(fh.readline(1 << 24) or b"{}")
    except (OSError, ValueError, RecursionError):
        return ""
    if not isinstance(first, dict):
        return ""
    names = ["".join(c if c.isprintable() else "?" for c in str(k))[:40] for k in first][:14]
    return " (first: " + ", ".join(names) + (", …" if len(first) > 14 else "") + ")"


def check(
    extracts: Path, fmt: str = "auto", as_of: date | None = None, rules: str | Path | None = None
) -> CheckReport:
    """Read and validate ``extracts`` in memory; the report says what a run would make of it."""
    from pipeline.runner import RunConfig, ScreeningRun  # the run's own stages, in memory

    as_of = as_of or date.today()
    report = CheckReport()
    loaded_rules = load_rules(rules)
    try:
        found = discover_format(Path(extracts), fmt)
    except ExtractsError as exc:
        report.problem(f"a run would fail: {exc}")
        return report
    report.say(found.chosen or f"format {found.format} (as given)")
    report.say(f"as of {as_of.isoformat()}; rules {loaded_rules.version}")
    for m in loaded_rules.mappings:  # the site's own mapping files ([mappings] of the profile)
        report.say(f"site mapping {m.table}: {m.path.name}, {len(m.rows):,} rows")
    report.say(f"files matched ({len(found.files)}):")
    for f in found.files:
        table = found.tables.get(f.path, "")
        what = f"{f.kind}" + (f" ({table})" if table and found.format != "canonical" else "")
        report.say(f"  {f.name}: {what}")
    for f in found.lookups:
        report.say(f"  {f.name}: look-up table ({found.tables.get(f.path, '')}), read every run")
    if found.ignored:
        report.say(f"files ignored ({len(found.ignored)}):")
    for name, why in found.ignored_reasons.items():
        near = close_name(name, found.format)
        hint = f"; did you mean {near[0]}?" if near else ""
        report.say(f"  {name}: {why}{hint}")
        if near and near[1] == 1:
            report.problem(f"{name} is not read: its name is one letter away from {near[0]}")
    report.say("columns found:")
    for line in _columns_of(found):
        report.say(line)

    # the run's own stages, on an in-memory database dropped at the end
    run = ScreeningRun(
        RunConfig(
            extracts=Path(extracts),
            out=Path(extracts) / ".b12screen-check-never-written",
            as_of=as_of,
            db=Path(":memory:"),
            rules=rules,
            progress=False,
            memory_limit=None,
            input_format=found.format,
        )
    )
    run.rules = loaded_rules
    run.progress = Progress(False)
    try:
        run.con = con = duckdb.connect(":memory:")
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET temp_directory = ''")  # nothing spills to disk
        registry.ensure_registry(con)
        con.execute('SET VARIABLE "run.as_of" = ?::DATE', [as_of])
        con.execute('SET VARIABLE "run.id" = ?', ["check"])
        load_macros(con)
        apply_rules(con, loaded_rules)
        run._load_reference_tables()
        run._check_required_kinds(found)
        run.prepared = Prepared(
            "check", as_of, run.started_at, loaded_rules, Path(extracts), found, ()
        )
        run.ingest()
        run.validate()
        run.screen()
    except B12ScreenError as exc:
        report.problem(f"a run would fail: {exc}")
        run.close()
        return report
    try:
        _report_rows(con, run, report, as_of, loaded_rules)
    finally:
        run.close()
    return report


def _report_rows(con, run, report: CheckReport, as_of: date, rules) -> None:
    read = run.read
    counts = {k: read.rows_of(k) for k in CLINICAL_KINDS}
    report.say("rows read: " + ", ".join(f"{k} {n:,}" for k, n in counts.items()))
    for kind, item, n in read.format_counts:
        report.say(f"  {read.input_format} {kind}: {item}: {n:,}")
    quarantined = con.execute(
        "SELECT kind, reason, count(*) FROM quarantine GROUP BY ALL ORDER BY kind, 3 DESC, reason"
    ).fetchall()
    total = sum(n for *_, n in quarantined)
    report.say(f"rows that would be quarantined: {total:,}")
    for kind, reason, n in quarantined:
        report.say(f"  {kind}: {reason}: {n:,}")

    def share(label: str, kind: str, sql: str) -> None:
        ((rows, known),) = con.execute(sql).fetchall()
        if not rows:
            report.say(f"{label}: no valid rows")
            return
        report.say(f"{label}: {known:,} of {rows:,} recognised ({100 * known / rows:.0f}%)")
        if known == 0:
            report.problem(f"{kind}: none of the {rows:,} valid rows is recognised by the rules")

    share(
        "lab results (a test a rule uses)",
        "labs",
        "SELECT count(*), count(*) FILTER (WHERE analyte IS NOT NULL) FROM lab_results",
    )
    share(
        "medication orders (a drug on a list)",
        "medications",
        "SELECT count(*), count(*) FILTER (WHERE _rid IN (SELECT _rid FROM int_medication_groups)) "
        "FROM medications",
    )
    share(
        "diagnoses (a code on a condition list)",
        "diagnoses",
        """
        SELECT count(*), count(*) FILTER (WHERE EXISTS (
            SELECT 1 FROM ref_diagnosis_codes r
            WHERE coalesce(d.code_system, 'icd10') = 'icd10'
              AND starts_with(d.code_key, upper(replace(r.code, '.', '')))
        ) OR (d.code_system = 'snomed'
              AND d.code_key IN (SELECT code FROM ref_diagnosis_codes_snomed)))
        FROM diagnoses AS d
        """,
    )
    longest = max(a.lookback_days for a in rules.spec.analytes.values())
    for kind, table, column in (
        ("patients", "patients", "birth_date"),
        ("labs", "lab_results", "collected_at"),
        ("medications", "medications", "start_date"),
        ("diagnoses", "diagnoses", "recorded_at"),
    ):
        ((low, high, n),) = con.execute(
            f"SELECT min({column})::DATE, max({column})::DATE, count(*) FROM {table}"
        ).fetchall()
        ((later,),) = con.execute(
            "SELECT count(*) FROM quarantine WHERE kind = ? AND reason LIKE '%after the as-of date%'",
            [kind],
        ).fetchall()
        if n:
            report.say(f"{kind} dates: {low} to {high} ({later:,} rows after the as-of date)")
        elif later:
            report.problem(
                f"{kind}: every dated row is after the as-of date {as_of.isoformat()} "
                "(is --as-of right?)"
            )
        if kind == "labs" and n and (as_of - high).days > longest:
            report.problem(
                f"labs: the latest result ({high}) is older than the longest look-back "
                f"({longest} days) before {as_of.isoformat()}: no result would count"
            )
