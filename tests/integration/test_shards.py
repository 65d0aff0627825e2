"""A sharded run (issue 14; docs/scale-out.md) gives the single-node run's results.

The demo population is screened once on one node, then with 1, 2 and 4 shards as Prefect tasks
on a ``distributed.LocalCluster`` (threads in this process, under the session's Prefect
harness; 2 through ``b12screen run --shards 2``), and a next night on one node and in 3 shards
(screened one after another in this process, as ``run_sharded`` does without Dask), on a copy
of each first night. What may differ, and nothing else:

* the run id (every output's ``run_id`` column and value, the registry's key) and the
  timestamps of the run (``started_at``, ``finished_at``, audit.json's ``generated_at``, the
  workbook's about sheet, run.json's ``timings_s``, whose stages are named differently);
* run.json's ``shards`` (how the run was split), which a single-node run has not.

Every CSV output is compared byte for byte with the run id replaced, flags.parquet row for row,
audit.json whole, the workbook cell by cell, the registry's counts table by table.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import duckdb
import openpyxl
import polars as pl
import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.demo import generate_population
from pipeline.errors import UsageError
from pipeline.progress import Progress
from pipeline.runner import RunConfig, RunResult, run_screening
from pipeline.scale import run_sharded
from pipeline.scale import shard as shard_module
from pipeline.scale.cluster import check_cluster, require_cluster_extra, share_of

AS_OF = date(2026, 11, 24)
RUN = "<run id>"
RUN_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{8}")  # pipeline/runner.py: the run ids of every run
CSV_OUTPUTS = (
    "worklist.csv",
    "worklist_urgent_safety.csv",
    "worklist_follow_up.csv",
    "worklist_screening.csv",
    "resolved.csv",
    "quarantine.csv",
)
# registry tables compared by their rows less the run id
REGISTRY_COUNTS = {
    "flags_history": "criterion",
    "worklist_history": "priority",
    "quarantine_log": "reason",
    "ingested_files": "file_name",
}
KEPT = (
    "patients",
    "lab_results",
    "medications",
    "diagnoses",
    "feedback",
    "lab_result_corrections",
    "lab_latest",
)


@pytest.fixture(scope="module")
def extracts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("demo") / "extracts"
    generate_population(folder, n_patients=500, as_of=AS_OF, seed=12, progress=Progress(False))
    return folder


def _config(extracts: Path, where: Path) -> RunConfig:
    return RunConfig(extracts=extracts, out=where / "out", as_of=AS_OF, db=where / "b12.duckdb")


@pytest.fixture(scope="module")
def single(extracts: Path, tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    return run_screening(_config(extracts, tmp_path_factory.mktemp("single")))


@pytest.fixture(scope="module")
def sharded(extracts: Path, tmp_path_factory: pytest.TempPathFactory, prefect_harness) -> RunResult:
    """The first night in 2 shards on a LocalCluster, through ``b12screen run --shards 2
    --cluster local`` (the later nights build on a copy of it)."""
    config = _config(extracts, tmp_path_factory.mktemp("sharded"))
    args = ["run", "--extracts", str(extracts), "--out", str(config.out), "--db", str(config.db)]
    args += ["--as-of", AS_OF.isoformat(), "--shards", "2", "--cluster", "local"]
    ran = CliRunner().invoke(cli, args)
    assert ran.exit_code == 0, ran.output
    record = json.loads((config.out / "current" / "run.json").read_text(encoding="utf-8"))
    return RunResult(record["run_id"], config.out, record)


def _db(result: RunResult) -> Path:
    return result.out.parent / "b12.duckdb"


def _copy(result: RunResult, to: Path) -> RunResult:
    """The run's database and output folder copied to ``to`` (a night to build on)."""
    shutil.copytree(result.out.parent, to, symlinks=True)
    return RunResult(result.run_id, to / "out", result.record)


def _text(result: RunResult, name: str) -> str:
    return RUN_ID.sub(RUN, (result.out / "current" / name).read_text(encoding="utf-8"))


def _audit(result: RunResult) -> dict:
    audit = json.loads(_text(result, "audit.json"))
    audit.pop("generated_at")
    for row in audit["tables"]["runs"]:
        row.pop("started_at")
        row.pop("finished_at")
    return audit


def _workbook(result: RunResult) -> dict[str, list[tuple]]:
    book = openpyxl.load_workbook(result.out / "current" / "worklist.xlsx", read_only=True)
    sheets = {}
    for sheet in book.worksheets:
        rows = []
        for row in sheet.iter_rows(values_only=True):
            cells = tuple(c.replace(result.run_id, RUN) if isinstance(c, str) else c for c in row)
            rows.append(cells)
        sheets[sheet.title] = rows
    book.close()
    return sheets


def _registry(result: RunResult, db: Path) -> dict:
    con = duckdb.connect(str(db), read_only=True)
    try:
        got = {
            table: sorted(
                con.execute(f"SELECT {column}, count(*) FROM {table} GROUP BY 1").fetchall()
            )
            for table, column in REGISTRY_COUNTS.items()
        }
        got["runs"] = sorted(
            con.execute("SELECT as_of, status, count(*) FROM runs GROUP BY ALL").fetchall()
        )
        for table in KEPT:  # every stored value but the run id, record keys included
            columns = [c for c, *_ in con.execute(f"DESCRIBE {table}").fetchall() if c != "run_id"]
            got[table] = con.execute(
                f"SELECT count(*), count(DISTINCT patient_id), "
                f"bit_xor(hash({', '.join(columns)})) FROM {table}"
            ).fetchall()
        got["flags"] = sorted(
            con.execute(
                "SELECT patient_id, criterion, value, source_file, row_number FROM flags_history"
            ).fetchall(),
            key=repr,
        )
    finally:
        con.close()
    return got


def _same_results(single: RunResult, sharded: RunResult, single_db: Path, db: Path) -> None:
    for name in CSV_OUTPUTS:
        assert _text(sharded, name) == _text(single, name), name
    flags = [
        pl.read_parquet(r.out / "current" / "flags.parquet").drop("run_id")
        for r in (single, sharded)
    ]
    assert flags[0].equals(flags[1])
    assert _audit(sharded) == _audit(single)
    assert _workbook(sharded) == _workbook(single)
    records = [single.record, sharded.record]
    for key in ("counts", "input_format", "lab_state", "rules", "as_of"):
        assert records[1].get(key) == records[0].get(key), key
    assert _registry(sharded, db) == _registry(single, single_db)
    assert not db.with_name(db.name + ".shards").exists()  # the work folder is removed


@pytest.mark.prefect
def test_two_shards_through_the_cli_equal_single_node(
    single: RunResult, sharded: RunResult
) -> None:
    """``b12screen run --shards 2 --cluster local``: every output and the registry as the
    single-node run's."""
    assert sharded.record["shards"]["count"] == 2
    counts = single.record["counts"]
    assert counts["worklist"]["total"] > 0 and sum(counts["rows_quarantined"].values()) > 0
    _same_results(single, sharded, _db(single), _db(sharded))


@pytest.mark.prefect
@pytest.mark.parametrize("shards", [1, 4])
def test_sharded_on_a_local_cluster_equals_single_node(
    shards: int, extracts: Path, single: RunResult, tmp_path: Path, prefect_harness
) -> None:
    from flows.sharded import run_on_cluster

    config = _config(extracts, tmp_path)
    result = run_on_cluster(config, shards, "local")
    assert result.record["shards"]["count"] == shards
    _same_results(single, result, _db(single), config.db)


@pytest.mark.prefect
def test_a_failed_shard_fails_the_run_and_keeps_outputs_and_state(
    extracts: Path, sharded: RunResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second night on a LocalCluster whose shard 2 meets a bug fails in one line, leaves the published outputs
    and the stored rows as they were, and is recorded as failed; the traceback (which may hold
    data) is in the shard's failure log beside the database, not in the message."""
    first = _copy(sharded, tmp_path / "night")
    before = (first.out / "current" / "worklist.csv").read_bytes()
    stored = _registry(first, _db(first))
    real = shard_module.ShardRun.screen

    def broken(self):
        if self.spec.index == 1:
            raise ZeroDivisionError("patient P-1 value 3")  # a bug whose message holds data
        return real(self)

    monkeypatch.setattr(shard_module.ShardRun, "screen", broken)
    config = replace(_config(extracts, first.out.parent), as_of=AS_OF + timedelta(days=1))
    from flows.sharded import ShardedRunError, run_on_cluster

    with pytest.raises(shard_module.ShardFailed) as failed:
        run_on_cluster(config, 2, "local")
    message = str(failed.value)
    assert "shard 2 of 2 failed (ZeroDivisionError)" in message
    assert "P-1" not in message
    assert "P-1" in Path(message.rsplit(" ", 1)[-1]).read_text(encoding="utf-8")
    assert (first.out / "current").resolve().name == first.run_id
    assert (first.out / "current" / "worklist.csv").read_bytes() == before
    # a bug of the coordinator: one line too, its traceback in the run's failure log
    monkeypatch.setattr(shard_module.ShardRun, "screen", real)
    from pipeline.scale import coordinate

    def combine(*_):
        raise ValueError("patient P-2 value 4")

    monkeypatch.setattr(coordinate, "_combine", combine)
    with pytest.raises(ShardedRunError) as bug:
        run_on_cluster(config, 2, "local")
    message = str(bug.value)
    assert message.startswith("ValueError in the sharded run (unexpected: a bug); traceback in ")
    assert "P-2" not in message
    assert "P-2" in Path(message.rsplit(" ", 1)[-1]).read_text(encoding="utf-8")
    assert (first.out / "current" / "worklist.csv").read_bytes() == before
    after = _registry(first, _db(first))
    assert after.pop("runs") == sorted([*stored.pop("runs"), (config.as_of, "failed", 2)])
    assert after == stored
    assert not (first.out.parent / "b12.duckdb.shards").exists()


def test_shards_need_the_cluster_extra(
    extracts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without dask, distributed or prefect-dask, ``run --shards`` is one line (a usage
    error) before anything is read; ``run`` without it needs none of them."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "prefect_dask" else real(name, *a),
    )
    with pytest.raises(UsageError, match=r"pip install 'b12screen\[cluster\]'"):
        require_cluster_extra()
    args = ["run", "--extracts", str(extracts), "--out", str(tmp_path / "out")]
    ran = CliRunner().invoke(cli, [*args, "--db", str(tmp_path / "b12.duckdb"), "--shards", "2"])
    assert ran.exit_code == UsageError.exit_code, ran.output
    assert ran.output.strip().splitlines() == [
        "b12screen: error: --shards needs the cluster extra (dask, distributed, prefect-dask), "
        "not installed here: pip install 'b12screen[cluster]'"
    ]
    assert not (tmp_path / "b12.duckdb").exists() and not (tmp_path / "out").exists()


def test_cluster_options_go_with_shards(extracts: Path, tmp_path: Path) -> None:
    args = ["run", "--extracts", str(extracts), "--out", str(tmp_path / "out")]
    ran = CliRunner().invoke(cli, [*args, "--cluster", "local"])
    assert ran.exit_code == UsageError.exit_code
    assert "--cluster and --shard-dir go with --shards N" in ran.output


def test_a_share_of_the_memory_limit_per_shard() -> None:
    assert share_of("3GB", 2) == "1430MiB"
    assert share_of("512MiB", 4) == "128MiB"
    assert share_of("3GB", 1) == "3GB" and share_of(None, 2) is None


@pytest.mark.parametrize("given", ["local", "tcp://scheduler:8786", "tls://10.0.0.5:8786"])
def test_cluster_addresses(given: str) -> None:
    assert check_cluster(given) == given


@pytest.mark.parametrize("given", ["", "scheduler:8786", "http://x:1", "tcp://x"])
def test_other_cluster_values_are_one_line(given: str) -> None:
    with pytest.raises(UsageError, match="tcp://host:port"):
        check_cluster(given)


def _night2(extracts: Path, folder: Path) -> Path:
    """The next night's drop: new results, corrected and re-sent ones, a patient id padded with
    spaces, a row without a patient id, a malformed line, and clinicians' feedback."""
    labs = (extracts / "labs_site_north.csv").read_text(encoding="utf-8").splitlines()
    header, rows = labs[0], labs[1:]
    b12 = [r for r in rows if ",2132-9," in r][:4]
    corrected = [r.replace(r.split(",")[4], "140", 1) for r in b12[:2]]
    resent = rows[5:8]
    patient = rows[0].split(",")[0]
    day = (AS_OF + timedelta(days=1)).isoformat()
    new = [
        f"{patient},{day}T08:00:00,2132-9,Vitamin B12,130,pg/mL,,,N2-1",
        f"  {patient}  ,{day}T09:00:00,718-7,Hemoglobin,9.1,g/dL,,,N2-2",
        f",{day}T09:30:00,2132-9,Vitamin B12,120,pg/mL,,,N2-3",
        f'{patient},{day}T10:00:00,2132-9,"Vitamin B12,110,pg/mL,,,N2-4',
    ]
    folder.mkdir()
    (folder / "labs_night2.csv").write_text(
        "\n".join([header, *corrected, *resent, *new]) + "\n", encoding="utf-8"
    )
    (folder / "feedback_night2.csv").write_text(
        "patient_id,criterion,action,until,note\n"
        f"PLANT-PTMA-01,b12_deficient,treated,,\n{patient},b12_deficient,reviewed,,\n",
        encoding="utf-8",
    )
    return folder


@pytest.mark.prefect
def test_the_next_night_on_a_different_shard_count_equals_single_node(
    extracts: Path, single: RunResult, sharded: RunResult, tmp_path: Path
) -> None:
    """Night 1 in 2 shards, night 2 in 3 in this process (the stored rows are split again):
    corrections, re-sent rows, feedback and the kept lab state give the single-node results."""
    night2 = _night2(extracts, tmp_path / "night2")
    one, many = _copy(single, tmp_path / "one"), _copy(sharded, tmp_path / "many")
    left = _db(many).with_name("b12.duckdb.shards") / sharded.run_id / "raw"  # a killed run's
    left.mkdir(parents=True)
    next_day = AS_OF + timedelta(days=1)
    results = [
        run_screening(replace(_config(night2, one.out.parent), as_of=next_day)),
        run_sharded(replace(_config(night2, many.out.parent), as_of=next_day), 3),
    ]
    merged = results[0].record["counts"]["merged"]["labs"]
    assert merged["corrected"] >= 1 and merged["resent"] >= 1 and merged["new"] >= 1, merged
    quarantine = _text(results[0], "quarantine.csv")
    assert "malformed CSV line" in quarantine and "patient_id missing" in quarantine
    _same_results(results[0], results[1], _db(one), _db(many))  # the left folder removed too
    # the kept profile of the stored results (the audit's) followed the night, in both
    assert [r.record["lab_profile"] for r in results] == ["updated", "updated"]


def test_a_single_node_run_needs_no_dask() -> None:
    """The CLI, the runner and the scale package import none of the cluster extra's modules
    (a base install has none of them)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "for name in ('dask', 'distributed', 'prefect_dask'):\n"
        "    sys.modules[name] = None  # importing it fails, as when it is not installed\n"
        "import pipeline.cli, pipeline.runner, pipeline.scale\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_a_criterion_reading_what_shards_lack_stops_the_split() -> None:
    """The shipped criteria and measures read only what the shards receive; one that read
    the flag history would be named before any row is split."""
    import dataclasses

    from pipeline.scale.split import check_shardable
    from pipeline.screening.models import ModelGraph, model_graph

    graph = model_graph()
    check_shardable(graph)
    name = graph.of_kind("criterion")[0]
    model = dataclasses.replace(
        graph.models[name], reads=graph.models[name].reads | {"flags_history"}
    )
    changed = ModelGraph({**graph.models, name: model}, graph.names, graph.deps)
    with pytest.raises(RuntimeError, match="read flags_history, which the shards do not receive"):
        check_shardable(changed)
