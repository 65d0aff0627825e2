"""The ``b12screen`` command line (its commands and exit codes: README, docs/operations.md).

User and data errors print one line on stderr and exit with a fixed code (pipeline/errors.py);
only bugs show a traceback.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import sys
from pathlib import Path

import click

from pipeline import __version__
from pipeline.errors import B12ScreenError, UsageError, exit_code_lines

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
    epilog="Run 'b12screen COMMAND --help' for the options of each command. Developer "
    "commands (bench, bench-incremental, bench-formats, bench-validation, bench-shards) are left out of this list: see docs/benchmarks.md.",
)
@click.version_option(__version__, prog_name="b12screen")
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="Log stage counts and timings on stderr (no patient data), also when not on a terminal.",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Site config file (default: $B12SCREEN_CONFIG, else ./b12screen.toml if present). "
    "Flags override it; 'b12screen config show' prints what a run would use.",
)
@click.pass_context
def cli(ctx: click.Context, verbose: bool, config_file: Path | None) -> None:
    """Screen a patient population for vitamin B12 deficiency and cytopenias.

    \b
    Every night an EHR drops lab, patient, medication and diagnosis extracts in a folder;
    'b12screen run' loads them into DuckDB, validates them (bad rows are quarantined, never
    dropped), applies the criteria of the rules file and writes a worklist for clinicians,
    flags, a quarantine file, an audit report and a provenance record.

    \b
    Try it on a synthetic population:   b12screen demo
    Screen a real extract:              b12screen run --extracts DIR --out DIR --as-of 2026-11-24
    Set up a site (config, rules, Prefect deployments):  b12screen init DIR
    """
    ctx.obj = {"config": config_file}
    _configure_logging(verbose)


_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_handlers: list[logging.Handler] = []  # ours, replaced on each invocation (tests invoke often)


def _configure_logging(verbose: bool) -> None:
    """stderr gets warnings, or with -v the stage counts and timings too."""
    root = logging.getLogger()
    for handler in _handlers:
        root.removeHandler(handler)
        logging.getLogger("b12screen").removeHandler(handler)
        handler.close()
    _handlers.clear()
    handler = logging.StreamHandler()
    handler.setLevel(logging.INFO if verbose else logging.WARNING)
    handler.setFormatter(logging.Formatter(_LOG_FORMAT))
    root.addHandler(handler)
    _handlers.append(handler)
    logging.getLogger("b12screen").setLevel(logging.INFO if verbose else logging.WARNING)


def _log_to_file(path: Path | None) -> None:
    """--log-file: the b12screen log (stage counts and timings, warnings) appended to ``path``."""
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path, encoding="utf-8")
    except OSError as exc:
        _fail(B12ScreenError(f"--log-file: cannot write {path}: {exc.strerror}"))
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter(_LOG_FORMAT))
    logging.getLogger("b12screen").addHandler(handler)
    logging.getLogger("b12screen").setLevel(logging.INFO)
    _handlers.append(handler)


def _settings(given: dict | None = None):
    """The run's settings: flags, then B12SCREEN_* variables, then the config file."""
    from pipeline.config import resolve

    try:
        return resolve(given or {}, config=click.get_current_context().obj.get("config"))
    except B12ScreenError as exc:
        _fail(exc)


def command_prefix() -> str:
    """How to call b12screen again from here, as the user can type it.

    ``b12screen`` when that is on PATH (an activated venv, pipx); otherwise the console script
    beside this interpreter (``.venv/bin/b12screen`` after the README's install, which never
    activates the venv), relative to the current folder when it is inside it."""
    if not (Path(sys.executable).parent / "b12screen").exists():
        return f"{shlex.quote(sys.executable)} -m pipeline.cli"
    return _venv_tool("b12screen")


PREFECT_ENV = "PREFECT_API_URL=http://127.0.0.1:4200/api PREFECT_SERVER_ANALYTICS_ENABLED=false"


def _venv_tool(name: str) -> str:
    """A console script of this environment, as the user can type it (see command_prefix)."""
    script = Path(sys.executable).parent / name
    found = shutil.which(name)
    if not script.exists() or (found and Path(found).resolve() == script.resolve()):
        return name
    relative = os.path.relpath(script)
    return shlex.quote(relative if not relative.startswith("..") else str(script))


def _set_config(ctx: click.Context, _param: click.Parameter, value: Path | None) -> None:
    if value is not None:
        ctx.obj["config"] = value


# `b12screen run --config FILE` as well as `b12screen --config FILE run`
_CONFIG_OPTION = click.option(
    "--config",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    expose_value=False,
    callback=_set_config,
    help="Site config file (b12screen.toml); as 'b12screen --config FILE'.",
)

_LOG_FILE_OPTION = click.option(
    "--log-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Append the log (stage counts and timings, no patient data) to this file; for cron "
    "and workers, where nothing is on a terminal. Default: paths.log_file of the config.",
)


_FORMAT_OPTION = click.option(
    "--format",
    "input_format",
    type=click.Choice(["auto", "canonical", "omop", "fhir", "synthea"]),
    default="auto",
    show_default=True,
    help="How the extracts folder is laid out: canonical (patients*, labs*, ... as docs/inputs.md), "
    "omop (OMOP CDM v5.4 tables: PERSON, MEASUREMENT, DRUG_EXPOSURE, CONDITION_OCCURRENCE, DEATH, "
    "CONCEPT), fhir (FHIR R4 bulk NDJSON, one resource type per file, or Bundles *.json), synthea "
    "(Synthea CSV: patients, observations, medications, conditions). auto recognises the folder by "
    "its files and says which it chose.",
)

_EXIT_CODES_HELP = "\b\nExit status (one line on stderr, naming the file or key, when not 0):\n" + (
    "\n".join(f"  {line}" for line in exit_code_lines())
)


@cli.command(epilog=_EXIT_CODES_HELP)
@click.option(
    "--extracts",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder with labs*, patients* (required), medications*, diagnoses* files (.csv, .csv.gz, "
    ".parquet). Default: paths.extracts of the config.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder for worklist.csv/.xlsx, flags.parquet, quarantine.csv, audit.html, run.json. "
    "Previous outputs are replaced only when the whole run succeeds. Default: paths.out.",
)
@click.option(
    "--as-of",
    "as_of",
    type=DATE,
    default=None,
    help="Evaluation date (YYYY-MM-DD); every look-back counts back from it. Default: today "
    "(in the config's time zone).",
)
@click.option(
    "--db",
    type=click.Path(path_type=Path),
    default=None,
    help="DuckDB file keeping ingested data, run history and flag history. Default: "
    "paths.database, else b12screen.duckdb.",
)
@click.option(
    "--rules",
    default=None,
    help="Rules file (.toml) or a shipped profile name: guidance (default) or primary-sources.",
)
@click.option(
    "--memory-limit",
    default=None,
    help="DuckDB memory ceiling (3GB, 512MiB); past it DuckDB spills to DB.spill/ beside the "
    "database. Default: memory_limit of the config, else 3GB.",
)
@_FORMAT_OPTION
@click.option(
    "--shards",
    type=click.IntRange(min=1),
    default=None,
    help="Split the patients into N shards screened as Prefect tasks on Dask (needs the "
    "cluster extra; docs/scale-out.md). Default: one process, no Dask.",
)
@click.option(
    "--cluster",
    default=None,
    help="With --shards: 'local' (a Dask LocalCluster in this process, the default) or a Dask "
    "scheduler's address, tcp://host:port.",
)
@click.option(
    "--shard-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="With --shards: the work folder for the split rows, on storage every Dask worker "
    "sees. Default: DB.shards/ beside the database.",
)
@_LOG_FILE_OPTION
@_CONFIG_OPTION
def run(
    extracts: Path | None,
    out: Path | None,
    as_of,
    db: Path | None,
    rules: str | None,
    memory_limit: str | None,
    input_format: str,
    shards: int | None,
    cluster: str | None,
    shard_dir: Path | None,
    log_file: Path | None,
) -> None:
    """Run one screening (what the nightly schedule runs).

    Settings not given as flags come from B12SCREEN_* variables, then the site config
    (--config, b12screen.toml); 'b12screen config show' says which.
    """
    from pipeline.alerts import alert_failure, alert_run
    from pipeline.runner import RunConfig, run_screening

    settings = _settings(
        {
            "extracts": extracts,
            "out": out,
            "db": db,
            "rules": rules,
            "memory_limit": memory_limit,
            "log_file": log_file,
        }
    )
    _log_to_file(settings["log_file"])
    try:
        config = RunConfig(  # checks --memory-limit: a usage error before anything runs
            extracts=settings.require("extracts", "extracts folder"),
            out=settings.require("out", "output folder"),
            as_of=(as_of.date() if as_of else settings.today()),
            db=settings["db"],
            rules=settings["rules"],
            progress=None,
            memory_limit=settings["memory_limit"],
            input_format=input_format,
        )
    except B12ScreenError as exc:
        _fail(exc)

    def failed(screening, exc: BaseException) -> None:  # a bug keeps its traceback after this
        alert_failure(
            settings,
            run_id=screening.run_id,
            as_of=config.as_of,
            cause=exc,
            out=config.out,
            log_file=screening.failure_log,
            stage=screening.progress.current,
        )

    try:
        if shards is None:
            if cluster is not None or shard_dir is not None:
                raise UsageError("--cluster and --shard-dir go with --shards N")
            result = run_screening(config, on_failure=failed)
        else:
            result = _run_sharded(config, shards, cluster, shard_dir, failed)
    except B12ScreenError as exc:
        _fail(exc)
    alert_run(settings, result.record, config.out)
    _summary(result.record, config.out)


def _run_sharded(config, shards: int, cluster: str | None, shard_dir: Path | None, failed):
    """``run --shards N``: the sharded flow (flows/sharded.py) on the Dask cluster named;
    one line when the cluster extra is not installed."""
    from pipeline.scale.cluster import LOCAL, check_cluster, require_cluster_extra

    require_cluster_extra()
    cluster = check_cluster(cluster or LOCAL)
    from flows.sharded import run_on_cluster

    return run_on_cluster(config, shards, cluster, shard_dir=shard_dir, on_failure=failed)


@cli.command(
    epilog="\b\nExamples:\n"
    "  b12screen check --extracts /data/tonight\n"
    "  b12screen check --extracts ./omop --format omop --as-of 2026-11-24\n"
    "\b\nExit status: 0 when a run would succeed and every kind is recognised; 3 with one "
    "'problem:' line each when a run would fail, a kind with rows has none recognised, every "
    "diagnosis is on no list, the dates miss the as-of date, or a file name is one letter away "
    "from a kind's."
)
@click.option(
    "--extracts",
    type=click.Path(path_type=Path),
    required=True,
    help="The extracts folder a run would read.",
)
@_FORMAT_OPTION
@click.option(
    "--as-of",
    "as_of",
    type=DATE,
    default=None,
    help="Evaluation date (YYYY-MM-DD) the dates are checked against. Default: today.",
)
@click.option(
    "--rules",
    default=None,
    help="Rules file (.toml) or a shipped profile name, as for run.",
)
def check(extracts: Path, input_format: str, as_of, rules: str | None) -> None:
    """Read and validate an extracts folder without writing anything.

    No database, no outputs: the folder is read as 'b12screen run' would read it, in memory.
    Says which files matched (and which were ignored, with a hint when a name is close to a
    kind), the columns found, the rows that would be quarantined by reason, the share of tests,
    drugs and diagnoses the rules recognise, and the date range against the as-of date.
    """
    from pipeline.check import check as check_folder

    try:
        report = check_folder(extracts, input_format, as_of.date() if as_of else None, rules)
    except B12ScreenError as exc:
        _fail(exc)
    for line in report.lines:
        click.echo(line)
    if report.problems:
        click.echo(
            f"{len(report.problems)} problem(s): a run would not screen this folder as expected",
            err=True,
        )
    sys.exit(report.exit_code)


def _by_priority(worklist: dict) -> str:
    """'12 urgent, 3 high, 40 routine': the record's counts in its own (the rules') order."""
    return ", ".join(f"{n} {p}" for p, n in worklist.items() if p != "total")


def _summary(record: dict, out: Path) -> None:
    counts = record["counts"]
    wl = counts["worklist"]
    quarantined = sum(counts["rows_quarantined"].values())
    chosen = (record.get("input_format") or {}).get("chosen")
    if chosen:
        click.echo(chosen)
    left_out = counts.get("patients_not_screened", {})
    unscreened = sum(left_out.values())
    why = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in left_out.items() if n)
    click.echo(
        f"run {record['run_id']} as of {record['as_of']}: "
        f"{counts['patients'] - unscreened} patients screened"
        + (f" ({unscreened} more not screened: {why})" if unscreened else "")
        + ", "
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
@click.option(
    "--format",
    "input_format",
    type=click.Choice(["canonical", "omop", "fhir", "synthea"]),
    default="canonical",
    show_default=True,
    help="Write the population as the canonical extracts, or as OMOP CDM tables, FHIR R4 "
    "NDJSON or Synthea CSV (made from the canonical files, kept in canonical/), and screen that.",
)
def demo(out: Path, n_patients: int, as_of, seed: int, input_format: str) -> None:
    """Make a synthetic population with planted cases, screen it, and say where the results are."""
    from pipeline.demo import generate_population
    from pipeline.demo.formats import write_format
    from pipeline.progress import Progress
    from pipeline.runner import RunConfig, run_screening

    extracts = out / "extracts"
    canonical = extracts if input_format == "canonical" else out / "canonical"
    try:
        generate_population(
            canonical,
            n_patients=n_patients,
            as_of=as_of.date(),
            seed=seed,
            truth_dir=out / "truth",
            progress=Progress(None),
        )
        if input_format != "canonical":
            write_format(canonical, input_format, extracts)
        result = run_screening(
            RunConfig(
                extracts=extracts,
                out=out / "run",
                as_of=as_of.date(),
                db=out / "b12screen.duckdb",
                progress=None,
                input_format=input_format,
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
        f"next: a period report (add earlier dates with '{command_prefix()} backfill'):\n"
        f"  {command_prefix()} report --db {shlex.quote(str(out / 'b12screen.duckdb'))} "
        f"--from {day} --to {day} --out {shlex.quote(str(out / 'report'))}"
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
    default=None,
    help="DuckDB file holding the ingested data. Default: paths.database, else b12screen.duckdb.",
)
@click.option("--rules", default=None, help="Rules file or profile (default: guidance).")
@_LOG_FILE_OPTION
@_CONFIG_OPTION
def backfill(
    date_from, date_to, every: int, out: Path, db: Path | None, rules: str | None, log_file
) -> None:
    """Replay past as-of dates from the data already in the database, for audits.

    \b
    No extract is read: each date is screened with what the database holds, counting only
    results, orders and diagnoses dated on or before it (corrected results are replayed with
    their corrected value). Each run is recorded in the registry like a nightly one.
    """
    from datetime import timedelta

    from pipeline.runner import RunConfig, run_screening

    settings = _settings({"db": db, "rules": rules, "log_file": log_file})
    db, rules = settings["db"], settings["rules"]
    _log_to_file(settings["log_file"])
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
                    memory_limit=settings["memory_limit"],
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
    default=None,
    help="DuckDB file of the runs (opened read-only). Default: paths.database, else "
    "b12screen.duckdb.",
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
@_CONFIG_OPTION
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

    settings = _settings({"db": db, "rules": rules})
    db, rules = settings["db"], settings["rules"]
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
    default=None,
    help="DuckDB file of the runs. Default: paths.database, else b12screen.duckdb.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Newest runs to list.",
)
@_CONFIG_OPTION
def runs(db: Path | None, limit: int) -> None:
    """List the runs recorded in the database: when, as of which date, with what result."""
    from pipeline.registry import list_runs

    db = _settings({"db": db})["db"]
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
@_CONFIG_OPTION
def catalogue(rules: str | None, out: Path | None, semantics: bool) -> None:
    """Print the criteria catalogue (ids, roles, rules, values and their sources) from a rules file."""
    from pipeline.reports.catalogue import render_markdown, render_semantics
    from pipeline.rules import load_rules

    rules = _settings({"rules": rules})["rules"]
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


@cli.group("config")
def config_group() -> None:
    """The site config: what a run would use, and where each value comes from."""


@config_group.command("show")
@_CONFIG_OPTION
def config_show() -> None:
    """Print every setting a run would use and its source (flag, env, config file, default).

    \b
    Precedence: a flag > a B12SCREEN_* variable > the config file > the default. The config
    file is --config, else $B12SCREEN_CONFIG, else ./b12screen.toml. Alert URLs are shown by
    scheme only (they may hold a password).
    """
    from pipeline.config import show

    for line in show(_settings()):
        click.echo(line)


@cli.command()
@click.argument("folder", type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--timezone",
    default="UTC",
    show_default=True,
    help="The site's time zone (IANA name, e.g. Europe/London): the schedule runs in it.",
)
@click.option(
    "--nightly",
    default="02:30",
    show_default=True,
    help="Time of the nightly run (HH:MM, in the time zone).",
)
def init(folder: Path, timezone: str, nightly: str) -> None:
    """Set up a site in FOLDER: config, rules profile, Prefect deployments.

    \b
    Writes FOLDER/b12screen.toml (folders, rules, time zone, schedule, memory, alerts),
    FOLDER/rules/site.toml (extends the guidance profile; comments say what to change),
    FOLDER/extracts/ and FOLDER/prefect.yaml (deployments made from the config). An existing
    config or rules file is kept; prefect.yaml is made again from the config, so run init
    again after changing the schedule or the time zone.
    """
    from pipeline.config import hh_mm
    from pipeline.site import WORK_POOL, init_site

    try:
        nightly = hh_mm(nightly)
    except ValueError as exc:
        _fail(B12ScreenError(f"--nightly: {exc}"))
    try:
        site = init_site(folder, timezone=timezone, nightly=nightly)
    except B12ScreenError as exc:
        _fail(exc)
    for path in site.written:
        click.echo(f"wrote {path}")
    for path in site.kept:
        click.echo(f"kept  {path} (already there)")
    b12 = command_prefix()
    prefect = _venv_tool("prefect")
    config = shlex.quote(str(site.config))
    prefect_file = shlex.quote(str(site.prefect_file))
    click.echo(
        "\n".join(
            [
                "",
                f"next: edit {site.config} (folders, alerts) and {site.folder / 'rules' / 'site.toml'}, then",
                f"  {b12} --config {config} config show",
                f"  {b12} --config {config} run     # one run by hand, as of today",
                "schedule it with Prefect (deploy/systemd/ keeps the server and worker running):",
                f"  export {PREFECT_ENV}   # in each shell",
                "  # shell 1, kept running:",
                f"  {prefect} server start --host 127.0.0.1 --port 4200",
                "  # shell 2: the pool, the deployments, then the worker (kept running):",
                f"  {prefect} work-pool create {WORK_POOL} --type process",
                f"  {prefect} --no-prompt deploy --all --prefect-file {prefect_file}",
                f"  {prefect} worker start --pool {WORK_POOL}",
                "  # shell 3: a run now (the schedule runs it every night):",
                f"  {prefect} deployment run 'nightly_screening/nightly-screening' --watch",
            ]
        )
    )


def _register_bench() -> None:
    """Developer commands: runnable by name (docs/benchmarks.md), hidden from the user's help."""
    from pipeline.bench.formats import bench_formats
    from pipeline.bench.full import bench
    from pipeline.bench.incremental import bench_incremental
    from pipeline.bench.shards import bench_shards
    from pipeline.bench.validation import bench_validation

    for command in (bench, bench_incremental, bench_formats, bench_validation, bench_shards):
        command.hidden = True
        cli.add_command(command)


_register_bench()


def main() -> None:
    cli(prog_name="b12screen")


if __name__ == "__main__":
    main()
