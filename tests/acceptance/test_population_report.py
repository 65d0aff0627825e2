"""The period reports over a backfilled demo month, reconciled with each run's own outputs.

The expected counts are recomputed here from the files the runs published (flags.parquet,
worklist.csv, quarantine.csv) and the demo's patients extract, with this file's own age,
band and sex rules: nothing is taken from the report code under test.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.demo import generate_population
from pipeline.reports.period import write_period_report
from pipeline.reports.population import build_population_report
from pipeline.rules import load_rules
from pipeline.runner import RunConfig, run_screening

AS_OF = date(2026, 11, 24)
BACKFILLED = [AS_OF - timedelta(days=d) for d in (28, 21, 14, 7)]
START, END = AS_OF - timedelta(days=28), AS_OF
BANDS = [(0, "0-17"), (18, "18-39"), (40, "40-64"), (65, "65-74"), (75, "75-84"), (85, "85+")]


@pytest.fixture(scope="module")
def month(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo screened on AS_OF, then four earlier as-of dates replayed from the database."""
    root = tmp_path_factory.mktemp("month")
    generate_population(root / "extracts", n_patients=600, as_of=AS_OF, truth_dir=root / "truth")
    db = root / "screening.duckdb"
    run_screening(
        RunConfig(root / "extracts", root / "runs" / AS_OF.isoformat(), AS_OF, db, progress=False)
    )
    for day in BACKFILLED:
        run_screening(RunConfig(None, root / "runs" / day.isoformat(), day, db, progress=False))
    return root


# -- the independent recomputation -------------------------------------------------------------
def _band(birth: str, on: date) -> str:
    try:
        born = date.fromisoformat(birth.strip()[:10])
    except ValueError:
        return "unknown"
    age = on.year - born.year - ((on.month, on.day) < (born.month, born.day))
    if age < 0:
        return "unknown"
    return [label for lower, label in BANDS if age >= lower][-1]


def _sex(raw: str) -> str:
    return {"m": "M", "male": "M", "f": "F", "female": "F"}.get(raw.strip().lower(), "U")


def _population(root: Path) -> dict[str, dict]:
    """Patients of the extract less the rows quarantined by the run that read them and those
    who died before the period began (they were screened by none of its runs)."""
    quarantined = set()
    with (root / "runs" / AS_OF.isoformat() / "quarantine.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            if row["kind"] == "patients":
                quarantined.add((row["source_file"], int(row["row_number"])))
    people = {}
    with (root / "extracts" / "patients.csv").open(newline="", encoding="utf-8") as f:
        for n, row in enumerate(csv.DictReader(f), start=1):
            if ("patients.csv", n) in quarantined:
                continue
            if row["death_date"] and date.fromisoformat(row["death_date"]) < START:
                continue
            people[row["patient_id"].strip()] = {
                "age_band": _band(row["birth_date"], END),
                "sex": _sex(row["sex"]),
                "site": row["site"].strip() or "not recorded",
            }
    return people


def _met(root: Path) -> dict[str, set[str]]:
    """criterion (and on_worklist) -> patients, over the runs of the period."""
    met: dict[str, set[str]] = {}
    for folder in sorted((root / "runs").iterdir()):
        if not START <= date.fromisoformat(folder.name) <= END:
            continue
        flags = pl.read_parquet(folder / "flags.parquet")
        for pid, criterion in flags.select("patient_id", "criterion").iter_rows():
            met.setdefault(criterion, set()).add(pid)
        with (folder / "worklist.csv").open(newline="") as f:
            met.setdefault("on_worklist", set()).update(r["patient_id"] for r in csv.DictReader(f))
    return met


def _expected(root: Path) -> dict[tuple, int]:
    people = _population(root)
    expected: Counter = Counter()
    for measure, patients in [("population", set(people)), *_met(root).items()]:
        for pid in patients:
            p = people[pid]
            expected[(measure, "all", "", "")] += 1
            for dim in ("age_band", "sex", "site"):
                expected[(measure, dim, p[dim], "")] += 1
            expected[(measure, "age_band_sex", p["age_band"], p["sex"])] += 1
    return expected


@pytest.fixture(scope="module")
def report(month: Path):
    rules = load_rules()
    con = duckdb.connect(str(month / "screening.duckdb"), read_only=True)
    try:
        runs = con.execute(
            "SELECT run_id, as_of, rules_version FROM runs WHERE status = 'succeeded' "
            "ORDER BY as_of, started_at"
        ).fetchall()
        runs = [{"run_id": r, "as_of": a, "rules_version": v} for r, a, v in runs]
        return build_population_report(con, rules, START, END, runs, with_charts=False)
    finally:
        con.close()


# -- tests --------------------------------------------------------------------------------------
def test_exact_counts_reconcile_with_the_runs_own_outputs(month: Path, report) -> None:
    expected = _expected(month)
    nonzero = {k: v for k, v in report.exact.items() if v}
    assert nonzero == dict(expected)
    assert expected[("population", "all", "", "")] > 500
    # the planted cases make every action criterion appear at least once in the month
    assert {k[0] for k in expected} >= {"b12_deficient", "deficiency_untreated", "on_worklist"}


def _rounded(n: int) -> int:
    return n - n % 5 + (5 if n % 5 >= 3 else 0)


def test_every_published_count_follows_the_disclosure_rule(report) -> None:
    exact = report.exact
    cells = {
        (r["measure"], r["dimension"], r["group"], r["sex"]): (r["patients"], r["patients_status"])
        for r in report.doc["prevalence"]
    } | {
        ("population", r["dimension"], r["group"], r["sex"]): (r["patients"], r["status"])
        for r in report.doc["population"]
    }
    assert set(cells) == set(exact)
    for key, (value, status) in cells.items():
        n = exact[key]
        if 1 <= n <= 7:
            assert status == "redacted" and value is None, key
        elif status == "shown":
            assert value == _rounded(n), key
        else:
            assert status == "complementary" and value is None, key
    assert any(s == "complementary" for _, s in cells.values())  # the demo needs some


def test_no_total_has_exactly_one_hidden_part(report) -> None:
    """A hidden count can't be had by subtraction: no sum with exactly one unknown."""
    shown = {
        (r["measure"], r["dimension"], r["group"], r["sex"]): r["patients_status"] == "shown"
        for r in report.doc["prevalence"]
    } | {
        ("population", r["dimension"], r["group"], r["sex"]): r["status"] == "shown"
        for r in report.doc["population"]
    }
    cats = report.doc["categories"]
    sums = []
    for m in {k[0] for k in shown}:
        for dim in ("age_band", "sex", "site"):
            sums.append([(m, "all", "", "")] + [(m, dim, g, "") for g in cats[dim]])
        for a in cats["age_band"]:
            sums.append([(m, "age_band", a, "")] + [(m, "age_band_sex", a, s) for s in cats["sex"]])
        for s in cats["sex"]:
            sums.append([(m, "sex", s, "")] + [(m, "age_band_sex", a, s) for a in cats["age_band"]])
    for terms in sums:
        assert sum(not shown[k] for k in terms) != 1, terms


def test_rates_and_intervals_come_from_the_published_counts(report) -> None:
    for r in report.doc["prevalence"]:
        if r["rate"] is None:
            assert (
                r["patients_status"] != "shown"
                or r["population_status"] != "shown"
                or (r["population"] == 0)
            )
            continue
        assert r["rate"] == pytest.approx(min(r["patients"], r["population"]) / r["population"])
        assert 0 <= r["low"] <= r["rate"] <= r["high"] <= 1


def test_report_command_writes_both_reports_and_the_audit_reconciles(month: Path) -> None:
    out = month / "report"
    result = CliRunner().invoke(
        cli,
        [
            "report",
            "--db",
            str(month / "screening.duckdb"),
            "--from",
            START.isoformat(),
            "--to",
            END.isoformat(),
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "report of 5 run(s)" in result.output
    for name in (
        "audit.html",
        "audit.json",
        "population.html",
        "population.json",
        "population.csv",
    ):
        assert (out / name).stat().st_size > 1000, name
    doc = json.loads((out / "audit.json").read_text())
    # the snapshot is the last as-of date's run: its funnel equals that run's own files
    last = month / "runs" / END.isoformat()
    flags = pl.read_parquet(last / "flags.parquet")
    per_criterion = dict(
        flags.group_by("criterion").agg(pl.col("patient_id").n_unique()).iter_rows()
    )
    funnel = {(r["stage"], r["item"]): r["patients"] for r in doc["tables"]["funnel"]}
    for criterion, n in per_criterion.items():
        assert funnel[("criterion", criterion)] == n, criterion
    with (last / "worklist.csv").open(newline="") as f:
        assert funnel[("worklist", "total")] == sum(1 for _ in csv.DictReader(f))
    assert sorted({r["as_of"] for r in doc["tables"]["measure_trends"]}) == sorted(
        d.isoformat() for d in [*BACKFILLED, AS_OF]
    )
    assert (out / "audit" / "funnel.csv").is_file()


def test_a_period_without_runs_fails_in_one_line_and_keeps_the_last_report(month: Path) -> None:
    out = month / "kept"
    write_period_report(month / "screening.duckdb", START, END, out)
    before = (out / "population.html").read_bytes()
    args = ["report", "--db", str(month / "screening.duckdb"), "--out", str(out)]
    result = CliRunner().invoke(cli, [*args, "--from", "2020-01-01", "--to", "2020-01-31"])
    assert result.exit_code != 0
    assert "no succeeded run with an as-of date from 2020-01-01 to 2020-01-31" in result.output
    assert (out / "population.html").read_bytes() == before
    backwards = CliRunner().invoke(cli, [*args, "--from", "2026-11-30", "--to", "2026-11-01"])
    assert backwards.exit_code != 0 and "before --from" in backwards.output


def test_the_shareable_files_hold_no_patient_identifier(month: Path) -> None:
    out = month / "shared"
    write_period_report(month / "screening.duckdb", START, END, out)
    ids = set(_population(month))
    for name in ("population.html", "population.json", "population.csv"):
        text = (out / name).read_text(encoding="utf-8")
        leaked = [pid for pid in ids if pid in text]
        assert not leaked, (name, leaked[:3])


def test_a_registry_from_before_the_audit_tables_still_reports(month: Path, tmp_path: Path) -> None:
    """Runs made by an older b12screen have no audit snapshot or measures: say so, don't fail."""
    import shutil

    db = tmp_path / "old.duckdb"
    shutil.copy(month / "screening.duckdb", db)
    con = duckdb.connect(str(db))
    con.execute("DROP TABLE audit_history; DROP TABLE measures_history")
    con.close()
    write_period_report(db, START, END, tmp_path / "out")
    doc = json.loads((tmp_path / "out" / "audit.json").read_text())
    assert doc["snapshot_run"]["recorded"] is False
    assert doc["tables"]["measure_trends"] == []
    assert "did not record the funnel" in (tmp_path / "out" / "audit.html").read_text()
    assert (tmp_path / "out" / "population.csv").stat().st_size > 1000


def test_the_audit_states_the_fence_of_the_rules_file(tmp_path: Path, small_extracts: Path) -> None:
    rules = tmp_path / "site.toml"
    rules.write_text(
        'extends = "guidance"\n[ruleset]\nname = "site"\nversion = "1"\n'
        'description = "narrower fences"\n[report]\nimplausible_iqr_fence = 1.5\n'
    )
    out = tmp_path / "out"
    run_screening(RunConfig(small_extracts, out, AS_OF, tmp_path / "db.duckdb", rules=rules))
    doc = json.loads((out / "audit.json").read_text())
    (row, *_) = doc["tables"]["value_distributions"]
    assert row["iqr_fence"] == 1.5
    assert row["high_fence"] == pytest.approx(row["q3"] + 1.5 * (row["q3"] - row["q1"]))
    assert "minus and plus 1.5 interquartile ranges" in (out / "audit.html").read_text()
