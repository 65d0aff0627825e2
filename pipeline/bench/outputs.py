"""``python -m pipeline.bench.outputs``: time the output stage by itself, repeatedly, on a
database a run has already filled (docs/benchmarks.md).

    python -m pipeline.bench.outputs --db /tmp/x/b.duckdb --as-of 2026-11-24 --repeat 3

Screens what the database holds (a backfill: no new extracts) once, then runs
``build_outputs`` ``--repeat`` times on the same screened tables (the worklist and resolved
marts, which it builds, built again each time), each into a fresh folder,
and rolls the transaction back at the end, so the database is left as it was. Each step of the
stage is timed in wall seconds and in CPU seconds (``getrusage``, this process and its
children), since a shared machine makes wall times noisy.
"""

from __future__ import annotations

import json
import resource
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import click


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _timed(module: Any, name: str, bucket: dict[str, list[float]]) -> None:
    """Replace module.name with a wrapper adding its wall and CPU seconds to bucket[name]."""
    original: Callable = getattr(module, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        wall, cpu = time.perf_counter(), _cpu()
        try:
            return original(*args, **kwargs)
        finally:
            entry = bucket.setdefault(name, [0.0, 0.0])
            entry[0] += time.perf_counter() - wall
            entry[1] += _cpu() - cpu

    setattr(module, name, wrapper)


def measure(db: Path, as_of: date, repeat: int, memory_limit: str | None) -> dict[str, Any]:
    from pipeline import runner
    from pipeline.publish import outputs
    from pipeline.reports import audit

    bucket: dict[str, list[float]] = {}
    for name in ("build_record", "write_all", "_write_xlsx", "copy_csv", "worklist_frame"):
        _timed(outputs, name, bucket)
    for name in ("collect", "record", "audit_document", "write_audit"):
        _timed(audit, name, bucket)
    _timed(runner.ScreeningRun, "_record_history", bucket)
    out = Path(tempfile.mkdtemp(prefix="b12-outputs-bench-"))
    run = runner.ScreeningRun(
        runner.RunConfig(
            extracts=None, out=out, as_of=as_of, db=db, memory_limit=memory_limit, progress=False
        )
    )
    results: list[dict[str, Any]] = []
    try:
        for stage in ("prepare", "ingest", "validate", "screen"):
            getattr(run, stage)()
        before = set(run.models.built)
        for _ in range(repeat):
            bucket.clear()
            run.models.built = set(before)  # the worklist and resolved marts built again
            wall, cpu = time.perf_counter(), _cpu()
            run.build_outputs()
            figures = {
                "build_outputs": [round(time.perf_counter() - wall, 3), round(_cpu() - cpu, 3)]
            }
            figures |= {k: [round(v[0], 3), round(v[1], 3)] for k, v in bucket.items()}
            figures["worklist_rows"] = run.record["counts"]["worklist"]["total"]
            results.append(figures)
            click.echo(json.dumps(figures))
            shutil.rmtree(run.staging_dir)
    finally:
        run.staging_dir = None
        if run.con is not None:
            run.con.execute("ROLLBACK")
        run.close()
        shutil.rmtree(out, ignore_errors=True)
    return {"db": str(db), "as_of": as_of.isoformat(), "runs": results}


@click.command()
@click.option("--db", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True)
@click.option("--as-of", type=click.DateTime(["%Y-%m-%d"]), required=True)
@click.option("--repeat", type=int, default=3, show_default=True)
@click.option("--memory-limit", default="3GB", show_default=True)
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path))
def main(db: Path, as_of, repeat: int, memory_limit: str, json_path: Path | None) -> None:
    """Time build_outputs (wall s, CPU s) on a filled database; figures as JSON lines."""
    result = measure(db, as_of.date(), repeat, memory_limit)
    if json_path is not None:
        json_path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
