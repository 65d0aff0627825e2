"""Incremental against full ingest: what one new night costs in a database holding history.

    b12screen bench-incremental --extracts bench-data/extracts --dir bench-incremental

1. A full run ingests every lab file of ``--extracts`` (e.g. the 50M rows ``b12screen bench``
   generates) into a fresh database.
2. A night's file of ``--new-rows`` results (new ids, dated the day after) is made from a sample
   of the history with DuckDB, and a second run ingests only it into the same database.
3. The same night is ingested into a database holding a tenth of the history, to show how the
   cost of a night depends (or not) on the size of what is stored.

Each run is timed stage by stage (the runner's own timings); peak RSS is the process maximum.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import time
from datetime import date, timedelta
from pathlib import Path

import click
import duckdb

from pipeline.runner import RunConfig, run_screening


def _run(extracts: Path, out: Path, db: Path, as_of: date) -> dict:
    start = time.perf_counter()
    result = run_screening(RunConfig(extracts, out, as_of, db, progress=False))
    timings = result.record["timings_s"]
    merged = result.record["counts"]["merged"]["labs"]
    return {
        "wall_s": round(time.perf_counter() - start, 2),
        "ingest_s": timings["ingest"],
        "validate_merge_s": timings["validate"],
        "ingest_plus_validate_s": round(timings["ingest"] + timings["validate"], 2),
        "screen_s": timings["screen"],
        "labs_new": merged["new"],
        "labs_resent": merged["resent"],
    }


def _night_file(history: list[Path], folder: Path, rows: int, day: date) -> Path:
    """A night's labs: a sample of history re-dated to ``day`` with fresh result ids."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "labs_night.parquet"
    files = ", ".join(f"'{p.as_posix()}'" for p in history)
    duckdb.sql(
        f"""
        COPY (
            SELECT * REPLACE (
                '{day.isoformat()} 08:00:00'::TIMESTAMP AS collected_at,
                'night-' || row_number() OVER () AS result_id)
            FROM read_parquet([{files}]) USING SAMPLE {rows} ROWS (reservoir, 7)
        ) TO '{target.as_posix()}' (FORMAT parquet)
        """
    )
    return target


def _stage_folder(base: Path, name: str, files: list[Path]) -> Path:
    folder = base / name
    folder.mkdir(parents=True, exist_ok=True)
    for f in files:
        # a hard link (or a copy across file systems): a run does not follow symbolic links
        # out of its extracts folder
        link = folder / f.name
        if not link.exists():
            try:
                os.link(f.resolve(), link)
            except OSError:
                shutil.copy2(f, link)
    return folder


@click.command("bench-incremental")
@click.option(
    "--extracts",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="A folder of patients*.parquet and labs_*.parquet (e.g. from b12screen bench).",
)
@click.option(
    "--dir",
    "workdir",
    type=click.Path(path_type=Path),
    default=Path("bench-incremental"),
    show_default=True,
    help="Scratch folder for the databases and outputs (removed after).",
)
@click.option(
    "--new-rows",
    type=click.IntRange(min=1),
    default=50_000,
    show_default=True,
    help="Lab results in the new night's file.",
)
@click.option(
    "--as-of",
    "as_of",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default="2026-11-24",
    show_default=True,
    help="As-of date of the full run; the night is the day after.",
)
@click.option(
    "--json",
    "json_out",
    type=click.Path(path_type=Path),
    default=None,
    help="Write the figures here.",
)
def bench_incremental(
    extracts: Path, workdir: Path, new_rows: int, as_of, json_out: Path | None
) -> None:
    """Time a full ingest, then one new night into that database and into a smaller one."""
    as_of = as_of.date()
    night = as_of + timedelta(days=1)
    patients = sorted(extracts.glob("patients*"))
    labs = sorted(extracts.glob("labs_*.parquet"))
    if not patients or not labs:
        raise click.ClickException(f"{extracts} holds no patients* and labs_*.parquet files")
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    night_file = _night_file(labs, workdir / "night", new_rows, night)
    figures: dict = {"history_files": len(labs), "new_rows": new_rows}
    for label, history in (("full", labs), ("tenth", labs[: max(1, len(labs) // 10)])):
        db = workdir / f"{label}.duckdb"
        first = _stage_folder(workdir, f"{label}-history", patients + history)
        click.echo(f"{label}: ingesting {len(history)} history files …", err=True)
        figures[f"{label}_history_run"] = _run(first, workdir / f"{label}-out", db, as_of)
        with duckdb.connect(str(db), read_only=True) as con:
            figures[f"{label}_stored_rows"] = con.execute(
                "SELECT count(*) FROM lab_results"
            ).fetchone()[0]
        click.echo(f"{label}: ingesting one night of {new_rows:,} rows …", err=True)
        figures[f"{label}_night_run"] = _run(night_file.parent, workdir / f"{label}-out", db, night)
        for p in (db, workdir / f"{label}.duckdb.wal"):
            p.unlink(missing_ok=True)
    figures["peak_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    shutil.rmtree(workdir, ignore_errors=True)
    click.echo(json.dumps(figures, indent=2))
    if json_out:
        json_out.write_text(json.dumps(figures, indent=2) + "\n")
