"""The ``b12screen`` command line (the command table of the b12screen specification).

User and data errors print one line on stderr and exit with a fixed code (pipeline/errors.py);
only bugs show a traceback.
"""

from __future__ import annotations

import logging
import sys
from datetime import date
from pathlib import Path

import click

from pipeline import __version__
from pipeline.errors import B12ScreenError

DATE = click.DateTime(formats=["%Y-%m-%d"])


def _period_options(command):
    """--from and --to: a range of as-of dates, both included (backfill, report)."""
    command = click.option(
        "--to", "date_to", type=DATE, required=True, help="Last as-of date (YYYY-MM-DD), included."
    )(command)
    return click.option(
        "--from", "date_from", type=DATE, required=True, help="First as-of date (YYYY-MM-DD)."
    )(command)


def _fail(exc: B12ScreenError) -> None:
    click.echo(f"b12screen: error: {exc}", err=True)
    sys.exit(exc.exit_code)


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="Run 'b12screen COMMAND --help' for the options of each command.",
)
@click.version_option(__version__, prog_name="b12screen")
@click.option(
    "-v", "--verbose", is_flag=True, help="Log stage counts and timings (no patient data)."
)
def cli(verbose: bool) -> None:
    """Screen a patient population for vitamin B12 deficiency and cytopenias.

    \b
    Every night an EHR drops lab, patient, medication and diagnosis extracts in a folder;
    'b12screen run' loads them into DuckDB, validates them (bad rows are quarantined, never
    dropped), applies the criteria of the rules file and writes a worklist for clinicians,
    flags, a quarantine file, an audit report and a provenance record.

    \b
    Try it on a synthetic population:   b12screen demo
    Screen a real extract:              b12screen run --extracts DIR --out DIR --as-of 2026-11-24
    """
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@cli.command()
@click.option(
    "--extracts",
    type=click.Path(path_type=Path),
    required=True,
    help="Folder with labs*, patients* (required), medications*, diagnoses* files (.csv, .csv.gz, .parquet).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="Folder for worklist.csv/.xlsx, flags.parquet, quarantine.csv, audit.html, run.json. "
    "Previous outputs are replaced only when the whole run succeeds.",
)
@click.option(
    "--as-of",
    "as_of",
    type=DATE,
    default=None,
    help="Evaluation date (YYYY-MM-DD); every look-back counts back from it. Default: today.",
)
@click.option(
    "--db",
    type=click.Path(path_type=Path),
    default=Path("b12screen.duckdb"),
    show_default=True,
    help="DuckDB file keeping ingested data, run history and flag history.",
)
@click.option(
    "--rules",
    default=None,
    help="Rules file (.toml) or a shipped profile name: guidance (default) or primary-sources.",
)
@click.option(
    "--memory-limit",
    default="3GB",
    show_default=True,
    help="DuckDB memory ceiling (3GB, 512MiB); past it DuckDB spills to DB.spill/ beside the database.",
)
def run(extracts: Path, out: Path, as_of, db: Path, rules: str | None, memory_limit: str) -> None:
    """Run one screening (what the nightly schedule runs).

    \b
    Exit status: 0 when the run completed (also when rows were quarantined);
    2-6 with a one-line cause on stderr when it could not (exit codes: see the README).
    """
    from pipeline.runner import RunConfig, run_screening

    try:
        config = RunConfig(  # checks --memory-limit: a usage error before anything runs
            extracts=extracts,
            out=out,
            as_of=(as_of.date() if as_of else date.today()),
            db=db,
            rules=rules,
            progress=None,
            memory_limit=memory_limit,
        )
        result = run_screening(config)
    except B12ScreenError as exc:
        _fail(exc)
    _summary(result.record, out)


def _by_priority(worklist: dict) -> str:
    """'12 urgent, 3 high, 40 routine': the record's counts in its own (the rules') order."""
    return ", ".join(f"{n} {p}" for p, n in worklist.items() if p != "total")


def _summary(record: dict, out: Path) -> None:
    counts = record["counts"]
    wl = counts["worklist"]
    quarantined = sum(counts["rows_quarantined"].values())
    click.echo(
        f"run {record['run_id']} as of {record['as_of']}: {counts['patients']} patients screened, "
        f"{wl['total']} on the worklist ({_by_priority(wl)}), "
        f"{quarantined} rows quarantined"
    )
    skipped = record.get("skipped_files") or []
    if skipped:
        click.echo(f"{len(skipped)} input file(s) skipped: already ingested by an earlier run")
    click.echo(f"worklist: {out / 'worklist.csv'}")
    click.echo(f"audit:    {out / 'audit.html'}")


@cli.command()
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("b12screen-demo"),
    show_default=True,
    help="Folder for the synthetic extracts (extracts/), the run's outputs (run/) and the database.",
)
@click.option(
    "--patients",
    "n_patients",
    type=click.IntRange(min=500),
    default=3000,
    show_default=True,
    help="Size of the synthetic population (planted cases come on top).",
)
@click.option(
    "--as-of",
    "as_of",
    type=DATE,
    default="2026-11-24",
    show_default=True,
    help="As-of date of the synthetic population and the run.",
)
@click.option(
    "--seed", type=int, default=12, show_default=True, help="Random seed (same seed, same files)."
)
def demo(out: Path, n_patients: int, as_of, seed: int) -> None:
    """Make a synthetic population with planted cases, screen it, and say where the results are."""
    from pipeline.demo import generate_population
    from pipeline.runner import RunConfig, run_screening

    extracts = out / "extracts"
    try:
        generate_population(
            extracts, n_patients=n_patients, as_of=as_of.date(), seed=seed, truth_dir=out / "truth"
        )
        result = run_screening(
            RunConfig(
                extracts=extracts,
                out=out / "run",
                as_of=as_of.date(),
                db=out / "b12screen.duckdb",
                progress=None,
            )
        )
    except B12ScreenError as exc:
        _fail(exc)
    click.echo(
        f"synthetic extracts: {extracts}  (expected flags of planted patients: {out / 'truth'})"
    )
    _summary(result.record, out / "run")
    day = as_of.date().isoformat()
    click.echo(
        "next: a period report (add earlier dates with 'b12screen backfill'):\n"
        f"  b12screen report --db {out / 'b12screen.duckdb'} --from {day} --to {day} "
        f"--out {out / 'report'}"
    )


@cli.command()
@_period_options
@click.option(
    "--every",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Days between as-of dates (7 for weekly).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="Folder that gets one sub-folder of outputs per as-of date (YYYY-MM-DD/).",
)
@click.option(
    "--db",
    type=click.Path(path_type=Path),
    default=Path("b12screen.duckdb"),
    show_default=True,
    help="DuckDB file holding the ingested data.",
)
@click.option("--rules", default=None, help="Rules file or profile (default: guidance).")
def backfill(date_from, date_to, every: int, out: Path, db: Path, rules: str | None) -> None:
    """Replay past as-of dates from the data already in the database, for audits.

    \b
    No extract is read: each date is screened with what the database holds, counting only
    results, orders and diagnoses dated on or before it (corrected results are replayed with
    their corrected value). Each run is recorded in the registry like a nightly one.
    """
    from datetime import timedelta

    from pipeline.runner import RunConfig, run_screening

    start, end = date_from.date(), date_to.date()
    if end < start:
        _fail(B12ScreenError("--to is before --from"))
    if not db.exists():
        _fail(B12ScreenError(f"database not found: {db} (backfill replays what a database holds)"))
    day = start
    while day <= end:
        try:
            result = run_screening(
                RunConfig(
                    extracts=None,
                    out=out / day.isoformat(),
                    as_of=day,
                    db=db,
                    rules=rules,
                    progress=False,
                )
            )
        except B12ScreenError as exc:
            _fail(exc)
        wl = result.record["counts"]["worklist"]
        click.echo(f"{day}: {wl['total']} on the worklist ({_by_priority(wl)})")
        day += timedelta(days=every)


@cli.command()
@click.option(
    "--db",
    type=click.Path(path_type=Path),
    default=Path("b12screen.duckdb"),
    show_default=True,
    help="DuckDB file of the runs (opened read-only).",
)
@_period_options
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="Folder for the report files (created; earlier reports there are replaced).",
)
@click.option(
    "--rules",
    default=None,
    help="Rules file or profile whose [report] section sets the age bands and the disclosure "
    "rule (default: guidance).",
)
def report(db: Path, date_from, date_to, out: Path, rules: str | None) -> None:
    """Write the audit and population reports of a period, from the run registry.

    \b
    The period is every succeeded run whose as-of date is from --from to --to. Written:
      audit.html, audit.json, audit/*.csv   funnel, care-process measures and their trends,
                                            data quality, provenance; exact counts, for the
                                            care and QI team only
      population.html, .json, .csv          prevalence of each criterion by age band, sex
                                            and site with 95% intervals; small numbers
                                            suppressed, so it can be shared
    \b
    Example (a month):  b12screen report --db screening.duckdb --from 2026-11-01 --to 2026-11-30 --out reports/2026-11
    """
    from pipeline.reports.period import write_period_report

    try:
        result = write_period_report(db, date_from.date(), date_to.date(), out, rules=rules)
    except B12ScreenError as exc:
        _fail(exc)
    click.echo(
        f"report of {result.runs} run(s), as of {date_from:%Y-%m-%d} to {date_to:%Y-%m-%d}, "
        f"in {result.seconds:.1f} s"
    )
    click.echo(f"audit:      {out / 'audit.html'}  (care and QI team only)")
    click.echo(f"population: {out / 'population.html'}  (shareable)")


@cli.command()
@click.option(
    "--db",
    type=click.Path(path_type=Path),
    default=Path("b12screen.duckdb"),
    show_default=True,
    help="DuckDB file of the runs.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Newest runs to list.",
)
def runs(db: Path, limit: int) -> None:
    """List the runs recorded in the database: when, as of which date, with what result."""
    from pipeline.registry import list_runs

    try:
        rows = list_runs(db, limit)
    except B12ScreenError as exc:
        _fail(exc)
    if not rows:
        click.echo(f"no runs recorded in {db}")
        return
    header = (
        "run id",
        "as of",
        "started (UTC)",
        "status",
        "rules",
        "worklist",
        "quarantined",
        "seconds",
    )
    table = [header] + [
        (
            r["run_id"],
            str(r["as_of"]),
            r["started_at"].strftime("%Y-%m-%d %H:%M:%S"),
            r["status"],
            r["rules_version"] or "",
            str(r["worklist"] if r["worklist"] is not None else ""),
            str(r["quarantined"] if r["quarantined"] is not None else ""),
            f"{r['seconds']:.1f}",
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    for r in rows:
        if r["status"] == "failed" and r["error"]:
            click.echo(f"{r['run_id']} failed: {r['error']}")


@cli.command()
@click.option("--rules", default=None, help="Rules file or profile (default: guidance).")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Write the Markdown here instead of printing it.",
)
@click.option(
    "--semantics",
    is_flag=True,
    help="Print the criteria semantics (docs/criteria-semantics.md) instead of the catalogue.",
)
def catalogue(rules: str | None, out: Path | None, semantics: bool) -> None:
    """Print the criteria catalogue (ids, roles, rules, values and their sources) from a rules file."""
    from pipeline.reports.catalogue import render_markdown, render_semantics
    from pipeline.rules import load_rules

    try:
        loaded = load_rules(rules)
        text = render_semantics(loaded) if semantics else render_markdown(loaded)
    except B12ScreenError as exc:
        _fail(exc)
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        click.echo(f"catalogue written to {out}")


def _register_bench() -> None:
    from pipeline.bench.full import bench
    from pipeline.bench.incremental import bench_incremental

    cli.add_command(bench)
    cli.add_command(bench_incremental)


_register_bench()


def main() -> None:
    cli(prog_name="b12screen")


if __name__ == "__main__":
    main()
