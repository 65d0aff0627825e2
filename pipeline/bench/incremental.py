"""Incremental against full ingest: what one new night costs in a database holding history.

    b12screen bench-incremental --extracts bench-data/extracts --dir bench-incremental

1. A full run ingests every lab file of ``--extracts`` (e.g. the 50M rows ``b12screen bench``
   generates) into a fresh database.
2. A night's file of ``--new-rows`` results (new ids, dated the day after) is made from a sample
   of the history with DuckDB, with ``--corrected`` stored results sent again with a new value
   and ``--resent`` sent again unchanged, and a second run ingests only it into the same
   database.
3. With ``--verify`` (the default), one fresh run screens the history and the night together
   at the night's as-of date, and the night's flags must equal its flags: the kept state
   (pipeline/store/state.py) against a full recomputation.
4. The same night is ingested into two databases holding a tenth of the history, by a hash
   (so the tenth is one whatever the number of files): the whole history of a tenth of the
   patients ("tenth"), and a tenth of every patient's history ("sparse": the same patients),
   to show how the cost of a night depends (or not) on the size of what is stored.

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
        "labs_corrected": merged["corrected"],
    }


def _night_file(
    history: list[Path], folder: Path, rows: int, day: date, corrected: int = 0, resent: int = 0
) -> Path:
    """A night's labs: a sample of history re-dated to ``day`` with fresh result ids, plus
    ``corrected`` stored results sent again with their value halved (same result id: a
    correction) and ``resent`` stored results sent again unchanged."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "labs_night.parquet"
    files = ", ".join(f"'{p.as_posix()}'" for p in history)
    parts = [
        f"""SELECT * REPLACE (
                '{day.isoformat()} 08:00:00'::TIMESTAMP AS collected_at,
                'night-' || row_number() OVER () AS result_id)
            FROM read_parquet([{files}]) USING SAMPLE {rows} ROWS (reservoir, 7)"""
    ]
    with_id = f"(SELECT * FROM read_parquet([{files}]) WHERE result_id IS NOT NULL)"
    if corrected:
        parts.append(
            f"""SELECT * REPLACE (
                    CAST(round(TRY_CAST(value AS DOUBLE) / 2, 1) AS VARCHAR) AS value)
                FROM {with_id} USING SAMPLE {corrected} ROWS (reservoir, 11)"""
        )
    if resent:
        parts.append(f"SELECT * FROM {with_id} USING SAMPLE {resent} ROWS (reservoir, 13)")
    duckdb.sql(
        f"COPY ({' UNION ALL '.join(f'({q})' for q in parts)}) "
        f"TO '{target.as_posix()}' (FORMAT parquet)"
    )
    return target


def _same_flags(a: Path, b: Path) -> dict:
    """Rows of one flags.parquet not in the other (both ways), the run id and the provenance of
    a result sent twice left out: it is its first file across nights but its last copy within
    one run."""
    keep = "* EXCLUDE (run_id, source_file, row_number)"
    only = [
        duckdb.sql(
            f"SELECT count(*) FROM (SELECT {keep} FROM read_parquet('{x.as_posix()}') "
            f"EXCEPT ALL SELECT {keep} FROM read_parquet('{y.as_posix()}'))"
        ).fetchall()[0][0]
        for x, y in ((a, b), (b, a))
    ]
    rows = duckdb.sql(f"SELECT count(*) FROM read_parquet('{a.as_posix()}')").fetchall()[0][0]
    return {
        "flags": rows,
        "only_incremental": only[0],
        "only_full": only[1],
        "equal": only == [0, 0],
    }


# The smaller databases the night also goes into, each a tenth of the stored rows, by a hash:
# "tenth" keeps the whole history of a tenth of the patients (fewer patients, so fewer flags
# and shorter worklists too); "sparse" keeps a tenth of every patient's history (the same
# patients, a tenth of the results: what the store's size alone costs a night). In "sparse" most
# of the night's corrected and re-sent rows are not stored, so they count as new.
SMALLER = {
    "tenth": "hash(patient_id) % 10 = 0",
    "sparse": "hash(patient_id, result_id, collected_at) % 10 = 0",
}


def _tenth_of(history: list[Path], folder: Path, label: str = "tenth") -> list[Path]:
    """A tenth of the history (:data:`SMALLER`), as one file."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"labs_{label}.parquet"
    files = ", ".join(f"'{p.as_posix()}'" for p in history)
    duckdb.sql(
        f"COPY (SELECT * FROM read_parquet([{files}]) WHERE {SMALLER[label]}) "
        f"TO '{target.as_posix()}' (FORMAT parquet)"
    )
    return [target]


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
    "--corrected",
    type=click.IntRange(min=0),
    default=None,
    help="Stored results sent again with a new value (default: a tenth of --new-rows).",
)
@click.option(
    "--resent",
    type=click.IntRange(min=0),
    default=None,
    help="Stored results sent again unchanged (default: a tenth of --new-rows).",
)
@click.option(
    "--verify/--no-verify",
    default=True,
    show_default=True,
    help="Also screen the history and the night in one fresh run and compare its flags.",
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
    extracts: Path,
    workdir: Path,
    new_rows: int,
    corrected: int | None,
    resent: int | None,
    verify: bool,
    as_of,
    json_out: Path | None,
) -> None:
    """Time a full ingest, then one new night (new results, corrections, re-sent rows) into that
    database and into a smaller one; with --verify, check that the night's flags equal those of
    one fresh run over the same files (the incremental path against a full recomputation)."""
    as_of = as_of.date()
    corrected = new_rows // 10 if corrected is None else corrected
    resent = new_rows // 10 if resent is None else resent
    night = as_of + timedelta(days=1)
    patients = sorted(extracts.glob("patients*"))
    labs = sorted(extracts.glob("labs_*.parquet"))
    if not patients or not labs:
        raise click.ClickException(f"{extracts} holds no patients* and labs_*.parquet files")
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    night_file = _night_file(labs, workdir / "night", new_rows, night, corrected, resent)
    figures: dict = {
        "history_files": len(labs),
        "new_rows": new_rows,
        "corrected_rows": corrected,
        "resent_rows": resent,
    }
    databases = [("full", labs)] + [
        (label, _tenth_of(labs, workdir / f"{label}-source", label)) for label in SMALLER
    ]
    for label, history in databases:
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
        figures[f"{label}_night_share_of_full_run"] = round(
            figures[f"{label}_night_run"]["wall_s"] / figures[f"{label}_history_run"]["wall_s"], 3
        )
        if verify and label == "full":
            click.echo("full: the history and the night in one fresh run, to compare …", err=True)
            fresh = _stage_folder(workdir, "fresh-extracts", [*patients, *history, night_file])
            _run(fresh, workdir / "fresh-out", workdir / "fresh.duckdb", night)
            figures["night_flags_equal_a_fresh_run"] = _same_flags(
                workdir / f"{label}-out" / "flags.parquet", workdir / "fresh-out" / "flags.parquet"
            )
            for p in (workdir / "fresh.duckdb", workdir / "fresh.duckdb.wal"):
                p.unlink(missing_ok=True)
        for p in (db, workdir / f"{label}.duckdb.wal"):
            p.unlink(missing_ok=True)
    figures["peak_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    shutil.rmtree(workdir, ignore_errors=True)
    click.echo(json.dumps(figures, indent=2))
    if json_out:
        json_out.write_text(json.dumps(figures, indent=2) + "\n")
