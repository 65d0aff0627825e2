"""Input formats against canonical CSV: what reading OMOP, FHIR or Synthea costs.

    b12screen bench-formats --patients 30000 --dir bench-formats --json formats.json

1. The demo population (pipeline/demo) of ``--patients`` is written as the canonical extracts
   and, from them, as OMOP CDM, FHIR R4 NDJSON and Synthea CSV (pipeline/demo/formats.py).
2. Each folder is screened by a full run into a fresh database, after an untimed run of 400
   patients that pays the process's first-call costs; the figures are the runner's
   own stage timings: ingest, validate (staging, pandera, merge) and their sum, each format's
   sum against canonical's (the issue's aim: within 1.5x).
3. FHIR Observations alone, read three ways on the same file, each on a fresh connection with
   its rows materialised, in wall and CPU seconds (getrusage, every DuckDB thread included):
   the reader as it runs (``read_json`` with the Observation structure and ``ignore_errors``,
   its line numbers checked against the file's line count, then the labs adapter); the line
   reader it falls back to (every line as text with its number, then ``json_transform`` with
   the same structure and the labs adapter: the reader before the fast path); and
   ``read_json`` with explicit columns alone, the ceiling (no line numbers, and a broken line
   fails the whole read). The aim is 200k Observations a second.

Timings on a shared machine vary with what else runs: say so beside any figure.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import resource
import shutil
import time
from datetime import date
from pathlib import Path
from typing import Any

import click
import duckdb

from pipeline.read.adapters import discover_format
from pipeline.runner import RunConfig, run_screening

FORMATS = ("canonical", "omop", "fhir", "synthea")


class _StageCPU(logging.Handler):
    """CPU seconds of each stage of a run: getrusage at each of the runner's "<stage>: done in"
    log lines (pipeline/progress.py), each stage's the difference from the one before."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.last = _cpu_s()
        self.cpu: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == "%s: done in %.1f s" and record.args:
            now = _cpu_s()
            self.cpu[str(record.args[0])] = round(now - self.last, 2)
            self.last = now


def _run(extracts: Path, workdir: Path, fmt: str, as_of: date) -> dict[str, Any]:
    db = workdir / f"{fmt}.duckdb"
    logger = logging.getLogger("b12screen")
    level, stages = logger.level, _StageCPU()
    logger.setLevel(logging.INFO)
    logger.addHandler(stages)
    start, cpu = time.perf_counter(), _cpu_s()
    stages.last = cpu
    try:
        result = run_screening(
            RunConfig(extracts, workdir / f"{fmt}-out", as_of, db, progress=False, input_format=fmt)
        )
    finally:
        logger.removeHandler(stages)
        logger.setLevel(level)
    wall, cpu_s = time.perf_counter() - start, _cpu_s() - cpu
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
        "ingest_cpu_s": stages.cpu.get("ingest"),
        "validate_cpu_s": stages.cpu.get("validate"),
        "ingest_plus_validate_cpu_s": round(
            stages.cpu.get("ingest", 0.0) + stages.cpu.get("validate", 0.0), 2
        ),
        "screen_s": t["screen"],
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu_s, 2),
        "worklist": result.record["counts"]["worklist"]["total"],
    }


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


def _cpu_s() -> float:
    """CPU seconds of this process so far, every DuckDB thread included (getrusage)."""
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


def _adapter(folder: Path, fast: bool) -> dict[str, Any]:
    """The FHIR reader and the labs adapter on ``folder`` (its Observation file alone), on a
    fresh connection: wall and CPU seconds, the read alone and the read with the adapter."""
    from pipeline.read.adapters import _adapt, _extra, _load_fhir, _wanted, adapter_sql
    from pipeline.read.ingest import QUARANTINE_DDL
    from pipeline.sqltext import literal_files

    found = discover_format(folder, "fhir")
    with literal_files([f.path for f in found.files]) as (path,):
        con = duckdb.connect()
        con.execute(QUARANTINE_DDL)
        con.execute(adapter_sql("common", "macros"))
        start, cpu = time.perf_counter(), _cpu_s()
        got, line_by_line, fused = _load_fhir(con, found, {found.files[0].path: path}, 1, fast)
        read = sum(rows - malformed for _, rows, malformed in got.values())
        read_s, read_cpu = time.perf_counter() - start, _cpu_s() - cpu
        _adapt(con, "fhir", "labs", [*_wanted("labs"), *_extra("labs")], None, "labs" in fused)
        ((n,),) = con.execute("SELECT count(*) FROM _adapted_labs").fetchall()
        total, total_cpu = time.perf_counter() - start, _cpu_s() - cpu
        con.close()
    return {
        "rows": int(n),
        "typed_rows": int(read),
        "lines_read_line_by_line": line_by_line,
        "read_s": round(read_s, 2),
        "read_cpu_s": round(read_cpu, 2),
        "s": round(total, 2),
        "cpu_s": round(total_cpu, 2),
        "rows_per_s": round(n / total),
        "rows_per_cpu_s": round(n / total_cpu) if total_cpu else None,
    }


def fhir_observation_paths(folder: Path) -> dict[str, Any]:
    """Observations a second, read three ways (module docstring), each on a fresh connection."""
    from pipeline.sqltext import literal_files

    only = folder.parent / "fhir-observations"
    shutil.rmtree(only, ignore_errors=True)
    only.mkdir()
    os.link(folder / "Observation.ndjson", only / "Observation.ndjson")
    out: dict[str, Any] = {
        # 1. as the adapter runs: read_json, its numbers checked, then the labs adapter
        "adapter_as_run": _adapter(only, fast=True),
        # 2. the line reader it falls back to (the reader before the fast path)
        "line_reader_fallback": _adapter(only, fast=False),
    }
    # 3. the ceiling: read_json with explicit columns, nothing else (no line numbers)
    with literal_files([only / "Observation.ndjson"]) as (path,):
        con = duckdb.connect()
        start, cpu = time.perf_counter(), _cpu_s()
        con.execute(
            f"CREATE TEMP TABLE x AS SELECT * FROM read_json({path}, "
            f"format = 'newline_delimited', columns = {_OBSERVATION_COLUMNS})"
        )
        ((n,),) = con.execute("SELECT count(*) FROM x").fetchall()
        s, cpu_s = time.perf_counter() - start, _cpu_s() - cpu
        con.close()
    out["read_json_explicit_columns"] = {
        "rows": int(n),
        "s": round(s, 2),
        "cpu_s": round(cpu_s, 2),
        "rows_per_s": round(n / s),
    }
    shutil.rmtree(only, ignore_errors=True)
    return out


@click.command("bench-formats")
@click.option(
    "--patients",
    type=click.IntRange(min=400),  # the demo population needs 338 (its planted cases + 100)
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
    # the first run in a process pays for imports and first calls (seconds): pay them untimed
    warm = workdir / "warm-up"
    generate_population(warm, n_patients=400, as_of=as_of, truth_dir=workdir / "warm-truth")
    _run(warm, workdir, "canonical", as_of)
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
