"""``b12screen bench-validation``: the pandera step of validate, by way of validating (issue 10).

    b12screen bench-validation --extracts /tmp/vb/x5m --dir /tmp/vb/work --repeats 3 --json v.json

1. Stages the lab rows of ``--extracts`` (a folder of patients*.parquet and labs_*.parquet, e.g.
   copies of the files ``b12screen bench`` generates) as a run does: ``ScreeningRun`` prepare and
   ingest, the patients validated and merged, then ``sql/staging/stg_labs.sql`` into
   ``incoming_labs``. Its validation columns are written to ``clean.parquet``, and a copy in
   which about ``--fail-share`` of the rows break one check each (a negative value, an unknown
   patient, an implausible value, a date after the as-of date, an unreadable value, no
   patient_id) to ``failing.parquet``.
2. Each way of validating runs in a fresh process per case and repeat: the parquet is loaded
   into a TEMP table ``incoming_labs`` (as staging leaves it, untimed), then the way produces
   the (_rid, reason) pairs of every failing row, grouped as stage_and_validate groups them.
   Wall seconds, CPU seconds (``getrusage``: user + system of the process, DuckDB's threads
   included), peak RSS (``ru_maxrss``, with the figure after the load beside it) and the RSS
   growth during the way (sampled every 20 ms, less the RSS at its start) are recorded; the medians of the repeats are reported, and each way's result is compared with
   that of the landed code (``polars``).

Ways: ``polars`` (``check_rows``, the loop of ``stage_and_validate`` as it is: Arrow batches
regrouped to 1M-row frames, the polars schema lazily with data checks, the failures grouped
into reasons by DuckDB), ``polars-<n>`` (the same with n-row frames), ``polars-b87ba3f`` (the
loop before ``check_rows``, kept here to compare: the failures grouped by polars, as text), and
``ibis`` (pandera's ibis backend over the DuckDB table in place; needs
``ibis-framework[duckdb]``, which the project does not depend on: run it from an environment
that has it).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from datetime import date, timedelta
from pathlib import Path

import click

GIB = 1 << 30
AS_OF = date(2026, 11, 24)


# -- 1. staging ------------------------------------------------------------------------------


def stage(extracts: Path, workdir: Path, as_of: date, fail_share: float) -> dict:
    """Stage the labs of ``extracts`` as a run does; write clean.parquet and failing.parquet."""
    from pipeline.resources import read_sql
    from pipeline.runner import RunConfig, ScreeningRun
    from pipeline.sqltext import ident
    from pipeline.store.merge import merge
    from pipeline.store.validate import stage_and_validate
    from schemas.extracts import validation_columns

    db = workdir / "stage.duckdb"
    for p in (db, db.with_name(db.name + ".wal")):
        p.unlink(missing_ok=True)
    run = ScreeningRun(RunConfig(extracts, workdir / "out", as_of, db, progress=False))
    try:
        run.prepare()
        read = run.ingest()
        con = run.con
        stage_and_validate(con, "patients", as_of, rows_read=read.rows_of("patients"))
        merge(con, "patients")
        start = time.perf_counter()
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE incoming_labs AS {read_sql('staging/stg_labs.sql')}"
        )
        staging_s = time.perf_counter() - start
        columns = ", ".join(ident(c) for c in validation_columns("labs"))
        clean = workdir / "clean.parquet"
        con.execute(f"COPY (SELECT {columns} FROM incoming_labs) TO '{clean}' (FORMAT parquet)")
        # Each band of about fail_share / 6 of the rows breaks one check.
        band = max(1, round(fail_share * 1000 / 6))
        h = "(hash(_rid) % 1000)"
        late = (as_of + timedelta(days=30)).isoformat()

        def within(k: int) -> str:
            return f"{h} >= {k * band} AND {h} < {(k + 1) * band}"

        failing = workdir / "failing.parquet"
        con.execute(
            f"""
            COPY (
                SELECT * REPLACE (
                    CASE WHEN {within(5)} THEN NULL ELSE patient_id END AS patient_id,
                    CASE WHEN {within(1)} THEN false ELSE is_known_patient END AS is_known_patient,
                    CASE WHEN {within(3)} THEN TIMESTAMP '{late} 08:00:00' ELSE collected_at END
                        AS collected_at,
                    CASE WHEN {within(0)} THEN -abs(value_number) - 1
                         WHEN {within(4)} THEN NULL ELSE value_number END AS value_number,
                    CASE WHEN {within(2)} AND analyte IS NOT NULL THEN analyte
                         ELSE implausible_analyte END AS implausible_analyte)
                FROM (SELECT {columns} FROM incoming_labs)
            ) TO '{failing}' (FORMAT parquet)
            """
        )
        analytes = dict(
            con.execute("SELECT analyte, label FROM rule_analytes ORDER BY analyte").fetchall()
        )
        ((rows,),) = con.execute("SELECT count(*) FROM incoming_labs").fetchall()
    finally:
        run.close()
    for p in (db, db.with_name(db.name + ".wal")):
        p.unlink(missing_ok=True)
    shutil.rmtree(workdir / "out", ignore_errors=True)
    meta = {"rows": rows, "analytes": analytes, "staging_s": round(staging_s, 2)}
    (workdir / "staged.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


# -- 2. the ways of validating ---------------------------------------------------------------


def _check_rows(con, analytes: dict, as_of: date, batch_rows: int):
    """The code as it is: pipeline.store.validate.check_rows, as stage_and_validate calls it;
    its result is the temp table reasons_labs (read after the clock stops)."""
    from pipeline.sqltext import ident
    from pipeline.store.validate import check_rows
    from schemas.extracts import MODELS, schema_for, validation_columns

    schema = schema_for("labs", as_of, analytes)
    columns = ", ".join(ident(c) for c in validation_columns("labs"))
    con.execute("DROP TABLE IF EXISTS reasons_labs")
    select = f"SELECT {columns} FROM incoming_labs"
    check_rows(con, select, schema, MODELS["labs"].__name__, batch_rows, "labs")
    return "reasons_labs"


def _python_grouping(con, analytes: dict, as_of: date, batch_rows: int):
    """The loop of stage_and_validate at b87ba3f (before check_rows): every (_rid, reason)
    pair kept in Python as text, grouped by polars."""
    import polars as pl

    from pipeline.sqltext import ident
    from pipeline.store.validate import _frames, failing_rows
    from schemas.extracts import MODELS, schema_for, validation_columns

    schema = schema_for("labs", as_of, analytes)
    columns = ", ".join(ident(c) for c in validation_columns("labs"))
    failures = []
    for frame in _frames(con.sql(f"SELECT {columns} FROM incoming_labs"), batch_rows):
        bad = failing_rows(frame, schema, MODELS["labs"].__name__)
        if bad.height:
            failures.append(bad)
    if not failures:
        return pl.DataFrame(schema={"_rid": pl.Int64, "reason": pl.String})
    return pl.concat(failures).group_by("_rid").agg(pl.col("reason").unique().sort().str.join("; "))


def _repeated_rids(t):
    from ibis import _

    return t.group_by("_rid").aggregate(n=_.count()).filter(_.n > 1)._rid


def _ibis_schema(analytes: dict, as_of: date):
    """LabRow for pandera's ibis backend, check for check.

    Two changes were needed to find the same failures (pandera 0.35, ibis 12): the ibis
    backend ignores a column's ``unique=True`` (no duplicate _rid is reported), and reports a
    ``not_nullable`` failure without any row index (``failure_case`` is the printed expression),
    so both are written as dataframe checks of the same names. DuckDB's TIMESTAMP is
    ``timestamp(6)``, which ``dt.timestamp`` does not match.
    """
    import ibis
    import ibis.expr.datatypes as dt
    import pandera.ibis as pa

    def frame_check(name: str, error: str, fn):
        return pa.Check(lambda d: fn(d.table), name=name, error=error)

    bound = ibis.timestamp(f"{(as_of + timedelta(days=1)).isoformat()} 00:00:00")
    columns = {
        "_rid": pa.Column(dt.int64, nullable=True),
        "patient_id": pa.Column(dt.string, nullable=True),
        "is_known_patient": pa.Column(dt.boolean, nullable=True),
        "collected_at": pa.Column(
            dt.Timestamp(scale=6),
            nullable=True,
            checks=[
                pa.Check(
                    lambda d: (d.table[d.key] < bound).fill_null(True),
                    name="not_after_as_of",
                    error="date after the as-of date",
                )
            ],
        ),
        "analyte": pa.Column(dt.string, nullable=True),
        "value_number": pa.Column(dt.float64, nullable=True),
        "value_canonical": pa.Column(dt.float64, nullable=True),
        "implausible_analyte": pa.Column(dt.string, nullable=True),
    }
    checks = [
        frame_check("rid_not_null", "_rid missing or unreadable", lambda t: t._rid.notnull()),
        frame_check(
            "rid_unique",
            "_rid: field_uniqueness",
            # a window here fails (pandera aggregates the check's output: "aggregate function
            # calls cannot contain window function calls"); a semi-join does not
            lambda t: t._rid.isnull() | ~t._rid.isin(_repeated_rids(t)),
        ),
        frame_check(
            "patient_id_not_null",
            "patient_id missing or unreadable",
            lambda t: t.patient_id.notnull(),
        ),
        frame_check(
            "collected_at_not_null",
            "collected_at missing or unreadable",
            lambda t: t.collected_at.notnull(),
        ),
        frame_check(
            "patient_known",
            "patient_id not in the patients extract",
            lambda t: t.patient_id.isnull() | t.is_known_patient.fill_null(False),
        ),
        frame_check(
            "value_readable",
            "value is not a number",
            lambda t: t.analyte.isnull() | t.value_number.notnull(),
        ),
        frame_check(
            "value_not_negative",
            "negative value",
            lambda t: t.analyte.isnull() | (t.value_number >= 0).fill_null(True),
        ),
        frame_check(
            "unit_fits_analyte",
            "unit does not fit the analyte",
            lambda t: t.analyte.isnull() | t.value_number.isnull() | t.value_canonical.notnull(),
        ),
    ]
    for aid, label in analytes.items():
        checks.append(
            frame_check(
                f"plausible_{aid}",
                f"value outside the physiologically possible range for {label}",
                lambda t, aid=aid: (t.implausible_analyte != aid).fill_null(True),
            )
        )
    return pa.DataFrameSchema(columns, checks=checks, name="LabRow")


def _ibis(con, analytes: dict, as_of: date):
    """pandera.ibis over incoming_labs in place, failures mapped back to _rid."""
    import ibis
    import pandas as pd
    import pandera.ibis as pa
    import polars as pl
    from pandera.config import ValidationDepth, config_context

    table = ibis.duckdb.from_connection(con).table("incoming_labs")
    schema = _ibis_schema(analytes, as_of)
    try:
        with config_context(validation_depth=ValidationDepth.SCHEMA_AND_DATA):
            schema.validate(table, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases: pd.DataFrame = exc.failure_cases
        whole = cases[cases["index"].isna()]
        if len(whole):
            problems = sorted(set(whole["check"]))
            raise RuntimeError(f"staged table does not match: {problems}") from None
        check = cases["check"].astype(str)
        # pandera.ibis reports column "failure_case" for every check, so a column check's
        # column is found by its text (each column check's text is unique here)
        column_of = {c.error: name for name, col in schema.columns.items() for c in col.checks}
        column = check.map(column_of)
        reason = check.where(cases["schema_context"] != "Column", column + ": " + check)
        # The index is the row's position in the table (the positional join ibis uses);
        # turn positions into _rid with one more query.
        found = pl.DataFrame(
            {"pos": cases["index"].astype("int64").to_numpy(), "reason": reason.to_list()}
        )
        con.register("_positions", found)
        try:
            pairs = con.sql(
                "SELECT t._rid, p.reason FROM _positions AS p "
                "JOIN (SELECT _rid, row_number() OVER () - 1 AS pos FROM incoming_labs) AS t "
                "USING (pos)"
            ).pl()
        finally:
            con.unregister("_positions")
        return pairs.group_by("_rid").agg(pl.col("reason").unique().sort().str.join("; "))
    return pl.DataFrame(schema={"_rid": pl.Int64, "reason": pl.String})


def _way(way: str, con, analytes: dict):
    if way == "ibis":
        return _ibis(con, analytes, AS_OF)
    if way == "polars-b87ba3f":
        return _python_grouping(con, analytes, AS_OF, 1_000_000)
    rows = 1_000_000 if way == "polars" else int(way.split("-", 1)[1])
    return _check_rows(con, analytes, AS_OF, rows)


class _RssSampler:
    """The process's resident memory every 20 ms while in the block (Linux /proc)."""

    def __init__(self) -> None:
        self.start = self.peak = 0
        self._stop = threading.Event()

    @staticmethod
    def now() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.now())

    def __enter__(self) -> _RssSampler:
        self.start = self.peak = self.now()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.now())


def _one(way: str, parquet: Path, meta_path: Path, memory_limit: str | None) -> dict:
    """One way on one case, in this (fresh) process."""
    import duckdb
    import polars as pl

    meta = json.loads(meta_path.read_text())
    con = duckdb.connect()
    if memory_limit:
        con.execute(f"SET memory_limit = '{memory_limit}'")
    con.execute(f"CREATE TEMP TABLE incoming_labs AS SELECT * FROM read_parquet('{parquet}')")
    # warm up on a few rows before the clock starts: pandera registers its backends at the
    # first validate, which imports hypothesis (about 2 s here); a run pays that once, on the
    # patients, before the labs.
    con.execute("CREATE TEMP TABLE warm AS SELECT * FROM incoming_labs LIMIT 1000")
    con.execute("ALTER TABLE incoming_labs RENAME TO cold")
    con.execute("ALTER TABLE warm RENAME TO incoming_labs")
    _way(way, con, meta["analytes"])
    con.execute("DROP TABLE incoming_labs")
    con.execute("ALTER TABLE cold RENAME TO incoming_labs")

    sampler = _RssSampler()
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    with sampler:
        result = _way(way, con, meta["analytes"])
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if isinstance(result, str):  # a temp table: absent when no row failed
        ((found,),) = con.execute(  # fetchall: a fetchone leaves the connection busy
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [result]
        ).fetchall()
        result = (
            con.sql(f"SELECT _rid, reason FROM {result}").pl()
            if found
            else pl.DataFrame(schema={"_rid": pl.Int64, "reason": pl.String})
        )
    result = result.sort("_rid")
    digest = result.select(
        pl.len().alias("rows"),
        pl.col("_rid").cast(pl.Int128).sum().alias("rid_sum"),
        pl.col("reason").hash(seed=1).cast(pl.Int128).sum().alias("reason_hash"),
    ).row(0, named=True)
    reasons = result.group_by("reason").len().sort("reason").rows()
    return {
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "rss_after_load_bytes": before.ru_maxrss * 1024,
        "peak_rss_bytes": after.ru_maxrss * 1024,
        # the high-water mark above may be the load's; these are sampled during the way
        "rss_at_start_bytes": sampler.start,
        "rss_growth_bytes": sampler.peak - sampler.start,
        "failing_rows": digest["rows"],
        "digest": f"{digest['rows']}:{digest['rid_sum']}:{digest['reason_hash']}",
        "reasons": reasons,  # counts per reason text: no row values
    }


def _run_child(way: str, parquet: Path, meta: Path, memory_limit: str | None, python: str) -> dict:
    args = [python, "-m", "pipeline.bench.validation", "--child", way, str(parquet), str(meta)]
    if memory_limit:
        args.append(memory_limit)
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["?"])[-1][:300]
        return {"error": last}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _median(runs: list[dict], key: str) -> float:
    return round(statistics.median(r[key] for r in runs), 3)


@click.command("bench-validation")
@click.option(
    "--extracts",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="A folder of patients*.parquet and labs_*.parquet (copies: a run ignores links).",
)
@click.option(
    "--dir",
    "workdir",
    type=click.Path(path_type=Path),
    default=Path("bench-validation"),
    show_default=True,
    help="Scratch folder: the staged Parquet files are kept there for re-runs.",
)
@click.option("--ways", default="polars,ibis", show_default=True, help="Comma-separated.")
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True)
@click.option(
    "--fail-share",
    type=click.FloatRange(min=0.0, max=0.5),
    default=0.03,
    show_default=True,
    help="Share of rows made to fail in the failing case.",
)
@click.option("--memory-limit", default=None, help="DuckDB memory_limit in each child.")
@click.option(
    "--python", default=sys.executable, show_default=True, help="Interpreter of the ways."
)
@click.option("--restage", is_flag=True, help="Stage again even when staged files exist.")
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None)
def bench_validation(
    extracts: Path,
    workdir: Path,
    ways: str,
    repeats: int,
    fail_share: float,
    memory_limit: str | None,
    python: str,
    restage: bool,
    json_out: Path | None,
) -> None:
    """Time each way of running the lab checks, clean and with failing rows."""
    workdir.mkdir(parents=True, exist_ok=True)
    meta_path = workdir / "staged.json"
    if restage or not meta_path.exists():
        click.echo(f"staging {extracts} …", err=True)
        # in a child: Linux carries a parent's ru_maxrss into the processes it starts, so a
        # parent that staged would lend its high-water mark to every way
        args = [python, "-m", "pipeline.bench.validation", "--stage", str(extracts)]
        subprocess.run([*args, str(workdir), str(fail_share)], check=True)
    meta = json.loads(meta_path.read_text())
    figures: dict = {
        "rows": meta["rows"],
        "fail_share": fail_share,
        "repeats": repeats,
        "cpu_count": os.cpu_count(),
        "load_average_start": os.getloadavg(),
        "cases": {},
    }
    for case in ("clean", "failing"):
        parquet = workdir / f"{case}.parquet"
        per_way: dict = {}
        for way in [w.strip() for w in ways.split(",") if w.strip()]:
            runs = []
            for i in range(repeats):
                got = _run_child(way, parquet, meta_path, memory_limit, python)
                click.echo(f"{case} {way} #{i + 1}: {json.dumps(got)[:200]}", err=True)
                if "error" in got:
                    runs = [got]
                    break
                runs.append(got)
            if "error" in runs[0]:
                per_way[way] = runs[0]
                continue
            per_way[way] = {
                "wall_s_median": _median(runs, "wall_s"),
                "cpu_s_median": _median(runs, "cpu_s"),
                "peak_rss_gib_median": round(_median(runs, "peak_rss_bytes") / GIB, 3),
                "rss_after_load_gib_median": round(_median(runs, "rss_after_load_bytes") / GIB, 3),
                "rss_growth_gib_median": round(_median(runs, "rss_growth_bytes") / GIB, 3),
                "wall_s": [r["wall_s"] for r in runs],
                "failing_rows": runs[0]["failing_rows"],
                "digest": runs[0]["digest"],
                "same_as_polars": None,
                "reasons": runs[0]["reasons"],
            }
        base = per_way.get("polars", {}).get("digest")
        for figures_of in per_way.values():
            if base and "digest" in figures_of:
                figures_of["same_as_polars"] = figures_of["digest"] == base
        figures["cases"][case] = per_way
    figures["load_average_end"] = os.getloadavg()
    text = json.dumps(figures, indent=2)
    click.echo(text)
    if json_out:
        json_out.write_text(text + "\n")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--stage":
        stage(Path(sys.argv[2]), Path(sys.argv[3]), AS_OF, float(sys.argv[4]))
    elif len(sys.argv) >= 5 and sys.argv[1] == "--child":
        limit = sys.argv[5] if len(sys.argv) > 5 else None
        print(json.dumps(_one(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]), limit)))
    else:
        bench_validation()
