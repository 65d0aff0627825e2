"""The sharded screening flow (issue 14; docs/scale-out.md): one run, its shards as Prefect tasks
on a Dask cluster through prefect-dask's ``DaskTaskRunner``.

The flow holds no screening logic: pipeline/scale/coordinate.py runs the stages (prepare,
ingest, split, the shards, combine, outputs, publish) and is handed the function that screens
the shards; here that function maps the ``screen-shard`` task over them on Dask and waits for
every one before the first failure (if any) is raised, so no shard still writes into the work
folder when the coordinator removes it. A failed shard fails the run: the coordinator rolls
back, the stored state and the previous outputs stay.

* Tasks take paths and counts only (``ShardSpec``, ``ShardResult``): no patient value crosses
  Prefect or Dask; the rows go through Parquet files in the work folder, which every worker
  must see (``--shard-dir`` on shared storage for a real cluster).
* No caching, no result persistence: a shard's result is a few counts, read once.
* ``--cluster local`` is a ``distributed.LocalCluster`` of threads in this process (one per
  shard, at most one per core; each shard's DuckDB gets its share of the cores); ``tcp://host:port``
  is a running ``dask scheduler`` whose workers have b12screen (with the same rules) installed.

    python -m flows.sharded --extracts DIR --out DIR --as-of DATE --shards 4 [--cluster ADDR]
"""

from __future__ import annotations

import argparse
import logging
import os
from datetime import date
from pathlib import Path

from prefect import flow, task, unmapped
from prefect.cache_policies import NO_CACHE

from pipeline.errors import B12ScreenError
from pipeline.runner import RunConfig, RunResult
from pipeline.scale import shard
from pipeline.scale.cluster import LOCAL, check_cluster, require_cluster_extra, share_of
from pipeline.scale.coordinate import run_sharded

__all__ = ["run_on_cluster", "sharded_screening"]


class _OneLineFailures(logging.Filter):
    """As flows/nightly.py: a run's own failure (a ``B12ScreenError``, or a bug told in one
    line by ``ShardFailed`` or ``ShardedRunError``, whose traceback is in a failure log) is logged by
    Prefect without its traceback; Prefect's state line ("Finished in state Failed(...)")
    keeps the one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, B12ScreenError | shard.ShardFailed | ShardedRunError)


_ONE_LINE = _OneLineFailures()
for _name in ("prefect.task_runs", "prefect.flow_runs"):
    logging.getLogger(_name).addFilter(_ONE_LINE)


@task(name="screen-shard", cache_policy=NO_CACHE, persist_result=False)
def screen_shard(spec: shard.ShardSpec, kept: list[str]) -> shard.ShardResult:
    """Validate, merge and screen one shard on a Dask worker."""
    return shard.screen_shard(spec, kept)


def _on_dask(specs, kept: list[str]) -> list[shard.ShardResult]:
    futures = screen_shard.map(specs, unmapped(kept))
    futures.wait()  # every shard finished before a failure is raised
    return [f.result() for f in futures]


class ShardedRunError(RuntimeError):
    """An unexpected exception of the coordinator (a bug), told in one line without its
    message (which may carry data); ``original`` is the exception, whose traceback is in the
    run's failure log (as flows/nightly.py's StageError)."""

    def __init__(self, message: str, original: BaseException) -> None:
        super().__init__(message)
        self.original = original


@flow(name="sharded-screening", validate_parameters=False, persist_result=False)
def sharded_screening(
    config: RunConfig,
    shards: int,
    shard_dir: str | None = None,
    threads: int | None = None,
    shard_memory_limit: str | None = None,
) -> RunResult:
    """One screening run whose validate, merge and screen stages run on ``shards`` shards."""
    failure: dict[str, Path | None] = {}
    caller = _failure_hooks.get(id(config))

    def on_failure(run, exc: BaseException) -> None:
        failure["log"] = run.failure_log
        if caller is not None:
            caller(run, exc)

    try:
        return run_sharded(
            config,
            shards,
            _on_dask,
            shard_dir=Path(shard_dir) if shard_dir else None,
            threads=threads,
            shard_memory_limit=shard_memory_limit,
            on_failure=on_failure,
        )
    except (B12ScreenError, shard.ShardFailed):
        raise
    except Exception as exc:
        raise ShardedRunError(
            f"{type(exc).__name__} in the sharded run (unexpected: a bug); "
            f"traceback in {failure.get('log')}",
            exc,
        ) from None


_failure_hooks: dict[int, object] = {}  # the caller's on_failure, kept out of the parameters


def _task_runner(cluster: str, shards: int, memory_limit: str | None, workers: int | None = None):
    """The task runner, and each shard's DuckDB threads and memory limit: on a LocalCluster
    the shards running at once share this machine's cores and the run's memory limit; on a
    real cluster each worker's DuckDB takes its own machine's (the run's limit each)."""
    from prefect_dask import DaskTaskRunner

    if cluster == LOCAL:
        workers = workers or max(1, min(shards, os.cpu_count() or 1))
        runner = DaskTaskRunner(
            cluster_class="distributed.LocalCluster",
            cluster_kwargs={
                "n_workers": workers,
                "threads_per_worker": 1,
                "processes": False,  # in this process: no Prefect server per worker
                # no dashboard; the scheduler's own HTTP server on a free loopback port, not
                # 8787 (two runs on one machine would clash)
                "dashboard_address": None,
                "scheduler_kwargs": {"dashboard_address": "127.0.0.1:0"},
            },
        )
        return runner, max(1, (os.cpu_count() or 1) // workers), share_of(memory_limit, workers)
    return DaskTaskRunner(address=cluster), None, memory_limit


def run_on_cluster(
    config: RunConfig,
    shards: int,
    cluster: str = LOCAL,
    *,
    shard_dir: Path | None = None,
    on_failure=None,
    local_workers: int | None = None,
) -> RunResult:
    """``b12screen run --shards N --cluster ...``: the flow on the Dask cluster named.

    ``local_workers``: the LocalCluster's workers (default: one per shard, at most one per
    core); the bench compares 1 with 2."""
    require_cluster_extra()
    runner, threads, memory = _task_runner(
        check_cluster(cluster), shards, config.memory_limit, local_workers
    )
    if on_failure is not None:
        _failure_hooks[id(config)] = on_failure
    try:
        return sharded_screening.with_options(task_runner=runner)(
            config, shards, str(shard_dir) if shard_dir else None, threads, memory
        )
    finally:
        _failure_hooks.pop(id(config), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extracts", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--as-of", type=date.fromisoformat, default=date.today())
    parser.add_argument("--db", type=Path, default=Path("b12screen.duckdb"))
    parser.add_argument("--rules", default=None)
    parser.add_argument("--shards", type=int, required=True)
    parser.add_argument("--cluster", default=LOCAL)
    parser.add_argument("--shard-dir", type=Path, default=None)
    args = parser.parse_args()
    config = RunConfig(
        extracts=args.extracts, out=args.out, as_of=args.as_of, db=args.db, rules=args.rules
    )
    result = run_on_cluster(config, args.shards, args.cluster, shard_dir=args.shard_dir)
    print(f"run {result.run_id}: {result.out / 'current'}")


if __name__ == "__main__":
    main()
