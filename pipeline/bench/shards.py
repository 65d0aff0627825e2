"""One process against N shards on 1 and on N local Dask workers (issue 14; docs/scale-out.md).

    b12screen bench-shards --extracts DIR [--shards 2] [--dir bench-shards]

After a warm-up run (not reported: imports and first-use costs), three fresh runs of the same
folder, one after another in this process: on one node, then in
``--shards`` shards on a LocalCluster of one worker, then of ``--shards`` workers (threads in
this process; each shard's DuckDB gets its share of the cores and of the memory limit). Each
line gives the wall time, the CPU seconds of this process, the run's own stage timings, and
whether its CSV outputs equal the single-node run's (up to the run id). The sharded runs'
wall time includes starting Prefect's temporary server unless PREFECT_API_URL names a running
one (about 6 s here): ``run_s``, the sum of the stage timings, leaves it out.

On a 2-core machine shared with other work, read the figures as an upper bound of the overhead
of sharding, not as the speed-up of a real cluster.
"""

from __future__ import annotations

import json
import re
import resource
import shutil
import time
from datetime import date
from pathlib import Path

import click

from pipeline.runner import RunConfig, RunResult, run_screening
from pipeline.scale.cluster import require_cluster_extra

_RUN_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{8}")
_COMPARED = ("worklist.csv", "quarantine.csv", "resolved.csv")


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _outputs(result: RunResult) -> dict[str, str]:
    current = result.out / "current"
    return {n: _RUN_ID.sub("", (current / n).read_text(encoding="utf-8")) for n in _COMPARED}


@click.command("bench-shards")
@click.option("--extracts", type=click.Path(path_type=Path, exists=True), required=True)
@click.option("--dir", "work", type=click.Path(path_type=Path), default=Path("bench-shards"))
@click.option("--as-of", "as_of", type=click.DateTime(["%Y-%m-%d"]), default=None)
@click.option("--shards", type=click.IntRange(min=2), default=2, show_default=True)
@click.option("--memory-limit", default="3GB", show_default=True)
def bench_shards(extracts: Path, work: Path, as_of, shards: int, memory_limit: str) -> None:
    """One node against N shards on 1 and on N local Dask workers."""
    require_cluster_extra()
    from flows.sharded import run_on_cluster

    day = as_of.date() if as_of else date.today()
    shutil.rmtree(work, ignore_errors=True)

    def config(name: str) -> RunConfig:
        return RunConfig(
            extracts,
            work / name / "out",
            day,
            work / name / "b12.duckdb",
            memory_limit=memory_limit,
        )

    ways = {
        "single node": lambda: run_screening(config("single")),
        f"{shards} shards, 1 worker": lambda: run_on_cluster(
            config("one-worker"), shards, local_workers=1
        ),
        f"{shards} shards, {shards} workers": lambda: run_on_cluster(
            config("workers"), shards, local_workers=shards
        ),
    }
    run_screening(config("warm-up"))  # imports and first-use costs, paid before the clock starts
    reference = None
    for name, run in ways.items():
        cpu, start = _cpu_s(), time.perf_counter()
        result = run()
        wall, cpu = time.perf_counter() - start, _cpu_s() - cpu
        outputs = _outputs(result)
        reference = reference or outputs
        timings = result.record["timings_s"]
        line = {
            "run": name,
            "wall_s": round(wall, 2),
            "cpu_s": round(cpu, 2),
            "run_s": round(sum(timings.values()), 2),
            "stages_s": timings,
            "worklist": result.record["counts"]["worklist"]["total"],
            "same_outputs": outputs == reference,
        }
        click.echo(json.dumps(line))
