"""Input formats against canonical CSV: what reading OMOP, FHIR or Synthea costs.

    b12screen bench-formats --patients 30000 --dir bench-formats --json formats.json

1. The demo population (pipeline/demo) of ``--patients`` is written as the canonical extracts
   and, from them, as OMOP CDM, FHIR R4 NDJSON and Synthea CSV (pipeline/demo/formats.py).
2. Each folder is screened by a full run into a fresh database; the figures are the runner's
   own stage timings: ingest, validate (staging, pandera, merge) and their sum, each format's
   sum against canonical's (the issue's aim: within 1.5x).
3. FHIR Observations alone, read three ways on the same file: the adapter as it runs (every
   line read as text with its number, a line that is not JSON quarantined, then the labs
   adapter's explicit json_transform), and two candidates for a faster path, timed the same
   way (rows materialised in a temp table): DuckDB's ``read_json`` with explicit columns
   (keeps no line numbers, and a broken line fails the whole read), and one
   ``try(json_transform(...))`` per line (line numbers kept, a broken line NULL); and
   ``read_json`` with ``ignore_errors`` (a broken line a row of NULLs in its place) checked
   against the file's line count, which it matches unless the file has blank lines (which
   read_json skips, shifting the numbers after them). The aim is 200k Observations a second.

Timings on a shared machine vary with what else runs: say so beside any figure.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
from datetime import date
from pathlib import Path
from typing import Any

import click
import duckdb

from pipeline.runner import RunConfig, run_screening

FORMATS = ("canonical", "omop", "fhir", "synthea")


def _run(extracts: Path, workdir: Path, fmt: str, as_of: date) -> dict[str, Any]:
    db = workdir / f"{fmt}.duckdb"
    start = time.perf_counter()
    result = run_screening(
        RunConfig(extracts, workdir / f"{fmt}-out", as_of, db, progress=False, input_format=fmt)
    )
    wall = time.perf_counter() - start
    t = result.record["timings_s"]
    rows = result.record["counts"]["rows_read"]
    for p in (db, db.with_suffix(".duckdb.wal")):
        p.unlink(missing_ok=True)
    shutil.rmtree(workdir / f"{fmt}-out", ignore_errors=True)
    return {
        "rows_read": rows,
        "rows_total": int(sum(rows.values())),
        "ingest_s": t["ingest"],
        "validate_s": t["validate"],
        "ingest_plus_validate_s": round(t["ingest"] + t["validate"], 2),
        "screen_s": t["screen"],
        "wall_s": round(wall, 2),
        "worklist": result.record["counts"]["worklist"]["total"],
    }


_OBSERVATION = (
    '{"resourceType": "VARCHAR", "id": "VARCHAR", "status": "VARCHAR",'
    ' "category": [{"coding": [{"system": "VARCHAR", "code": "VARCHAR"}]}],'
    ' "code": {"coding": [{"system": "VARCHAR", "code": "VARCHAR", "display": "VARCHAR"}],'
    ' "text": "VARCHAR"}, "subject": {"reference": "VARCHAR"},'
    ' "effectiveDateTime": "VARCHAR", "effectivePeriod": {"start": "VARCHAR"},'
    ' "valueQuantity": {"value": "VARCHAR", "comparator": "VARCHAR", "unit": "VARCHAR",'
    ' "code": "VARCHAR"}, "valueString": "VARCHAR",'
    ' "referenceRange": [{"low": {"value": "VARCHAR"}, "high": {"value": "VARCHAR"}}]}'
)
_OBSERVATION_COLUMNS = (
    "{resourceType: 'VARCHAR', id: 'VARCHAR', status: 'VARCHAR',"
    " category: 'STRUCT(coding STRUCT(system VARCHAR, code VARCHAR)[])[]',"
    " code: 'STRUCT(coding STRUCT(system VARCHAR, code VARCHAR, display VARCHAR)[], text VARCHAR)',"
    " subject: 'STRUCT(reference VARCHAR)', effectiveDateTime: 'VARCHAR',"
    " effectivePeriod: 'STRUCT(start VARCHAR)',"
    " valueQuantity: 'STRUCT(value VARCHAR, comparator VARCHAR, unit VARCHAR, code VARCHAR)',"
    " valueString: 'VARCHAR',"
    " referenceRange: 'STRUCT(low STRUCT(value VARCHAR), high STRUCT(value VARCHAR))[]'}"
)


def _timed(con: duckdb.DuckDBPyConnection, sql: str, table: str) -> tuple[int, float]:
    start = time.perf_counter()
    con.execute(sql)
    ((n,),) = con.execute(f"SELECT count(*) FROM {table}").fetchall()
    return int(n), time.perf_counter() - start


def fhir_observation_paths(folder: Path) -> dict[str, Any]:
    """Observations a second, read three ways (module docstring), each on a fresh connection."""
    from pipeline.read.adapters import _adapt, _extra, _load_fhir, _wanted, discover_format
    from pipeline.read.ingest import QUARANTINE_DDL
    from pipeline.sqltext import literal_files

    only = folder.parent / "fhir-observations"
    shutil.rmtree(only, ignore_errors=True)
    only.mkdir()
    os.link(folder / "Observation.ndjson", only / "Observation.ndjson")
    out: dict[str, Any] = {}
    found = discover_format(only, "fhir")
    with literal_files([f.path for f in found.files]) as (path,):
        # 1. as the adapter runs: lines with numbers (quarantine), then the labs adapter
        con = duckdb.connect()
        con.execute(QUARANTINE_DDL)
        from pipeline.read.adapters import adapter_sql

        con.execute(adapter_sql("common", "macros"))
        start = time.perf_counter()
        _load_fhir(con, found, {found.files[0].path: path}, 1)
        lines_s = time.perf_counter() - start
        _adapt(con, "fhir", "labs", [*_wanted("labs"), *_extra("labs")])
        ((n,),) = con.execute("SELECT count(*) FROM _adapted_labs").fetchall()
        total = time.perf_counter() - start
        out["adapter_as_run"] = {
            "rows": int(n),
            "s": round(total, 2),
            "lines_s": round(lines_s, 2),
            "rows_per_s": round(n / total),
        }
        con.close()
        lines = (
            f"SELECT row_number() OVER ()::BIGINT AS row_number, line FROM read_csv({path}, "
            "columns = {'line': 'VARCHAR'}, header = false, auto_detect = false, "
            "delim = '\\x01', quote = '', escape = '', strict_mode = false)"
        )
        for label, sql in (
            (
                "read_json_explicit_columns",
                f"CREATE TEMP TABLE x AS SELECT row_number() OVER ()::BIGINT AS row_number, * "
                f"FROM read_json({path}, format = 'newline_delimited', "
                f"columns = {_OBSERVATION_COLUMNS})",
            ),
            (
                "lines_then_one_try_json_transform",
                f"CREATE TEMP TABLE x AS SELECT row_number, r FROM (SELECT row_number, "
                f"try(json_transform(line, '{_OBSERVATION}')) AS r FROM ({lines})) "
                "WHERE r.resourceType = 'Observation'",
            ),
        ):
            con = duckdb.connect()
            n, s = _timed(con, sql, "x")
            out[label] = {"rows": n, "s": round(s, 2), "rows_per_s": round(n / s)}
            con.close()
        # 4. read_json keeping its line numbers: ignore_errors leaves a line that is not JSON
        # as a row of NULLs in its place, but read_json skips blank lines; the numbers are the
        # lines' only when the file's line count (its newlines, counted in Python) is the
        # row count, else the reader falls back to path 1
        con = duckdb.connect()
        start = time.perf_counter()
        newlines, last = 0, b"\n"
        with (only / "Observation.ndjson").open("rb") as f:
            while block := f.read(1 << 24):
                newlines += block.count(b"\n")
                last = block[-1:]
        lines_in_file = newlines + (last != b"\n")
        n, _ = _timed(
            con,
            f"CREATE TEMP TABLE x AS SELECT row_number() OVER ()::BIGINT AS row_number, * "
            f"FROM read_json({path}, format = 'newline_delimited', ignore_errors = true, "
            f"columns = {_OBSERVATION_COLUMNS})",
            "x",
        )
        s = time.perf_counter() - start
        out["read_json_with_line_check"] = {
            "rows": n,
            "s": round(s, 2),
            "rows_per_s": round(n / s),
            "line_numbers_exact": n == lines_in_file,
        }
        con.close()
    shutil.rmtree(only, ignore_errors=True)
    return out


@click.command("bench-formats")
@click.option(
    "--patients",
    type=click.IntRange(min=200),
    default=30_000,
    show_default=True,
    help="Patients of the demo population (about 8.5 lab results each).",
)
@click.option(
    "--dir",
    "workdir",
    type=click.Path(path_type=Path),
    default=Path("bench-formats"),
    show_default=True,
    help="Scratch folder for the extracts and databases (removed after).",
)
@click.option(
    "--as-of",
    "as_of",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default="2026-11-24",
    show_default=True,
    help="As-of date of the population and the runs.",
)
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None)
def bench_formats(patients: int, workdir: Path, as_of, json_out: Path | None) -> None:
    """Time ingest + validate of the demo population as canonical, OMOP, FHIR and Synthea,
    and FHIR Observations read three ways."""
    from pipeline.demo import generate_population
    from pipeline.demo.formats import write_format

    as_of = as_of.date()
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    figures: dict[str, Any] = {
        "patients": patients,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "duckdb": duckdb.__version__,
    }
    click.echo(f"writing the demo population of {patients:,} in each format …", err=True)
    start = time.perf_counter()
    canonical = workdir / "canonical"
    generate_population(canonical, n_patients=patients, as_of=as_of, truth_dir=workdir / "truth")
    folders = {"canonical": canonical}
    for fmt in FORMATS[1:]:
        folders[fmt] = write_format(canonical, fmt, workdir / fmt)
    figures["write_s"] = round(time.perf_counter() - start, 2)
    runs = {}
    for fmt in FORMATS:
        click.echo(f"{fmt}: a full run …", err=True)
        runs[fmt] = _run(folders[fmt], workdir, fmt, as_of)
    base = runs["canonical"]["ingest_plus_validate_s"]
    for r in runs.values():
        r["vs_canonical"] = round(r["ingest_plus_validate_s"] / base, 2) if base else None
    figures["runs"] = runs
    click.echo("fhir: Observations read three ways …", err=True)
    figures["fhir_observations"] = fhir_observation_paths(folders["fhir"])
    figures["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    shutil.rmtree(workdir, ignore_errors=True)
    click.echo(json.dumps(figures, indent=2))
    if json_out:
        json_out.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
