"""The nightly screening flow: one Prefect task per stage of pipeline.runner.ScreeningRun.

The flow holds no logic of its own; the CLI (`b12screen run`) and this flow run the same
stages. Tasks take the run object, so input hashing is switched off (NO_CACHE). A failure in
any stage rolls the run back and leaves the previous outputs in place, as in the CLI.

Run it locally without a server:  python -m flows.nightly --extracts DIR --out DIR --as-of DATE
"""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from pipeline.runner import RunConfig, ScreeningRun

_TASK = {"cache_policy": NO_CACHE}


@task(name="prepare", **_TASK)
def prepare(run: ScreeningRun) -> None:
    run.prepare()


@task(name="ingest", **_TASK)
def ingest(run: ScreeningRun) -> None:
    run.ingest()


@task(name="validate", **_TASK)
def validate(run: ScreeningRun) -> None:
    run.validate()


@task(name="screen", **_TASK)
def screen(run: ScreeningRun) -> None:
    run.screen()


@task(name="build-outputs", **_TASK)
def build_outputs(run: ScreeningRun) -> None:
    run.build_outputs()


@task(name="publish", **_TASK)
def publish(run: ScreeningRun) -> dict:
    return run.publish().record


@flow(name="nightly_screening", log_prints=False)
def nightly_screening(
    extracts: str,
    out: str,
    as_of: date | None = None,
    db: str = "b12screen.duckdb",
    rules: str | None = None,
) -> dict:
    """Screen the extracts in ``extracts`` and publish the outputs to ``out``.

    Returns the run's counts (no patient data), which Prefect stores as the flow result.
    """
    run = ScreeningRun(
        RunConfig(
            extracts=Path(extracts),
            out=Path(out),
            as_of=as_of or date.today(),
            db=Path(db),
            rules=rules,
            progress=False,
        )
    )
    try:
        prepare(run)
        ingest(run)
        validate(run)
        screen(run)
        build_outputs(run)
        record = publish(run)
    except BaseException as exc:
        run.fail(exc)
        raise
    return {"run_id": record["run_id"], "as_of": record["as_of"], "counts": record["counts"]}


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the nightly_screening flow once, locally.")
    parser.add_argument("--extracts", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--as-of", type=date.fromisoformat, default=None)
    parser.add_argument("--db", default="b12screen.duckdb")
    parser.add_argument("--rules", default=None)
    args = parser.parse_args()
    nightly_screening(args.extracts, args.out, args.as_of, args.db, args.rules)


if __name__ == "__main__":
    main()
